#![doc = include_str!("../README.md")]

pub mod auth;
mod peer;
pub mod ratelimit;
pub mod rpc;
pub mod storage_test;
pub mod store;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

/// A user pubkey as clients send it: a one-byte network prefix (`05` for Session ids) and
/// 32 key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct UserPubkey {
    /// Network prefix byte.
    pub prefix: u8,
    /// The key.
    pub key: [u8; 32],
}

/// A pubkey that is not 66 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pubkey must be 66 hex characters (a prefix byte and a 32-byte key)")]
pub struct BadPubkey;

impl UserPubkey {
    /// Parses `05…` hex (66 characters).
    pub fn from_hex(s: &str) -> Result<UserPubkey, BadPubkey> {
        let bytes = s.as_bytes();
        if bytes.len() != 66 || !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(BadPubkey);
        }
        let mut all = [0u8; 33];
        for (i, b) in all.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| BadPubkey)?;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&all[1..]);
        Ok(UserPubkey {
            prefix: all[0],
            key,
        })
    }
}

/// The canonical account string: lower-case hex of the prefix and the key (66 characters).
pub fn pubkey_hex(pk: &UserPubkey) -> String {
    let mut s = format!("{:02x}", pk.prefix);
    for b in pk.key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A message namespace (signed 16-bit; 0 is the default).
pub type Namespace = i16;

/// The message hash: unpadded standard base64 of BLAKE2b-256 over
/// `prefix ‖ key ‖ namespace ‖ data`, where the namespace is empty for 0 and its ASCII decimal
/// otherwise. Always 43 characters.
pub fn message_hash(pubkey: &UserPubkey, namespace: Namespace, data: &[u8]) -> String {
    let mut h =
        Blake2bVar::new(32).unwrap_or_else(|_| unreachable!("32 is a valid BLAKE2b output size"));
    h.update(&[pubkey.prefix]);
    h.update(&pubkey.key);
    if namespace != 0 {
        h.update(namespace.to_string().as_bytes());
    }
    h.update(data);
    let mut out = [0u8; 32];
    h.finalize_variable(&mut out)
        .unwrap_or_else(|_| unreachable!("buffer matches the output size"));
    STANDARD_NO_PAD.encode(out)
}

/// Whether a client-supplied message hash has the right shape (43 base64 characters).
pub fn is_valid_message_hash(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_hash_vectors() {
        let pk = UserPubkey::from_hex(
            "050123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .expect("pubkey");
        assert_eq!(
            message_hash(&pk, 0, b"hello"),
            "iCs3aAbPotVlBLCGQu2fn426dT9KM3oUfdrNDhOo+L4"
        );
        assert_eq!(
            message_hash(&pk, 5, b"hello"),
            "o6MnqDP8vsAud9p1eyXjssrEyO7G2wiLSZULJ++TpYw"
        );
        assert_eq!(
            message_hash(&pk, -10, b"hello"),
            "259ofoM5Z0mL+Os1Ur+MD1uwb1TqQgo7mt5pVUtt+v8"
        );
        let zero = UserPubkey {
            prefix: 3,
            key: [0; 32],
        };
        assert_eq!(
            message_hash(&zero, 0, b""),
            "J3QKE5PIuw/oTsUNLhKhy4cM3zl8bJt16EB6nkJ/qpA"
        );
        assert!(is_valid_message_hash(&message_hash(&zero, 0, b"")));
        assert!(!is_valid_message_hash("short"));
    }

    #[test]
    fn bad_pubkeys() {
        assert_eq!(UserPubkey::from_hex("05"), Err(BadPubkey));
        assert_eq!(UserPubkey::from_hex(&"zz".repeat(33)), Err(BadPubkey));
        assert_eq!(UserPubkey::from_hex(&"é".repeat(33)), Err(BadPubkey));
    }
}
