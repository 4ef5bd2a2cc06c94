//! What this node has observed of other service nodes: their last accepted uptime proof, the IPs
//! they used, and the results of our reachability and time probes. None of it is consensus:
//! each validator judges from its own observations (reference `service-nodes.md` §4.7, §5.4).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use sispop_chain::params::ServiceNodeTimings;
use sispop_chain::PublicKey;

use crate::proof::{ProofError, SignedProof, UptimeProof};

/// Entries kept in a participation ring buffer.
pub const PARTICIPATION_ENTRIES: usize = 8;
/// A node fails a participation check with more than this many failures among the entries.
pub const MAX_MISSED: usize = 4;
/// Largest clock difference (seconds) that counts as in sync.
pub const THRESHOLD_SECONDS_OUT_OF_SYNC: u64 = 30;

/// Reachability of a node over a transport, as upstream's `reachable_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// Start of the current run of failures (0: reachable, or never tested).
    pub first_unreachable: u64,
    /// Last failure (0: never).
    pub last_unreachable: u64,
    /// Last success (0: never).
    pub last_reachable: u64,
}

impl Reachability {
    /// Records one test result at `now`.
    pub fn record(&mut self, reachable: bool, now: u64) {
        if reachable {
            self.last_reachable = now;
            self.first_unreachable = 0;
        } else {
            if self.first_unreachable == 0 {
                self.first_unreachable = now;
            }
            self.last_unreachable = now;
        }
    }

    /// Unreachable without a break for longer than `threshold` seconds, with the latest failure
    /// at most `max_failure_age` seconds old.
    pub fn unreachable_for(&self, threshold: u64, max_failure_age: u64, now: u64) -> bool {
        self.first_unreachable != 0
            && now.saturating_sub(self.first_unreachable) > threshold
            && now.saturating_sub(self.last_unreachable) <= max_failure_age
    }
}

/// A ring of the last [`PARTICIPATION_ENTRIES`] pass/fail results, each with the time it was
/// recorded, so that old results (from before a node's recommission, or from a stretch when
/// this node was not probing) do not count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participation {
    /// (unix time, passed), oldest first.
    pub entries: Vec<(u64, bool)>,
}

impl Participation {
    /// Adds a result, dropping the oldest beyond the ring size.
    pub fn push(&mut self, now: u64, ok: bool) {
        if self.entries.len() >= PARTICIPATION_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push((now, ok));
    }
    /// Fails when all [`PARTICIPATION_ENTRIES`] entries were recorded at or after `since` and
    /// more than [`MAX_MISSED`] of them failed.
    pub fn failing(&self, since: u64) -> bool {
        let recent: Vec<bool> = self
            .entries
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, ok)| *ok)
            .collect();
        recent.len() >= PARTICIPATION_ENTRIES
            && recent.iter().filter(|ok| !**ok).count() > MAX_MISSED
    }
}

/// Everything known about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRecord {
    /// The last accepted proof.
    pub proof: Option<UptimeProof>,
    /// Our clock when we accepted it (0: never).
    pub received: u64,
    /// The last two distinct IPs seen in accepted proofs, with when each was last seen.
    pub ips: [(Option<Ipv4Addr>, u64); 2],
    /// Reachability over the node network (an SN-only request over libp2p).
    pub quorumnet: Reachability,
    /// Whether it answered our timestamp probes.
    pub timestamp_participation: Participation,
    /// Whether its clock was within [`THRESHOLD_SECONDS_OUT_OF_SYNC`] of ours.
    pub timesync: Participation,
    /// Whether it held the messages its swarm holds, by our storage tests (conclusive ones
    /// only).
    #[serde(default)]
    pub storage: Participation,
}

impl ProofRecord {
    fn note_ip(&mut self, ip: Ipv4Addr, now: u64) {
        if let Some(slot) = self.ips.iter_mut().find(|(i, _)| *i == Some(ip)) {
            slot.1 = now;
        } else {
            // Replace the older slot.
            let oldest = usize::from(self.ips[1].1 < self.ips[0].1);
            self.ips[oldest] = (Some(ip), now);
        }
    }

    /// Whether two distinct IPs were both seen after `since` (an IP change to penalise).
    pub fn multiple_ips_since(&self, since: u64) -> bool {
        self.ips.iter().all(|(ip, t)| ip.is_some() && *t > since)
    }
}

/// The observations of every registered node, keyed by primary key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProofBook {
    records: HashMap<PublicKey, ProofRecord>,
}

impl ProofBook {
    /// An empty book.
    pub fn new() -> ProofBook {
        ProofBook::default()
    }

    /// Applies the receiving rules of §5.4 to a verified proof and stores it. `registered` says
    /// whether the key belongs to a registered node (any state).
    pub fn accept(
        &mut self,
        signed: &SignedProof,
        now: u64,
        timings: &ServiceNodeTimings,
        registered: bool,
    ) -> Result<(), ProofError> {
        signed.check_time_and_address(now, timings)?;
        let pk = signed.proof.pubkey;
        if !registered {
            return Err(ProofError::Unregistered(pk));
        }
        let min = timings.uptime_proof_frequency / 2;
        if let Some(r) = self.records.get(&pk) {
            let since = now.saturating_sub(r.received);
            if r.received != 0 && since < min {
                return Err(ProofError::TooSoon {
                    node: pk,
                    since,
                    min,
                });
            }
        }
        let r = self.records.entry(pk).or_default();
        r.note_ip(signed.proof.public_ip, now);
        r.proof = Some(signed.proof.clone());
        r.received = now;
        Ok(())
    }

    /// Stores our own proof as sent (gossip does not echo it back to us).
    pub fn own_proof(&mut self, proof: &UptimeProof, now: u64) {
        let r = self.records.entry(proof.pubkey).or_default();
        r.note_ip(proof.public_ip, now);
        r.proof = Some(proof.clone());
        r.received = now;
    }

    /// The record of a node.
    pub fn get(&self, pk: &PublicKey) -> Option<&ProofRecord> {
        self.records.get(pk)
    }

    /// Records a probe of a registered node: whether it answered at all, and its clock if the
    /// answer carried one (a refusal proves it is up, but says nothing of its clock).
    pub fn probed(&mut self, pk: PublicKey, now: u64, answered: bool, clock: Option<u64>) {
        let r = self.records.entry(pk).or_default();
        r.quorumnet.record(answered, now);
        r.timestamp_participation.push(now, answered);
        if let Some(t) = clock {
            r.timesync
                .push(now, t.abs_diff(now) <= THRESHOLD_SECONDS_OUT_OF_SYNC);
        }
    }

    /// Records a conclusive storage test of a registered node.
    pub fn storage_tested(&mut self, pk: PublicKey, now: u64, passed: bool) {
        self.records
            .entry(pk)
            .or_default()
            .storage
            .push(now, passed);
    }

    /// Forgets nodes that are no longer registered (keeps the book bounded by the SN list).
    pub fn retain(&mut self, mut registered: impl FnMut(&PublicKey) -> bool) {
        self.records.retain(|pk, _| registered(pk));
    }

    /// Number of nodes with a record.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::tests::{keys, proof};
    use sispop_chain::{Network, NetworkParams};

    #[test]
    fn accept_rules() {
        let t = &NetworkParams::get(Network::Mainnet).sn;
        let (seed, x, pk) = keys(9);
        let signed = |p: UptimeProof| {
            SignedProof::decode_and_verify(&p.sign(&mut rand::rngs::OsRng, &x, &seed))
                .expect("test value")
        };
        let mut book = ProofBook::new();
        let now = 1_000_000;
        assert_eq!(
            book.accept(&signed(proof(pk, now)), now, t, false),
            Err(ProofError::Unregistered(pk))
        );
        assert!(book.is_empty(), "nothing stored for a refused proof");
        book.accept(&signed(proof(pk, now)), now, t, true)
            .expect("test value");
        assert_eq!(book.get(&pk).expect("test value").received, now);
        // Within half the frequency: refused, the record unchanged.
        let later = now + t.uptime_proof_frequency / 2 - 1;
        assert!(matches!(
            book.accept(&signed(proof(pk, later)), later, t, true),
            Err(ProofError::TooSoon { .. })
        ));
        assert_eq!(book.get(&pk).expect("test value").received, now);
        let later = now + t.uptime_proof_frequency / 2;
        let mut moved = proof(pk, later);
        moved.public_ip = Ipv4Addr::new(5, 6, 7, 8);
        book.accept(&signed(moved), later, t, true)
            .expect("test value");
        let r = book.get(&pk).expect("test value");
        assert!(r.multiple_ips_since(now - 1));
        assert!(!r.multiple_ips_since(now));
        book.retain(|_| false);
        assert!(book.is_empty());
    }

    #[test]
    fn reachability_and_participation() {
        let mut r = Reachability::default();
        assert!(!r.unreachable_for(20, 60, 100));
        r.record(false, 100);
        assert!(!r.unreachable_for(20, 60, 120), "not yet longer than 20 s");
        r.record(false, 121);
        assert!(r.unreachable_for(20, 60, 121));
        assert!(!r.unreachable_for(20, 60, 182), "last failure too old");
        r.record(true, 130);
        assert!(!r.unreachable_for(20, 60, 131), "a success resets the run");

        let mut p = Participation::default();
        for t in 0..5 {
            p.push(100 + t, false);
        }
        assert!(!p.failing(0), "fewer than 8 entries never fail");
        for t in 5..8 {
            p.push(100 + t, true);
        }
        assert!(p.failing(0), "5 of 8 failed");
        assert!(p.failing(100));
        assert!(!p.failing(101), "entries before `since` do not count");
        p.push(108, true);
        assert!(!p.failing(0), "4 of 8 failed");
        assert_eq!(p.entries.len(), PARTICIPATION_ENTRIES);
    }
}
