//! The transaction pool: transactions validated against the chain, waiting for a block.

use std::collections::{HashMap, HashSet};

use crate::blockchain::{Blockchain, TxError};
use crate::extension::ChainExtension;
use crate::tx::Transaction;
use crate::types::{Height, KeyImage, TxHash};

/// A pooled transaction.
#[derive(Clone, Debug)]
pub struct PoolEntry {
    /// Decoded transaction.
    pub tx: Transaction,
    /// Its blob.
    pub blob: Vec<u8>,
    /// Fee in atomic units.
    pub fee: u64,
    /// Unix time it arrived.
    pub received: u64,
    /// Key images and other exclusive claims it holds in the pool.
    pub claims: Vec<KeyImage>,
}

/// Why the pool refused a transaction (beyond consensus reasons).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Consensus-invalid.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Already pooled.
    #[error("transaction {0} is already in the pool")]
    AlreadyPooled(TxHash),
    /// Spends a key image a pooled transaction spends.
    #[error("key image {0} is already spent by pooled transaction {1}")]
    Conflict(KeyImage, TxHash),
    /// The pool is full and this transaction pays too little to displace anything.
    #[error("the pool is full")]
    Full,
}

impl PoolError {
    /// Whether the sender is at fault (drives bans).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            PoolError::Invalid(e) => e.is_peer_fault(),
            PoolError::AlreadyPooled(_) | PoolError::Conflict(..) | PoolError::Full => false,
        }
    }
}

/// The pool.
#[derive(Debug, Default)]
pub struct Mempool {
    txs: HashMap<TxHash, PoolEntry>,
    spent: HashMap<KeyImage, TxHash>,
    bytes: usize,
    max_bytes: usize,
}

impl Mempool {
    /// An empty pool holding at most `max_bytes` of transactions.
    pub fn new(max_bytes: usize) -> Mempool {
        Mempool {
            max_bytes,
            ..Mempool::default()
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Total bytes pooled.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A pooled transaction.
    pub fn get(&self, hash: &TxHash) -> Option<&PoolEntry> {
        self.txs.get(hash)
    }

    /// Validates and adds a transaction blob.
    pub fn add<E: ChainExtension>(
        &mut self,
        chain: &Blockchain<E>,
        blob: Vec<u8>,
        now: u64,
    ) -> Result<TxHash, PoolError> {
        let tx = Transaction::from_bytes(&blob).map_err(TxError::from)?;
        let hash = tx.hash();
        if self.txs.contains_key(&hash) {
            return Err(PoolError::AlreadyPooled(hash));
        }
        if chain.store().tx(&hash).map_err(TxError::from)?.is_some() {
            return Err(TxError::AlreadyInChain(hash).into());
        }
        let claims = chain.claims(&tx);
        for ki in &claims {
            if let Some(other) = self.spent.get(ki) {
                return Err(PoolError::Conflict(*ki, *other));
            }
        }
        if self.bytes + blob.len() > self.max_bytes {
            return Err(PoolError::Full);
        }
        let next = Height(chain.tip().0 .0 + 1);
        chain.validate_tx(&tx, blob.len(), next, &HashSet::new())?;
        for ki in &claims {
            self.spent.insert(*ki, hash);
        }
        self.bytes += blob.len();
        let fee = tx.fee();
        self.txs.insert(
            hash,
            PoolEntry {
                tx,
                blob,
                fee,
                received: now,
                claims,
            },
        );
        Ok(hash)
    }

    fn remove(&mut self, hash: &TxHash) -> Option<PoolEntry> {
        let e = self.txs.remove(hash)?;
        for ki in &e.claims {
            self.spent.remove(ki);
        }
        self.bytes -= e.blob.len();
        Some(e)
    }

    /// After the chain changed: drop transactions now in the chain or conflicting with it,
    /// input-less ones (state changes, unlocks) and stakes that no longer apply to the new
    /// state.
    pub fn prune<E: ChainExtension>(&mut self, chain: &Blockchain<E>) {
        let next = Height(chain.tip().0 .0 + 1);
        let stale: Vec<TxHash> = self
            .txs
            .iter()
            .filter(|(h, e)| {
                chain.store().tx(h).ok().flatten().is_some()
                    || e.tx
                        .key_images()
                        .iter()
                        .any(|ki| chain.store().key_image_spent(ki).unwrap_or(true))
                    || (e.tx.inputs.is_empty()
                        && chain
                            .validate_tx(&e.tx, e.blob.len(), next, &HashSet::new())
                            .is_err())
                    // A stake that no longer applies (its node filled up, registered, or
                    // left): only the extension's check, the ring signatures stand.
                    || (e.tx.tx_type == crate::tx::TxType::Stake
                        && chain.ext().check_tx(&e.tx, next).is_err())
            })
            .map(|(h, _)| *h)
            .collect();
        for h in stale {
            self.remove(&h);
        }
    }

    /// Drops transactions that have waited longer than `max_age` seconds (they will not be
    /// mined; their owners can resend). Returns how many went.
    pub fn expire(&mut self, now: u64, max_age: u64) -> usize {
        let old: Vec<TxHash> = self
            .txs
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.received) > max_age)
            .map(|(h, _)| *h)
            .collect();
        for h in &old {
            self.remove(h);
        }
        old.len()
    }

    /// Blobs ordered by fee per byte, best first.
    pub fn candidates(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<&PoolEntry> = self.txs.values().collect();
        v.sort_by(|a, b| {
            let fa = u128::from(a.fee) * b.blob.len() as u128;
            let fb = u128::from(b.fee) * a.blob.len() as u128;
            fb.cmp(&fa).then(a.received.cmp(&b.received))
        });
        v.into_iter().map(|e| e.blob.clone()).collect()
    }

    /// Hashes of every pooled transaction.
    pub fn hashes(&self) -> Vec<TxHash> {
        self.txs.keys().copied().collect()
    }
}
