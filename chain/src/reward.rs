//! Emission and the miner transaction: what a block may pay, and building the coinbase that
//! pays it (reference `sispop-operator-docs.md` §2.4, `service-nodes.md` §6.5).
//!
//! The miner gets its share plus fees. The service-node share goes to the contributors of the
//! reward queue's leader, as the chain extension (the service node list) says; with no active
//! node that share is not emitted. The foundation share needs a governance wallet, which no
//! network here configures yet, so it is not emitted either.

use curve25519_dalek::Scalar;
use monero_oxide::ed25519::CompressedPoint;
use monero_oxide::transaction::{Input, Output};
use rand_core::{CryptoRng, RngCore};

use crate::address::Address;
use crate::crypto::{derive_output_key, key_derivation, public_from_secret, random_scalar};
use crate::extension::ServiceNodePayout;
use crate::extra::{build_extra, ExtraField};
use crate::params::NetworkParams;
use crate::tx::{Transaction, TxType};
use crate::types::{Atomic, Height, PublicKey};

/// Most a block's coinbase may pay when no service node leader is paid: miner share + fees.
pub fn max_miner_payout(params: &NetworkParams, height: Height, fees: Atomic) -> Option<Atomic> {
    params
        .reward_split(params.hard_fork_at(height))
        .miner
        .checked_add(fees)
}

/// The deterministic per-height key pair that service-node payouts use as their tx key:
/// secret = height as 8 little-endian bytes followed by zeros.
pub fn height_keypair(height: Height) -> (Scalar, PublicKey) {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&height.0.to_le_bytes());
    let s = Scalar::from_bytes_mod_order(b);
    (s, public_from_secret(&s))
}

/// The one-time key of a service-node payout: output `index` of the miner tx at `height`.
pub fn payout_output_key(height: Height, index: u64, to: &Address) -> Option<PublicKey> {
    let (s, _) = height_keypair(height);
    derive_output_key(&key_derivation(&s, &to.view)?, index, &to.spend)
}

/// Builds the coinbase for `height`: `amount` to `miner` (output 0), then the service-node
/// payouts in order, keyed with the height key pair.
pub fn build_miner_tx<R: RngCore + CryptoRng>(
    rng: &mut R,
    params: &NetworkParams,
    height: Height,
    miner: &Address,
    amount: Atomic,
    payout: &ServiceNodePayout,
) -> Option<Transaction> {
    let r = random_scalar(rng);
    let tx_pub = public_from_secret(&r);
    let derivation = key_derivation(&r, &miner.view)?;
    let key = derive_output_key(&derivation, 0, &miner.spend)?;
    let unlock = height.0 + params.coinbase_unlock_window;
    let mut outputs = vec![Output {
        amount: Some(amount.0),
        key: CompressedPoint::from(key.0),
        view_tag: None,
    }];
    for (i, (addr, amt)) in payout.payouts.iter().enumerate() {
        let k = payout_output_key(height, i as u64 + 1, addr)?;
        outputs.push(Output {
            amount: Some(amt.0),
            key: CompressedPoint::from(k.0),
            view_tag: None,
        });
    }
    let mut fields = vec![ExtraField::PubKey(tx_pub)];
    if !payout.payouts.is_empty() {
        fields.push(ExtraField::PubKey(height_keypair(height).1));
    }
    fields.push(ExtraField::Winner(
        payout.leader.unwrap_or(PublicKey([0; 32])),
    ));
    Some(Transaction {
        version: 4,
        output_unlock_times: vec![unlock; outputs.len()],
        v3_state_change: false,
        unlock_time: unlock,
        inputs: vec![Input::Gen(usize::try_from(height.0).ok()?)],
        outputs,
        extra: build_extra(&fields),
        tx_type: TxType::Standard,
        rct: None,
    })
}
