//! State-change transactions: 7 or more votes of an obligations quorum on one worker, made into
//! a transaction (tag 0x78, reasons layout) and verified against the quorum of the height they
//! name (reference `service-nodes.md` §4.10).

use sispop_chain::extra::{build_extra, ExtraField, StateChange, StateChangeVote};
use sispop_chain::params::ServiceNodeTimings;
use sispop_chain::{PublicKey, Transaction, TxType};

use crate::decide::NewState;
use crate::quorum::{ObligationsQuorum, OBLIGATIONS_MIN_VOTES};
use crate::vote::{vote_hash, Vote};

/// Why a state change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateChangeError {
    /// Unknown state value.
    #[error("unknown service node state {0}")]
    State(u64),
    /// Too few or too many votes.
    #[error(
        "state change carries {0} votes; {OBLIGATIONS_MIN_VOTES} to the quorum size are needed"
    )]
    VoteCount(usize),
    /// Quorum height not before the block, or too old.
    #[error("state change for quorum height {height} cannot be included at height {at} (lifetime {lifetime} blocks)")]
    Height {
        /// Quorum height named.
        height: u64,
        /// Height of the block it would go in.
        at: u64,
        /// Lifetime.
        lifetime: u64,
    },
    /// No quorum held for the height.
    #[error("no obligations quorum known at height {0}")]
    UnknownQuorum(u64),
    /// Worker index out of range.
    #[error("worker index {0} out of range")]
    WorkerIndex(u64),
    /// Validator indices not strictly ascending (or repeated).
    #[error("vote validator indices must be strictly ascending")]
    Order,
    /// Validator index out of range.
    #[error("validator index {0} out of range")]
    ValidatorIndex(u64),
    /// A signature does not verify.
    #[error("vote of validator {0} does not verify")]
    BadSignature(u64),
}

impl StateChangeError {
    /// True when the transaction is invalid in itself; false when it only no longer applies
    /// (too old, or its quorum is unknown to us).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            StateChangeError::Height { .. } | StateChangeError::UnknownQuorum(_)
        )
    }
}

/// The state-change transaction for a group of votes (ascending validator order).
pub fn state_change_tx(
    height: u64,
    worker_index: u16,
    state: NewState,
    votes: &[Vote],
) -> Transaction {
    let all = votes.iter().fold(u16::MAX, |a, v| a & v.reason);
    let any = votes.iter().fold(0, |a, v| a | v.reason);
    let sc = StateChange {
        version: 4,
        state: state as u64,
        block_height: height,
        service_node_index: u64::from(worker_index),
        votes: votes
            .iter()
            .map(|v| StateChangeVote {
                validator_index: u64::from(v.validator_index),
                signature: v.signature,
            })
            .collect(),
        reason_consensus_all: u64::from(if votes.is_empty() { 0 } else { all }),
        reason_consensus_any: u64::from(any),
    };
    Transaction {
        version: 4,
        output_unlock_times: vec![],
        v3_state_change: false,
        unlock_time: 0,
        inputs: vec![],
        outputs: vec![],
        extra: build_extra(&[ExtraField::StateChange(sc)]),
        tx_type: TxType::StateChange,
        rct: None,
    }
}

/// Verifies a state change for a block at `at` against the obligations quorum of its height.
/// Returns the worker it changes and the new state.
pub fn verify_state_change(
    sc: &StateChange,
    quorum: Option<&ObligationsQuorum<PublicKey>>,
    at: u64,
    timings: &ServiceNodeTimings,
) -> Result<(PublicKey, NewState), StateChangeError> {
    let state = NewState::from_u64(sc.state).ok_or(StateChangeError::State(sc.state))?;
    if sc.votes.len() < OBLIGATIONS_MIN_VOTES {
        return Err(StateChangeError::VoteCount(sc.votes.len()));
    }
    if sc.block_height >= at || at >= sc.block_height.saturating_add(timings.vote_lifetime) {
        return Err(StateChangeError::Height {
            height: sc.block_height,
            at,
            lifetime: timings.vote_lifetime,
        });
    }
    let quorum = quorum.ok_or(StateChangeError::UnknownQuorum(sc.block_height))?;
    if sc.votes.len() > quorum.validators.len() {
        return Err(StateChangeError::VoteCount(sc.votes.len()));
    }
    let worker_index = u16::try_from(sc.service_node_index)
        .ok()
        .filter(|w| usize::from(*w) < quorum.workers.len())
        .ok_or(StateChangeError::WorkerIndex(sc.service_node_index))?;
    let hash = vote_hash(sc.block_height, worker_index, state);
    let mut prev: Option<u64> = None;
    for v in &sc.votes {
        if prev.is_some_and(|p| p >= v.validator_index) {
            return Err(StateChangeError::Order);
        }
        prev = Some(v.validator_index);
        let key = usize::try_from(v.validator_index)
            .ok()
            .and_then(|i| quorum.validators.get(i))
            .ok_or(StateChangeError::ValidatorIndex(v.validator_index))?;
        if !sispop_chain::crypto::schnorr_verify(&hash, key, &v.signature) {
            return Err(StateChangeError::BadSignature(v.validator_index));
        }
    }
    Ok((quorum.workers[usize::from(worker_index)], state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vote::tests::{quorum, vote};
    use sispop_chain::extra::parse_extra;
    use sispop_chain::{Network, NetworkParams};

    fn sc_of(tx: &Transaction) -> StateChange {
        match parse_extra(&tx.extra).expect("test value").remove(0) {
            ExtraField::StateChange(sc) => sc,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seven_votes_verify_and_bad_ones_do_not() {
        let t = &NetworkParams::get(Network::Devnet).sn;
        let (q, s) = quorum(10);
        let votes: Vec<Vote> = (0..7)
            .map(|i| vote(&s, i, 40, 2, NewState::Decommission))
            .collect();
        let tx = state_change_tx(40, 2, NewState::Decommission, &votes);
        let blob = tx.serialize();
        let back = Transaction::from_bytes(&blob).expect("test value");
        assert_eq!(back.tx_type, TxType::StateChange);
        let sc = sc_of(&back);
        assert_eq!((sc.reason_consensus_all, sc.reason_consensus_any), (1, 1));
        assert_eq!(
            verify_state_change(&sc, Some(&q), 41, t),
            Ok((q.workers[2], NewState::Decommission))
        );
        // Six votes.
        let mut six = sc.clone();
        six.votes.pop();
        assert_eq!(
            verify_state_change(&six, Some(&q), 41, t),
            Err(StateChangeError::VoteCount(6))
        );
        // A forged vote (another validator's signature under index 6).
        let mut forged = sc.clone();
        forged.votes[6].signature = vote(&s, 8, 40, 2, NewState::Decommission).signature;
        assert_eq!(
            verify_state_change(&forged, Some(&q), 41, t),
            Err(StateChangeError::BadSignature(6))
        );
        // The signatures are for decommission, not deregistration.
        let mut other = sc.clone();
        other.state = 0;
        assert!(matches!(
            verify_state_change(&other, Some(&q), 41, t),
            Err(StateChangeError::BadSignature(0))
        ));
        let mut dup = sc.clone();
        dup.votes[1] = dup.votes[0].clone();
        assert_eq!(
            verify_state_change(&dup, Some(&q), 41, t),
            Err(StateChangeError::Order)
        );
        let mut wi = sc.clone();
        wi.service_node_index = 5;
        assert_eq!(
            verify_state_change(&wi, Some(&q), 41, t),
            Err(StateChangeError::WorkerIndex(5))
        );
        // Heights: not at or before its quorum, not after the lifetime.
        assert!(matches!(
            verify_state_change(&sc, Some(&q), 40, t),
            Err(StateChangeError::Height { .. })
        ));
        assert!(matches!(
            verify_state_change(&sc, Some(&q), 40 + t.vote_lifetime, t),
            Err(StateChangeError::Height { .. })
        ));
        assert!(verify_state_change(&sc, Some(&q), 40 + t.vote_lifetime - 1, t).is_ok());
        assert_eq!(
            verify_state_change(&sc, None, 41, t),
            Err(StateChangeError::UnknownQuorum(40))
        );
        assert!(!StateChangeError::UnknownQuorum(40).is_peer_fault());
        assert!(StateChangeError::BadSignature(0).is_peer_fault());
    }
}
