//! How this node syncs from a peer that claims more work, without IO: find the fork point with
//! a block locator, then walk the peer's chain forward from it in batches whose heights and
//! links are checked, and judge each batch.
//!
//! - **Locator**: our main-chain hashes at the tip, the 9 heights below it, then at doubling
//!   distances, and always genesis ([`locator_heights`]). The peer answers the highest of them
//!   on its main chain ([`fork_point`]), so a fork of any depth is found in one round trip.
//! - **Cursor**: blocks are then asked for from the height after the fork point, and the cursor
//!   moves past whatever was served, blocks we already had included (the peer's chain and ours
//!   share them up to the real fork). A batch must hold consecutive heights from the one asked
//!   for, each linking to the one before ([`check_batch`]); anything else is a lie.
//! - **Verdicts** ([`judge_batch`]): a batch that served blocks moves on; a batch whose first
//!   block does not build on the cursor, or an empty batch from a peer still claiming more work,
//!   is a strike; [`MAX_SYNC_STRIKES`] strikes are a ban. A peer that claims work it does not
//!   have runs out of blocks to serve, so it cannot stall sync: it is struck and then banned,
//!   and the next best peer is asked.

use sispop_chain::{Block, BlockHash, Height};

/// A peer's refusal of a locator none of whose blocks it has (genesis is always in it, so the
/// peer is on another chain).
pub const NO_COMMON_BLOCK: &str = "no block of the locator is on our chain";
/// Most hashes in a locator (keeps a locator request under the 1 KiB request limit).
pub const MAX_LOCATOR: usize = 30;
/// Heights right below the tip that a locator names one by one.
const DENSE: usize = 10;
/// Batches without progress a peer may serve while claiming more work, before it is banned.
pub const MAX_SYNC_STRIKES: u32 = 3;
/// Batches taken from one peer in a row before the next peer is chosen afresh, so sync is
/// spread over the good peers instead of resting on the one that claims the most.
pub const BATCHES_PER_PEER: u32 = 8;

/// The peer to sync from among `ahead` (peers claiming more work than ours, with their
/// strikes): one chosen at random among those with the fewest strikes, `avoid` only when it is
/// the sole such peer. The claimed amount of work does not weigh in: claiming more than the
/// rest buys a liar nothing.
pub fn choose_sync_peer<P: Copy + PartialEq>(
    ahead: &[(P, u32)],
    avoid: Option<P>,
    rng: &mut impl rand::Rng,
) -> Option<P> {
    use rand::seq::SliceRandom;
    let least = ahead.iter().map(|(_, s)| *s).min()?;
    let best: Vec<P> = ahead
        .iter()
        .filter(|(_, s)| *s == least)
        .map(|(p, _)| *p)
        .collect();
    let others: Vec<P> = best.iter().copied().filter(|p| Some(*p) != avoid).collect();
    if others.is_empty() {
        best.choose(rng).copied()
    } else {
        others.choose(rng).copied()
    }
}

/// The heights a locator names for a chain whose tip is at `tip`, highest first, genesis last.
pub fn locator_heights(tip: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(MAX_LOCATOR);
    let mut h = tip;
    let mut step = 1u64;
    while h > 0 && out.len() < MAX_LOCATOR - 1 {
        out.push(h);
        if out.len() >= DENSE {
            step = step.saturating_mul(2);
        }
        h = h.saturating_sub(step);
    }
    out.push(0);
    out
}

/// The fork point a peer answers for `locator`: the first (highest) entry on its main chain,
/// with its height. `main_height` gives the height of a hash on the peer's main chain.
pub fn fork_point(
    locator: &[[u8; 32]],
    main_height: impl Fn(&[u8; 32]) -> Option<u64>,
) -> Option<(u64, [u8; 32])> {
    locator
        .iter()
        .take(MAX_LOCATOR)
        .find_map(|h| main_height(h).map(|height| (height, *h)))
}

/// Why a batch is a lie.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A blob that is not a block.
    #[error("block {0} of the batch does not decode")]
    Decode(usize),
    /// A block at another height than asked for.
    #[error("block {index} of the batch is at height {got:?}, not {want}")]
    Height {
        /// Position in the batch.
        index: usize,
        /// Its height.
        got: Option<u64>,
        /// The height asked for.
        want: u64,
    },
    /// A block that does not build on the one before it.
    #[error("block {0} of the batch does not build on the one before it")]
    Link(usize),
}

/// Checks that `blobs` are blocks at heights `from`, `from + 1`, … each building on the one
/// before. Returns their hashes.
pub fn check_batch(from: u64, blobs: &[&[u8]]) -> Result<Vec<BlockHash>, BatchError> {
    let mut hashes: Vec<BlockHash> = Vec::with_capacity(blobs.len());
    for (i, blob) in blobs.iter().enumerate() {
        let b = Block::from_bytes(blob).map_err(|_| BatchError::Decode(i))?;
        let want = from.saturating_add(i as u64);
        let got = b.claimed_height().map(|h: Height| h.0);
        if got != Some(want) {
            return Err(BatchError::Height {
                index: i,
                got,
                want,
            });
        }
        if let Some(prev) = hashes.last() {
            if b.header.prev_id != *prev {
                return Err(BatchError::Link(i));
            }
        }
        hashes.push(b.hash());
    }
    Ok(hashes)
}

/// What to do after a batch of blocks from a peer that claimed more work than we have.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncVerdict {
    /// It served blocks: move the cursor past them and keep syncing from it.
    Continue,
    /// Nothing useful: count a strike, drop its claim and its cursor.
    Strike,
    /// Ban it, for this reason.
    Ban(&'static str),
}

/// Judges a batch: `served` blocks, of which the first did not attach when `unknown_parent`;
/// `strikes` the peer already has.
pub fn judge_batch(served: usize, unknown_parent: bool, strikes: u32) -> SyncVerdict {
    if served > 0 && !unknown_parent {
        return SyncVerdict::Continue;
    }
    if strikes + 1 >= MAX_SYNC_STRIKES {
        SyncVerdict::Ban(if unknown_parent {
            "served blocks that do not build on its own fork point"
        } else {
            "claimed more work than it served"
        })
    } else {
        SyncVerdict::Strike
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_peers_are_chosen_among_the_least_struck_regardless_of_claims() {
        let mut rng = rand::rngs::OsRng;
        assert_eq!(choose_sync_peer::<u8>(&[], None, &mut rng), None);
        let ahead = [(1u8, 0u32), (2, 0), (3, 1), (4, 2)];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = choose_sync_peer(&ahead, None, &mut rng).expect("one");
            assert!(p == 1 || p == 2, "struck peers wait while clean ones exist");
            seen.insert(p);
            assert_eq!(choose_sync_peer(&ahead, Some(1), &mut rng), Some(2));
        }
        assert_eq!(seen.len(), 2, "the choice is spread over the clean peers");
        assert_eq!(choose_sync_peer(&[(9u8, 1)], Some(9), &mut rng), Some(9));
    }

    #[test]
    fn locators_are_short_dense_at_the_top_and_end_at_genesis() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        let l = locator_heights(10_000_000);
        assert!(l.len() <= MAX_LOCATOR);
        assert_eq!(
            l[..DENSE],
            (9_999_991..=10_000_000).rev().collect::<Vec<_>>()[..]
        );
        assert_eq!(l.last(), Some(&0));
        assert!(l.windows(2).all(|w| w[0] > w[1]), "strictly descending");
        assert!(
            crate::p2p::wire::Request::Locator(vec![[0; 32]; MAX_LOCATOR])
                .to_bytes()
                .len() as u64
                <= crate::p2p::wire::MAX_REQUEST_BYTES
        );
    }

    /// Two chains sharing heights `0..=fork`, ours to `ours`, the peer's to `theirs`; hashes
    /// name (branch, height). Returns how many batches of 20 it takes from the fork point the
    /// peer answers to the peer's tip, and the fork point.
    fn sync(fork: u64, ours: u64, theirs: u64) -> (u64, u64) {
        let hash = |branch: u8, h: u64| {
            let mut x = [0u8; 32];
            x[0] = if h <= fork { 0 } else { branch };
            x[1..9].copy_from_slice(&h.to_le_bytes());
            x
        };
        let locator: Vec<[u8; 32]> = locator_heights(ours)
            .into_iter()
            .map(|h| hash(1, h))
            .collect();
        let (point, _) = fork_point(&locator, |x| {
            let h = u64::from_le_bytes(x[1..9].try_into().expect("8 bytes"));
            (h <= theirs && *x == hash(2, h)).then_some(h)
        })
        .expect("genesis is common");
        assert!(point <= fork, "the fork point is common to both chains");
        let mut cursor = point + 1;
        let mut batches = 0;
        while cursor <= theirs {
            let served = (theirs - cursor + 1).min(20);
            assert_eq!(
                judge_batch(served as usize, false, 0),
                SyncVerdict::Continue
            );
            cursor += served;
            batches += 1;
        }
        (batches, point)
    }

    #[test]
    fn forks_of_every_depth_resolve() {
        for depth in 1..=150u64 {
            let ours = 1_000;
            let fork = ours - depth;
            let theirs = ours + 5;
            let (batches, point) = sync(fork, ours, theirs);
            // The locator is dense for 10 blocks then doubles: the fork point is at most twice
            // the depth below the real fork, so the walk is short.
            assert!(
                fork - point <= depth.max(10),
                "depth {depth}: fork point {point}"
            );
            assert!(
                batches <= (theirs - point).div_ceil(20),
                "depth {depth}: {batches} batches"
            );
        }
        // A chain that shares only genesis.
        assert_eq!(sync(0, 40, 45).1, 0);
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge_batch(20, false, 2), SyncVerdict::Continue);
        assert_eq!(judge_batch(0, false, 0), SyncVerdict::Strike);
        assert_eq!(judge_batch(20, true, 0), SyncVerdict::Strike);
        assert!(matches!(judge_batch(0, false, 2), SyncVerdict::Ban(_)));
        assert!(matches!(judge_batch(5, true, 2), SyncVerdict::Ban(_)));
    }

    #[test]
    fn batches_must_be_the_heights_asked_for_and_link() {
        let p = sispop_chain::NetworkParams::get(sispop_chain::Network::Devnet);
        let g = sispop_chain::blockchain::genesis_block(p);
        let blob = g.serialize();
        assert_eq!(check_batch(0, &[&blob]), Ok(vec![g.hash()]));
        assert!(matches!(
            check_batch(1, &[&blob]),
            Err(BatchError::Height { want: 1, .. })
        ));
        assert_eq!(check_batch(0, &[&blob[..10]]), Err(BatchError::Decode(0)));
    }
}
