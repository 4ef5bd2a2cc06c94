//! Newtypes for ids and amounts. Arithmetic on amounts is checked: overflow is a consensus
//! error, never a wrap.

use std::fmt;

/// Atomic units per coin (Sispop: 9 decimals).
pub const COIN: u64 = 1_000_000_000;

macro_rules! hash_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Lower-case hex of the 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// Parses 64 hex characters.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
            }
        }
    };
}

hash_newtype!(
    /// Keccak id of a block.
    BlockHash
);
hash_newtype!(
    /// Keccak id of a transaction.
    TxHash
);
hash_newtype!(
    /// A spent output's key image (linking tag).
    KeyImage
);
hash_newtype!(
    /// A compressed Ed25519 point used as a public key.
    PublicKey
);

/// A block height.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    /// The next height, or `None` at the end of the range.
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount in atomic units.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Atomic(pub u64);

impl Atomic {
    /// Zero.
    pub const ZERO: Atomic = Atomic(0);

    /// Whole coins.
    pub const fn coins(n: u64) -> Atomic {
        Atomic(n * COIN)
    }
    /// Checked addition.
    pub fn checked_add(self, o: Atomic) -> Option<Atomic> {
        self.0.checked_add(o.0).map(Atomic)
    }
    /// Checked subtraction.
    pub fn checked_sub(self, o: Atomic) -> Option<Atomic> {
        self.0.checked_sub(o.0).map(Atomic)
    }
    /// Parses a coin amount such as `25`, `12.5` or `0.000000001` (at most 9 decimals).
    pub fn parse_coins(s: &str) -> Option<Atomic> {
        let s = s.trim();
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 9
            || (whole.is_empty() && frac.is_empty())
            || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return None;
        }
        let w: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let f: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        w.checked_mul(COIN)?.checked_add(f).map(Atomic)
    }

    /// Checked multiplication by a count.
    pub fn checked_mul(self, n: u64) -> Option<Atomic> {
        self.0.checked_mul(n).map(Atomic)
    }
}

impl fmt::Display for Atomic {
    /// `123.000000000` style, 9 decimals, as the CLI shows amounts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / COIN, self.0 % COIN)
    }
}

/// A block's difficulty or a chain's cumulative difficulty.
pub type Difficulty = u128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coin_amounts() {
        assert_eq!(Atomic::parse_coins("25"), Some(Atomic(25_000_000_000)));
        assert_eq!(Atomic::parse_coins("25.5"), Some(Atomic(25_500_000_000)));
        assert_eq!(Atomic::parse_coins("0.000000001"), Some(Atomic(1)));
        assert_eq!(Atomic::parse_coins("1.0000000001"), None);
        assert_eq!(Atomic::parse_coins("-1"), None);
        assert_eq!(Atomic::parse_coins("."), None);
        assert_eq!(Atomic::parse_coins("99999999999999999999"), None);
        assert_eq!(Atomic(12_500_000_000).to_string(), "12.500000000");
    }
}
