//! The RocksDB chain store. One `WriteBatch` per block (apply or pop), so a crash leaves the
//! database on a whole block boundary.
//!
//! Column families and their encodings (integers big-endian so iteration follows height/index):
//!
//! | cf | key | value |
//! |---|---|---|
//! | `meta` | `b"tip"` | height u64 ‖ block hash (32) |
//! | `meta` | `b"ext_state"` | the service node list snapshot (JSON), as of the block its `tip` field names |
//! | `heights` | height u64 | block hash (32) |
//! | `blocks` | block hash (32) | height u64 ‖ cumulative difficulty u128 ‖ difficulty u128 ‖ timestamp u64 ‖ first output index u64 ‖ output count u64 ‖ block blob |
//! | `txs` | tx hash (32) | height u64 ‖ first output index u64 ‖ tx blob |
//! | `outputs` | global output index u64 | output key (32) ‖ commitment (32) ‖ unlock time u64 ‖ height u64 ‖ tx hash (32) ‖ coinbase u8 |
//! | `key_images` | key image (32) | spending tx hash (32) |
//! | `alt_blocks` | block hash (32) | height u64 ‖ cumulative difficulty u128 ‖ (u32 length ‖ blob) for the block, then for each of its transactions |

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use thiserror::Error;

use crate::types::{BlockHash, Difficulty, Height, KeyImage, TxHash};

const CF_META: &str = "meta";
const CF_HEIGHTS: &str = "heights";
const CF_BLOCKS: &str = "blocks";
const CF_TXS: &str = "txs";
const CF_OUTPUTS: &str = "outputs";
const CF_KEY_IMAGES: &str = "key_images";
const CF_ALT: &str = "alt_blocks";
const ALL_CFS: [&str; 7] = [
    CF_META,
    CF_HEIGHTS,
    CF_BLOCKS,
    CF_TXS,
    CF_OUTPUTS,
    CF_KEY_IMAGES,
    CF_ALT,
];

/// Store failures. These are our fault (or the disk's), never a peer's.
#[derive(Debug, Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record on disk does not decode: the database is damaged.
    #[error("corrupt record in {cf}: {what}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// What is wrong.
        what: String,
    },
}

/// Per-block metadata kept beside the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    /// Height.
    pub height: Height,
    /// Sum of difficulties up to and including this block.
    pub cumulative_difficulty: Difficulty,
    /// This block's difficulty.
    pub difficulty: Difficulty,
    /// Header timestamp.
    pub timestamp: u64,
    /// Global index of the first output created by this block (miner tx first).
    pub first_output_index: u64,
    /// Number of outputs the block created.
    pub output_count: u64,
}

/// A stored output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// One-time key.
    pub key: [u8; 32],
    /// Amount commitment (zero-commit for plaintext coinbase amounts).
    pub commitment: [u8; 32],
    /// Unlock time (height below 500,000,000, else unix time).
    pub unlock_time: u64,
    /// Height of the block that created it.
    pub height: Height,
    /// Transaction that created it.
    pub tx_hash: TxHash,
    /// Whether it came from a coinbase.
    pub coinbase: bool,
}

impl OutputRecord {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(113);
        v.extend_from_slice(&self.key);
        v.extend_from_slice(&self.commitment);
        v.extend_from_slice(&self.unlock_time.to_be_bytes());
        v.extend_from_slice(&self.height.0.to_be_bytes());
        v.extend_from_slice(&self.tx_hash.0);
        v.push(u8::from(self.coinbase));
        v
    }
    fn decode(v: &[u8]) -> Result<OutputRecord, StoreError> {
        if v.len() != 113 {
            return Err(corrupt(CF_OUTPUTS, "length"));
        }
        Ok(OutputRecord {
            key: arr(&v[0..32]),
            commitment: arr(&v[32..64]),
            unlock_time: be64(&v[64..72]),
            height: Height(be64(&v[72..80])),
            tx_hash: TxHash(arr(&v[80..112])),
            coinbase: v[112] != 0,
        })
    }
}

/// A side-chain block kept for a possible reorg.
#[derive(Clone, Debug)]
pub struct AltBlock {
    /// Its height.
    pub height: Height,
    /// Cumulative difficulty of its chain up to it.
    pub cumulative_difficulty: Difficulty,
    /// Block blob.
    pub blob: Vec<u8>,
    /// Blobs of its transactions, in block order.
    pub txs: Vec<Vec<u8>>,
}

/// Everything a block adds, prepared by the chain and written in one batch.
pub struct BlockWrite<'a> {
    /// Block id.
    pub hash: BlockHash,
    /// Metadata.
    pub meta: BlockMeta,
    /// Block blob.
    pub blob: &'a [u8],
    /// (tx hash, first output index, blob) for each non-coinbase tx.
    pub txs: Vec<(TxHash, u64, Vec<u8>)>,
    /// Outputs in global index order starting at `meta.first_output_index`.
    pub outputs: Vec<OutputRecord>,
    /// Key images spent, with the spending tx.
    pub key_images: Vec<(KeyImage, TxHash)>,
    /// A snapshot of the chain extension's state after this block, when due.
    pub ext_state: Option<Vec<u8>>,
}

fn corrupt(cf: &'static str, what: &str) -> StoreError {
    StoreError::Corrupt {
        cf,
        what: what.to_owned(),
    }
}

fn arr(v: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(v);
    a
}

fn be64(v: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(v);
    u64::from_be_bytes(a)
}

fn be128(v: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(v);
    u128::from_be_bytes(a)
}

/// The chain database.
pub struct ChainStore {
    db: DB,
    /// (height, hash) of every side-chain block, so pruning does not scan the blobs.
    alt: std::sync::Mutex<std::collections::BTreeSet<(u64, [u8; 32])>>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl ChainStore {
    /// Opens (creating if missing) the store under `path`.
    pub fn open(path: &Path) -> Result<ChainStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(256);
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let mut alt = std::collections::BTreeSet::new();
        {
            let cf = db
                .cf_handle(CF_ALT)
                .ok_or_else(|| corrupt(CF_ALT, "column family missing"))?;
            for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
                let (k, v) = item?;
                if k.len() != 32 || v.len() < 8 {
                    // A side-chain block is only kept in case of a reorg: one that cannot be
                    // read is skipped (reading it later reports it), not a reason to refuse
                    // to start.
                    tracing::warn!(key = %hex::encode(&k), "unreadable side-chain record skipped");
                    continue;
                }
                alt.insert((be64(&v[..8]), arr(&k)));
            }
        }
        Ok(ChainStore {
            db,
            alt: std::sync::Mutex::new(alt),
        })
    }

    fn alt_index(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(u64, [u8; 32])>> {
        self.alt.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many side-chain blocks are stored.
    pub fn alt_count(&self) -> usize {
        self.alt_index().len()
    }

    /// Forgets side-chain blocks below `min_height`. Returns how many were forgotten.
    pub fn prune_alt(&self, min_height: u64) -> Result<usize, StoreError> {
        let doomed: Vec<(u64, [u8; 32])> = self
            .alt_index()
            .range(..(min_height, [0u8; 32]))
            .copied()
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut b = WriteBatch::default();
        for (_, h) in &doomed {
            b.delete_cf(self.cf(CF_ALT)?, h);
        }
        self.write(b)?;
        let mut idx = self.alt_index();
        for d in &doomed {
            idx.remove(d);
        }
        Ok(doomed.len())
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| corrupt(name, "column family missing"))
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// The current tip, or `None` for an empty store.
    pub fn tip(&self) -> Result<Option<(Height, BlockHash)>, StoreError> {
        match self.get(CF_META, b"tip")? {
            None => Ok(None),
            Some(v) if v.len() == 40 => Ok(Some((Height(be64(&v[..8])), BlockHash(arr(&v[8..]))))),
            Some(_) => Err(corrupt(CF_META, "tip length")),
        }
    }

    /// The main-chain block id at `height`.
    pub fn hash_at(&self, height: Height) -> Result<Option<BlockHash>, StoreError> {
        match self.get(CF_HEIGHTS, &height.0.to_be_bytes())? {
            None => Ok(None),
            Some(v) if v.len() == 32 => Ok(Some(BlockHash(arr(&v)))),
            Some(_) => Err(corrupt(CF_HEIGHTS, "hash length")),
        }
    }

    /// Metadata and blob of a main-chain block.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<(BlockMeta, Vec<u8>)>, StoreError> {
        let Some(v) = self.get(CF_BLOCKS, &hash.0)? else {
            return Ok(None);
        };
        if v.len() < 72 {
            return Err(corrupt(CF_BLOCKS, "short record"));
        }
        let meta = BlockMeta {
            height: Height(be64(&v[0..8])),
            cumulative_difficulty: be128(&v[8..24]),
            difficulty: be128(&v[24..40]),
            timestamp: be64(&v[40..48]),
            first_output_index: be64(&v[48..56]),
            output_count: be64(&v[56..64]),
        };
        Ok(Some((meta, v[64..].to_vec())))
    }

    /// Metadata of a main-chain block.
    pub fn block_meta(&self, hash: &BlockHash) -> Result<Option<BlockMeta>, StoreError> {
        Ok(self.block(hash)?.map(|(m, _)| m))
    }

    /// A stored transaction: (height, first output index, blob).
    pub fn tx(&self, hash: &TxHash) -> Result<Option<(Height, u64, Vec<u8>)>, StoreError> {
        let Some(v) = self.get(CF_TXS, &hash.0)? else {
            return Ok(None);
        };
        if v.len() < 16 {
            return Err(corrupt(CF_TXS, "short record"));
        }
        Ok(Some((
            Height(be64(&v[..8])),
            be64(&v[8..16]),
            v[16..].to_vec(),
        )))
    }

    /// An output by global index.
    pub fn output(&self, index: u64) -> Result<Option<OutputRecord>, StoreError> {
        self.get(CF_OUTPUTS, &index.to_be_bytes())?
            .map(|v| OutputRecord::decode(&v))
            .transpose()
    }

    /// Whether a key image is spent on the main chain.
    pub fn key_image_spent(&self, ki: &KeyImage) -> Result<bool, StoreError> {
        Ok(self.get(CF_KEY_IMAGES, &ki.0)?.is_some())
    }

    /// An alternative (side-chain) block with its transactions.
    pub fn alt_block(&self, hash: &BlockHash) -> Result<Option<AltBlock>, StoreError> {
        let Some(v) = self.get(CF_ALT, &hash.0)? else {
            return Ok(None);
        };
        if v.len() < 24 {
            return Err(corrupt(CF_ALT, "short record"));
        }
        let mut parts = Vec::new();
        let mut rest = &v[24..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(corrupt(CF_ALT, "truncated length"));
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() < 4 + n {
                return Err(corrupt(CF_ALT, "truncated blob"));
            }
            parts.push(rest[4..4 + n].to_vec());
            rest = &rest[4 + n..];
        }
        if parts.is_empty() {
            return Err(corrupt(CF_ALT, "no block blob"));
        }
        let blob = parts.remove(0);
        Ok(Some(AltBlock {
            height: Height(be64(&v[..8])),
            cumulative_difficulty: be128(&v[8..24]),
            blob,
            txs: parts,
        }))
    }

    fn encode_alt(height: Height, cumulative: Difficulty, blob: &[u8], txs: &[Vec<u8>]) -> Vec<u8> {
        let mut v =
            Vec::with_capacity(28 + blob.len() + txs.iter().map(|t| t.len() + 4).sum::<usize>());
        v.extend_from_slice(&height.0.to_be_bytes());
        v.extend_from_slice(&cumulative.to_be_bytes());
        for part in std::iter::once(blob).chain(txs.iter().map(Vec::as_slice)) {
            v.extend_from_slice(&(part.len() as u32).to_be_bytes());
            v.extend_from_slice(part);
        }
        v
    }

    /// Stores a side-chain block and its transactions.
    pub fn put_alt_block(
        &self,
        hash: &BlockHash,
        height: Height,
        cumulative: Difficulty,
        blob: &[u8],
        txs: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.db.put_cf(
            self.cf(CF_ALT)?,
            hash.0,
            Self::encode_alt(height, cumulative, blob, txs),
        )?;
        self.alt_index().insert((height.0, hash.0));
        Ok(())
    }

    /// Forgets a side-chain block.
    pub fn delete_alt_block(&self, hash: &BlockHash) -> Result<(), StoreError> {
        self.db.delete_cf(self.cf(CF_ALT)?, hash.0)?;
        self.alt_index().retain(|(_, h)| *h != hash.0);
        Ok(())
    }

    /// Appends a block to the main chain atomically. The block also leaves the side-chain set.
    pub fn apply_block(&self, w: &BlockWrite<'_>) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        let h = w.meta.height.0.to_be_bytes();
        let mut rec = Vec::with_capacity(64 + w.blob.len());
        rec.extend_from_slice(&h);
        rec.extend_from_slice(&w.meta.cumulative_difficulty.to_be_bytes());
        rec.extend_from_slice(&w.meta.difficulty.to_be_bytes());
        rec.extend_from_slice(&w.meta.timestamp.to_be_bytes());
        rec.extend_from_slice(&w.meta.first_output_index.to_be_bytes());
        rec.extend_from_slice(&w.meta.output_count.to_be_bytes());
        rec.extend_from_slice(w.blob);
        b.put_cf(self.cf(CF_BLOCKS)?, w.hash.0, rec);
        b.put_cf(self.cf(CF_HEIGHTS)?, h, w.hash.0);
        for (txh, first_out, blob) in &w.txs {
            let mut v = Vec::with_capacity(16 + blob.len());
            v.extend_from_slice(&h);
            v.extend_from_slice(&first_out.to_be_bytes());
            v.extend_from_slice(blob);
            b.put_cf(self.cf(CF_TXS)?, txh.0, v);
        }
        for (i, o) in w.outputs.iter().enumerate() {
            b.put_cf(
                self.cf(CF_OUTPUTS)?,
                (w.meta.first_output_index + i as u64).to_be_bytes(),
                o.encode(),
            );
        }
        for (ki, txh) in &w.key_images {
            b.put_cf(self.cf(CF_KEY_IMAGES)?, ki.0, txh.0);
        }
        let mut tip = Vec::with_capacity(40);
        tip.extend_from_slice(&h);
        tip.extend_from_slice(&w.hash.0);
        b.put_cf(self.cf(CF_META)?, b"tip", tip);
        if let Some(state) = &w.ext_state {
            b.put_cf(self.cf(CF_META)?, b"ext_state", state);
        }
        b.delete_cf(self.cf(CF_ALT)?, w.hash.0);
        self.write(b)?;
        self.alt_index().remove(&(w.meta.height.0, w.hash.0));
        Ok(())
    }

    /// Removes the tip block atomically, keeping it as a side-chain block so a later reorg can
    /// bring it back. `prev` is the new tip (`None` when popping genesis, which is refused).
    pub fn pop_block(
        &self,
        hash: &BlockHash,
        meta: &BlockMeta,
        blob: &[u8],
        txs: &[(TxHash, Vec<u8>)],
        key_images: &[KeyImage],
        prev: (Height, BlockHash),
    ) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(CF_BLOCKS)?, hash.0);
        b.delete_cf(self.cf(CF_HEIGHTS)?, meta.height.0.to_be_bytes());
        for (t, _) in txs {
            b.delete_cf(self.cf(CF_TXS)?, t.0);
        }
        for i in 0..meta.output_count {
            b.delete_cf(
                self.cf(CF_OUTPUTS)?,
                (meta.first_output_index + i).to_be_bytes(),
            );
        }
        for ki in key_images {
            b.delete_cf(self.cf(CF_KEY_IMAGES)?, ki.0);
        }
        let tx_blobs: Vec<Vec<u8>> = txs
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(_, b)| b.clone())
            .collect();
        b.put_cf(
            self.cf(CF_ALT)?,
            hash.0,
            Self::encode_alt(meta.height, meta.cumulative_difficulty, blob, &tx_blobs),
        );
        let mut tip = Vec::with_capacity(40);
        tip.extend_from_slice(&prev.0 .0.to_be_bytes());
        tip.extend_from_slice(&prev.1 .0);
        b.put_cf(self.cf(CF_META)?, b"tip", tip);
        self.write(b)?;
        self.alt_index().insert((meta.height.0, hash.0));
        Ok(())
    }

    fn write(&self, b: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(b, &wo)?;
        Ok(())
    }

    /// The saved chain-extension state, if any.
    pub fn ext_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_META, b"ext_state")
    }

    /// Saves the chain-extension state.
    pub fn put_ext_state(&self, state: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(CF_META)?, b"ext_state", state)?;
        Ok(())
    }

    /// Flushes the WAL to disk (called on shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}
