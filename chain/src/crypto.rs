//! Cryptonote primitives on curve25519-dalek 4 (the version monero-oxide uses). Every
//! conversion between dalek and monero-oxide types lives here, so a version bump touches one
//! file.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use monero_oxide::ed25519 as ox;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::types::{KeyImage, PublicKey};

pub use monero_oxide::primitives::keccak256;

/// Keccak-256 of the concatenation of `parts` (cn_fast_hash).
pub fn keccak_concat(parts: &[&[u8]]) -> [u8; 32] {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(len);
    for p in parts {
        buf.extend_from_slice(p);
    }
    keccak256(buf)
}

/// Hs: Keccak-256 reduced mod l.
pub fn hash_to_scalar(data: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order(keccak256(data))
}

/// A scalar from 32 bytes, only if canonical (reduced).
pub fn scalar_from_canonical(bytes: [u8; 32]) -> Option<Scalar> {
    Option::from(Scalar::from_canonical_bytes(bytes))
}

/// A uniformly random scalar.
pub fn random_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// x·G.
pub fn public_from_secret(x: &Scalar) -> PublicKey {
    PublicKey((ED25519_BASEPOINT_TABLE * x).compress().to_bytes())
}

/// Decompresses a public key; `None` if it is not a point.
pub fn decompress(p: &PublicKey) -> Option<EdwardsPoint> {
    CompressedEdwardsY(p.0).decompress()
}

/// Hp: Monero's hash-to-point (`ge_fromfe_frombytes_vartime`, then ×8).
pub fn hash_to_point(bytes: [u8; 32]) -> EdwardsPoint {
    ox::Point::biased_hash(bytes).into()
}

/// Key image I = x·Hp(P) for the one-time key P = x·G.
pub fn key_image(secret: &Scalar) -> KeyImage {
    let p = public_from_secret(secret);
    KeyImage((secret * hash_to_point(p.0)).compress().to_bytes())
}

/// Whether a key image is a valid, torsion-free, non-identity point (a spendable tag).
pub fn key_image_is_valid(ki: &KeyImage) -> bool {
    CompressedEdwardsY(ki.0)
        .decompress()
        .is_some_and(|p| !p.is_identity() && p.is_torsion_free())
}

/// The Cryptonote key derivation 8·r·A (sender side) or 8·a·R (receiver side).
pub fn key_derivation(secret: &Scalar, public: &PublicKey) -> Option<[u8; 32]> {
    let p = decompress(public)?;
    Some((p * secret).mul_by_cofactor().compress().to_bytes())
}

/// The varint encoding of `n`, as Cryptonote writes indexes into hashes.
pub fn varint_bytes(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut n = n;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Hs(D || varint(index)): the per-output shared scalar.
pub fn derivation_to_scalar(derivation: &[u8; 32], index: u64) -> Scalar {
    hash_to_scalar(&[&derivation[..], &varint_bytes(index)].concat())
}

/// One-time output key Hs(D || i)·G + B.
pub fn derive_output_key(
    derivation: &[u8; 32],
    index: u64,
    spend_public: &PublicKey,
) -> Option<PublicKey> {
    let b = decompress(spend_public)?;
    let s = derivation_to_scalar(derivation, index);
    Some(PublicKey(
        (ED25519_BASEPOINT_TABLE * &s + b).compress().to_bytes(),
    ))
}

/// The RingCT amount mask key: `Hs("commitment_mask" || s)`.
pub fn commitment_mask(shared: &Scalar) -> Scalar {
    hash_to_scalar(&[b"commitment_mask".as_slice(), shared.as_bytes()].concat())
}

/// XOR-encrypts (or decrypts) an amount with `Keccak("amount" || s)`.
pub fn xor_amount(amount_le: [u8; 8], shared: &Scalar) -> [u8; 8] {
    let k = keccak256([b"amount".as_slice(), shared.as_bytes()].concat());
    let mut out = amount_le;
    for (o, k) in out.iter_mut().zip(k.iter()) {
        *o ^= k;
    }
    out
}

/// The Pedersen commitment `mask·G + amount·H`, compressed.
pub fn commit(mask: &Scalar, amount: u64) -> [u8; 32] {
    ox::Commitment::new(ox::Scalar::from(*mask), amount)
        .commit()
        .compress()
        .to_bytes()
}

/// The commitment of a plaintext (coinbase) amount: `1·G + amount·H`.
pub fn zero_commit(amount: u64) -> [u8; 32] {
    commit(&Scalar::ONE, amount)
}

/// A secret scalar wrapped for monero-oxide's signing APIs.
pub fn to_oxide_secret(s: &Scalar) -> Zeroizing<ox::Scalar> {
    Zeroizing::new(ox::Scalar::from(*s))
}

/// A dalek point as a monero-oxide point.
pub fn to_oxide_point(p: EdwardsPoint) -> ox::Point {
    ox::Point::from(p)
}

/// A monero-oxide point as a dalek point.
pub fn from_oxide_point(p: ox::Point) -> EdwardsPoint {
    p.into()
}

/// A 64-byte Cryptonote Schnorr signature `c || r` (not Ed25519).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Signs `hash` with secret `x` whose public key is `public`: random k, c = Hs(h || P || kG),
/// r = k − c·x.
pub fn schnorr_sign<R: RngCore + CryptoRng>(
    rng: &mut R,
    hash: &[u8; 32],
    public: &PublicKey,
    x: &Scalar,
) -> Signature {
    loop {
        let k = Zeroizing::new(random_scalar(rng));
        let kg = (ED25519_BASEPOINT_TABLE * &*k).compress().to_bytes();
        let c = hash_to_scalar(&[&hash[..], &public.0, &kg].concat());
        if c == Scalar::ZERO {
            continue;
        }
        let r = *k - c * x;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(c.as_bytes());
        sig[32..].copy_from_slice(r.as_bytes());
        return Signature(sig);
    }
}

/// Verifies a Cryptonote Schnorr signature: c and r canonical, c ≠ 0, X = cP + rG not the
/// identity, and Hs(h || P || X) == c.
pub fn schnorr_verify(hash: &[u8; 32], public: &PublicKey, sig: &Signature) -> bool {
    let mut c_bytes = [0u8; 32];
    let mut r_bytes = [0u8; 32];
    c_bytes.copy_from_slice(&sig.0[..32]);
    r_bytes.copy_from_slice(&sig.0[32..]);
    let (Some(c), Some(r)) = (
        scalar_from_canonical(c_bytes),
        scalar_from_canonical(r_bytes),
    ) else {
        return false;
    };
    if c == Scalar::ZERO {
        return false;
    }
    let Some(p) = decompress(public) else {
        return false;
    };
    let x = EdwardsPoint::vartime_double_scalar_mul_basepoint(&c, &p, &r);
    if x.is_identity() {
        return false;
    }
    let expect = hash_to_scalar(&[&hash[..], &public.0, &x.compress().to_bytes()].concat());
    expect == c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn keccak_of_empty() {
        assert_eq!(
            hex::encode(keccak256([])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn schnorr_round_trip_and_tamper() {
        let x = random_scalar(&mut OsRng);
        let p = public_from_secret(&x);
        let h = keccak256(b"message");
        let sig = schnorr_sign(&mut OsRng, &h, &p, &x);
        assert!(schnorr_verify(&h, &p, &sig));
        let other = keccak256(b"other");
        assert!(!schnorr_verify(&other, &p, &sig));
        let mut bad = sig;
        bad.0[40] ^= 1;
        assert!(!schnorr_verify(&h, &p, &bad));
        assert!(!schnorr_verify(&h, &p, &Signature([0; 64])));
        let q = public_from_secret(&random_scalar(&mut OsRng));
        assert!(!schnorr_verify(&h, &q, &sig));
    }

    #[test]
    fn derivation_is_symmetric() {
        let r = random_scalar(&mut OsRng);
        let a = random_scalar(&mut OsRng);
        let big_r = public_from_secret(&r);
        let big_a = public_from_secret(&a);
        assert_eq!(key_derivation(&r, &big_a), key_derivation(&a, &big_r));
    }

    #[test]
    fn key_images_are_valid_and_deterministic() {
        let x = random_scalar(&mut OsRng);
        assert_eq!(key_image(&x), key_image(&x));
        assert!(key_image_is_valid(&key_image(&x)));
        assert!(!key_image_is_valid(&KeyImage([0; 32])));
    }

    #[test]
    fn amount_xor_round_trips() {
        let s = random_scalar(&mut OsRng);
        let enc = xor_amount(12345u64.to_le_bytes(), &s);
        assert_eq!(u64::from_le_bytes(xor_amount(enc, &s)), 12345);
    }
}
