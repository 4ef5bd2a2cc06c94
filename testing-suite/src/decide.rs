//! The obligation checks a validator runs on a worker and the vote they lead to (reference
//! `service-nodes.md` §4.7–§4.8).

use serde::{Deserialize, Serialize};
use sispop_chain::params::ServiceNodeTimings;

use crate::record::ProofRecord;

/// A service node state a quorum can vote a node into (the 0x78 `state` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NewState {
    /// Removed from the list, stakes blacklisted.
    Deregister = 0,
    /// Temporarily out of service.
    Decommission = 1,
    /// Back in service.
    Recommission = 2,
    /// Sent to the back of the reward queue for changing IP.
    IpChangePenalty = 3,
}

impl NewState {
    /// From the wire value.
    pub fn from_u64(v: u64) -> Option<NewState> {
        Some(match v {
            0 => NewState::Deregister,
            1 => NewState::Decommission,
            2 => NewState::Recommission,
            3 => NewState::IpChangePenalty,
            _ => return None,
        })
    }
    /// The RPC/log name.
    pub fn name(self) -> &'static str {
        match self {
            NewState::Deregister => "deregister",
            NewState::Decommission => "decommission",
            NewState::Recommission => "recommission",
            NewState::IpChangePenalty => "ip_change_penalty",
        }
    }
}

/// Reason bits of a failed check (stored in `last_decommission_reason_consensus_*`).
pub mod reason {
    /// No recent uptime proof.
    pub const UPTIME: u16 = 0x01;
    /// Missed checkpoint votes (no checkpoints on Sispop's chain: never set).
    pub const CHECKPOINTS: u16 = 0x02;
    /// Missed pulse (no pulse on Sispop's chain: never set).
    pub const PULSE: u16 = 0x04;
    /// Storage server unreachable.
    pub const STORAGE: u16 = 0x08;
    /// Did not answer our timestamp requests over the node network.
    pub const TIMECHECK: u16 = 0x10;
    /// Clock out of sync with ours.
    pub const TIMESYNC: u16 = 0x20;
    /// Lokinet unreachable (no lokinet on Sispop: never set).
    pub const LOKINET: u16 = 0x40;

    /// The RPC names of the bits set in `bits`.
    pub fn names(bits: u16) -> Vec<&'static str> {
        [
            (UPTIME, "uptime"),
            (CHECKPOINTS, "checkpoints"),
            (PULSE, "pulse"),
            (STORAGE, "storage"),
            (TIMECHECK, "timecheck"),
            (TIMESYNC, "timesync"),
            (LOKINET, "lokinet"),
        ]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
    }
}

/// The result of checking one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TestResults {
    /// Its last proof (or its activation) is recent enough.
    pub uptime_proved: bool,
    /// Reachable over the node network (not unreachable for too long).
    pub quorumnet_reachable: bool,
    /// Answers our timestamp probes.
    pub timestamp_participation: bool,
    /// Its clock agrees with ours.
    pub timesync: bool,
    /// Its storage passes our storage tests.
    pub storage_ok: bool,
    /// It did not use two IPs within the IP-change window.
    pub single_ip: bool,
}

impl TestResults {
    /// All obligations met (an IP change alone is not a failure).
    pub fn passed(&self) -> bool {
        self.reasons() == 0
    }

    /// The reason bits of the failed checks.
    pub fn reasons(&self) -> u16 {
        let mut r = 0;
        if !self.uptime_proved {
            r |= reason::UPTIME;
        }
        if !self.storage_ok {
            r |= reason::STORAGE;
        }
        if !self.quorumnet_reachable || !self.timestamp_participation {
            r |= reason::TIMECHECK;
        }
        if !self.timesync {
            r |= reason::TIMESYNC;
        }
        r
    }
}

/// Checks a node from our observations. `grace_from` is when the node last became active or
/// was recommissioned (unix time of that block; 0 for a decommissioned node): a proof is due
/// only `uptime_proof_validity` after it, as upstream's "effective timestamp", and probe results
/// from before it do not count. `ip_window_start` is the start of the IP-change window (24 h
/// ago, or 2 h after its last IP penalty, whichever is later). The participation checks
/// (timestamp answers, clock sync, storage tests) apply to active nodes only, as upstream, and
/// only to results from the last four validity periods.
pub fn check_node(
    record: Option<&ProofRecord>,
    active: bool,
    grace_from: u64,
    now: u64,
    ip_window_start: u64,
    timings: &ServiceNodeTimings,
) -> TestResults {
    let received = record.map_or(0, |r| r.received);
    let last = received.max(grace_from);
    let uptime_proved = now.saturating_sub(last) <= timings.uptime_proof_validity;
    let unreachable_threshold = timings
        .uptime_proof_validity
        .saturating_sub(timings.uptime_proof_frequency);
    let since = grace_from.max(now.saturating_sub(timings.uptime_proof_validity.saturating_mul(4)));
    let rings = record.filter(|_| active);
    TestResults {
        uptime_proved,
        quorumnet_reachable: !record.is_some_and(|r| {
            r.quorumnet.unreachable_for(
                unreachable_threshold,
                timings.reachable_max_failure_validity,
                now,
            )
        }),
        timestamp_participation: !rings.is_some_and(|r| r.timestamp_participation.failing(since)),
        timesync: !rings.is_some_and(|r| r.timesync.failing(since)),
        storage_ok: !rings.is_some_and(|r| r.storage.failing(since)),
        single_ip: !record.is_some_and(|r| r.multiple_ips_since(ip_window_start)),
    }
}

/// The vote a validator casts on a worker (§4.8): `credit` is the worker's decommission credit
/// at the latest height; `dereg_allowed` is false during the post-fork grace period.
pub fn decide(
    results: &TestResults,
    decommissioned: bool,
    credit: i64,
    timings: &ServiceNodeTimings,
    dereg_allowed: bool,
) -> Option<NewState> {
    let vote = if results.passed() {
        if decommissioned {
            Some(NewState::Recommission)
        } else if !results.single_ip {
            Some(NewState::IpChangePenalty)
        } else {
            None
        }
    } else if decommissioned {
        (credit < 0).then_some(NewState::Deregister)
    } else if credit >= timings.credit_minimum {
        Some(NewState::Decommission)
    } else {
        Some(NewState::Deregister)
    };
    match vote {
        Some(NewState::Deregister) if !dereg_allowed => None,
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sispop_chain::{Network, NetworkParams};

    fn t() -> &'static ServiceNodeTimings {
        &NetworkParams::get(Network::Devnet).sn
    }

    #[test]
    fn uptime_uses_the_later_of_proof_and_activation() {
        let t = t();
        let rec = ProofRecord {
            received: 1000,
            ..ProofRecord::default()
        };
        assert!(check_node(Some(&rec), true, 0, 1030, 0, t).passed());
        let r = check_node(Some(&rec), true, 0, 1031, 0, t);
        assert!(!r.uptime_proved);
        assert_eq!(r.reasons(), reason::UPTIME);
        assert!(check_node(Some(&rec), true, 1020, 1031, 0, t).passed());
        assert!(!check_node(None, true, 0, 1031, 0, t).passed());
        assert!(
            check_node(None, true, 1020, 1031, 0, t).passed(),
            "new node grace"
        );
    }

    #[test]
    fn storage_failures_count_like_participation() {
        let t = t();
        let mut rec = ProofRecord {
            received: 1000,
            ..ProofRecord::default()
        };
        for i in 0..4 {
            rec.storage.push(990 + i, true);
        }
        for i in 0..4 {
            rec.storage.push(994 + i, false);
        }
        assert!(
            check_node(Some(&rec), true, 0, 1000, 0, t).passed(),
            "4 failures of 8 are tolerated"
        );
        rec.storage.push(999, false);
        let r = check_node(Some(&rec), true, 0, 1000, 0, t);
        assert!(!r.storage_ok);
        assert_eq!(r.reasons(), reason::STORAGE);
        assert_eq!(reason::names(r.reasons()), ["storage"]);
        assert!(
            check_node(Some(&rec), false, 0, 1000, 0, t).passed(),
            "not held against a decommissioned node"
        );
        assert!(
            check_node(Some(&rec), true, 992, 1000, 0, t).passed(),
            "results from before its recommission do not count"
        );
    }

    #[test]
    fn unreachable_node_fails_timecheck() {
        let t = t();
        let mut rec = ProofRecord {
            received: 1000,
            ..ProofRecord::default()
        };
        rec.quorumnet.record(false, 990);
        rec.quorumnet.record(false, 1011);
        let r = check_node(Some(&rec), true, 0, 1011, 0, t);
        assert!(!r.quorumnet_reachable);
        assert_eq!(r.reasons(), reason::TIMECHECK);
        assert_eq!(
            reason::names(r.reasons() | reason::UPTIME),
            ["uptime", "timecheck"]
        );
    }

    #[test]
    fn participation_counts_for_active_nodes_and_recent_results_only() {
        let t = t();
        let mut rec = ProofRecord {
            received: 1000,
            ..ProofRecord::default()
        };
        for i in 0..8 {
            rec.timestamp_participation.push(990 + i, false);
        }
        let r = check_node(Some(&rec), true, 0, 1000, 0, t);
        assert!(!r.timestamp_participation);
        assert_eq!(r.reasons(), reason::TIMECHECK);
        assert!(
            check_node(Some(&rec), false, 0, 1000, 0, t).passed(),
            "not held against a decommissioned node"
        );
        assert!(
            check_node(Some(&rec), true, 995, 1000, 0, t).passed(),
            "results from before its recommission do not count"
        );
        let later = 997 + 4 * t.uptime_proof_validity;
        let rec = ProofRecord {
            received: later,
            ..rec
        };
        assert!(
            check_node(Some(&rec), true, 0, later, 0, t).passed(),
            "old results age out"
        );
    }

    #[test]
    fn decisions() {
        let t = t();
        let pass = TestResults {
            uptime_proved: true,
            quorumnet_reachable: true,
            timestamp_participation: true,
            timesync: true,
            storage_ok: true,
            single_ip: true,
        };
        let fail = TestResults {
            uptime_proved: false,
            ..pass
        };
        let moved = TestResults {
            single_ip: false,
            ..pass
        };
        let min = t.credit_minimum;
        assert_eq!(decide(&pass, false, 0, t, true), None);
        assert_eq!(
            decide(&pass, true, -5, t, true),
            Some(NewState::Recommission)
        );
        assert_eq!(
            decide(&moved, false, 0, t, true),
            Some(NewState::IpChangePenalty)
        );
        assert_eq!(
            decide(&fail, false, min, t, true),
            Some(NewState::Decommission)
        );
        assert_eq!(
            decide(&fail, false, min - 1, t, true),
            Some(NewState::Deregister)
        );
        assert_eq!(decide(&fail, false, min - 1, t, false), None, "grace");
        assert_eq!(decide(&fail, true, 0, t, true), None, "credit left");
        assert_eq!(decide(&fail, true, -1, t, true), Some(NewState::Deregister));
    }
}
