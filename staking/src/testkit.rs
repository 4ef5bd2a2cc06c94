//! Synthetic service node lists for tests and benchmarks: funded, active nodes whose primary
//! secret keys are known, blocks that carry given transactions, and state changes signed by the
//! validators of a quorum. Nothing here is used by the daemon.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use curve25519_dalek::Scalar;
use sispop_chain::crypto::public_from_secret;
use sispop_chain::{
    Address, Atomic, Block, BlockHash, BlockHeader, Height, KeyImage, PublicKey, Transaction,
    TxType, COIN,
};
use sispop_testing::{state_change_tx, NewState, Vote};

use crate::list::{Contributor, LockedContribution, ServiceNodeInfo, State};

/// The primary secret of synthetic node `i`.
pub fn secret(i: u32) -> Scalar {
    Scalar::from(u64::from(i) + 1)
}

/// Synthetic node `i`: registered at height 1, active since 2, 100 coins staked by one
/// contributor whose key image is the node's key.
pub fn node(i: u32) -> (PublicKey, ServiceNodeInfo) {
    let pk = public_from_secret(&secret(i));
    let a = Address {
        spend: pk,
        view: pk,
    };
    let info = ServiceNodeInfo {
        registration_height: Height(1),
        registration_hf_version: 19,
        requested_unlock_height: Height(0),
        last_reward_block_height: Height(u64::from(i)),
        last_reward_transaction_index: 0,
        decommission_count: 0,
        active_since_height: 2,
        last_decommission_height: Height(0),
        last_decommission_reason_consensus_all: 0,
        last_decommission_reason_consensus_any: 0,
        recommission_credit: 60,
        contributors: vec![Contributor {
            address: a,
            amount: Atomic(100 * COIN),
            reserved: Atomic(100 * COIN),
            locked_contributions: vec![LockedContribution {
                key_image: KeyImage(pk.0),
                key_image_pub_key: pk,
                amount: Atomic(100 * COIN),
            }],
        }],
        total_contributed: Atomic(100 * COIN),
        total_reserved: Atomic(100 * COIN),
        staking_requirement: Atomic(100 * COIN),
        fee: 1000,
        portions_for_operator: 0,
        swarm_id: sispop_swarm::UNASSIGNED_SWARM_ID,
        swarm_since: Height(0),
        operator_address: a,
        last_ip_change_height: Height(1),
    };
    (pk, info)
}

/// A list of `n` synthetic nodes with its tip at `tip`, and each node's secret by key.
pub fn state(n: u32, tip: (Height, BlockHash)) -> (State, HashMap<PublicKey, Scalar>) {
    let nodes: BTreeMap<PublicKey, Arc<ServiceNodeInfo>> =
        (0..n).map(node).map(|(k, v)| (k, Arc::new(v))).collect();
    let secrets = (0..n)
        .map(|i| (public_from_secret(&secret(i)), secret(i)))
        .collect();
    let mut s = State {
        tip: Some(tip),
        nodes,
        blacklist: vec![],
        locked: Default::default(),
        quorums: Default::default(),
        swarm_ids_since: Height(0),
    };
    s.rebuild_locked();
    (s, secrets)
}

/// A block on `prev` whose miner transaction names no leader.
pub fn block(prev: BlockHash) -> Block {
    Block {
        header: BlockHeader {
            major_version: 19,
            minor_version: 19,
            timestamp: 0,
            prev_id: prev,
            nonce: 0,
        },
        miner_tx: Transaction {
            version: 4,
            output_unlock_times: vec![],
            v3_state_change: false,
            unlock_time: 0,
            inputs: vec![],
            outputs: vec![],
            extra: vec![],
            tx_type: TxType::Standard,
            rct: None,
        },
        tx_hashes: vec![],
    }
}

/// A state change for worker `worker_index` of the quorum at `height`, signed by the first
/// `votes` validators of that quorum. `None` when the list holds no quorum at that height.
pub fn signed_state_change(
    state: &State,
    secrets: &HashMap<PublicKey, Scalar>,
    height: u64,
    worker_index: u16,
    new: NewState,
    votes: usize,
) -> Option<Transaction> {
    let q = state.quorum(Height(height))?;
    let signed: Vec<Vote> = q
        .validators
        .iter()
        .take(votes)
        .enumerate()
        .map(|(i, v)| {
            Vote::sign(
                &mut rand_core::OsRng,
                height,
                worker_index,
                new,
                sispop_testing::decide::reason::UPTIME,
                u16::try_from(i).unwrap_or(u16::MAX),
                v,
                &secrets[v],
            )
        })
        .collect();
    Some(state_change_tx(height, worker_index, new, &signed))
}
