//! Keeping a node's store in step with its swarm as the swarms change: pulls from members
//! that joined (or from all, for a node new to its swarm), and hand-overs of accounts another
//! swarm comes to own (see the parent module's docs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sispop_chain::PublicKey;
use sispop_storage::store::{message_to_json, Message, Revocation};
use sispop_storage::UserPubkey;
use tracing::{debug, info, warn};

use super::{
    ask, confirmed, keep_messages, keep_revocations, members_with_addr, peers, pull_pages,
    revocations_json, Asked, CHECK_EVERY, PAGE, PULL, PULL_REVOKED, PUSH, PUSH_PAGE_BYTES,
};
use crate::node::Node;
use crate::storage::server::{owner_among, serving, Storage};

/// How long a message handed over stays here after a member of its new swarm signed for it,
/// at least: a validator whose chain is a little behind ours may still test this node on it
/// (its acks from before the change are not usable once the validator knows of the change),
/// and the change may yet be undone by a reorganisation (see [`hand_over_grace`]).
const HAND_OVER_GRACE: Duration = Duration::from_secs(600);

/// [`HAND_OVER_GRACE`], or the time of the blocks a reorganisation may undo and a few more.
fn hand_over_grace(node: &Node) -> Duration {
    let blocks = node.params.sn.reorg_safety_buffer.saturating_add(5);
    HAND_OVER_GRACE.max(Duration::from_secs(
        blocks.saturating_mul(node.params.target_block_time),
    ))
}

/// Messages handed over (account and hash), to drop once the grace is over.
type Handed = Vec<(UserPubkey, String)>;

/// Sends every message held for an account another swarm owns to that swarm. Returns how many
/// a member signed for holding (to drop here after [`HAND_OVER_GRACE`]: the third) and how
/// many are left.
async fn hand_over(node: &Node, storage: &Arc<Storage>, our_swarm: u64) -> (usize, usize, Handed) {
    hand_over_by(node, storage, our_swarm, |pk, addr, data| {
        Box::pin(async move { ask(node, &pk, addr, data).await })
    })
    .await
}

/// [`hand_over`], asking members through `ask`.
pub(super) async fn hand_over_by<'a>(
    node: &'a Node,
    storage: &Arc<Storage>,
    our_swarm: u64,
    ask: impl Fn(PublicKey, Option<libp2p::Multiaddr>, Vec<u8>) -> Asked<'a>,
) -> (usize, usize, Handed) {
    let mut cursor: Option<Vec<u8>> = None;
    let (mut moved, mut left, mut handed) = (0, 0, Vec::new());
    loop {
        // We may have moved meanwhile: what was another swarm's may be ours now.
        if serving(node).ok() != Some(our_swarm) {
            return (moved, left.max(1), handed);
        }
        let s = storage.clone();
        let c = cursor.clone();
        let Ok(Ok((page, next))) =
            tokio::task::spawn_blocking(move || s.store.scan(c.as_deref(), PAGE, PUSH_PAGE_BYTES))
                .await
        else {
            return (moved, left.max(1), handed);
        };
        let mut by_swarm: std::collections::BTreeMap<u64, Vec<Message>> = Default::default();
        let ids = node.swarm_ids();
        for m in page {
            match owner_among(&ids, &m.pubkey) {
                Some(s) if s != our_swarm => by_swarm.entry(s).or_default().push(m),
                _ => {}
            }
        }
        for (swarm, msgs) in by_swarm {
            let members: Vec<PublicKey> = {
                let st = node.lock();
                let me = st.sn_keys.as_ref().map(|k| k.primary);
                st.chain
                    .ext()
                    .state()
                    .active()
                    .filter(|(pk, n)| n.swarm_id == swarm && Some(**pk) != me)
                    .map(|(pk, _)| *pk)
                    .collect()
            };
            // The accounts' revocations go with their messages.
            let accounts: BTreeSet<UserPubkey> = msgs.iter().map(|m| m.pubkey).collect();
            let s = storage.clone();
            let revoked: Vec<(UserPubkey, Revocation)> = tokio::task::spawn_blocking(move || {
                accounts
                    .into_iter()
                    .flat_map(|a| {
                        let list = s.store.revocations_with_proofs(&a).unwrap_or_default();
                        list.into_iter()
                            .filter(|r| !r.proof.is_empty())
                            .map(move |r| (a, r))
                    })
                    .collect()
            })
            .await
            .unwrap_or_default();
            let mut data = vec![PUSH];
            data.extend_from_slice(
                json!({"messages": msgs.iter().map(message_to_json).collect::<Vec<_>>(),
                       "revoked": revocations_json(&revoked)})
                .to_string()
                .as_bytes(),
            );
            // Every member is offered them; dropped here is only what a member signed for
            // holding. The rest is offered again later.
            let pushed: Vec<&str> = msgs.iter().map(|m| m.hash.as_str()).collect();
            let mut taken: std::collections::HashSet<String> = Default::default();
            for (pk, addr) in members_with_addr(node, members) {
                match ask(pk, addr, data.clone()).await {
                    Ok(r) => taken.extend(confirmed(&pk, &r, &pushed)),
                    Err(e) => debug!(node = %pk, error = %e, "hand-over failed"),
                }
            }
            let (gone, kept): (Vec<Message>, Vec<Message>) =
                msgs.into_iter().partition(|m| taken.contains(&m.hash));
            left += kept.len();
            moved += gone.len();
            handed.extend(gone.into_iter().map(|m| (m.pubkey, m.hash)));
        }
        match next {
            Some(n) => cursor = Some(n),
            None => return (moved, left, handed),
        }
    }
}

/// Drops messages handed over (their grace over), but not one whose account is our swarm's
/// again.
pub(super) async fn drop_handed(node: &Node, storage: &Arc<Storage>, handed: Handed) {
    let Ok(ours) = serving(node) else {
        return;
    };
    let ids = node.swarm_ids();
    let gone: Handed = handed
        .into_iter()
        .filter(|(pk, _)| owner_among(&ids, pk) != Some(ours))
        .collect();
    let s = storage.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for (pk, hash) in &gone {
            let _ = s.store.delete(pk, std::slice::from_ref(hash));
        }
    })
    .await;
}

/// When a node became what it is now: its registration and how many times it was
/// decommissioned. A node that was decommissioned and came back has a new one.
type Incarnation = (u64, u32);

/// What the swarms look like, as this node needs it for keeping in step.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Epoch {
    /// Our swarm.
    swarm: u64,
    /// Our own incarnation.
    me: Incarnation,
    /// The other active members of our swarm.
    members: BTreeMap<PublicKey, Incarnation>,
    /// Every swarm id.
    ids: BTreeSet<u64>,
}

impl Epoch {
    /// Members that are new since `before` (joined, or back from decommission).
    fn joined_since(&self, before: &Epoch) -> impl Iterator<Item = PublicKey> + '_ {
        let old = before.members.clone();
        self.members
            .iter()
            .filter(move |(pk, inc)| old.get(pk) != Some(inc))
            .map(|(pk, _)| *pk)
    }
}

fn epoch(node: &Node) -> Option<Epoch> {
    let ours = serving(node).ok()?;
    let st = node.lock();
    let me = st.sn_keys.as_ref().map(|k| k.primary)?;
    let state = st.chain.ext().state();
    let incarnation =
        |n: &sispop_staking::ServiceNodeInfo| (n.registration_height.0, n.decommission_count);
    let mut members: BTreeMap<PublicKey, Incarnation> = state
        .active()
        .filter(|(_, n)| n.swarm_id == ours)
        .map(|(pk, n)| (*pk, incarnation(n)))
        .collect();
    let mine = members.remove(&me)?;
    let ids = state.active().map(|(_, n)| n.swarm_id).collect();
    Some(Epoch {
        swarm: ours,
        me: mine,
        members,
        ids,
    })
}

/// Pulls still to make toward being in step with an epoch.
struct Pending {
    target: Epoch,
    sources: BTreeSet<PublicKey>,
}

/// The first wait before handing over again messages no member of their swarm took; it
/// doubles with each try, up to [`HAND_OVER_RETRY_MAX`].
const HAND_OVER_RETRY: Duration = Duration::from_secs(30);
const HAND_OVER_RETRY_MAX: Duration = Duration::from_secs(30 * 60);

/// The pulls to be in step with `now`, and whether accounts may have changed swarms (a
/// hand-over is due), after `done` (the last epoch we were in step with) and what was left of
/// the pulls toward a later one (`before`).
fn pending_for(now: Epoch, done: Option<&Epoch>, before: Option<Pending>) -> (Pending, bool) {
    let (base, carried) = match before {
        Some(b) => (Some(b.target), b.sources),
        None => (done.cloned(), BTreeSet::new()),
    };
    // New to this swarm (started, back from decommission or not serving, or moved): pull from
    // every member. Otherwise only from members that joined since (they may bring messages of
    // our accounts), and those still to pull from; one that left takes nothing with it.
    let new_here = base
        .as_ref()
        .is_none_or(|b| b.swarm != now.swarm || b.me != now.me);
    let sources: BTreeSet<PublicKey> = match &base {
        Some(b) if !new_here => now
            .joined_since(b)
            .chain(
                carried
                    .into_iter()
                    .filter(|pk| now.members.contains_key(pk)),
            )
            .collect(),
        _ => now.members.keys().copied().collect(),
    };
    // Accounts change swarms only when the swarms do (or when we moved).
    let reassigned = new_here || base.is_some_and(|b| b.ids != now.ids);
    (
        Pending {
            target: now,
            sources,
        },
        reassigned,
    )
}

/// Keeps this node's data in step with its swarm until the daemon stops.
pub async fn run(node: Node, storage: Arc<Storage>) {
    let mut stop = node.shutdown.subscribe();
    let mut done: Option<Epoch> = None;
    let mut pending: Option<Pending> = None;
    // When to hand over (again), and how many tries failed.
    let mut hand_over_at: Option<(tokio::time::Instant, u32)> = None;
    // Handed over, to drop when due.
    let mut to_drop: std::collections::VecDeque<(tokio::time::Instant, Handed)> =
        Default::default();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        while to_drop
            .front()
            .is_some_and(|(due, _)| *due <= tokio::time::Instant::now())
        {
            if let Some((_, handed)) = to_drop.pop_front() {
                drop_handed(&node, &storage, handed).await;
            }
        }
        let Some(now) = epoch(&node) else {
            done = None;
            pending = None;
            hand_over_at = None;
            continue;
        };
        let current = pending.as_ref().map(|p| &p.target).or(done.as_ref());
        if current != Some(&now) {
            let (work, reassigned) = pending_for(now, done.as_ref(), pending.take());
            pending = Some(work);
            if reassigned {
                hand_over_at = Some((tokio::time::Instant::now(), 0));
            }
        }
        if let Some(work) = pending.as_mut() {
            let swarm = work.target.swarm;
            let members = peers(&node, swarm);
            let todo: Vec<_> = members
                .into_iter()
                .filter(|(pk, _)| work.sources.contains(pk))
                .collect();
            work.sources.retain(|pk| todo.iter().any(|(m, _)| m == pk));
            let mut failed = false;
            for (pk, addr) in todo {
                let from = (&pk, addr.clone());
                let mut ok = true;
                match pull_pages(&node, &storage, swarm, from, PULL, keep_messages).await {
                    Ok(n) if n > 0 => {
                        info!(from = %pk, messages = n, "caught up from a swarm member")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(from = %pk, error = %e, "pull from a swarm member failed");
                        ok = false;
                    }
                }
                let from = (&pk, addr);
                match pull_pages(&node, &storage, swarm, from, PULL_REVOKED, keep_revocations).await
                {
                    Ok(n) if n > 0 => info!(from = %pk, revocations = n, "revocations caught up"),
                    Ok(_) => {}
                    Err(e) => {
                        debug!(from = %pk, error = %e, "revocation pull from a swarm member failed");
                        ok = false;
                    }
                }
                if ok {
                    work.sources.remove(&pk);
                } else {
                    failed = true;
                }
            }
            if work.sources.is_empty() {
                done = pending.take().map(|p| p.target);
            } else if failed {
                warn!("swarm sync incomplete; retrying");
            }
        }
        if let Some((at, tries)) = hand_over_at {
            if tokio::time::Instant::now() >= at {
                let swarm = done.as_ref().or(pending.as_ref().map(|p| &p.target));
                let Some(swarm) = swarm.map(|e| e.swarm) else {
                    continue;
                };
                let (moved, left, handed) = hand_over(&node, &storage, swarm).await;
                if !handed.is_empty() {
                    to_drop
                        .push_back((tokio::time::Instant::now() + hand_over_grace(&node), handed));
                }
                if moved > 0 {
                    info!(
                        messages = moved,
                        "handed messages over to the swarms that now own them"
                    );
                }
                hand_over_at = (left > 0).then(|| {
                    let wait = HAND_OVER_RETRY
                        .saturating_mul(1u32 << tries.min(6))
                        .min(HAND_OVER_RETRY_MAX);
                    info!(messages = left, retry_in = ?wait, "messages not taken by their swarms yet");
                    (tokio::time::Instant::now() + wait, tries.saturating_add(1))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    /// An epoch where we are in `swarm` (first incarnation) with `members` (each in its first
    /// incarnation unless listed in `back`: decommissioned once and back).
    fn epoch_of(swarm: u64, members: &[u8], back: &[u8], ids: &[u64]) -> Epoch {
        Epoch {
            swarm,
            me: (1, 0),
            members: members
                .iter()
                .map(|b| (pk(*b), (1, u32::from(back.contains(b)))))
                .collect(),
            ids: ids.iter().copied().collect(),
        }
    }

    fn set(members: &[u8]) -> BTreeSet<PublicKey> {
        members.iter().map(|b| pk(*b)).collect()
    }

    #[test]
    fn only_a_node_new_to_its_swarm_pulls_from_everyone() {
        // At start: pull from all, hand over.
        let now = epoch_of(7, &[1, 2], &[], &[7, 9]);
        let (p, reassigned) = pending_for(now.clone(), None, None);
        assert_eq!((p.sources, reassigned), (set(&[1, 2]), true));
        // A member leaves: nothing to do.
        let later = epoch_of(7, &[1], &[], &[7, 9]);
        let (p, reassigned) = pending_for(later.clone(), Some(&now), None);
        assert_eq!((p.sources, reassigned), (set(&[]), false));
        // A member joins, another comes back from decommission: pull from those alone.
        let joined = epoch_of(7, &[1, 3], &[1], &[7, 9]);
        let (p, reassigned) = pending_for(joined.clone(), Some(&later), None);
        assert_eq!((p.sources, reassigned), (set(&[1, 3]), false));
        // The swarms change (one dissolved): hand over, pull from no one.
        let fewer = epoch_of(7, &[1, 3], &[1], &[7]);
        let (p, reassigned) = pending_for(fewer.clone(), Some(&joined), None);
        assert_eq!((p.sources, reassigned), (set(&[]), true));
        // We were decommissioned and are back, in the same swarm: pull from all again.
        let mut back = fewer.clone();
        back.me = (1, 1);
        let (p, reassigned) = pending_for(back, Some(&fewer), None);
        assert_eq!((p.sources, reassigned), (set(&[1, 3]), true));
        // We moved to swarm 9: pull from all of it, hand over.
        let moved = epoch_of(9, &[4, 5], &[], &[7, 9]);
        let (p, reassigned) = pending_for(moved, Some(&fewer), None);
        assert_eq!((p.sources, reassigned), (set(&[4, 5]), true));
    }

    #[test]
    fn unfinished_pulls_carry_over_and_finished_ones_are_not_made_again() {
        let done = epoch_of(7, &[1, 2], &[], &[7]);
        let first = epoch_of(7, &[1, 2, 3, 4, 5], &[], &[7]);
        let (mut p, _) = pending_for(first, Some(&done), None);
        assert_eq!(p.sources, set(&[3, 4, 5]));
        // 3 was pulled; 4 and 5 not yet when member 2 left and 5 left too.
        p.sources.remove(&pk(3));
        let next = epoch_of(7, &[1, 3, 4], &[], &[7]);
        let (p, reassigned) = pending_for(next, Some(&done), Some(p));
        assert_eq!(p.sources, set(&[4]), "3 is not pulled again, 5 is gone");
        assert!(!reassigned);
    }

    #[test]
    fn moving_away_and_back_before_done_pulls_everything() {
        let done = epoch_of(7, &[1, 2], &[], &[7, 9]);
        let away = epoch_of(9, &[4], &[], &[7, 9]);
        let (p, _) = pending_for(away, Some(&done), None);
        let home = epoch_of(7, &[1, 2], &[], &[7, 9]);
        let (p, reassigned) = pending_for(home, Some(&done), Some(p));
        assert_eq!(p.sources, set(&[1, 2]));
        assert!(reassigned);
    }
}
