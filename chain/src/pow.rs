//! Proof of work and difficulty.
//!
//! The PoW hash is RandomX over the block's hashing blob, keyed by a seed block as in Monero
//! (the block at the start of the 2048-block epoch, 64 blocks back), or Keccak-256 of the
//! hashing blob on networks that choose it (the devnet). A hash meets difficulty `d` when
//! `hash · d < 2^256`, reading the hash as a little-endian 256-bit integer (Cryptonote's
//! `check_hash`).

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::block::Block;
use crate::crypto::keccak256;
use crate::params::{DifficultyMode, NetworkParams, PowAlgorithm};
use crate::types::{BlockHash, Difficulty};

/// Blocks per RandomX seed epoch.
pub const RX_SEEDHASH_EPOCH_BLOCKS: u64 = 2048;
/// How far behind the epoch boundary the seed block lies.
pub const RX_SEEDHASH_EPOCH_LAG: u64 = 64;

/// Height of the block whose id keys RandomX for a block at `height` (genesis for the first
/// epochs).
pub fn rx_seed_height(height: u64) -> u64 {
    if height <= RX_SEEDHASH_EPOCH_BLOCKS + RX_SEEDHASH_EPOCH_LAG {
        0
    } else {
        (height - RX_SEEDHASH_EPOCH_LAG - 1) & !(RX_SEEDHASH_EPOCH_BLOCKS - 1)
    }
}

/// PoW could not be computed (RandomX failed to initialise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proof of work unavailable: {0}")]
pub struct PowError(pub String);

type RxRequest = (
    [u8; 32],
    RxSlot,
    Vec<u8>,
    mpsc::Sender<Result<[u8; 32], String>>,
);

/// Which of the worker's two RandomX caches a hash uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxSlot {
    /// The seed the main chain's next block needs (and mining).
    Main,
    /// Any other seed (side chains, blocks from other epochs): a block keyed to a foreign seed
    /// rebuilds only this cache, never the main one.
    Side,
}

/// RandomX caches built since start (each takes a second or more and 256 MiB).
pub static RX_CACHE_BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The RandomX worker: one thread owns two light-mode caches (256 MiB each, the second built
/// only when needed) and their VMs, each rebuilt only when its seed changes. RandomX objects
/// are not `Send`, so every hash goes through it.
fn rx_worker() -> &'static Mutex<mpsc::Sender<RxRequest>> {
    static WORKER: OnceLock<Mutex<mpsc::Sender<RxRequest>>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<RxRequest>();
        std::thread::Builder::new()
            .name("randomx".into())
            .spawn(move || {
                use randomx_rs::{RandomXCache, RandomXFlag, RandomXVM};
                let flags = RandomXFlag::get_recommended_flags();
                let mut slots: [Option<([u8; 32], RandomXVM)>; 2] = [None, None];
                for (seed, slot, input, reply) in rx {
                    let current = &mut slots[slot as usize];
                    if current.as_ref().map(|c| c.0) != Some(seed) {
                        *current = None; // free the old cache before building the new one
                        RX_CACHE_BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        *current = RandomXCache::new(flags, &seed)
                            .and_then(|cache| RandomXVM::new(flags, Some(cache), None))
                            .map(|vm| (seed, vm))
                            .map_err(
                                |e| tracing::error!(error = %e, "RandomX initialisation failed"),
                            )
                            .ok();
                    }
                    let result = match &*current {
                        Some((_, vm)) => vm
                            .calculate_hash(&input)
                            .map_err(|e| e.to_string())
                            .and_then(|h| {
                                <[u8; 32]>::try_from(h.as_slice()).map_err(|_| {
                                    "RandomX returned a hash of the wrong size".to_owned()
                                })
                            }),
                        None => Err("RandomX is not initialised".to_owned()),
                    };
                    let _ = reply.send(result);
                }
            })
            .ok();
        Mutex::new(tx)
    })
}

/// RandomX of `input` keyed by `seed`, in the cache `slot`.
pub fn randomx_hash(seed: &[u8; 32], input: &[u8], slot: RxSlot) -> Result<[u8; 32], PowError> {
    let (reply, answer) = mpsc::channel();
    rx_worker()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((*seed, slot, input.to_vec(), reply))
        .map_err(|_| PowError("the RandomX worker is gone".into()))?;
    answer
        .recv()
        .map_err(|_| PowError("the RandomX worker is gone".into()))?
        .map_err(PowError)
}

/// The PoW hash of a block on `params`' network, with `seed` the id of its RandomX seed block
/// (hashed in the main cache; see [`pow_hash_in`]).
pub fn pow_hash(
    params: &NetworkParams,
    block: &Block,
    seed: &BlockHash,
) -> Result<[u8; 32], PowError> {
    pow_hash_in(params, block, seed, RxSlot::Main)
}

/// [`pow_hash`] in the RandomX cache `slot`.
pub fn pow_hash_in(
    params: &NetworkParams,
    block: &Block,
    seed: &BlockHash,
    slot: RxSlot,
) -> Result<[u8; 32], PowError> {
    match params.pow {
        PowAlgorithm::Keccak => Ok(keccak256(block.hashing_blob())),
        PowAlgorithm::RandomX => randomx_hash(&seed.0, &block.hashing_blob(), slot),
    }
}

/// Whether `hash` meets `difficulty`.
pub fn check_pow(hash: &[u8; 32], difficulty: Difficulty) -> bool {
    if difficulty == 0 {
        return false;
    }
    // 256-bit × 128-bit multiply in 64-bit limbs; any carry past 256 bits fails.
    let limbs: [u64; 4] = std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&hash[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    });
    let d = [difficulty as u64, (difficulty >> 64) as u64];
    let mut product = [0u128; 6];
    for (i, &a) in limbs.iter().enumerate() {
        for (j, &b) in d.iter().enumerate() {
            let wide = u128::from(a) * u128::from(b);
            product[i + j] += wide & u128::from(u64::MAX);
            product[i + j + 1] += wide >> 64;
        }
    }
    let mut carry = 0u128;
    let mut out = [0u64; 6];
    for (k, p) in product.iter().enumerate() {
        let v = p + carry;
        out[k] = v as u64;
        carry = v >> 64;
    }
    carry == 0 && out[4] == 0 && out[5] == 0
}

/// The difficulty of the next block, from the timestamps and cumulative difficulties of the
/// most recent blocks (oldest first, same length).
///
/// LWMA: solve times are weighted linearly by recency and clamped to `[1, 6T]`;
/// `next = ΣD · T · (N+1) / (2 · Σ i·solvetime_i)`, which returns the average difficulty when
/// blocks arrive exactly on target.
pub fn next_difficulty(
    params: &NetworkParams,
    timestamps: &[u64],
    cumulative: &[Difficulty],
) -> Difficulty {
    let window = match params.difficulty {
        DifficultyMode::Fixed(d) => return d,
        DifficultyMode::Lwma { window } => window,
    };
    let n = timestamps.len().min(cumulative.len());
    if n < 2 {
        return 1;
    }
    let t = i128::from(params.target_block_time as i64);
    let len = (n - 1).min(window);
    let ts = &timestamps[n - 1 - len..n];
    let cd = &cumulative[n - 1 - len..n];
    let mut weighted: i128 = 0;
    for i in 1..=len {
        let solve = (i128::from(ts[i] as i64) - i128::from(ts[i - 1] as i64)).clamp(1, 6 * t);
        weighted += solve * i as i128;
    }
    let l = len as i128;
    let floor = (l * l * t / 20).max(1);
    let weighted = weighted.max(floor) as u128;
    let sum_d = cd[len].saturating_sub(cd[0]);
    let next = sum_d
        .saturating_mul(t as u128)
        .saturating_mul(len as u128 + 1)
        / (2 * weighted);
    next.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Network;

    #[test]
    fn randomx_reference_vector() {
        // RandomX's own first test vector: key "test key 000", input "This is a test".
        let h = randomx_hash_raw(b"test key 000", b"This is a test");
        assert_eq!(
            hex::encode(h),
            "639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f"
        );
    }

    /// RandomX with a key of any length (the reference vectors use short keys).
    fn randomx_hash_raw(key: &[u8], input: &[u8]) -> Vec<u8> {
        use randomx_rs::{RandomXCache, RandomXFlag, RandomXVM};
        let flags = RandomXFlag::get_recommended_flags();
        let cache = RandomXCache::new(flags, key).expect("cache");
        RandomXVM::new(flags, Some(cache), None)
            .expect("vm")
            .calculate_hash(input)
            .expect("hash")
    }

    #[test]
    fn seed_heights() {
        assert_eq!(rx_seed_height(0), 0);
        assert_eq!(rx_seed_height(2048 + 64), 0);
        assert_eq!(rx_seed_height(2048 + 65), 2048);
        assert_eq!(rx_seed_height(4096 + 64), 2048);
        assert_eq!(rx_seed_height(4096 + 65), 4096);
    }

    #[test]
    fn difficulty_one_accepts_everything() {
        assert!(check_pow(&[0xff; 32], 1));
        assert!(!check_pow(&[0xff; 32], 2));
        assert!(!check_pow(&[0; 32], 0));
    }

    #[test]
    fn pow_boundary() {
        // hash = 2^255 (top bit of the last byte): passes at d = 1 only.
        let mut h = [0u8; 32];
        h[31] = 0x80;
        assert!(check_pow(&h, 1));
        assert!(!check_pow(&h, 2));
        // hash = 1 passes any difficulty below 2^128.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(check_pow(&one, u128::MAX));
    }

    #[test]
    fn lwma_is_stable_on_target_and_reacts() {
        let p = NetworkParams::get(Network::Mainnet);
        let n = 61;
        let on_target: Vec<u64> = (0..n).map(|i| 1_000_000 + i * 120).collect();
        let cum: Vec<u128> = (0..n).map(|i| u128::from(i) * 1000).collect();
        assert_eq!(next_difficulty(p, &on_target, &cum), 1000);
        let fast: Vec<u64> = (0..n).map(|i| 1_000_000 + i * 60).collect();
        assert!(next_difficulty(p, &fast, &cum) > 1900);
        let slow: Vec<u64> = (0..n).map(|i| 1_000_000 + i * 240).collect();
        assert!(next_difficulty(p, &slow, &cum) < 600);
        // Timestamps going backwards never yield zero or a panic.
        let back: Vec<u64> = (0..n).map(|i| 10_000_000 - i * 100).collect();
        assert!(next_difficulty(p, &back, &cum) >= 1);
        assert_eq!(next_difficulty(p, &[5], &[1]), 1);
        assert_eq!(
            next_difficulty(NetworkParams::get(Network::Devnet), &on_target, &cum),
            1
        );
    }
}
