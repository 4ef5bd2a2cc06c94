//! Accountability, wired to the clock, the network and the disk: this node's uptime proofs,
//! the proofs and votes of others (gossip), reachability, clock and storage tests
//! ([`crate::storage::peer_test`]) of the nodes we test,
//! our votes, and the state-change transactions that 7 of 10 votes make (issue 8). The rules
//! themselves live in `sispop-testing` (proofs, checks, votes) and `sispop-staking` (quorums,
//! applying state changes); nothing here decides consensus.
//!
//! Locks: the chain lock ([`Node::lock`]) is always taken before [`Node::acct`], never while it
//! is held, and signatures are checked before either is taken where the rules allow it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageAcceptance;
use libp2p::Multiaddr;
use sispop_chain::{Height, PublicKey};
use sispop_staking::list::Quorum;
use sispop_staking::ServiceNodeInfo;
use sispop_testing::{
    check_node, decide, state_change_tx, SignedProof, UptimeProof, Vote, VoteError,
    OBLIGATIONS_MIN_VOTES,
};
use tracing::{debug, info, warn};

use crate::node::{unix_now, Node};
use crate::p2p::wire::{Request, Response};
use crate::p2p::{peer_id_of, NetCommand, PROOFS_TOPIC, VOTES_TOPIC};

/// Our version, as the proof advertises it.
pub const VERSION: [u16; 3] = [0, 1, 0];
/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where this service node says it can be reached (the content of its proofs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Public IPv4 address.
    pub ip: Ipv4Addr,
    /// Storage HTTPS port.
    pub storage_port: u16,
    /// libp2p port (the quorumnet port of upstream's proofs).
    pub p2p_port: u16,
}

pub use crate::node::proofs::{Accountability, Counters};

/// A gossiped uptime proof: verified without locks, then checked against the SN list and the
/// book. Returns the gossip verdict and, for an invalid message, the ban reason.
pub fn on_proof(node: &Node, data: &[u8]) -> (MessageAcceptance, Option<String>) {
    let signed = match SignedProof::decode_and_verify(data) {
        Ok(s) => s,
        Err(e) => {
            node.acct().counters.proofs_rejected += 1;
            info!(reason = %e, "uptime proof rejected");
            return (
                MessageAcceptance::Reject,
                e.is_peer_fault()
                    .then(|| format!("invalid uptime proof: {e}")),
            );
        }
    };
    let registered = node
        .lock()
        .chain
        .ext()
        .state()
        .nodes
        .contains_key(&signed.proof.pubkey);
    let mut a = node.acct();
    match a
        .book
        .accept(&signed, unix_now(), &node.params.sn, registered)
    {
        Ok(()) => {
            a.counters.proofs_received += 1;
            a.dirty = true;
            debug!(node = %signed.proof.pubkey, ip = %signed.proof.public_ip, "uptime proof accepted");
            (MessageAcceptance::Accept, None)
        }
        Err(e) => {
            a.counters.proofs_rejected += 1;
            info!(node = %signed.proof.pubkey, reason = %e, "uptime proof rejected");
            (
                MessageAcceptance::Reject,
                e.is_peer_fault()
                    .then(|| format!("invalid uptime proof: {e}")),
            )
        }
    }
}

/// A gossiped vote: checked against the quorum of its height, pooled, and turned into a state
/// change when enough have arrived.
pub fn on_vote(node: &Node, data: &[u8]) -> (MessageAcceptance, Option<String>) {
    let vote = match Vote::decode(data) {
        Ok(v) => v,
        Err(e) => {
            node.acct().counters.votes_rejected += 1;
            info!(reason = %e, "vote rejected");
            return (
                MessageAcceptance::Reject,
                Some(format!("invalid vote: {e}")),
            );
        }
    };
    let (latest, quorum) = {
        let st = node.lock();
        (
            st.chain.tip().0 .0,
            st.chain.ext().state().quorum(Height(vote.height)).cloned(),
        )
    };
    let result = node
        .acct()
        .votes
        .add(vote, quorum.as_deref(), latest, &node.params.sn);
    match result {
        Ok(()) => {
            node.acct().counters.votes_received += 1;
            let key = |list: Option<&Vec<PublicKey>>, i: u16| {
                list.and_then(|l| l.get(usize::from(i)))
                    .map_or_else(String::new, PublicKey::to_hex)
            };
            info!(
                height = vote.height,
                node = key(quorum.as_ref().map(|q| &q.workers), vote.worker_index),
                voter = key(quorum.as_ref().map(|q| &q.validators), vote.validator_index),
                state = vote.state.name(),
                "vote received"
            );
            submit_ready(node);
            (MessageAcceptance::Accept, None)
        }
        Err(e @ VoteError::Duplicate(_)) => {
            debug!(reason = %e, "vote ignored");
            (MessageAcceptance::Ignore, None)
        }
        Err(e) => {
            node.acct().counters.votes_rejected += 1;
            info!(height = vote.height, validator = vote.validator_index, reason = %e, "vote rejected");
            // A vote that does not verify against our quorum of a height near our tip may
            // come from a node on another branch: refused, but its relayer is banned only
            // for heights that are settled (beyond the reorg safety buffer).
            let settled = vote
                .height
                .saturating_add(node.params.sn.reorg_safety_buffer)
                <= latest;
            if e.is_peer_fault() && settled {
                (
                    MessageAcceptance::Reject,
                    Some(format!("invalid vote: {e}")),
                )
            } else if e.is_peer_fault() {
                (MessageAcceptance::Reject, None)
            } else {
                (MessageAcceptance::Ignore, None)
            }
        }
    }
}

/// Turns every vote group with 7 or more votes, in a quorum this node validates for, into a
/// state-change transaction in the pool (and on the network).
pub fn submit_ready(node: &Node) {
    let Some(me) = node.lock().sn_keys.as_ref().map(|k| k.primary) else {
        return;
    };
    let ready: Vec<_> = {
        let a = node.acct();
        a.votes
            .ready(OBLIGATIONS_MIN_VOTES)
            .into_iter()
            .filter(|(h, w, s, _)| !a.submitted.contains(&(*h, *w, *s)))
            .collect()
    };
    for (height, worker, state, votes) in ready {
        let (member, worker_key) = {
            let st = node.lock();
            let q = st.chain.ext().state().quorum(Height(height));
            (
                q.is_some_and(|q| q.validators.contains(&me)),
                q.and_then(|q| q.workers.get(usize::from(worker)).copied()),
            )
        };
        if !member {
            continue;
        }
        node.acct().submitted.insert((height, worker, state));
        let tx = state_change_tx(height, worker, state, &votes);
        match node.add_tx(tx.serialize(), true) {
            Ok(hash) => {
                node.acct().counters.state_changes_submitted += 1;
                info!(%hash, node = ?worker_key.map(|k| k.to_hex()), quorum_height = height, worker, state = state.name(), votes = votes.len(), "state change submitted");
            }
            Err(e) => {
                debug!(quorum_height = height, worker, state = state.name(), error = %e, "state change not submitted")
            }
        }
    }
}

/// One worker to judge: everything the checks need, copied out of the chain lock.
struct Judged {
    height: u64,
    my_index: u16,
    worker_index: u16,
    pk: PublicKey,
    info: Arc<ServiceNodeInfo>,
    grace_from: u64,
    ip_window_start: u64,
}

/// What one round needs from the chain.
struct Snapshot {
    tip: u64,
    me: PublicKey,
    registered: bool,
    active: bool,
    judge: Vec<Judged>,
    probe: Vec<PublicKey>,
    dereg_allowed: bool,
}

fn block_time(st: &crate::node::NodeState, h: u64) -> u64 {
    let store = st.chain.store();
    store
        .hash_at(Height(h))
        .ok()
        .flatten()
        .and_then(|hash| store.block_meta(&hash).ok().flatten())
        .map_or(0, |m| m.timestamp)
}

fn snapshot(node: &Node, judged: &BTreeSet<u64>, now: u64) -> Option<Snapshot> {
    let st = node.lock();
    let me = st.sn_keys.as_ref()?.primary;
    let t = &node.params.sn;
    let tip = st.chain.tip().0 .0;
    let state = st.chain.ext().state();
    let mine = state.nodes.get(&me);
    let mut snap = Snapshot {
        tip,
        me,
        registered: mine.is_some(),
        active: mine.is_some_and(|n| n.is_active()),
        judge: Vec::new(),
        probe: Vec::new(),
        dereg_allowed: true,
    };
    if !snap.active {
        return Some(snap);
    }
    let hf = node.params.hard_fork_at(Height(tip));
    let fork_start = node
        .params
        .hard_forks
        .iter()
        .find(|(v, _)| *v == hf)
        .map_or(0, |(_, h)| *h);
    snap.dereg_allowed = tip >= fork_start.saturating_add(t.dereg_grace_blocks);
    let mut probe = BTreeSet::new();
    // A vote for height h can still go into a state change included at tip + 1 only while
    // tip + 1 < h + lifetime.
    let first = tip.saturating_sub(t.vote_lifetime.saturating_sub(2));
    let last = tip.saturating_sub(t.reorg_safety_buffer);
    // Workers are probed from the moment their quorum exists, so that fresh results are in by
    // the time the quorum's height is judged.
    let quorums: Vec<(u64, Quorum)> = state
        .quorums
        .range(Height(first)..)
        .map(|(h, q)| (h.0, q.clone()))
        .collect();
    for (h, q) in quorums {
        let Some(my_index) = q.validators.iter().position(|v| *v == me) else {
            continue;
        };
        for w in &q.workers {
            probe.insert(*w);
        }
        if h >= last || judged.contains(&h) {
            continue;
        }
        for (wi, pk) in q.workers.iter().enumerate() {
            let Some(info) = state.nodes.get(pk) else {
                continue;
            };
            if !info.can_be_voted_on(Height(h)) {
                continue;
            }
            let grace_from = if info.is_active() {
                block_time(&st, u64::try_from(info.active_since_height).unwrap_or(0))
            } else {
                0
            };
            let ip_window_start = now
                .saturating_sub(24 * 3600)
                .max(block_time(&st, info.last_ip_change_height.0).saturating_add(2 * 3600));
            snap.judge.push(Judged {
                height: h,
                my_index: u16::try_from(my_index).unwrap_or(u16::MAX),
                worker_index: u16::try_from(wi).unwrap_or(u16::MAX),
                pk: *pk,
                info: info.clone(),
                grace_from,
                ip_window_start,
            });
        }
    }
    snap.probe = probe.into_iter().collect();
    Some(snap)
}

/// Probes a node over the SN-only protocol and records whether it answered and its clock.
async fn probe(node: Node, pk: PublicKey, addr: Option<Multiaddr>) {
    let (Some(peer), Some(net)) = (peer_id_of(&pk), node.net.get()) else {
        return;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let height = node.lock().chain.tip().0 .0;
    if net
        .tx
        .send(NetCommand::SnRequest {
            peer,
            addr,
            request: Request::SnPing { height },
            reply: tx,
        })
        .is_err()
    {
        return;
    }
    let (answered, clock) = match tokio::time::timeout(PROBE_TIMEOUT, rx).await {
        Ok(Ok(Response::SnPong { now, .. })) => (true, Some(now)),
        // It answered, but does not see us as an active service node yet.
        Ok(Ok(Response::Refused(r))) if r == "not an active service node" => (true, None),
        Ok(Ok(other)) => {
            debug!(node = %pk, answer = ?other, "probe failed");
            (false, None)
        }
        Ok(Err(_)) | Err(_) => (false, None),
    };
    if !answered {
        debug!(node = %pk, "probe unanswered");
    }
    node.acct().book.probed(pk, unix_now(), answered, clock);
}

fn proof_addr(node: &Node, pk: &PublicKey) -> Option<Option<Multiaddr>> {
    let a = node.acct();
    let p = a.book.get(pk)?.proof.as_ref()?;
    Some(
        format!("/ip4/{}/tcp/{}", p.public_ip, p.quorumnet_port)
            .parse()
            .ok(),
    )
}

fn send_proof(node: &Node, endpoint: &Endpoint, now: u64) {
    let Some(keys) = node.lock().sn_keys.clone() else {
        return;
    };
    let proof = UptimeProof {
        pubkey: keys.primary,
        pubkey_ed25519: keys.ed25519,
        public_ip: endpoint.ip,
        storage_https_port: endpoint.storage_port,
        storage_omq_port: 0,
        quorumnet_port: endpoint.p2p_port,
        version: VERSION,
        storage_version: VERSION,
        lokinet_version: [0, 0, 0],
        timestamp: now,
    };
    let wire = proof.sign(&mut rand::rngs::OsRng, &keys.primary_secret, &keys.seed);
    let Some(net) = node.net.get() else {
        return;
    };
    if net
        .tx
        .send(NetCommand::Publish(PROOFS_TOPIC.into(), wire))
        .is_ok()
    {
        let mut a = node.acct();
        a.book.own_proof(&proof, now);
        a.last_proof_sent = now;
        a.counters.proofs_sent += 1;
        a.dirty = true;
        debug!("uptime proof sent");
    }
}

/// One round: maybe send our proof, probe the nodes we test, judge the heights that are due,
/// vote, and submit what is ready.
fn round(node: &Node, endpoint: Option<&Endpoint>, running: Duration) {
    let t = &node.params.sn;
    let now = unix_now();
    let judged = node.acct().judged.clone();
    let Some(snap) = snapshot(node, &judged, now) else {
        return;
    };
    // Our proof.
    let due = {
        let a = node.acct();
        a.last_proof_sent == 0
            || now
                >= a.last_proof_sent
                    + t.uptime_proof_frequency
                        .saturating_sub(t.uptime_proof_check_interval / 2)
    };
    if snap.registered
        && due
        && running.as_secs() >= t.uptime_proof_startup_delay
        && !node.faults.no_proofs
    {
        match endpoint {
            Some(e) => send_proof(node, e, now),
            None => warn!("no --service-node-public-ip: cannot send uptime proofs"),
        }
    }
    // Keep the book to registered nodes.
    {
        let st = node.lock();
        let nodes = &st.chain.ext().state().nodes;
        let mut a = node.acct();
        a.book.retain(|pk| nodes.contains_key(pk));
        a.probed.retain(|pk, _| nodes.contains_key(pk));
        let keep = snap
            .tip
            .saturating_sub(t.vote_lifetime + t.vote_verify_buffer);
        a.judged = a.judged.split_off(&keep);
        a.submitted.retain(|(h, _, _)| *h >= keep);
        a.votes.prune(snap.tip, t);
    }
    if !snap.active {
        return;
    }
    // Probes, each node at most every probe interval.
    let interval = (t.uptime_proof_frequency / 2).clamp(t.uptime_proof_check_interval, 300);
    for pk in snap.probe {
        let due = node
            .acct()
            .probed
            .get(&pk)
            .is_none_or(|last| now >= last + interval);
        if !due {
            continue;
        }
        // Only nodes whose address we know from a proof (or that we are connected to and
        // reach by id); a node without any proof fails its uptime check anyway.
        let Some(addr) = proof_addr(node, &pk) else {
            continue;
        };
        node.acct().probed.insert(pk, now);
        tokio::spawn(probe(node.clone(), pk, addr.clone()));
        tokio::spawn(crate::storage::peer_test::test(node.clone(), pk, addr));
    }
    // Votes, once this node has run long enough to have seen a full proof cycle.
    if running.as_secs() < t.uptime_proof_validity {
        return;
    }
    let Some(keys) = node.lock().sn_keys.clone() else {
        return;
    };
    let mut heights = BTreeSet::new();
    for j in &snap.judge {
        heights.insert(j.height);
        let results = {
            let a = node.acct();
            check_node(
                a.book.get(&j.pk),
                j.info.is_active(),
                j.grace_from,
                now,
                j.ip_window_start,
                t,
            )
        };
        let credit = j.info.decommission_credit(Height(snap.tip), t);
        let Some(state) = decide(
            &results,
            j.info.is_decommissioned(),
            credit,
            t,
            snap.dereg_allowed,
        ) else {
            continue;
        };
        let reasons = results.reasons();
        let vote = Vote::sign(
            &mut rand::rngs::OsRng,
            j.height,
            j.worker_index,
            state,
            reasons,
            j.my_index,
            &snap.me,
            &keys.primary_secret,
        );
        info!(
            node = %j.pk,
            voter = %snap.me,
            quorum_height = j.height,
            state = state.name(),
            reasons = ?sispop_testing::decide::reason::names(reasons),
            credit,
            "vote cast"
        );
        let quorum = node
            .lock()
            .chain
            .ext()
            .state()
            .quorum(Height(j.height))
            .cloned();
        {
            let mut a = node.acct();
            if let Err(e) = a.votes.add(vote, quorum.as_deref(), snap.tip, t) {
                warn!(error = %e, "own vote refused");
                continue;
            }
            a.counters.votes_cast += 1;
        }
        if let Some(net) = node.net.get() {
            let _ = net
                .tx
                .send(NetCommand::Publish(VOTES_TOPIC.into(), vote.encode()));
        }
    }
    // Heights with no worker to judge count as judged too.
    let last = snap.tip.saturating_sub(t.reorg_safety_buffer);
    {
        let st = node.lock();
        let state = st.chain.ext().state();
        for (h, q) in state
            .quorums
            .range(Height(snap.tip.saturating_sub(t.vote_lifetime.saturating_sub(2)))..Height(last))
        {
            if q.validators.contains(&snap.me) {
                heights.insert(h.0);
            }
        }
    }
    node.acct().judged.extend(heights);
    submit_ready(node);
}

/// Runs the accountability service until the daemon stops.
pub async fn run(node: Node, endpoint: Option<Endpoint>) {
    let t = node.params.sn;
    let mut stop = node.shutdown.subscribe();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(t.uptime_proof_check_interval.max(1)));
    let mut save = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let n = node.clone();
                let running = started.elapsed();
                // Signing, RocksDB reads and vote checks: off the async executor.
                let _ = tokio::task::spawn_blocking(move || {
                    let handle = tokio::runtime::Handle::current();
                    let _guard = handle.enter();
                    round(&n, endpoint.as_ref(), running)
                }).await;
            }
            _ = save.tick() => {
                let n = node.clone();
                let _ = tokio::task::spawn_blocking(move || n.acct().save()).await;
            }
        }
    }
    node.acct().save();
}
