//! Why a block or transaction was refused, and whether the peer that sent it is at fault.

use super::*;

/// Why a transaction was refused.
#[derive(Debug, Error)]
pub enum TxError {
    /// Blob does not decode.
    #[error("transaction does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// Blob too large.
    #[error("transaction is {0} bytes, over the {1} byte limit")]
    TooLarge(usize, usize),
    /// Unsupported version.
    #[error("transaction version {0} is not accepted (version 4 required)")]
    Version(u64),
    /// A type not yet accepted by this chain's rules.
    #[error("transaction type {0:?} is not accepted by the current rules")]
    TypeNotAccepted(TxType),
    /// Bad tx_extra.
    #[error("{0}")]
    Extra(#[from] ExtraError),
    /// Structural problem.
    #[error("malformed transaction: {0}")]
    Malformed(&'static str),
    /// Fee below the minimum.
    #[error("fee {fee} is below the minimum {min} for {size} bytes")]
    FeeTooLow {
        /// Paid.
        fee: u64,
        /// Required.
        min: u64,
        /// Blob size.
        size: usize,
    },
    /// Key image is not a valid spend tag.
    #[error("key image {0} is not a valid point")]
    BadKeyImage(KeyImage),
    /// Key image used twice in this transaction, block or pool.
    #[error("key image {0} is spent twice")]
    DoubleSpend(KeyImage),
    /// Key image already spent on chain.
    #[error("key image {0} is already spent")]
    Spent(KeyImage),
    /// Wrong ring size.
    #[error("ring size {0} is not the required {1}")]
    RingSize(usize, usize),
    /// Ring member that does not exist.
    #[error("ring member {0} does not exist")]
    UnknownOutput(u64),
    /// Ring member still locked.
    #[error("ring member {0} is still locked")]
    LockedOutput(u64),
    /// Range proof failed.
    #[error("range proof does not verify")]
    RangeProof,
    /// Ring signature failed.
    #[error("ring signature of input {0} does not verify")]
    RingSignature(usize),
    /// Inputs do not balance outputs plus fee.
    #[error("inputs do not balance outputs plus fee")]
    Unbalanced,
    /// Refused by the service node rules.
    #[error("{0}")]
    Rejected(String),
    /// Valid once, but does not apply to the current state (a state change already made, or
    /// one that lost a race); the sender is not at fault.
    #[error("{0}")]
    NotApplicable(String),
    /// Already on chain.
    #[error("transaction {0} is already in the chain")]
    AlreadyInChain(TxHash),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TxError {
    /// Whether the sender is at fault (as opposed to our store or a race).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            TxError::Store(_)
                | TxError::AlreadyInChain(_)
                | TxError::Spent(_)
                | TxError::DoubleSpend(_)
                | TxError::UnknownOutput(_)
                | TxError::LockedOutput(_)
                | TxError::NotApplicable(_)
        )
    }
}

/// Why a block was refused.
#[derive(Debug, Error)]
pub enum BlockError {
    /// Blob does not decode.
    #[error("block does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// Blob too large.
    #[error("block is {0} bytes, over the {1} byte limit")]
    TooLarge(usize, usize),
    /// Previous block unknown.
    #[error("previous block {0} is unknown")]
    UnknownParent(BlockHash),
    /// Wrong hard-fork version.
    #[error("block major version {found} is not {expected} at height {height}")]
    Version {
        /// In the block.
        found: u8,
        /// Required.
        expected: u8,
        /// Height.
        height: Height,
    },
    /// Timestamp not above the median of recent blocks.
    #[error("timestamp {0} is not above the median {1} of recent blocks")]
    TimestampTooOld(u64, u64),
    /// Timestamp too far ahead.
    #[error("timestamp {0} is more than the allowed limit ahead of now ({1})")]
    TimestampTooNew(u64, u64),
    /// PoW fails.
    #[error("proof of work does not meet difficulty {0}")]
    Pow(Difficulty),
    /// Bad miner transaction.
    #[error("invalid miner transaction: {0}")]
    MinerTx(String),
    /// Too many transactions or a duplicate.
    #[error("invalid transaction list: {0}")]
    TxList(String),
    /// A transaction was not supplied.
    #[error("transaction {0} of the block was not supplied")]
    MissingTx(TxHash),
    /// A transaction is invalid.
    #[error("transaction {0}: {1}")]
    Tx(TxHash, TxError),
    /// A side-chain block too far below the tip to be kept.
    #[error("side-chain block at height {height} is more than {limit} blocks below the tip {tip}")]
    TooDeep {
        /// Its height.
        height: Height,
        /// Our tip.
        tip: Height,
        /// How deep a side chain may reach.
        limit: u64,
    },
    /// The side-chain set is full.
    #[error("{0} side-chain blocks are kept already; try again once the chain moves on")]
    SideChainsFull(usize),
    /// Genesis cannot be popped or replaced.
    #[error("the genesis block cannot be replaced")]
    Genesis,
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BlockError {
    /// Whether the sender is at fault (it drives bans).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            BlockError::Store(_)
            | BlockError::UnknownParent(_)
            | BlockError::MissingTx(_)
            | BlockError::TooDeep { .. }
            | BlockError::SideChainsFull(_)
            | BlockError::TimestampTooNew(..) => false,
            BlockError::Tx(_, e) => e.is_peer_fault(),
            _ => true,
        }
    }
}
