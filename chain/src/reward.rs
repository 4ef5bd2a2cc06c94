//! Emission and the miner transaction: what a block may pay, and building the coinbase that
//! pays it (reference `sispop-operator-docs.md` §2.4, `service-nodes.md` §6.5).
//!
//! This crate pays the miner share plus fees. The service-node share is paid to the reward
//! queue's leader once the service node list exists (staking); until a leader exists that share
//! is not emitted. The foundation share accrues to a governance wallet that no network here
//! configures yet, so it is not emitted either.

use monero_oxide::ed25519::CompressedPoint;
use monero_oxide::transaction::{Input, Output};
use rand_core::{CryptoRng, RngCore};

use crate::address::Address;
use crate::crypto::{derive_output_key, key_derivation, public_from_secret, random_scalar};
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

/// Builds the coinbase for `height` paying `amount` to `miner`.
pub fn build_miner_tx<R: RngCore + CryptoRng>(
    rng: &mut R,
    params: &NetworkParams,
    height: Height,
    miner: &Address,
    amount: Atomic,
) -> Option<Transaction> {
    let r = random_scalar(rng);
    let tx_pub = public_from_secret(&r);
    let derivation = key_derivation(&r, &miner.view)?;
    let key = derive_output_key(&derivation, 0, &miner.spend)?;
    let unlock = height.0 + params.coinbase_unlock_window;
    let extra = build_extra(&[
        ExtraField::PubKey(tx_pub),
        ExtraField::Winner(PublicKey([0; 32])),
    ]);
    Some(Transaction {
        version: 4,
        output_unlock_times: vec![unlock],
        v3_state_change: false,
        unlock_time: unlock,
        inputs: vec![Input::Gen(usize::try_from(height.0).ok()?)],
        outputs: vec![Output {
            amount: Some(amount.0),
            key: CompressedPoint::from(key.0),
            view_tag: None,
        }],
        extra,
        tx_type: TxType::Standard,
        rct: None,
    })
}
