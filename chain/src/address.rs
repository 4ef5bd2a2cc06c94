//! Cryptonote addresses: Monero's block base58 over `varint(prefix) || spend || view || checksum`.

use thiserror::Error;

use crate::crypto::{decompress, keccak256, varint_bytes};
use crate::params::NetworkParams;
use crate::types::PublicKey;

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const FULL_BLOCK: usize = 8;
const FULL_ENCODED: usize = 11;
/// Encoded length for a block of `i` bytes.
const ENCODED_LEN: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/// Why an address string was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    /// Not valid Cryptonote base58.
    #[error("address is not valid base58")]
    Base58,
    /// Base58 decoded but the checksum does not match.
    #[error("address checksum does not match")]
    Checksum,
    /// The prefix is not this network's standard address prefix.
    #[error("address prefix {found} is not this network's ({expected}); wrong network?")]
    Prefix {
        /// What the address carries.
        found: u64,
        /// What this network uses.
        expected: u64,
    },
    /// Wrong payload length (integrated or malformed).
    #[error("address payload has {0} bytes after the prefix, expected 64")]
    Length(usize),
    /// A key is not a curve point.
    #[error("address key is not a valid curve point")]
    BadKey,
}

/// A standard (primary) address.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Address {
    /// Public spend key B.
    pub spend: PublicKey,
    /// Public view key A.
    pub view: PublicKey,
}

impl Address {
    /// Encodes for the given network.
    pub fn to_string(&self, params: &NetworkParams) -> String {
        let mut data = varint_bytes(params.address_prefix);
        data.extend_from_slice(&self.spend.0);
        data.extend_from_slice(&self.view.0);
        let check = keccak256(&data);
        data.extend_from_slice(&check[..4]);
        base58_encode(&data)
    }

    /// Decodes and checks prefix, checksum and keys.
    pub fn parse(s: &str, params: &NetworkParams) -> Result<Address, AddressError> {
        let data = base58_decode(s).ok_or(AddressError::Base58)?;
        if data.len() < 5 {
            return Err(AddressError::Base58);
        }
        let (body, check) = data.split_at(data.len() - 4);
        if keccak256(body)[..4] != *check {
            return Err(AddressError::Checksum);
        }
        let mut prefix = 0u64;
        let mut used = 0;
        for (i, b) in body.iter().enumerate().take(10) {
            prefix |= u64::from(b & 0x7f) << (7 * i);
            used = i + 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if prefix != params.address_prefix {
            return Err(AddressError::Prefix {
                found: prefix,
                expected: params.address_prefix,
            });
        }
        let keys = &body[used..];
        if keys.len() != 64 {
            return Err(AddressError::Length(keys.len()));
        }
        let mut spend = [0u8; 32];
        let mut view = [0u8; 32];
        spend.copy_from_slice(&keys[..32]);
        view.copy_from_slice(&keys[32..]);
        let addr = Address {
            spend: PublicKey(spend),
            view: PublicKey(view),
        };
        if decompress(&addr.spend).is_none() || decompress(&addr.view).is_none() {
            return Err(AddressError::BadKey);
        }
        Ok(addr)
    }
}

/// Cryptonote block base58 encoding.
pub fn base58_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 2);
    for chunk in data.chunks(FULL_BLOCK) {
        let mut num = 0u64;
        for &b in chunk {
            num = (num << 8) | u64::from(b);
        }
        let len = ENCODED_LEN[chunk.len()];
        let mut buf = vec![ALPHABET[0]; len];
        let mut i = len;
        while num > 0 && i > 0 {
            i -= 1;
            buf[i] = ALPHABET[(num % 58) as usize];
            num /= 58;
        }
        out.extend(buf.into_iter().map(char::from));
    }
    out
}

/// Cryptonote block base58 decoding; `None` on any malformed input.
pub fn base58_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let full = bytes.len() / FULL_ENCODED;
    let rem = bytes.len() % FULL_ENCODED;
    let rem_bytes = ENCODED_LEN.iter().position(|&l| l == rem)?;
    let mut out = Vec::with_capacity(full * FULL_BLOCK + rem_bytes);
    let mut decode_block = |block: &[u8], size: usize| -> Option<()> {
        let mut num: u128 = 0;
        for &c in block {
            let d = ALPHABET.iter().position(|&a| a == c)? as u128;
            num = num * 58 + d;
        }
        if size < FULL_BLOCK && num >> (8 * size) != 0 {
            return None;
        }
        if num > u128::from(u64::MAX) {
            return None;
        }
        let be = (num as u64).to_be_bytes();
        out.extend_from_slice(&be[FULL_BLOCK - size..]);
        Some(())
    };
    for i in 0..full {
        decode_block(&bytes[i * FULL_ENCODED..(i + 1) * FULL_ENCODED], FULL_BLOCK)?;
    }
    if rem > 0 {
        decode_block(&bytes[full * FULL_ENCODED..], rem_bytes)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{public_from_secret, random_scalar};
    use crate::params::Network;
    use rand::rngs::OsRng;

    #[test]
    fn base58_round_trip() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base58_decode(&base58_encode(&data)), Some(data));
        }
        assert_eq!(base58_decode("0OIl"), None);
    }

    #[test]
    fn address_round_trip_and_prefix_check() {
        let main = NetworkParams::get(Network::Mainnet);
        let dev = NetworkParams::get(Network::Devnet);
        let a = Address {
            spend: public_from_secret(&random_scalar(&mut OsRng)),
            view: public_from_secret(&random_scalar(&mut OsRng)),
        };
        let s = a.to_string(main);
        assert!(s.starts_with('4'), "mainnet addresses start with 4: {s}");
        assert_eq!(s.len(), 95);
        assert_eq!(Address::parse(&s, main), Ok(a));
        assert!(matches!(
            Address::parse(&s, dev),
            Err(AddressError::Prefix { .. })
        ));
        let d = a.to_string(dev);
        assert!(d.starts_with("dV"), "devnet addresses start with dV: {d}");
        let mut broken = s.into_bytes();
        broken[50] = if broken[50] == b'2' { b'3' } else { b'2' };
        let broken = String::from_utf8(broken).expect("ascii");
        assert!(Address::parse(&broken, main).is_err());
    }
}
