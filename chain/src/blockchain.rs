//! The chain state machine: validates blocks and transactions against the stored chain,
//! applies them atomically, keeps side chains, and reorganises onto a heavier chain, emitting
//! detach/attach events in order.

use std::collections::HashSet;
use std::path::Path;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::traits::Identity;
use monero_oxide::ed25519::CompressedPoint;
use monero_oxide::ringct::{EncryptedAmount, RctPrunable, RctType};
use monero_oxide::transaction::Input;
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::address::Address;
use crate::block::{Block, BlockHeader};
use crate::crypto::{key_image_is_valid, zero_commit};
use crate::extension::{BlockTx, ChainExtension, NoExtension};
use crate::extra::{build_extra, parse_extra, ExtraError, ExtraField};
use crate::params::NetworkParams;
use crate::pow::{check_pow, next_difficulty, pow_hash, pow_hash_in, RxSlot};
use crate::reader::DecodeError;
use crate::reward::{build_miner_tx, max_miner_payout};
use crate::store::{BlockMeta, BlockWrite, ChainStore, OutputRecord, StoreError};
use crate::tx::{Transaction, TxType};
use crate::types::{Atomic, BlockHash, Difficulty, Height, KeyImage, TxHash};

mod errors;
mod presig;
mod reorg;
mod validate;

pub use presig::{PowCheck, SigCheck, Verified};

/// The extension's state is saved with every block whose height is a multiple of this.
pub const EXT_SNAPSHOT_INTERVAL: u64 = 10;

/// Most stake, unlock and state-change transactions a block template takes.
pub const MAX_TEMPLATE_STATE_TXS: usize = 200;

/// Unlock times at or above this are unix timestamps, below it block heights.
pub const UNLOCK_TIME_IS_TIMESTAMP: u64 = 500_000_000;

pub use errors::{BlockError, TxError};

/// A change of the main chain, in the order it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainEvent {
    /// A block left the main chain (tip first).
    Detached(Height, BlockHash),
    /// A block joined the main chain.
    Attached(Height, BlockHash),
}

/// What adding a block did.
#[derive(Debug)]
pub enum AddOutcome {
    /// Already known (main or side chain).
    AlreadyKnown,
    /// Stored on a side chain that is not heavier.
    SideChain,
    /// The main chain changed.
    Changed {
        /// Detach/attach events in order.
        events: Vec<ChainEvent>,
        /// Blobs of transactions from detached blocks, for the mempool.
        returned_txs: Vec<Vec<u8>>,
    },
}

/// A block ready to mine.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    /// The block (nonce 0).
    pub block: Block,
    /// Its transactions' blobs, in order.
    pub txs: Vec<Vec<u8>>,
    /// Difficulty it must meet.
    pub difficulty: Difficulty,
    /// Height it will have.
    pub height: Height,
    /// Id of its RandomX seed block.
    pub seed: BlockHash,
    /// The network.
    pub params: &'static NetworkParams,
}

/// The chain, with the consensus extension `E` kept in step with it.
pub struct Blockchain<E: ChainExtension = NoExtension> {
    params: &'static NetworkParams,
    store: ChainStore,
    tip: (Height, BlockHash),
    tip_meta: BlockMeta,
    ext: E,
    /// Verdicts reached without the lock (signatures, proof of work).
    caches: presig::Caches,
}

impl<E: ChainExtension> std::fmt::Debug for Blockchain<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blockchain")
            .field("network", &self.params.name)
            .field("tip", &self.tip)
            .finish()
    }
}

/// The genesis block of a network: deterministic, no outputs, network id in its extra.
pub fn genesis_block(params: &NetworkParams) -> Block {
    let extra = build_extra(&[ExtraField::Nonce(params.network_id.to_vec())]);
    let miner_tx = Transaction {
        version: 4,
        output_unlock_times: vec![],
        v3_state_change: false,
        unlock_time: params.coinbase_unlock_window,
        inputs: vec![Input::Gen(0)],
        outputs: vec![],
        extra,
        tx_type: TxType::Standard,
        rct: None,
    };
    Block {
        header: BlockHeader {
            major_version: params.hard_forks[0].0,
            minor_version: params.hard_forks[0].0,
            timestamp: params.genesis_timestamp,
            prev_id: BlockHash::default(),
            nonce: params.genesis_nonce,
        },
        miner_tx,
        tx_hashes: vec![],
    }
}

/// A decoded, hashed transaction.
struct PreparedTx {
    hash: TxHash,
    tx: Transaction,
    blob: Vec<u8>,
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] / 2) + (v[n / 2] / 2) + (v[n / 2 - 1] % 2 + v[n / 2] % 2) / 2
    }
}

impl Blockchain<NoExtension> {
    /// Opens a plain chain (no service node rules) under `path`.
    pub fn open(params: &'static NetworkParams, path: &Path) -> Result<Blockchain, BlockError> {
        Blockchain::open_with(params, path, NoExtension::default())
    }
}

impl<E: ChainExtension> Blockchain<E> {
    /// Opens the chain under `path`, creating it with the genesis block when empty, and brings
    /// the extension up to the chain's tip (replaying blocks it has not seen).
    pub fn open_with(
        params: &'static NetworkParams,
        path: &Path,
        ext: E,
    ) -> Result<Blockchain<E>, BlockError> {
        let store = ChainStore::open(path)?;
        let genesis = genesis_block(params);
        let tip = match store.tip()? {
            Some(tip) => {
                let stored_genesis = store.hash_at(Height(0))?;
                if stored_genesis != Some(genesis.hash()) {
                    return Err(StoreError::Corrupt {
                        cf: "heights",
                        what: "genesis belongs to another network".into(),
                    }
                    .into());
                }
                tip
            }
            None => {
                let hash = genesis.hash();
                let blob = genesis.serialize();
                let meta = BlockMeta {
                    height: Height(0),
                    cumulative_difficulty: 1,
                    difficulty: 1,
                    timestamp: genesis.header.timestamp,
                    first_output_index: 0,
                    output_count: 0,
                };
                store.apply_block(&BlockWrite {
                    hash,
                    meta,
                    blob: &blob,
                    // The miner tx is recorded like every block's, so it can be looked up.
                    txs: vec![(genesis.miner_tx.hash(), 0, genesis.miner_tx.serialize())],
                    outputs: vec![],
                    key_images: vec![],
                    ext_state: None,
                })?;
                (Height(0), hash)
            }
        };
        let tip_meta = store
            .block_meta(&tip.1)?
            .ok_or_else(|| StoreError::Corrupt {
                cf: "blocks",
                what: "tip block missing".into(),
            })?;
        let mut ext = ext;
        if let Some(state) = store.ext_state()? {
            if let Err(e) = ext.restore(&state) {
                tracing::warn!(error = %e, "saved service node list unreadable; rebuilding from the chain");
                ext.reset();
            }
        }
        let mut chain = Blockchain {
            params,
            store,
            tip,
            tip_meta,
            caches: presig::Caches::default(),
            ext,
        };
        chain.sync_extension()?;
        Ok(chain)
    }

    /// The extension (read-only).
    pub fn ext(&self) -> &E {
        &self.ext
    }

    /// Brings the extension to the chain tip: replays the blocks after its own tip, or all
    /// blocks when its tip is not on the main chain.
    fn sync_extension(&mut self) -> Result<(), BlockError> {
        if self.ext.is_stateless() {
            return Ok(());
        }
        let start = match self.ext.tip() {
            Some((h, hash)) if h <= self.tip.0 && self.store.hash_at(h)? == Some(hash) => h.0 + 1,
            _ => {
                self.ext.reset();
                0
            }
        };
        if start > self.tip.0 .0 {
            return Ok(());
        }
        tracing::info!(from = start, to = %self.tip.0, "bringing the service node list up to the chain tip");
        for h in start..=self.tip.0 .0 {
            let (hash, _, blob) = self
                .block_at(Height(h))?
                .ok_or(BlockError::UnknownParent(BlockHash::default()))?;
            let (block, txs) = self.stored_block(&blob)?;
            let btxs: Vec<BlockTx<'_>> = txs
                .iter()
                .map(|t| BlockTx {
                    hash: t.hash,
                    tx: &t.tx,
                })
                .collect();
            self.ext.attach(&block, hash, Height(h), &btxs);
        }
        self.store.put_ext_state(&self.ext.snapshot())?;
        Ok(())
    }

    /// Network parameters.
    pub fn params(&self) -> &'static NetworkParams {
        self.params
    }

    /// The store, for read-only queries.
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    /// Height and id of the top block.
    pub fn tip(&self) -> (Height, BlockHash) {
        self.tip
    }

    /// Metadata of the top block.
    pub fn tip_meta(&self) -> &BlockMeta {
        &self.tip_meta
    }

    /// Number of blocks (tip height + 1).
    pub fn block_count(&self) -> u64 {
        self.tip.0 .0 + 1
    }

    /// Total number of outputs on the main chain.
    pub fn output_count(&self) -> u64 {
        self.tip_meta.first_output_index + self.tip_meta.output_count
    }

    /// (timestamp, cumulative difficulty) of up to `n` blocks ending at `hash`, oldest first,
    /// following side chains back to the main chain.
    fn history(&self, hash: BlockHash, n: usize) -> Result<Vec<(u64, Difficulty)>, BlockError> {
        let mut out = Vec::with_capacity(n);
        let mut cur = hash;
        while out.len() < n {
            if let Some(meta) = self.store.block_meta(&cur)? {
                // On the main chain: the rest comes by height.
                let mut h = meta.height.0;
                out.push((meta.timestamp, meta.cumulative_difficulty));
                while out.len() < n && h > 0 {
                    h -= 1;
                    let id = self
                        .store
                        .hash_at(Height(h))?
                        .ok_or(BlockError::UnknownParent(cur))?;
                    let m = self
                        .store
                        .block_meta(&id)?
                        .ok_or(BlockError::UnknownParent(id))?;
                    out.push((m.timestamp, m.cumulative_difficulty));
                }
                break;
            }
            let alt = self
                .store
                .alt_block(&cur)?
                .ok_or(BlockError::UnknownParent(cur))?;
            let block = Block::from_bytes(&alt.blob)?;
            out.push((block.header.timestamp, alt.cumulative_difficulty));
            if alt.height.0 == 0 {
                break;
            }
            cur = block.header.prev_id;
        }
        out.reverse();
        Ok(out)
    }

    /// The id of the main- or side-chain ancestor at `height` of the block `from`.
    fn ancestor_at(&self, from: BlockHash, height: Height) -> Result<BlockHash, BlockError> {
        let mut cur = from;
        loop {
            if let Some(meta) = self.store.block_meta(&cur)? {
                if meta.height < height {
                    return Err(BlockError::UnknownParent(cur));
                }
                return self
                    .store
                    .hash_at(height)?
                    .ok_or(BlockError::UnknownParent(cur));
            }
            let alt = self
                .store
                .alt_block(&cur)?
                .ok_or(BlockError::UnknownParent(cur))?;
            if alt.height == height {
                return Ok(cur);
            }
            if alt.height < height {
                return Err(BlockError::UnknownParent(cur));
            }
            cur = Block::from_bytes(&alt.blob)?.header.prev_id;
        }
    }

    /// The RandomX seed block id for a block at `height` whose parent is `prev`.
    fn seed_for(&self, prev: BlockHash, height: Height) -> Result<BlockHash, BlockError> {
        let seed_height = Height(crate::pow::rx_seed_height(height.0));
        if seed_height.0 + 1 == height.0 {
            return Ok(prev);
        }
        self.ancestor_at(prev, seed_height)
    }

    /// Difficulty required of a block whose parent is `prev`.
    fn difficulty_after(&self, prev: BlockHash) -> Result<Difficulty, BlockError> {
        let window = match self.params.difficulty {
            crate::params::DifficultyMode::Fixed(d) => return Ok(d),
            crate::params::DifficultyMode::Lwma { window } => window,
        };
        let hist = self.history(prev, window + 1)?;
        let ts: Vec<u64> = hist.iter().map(|h| h.0).collect();
        let cd: Vec<Difficulty> = hist.iter().map(|h| h.1).collect();
        Ok(next_difficulty(self.params, &ts, &cd))
    }

    /// Difficulty the next block on the main chain must meet.
    pub fn next_difficulty(&self) -> Result<Difficulty, BlockError> {
        self.difficulty_after(self.tip.1)
    }

    /// Fully validates `block` on top of the current tip and writes it.
    fn apply(
        &mut self,
        block: &Block,
        blob: &[u8],
        tx_blobs: &[Vec<u8>],
        now: u64,
        check_pow_and_time: bool,
    ) -> Result<BlockHash, BlockError> {
        let height = Height(self.tip.0 .0 + 1);
        if block.header.prev_id != self.tip.1 {
            return Err(BlockError::UnknownParent(block.header.prev_id));
        }
        self.check_total_size(blob, tx_blobs)?;
        let difficulty = if check_pow_and_time {
            self.check_header(block, height, now)?
        } else {
            self.difficulty_after(block.header.prev_id)?
        };
        let txs = self.prepare_txs(block, tx_blobs)?;
        let mut taken = HashSet::new();
        let mut fees = Atomic::ZERO;
        for p in &txs {
            if self.store.tx(&p.hash)?.is_some() {
                return Err(BlockError::Tx(p.hash, TxError::AlreadyInChain(p.hash)));
            }
            self.validate_tx_alone(&p.tx, p.blob.len(), height, &taken)
                .map_err(|e| BlockError::Tx(p.hash, e))?;
            taken.extend(self.claims(&p.tx));
            fees = fees
                .checked_add(Atomic(p.tx.fee()))
                .ok_or_else(|| BlockError::MinerTx("fees overflow".into()))?;
        }
        // The extension's rules, each transaction against the state the ones before it leave.
        let refs: Vec<&Transaction> = txs.iter().map(|p| &p.tx).collect();
        if let Err((i, r)) = self.ext.check_block_txs(&refs, height) {
            let hash = txs.get(i).map(|p| p.hash).unwrap_or_default();
            return Err(BlockError::Tx(hash, validate::rejection_error(r)));
        }
        self.check_miner_tx(block, height, fees)?;

        let hash = block.hash();
        let first_output_index = self.output_count();
        let mut outputs = Vec::new();
        let miner_hash = block.miner_tx.hash();
        for (i, o) in block.miner_tx.outputs.iter().enumerate() {
            outputs.push(OutputRecord {
                key: o.key.to_bytes(),
                commitment: zero_commit(o.amount.unwrap_or(0)),
                unlock_time: block
                    .miner_tx
                    .output_unlock_times
                    .get(i)
                    .copied()
                    .unwrap_or(block.miner_tx.unlock_time),
                height,
                tx_hash: miner_hash,
                coinbase: true,
            });
        }
        let mut tx_records = Vec::with_capacity(txs.len() + 1);
        tx_records.push((miner_hash, first_output_index, block.miner_tx.serialize()));
        let mut key_images = Vec::new();
        for p in &txs {
            let first = first_output_index + outputs.len() as u64;
            let commitments =
                p.tx.rct
                    .as_ref()
                    .map(|r| r.base.commitments.clone())
                    .unwrap_or_default();
            for (i, o) in p.tx.outputs.iter().enumerate() {
                let unlock =
                    p.tx.output_unlock_times
                        .get(i)
                        .copied()
                        .unwrap_or(0)
                        .max(p.tx.unlock_time);
                outputs.push(OutputRecord {
                    key: o.key.to_bytes(),
                    commitment: commitments
                        .get(i)
                        .map_or([0; 32], CompressedPoint::to_bytes),
                    unlock_time: unlock,
                    height,
                    tx_hash: p.hash,
                    coinbase: false,
                });
            }
            tx_records.push((p.hash, first, p.blob.clone()));
            key_images.extend(p.tx.key_images().into_iter().map(|ki| (ki, p.hash)));
        }
        let meta = BlockMeta {
            height,
            cumulative_difficulty: self
                .tip_meta
                .cumulative_difficulty
                .saturating_add(difficulty),
            difficulty,
            timestamp: block.header.timestamp,
            first_output_index,
            output_count: outputs.len() as u64,
        };
        let btxs: Vec<BlockTx<'_>> = txs
            .iter()
            .map(|p| BlockTx {
                hash: p.hash,
                tx: &p.tx,
            })
            .collect();
        self.ext.attach(block, hash, height, &btxs);
        let ext_state = (!self.ext.is_stateless()
            && height.0.is_multiple_of(EXT_SNAPSHOT_INTERVAL))
        .then(|| self.ext.snapshot());
        let written = self.store.apply_block(&BlockWrite {
            hash,
            meta: meta.clone(),
            blob,
            txs: tx_records,
            outputs,
            key_images,
            ext_state,
        });
        if let Err(e) = written {
            if !self.ext.detach(height, hash, self.tip) {
                self.ext.reset();
                self.sync_extension()?;
            }
            return Err(e.into());
        }
        self.tip = (height, hash);
        self.tip_meta = meta;
        Ok(hash)
    }

    /// A block and its transactions as this store holds them (main chain): decoded, with
    /// their hashes and blobs. A block or transaction that is missing or does not decode is
    /// store corruption.
    fn stored_block(&self, blob: &[u8]) -> Result<(Block, Vec<PreparedTx>), StoreError> {
        let block = Block::from_bytes(blob).map_err(|e| StoreError::Corrupt {
            cf: "blocks",
            what: e.to_string(),
        })?;
        let mut txs = Vec::with_capacity(block.tx_hashes.len());
        for h in &block.tx_hashes {
            let (_, _, blob) = self.store.tx(h)?.ok_or_else(|| StoreError::Corrupt {
                cf: "txs",
                what: format!("{h} missing"),
            })?;
            let tx = Transaction::from_bytes(&blob).map_err(|e| StoreError::Corrupt {
                cf: "txs",
                what: e.to_string(),
            })?;
            txs.push(PreparedTx { hash: *h, tx, blob });
        }
        Ok((block, txs))
    }

    /// A block and its transactions together within the block size limit.
    fn check_total_size(&self, blob: &[u8], tx_blobs: &[Vec<u8>]) -> Result<(), BlockError> {
        let total = tx_blobs
            .iter()
            .fold(blob.len(), |n, t| n.saturating_add(t.len()));
        if total > self.params.max_block_size {
            return Err(BlockError::TooLarge(total, self.params.max_block_size));
        }
        Ok(())
    }

    /// Adds a block (blob plus its transactions' blobs). `now` is the local unix time.
    pub fn add_block(
        &mut self,
        blob: &[u8],
        tx_blobs: &[Vec<u8>],
        now: u64,
    ) -> Result<AddOutcome, BlockError> {
        if blob.len() > self.params.max_block_size {
            return Err(BlockError::TooLarge(blob.len(), self.params.max_block_size));
        }
        let block = Block::from_bytes(blob)?;
        let hash = block.hash();
        if self.store.block_meta(&hash)?.is_some() || self.store.alt_block(&hash)?.is_some() {
            return Ok(AddOutcome::AlreadyKnown);
        }
        if block.header.prev_id == self.tip.1 {
            let h = self.apply(&block, blob, tx_blobs, now, true)?;
            self.prune_side_chains();
            return Ok(AddOutcome::Changed {
                events: vec![ChainEvent::Attached(self.tip.0, h)],
                returned_txs: vec![],
            });
        }
        // Side chain: the parent must be known on the main chain or a side chain.
        let parent = if let Some(m) = self.store.block_meta(&block.header.prev_id)? {
            (m.height, m.cumulative_difficulty)
        } else if let Some(a) = self.store.alt_block(&block.header.prev_id)? {
            (a.height, a.cumulative_difficulty)
        } else {
            return Err(BlockError::UnknownParent(block.header.prev_id));
        };
        let height = Height(parent.0 .0 + 1);
        // Too deep to ever be reorganised onto: refused before any proof-of-work is hashed.
        if height.0.saturating_add(self.params.max_side_depth) < self.tip.0 .0 {
            return Err(BlockError::TooDeep {
                height,
                tip: self.tip.0,
                limit: self.params.max_side_depth,
            });
        }
        // Full: refused (without blame) until the tip moves on and old ones are pruned.
        // Forgetting some instead would cut a kept branch off from its base; and filling the
        // set takes `max_side_blocks` blocks of real proof of work within `max_side_depth`.
        if self.store.alt_count() >= self.params.max_side_blocks {
            return Err(BlockError::SideChainsFull(self.params.max_side_blocks));
        }
        let difficulty = self.check_header(&block, height, now)?;
        if block.claimed_height() != Some(height) {
            return Err(BlockError::MinerTx(
                "Gen input must carry the block height".into(),
            ));
        }
        self.check_total_size(blob, tx_blobs)?;
        // Keep exactly the block's transactions, in order.
        let ordered: Vec<Vec<u8>> = self
            .prepare_txs(&block, tx_blobs)?
            .into_iter()
            .map(|p| p.blob)
            .collect();
        let cumulative = parent.1.saturating_add(difficulty);
        self.store
            .put_alt_block(&hash, height, cumulative, blob, &ordered)?;
        if cumulative <= self.tip_meta.cumulative_difficulty {
            self.prune_side_chains();
            return Ok(AddOutcome::SideChain);
        }
        let out = self.reorganize(hash, now);
        self.prune_side_chains();
        out
    }

    /// A block template on top of the tip paying `miner`, with the given transactions (already
    /// validated by the mempool; invalid ones are skipped).
    pub fn block_template<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        miner: &Address,
        candidates: Vec<Vec<u8>>,
        now: u64,
    ) -> Result<BlockTemplate, BlockError> {
        let height = Height(self.tip.0 .0 + 1);
        let window = self.params.timestamp_check_window;
        let hist = self.history(self.tip.1, window)?;
        let med = median(hist.iter().map(|h| h.0).collect());
        let timestamp = now.max(med + 1).max(self.tip_meta.timestamp);
        let mut taken = HashSet::new();
        let mut txs = Vec::new();
        let mut chosen: Vec<Transaction> = Vec::new();
        let mut non_standard = 0usize;
        let mut hashes = Vec::new();
        let mut fees = Atomic::ZERO;
        let mut size = 0usize;
        for blob in candidates {
            let Ok(tx) = Transaction::from_bytes(&blob) else {
                continue;
            };
            if size + blob.len() > self.params.max_block_size / 2
                || txs.len() >= self.params.max_block_txs
            {
                break;
            }
            if self
                .validate_tx_alone(&tx, blob.len(), height, &taken)
                .is_err()
            {
                continue;
            }
            // The extension's rules: a plain transfer against the tip's state; anything else
            // against the state the transactions before it leave (so a registration and its
            // contribution can share the block).
            let applies = if tx.tx_type == TxType::Standard {
                self.ext.check_tx(&tx, height).is_ok()
            } else if non_standard >= MAX_TEMPLATE_STATE_TXS {
                // Each is checked after all chosen before it: bounded, or a pool of stakes
                // would make this quadratic under the lock.
                false
            } else {
                non_standard += 1;
                let mut refs: Vec<&Transaction> = chosen.iter().collect();
                refs.push(&tx);
                self.ext.check_block_txs(&refs, height).is_ok()
            };
            if !applies {
                continue;
            }
            taken.extend(self.claims(&tx));
            let Some(f) = fees.checked_add(Atomic(tx.fee())) else {
                continue;
            };
            fees = f;
            size += blob.len();
            hashes.push(tx.hash());
            txs.push(blob);
            chosen.push(tx);
        }
        // A safety net: should the whole list not pass in order, drop the first that fails
        // and check again.
        for _ in 0..100 {
            let refs: Vec<&Transaction> = chosen.iter().collect();
            let Err((i, _)) = self.ext.check_block_txs(&refs, height) else {
                break;
            };
            if i >= chosen.len() {
                break;
            }
            let tx = chosen.remove(i);
            fees = fees.checked_sub(Atomic(tx.fee())).unwrap_or(Atomic::ZERO);
            hashes.remove(i);
            txs.remove(i);
        }
        let amount = max_miner_payout(self.params, height, fees)
            .ok_or_else(|| BlockError::MinerTx("reward overflows".into()))?;
        let split = self.params.reward_split(self.params.hard_fork_at(height));
        let plan = self.ext.payouts(height, split.service_nodes);
        let miner_tx = build_miner_tx(rng, self.params, height, miner, amount, &plan)
            .ok_or_else(|| BlockError::MinerTx("miner address keys are not valid points".into()))?;
        let version = self.params.hard_fork_at(height);
        let block = Block {
            header: BlockHeader {
                major_version: version,
                minor_version: version,
                timestamp,
                prev_id: self.tip.1,
                nonce: 0,
            },
            miner_tx,
            tx_hashes: hashes,
        };
        let seed = self.seed_for(self.tip.1, height)?;
        Ok(BlockTemplate {
            block,
            txs,
            difficulty: self.next_difficulty()?,
            height,
            seed,
            params: self.params,
        })
    }

    /// Main-chain block at `height`: (meta, blob).
    pub fn block_at(
        &self,
        height: Height,
    ) -> Result<Option<(BlockHash, BlockMeta, Vec<u8>)>, StoreError> {
        let Some(hash) = self.store.hash_at(height)? else {
            return Ok(None);
        };
        Ok(self.store.block(&hash)?.map(|(m, b)| (hash, m, b)))
    }

    /// Saves the extension's state and flushes the chain to disk.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if !self.ext.is_stateless() {
            self.store.put_ext_state(&self.ext.snapshot())?;
        }
        self.store.flush()
    }
}

/// Searches nonces until the block meets `difficulty` or `max_tries` run out.
pub fn mine(
    params: &NetworkParams,
    seed: &BlockHash,
    block: &mut Block,
    difficulty: Difficulty,
    max_tries: u64,
) -> bool {
    for _ in 0..max_tries {
        match pow_hash(params, block, seed) {
            Ok(h) if check_pow(&h, difficulty) => return true,
            Ok(_) => block.header.nonce = block.header.nonce.wrapping_add(1),
            Err(_) => return false,
        }
    }
    false
}

impl BlockTemplate {
    /// Searches nonces for this template (see [`mine`]).
    pub fn mine(&mut self, max_tries: u64) -> bool {
        mine(
            self.params,
            &self.seed,
            &mut self.block,
            self.difficulty,
            max_tries,
        )
    }
}
