//! Building RingCT transfers (CLSAG + Bulletproofs+): the sender side of what
//! [`crate::blockchain::Blockchain::validate_tx`] checks. Used by the wallet and by tests and
//! benchmarks that need real transactions.

use curve25519_dalek::Scalar;
use monero_oxide::ed25519::{Commitment, CompressedPoint, Point};
use monero_oxide::ringct::bulletproofs::Bulletproof;
use monero_oxide::ringct::clsag::{Clsag, ClsagContext, Decoys};
use monero_oxide::ringct::{EncryptedAmount, RctBase, RctProofs, RctPrunable};
use monero_oxide::transaction::{Input, Output};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::address::Address;
use crate::crypto::{
    commit, commitment_mask, derivation_to_scalar, derive_output_key, key_derivation, key_image,
    public_from_secret, random_scalar, to_oxide_secret, xor_amount,
};
use crate::extra::{build_extra, ExtraField};
use crate::tx::{Transaction, TxType};

/// One real input with its ring.
#[derive(Clone)]
pub struct SpendInput {
    /// One-time private key x of the real output (P = xG).
    pub secret: Scalar,
    /// Amount of the real output.
    pub amount: u64,
    /// Commitment mask of the real output (1 for coinbase outputs).
    pub mask: Scalar,
    /// Ring members as (global index, key, commitment), ascending by index, real one included.
    pub ring: Vec<(u64, [u8; 32], [u8; 32])>,
    /// Position of the real output in `ring`.
    pub real_index: usize,
}

/// Why a transfer could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    /// Amounts do not add up.
    #[error("inputs {inputs} do not equal outputs {outputs} plus fee {fee}")]
    Amounts {
        /// Input sum.
        inputs: u128,
        /// Output sum.
        outputs: u128,
        /// Fee.
        fee: u64,
    },
    /// A destination key is not a point.
    #[error("destination address has an invalid key")]
    BadAddress,
    /// Ring data is inconsistent.
    #[error("invalid ring: {0}")]
    Ring(&'static str),
    /// Too many outputs for one range proof, or none.
    #[error("range proof: {0}")]
    RangeProof(String),
    /// CLSAG signing failed.
    #[error("ring signature: {0}")]
    Sign(String),
}

/// A built transfer with what the sender needs to remember.
pub struct BuiltTransfer {
    /// The transaction.
    pub tx: Transaction,
    /// The transaction secret key r.
    pub tx_secret: Scalar,
}

/// Builds a transfer of `inputs` to `destinations` (address, amount) paying `fee`, with extra
/// fields appended after the transaction public key.
pub fn build_transfer<R: RngCore + CryptoRng>(
    rng: &mut R,
    inputs: &[SpendInput],
    destinations: &[(Address, u64)],
    fee: u64,
    tx_type: TxType,
    extra_fields: &[ExtraField],
) -> Result<BuiltTransfer, BuildError> {
    let r = random_scalar(rng);
    build_transfer_with_key(rng, r, inputs, destinations, fee, tx_type, extra_fields)
}

/// [`build_transfer`] with a chosen transaction secret key `r` (stake transactions reveal it
/// and commit to outputs derived from it in their extra).
pub fn build_transfer_with_key<R: RngCore + CryptoRng>(
    rng: &mut R,
    r: Scalar,
    inputs: &[SpendInput],
    destinations: &[(Address, u64)],
    fee: u64,
    tx_type: TxType,
    extra_fields: &[ExtraField],
) -> Result<BuiltTransfer, BuildError> {
    build(
        rng,
        r,
        inputs,
        destinations,
        fee,
        tx_type,
        extra_fields,
        Scalar::ZERO,
    )
}

/// Test support (feature `test-support`): a transfer whose every proof and signature is valid
/// but whose pseudo-outputs do not balance its outputs (their masks are off by `offset`), so
/// that only the balance check can refuse it.
#[cfg(feature = "test-support")]
pub fn build_unbalanced_transfer<R: RngCore + CryptoRng>(
    rng: &mut R,
    inputs: &[SpendInput],
    destinations: &[(Address, u64)],
    fee: u64,
    offset: Scalar,
) -> Result<BuiltTransfer, BuildError> {
    let r = random_scalar(rng);
    build(
        rng,
        r,
        inputs,
        destinations,
        fee,
        TxType::Standard,
        &[],
        offset,
    )
}

#[allow(clippy::too_many_arguments)]
fn build<R: RngCore + CryptoRng>(
    rng: &mut R,
    r: Scalar,
    inputs: &[SpendInput],
    destinations: &[(Address, u64)],
    fee: u64,
    tx_type: TxType,
    extra_fields: &[ExtraField],
    mask_offset: Scalar,
) -> Result<BuiltTransfer, BuildError> {
    let in_sum: u128 = inputs.iter().map(|i| u128::from(i.amount)).sum();
    let out_sum: u128 = destinations.iter().map(|d| u128::from(d.1)).sum();
    if in_sum != out_sum + u128::from(fee) {
        return Err(BuildError::Amounts {
            inputs: in_sum,
            outputs: out_sum,
            fee,
        });
    }
    let tx_pub = public_from_secret(&r);
    let mut outputs = Vec::with_capacity(destinations.len());
    let mut encrypted = Vec::with_capacity(destinations.len());
    let mut commitments = Vec::with_capacity(destinations.len());
    let mut openings = Vec::with_capacity(destinations.len());
    let mut mask_sum = Scalar::ZERO;
    for (i, (addr, amount)) in destinations.iter().enumerate() {
        let d = key_derivation(&r, &addr.view).ok_or(BuildError::BadAddress)?;
        let key = derive_output_key(&d, i as u64, &addr.spend).ok_or(BuildError::BadAddress)?;
        let s = derivation_to_scalar(&d, i as u64);
        let mask = commitment_mask(&s);
        mask_sum += mask;
        outputs.push(Output {
            amount: None,
            key: CompressedPoint::from(key.0),
            view_tag: None,
        });
        encrypted.push(EncryptedAmount::Compact {
            amount: xor_amount(amount.to_le_bytes(), &s),
        });
        commitments.push(CompressedPoint::from(commit(&mask, *amount)));
        openings.push(Commitment::new(
            monero_oxide::ed25519::Scalar::from(mask),
            *amount,
        ));
    }
    let bulletproof = Bulletproof::prove_plus(rng, openings)
        .map_err(|e| BuildError::RangeProof(format!("{e:?}")))?;

    let mut tx_inputs = Vec::with_capacity(inputs.len());
    for input in inputs {
        if input.real_index >= input.ring.len() {
            return Err(BuildError::Ring("real index outside the ring"));
        }
        let mut offsets = Vec::with_capacity(input.ring.len());
        let mut prev = 0u64;
        for (k, (idx, _, _)) in input.ring.iter().enumerate() {
            if k > 0 && *idx <= prev {
                return Err(BuildError::Ring("ring indexes must ascend"));
            }
            offsets.push(idx - if k == 0 { 0 } else { prev });
            prev = *idx;
        }
        tx_inputs.push(Input::ToKey {
            amount: None,
            key_offsets: offsets,
            key_image: CompressedPoint::from(key_image(&input.secret).0),
        });
    }
    let mut fields = vec![ExtraField::PubKey(tx_pub)];
    fields.extend_from_slice(extra_fields);
    let mut tx = Transaction {
        version: 4,
        output_unlock_times: vec![0; destinations.len()],
        v3_state_change: false,
        unlock_time: 0,
        inputs: tx_inputs,
        outputs,
        extra: build_extra(&fields),
        tx_type,
        rct: Some(RctProofs {
            base: RctBase {
                fee,
                pseudo_outs: vec![],
                encrypted_amounts: encrypted,
                commitments,
            },
            prunable: RctPrunable::Clsag {
                clsags: vec![],
                pseudo_outs: vec![],
                bulletproof: bulletproof.clone(),
            },
        }),
    };
    let msg = tx
        .signature_hash()
        .ok_or(BuildError::Sign("no signature hash".into()))?;
    let mut signing = Vec::with_capacity(inputs.len());
    for (input, tx_in) in inputs.iter().zip(&tx.inputs) {
        let Input::ToKey { key_offsets, .. } = tx_in else {
            return Err(BuildError::Ring("not a ring input"));
        };
        let mut ring = Vec::with_capacity(input.ring.len());
        for (_, key, c) in &input.ring {
            let k = CompressedPoint::from(*key)
                .decompress()
                .ok_or(BuildError::Ring("ring key is not a point"))?;
            let c = CompressedPoint::from(*c)
                .decompress()
                .ok_or(BuildError::Ring("ring commitment is not a point"))?;
            ring.push([k, c]);
        }
        let real_index =
            u8::try_from(input.real_index).map_err(|_| BuildError::Ring("ring too large"))?;
        let decoys = Decoys::new(key_offsets.clone(), real_index, ring)
            .ok_or(BuildError::Ring("decoys rejected"))?;
        let opening = Commitment::new(
            monero_oxide::ed25519::Scalar::from(input.mask),
            input.amount,
        );
        let ctx =
            ClsagContext::new(decoys, opening).map_err(|e| BuildError::Sign(format!("{e:?}")))?;
        signing.push((to_oxide_secret(&input.secret), ctx));
    }
    let signed = Clsag::sign(
        rng,
        signing,
        monero_oxide::ed25519::Scalar::from(mask_sum + mask_offset),
        msg,
    )
    .map_err(|e| BuildError::Sign(format!("{e:?}")))?;
    let (clsags, pseudo): (Vec<Clsag>, Vec<Point>) = signed.into_iter().unzip();
    if let Some(rct) = tx.rct.as_mut() {
        rct.prunable = RctPrunable::Clsag {
            clsags,
            pseudo_outs: pseudo.into_iter().map(Point::compress).collect(),
            bulletproof,
        };
    }
    Ok(BuiltTransfer { tx, tx_secret: r })
}
