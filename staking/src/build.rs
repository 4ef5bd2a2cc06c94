//! Building staking transactions: the signed registration record, stake transactions (a
//! registration's operator stake or a contribution) and unlock requests.

use curve25519_dalek::Scalar;
use rand_core::{CryptoRng, RngCore};
use sispop_chain::builder::{build_transfer_with_key, BuildError, SpendInput};
use sispop_chain::crypto::{
    derivation_to_scalar, key_derivation, public_from_secret, random_scalar, schnorr_sign,
};
use sispop_chain::extra::{build_extra, ExtraField, Registration};
use sispop_chain::{Address, KeyImage, PublicKey, Transaction, TxType};

use crate::proofs::{registration_hash, sign_key_image, unlock_message, UNLOCK_NONCE};

/// A registration record signed by the service node's primary key.
pub fn sign_registration<R: RngCore + CryptoRng>(
    rng: &mut R,
    sn_secret: &Scalar,
    fee: u64,
    spots: &[(Address, u64)],
    hf: u8,
) -> Registration {
    let sn_pub = public_from_secret(sn_secret);
    let hash = registration_hash(fee, spots, u64::from(hf));
    Registration {
        public_spend_keys: spots.iter().map(|(a, _)| a.spend).collect(),
        public_view_keys: spots.iter().map(|(a, _)| a.view).collect(),
        fee,
        amounts: spots.iter().map(|(_, a)| *a).collect(),
        hf_or_expiration: u64::from(hf),
        signature: schnorr_sign(rng, &hash, &sn_pub, sn_secret),
    }
}

/// A built stake transaction and what its sender must remember.
pub struct BuiltStake {
    /// The transaction.
    pub tx: Transaction,
    /// Key image of the locked output (output 0).
    pub key_image: KeyImage,
}

/// A stake of `amount` to the sender's own address (output 0, locked) with change back to the
/// sender, revealing the tx key and proving the locked output's key image. With
/// `registration`, this is the operator's registration.
#[expect(
    clippy::too_many_arguments,
    reason = "a stake names its keys, inputs, node, amount, fee and registration"
)]
pub fn build_stake_tx<R: RngCore + CryptoRng>(
    rng: &mut R,
    spend: &Scalar,
    view: &Scalar,
    inputs: &[SpendInput],
    sn_key: PublicKey,
    amount: u64,
    fee: u64,
    registration: Option<Registration>,
) -> Result<BuiltStake, BuildError> {
    let me = Address {
        spend: public_from_secret(spend),
        view: public_from_secret(view),
    };
    let r = random_scalar(rng);
    let d = key_derivation(&r, &me.view).ok_or(BuildError::BadAddress)?;
    let x0 = derivation_to_scalar(&d, 0) + spend;
    let (key_image, proof) = sign_key_image(rng, &x0);
    let mut fields = vec![
        ExtraField::Contributor {
            spend: me.spend,
            view: me.view,
        },
        ExtraField::ServiceNodePubkey(sn_key),
    ];
    if let Some(reg) = registration {
        fields.push(ExtraField::Registration(reg));
    }
    fields.push(ExtraField::TxSecretKey(r.to_bytes()));
    fields.push(ExtraField::KeyImageProofs(vec![(key_image, proof)]));
    let total: u128 = inputs.iter().map(|i| u128::from(i.amount)).sum();
    let change = total
        .checked_sub(u128::from(amount) + u128::from(fee))
        .ok_or(BuildError::Amounts {
            inputs: total,
            outputs: u128::from(amount),
            fee,
        })?;
    let mut dests = vec![(me, amount)];
    if change > 0 {
        dests.push((me, change as u64));
    }
    let built = build_transfer_with_key(rng, r, inputs, &dests, fee, TxType::Stake, &fields)?;
    Ok(BuiltStake {
        tx: built.tx,
        key_image,
    })
}

/// An unlock request for the stake whose one-time secret is `output_secret`.
pub fn build_unlock_tx<R: RngCore + CryptoRng>(
    rng: &mut R,
    output_secret: &Scalar,
    key_image: KeyImage,
    sn_key: PublicKey,
) -> Transaction {
    let p = public_from_secret(output_secret);
    let signature = schnorr_sign(rng, &unlock_message(UNLOCK_NONCE), &p, output_secret);
    Transaction {
        version: 4,
        output_unlock_times: vec![],
        v3_state_change: false,
        unlock_time: 0,
        inputs: vec![],
        outputs: vec![],
        extra: build_extra(&[
            ExtraField::ServiceNodePubkey(sn_key),
            ExtraField::KeyImageUnlock {
                key_image,
                signature,
                nonce: UNLOCK_NONCE,
            },
        ]),
        tx_type: TxType::KeyImageUnlock,
        rct: None,
    }
}
