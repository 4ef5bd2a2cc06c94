#![doc = include_str!("../README.md")]

pub mod daemon;
pub mod decoys;
pub mod keys;
pub mod mnemonic;
pub mod seal;
pub mod wallet;

pub use daemon::Daemon;
pub use keys::{Account, Unlocked, WalletFile, WalletFileError};
pub use wallet::{Balance, Wallet, WalletError};
