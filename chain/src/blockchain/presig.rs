//! Signatures, proofs and proof of work checked without the chain: the caller reads what a
//! check needs (a transfer's rings, a block's RandomX seed) under the chain's lock, which is
//! cheap, runs the expensive part with the lock released, and hands the verdict back. The
//! verdicts are kept in bounded caches keyed by everything they depend on (the transaction
//! and the ring members it was checked against; the hashing blob and the seed), so validation
//! under the lock finds them and skips the work, and a reorg that changes a ring member or a
//! seed simply misses the cache.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;

/// Transfers whose signatures and proofs verified, remembered.
const SIG_CACHE: usize = 50_000;
/// Proof-of-work hashes remembered.
const POW_CACHE: usize = 256;

/// A bounded set of verdict keys, oldest forgotten first.
#[derive(Default)]
pub(super) struct Verdicts<V> {
    map: std::collections::HashMap<[u8; 32], V>,
    order: VecDeque<[u8; 32]>,
}

impl<V: Clone> Verdicts<V> {
    fn get(&self, k: &[u8; 32]) -> Option<V> {
        self.map.get(k).cloned()
    }
    fn insert(&mut self, k: [u8; 32], v: V, cap: usize) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// The chain's verdict caches (behind their own locks: validation takes `&self`).
#[derive(Default)]
pub(super) struct Caches {
    sigs: Mutex<Verdicts<()>>,
    pow: Mutex<Verdicts<[u8; 32]>>,
    /// Validations that found their verdict here: (signatures, proof of work).
    hits: (AtomicU64, AtomicU64),
}

impl Caches {
    pub(super) fn sig_verified(&self, key: &[u8; 32]) -> bool {
        let hit = self
            .sigs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some();
        if hit {
            self.hits.0.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
    pub(super) fn note_sig(&self, key: [u8; 32]) {
        self.sigs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (), SIG_CACHE);
    }
    pub(super) fn pow(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        let hit = self.pow.lock().unwrap_or_else(|p| p.into_inner()).get(key);
        if hit.is_some() {
            self.hits.1.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
    pub(super) fn note_pow(&self, key: [u8; 32], hash: [u8; 32]) {
        self.pow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, hash, POW_CACHE);
    }
}

/// A ring: each member's one-time key and commitment.
pub type Ring = Vec<[CompressedPoint; 2]>;

/// What a transfer's signature verdict depends on: the transaction (its hash commits to the
/// signatures and proofs) and the ring members read from the chain.
pub(super) fn sig_key(tx_hash: &TxHash, rings: &[Ring]) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(18 + 32 + rings.iter().map(|r| r.len() * 64).sum::<usize>());
    bytes.extend_from_slice(b"sispop sig verdict");
    bytes.extend_from_slice(&tx_hash.0);
    for ring in rings {
        for [k, c] in ring {
            bytes.extend_from_slice(&k.to_bytes());
            bytes.extend_from_slice(&c.to_bytes());
        }
    }
    crate::crypto::keccak256(&bytes)
}

/// What a block's proof-of-work hash depends on.
pub(super) fn pow_key(block: &Block, seed: &BlockHash) -> [u8; 32] {
    crate::crypto::keccak_concat(&[b"sispop pow", &block.hashing_blob(), &seed.0])
}

/// The expensive checks of a CLSAG/Bulletproofs+ transfer against its rings: the range proof,
/// each ring signature over the signature hash, and the balance of inputs and outputs. The
/// structure was checked before (one CLSAG and pseudo-output per input).
pub(super) fn verify_rct(tx: &Transaction, rings: Vec<Ring>) -> Result<(), TxError> {
    let rct = tx
        .rct
        .as_ref()
        .ok_or(TxError::Malformed("missing RingCT data"))?;
    let RctPrunable::Clsag {
        clsags,
        pseudo_outs,
        bulletproof,
    } = &rct.prunable
    else {
        return Err(TxError::Malformed(
            "RingCT type must be CLSAG with Bulletproofs+",
        ));
    };
    if clsags.len() != rings.len() || pseudo_outs.len() != rings.len() {
        return Err(TxError::Malformed(
            "one CLSAG and pseudo-output per input required",
        ));
    }
    let mut rng = rand_core::OsRng;
    if !bulletproof.verify(&mut rng, &rct.base.commitments) {
        return Err(TxError::RangeProof);
    }
    let msg = tx
        .signature_hash()
        .ok_or(TxError::Malformed("no signature hash"))?;
    let images = tx.inputs.iter().map(|i| match i {
        Input::ToKey { key_image, .. } => Some(*key_image),
        Input::Gen(_) => None,
    });
    for (i, (((clsag, ring), pseudo), ki)) in clsags
        .iter()
        .zip(rings)
        .zip(pseudo_outs)
        .zip(images)
        .enumerate()
    {
        let ki = ki.ok_or(TxError::Malformed("a transfer needs ring inputs"))?;
        clsag
            .verify(ring, &ki, pseudo, &msg)
            .map_err(|_| TxError::RingSignature(i))?;
    }
    let decompress = |p: &CompressedPoint| CompressedEdwardsY(p.to_bytes()).decompress();
    let mut sum_in = EdwardsPoint::identity();
    for p in pseudo_outs {
        sum_in += decompress(p).ok_or(TxError::Unbalanced)?;
    }
    let mut sum_out = CompressedEdwardsY(crate::crypto::commit(
        &curve25519_dalek::Scalar::ZERO,
        rct.base.fee,
    ))
    .decompress()
    .ok_or(TxError::Unbalanced)?;
    for c in &rct.base.commitments {
        sum_out += decompress(c).ok_or(TxError::Unbalanced)?;
    }
    if sum_in != sum_out {
        return Err(TxError::Unbalanced);
    }
    Ok(())
}

/// A transfer's signature check, ready to run without the chain ([`Blockchain::sig_check`]).
pub struct SigCheck {
    tx: Transaction,
    rings: Vec<Ring>,
}

impl SigCheck {
    /// Runs the range proof, ring signatures and balance; the verdict for
    /// [`Blockchain::note_verified`] when they hold.
    pub fn run(self) -> Option<Verified> {
        let key = sig_key(&self.tx.hash(), &self.rings);
        verify_rct(&self.tx, self.rings)
            .ok()
            .map(|()| Verified(Verdict::Sig(key)))
    }
}

/// A block's proof-of-work hash, ready to compute without the chain ([`Blockchain::pow_check`]).
pub struct PowCheck {
    block: Block,
    seed: BlockHash,
    slot: RxSlot,
    difficulty: Difficulty,
    params: &'static NetworkParams,
}

impl PowCheck {
    /// Computes the hash (RandomX: milliseconds); a verdict only when it meets the block's
    /// difficulty (a block that does not is not worth checking further).
    pub fn run(self) -> Option<Verified> {
        let hash = pow_hash_in(self.params, &self.block, &self.seed, self.slot).ok()?;
        check_pow(&hash, self.difficulty)
            .then(|| Verified(Verdict::Pow(pow_key(&self.block, &self.seed), hash)))
    }
}

/// A verdict reached without the chain; only [`SigCheck::run`] and [`PowCheck::run`] make
/// one, so nothing unverified can be noted as verified.
pub struct Verified(Verdict);

enum Verdict {
    /// A transfer's signatures and proofs hold against the rings read.
    Sig([u8; 32]),
    /// A block's proof-of-work hash under the seed read.
    Pow([u8; 32], [u8; 32]),
}

impl<E: ChainExtension> Blockchain<E> {
    /// The rings of a RingCT transfer (of `blob_len` bytes) as the main chain has them now,
    /// for its signatures and proofs to be checked without the chain; only once every cheap
    /// check passes (size, version, extra, structure, fee, key images, ring size, members),
    /// so junk costs no expensive work. None otherwise: validation reports why.
    pub fn sig_check(&self, tx: &Transaction, blob_len: usize) -> Option<SigCheck> {
        if !matches!(tx.tx_type, TxType::Standard | TxType::Stake)
            || blob_len > self.params.max_tx_size
            || tx.version != 4
            || parse_extra(&tx.extra).is_err()
        {
            return None;
        }
        let next = Height(self.tip.0 .0.saturating_add(1));
        let rings = self
            .transfer_rings(tx, blob_len, next, &HashSet::new())
            .ok()?;
        Some(SigCheck {
            tx: tx.clone(),
            rings,
        })
    }

    /// What a block's proof of work needs (its seed and difficulty), when its parent is known
    /// and it is within the side-chain limits; None otherwise (nothing about it is worth
    /// checking before validation refuses it).
    pub fn pow_check(&self, block: &Block) -> Option<PowCheck> {
        let prev = block.header.prev_id;
        let parent_height = match self.store.block_meta(&prev).ok()? {
            Some(m) => m.height,
            None => self.store.alt_block(&prev).ok()??.height,
        };
        let height = Height(parent_height.0.checked_add(1)?);
        if prev != self.tip.1
            && (height.0.saturating_add(self.params.max_side_depth) < self.tip.0 .0
                || self.store.alt_count() >= self.params.max_side_blocks)
        {
            return None;
        }
        let seed = self.seed_for(prev, height).ok()?;
        let slot = self.rx_slot(&seed).ok()?;
        let difficulty = self.difficulty_after(prev).ok()?;
        Some(PowCheck {
            block: block.clone(),
            seed,
            slot,
            difficulty,
            params: self.params,
        })
    }

    /// How many validations found their verdict already reached without the lock:
    /// (transfers' signatures, blocks' proof of work).
    pub fn verdict_hits(&self) -> (u64, u64) {
        (
            self.caches.hits.0.load(Ordering::Relaxed),
            self.caches.hits.1.load(Ordering::Relaxed),
        )
    }

    /// Keeps a verdict reached without the chain, for validation to find.
    pub fn note_verified(&self, v: Verified) {
        match v.0 {
            Verdict::Sig(key) => self.caches.note_sig(key),
            Verdict::Pow(key, hash) => self.caches.note_pow(key, hash),
        }
    }

    /// The members of a ring given by its relative offsets; with `spendable_at`, each must be
    /// spendable in a block at that height.
    pub(super) fn ring_members(
        &self,
        key_offsets: &[u64],
        spendable_at: Option<Height>,
    ) -> Result<Ring, TxError> {
        let mut ring = Vec::with_capacity(key_offsets.len());
        let mut index = 0u64;
        for (i, off) in key_offsets.iter().enumerate() {
            if i > 0 && *off == 0 {
                return Err(TxError::Malformed("ring members must be distinct"));
            }
            index = index
                .checked_add(*off)
                .ok_or(TxError::Malformed("ring offset overflows"))?;
            let out = self
                .store
                .output(index)?
                .ok_or(TxError::UnknownOutput(index))?;
            if spendable_at.is_some_and(|h| !self.output_spendable(&out, h)) {
                return Err(TxError::LockedOutput(index));
            }
            ring.push([
                CompressedPoint::from(out.key),
                CompressedPoint::from(out.commitment),
            ]);
        }
        Ok(ring)
    }

    /// The RandomX cache a seed uses: the main one only for the seed the main chain's next
    /// block needs.
    pub(super) fn rx_slot(&self, seed: &BlockHash) -> Result<RxSlot, BlockError> {
        let main_seed = self.seed_for(self.tip.1, Height(self.tip.0 .0.saturating_add(1)))?;
        Ok(if *seed == main_seed {
            RxSlot::Main
        } else {
            RxSlot::Side
        })
    }
}
