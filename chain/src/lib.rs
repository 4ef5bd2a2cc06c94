#![doc = include_str!("../README.md")]

pub mod address;
pub mod block;
pub mod blockchain;
pub mod builder;
pub mod crypto;
pub mod extension;
pub mod extra;
pub mod mempool;
pub mod params;
pub mod pow;
pub mod reader;
pub mod reward;
pub mod store;
pub mod tx;
pub mod types;

pub use address::Address;
pub use block::{Block, BlockHeader};
pub use blockchain::{
    genesis_block, mine, AddOutcome, BlockError, BlockTemplate, Blockchain, ChainEvent, PowCheck,
    SigCheck, TxError, Verified,
};
pub use extension::{BlockTx, ChainExtension, NoExtension, Rejection, ServiceNodePayout};
pub use mempool::{Mempool, PoolError};
pub use params::{Network, NetworkParams};
pub use tx::{Transaction, TxType};
pub use types::{Atomic, BlockHash, Difficulty, Height, KeyImage, PublicKey, TxHash, COIN};
