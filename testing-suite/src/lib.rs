#![doc = include_str!("../README.md")]

pub mod decide;
pub mod proof;
pub mod quorum;
pub mod record;
pub mod state_change;
pub mod vote;

pub use decide::{check_node, decide, NewState, TestResults};
pub use proof::{ProofError, SignedProof, UptimeProof};
pub use quorum::{
    obligations_quorum, quorum_rng, shuffled_index_list, ObligationsQuorum, QuorumType,
    MIN_NODES_TO_TEST, NTH_OF_THE_NETWORK_TO_TEST, OBLIGATIONS_MIN_VOTES, OBLIGATIONS_QUORUM_SIZE,
};
pub use record::{ProofBook, ProofRecord, Reachability};
pub use state_change::{state_change_tx, verify_state_change, StateChangeError};
pub use vote::{Vote, VoteError, VotePool};
