//! The service node's keys: an Ed25519 key pair kept in `key_ed25519` (libsodium layout,
//! 64 bytes = seed ‖ public key) from which the primary key and the X25519 key derive
//! (reference `service-nodes.md` §5.1).

use std::path::Path;

use curve25519_dalek::Scalar;
use sha2::{Digest, Sha512};
use sispop_chain::crypto::public_from_secret;
use sispop_chain::PublicKey;
use zeroize::Zeroize;

/// The keys of this service node.
#[derive(Clone)]
pub struct ServiceNodeKeys {
    /// The Ed25519 seed (also the libp2p identity).
    pub seed: [u8; 32],
    /// Primary (Cryptonote) secret: the clamped, reduced Ed25519 scalar.
    pub primary_secret: Scalar,
    /// Primary public key; equals the Ed25519 public key.
    pub primary: PublicKey,
    /// Ed25519 public key.
    pub ed25519: PublicKey,
    /// X25519 public key (the Montgomery form of the Ed25519 key).
    pub x25519: [u8; 32],
}

impl std::fmt::Debug for ServiceNodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNodeKeys")
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

/// Keys that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// I/O.
    #[error("service node key file {0}: {1}")]
    Io(String, std::io::Error),
    /// Wrong size or inconsistent content.
    #[error("service node key file {0} is damaged: {1}")]
    Damaged(String, &'static str),
}

impl ServiceNodeKeys {
    /// Derives every key from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> ServiceNodeKeys {
        let mut h: [u8; 64] = Sha512::digest(seed).into();
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 63;
        a[31] |= 64;
        let primary_secret = Scalar::from_bytes_mod_order(a);
        a.zeroize();
        h.zeroize();
        let primary = public_from_secret(&primary_secret);
        let x25519 = curve25519_dalek::edwards::CompressedEdwardsY(primary.0)
            .decompress()
            .map(|p| p.to_montgomery().to_bytes())
            .unwrap_or([0; 32]);
        ServiceNodeKeys {
            seed: *seed,
            primary_secret,
            primary,
            ed25519: primary,
            x25519,
        }
    }

    /// Loads `key_ed25519` from `dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<ServiceNodeKeys, KeyError> {
        let path = dir.join("key_ed25519");
        let name = path.display().to_string();
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| KeyError::Io(name.clone(), e))?;
            if bytes.len() != 64 {
                return Err(KeyError::Damaged(name, "expected 64 bytes"));
            }
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&bytes[..32]);
            let keys = ServiceNodeKeys::from_seed(&seed);
            seed.zeroize();
            if keys.ed25519.0 != bytes[32..] {
                return Err(KeyError::Damaged(
                    name,
                    "public key does not match the seed",
                ));
            }
            return Ok(keys);
        }
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let keys = ServiceNodeKeys::from_seed(&seed);
        let mut file = seed.to_vec();
        file.extend_from_slice(&keys.ed25519.0);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &file).map_err(|e| KeyError::Io(name.clone(), e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| KeyError::Io(name.clone(), e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| KeyError::Io(name, e))?;
        file.zeroize();
        seed.zeroize();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_public_key_and_file_round_trip() {
        // RFC 8032 test 1: the Ed25519 public key of this seed.
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            &mut seed,
        )
        .expect("hex");
        let k = ServiceNodeKeys::from_seed(&seed);
        assert_eq!(
            k.ed25519.to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ServiceNodeKeys::load_or_create(dir.path()).expect("create");
        let b = ServiceNodeKeys::load_or_create(dir.path()).expect("load");
        assert_eq!(a.primary, b.primary);
        std::fs::write(dir.path().join("key_ed25519"), [1u8; 10]).expect("write");
        assert!(ServiceNodeKeys::load_or_create(dir.path()).is_err());
    }
}
