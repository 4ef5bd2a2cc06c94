#![doc = include_str!("../README.md")]

pub mod keys;

pub use keys::{Account, WalletFile, WalletFileError};
