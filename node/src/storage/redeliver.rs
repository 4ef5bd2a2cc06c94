//! Writes a swarm member missed, delivered again.
//!
//! A write forwarded to the other members of the swarm ([`crate::storage::sync::forward`]) or a
//! message passed on to them after a hand-over can miss a member that is busy, briefly
//! unreachable, or paused: the member would lack the message until the swarm's membership
//! next changes. Upstream forgets such a write; here the member that accepted it keeps a note
//! and tries again until the member takes it:
//!
//! - a missed **message** is noted by its hash and, when due, read from our own store and
//!   pushed (tag 3, as hand-overs are), so the member gets the message as it is here now (with
//!   any later expiry change, or not at all once deleted or expired). It is tried for
//!   [`KEEP_MESSAGES`];
//! - any other missed **write** (delete, expiry change, subaccount revocation) is sent again as
//!   the client signed it (tag 1), within the client's signature window: for
//!   [`KEEP_REQUESTS`].
//!
//! Each member's notes are one queue, delivered in the order they were made. While a member has
//! notes, later writes for it join the queue instead of going to it directly, so this node's
//! writes reach it in the order they were accepted here (and a member that is down costs a
//! client no wait for its answer). A member that answers is done with (its answer stands, as
//! the first one would have); one that fails again is tried later, 2 s after the first miss
//! and then twice as long each time up to 30 s. A member that leaves our swarm is forgotten:
//! when it comes back it pulls every message it lacks ([`crate::storage::sync`]).
//!
//! Notes are bounded: [`MAX_NOTES`] over all members (those being delivered included), at most
//! [`MAX_MEMBER_NOTES`] for one member, [`MAX_REQUEST_BYTES`] of requests. When all are taken,
//! the member with the most gives up its oldest; past that a miss is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sispop_chain::PublicKey;
use sispop_storage::store::{message_to_json, wire_size, Message};
use tracing::{debug, info, warn};

use crate::node::Node;
use crate::storage::server::{serving, Storage};
use crate::storage::sync::{ask, peers, FORWARD, PAGE, PUSH, PUSH_PAGE_BYTES};

/// How long a missed message is tried.
pub const KEEP_MESSAGES: Duration = Duration::from_secs(10 * 60);
/// How long another missed write is tried (within the 60 s a client's signature is good for).
pub const KEEP_REQUESTS: Duration = Duration::from_secs(50);
/// Most notes kept, over all members.
pub const MAX_NOTES: usize = 200_000;
/// Most notes kept for one member.
pub const MAX_MEMBER_NOTES: usize = 50_000;
/// Most bytes of missed requests kept, over all members.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Most notes one delivery round sends a member (the rest wait for the next round).
const ROUND_NOTES: usize = 20 * PAGE;
/// The first retry.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between tries.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often notes are looked at.
const TICK: Duration = Duration::from_secs(1);

/// A write a member missed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A message (by hash) that is in our store.
    Message(String),
    /// A client's write, as it was forwarded (the JSON body, without the tag).
    Request(Vec<u8>),
}

impl Write {
    fn bytes(&self) -> usize {
        match self {
            Write::Request(b) => b.len(),
            Write::Message(_) => 0,
        }
    }

    /// Whether it is no longer worth sending at `now` (noted at `at`).
    fn stale(&self, at: Instant, now: Instant) -> bool {
        let keep = match self {
            Write::Message(_) => KEEP_MESSAGES,
            Write::Request(_) => KEEP_REQUESTS,
        };
        now.saturating_duration_since(at) >= keep
    }
}

/// A note: when the write was missed, and the write.
pub type Note = (Instant, Write);

#[derive(Default)]
struct Queue {
    notes: VecDeque<Note>,
    /// Request bytes in `notes`.
    bytes: usize,
    /// Notes taken out for a delivery under way, and their request bytes.
    in_flight: usize,
    in_flight_bytes: usize,
    /// When to try next.
    due: Option<Instant>,
    /// Failed tries in a row.
    failures: u32,
}

impl Queue {
    fn held(&self) -> usize {
        self.notes.len() + self.in_flight
    }

    fn busy(&self) -> bool {
        self.in_flight > 0
    }
}

/// The notes: what each member missed (sans-IO: time is passed in).
#[derive(Default)]
pub struct Missed {
    queues: HashMap<PublicKey, Queue>,
    /// Notes held, those being delivered included.
    notes: usize,
    /// Request bytes held, those being delivered included.
    request_bytes: usize,
    /// Misses dropped because the notes were full, since start.
    pub dropped: u64,
}

impl Missed {
    /// Notes that `member` missed `write`; false when the notes are full and it is dropped.
    pub fn add(&mut self, member: PublicKey, write: Write, now: Instant) -> bool {
        let bytes = write.bytes();
        let held = self.queues.get(&member).map_or(0, Queue::held);
        if held >= MAX_MEMBER_NOTES
            || self.request_bytes.saturating_add(bytes) > MAX_REQUEST_BYTES
            || (self.notes >= MAX_NOTES && !self.evict_for(held))
        {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        let q = self.queues.entry(member).or_default();
        q.notes.push_back((now, write));
        q.bytes += bytes;
        q.due.get_or_insert(now + FIRST_RETRY);
        self.notes += 1;
        self.request_bytes += bytes;
        true
    }

    /// Makes room by dropping the oldest waiting note of the member holding the most, if it
    /// holds more than `held` + 1 (so no member is squeezed out by a smaller one).
    fn evict_for(&mut self, held: usize) -> bool {
        let Some(q) = self
            .queues
            .values_mut()
            .filter(|q| !q.notes.is_empty())
            .max_by_key(|q| q.held())
        else {
            return false;
        };
        if q.held() <= held + 1 {
            return false;
        }
        if let Some((_, w)) = q.notes.pop_front() {
            q.bytes -= w.bytes();
            self.notes -= 1;
            self.request_bytes -= w.bytes();
            self.dropped = self.dropped.saturating_add(1);
        }
        true
    }

    /// Notes held, those being delivered included.
    pub fn len(&self) -> usize {
        self.notes
    }

    /// Whether no note is held.
    pub fn is_empty(&self) -> bool {
        self.notes == 0
    }

    /// Whether writes for `member` wait behind earlier ones (it has notes, or a delivery to it
    /// is under way): a new write joins them instead of going to it directly.
    pub fn pending(&self, member: &PublicKey) -> bool {
        self.queues.get(member).is_some_and(|q| q.held() > 0)
    }

    /// Takes out, for each member still in our swarm (`member`) that is due at `now` and has
    /// no delivery under way, its oldest notes (at most `max`), to be delivered and then
    /// [`Missed::finish`]ed. Notes past their time are dropped, and so are the waiting notes
    /// of members no longer ours.
    pub fn take_due(
        &mut self,
        now: Instant,
        member: impl Fn(&PublicKey) -> bool,
        max: usize,
    ) -> Vec<(PublicKey, Vec<Note>)> {
        let mut out = Vec::new();
        let (mut dropped, mut dropped_bytes) = (0, 0);
        for (pk, q) in &mut self.queues {
            let ours = member(pk);
            if !ours || q.busy() || q.due.is_some_and(|d| d > now) {
                if !ours {
                    dropped += q.notes.len();
                    dropped_bytes += q.bytes;
                    q.notes.clear();
                    q.bytes = 0;
                }
                continue;
            }
            let mut taken = Vec::new();
            while taken.len() < max {
                let Some((at, w)) = q.notes.pop_front() else {
                    break;
                };
                q.bytes -= w.bytes();
                if w.stale(at, now) {
                    dropped += 1;
                    dropped_bytes += w.bytes();
                } else {
                    q.in_flight_bytes += w.bytes();
                    taken.push((at, w));
                }
            }
            q.due = None;
            if !taken.is_empty() {
                q.in_flight = taken.len();
                out.push((*pk, taken));
            }
        }
        self.notes -= dropped;
        self.request_bytes -= dropped_bytes;
        self.queues.retain(|_, q| q.held() > 0);
        out
    }

    /// Ends a delivery to `member`: `left` are the notes it did not take, put back first;
    /// `failed`: it stopped on a failure (tried again after a wait that grows), else what is
    /// left is due at once.
    pub fn finish(&mut self, member: PublicKey, left: Vec<Note>, failed: bool, now: Instant) {
        let Some(q) = self.queues.get_mut(&member) else {
            return;
        };
        self.notes -= q.in_flight;
        self.request_bytes -= q.in_flight_bytes;
        q.in_flight = 0;
        q.in_flight_bytes = 0;
        for (at, w) in left.into_iter().rev() {
            q.bytes += w.bytes();
            self.notes += 1;
            self.request_bytes += w.bytes();
            q.notes.push_front((at, w));
        }
        if failed {
            q.failures = q.failures.saturating_add(1);
            q.due = Some(now + retry_wait(q.failures));
        } else {
            q.failures = 0;
            q.due = Some(now);
        }
        if q.held() == 0 {
            self.queues.remove(&member);
        }
    }
}

/// The wait after `failures` failed tries in a row: 2 s doubled each time, at most 30 s.
fn retry_wait(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << failures.min(5))
        .min(MAX_RETRY)
}

/// Whether a member's answer to a write means it did not take it (to try again): a server
/// error, busy, or a view of the swarms behind ours (421).
pub fn missed_status(status: u16) -> bool {
    status >= 500 || status == 421
}

/// Whether writes for `member` wait behind ones it missed (see [`Missed::pending`]).
pub fn pending(storage: &Storage, member: &PublicKey) -> bool {
    storage
        .missed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pending(member)
}

/// Notes that `member` missed `write`.
pub fn note(storage: &Storage, member: PublicKey, write: Write) {
    let mut missed = storage.missed.lock().unwrap_or_else(|p| p.into_inner());
    if !missed.add(member, write, Instant::now()) && missed.dropped.is_power_of_two() {
        warn!(
            dropped = missed.dropped,
            "too many writes missed by swarm members; dropping"
        );
    }
}

/// Delivers missed writes until the daemon stops.
pub async fn run(node: Node, storage: Arc<Storage>) {
    let mut stop = node.shutdown.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        if storage
            .missed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            continue;
        }
        let Ok(swarm) = serving(&node) else {
            continue;
        };
        let members = peers(&node, swarm);
        let due = storage
            .missed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_due(
                Instant::now(),
                |pk| members.iter().any(|(m, _)| m == pk),
                ROUND_NOTES,
            );
        // One task per member: a slow one holds up no other.
        for (pk, notes) in due {
            let addr = members
                .iter()
                .find(|(m, _)| *m == pk)
                .and_then(|(_, a)| a.clone());
            let flight = Flight {
                storage: storage.clone(),
                member: pk,
                ended: false,
            };
            tokio::spawn(deliver(node.clone(), flight, addr, notes));
        }
    }
}

/// A delivery under way; one that ends without [`Flight::end`] (a panic) drops its notes.
struct Flight {
    storage: Arc<Storage>,
    member: PublicKey,
    ended: bool,
}

impl Flight {
    fn end(mut self, left: Vec<Note>, failed: bool) {
        self.ended = true;
        self.storage
            .missed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(self.member, left, failed, Instant::now());
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.ended {
            self.storage
                .missed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(self.member, Vec::new(), true, Instant::now());
        }
    }
}

/// What a PUSH answer says: taken (with how many were new there), or not.
enum Pushed {
    Taken(u64),
    /// Refused for good (a 4xx other than [`missed_status`]): not sent again.
    Refused(u16),
    Failed,
}

fn pushed(answer: Result<Vec<u8>, String>) -> Pushed {
    let r = match answer {
        Ok(r) if r.len() >= 2 => r,
        _ => return Pushed::Failed,
    };
    match u16::from_be_bytes([r[0], r[1]]) {
        // `{"stored": n}`: anything long is not that.
        200 if r.len() > crate::node::workers::INLINE_JSON => Pushed::Taken(0),
        200 => Pushed::Taken(
            serde_json::from_slice::<Value>(&r[2..])
                .map_or(0, |v| v["stored"].as_u64().unwrap_or(0)),
        ),
        s if missed_status(s) => Pushed::Failed,
        s => Pushed::Refused(s),
    }
}

/// The messages of a run of message notes that are still here and unexpired, within a page:
/// (messages, notes used, whether reading failed after them).
fn read_page(storage: &Storage, hashes: &[String]) -> (Vec<Message>, usize, bool) {
    let now = crate::storage::server::now_ms();
    let (mut out, mut bytes, mut used) = (Vec::new(), 0u64, 0);
    for h in hashes {
        match storage.store.get(h) {
            Ok(Some(m)) if m.expiry > now => {
                bytes = bytes.saturating_add(wire_size(&m));
                if !out.is_empty() && bytes > PUSH_PAGE_BYTES {
                    break;
                }
                out.push(m);
            }
            // Deleted or expired since: nothing to deliver.
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "reading a missed message");
                return (out, used, true);
            }
        }
        used += 1;
    }
    (out, used, false)
}

/// Sends one member its notes, in order, and ends the flight with what it did not take.
async fn deliver(node: Node, flight: Flight, addr: Option<libp2p::Multiaddr>, notes: Vec<Note>) {
    let pk = flight.member;
    let mut notes = VecDeque::from(notes);
    let (mut sent, mut new) = (0usize, 0u64);
    let mut failed = false;
    while let Some((at, first)) = notes.front() {
        match first {
            Write::Request(_) if first.stale(*at, Instant::now()) => {
                notes.pop_front();
            }
            Write::Request(body) => {
                let mut data = vec![FORWARD];
                data.extend_from_slice(body);
                match ask(&node, &pk, addr.clone(), data).await {
                    Ok(r) if r.len() >= 2 && !missed_status(u16::from_be_bytes([r[0], r[1]])) => {
                        notes.pop_front();
                        sent += 1;
                    }
                    other => {
                        debug!(member = %pk, answer = ?other.map(|r| r.get(..2).map(<[u8]>::to_vec)),
                               "missed write not taken");
                        failed = true;
                        break;
                    }
                }
            }
            Write::Message(_) => {
                let hashes: Vec<String> = notes
                    .iter()
                    .map_while(|(_, w)| match w {
                        Write::Message(h) => Some(h.clone()),
                        Write::Request(_) => None,
                    })
                    .take(PAGE)
                    .collect();
                let st = flight.storage.clone();
                let Ok((msgs, used, read_failed)) =
                    tokio::task::spawn_blocking(move || read_page(&st, &hashes)).await
                else {
                    failed = true;
                    break;
                };
                if !msgs.is_empty() {
                    let mut data = vec![PUSH];
                    data.extend_from_slice(
                        json!({
                            "messages": msgs.iter().map(message_to_json).collect::<Vec<_>>(),
                            "only_here": true,
                        })
                        .to_string()
                        .as_bytes(),
                    );
                    match pushed(ask(&node, &pk, addr.clone(), data).await) {
                        Pushed::Taken(n) => {
                            sent += msgs.len();
                            new += n;
                        }
                        Pushed::Refused(status) => {
                            debug!(member = %pk, status, "missed messages refused");
                        }
                        Pushed::Failed => {
                            failed = true;
                            break;
                        }
                    }
                }
                notes.drain(..used.min(notes.len()));
                if read_failed {
                    failed = true;
                    break;
                }
            }
        }
    }
    if sent > 0 {
        info!(member = %pk, writes = sent, new_messages = new, "missed writes delivered");
    }
    flight.end(notes.into(), failed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    fn msg(h: &str) -> Write {
        Write::Message(h.into())
    }

    fn all(_: &PublicKey) -> bool {
        true
    }

    fn hashes(notes: &[Note]) -> Vec<String> {
        notes
            .iter()
            .map(|(_, w)| match w {
                Write::Message(h) => h.clone(),
                Write::Request(b) => String::from_utf8_lossy(b).into_owned(),
            })
            .collect()
    }

    #[test]
    fn notes_are_due_after_the_first_retry_and_back_off_on_failure() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        assert!(m.add(pk(1), msg("h1"), t0));
        assert!(m.add(pk(1), Write::Request(b"r1".to_vec()), t0));
        assert!(m.pending(&pk(1)));
        assert!(!m.pending(&pk(2)));
        // Not yet due.
        assert!(m.take_due(t0 + Duration::from_secs(1), all, 100).is_empty());
        let (who, notes) = m.take_due(t0 + FIRST_RETRY, all, 100).pop().expect("due");
        assert_eq!(hashes(&notes), ["h1", "r1"], "in the order noted");
        // Being delivered: still held, still pending.
        assert_eq!(m.len(), 2);
        assert!(m.pending(&pk(1)));
        // It failed: back, and not due again for 4 s.
        let t1 = t0 + FIRST_RETRY;
        m.finish(who, notes, true, t1);
        assert_eq!(m.len(), 2);
        assert!(m.take_due(t1 + Duration::from_secs(3), all, 100).is_empty());
        let (who, notes) = m
            .take_due(t1 + Duration::from_secs(4), all, 100)
            .pop()
            .expect("due");
        assert_eq!(notes.len(), 2);
        m.finish(who, Vec::new(), false, t1 + Duration::from_secs(4));
        assert!(m.is_empty());
        assert!(!m.pending(&pk(1)));
        assert!(m.queues.is_empty());
    }

    #[test]
    fn waits_grow_to_at_most_thirty_seconds() {
        let waits: Vec<u64> = (1..=8).map(|f| retry_wait(f).as_secs()).collect();
        assert_eq!(waits, [4, 8, 16, 30, 30, 30, 30, 30]);
    }

    #[test]
    fn one_delivery_at_a_time_per_member_and_the_rest_at_once_after() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        for h in ["a", "b", "c"] {
            m.add(pk(1), msg(h), t0);
        }
        // A round takes at most `max` notes.
        let (_, notes) = m.take_due(t0 + FIRST_RETRY, all, 2).pop().expect("due");
        assert_eq!(hashes(&notes), ["a", "b"]);
        // Noted while the delivery is under way: waits for it to end.
        m.add(pk(1), msg("d"), t0 + FIRST_RETRY);
        assert_eq!(m.len(), 4);
        assert!(m.take_due(t0 + MAX_RETRY * 4, all, 100).is_empty());
        // `b` was not taken, without a failure: it goes first, and at once.
        let t1 = t0 + MAX_RETRY * 4;
        m.finish(pk(1), notes[1..].to_vec(), false, t1);
        assert_eq!(m.len(), 3);
        let (_, notes) = m.take_due(t1, all, 100).pop().expect("due");
        assert_eq!(hashes(&notes), ["b", "c", "d"]);
        m.finish(pk(1), Vec::new(), false, t1);
        assert!(m.queues.is_empty() && m.is_empty());
    }

    #[test]
    fn old_notes_and_departed_members_are_dropped() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        m.add(pk(1), msg("m"), t0);
        m.add(pk(1), Write::Request(vec![b'r'; 10]), t0);
        m.add(pk(2), msg("n"), t0);
        // After 60 s the request is past its signature window; the message is still tried.
        // Member 2 left the swarm: forgotten.
        let due = m.take_due(t0 + Duration::from_secs(60), |p| *p == pk(1), 100);
        assert_eq!(due, vec![(pk(1), vec![(t0, msg("m"))])]);
        assert!(!m.queues.contains_key(&pk(2)));
        assert_eq!((m.len(), m.request_bytes), (1, 0));
        let (who, left) = due.into_iter().next().expect("due");
        m.finish(who, left, true, t0 + Duration::from_secs(60));
        assert!(m.take_due(t0 + KEEP_MESSAGES, all, 100).is_empty());
        assert!(m.is_empty() && m.queues.is_empty());
    }

    #[test]
    fn a_member_that_leaves_during_a_delivery_keeps_only_what_is_in_flight() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        m.add(pk(1), msg("a"), t0);
        let (_, notes) = m.take_due(t0 + FIRST_RETRY, all, 100).pop().expect("due");
        m.add(pk(1), msg("b"), t0 + FIRST_RETRY);
        assert!(m.take_due(t0 + FIRST_RETRY, |_| false, 100).is_empty());
        assert_eq!(m.len(), 1, "b dropped, a still in flight");
        m.finish(pk(1), notes, true, t0 + FIRST_RETRY);
        assert_eq!(m.len(), 1);
        assert!(m.take_due(t0 + MAX_RETRY, |_| false, 100).is_empty());
        assert!(m.is_empty() && m.queues.is_empty());
    }

    #[test]
    fn notes_are_bounded_in_flight_or_not() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        for i in 0..MAX_MEMBER_NOTES {
            assert!(m.add(pk(1), msg(&i.to_string()), t0));
        }
        assert!(!m.add(pk(1), msg("more"), t0));
        // Taken out for delivery, they still count.
        let (_, notes) = m
            .take_due(t0 + FIRST_RETRY, all, MAX_MEMBER_NOTES)
            .pop()
            .expect("due");
        assert!(!m.add(pk(1), msg("more"), t0));
        m.finish(pk(1), notes, true, t0 + FIRST_RETRY);
        assert_eq!(m.len(), MAX_MEMBER_NOTES);
        assert!(m.add(pk(3), Write::Request(vec![0; MAX_REQUEST_BYTES / 2]), t0));
        assert!(!m.add(
            pk(3),
            Write::Request(vec![0; MAX_REQUEST_BYTES / 2 + 1]),
            t0
        ));
        assert_eq!(m.dropped, 3);
        assert_eq!(m.len(), MAX_MEMBER_NOTES + 1);
    }

    #[test]
    fn when_full_the_member_with_the_most_gives_up_its_oldest() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        // Four members at their limit fill every note; member 1's oldest is a request.
        assert!(m.add(pk(1), Write::Request(vec![0; 100]), t0));
        for member in 1..=4u8 {
            let start = usize::from(member == 1);
            for i in start..MAX_MEMBER_NOTES {
                assert!(m.add(pk(member), msg(&format!("{member}-{i}")), t0));
            }
        }
        assert_eq!((m.len(), m.request_bytes), (MAX_NOTES, 100));
        // Member 2 also at its limit: its own miss is dropped, nothing evicted for it.
        assert!(!m.add(pk(2), msg("own"), t0));
        assert_eq!((m.len(), m.dropped), (MAX_NOTES, 1));
        // A fifth member's miss is kept; one of the full members loses its oldest.
        assert!(m.add(pk(5), msg("new"), t0));
        assert_eq!((m.len(), m.dropped), (MAX_NOTES, 2));
        let firsts: Vec<bool> = (1..=4u8)
            .map(|p| m.queues[&pk(p)].notes.len() == MAX_MEMBER_NOTES - 1)
            .collect();
        assert_eq!(firsts.iter().filter(|lost| **lost).count(), 1);
        // If it was member 1, the request's bytes went with it.
        let lost_request = m.queues[&pk(1)].notes.len() == MAX_MEMBER_NOTES - 1;
        assert_eq!(m.request_bytes, if lost_request { 0 } else { 100 });
        assert_eq!(m.queues[&pk(1)].bytes, m.request_bytes);
    }

    #[test]
    fn a_delivery_that_went_through_ends_the_backoff() {
        let t0 = Instant::now();
        let mut m = Missed::default();
        m.add(pk(1), msg("a"), t0);
        let (_, notes) = m.take_due(t0 + FIRST_RETRY, all, 100).pop().expect("due");
        m.finish(pk(1), notes, true, t0 + FIRST_RETRY);
        let t1 = t0 + FIRST_RETRY + retry_wait(1);
        let (_, notes) = m.take_due(t1, all, 100).pop().expect("due");
        m.finish(pk(1), notes, true, t1);
        let t2 = t1 + retry_wait(2);
        let (_, notes) = m.take_due(t2, all, 100).pop().expect("due");
        // Half taken (a round cut short, not a failure): the rest is due at once.
        m.finish(pk(1), notes, false, t2);
        assert_eq!(m.take_due(t2, all, 100).len(), 1);
        // And a failure after that waits the first wait again, not a longer one.
        m.finish(pk(1), vec![(t0, msg("a"))], true, t2);
        assert!(m
            .take_due(t2 + retry_wait(1) - Duration::from_millis(1), all, 100)
            .is_empty());
        assert_eq!(m.take_due(t2 + retry_wait(1), all, 100).len(), 1);
    }
}
