//! The cryptography of staking: the registration hash, key-image ownership proofs, unlock
//! signatures, and reading a stake's amount through its revealed transaction key
//! (reference `service-nodes.md` §1.3, §1.5, §1.6).

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::Scalar;
use monero_oxide::ringct::EncryptedAmount;
use rand_core::{CryptoRng, RngCore};
use sispop_chain::crypto::{
    commit, commitment_mask, decompress, derivation_to_scalar, hash_to_point, hash_to_scalar,
    keccak256, key_derivation, key_image_is_valid, public_from_secret, random_scalar,
    scalar_from_canonical, xor_amount, Signature,
};
use sispop_chain::extra::{ExtraField, Registration};
use sispop_chain::{Address, KeyImage, PublicKey, Transaction};

/// The hash a service node key signs for a registration: Keccak of fee (8 LE) ‖ per spot
/// spend (32) ‖ view (32) ‖ amount (8 LE) ‖ hf_or_expiration (8 LE).
pub fn registration_hash(fee: u64, spots: &[(Address, u64)], hf_or_expiration: u64) -> [u8; 32] {
    let mut buf = Vec::with_capacity(16 + spots.len() * 72);
    buf.extend_from_slice(&fee.to_le_bytes());
    for (addr, amount) in spots {
        buf.extend_from_slice(&addr.spend.0);
        buf.extend_from_slice(&addr.view.0);
        buf.extend_from_slice(&amount.to_le_bytes());
    }
    buf.extend_from_slice(&hf_or_expiration.to_le_bytes());
    keccak256(buf)
}

/// The reserved spots of a registration record as (address, amount).
pub fn registration_spots(reg: &Registration) -> Vec<(Address, u64)> {
    reg.public_spend_keys
        .iter()
        .zip(&reg.public_view_keys)
        .zip(&reg.amounts)
        .map(|((s, v), a)| {
            (
                Address {
                    spend: *s,
                    view: *v,
                },
                *a,
            )
        })
        .collect()
}

/// Proof that `key_image` belongs to the one-time key `output_key = x·G`: a one-member ring
/// signature with the key image as the message, c = Hs(I ‖ kG ‖ k·Hp(P)), r = k − c·x.
pub fn sign_key_image<R: RngCore + CryptoRng>(rng: &mut R, x: &Scalar) -> (KeyImage, Signature) {
    let p = public_from_secret(x);
    let hp = hash_to_point(p.0);
    let image = x * hp;
    let ki = KeyImage(image.compress().to_bytes());
    loop {
        let k = random_scalar(rng);
        let l = EdwardsPoint::mul_base(&k);
        let r_pt = k * hp;
        let c = hash_to_scalar(
            &[
                &ki.0[..],
                &l.compress().to_bytes(),
                &r_pt.compress().to_bytes(),
            ]
            .concat(),
        );
        if c == Scalar::ZERO {
            continue;
        }
        let r = k - c * x;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(c.as_bytes());
        sig[32..].copy_from_slice(r.as_bytes());
        return (ki, Signature(sig));
    }
}

/// Verifies a key-image proof against the one-time key `output_key`.
pub fn verify_key_image(ki: &KeyImage, output_key: &PublicKey, sig: &Signature) -> bool {
    let mut cb = [0u8; 32];
    let mut rb = [0u8; 32];
    cb.copy_from_slice(&sig.0[..32]);
    rb.copy_from_slice(&sig.0[32..]);
    let (Some(c), Some(r)) = (scalar_from_canonical(cb), scalar_from_canonical(rb)) else {
        return false;
    };
    if !key_image_is_valid(ki) {
        return false;
    }
    let (Some(p), Some(i)) = (decompress(output_key), decompress(&PublicKey(ki.0))) else {
        return false;
    };
    let l = EdwardsPoint::vartime_double_scalar_mul_basepoint(&c, &p, &r);
    let r_pt = r * hash_to_point(output_key.0) + c * i;
    if l.is_identity() {
        return false;
    }
    hash_to_scalar(
        &[
            &ki.0[..],
            &l.compress().to_bytes(),
            &r_pt.compress().to_bytes(),
        ]
        .concat(),
    ) == c
}

/// The nonce wallets put in unlock requests ("UNLK").
pub const UNLOCK_NONCE: u32 = 0x4B4C_4E55;

/// The 32-byte message an unlock request signs: the nonce's 4 LE bytes, eight times.
pub fn unlock_message(nonce: u32) -> [u8; 32] {
    let mut m = [0u8; 32];
    for chunk in m.chunks_exact_mut(4) {
        chunk.copy_from_slice(&nonce.to_le_bytes());
    }
    m
}

/// One staked output found in a stake transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakedOutput {
    /// Output index in the transaction.
    pub index: usize,
    /// One-time key P.
    pub output_key: PublicKey,
    /// Its key image (proven).
    pub key_image: KeyImage,
    /// Decoded amount.
    pub amount: u64,
}

/// Why a stake could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakeDecodeError {
    /// A required extra field is missing.
    #[error("stake transaction lacks its {0}")]
    Missing(&'static str),
    /// The revealed key or address is unusable.
    #[error("stake transaction carries an invalid {0}")]
    Invalid(&'static str),
}

/// The staker address, service node key and staked outputs of a stake transaction: outputs
/// paying the revealed contributor address (checked through the revealed tx secret key, the
/// decrypted amount and its commitment) that come with a valid key-image proof.
pub fn decode_stake(
    tx: &Transaction,
    fields: &[ExtraField],
) -> Result<(Address, PublicKey, Vec<StakedOutput>), StakeDecodeError> {
    let mut contributor = None;
    let mut sn_key = None;
    let mut secret = None;
    let mut proofs: Vec<(KeyImage, Signature)> = Vec::new();
    for f in fields {
        match f {
            ExtraField::Contributor { spend, view } if contributor.is_none() => {
                contributor = Some(Address {
                    spend: *spend,
                    view: *view,
                })
            }
            ExtraField::ServiceNodePubkey(k) if sn_key.is_none() => sn_key = Some(*k),
            ExtraField::TxSecretKey(k) if secret.is_none() => secret = Some(*k),
            ExtraField::KeyImageProofs(p) => proofs.extend(p.iter().cloned()),
            _ => {}
        }
    }
    let addr = contributor.ok_or(StakeDecodeError::Missing("contributor address (0x73)"))?;
    let sn_key = sn_key.ok_or(StakeDecodeError::Missing("service node key (0x74)"))?;
    let r = secret.ok_or(StakeDecodeError::Missing("revealed tx secret key (0x75)"))?;
    let r = scalar_from_canonical(r).ok_or(StakeDecodeError::Invalid("tx secret key"))?;
    let d =
        key_derivation(&r, &addr.view).ok_or(StakeDecodeError::Invalid("contributor view key"))?;
    let b = decompress(&addr.spend).ok_or(StakeDecodeError::Invalid("contributor spend key"))?;
    let Some(rct) = tx.rct.as_ref() else {
        return Ok((addr, sn_key, vec![]));
    };
    let mut used = vec![false; proofs.len()];
    let mut staked = Vec::new();
    for (i, out) in tx.outputs.iter().enumerate() {
        let s = derivation_to_scalar(&d, i as u64);
        let expected_key = (EdwardsPoint::mul_base(&s) + b).compress().to_bytes();
        if out.key.to_bytes() != expected_key {
            continue;
        }
        let (Some(EncryptedAmount::Compact { amount }), Some(c)) = (
            rct.base.encrypted_amounts.get(i),
            rct.base.commitments.get(i),
        ) else {
            continue;
        };
        let value = u64::from_le_bytes(xor_amount(*amount, &s));
        if value == 0 || commit(&commitment_mask(&s), value) != c.to_bytes() {
            continue;
        }
        let key = PublicKey(expected_key);
        if let Some(j) = (0..proofs.len())
            .find(|&j| !used[j] && verify_key_image(&proofs[j].0, &key, &proofs[j].1))
        {
            used[j] = true;
            staked.push(StakedOutput {
                index: i,
                output_key: key,
                key_image: proofs[j].0,
                amount: value,
            });
        }
    }
    Ok((addr, sn_key, staked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;
    use sispop_chain::crypto::{key_image, schnorr_sign, schnorr_verify};

    #[test]
    fn registration_hash_vector() {
        let spot = Address {
            spend: PublicKey([0x11; 32]),
            view: PublicKey([0x22; 32]),
        };
        let h = registration_hash(10_000, &[(spot, 15_000 * 1_000_000_000)], 19);
        assert_eq!(
            hex::encode(h),
            "326ecb3e51e8a5bed55d38f04357b4c88ba4e78b7dcc9689cab92cbd89a23fce"
        );
    }

    #[test]
    fn key_image_proofs() {
        let x = random_scalar(&mut OsRng);
        let p = public_from_secret(&x);
        let (ki, sig) = sign_key_image(&mut OsRng, &x);
        assert_eq!(ki, key_image(&x));
        assert!(verify_key_image(&ki, &p, &sig));
        let other = public_from_secret(&random_scalar(&mut OsRng));
        assert!(!verify_key_image(&ki, &other, &sig));
        let (ki2, _) = sign_key_image(&mut OsRng, &random_scalar(&mut OsRng));
        assert!(!verify_key_image(&ki2, &p, &sig));
        let mut bad = sig;
        bad.0[3] ^= 1;
        assert!(!verify_key_image(&ki, &p, &bad));
    }

    #[test]
    fn unlock_message_vector() {
        assert_eq!(
            &unlock_message(UNLOCK_NONCE),
            b"UNLKUNLKUNLKUNLKUNLKUNLKUNLKUNLK"
        );
        let x = random_scalar(&mut OsRng);
        let p = public_from_secret(&x);
        let sig = schnorr_sign(&mut OsRng, &unlock_message(UNLOCK_NONCE), &p, &x);
        assert!(schnorr_verify(&unlock_message(UNLOCK_NONCE), &p, &sig));
    }
}
