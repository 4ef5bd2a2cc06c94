//! Consensus rules that live above the chain (the service node list), plugged into
//! [`crate::Blockchain`]. The chain consults the extension while validating and tells it about
//! every block attached or detached, in order, including inside reorgs, so its state always
//! matches the main chain.

use crate::address::Address;
use crate::block::Block;
use crate::tx::Transaction;
use crate::types::{Atomic, BlockHash, Height, PublicKey, TxHash};

/// What the miner tx of a block must pay to service nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceNodePayout {
    /// The reward-queue leader named in the miner tx (0x72), if any node is active.
    pub leader: Option<PublicKey>,
    /// Outputs the miner tx must carry, in order, right after the miner's own output.
    pub payouts: Vec<(Address, Atomic)>,
}

/// Why the extension refused a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// What is wrong, for logs and RPC answers.
    pub reason: String,
    /// True when the transaction is invalid in itself (the sender is at fault); false when it
    /// only does not apply to the current state.
    pub peer_fault: bool,
}

impl Rejection {
    /// An invalid transaction.
    pub fn invalid(reason: impl Into<String>) -> Rejection {
        Rejection {
            reason: reason.into(),
            peer_fault: true,
        }
    }
    /// A transaction that does not apply to the current state.
    pub fn stale(reason: impl Into<String>) -> Rejection {
        Rejection {
            reason: reason.into(),
            peer_fault: false,
        }
    }
}

/// A transaction of an attached block, decoded.
pub struct BlockTx<'a> {
    /// Its id.
    pub hash: TxHash,
    /// The transaction.
    pub tx: &'a Transaction,
}

/// The extension interface.
pub trait ChainExtension: Send {
    /// The (height, hash) of the last block applied, or `None` before genesis.
    fn tip(&self) -> Option<(Height, BlockHash)>;
    /// Forgets everything (before a replay from genesis).
    fn reset(&mut self);
    /// Extra validity checks on a non-coinbase transaction for a block at `height`.
    fn check_tx(&self, tx: &Transaction, height: Height) -> Result<(), Rejection>;
    /// Checks a block's non-coinbase transactions in order, each against the state the ones
    /// before it leave; the index of the first that fails. By default each is checked against
    /// the current state alone.
    fn check_block_txs(
        &self,
        txs: &[&Transaction],
        height: Height,
    ) -> Result<(), (usize, Rejection)> {
        for (i, t) in txs.iter().enumerate() {
            self.check_tx(t, height).map_err(|r| (i, r))?;
        }
        Ok(())
    }
    /// What the block at `height` (the next block) must pay service nodes, given the
    /// service-node share of the block reward.
    fn payouts(&self, height: Height, share: Atomic) -> ServiceNodePayout;
    /// A block joined the main chain (transactions in block order, coinbase excluded).
    fn attach(&mut self, block: &Block, hash: BlockHash, height: Height, txs: &[BlockTx<'_>]);
    /// The top block (at `height`) left the main chain; `parent` becomes the tip. Returns false
    /// when the state at the parent is no longer known; the chain then replays from genesis.
    fn detach(&mut self, height: Height, hash: BlockHash, parent: (Height, BlockHash)) -> bool;
    /// A claim that at most one transaction in a block or in the pool may hold, beside its key
    /// images (the service node list claims one state change per node and new state).
    fn conflict_key(&self, _tx: &Transaction) -> Option<[u8; 32]> {
        None
    }
    /// True for an extension with no state to keep in step (skips replay on open).
    fn is_stateless(&self) -> bool {
        false
    }
    /// The state as bytes; the chain stores it beside the block it belongs to.
    fn snapshot(&self) -> Vec<u8>;
    /// Loads a state saved by [`ChainExtension::snapshot`].
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// No extension: a plain Cryptonote chain.
#[derive(Debug, Default)]
pub struct NoExtension {
    tip: Option<(Height, BlockHash)>,
}

impl ChainExtension for NoExtension {
    fn tip(&self) -> Option<(Height, BlockHash)> {
        self.tip
    }
    fn reset(&mut self) {
        self.tip = None;
    }
    fn check_tx(&self, tx: &Transaction, _height: Height) -> Result<(), Rejection> {
        match tx.tx_type {
            crate::tx::TxType::Standard => Ok(()),
            other => Err(Rejection::invalid(format!(
                "{other:?} transactions need the service node rules, which this chain does not run"
            ))),
        }
    }
    fn payouts(&self, _height: Height, _share: Atomic) -> ServiceNodePayout {
        ServiceNodePayout::default()
    }
    fn attach(&mut self, _block: &Block, hash: BlockHash, height: Height, _txs: &[BlockTx<'_>]) {
        self.tip = Some((height, hash));
    }
    fn detach(&mut self, _height: Height, _hash: BlockHash, parent: (Height, BlockHash)) -> bool {
        self.tip = Some(parent);
        true
    }
    fn is_stateless(&self) -> bool {
        true
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
