//! Account keys and the wallet file.

use std::path::Path;

use curve25519_dalek::Scalar;
use serde::{Deserialize, Serialize};
use sispop_chain::crypto::{
    hash_to_scalar, public_from_secret, random_scalar, scalar_from_canonical,
};
use sispop_chain::{Address, Network, NetworkParams};
use zeroize::Zeroize;

/// A Cryptonote account: spend and view secrets.
#[derive(Clone)]
pub struct Account {
    /// Spend secret b.
    pub spend: Scalar,
    /// View secret a = Hs(b).
    pub view: Scalar,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").finish_non_exhaustive()
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.spend.zeroize();
        self.view.zeroize();
    }
}

impl Account {
    /// The account of a spend secret; the view secret is derived from it, so the spend secret
    /// (or its recovery phrase) restores everything.
    pub fn from_spend(spend: Scalar) -> Account {
        let view = hash_to_scalar(spend.as_bytes());
        Account { spend, view }
    }

    /// A fresh random account.
    pub fn generate() -> Account {
        Account::from_spend(random_scalar(&mut rand::rngs::OsRng))
    }

    /// The 25-word recovery phrase of this account.
    pub fn mnemonic(&self) -> String {
        crate::mnemonic::encode(self.spend.as_bytes())
    }

    /// Restores an account from its recovery phrase (the spend secret, reduced as Cryptonote
    /// wallets do).
    pub fn from_mnemonic(phrase: &str) -> Result<Account, crate::mnemonic::MnemonicError> {
        let bytes = crate::mnemonic::decode(phrase)?;
        Ok(Account::from_spend(Scalar::from_bytes_mod_order(bytes)))
    }

    /// The primary address.
    pub fn address(&self) -> Address {
        Address {
            spend: public_from_secret(&self.spend),
            view: public_from_secret(&self.view),
        }
    }
}

/// What is saved on disk.
#[derive(Serialize, Deserialize)]
pub struct WalletFile {
    /// `mainnet`, `testnet` or `devnet`.
    pub network: String,
    /// Spend secret, hex.
    pub spend_secret: String,
    /// Primary address (for reading the file by eye; checked on load).
    pub address: String,
    /// Height to start scanning from (a restored wallet's first use; 0 scans everything).
    #[serde(default)]
    pub restore_height: u64,
}

/// A wallet file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WalletFileError {
    /// I/O.
    #[error("wallet file {0}: {1}")]
    Io(String, std::io::Error),
    /// Not a wallet file.
    #[error("wallet file {0} is damaged: {1}")]
    Damaged(String, String),
    /// The file exists already.
    #[error("wallet file {0} already exists; refusing to overwrite it")]
    Exists(String),
}

fn network_by_name(name: &str) -> Option<Network> {
    [Network::Mainnet, Network::Testnet, Network::Devnet]
        .into_iter()
        .find(|n| NetworkParams::get(*n).name == name)
}

impl WalletFile {
    /// Writes a new wallet file (never overwrites), readable only by the owner.
    pub fn create(
        path: &Path,
        account: &Account,
        params: &NetworkParams,
    ) -> Result<(), WalletFileError> {
        Self::create_from(path, account, params, 0)
    }

    /// [`WalletFile::create`] for a wallet whose coins all arrived at or after `restore_height`.
    pub fn create_from(
        path: &Path,
        account: &Account,
        params: &NetworkParams,
        restore_height: u64,
    ) -> Result<(), WalletFileError> {
        let p = path.display().to_string();
        if path.exists() {
            return Err(WalletFileError::Exists(p));
        }
        let f = WalletFile {
            network: params.name.to_owned(),
            spend_secret: hex::encode(account.spend.as_bytes()),
            address: account.address().to_string(params),
            restore_height,
        };
        let text = serde_json::to_string_pretty(&f)
            .map_err(|e| WalletFileError::Damaged(p.clone(), e.to_string()))?;
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes()).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| WalletFileError::Io(p, e))
    }

    /// The height scanning starts from for a wallet with no cache yet.
    pub fn restore_height(path: &Path) -> Result<u64, WalletFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        let f: WalletFile =
            serde_json::from_str(&text).map_err(|e| WalletFileError::Damaged(p, e.to_string()))?;
        Ok(f.restore_height)
    }

    /// Loads an account and its network from a wallet file.
    pub fn load(path: &Path) -> Result<(Account, &'static NetworkParams), WalletFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        let f: WalletFile = serde_json::from_str(&text)
            .map_err(|e| WalletFileError::Damaged(p.clone(), e.to_string()))?;
        let network = network_by_name(&f.network).ok_or_else(|| {
            WalletFileError::Damaged(p.clone(), format!("unknown network {}", f.network))
        })?;
        let params = NetworkParams::get(network);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&f.spend_secret, &mut bytes).map_err(|_| {
            WalletFileError::Damaged(p.clone(), "spend_secret is not 32 bytes of hex".into())
        })?;
        let spend = scalar_from_canonical(bytes).ok_or_else(|| {
            WalletFileError::Damaged(p.clone(), "spend_secret is not a reduced scalar".into())
        })?;
        bytes.zeroize();
        let account = Account::from_spend(spend);
        if account.address().to_string(params) != f.address {
            return Err(WalletFileError::Damaged(
                p,
                "address does not match the keys".into(),
            ));
        }
        Ok((account, params))
    }
}

/// Writes a new file readable by its owner only (mode 0600 from creation, never wider), for
/// keys and the scan cache. A leftover file at `path` is replaced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_restores_the_same_keys() {
        let a = Account::generate();
        let b = Account::from_mnemonic(&a.mnemonic()).expect("restore");
        assert_eq!(a.address(), b.address());
        assert_eq!(a.view, b.view);
    }

    #[test]
    fn file_round_trip_and_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.json");
        let params = NetworkParams::get(Network::Devnet);
        let a = Account::generate();
        WalletFile::create(&path, &a, params).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the keys file is the owner's only");
            // A leftover file is replaced, and the new one is private too.
            let other = dir.path().join("x");
            std::fs::write(&other, "old").expect("write");
            write_private(&other, b"new").expect("write_private");
            let mode = std::fs::metadata(&other)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(
                (mode & 0o777, std::fs::read(&other).expect("read")),
                (0o600, b"new".to_vec())
            );
        }
        assert!(matches!(
            WalletFile::create(&path, &a, params),
            Err(WalletFileError::Exists(_))
        ));
        let (b, p) = WalletFile::load(&path).expect("load");
        assert_eq!(b.address(), a.address());
        assert_eq!(p.name, "devnet");
        assert_eq!(WalletFile::restore_height(&path).expect("height"), 0);
        let later = dir.path().join("later.json");
        WalletFile::create_from(&later, &a, params, 1234).expect("create");
        assert_eq!(WalletFile::restore_height(&later).expect("height"), 1234);
        let text = std::fs::read_to_string(&path)
            .expect("read")
            .replace("devnet", "mainnet");
        std::fs::write(&path, text).expect("write");
        assert!(matches!(
            WalletFile::load(&path),
            Err(WalletFileError::Damaged(..))
        ));
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(
            WalletFile::load(&path),
            Err(WalletFileError::Damaged(..))
        ));
    }
}
