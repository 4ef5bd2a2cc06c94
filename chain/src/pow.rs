//! Proof of work and difficulty.
//!
//! The PoW hash is Keccak-256 of the block's hashing blob (see the crate README for why this is
//! not RandomX yet). A hash meets difficulty `d` when `hash · d < 2^256`, reading the hash as a
//! little-endian 256-bit integer (Cryptonote's `check_hash`).

use crate::block::Block;
use crate::crypto::keccak256;
use crate::params::{DifficultyMode, NetworkParams};
use crate::types::Difficulty;

/// The PoW hash of a block.
pub fn pow_hash(block: &Block) -> [u8; 32] {
    keccak256(block.hashing_blob())
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
