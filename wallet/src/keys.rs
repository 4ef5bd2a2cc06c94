//! Account keys and the wallet file.

use std::path::Path;

use curve25519_dalek::Scalar;
use serde::{Deserialize, Serialize};
use sispop_chain::crypto::{
    hash_to_scalar, public_from_secret, random_scalar, scalar_from_canonical,
};
use sispop_chain::{Address, Network, NetworkParams};
use zeroize::Zeroize;

use crate::seal::{Kdf, Keys, SealError};

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

/// What is saved on disk: the network, address and restore height in clear (so a file can be
/// recognised and its scan started without the password), the spend secret sealed under the
/// password (Argon2id, then XChaCha20-Poly1305 with the clear fields as associated data).
#[derive(Serialize, Deserialize)]
pub struct WalletFile {
    /// `mainnet`, `testnet` or `devnet`.
    pub network: String,
    /// Primary address (for reading the file by eye; checked on load).
    pub address: String,
    /// Height to start scanning from (a restored wallet's first use; 0 scans everything).
    #[serde(default)]
    pub restore_height: u64,
    /// Argon2id parameters of the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
    /// XChaCha20-Poly1305 nonce, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The spend secret sealed under the password, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_spend: Option<String>,
    /// Files written before encryption held the spend secret in clear; such a file is
    /// re-written sealed the first time it is opened with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_secret: Option<String>,
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
    /// The password does not open it.
    #[error("wallet file {0}: wrong password (or the file was altered)")]
    WrongPassword(String),
}

/// An opened wallet file: its keys, network, and the password-derived keys that also seal the
/// scan cache.
#[derive(Debug)]
pub struct Unlocked {
    /// The account.
    pub account: Account,
    /// Its network.
    pub params: &'static NetworkParams,
    /// Keys derived from the password.
    pub keys: Keys,
}

fn network_by_name(name: &str) -> Option<Network> {
    [Network::Mainnet, Network::Testnet, Network::Devnet]
        .into_iter()
        .find(|n| NetworkParams::get(*n).name == name)
}

impl WalletFile {
    /// The clear fields, bound to the sealed secret.
    fn aad(&self) -> Vec<u8> {
        format!(
            "sispop wallet v2\n{}\n{}\n{}",
            self.network, self.address, self.restore_height
        )
        .into_bytes()
    }

    /// Writes a new wallet file sealed under `password` (never overwrites), readable only by
    /// the owner. Returns the keys that also seal the cache.
    pub fn create(
        path: &Path,
        account: &Account,
        params: &NetworkParams,
        password: &[u8],
    ) -> Result<Keys, WalletFileError> {
        Self::create_from(path, account, params, 0, password)
    }

    /// [`WalletFile::create`] for a wallet whose coins all arrived at or after `restore_height`.
    pub fn create_from(
        path: &Path,
        account: &Account,
        params: &NetworkParams,
        restore_height: u64,
        password: &[u8],
    ) -> Result<Keys, WalletFileError> {
        let p = path.display().to_string();
        if path.exists() {
            return Err(WalletFileError::Exists(p));
        }
        Self::write(path, account, params.name, restore_height, password)
    }

    /// Re-seals an existing wallet file under a new password; returns the new keys.
    pub fn change_password(path: &Path, old: &[u8], new: &[u8]) -> Result<Keys, WalletFileError> {
        let u = Self::load(path, old)?;
        let f = Self::read(path)?;
        Self::write(path, &u.account, &f.network, f.restore_height, new)
    }

    fn write(
        path: &Path,
        account: &Account,
        network: &str,
        restore_height: u64,
        password: &[u8],
    ) -> Result<Keys, WalletFileError> {
        let p = path.display().to_string();
        let params = network_by_name(network)
            .map(NetworkParams::get)
            .ok_or_else(|| {
                WalletFileError::Damaged(p.clone(), format!("unknown network {network}"))
            })?;
        let kdf = Kdf::fresh();
        let keys = kdf
            .derive(password)
            .map_err(|e| WalletFileError::Damaged(p.clone(), e.to_string()))?;
        let mut f = WalletFile {
            network: network.to_owned(),
            address: account.address().to_string(params),
            restore_height,
            kdf: Some(kdf),
            nonce: None,
            sealed_spend: None,
            spend_secret: None,
        };
        let (nonce, ct) = keys.seal_secret(&f.aad(), account.spend.as_bytes());
        f.nonce = Some(hex::encode(nonce));
        f.sealed_spend = Some(hex::encode(ct));
        let text = serde_json::to_string_pretty(&f)
            .map_err(|e| WalletFileError::Damaged(p.clone(), e.to_string()))?;
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes()).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| WalletFileError::Io(p, e))?;
        Ok(keys)
    }

    fn read(path: &Path) -> Result<WalletFile, WalletFileError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        if meta.len() > 64 * 1024 {
            return Err(WalletFileError::Damaged(
                p,
                "larger than any wallet file".into(),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| WalletFileError::Io(p.clone(), e))?;
        serde_json::from_str(&text).map_err(|e| WalletFileError::Damaged(p, e.to_string()))
    }

    /// Whether the file's secret is sealed under a password (false for a file from before
    /// encryption, which the next open seals).
    pub fn is_sealed(path: &Path) -> Result<bool, WalletFileError> {
        Ok(Self::read(path)?.kdf.is_some())
    }

    /// The height scanning starts from for a wallet with no cache yet.
    pub fn restore_height(path: &Path) -> Result<u64, WalletFileError> {
        Ok(Self::read(path)?.restore_height)
    }

    /// Opens a wallet file with its password. A file from before encryption (spend secret in
    /// clear) is re-written sealed under `password`.
    pub fn load(path: &Path, password: &[u8]) -> Result<Unlocked, WalletFileError> {
        let p = path.display().to_string();
        let f = Self::read(path)?;
        let damaged = |why: &str| WalletFileError::Damaged(p.clone(), why.to_owned());
        let network = network_by_name(&f.network)
            .ok_or_else(|| damaged(&format!("unknown network {}", f.network)))?;
        let params = NetworkParams::get(network);
        let mut bytes = [0u8; 32];
        let keys = match (&f.kdf, &f.nonce, &f.sealed_spend, &f.spend_secret) {
            (Some(kdf), Some(nonce), Some(sealed), None) => {
                let keys = kdf.derive(password).map_err(|e| damaged(&e.to_string()))?;
                let nonce = hex::decode(nonce).map_err(|_| damaged("nonce is not hex"))?;
                let ct = hex::decode(sealed).map_err(|_| damaged("sealed_spend is not hex"))?;
                let mut plain = keys
                    .open_secret(&f.aad(), &nonce, &ct)
                    .map_err(|e| match e {
                        SealError::WrongPassword => WalletFileError::WrongPassword(p.clone()),
                        SealError::Damaged(why) => damaged(&why),
                    })?;
                if plain.len() != 32 {
                    plain.zeroize();
                    return Err(damaged("sealed secret is not 32 bytes"));
                }
                bytes.copy_from_slice(&plain);
                plain.zeroize();
                Some(keys)
            }
            (None, None, None, Some(clear)) => {
                hex::decode_to_slice(clear, &mut bytes)
                    .map_err(|_| damaged("spend_secret is not 32 bytes of hex"))?;
                None
            }
            _ => return Err(damaged("neither a sealed nor a clear spend secret")),
        };
        let spend = scalar_from_canonical(bytes);
        bytes.zeroize();
        let spend = spend.ok_or_else(|| damaged("spend secret is not a reduced scalar"))?;
        let account = Account::from_spend(spend);
        if account.address().to_string(params) != f.address {
            return Err(damaged("address does not match the keys"));
        }
        let keys = match keys {
            Some(k) => k,
            None => {
                // Seal the old clear file in place under the password given now.
                let k = Self::write(path, &account, &f.network, f.restore_height, password)?;
                eprintln!(
                    "{p} held its keys unencrypted; it is now sealed with the given password"
                );
                k
            }
        };
        Ok(Unlocked {
            account,
            params,
            keys,
        })
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
        WalletFile::create(&path, &a, params, b"pw").expect("create");
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
        // The secret is not in the file in clear.
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&hex::encode(a.spend.as_bytes())));
        assert!(matches!(
            WalletFile::create(&path, &a, params, b"pw"),
            Err(WalletFileError::Exists(_))
        ));
        let u = WalletFile::load(&path, b"pw").expect("load");
        assert_eq!(u.account.address(), a.address());
        assert_eq!(u.params.name, "devnet");
        // Only its password opens it.
        for wrong in [&b""[..], b"pW", b"pw ", b"pw\n"] {
            assert!(matches!(
                WalletFile::load(&path, wrong),
                Err(WalletFileError::WrongPassword(_))
            ));
        }
        assert_eq!(WalletFile::restore_height(&path).expect("height"), 0);
        let later = dir.path().join("later.json");
        WalletFile::create_from(&later, &a, params, 1234, b"").expect("create");
        assert_eq!(WalletFile::restore_height(&later).expect("height"), 1234);
        WalletFile::load(&later, b"").expect("an empty password is a password");
        // The clear fields are bound to the secret: changing the restore height or network
        // makes the file fail to open.
        let text = std::fs::read_to_string(&later).expect("read");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["restore_height"] = 1.into();
        std::fs::write(&later, v.to_string()).expect("write");
        assert!(matches!(
            WalletFile::load(&later, b""),
            Err(WalletFileError::WrongPassword(_))
        ));
        std::fs::write(&path, text.replace("devnet", "mainnet")).expect("write");
        assert!(WalletFile::load(&path, b"").is_err());
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(
            WalletFile::load(&path, b"pw"),
            Err(WalletFileError::Damaged(..))
        ));
    }

    #[test]
    fn a_clear_file_from_before_encryption_is_sealed_on_first_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.json");
        let params = NetworkParams::get(Network::Devnet);
        let a = Account::generate();
        let old = serde_json::json!({
            "network": "devnet",
            "spend_secret": hex::encode(a.spend.as_bytes()),
            "address": a.address().to_string(params),
            "restore_height": 7,
        });
        std::fs::write(&path, old.to_string()).expect("write");
        let u = WalletFile::load(&path, b"new password").expect("load");
        assert_eq!(u.account.address(), a.address());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&hex::encode(a.spend.as_bytes())), "{text}");
        assert_eq!(WalletFile::restore_height(&path).expect("height"), 7);
        assert!(matches!(
            WalletFile::load(&path, b"other"),
            Err(WalletFileError::WrongPassword(_))
        ));
        WalletFile::load(&path, b"new password").expect("reopen");
    }
}
