//! Quorum selection (reference `service-nodes.md` §4.2–§4.3).

use serde::{Deserialize, Serialize};
use sispop_swarm::{shuffle_portable, Mt19937_64};

/// Quorum types, as numbered in the RPC and in the RNG seed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QuorumType {
    /// Tests other nodes and votes on state changes.
    Obligations = 0,
    /// Signs checkpoints.
    Checkpointing = 1,
    /// Signs blink transactions.
    Blink = 2,
    /// Produces blocks.
    Pulse = 3,
}

/// Validators in an obligations quorum.
pub const OBLIGATIONS_QUORUM_SIZE: usize = 10;
/// Votes needed for a state change.
pub const OBLIGATIONS_MIN_VOTES: usize = 7;
/// Lower bound on workers tested per quorum.
pub const MIN_NODES_TO_TEST: usize = 50;
/// One percent of the remaining nodes are tested when that is more than the minimum.
pub const NTH_OF_THE_NETWORK_TO_TEST: usize = 100;

/// The RNG for a quorum at a block: `mt19937_64(seed_seq{type, hash as eight LE u32})`.
pub fn quorum_rng(block_hash: &[u8; 32], quorum: QuorumType) -> Mt19937_64 {
    let mut words = [0u32; 9];
    words[0] = quorum as u32;
    for (i, w) in words[1..].iter_mut().enumerate() {
        *w = u32::from_le_bytes([
            block_hash[4 * i],
            block_hash[4 * i + 1],
            block_hash[4 * i + 2],
            block_hash[4 * i + 3],
        ]);
    }
    Mt19937_64::from_seed_seq(&words)
}

/// Indices `0..list_size` shuffled for a quorum. When `0 < sublist_size < list_size` and
/// `0 < sublist_up_to < list_size`, the first `sublist_up_to` indices are shuffled with the rng
/// and the indices from `sublist_size` on are shuffled with a copy of the rng taken before any
/// use; otherwise the whole list is shuffled.
pub fn shuffled_index_list(
    list_size: usize,
    block_hash: &[u8; 32],
    quorum: QuorumType,
    sublist_size: usize,
    sublist_up_to: usize,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..list_size).collect();
    let mut rng = quorum_rng(block_hash, quorum);
    if sublist_size > 0
        && sublist_size < list_size
        && sublist_up_to > 0
        && sublist_up_to < list_size
    {
        let mut copy = rng.clone();
        shuffle_portable(&mut idx[..sublist_up_to], &mut rng);
        shuffle_portable(&mut idx[sublist_size..], &mut copy);
    } else {
        shuffle_portable(&mut idx, &mut rng);
    }
    idx
}

/// An obligations quorum: who votes, and who is tested.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ObligationsQuorum<K> {
    /// Voters (always active nodes).
    pub validators: Vec<K>,
    /// Nodes under test (active or decommissioned).
    pub workers: Vec<K>,
}

/// The obligations quorum for a block, from the active and the funded-but-decommissioned
/// nodes, each sorted by pubkey.
pub fn obligations_quorum<K: Clone>(
    active: &[K],
    decommissioned: &[K],
    block_hash: &[u8; 32],
) -> ObligationsQuorum<K> {
    let total = active.len() + decommissioned.len();
    let n_validators = active.len().min(OBLIGATIONS_QUORUM_SIZE);
    let idx = shuffled_index_list(
        total,
        block_hash,
        QuorumType::Obligations,
        n_validators,
        active.len(),
    );
    let node = |i: usize| {
        if i < active.len() {
            active[i].clone()
        } else {
            decommissioned[i - active.len()].clone()
        }
    };
    let remaining = total - n_validators;
    let n_workers = remaining.min(MIN_NODES_TO_TEST.max(remaining / NTH_OF_THE_NETWORK_TO_TEST));
    ObligationsQuorum {
        validators: idx[..n_validators].iter().map(|&i| node(i)).collect(),
        workers: idx[n_validators..n_validators + n_workers]
            .iter()
            .map(|&i| node(i))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn quorum_rng_vectors() {
        let want: [(QuorumType, u64, [usize; 10]); 4] = [
            (
                QuorumType::Obligations,
                5_684_039_678_701_183_362,
                [6, 2, 3, 7, 1, 8, 5, 0, 9, 4],
            ),
            (
                QuorumType::Checkpointing,
                8_018_770_411_282_620_334,
                [1, 4, 0, 8, 7, 6, 9, 3, 5, 2],
            ),
            (
                QuorumType::Blink,
                15_084_704_536_430_730_473,
                [9, 1, 8, 6, 2, 3, 0, 5, 4, 7],
            ),
            (
                QuorumType::Pulse,
                6_989_409_862_930_718_931,
                [1, 8, 6, 7, 5, 0, 2, 4, 3, 9],
            ),
        ];
        for (ty, first, shuffled) in want {
            let mut rng = quorum_rng(&hash(), ty);
            assert_eq!(rng.next_u64(), first, "{ty:?}");
            let mut v: Vec<usize> = (0..10).collect();
            shuffle_portable(&mut v, &mut quorum_rng(&hash(), ty));
            assert_eq!(v, shuffled, "{ty:?}");
        }
        let mut rng = quorum_rng(&hash(), QuorumType::Obligations);
        rng.next_u64();
        assert_eq!(rng.next_u64(), 9_060_465_443_362_558_873);
    }

    #[test]
    fn obligations_quorum_shape() {
        let active: Vec<u32> = (0..30).collect();
        let decomm: Vec<u32> = (100..105).collect();
        let q = obligations_quorum(&active, &decomm, &hash());
        assert_eq!(q.validators.len(), 10);
        assert!(
            q.validators.iter().all(|v| *v < 30),
            "validators are active"
        );
        assert_eq!(q.workers.len(), 25);
        let mut all: Vec<u32> = q.validators.iter().chain(&q.workers).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 35, "nobody tests itself or appears twice");
        // Membership pinned to the §9.1 vector: with 10 active nodes the first 10 indices are
        // shuffled by a fresh rng, which gives [6,2,3,7,1,8,5,0,9,4]; the decommissioned tail
        // is shuffled by the copy and can only be tested.
        let ten: Vec<u32> = (0..10).collect();
        let q = obligations_quorum(&ten, &[100, 101], &hash());
        assert_eq!(q.validators, [6, 2, 3, 7, 1, 8, 5, 0, 9, 4]);
        let mut w = q.workers.clone();
        w.sort_unstable();
        assert_eq!(w, [100, 101]);
        let q = obligations_quorum(&ten, &[], &hash());
        assert_eq!(q.validators, [6, 2, 3, 7, 1, 8, 5, 0, 9, 4]);
        assert!(q.workers.is_empty());
        let few = obligations_quorum(&active[..4], &[], &hash());
        assert_eq!((few.validators.len(), few.workers.len()), (4, 0));
        let many: Vec<u32> = (0..7000).collect();
        assert_eq!(obligations_quorum(&many, &[], &hash()).workers.len(), 69);
    }
}
