//! Password encryption of wallet files: Argon2id turns the password into two keys, one for the
//! keys file and one for the scan cache; XChaCha20-Poly1305 seals each with a fresh random nonce.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Argon2id cost of new wallet files: 64 MiB, 3 passes, 1 lane (about a quarter second on one
/// core). The cost is stored in the file, so it can be raised later without breaking old files.
pub const DEFAULT_KDF: Kdf = Kdf {
    m_kib: 64 * 1024,
    t: 3,
    p: 1,
    salt: String::new(),
};

/// Upper bounds on a file's stored cost, so a doctored file cannot make opening it take more
/// than 1 GiB or minutes.
const MAX_M_KIB: u32 = 1024 * 1024;
const MAX_T: u32 = 64;
const MAX_P: u32 = 16;

/// Argon2id parameters, as stored in a wallet file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

/// Why a sealed file does not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Authentication failed: the password is wrong (or the file was changed).
    #[error("wrong password (or the file was altered)")]
    WrongPassword,
    /// The stored parameters are unusable.
    #[error("{0}")]
    Damaged(String),
}

/// The two keys derived from a password; wiped when dropped.
pub struct Keys {
    keys_file: Zeroizing<[u8; 32]>,
    cache: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl Kdf {
    /// [`DEFAULT_KDF`] with a fresh random salt.
    pub fn fresh() -> Kdf {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Kdf {
            salt: hex::encode(salt),
            ..DEFAULT_KDF
        }
    }

    /// Runs Argon2id over `password`.
    pub fn derive(&self, password: &[u8]) -> Result<Keys, SealError> {
        if self.m_kib > MAX_M_KIB || self.t > MAX_T || self.p > MAX_P {
            return Err(SealError::Damaged(format!(
                "key derivation cost out of range (m={} KiB, t={}, p={})",
                self.m_kib, self.t, self.p
            )));
        }
        let salt = hex::decode(&self.salt)
            .ok()
            .filter(|s| (8..=64).contains(&s.len()))
            .ok_or_else(|| SealError::Damaged("salt is not 8 to 64 bytes of hex".into()))?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(64))
            .map_err(|e| SealError::Damaged(format!("key derivation parameters: {e}")))?;
        let mut out = Zeroizing::new([0u8; 64]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, &salt, out.as_mut())
            .map_err(|e| SealError::Damaged(format!("key derivation: {e}")))?;
        let mut keys = Keys {
            keys_file: Zeroizing::new([0u8; 32]),
            cache: Zeroizing::new([0u8; 32]),
        };
        keys.keys_file.copy_from_slice(&out[..32]);
        keys.cache.copy_from_slice(&out[32..]);
        Ok(keys)
    }
}

fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> ([u8; 24], Vec<u8>) {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .unwrap_or_default(); // encryption only fails past 256 GiB
    (nonce, ct)
}

fn open(key: &[u8; 32], aad: &[u8], nonce: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
    if nonce.len() != 24 {
        return Err(SealError::Damaged("nonce is not 24 bytes".into()));
    }
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| SealError::WrongPassword)
}

impl Keys {
    /// Seals a keys-file secret; `aad` binds the file's clear fields to it.
    pub fn seal_secret(&self, aad: &[u8], secret: &[u8]) -> ([u8; 24], Vec<u8>) {
        seal(&self.keys_file, aad, secret)
    }

    /// Opens what [`Keys::seal_secret`] sealed.
    pub fn open_secret(&self, aad: &[u8], nonce: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        open(&self.keys_file, aad, nonce, ct)
    }

    /// Seals a cache file: magic, nonce, ciphertext.
    pub fn seal_cache(&self, plain: &[u8]) -> Vec<u8> {
        let (nonce, ct) = seal(&self.cache, CACHE_MAGIC, plain);
        let mut out = Vec::with_capacity(CACHE_MAGIC.len() + 24 + ct.len());
        out.extend_from_slice(CACHE_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a cache file written by [`Keys::seal_cache`].
    pub fn open_cache(&self, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = bytes
            .strip_prefix(CACHE_MAGIC)
            .ok_or_else(|| SealError::Damaged("not an encrypted wallet cache".into()))?;
        if rest.len() < 24 {
            return Err(SealError::Damaged("truncated".into()));
        }
        let (nonce, ct) = rest.split_at(24);
        open(&self.cache, CACHE_MAGIC, nonce, ct)
    }
}

/// First bytes of an encrypted cache file (also its associated data).
pub const CACHE_MAGIC: &[u8] = b"sispop wallet cache v2\n";

/// Wipes a password buffer (for callers holding one in a `String`).
pub fn wipe(s: &mut String) {
    s.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Kdf {
        Kdf {
            m_kib: 64,
            t: 1,
            ..Kdf::fresh()
        }
    }

    #[test]
    fn round_trips_and_refuses_wrong_password_or_changes() {
        let kdf = cheap();
        let k = kdf.derive(b"hunter2").expect("derive");
        let (n, ct) = k.seal_secret(b"clear", b"secret");
        assert_eq!(k.open_secret(b"clear", &n, &ct).expect("open"), b"secret");
        assert!(matches!(
            k.open_secret(b"other", &n, &ct),
            Err(SealError::WrongPassword)
        ));
        let wrong = kdf.derive(b"hunter3").expect("derive");
        assert!(matches!(
            wrong.open_secret(b"clear", &n, &ct),
            Err(SealError::WrongPassword)
        ));
        let c = k.seal_cache(b"{}");
        assert_eq!(k.open_cache(&c).expect("cache"), b"{}");
        assert!(matches!(
            wrong.open_cache(&c),
            Err(SealError::WrongPassword)
        ));
        assert!(matches!(k.open_cache(b"{}"), Err(SealError::Damaged(_))));
        assert!(matches!(
            k.open_cache(&c[..CACHE_MAGIC.len() + 3]),
            Err(SealError::Damaged(_))
        ));
        // The two keys differ: a cache key does not open the keys file.
        let c2 = k.seal_cache(b"secret");
        assert!(k
            .open_secret(
                CACHE_MAGIC,
                &c2[CACHE_MAGIC.len()..][..24],
                &c2[CACHE_MAGIC.len() + 24..]
            )
            .is_err());
    }

    #[test]
    fn doctored_costs_are_refused_before_any_work() {
        for kdf in [
            Kdf {
                m_kib: u32::MAX,
                ..cheap()
            },
            Kdf {
                t: 1_000_000,
                ..cheap()
            },
            Kdf { p: 1000, ..cheap() },
            Kdf {
                salt: "zz".into(),
                ..cheap()
            },
            Kdf {
                salt: String::new(),
                ..cheap()
            },
        ] {
            assert!(
                matches!(kdf.derive(b"x"), Err(SealError::Damaged(_))),
                "{kdf:?}"
            );
        }
    }
}
