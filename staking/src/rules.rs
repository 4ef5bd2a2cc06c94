//! Registration, contribution and unlock rules (reference `service-nodes.md` §1.3–§1.6 with
//! Sispop's numbers: at most 4 contributors, the operator at least a quarter).

use std::sync::Arc;

use sispop_chain::crypto::{decompress, schnorr_verify};
use sispop_chain::extra::{ExtraField, Registration};
use sispop_chain::{Address, Atomic, Height, KeyImage, NetworkParams, PublicKey, Transaction};
use sispop_swarm::UNASSIGNED_SWARM_ID;

use crate::list::{Contributor, LockedContribution, ServiceNodeInfo, State};
use crate::proofs::{
    decode_stake, registration_hash, registration_spots, unlock_message, StakeDecodeError,
};
use crate::staking_requirement;

/// Most contributors (operator included) a node may have.
pub const MAX_CONTRIBUTORS: usize = 4;
/// Denominator of the operator fee in portions.
pub const STAKING_PORTIONS: u64 = 0xFFFF_FFFF_FFFF_FFFC;
/// Denominator of the fee in basis points.
pub const FEE_BASIS: u64 = 10_000;

/// Why a staking transaction (or a spend of staked coins) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingError {
    /// Extra fields are missing or invalid.
    #[error(transparent)]
    Decode(#[from] StakeDecodeError),
    /// Malformed staking data.
    #[error("invalid staking data: {0}")]
    Invalid(String),
    /// No output of the transaction is a provable stake to the contributor.
    #[error("no staked output: no output pays the contributor address with a valid key image proof and amount")]
    NoStake,
    /// More than one staked output.
    #[error("a stake transaction must lock exactly one output, found {0}")]
    MultipleStakes(usize),
    /// Pre-HF19 portion-based registration.
    #[error("portion-based registrations (expiry timestamps) are not accepted; regenerate the registration")]
    PortionBased,
    /// Registration made for another hard fork.
    #[error("registration is for hard fork {found}, the chain is at {current}; regenerate it")]
    WrongHardFork {
        /// In the registration.
        found: u64,
        /// Current.
        current: u8,
    },
    /// No reserved spots.
    #[error("registration reserves no spots")]
    NoSpots,
    /// Too many reserved spots.
    #[error(
        "registration reserves {0} spots; at most {MAX_CONTRIBUTORS} contributors are allowed"
    )]
    TooManySpots(usize),
    /// Fee above 100 %.
    #[error("operator fee {0} basis points exceeds 10000 (100%)")]
    FeeTooHigh(u64),
    /// A reserved amount below the minimum.
    #[error("reserved spot {spot} holds {amount}, below the minimum {min}")]
    SpotTooSmall {
        /// Spot index (0 = operator).
        spot: usize,
        /// Reserved.
        amount: Atomic,
        /// Minimum.
        min: Atomic,
    },
    /// A reserved amount above the remaining room.
    #[error("reserved spot {spot} holds {amount}, more than the {room} left to reserve")]
    SpotTooLarge {
        /// Spot index.
        spot: usize,
        /// Reserved.
        amount: Atomic,
        /// Room.
        room: Atomic,
    },
    /// An address reserved twice.
    #[error("address reserved more than once")]
    DuplicateAddress,
    /// Bad service node key.
    #[error("service node key is not a valid point")]
    BadServiceNodeKey,
    /// Registration signature invalid.
    #[error("registration signature does not verify against the service node key")]
    BadSignature,
    /// The registration's stake is not from the operator.
    #[error("the registration's stake must come from the operator (reserved spot 0)")]
    StakerNotOperator,
    /// Operator stakes less than reserved.
    #[error("operator stakes {staked}, less than the {reserved} reserved")]
    StakeBelowReserved {
        /// Staked.
        staked: Atomic,
        /// Reserved.
        reserved: Atomic,
    },
    /// Node already registered.
    #[error("service node {0} is already registered")]
    AlreadyRegistered(PublicKey),
    /// Contribution to an unknown node.
    #[error("service node {0} is not registered")]
    UnknownNode(PublicKey),
    /// Contribution to a funded node.
    #[error("service node {0} is already fully funded")]
    AlreadyFunded(PublicKey),
    /// Too many contributors.
    #[error("service node already has the maximum of {MAX_CONTRIBUTORS} contributors (counting open reservations)")]
    TooManyContributors,
    /// Contribution below the minimum.
    #[error("contribution {amount} is below the minimum {min}")]
    ContributionTooSmall {
        /// Offered.
        amount: Atomic,
        /// Minimum.
        min: Atomic,
    },
    /// Contribution above the maximum.
    #[error("contribution {amount} exceeds the maximum {max} (the remaining requirement plus 1%)")]
    ContributionTooLarge {
        /// Offered.
        amount: Atomic,
        /// Maximum.
        max: Atomic,
    },
    /// Every spot is reserved for others.
    #[error("no unreserved room is left on service node {0}")]
    NoRoom(PublicKey),
    /// Spending a locked stake.
    #[error("key image {0} is locked as stake of service node {1}")]
    LockedKeyImage(KeyImage, PublicKey),
    /// Spending a blacklisted stake.
    #[error("key image {0} is blacklisted after a deregistration until height {1}")]
    Blacklisted(KeyImage, Height),
    /// Unlock of a key image the node does not hold.
    #[error("key image {0} is not a locked contribution of service node {1}")]
    UnlockUnknownKeyImage(KeyImage, PublicKey),
    /// Unlock signature invalid.
    #[error("unlock signature does not verify against the staked output's key")]
    UnlockBadSignature,
    /// Second unlock request.
    #[error("service node {0} already has an unlock requested (at height {1})")]
    UnlockAlreadyRequested(PublicKey, Height),
}

impl StakingError {
    /// True when the transaction may have been valid against another (earlier or later) state
    /// of the list: a contribution that arrives before its registration, a stake into a node
    /// that filled up, a key image that became locked. Whoever relayed such a transaction is
    /// not at fault; everything else is invalid in itself.
    pub fn is_state_dependent(&self) -> bool {
        matches!(
            self,
            StakingError::WrongHardFork { .. }
                | StakingError::AlreadyRegistered(_)
                | StakingError::UnknownNode(_)
                | StakingError::AlreadyFunded(_)
                | StakingError::TooManyContributors
                | StakingError::ContributionTooSmall { .. }
                | StakingError::ContributionTooLarge { .. }
                | StakingError::NoRoom(_)
                | StakingError::LockedKeyImage(..)
                | StakingError::Blacklisted(..)
                | StakingError::UnlockUnknownKeyImage(..)
                | StakingError::UnlockAlreadyRequested(..)
        )
    }
}

/// The result of a valid stake: the node's new record and what to lock.
#[derive(Debug)]
pub struct StakeEffect {
    /// Node key.
    pub pk: PublicKey,
    /// New record.
    pub info: ServiceNodeInfo,
    /// Locked key image.
    pub key_image: KeyImage,
    /// Whether this stake funded the node.
    pub activated: bool,
}

/// Checks a registration's fee and reserved spots against a requirement; returns the total
/// reserved. Used before signing (to refuse a bad command early) and when validating.
pub fn check_registration_terms(
    req: u64,
    fee: u64,
    spots: &[(Address, u64)],
) -> Result<u64, StakingError> {
    if spots.is_empty() {
        return Err(StakingError::NoSpots);
    }
    if spots.len() > MAX_CONTRIBUTORS {
        return Err(StakingError::TooManySpots(spots.len()));
    }
    if fee > FEE_BASIS {
        return Err(StakingError::FeeTooHigh(fee));
    }
    let mut reserved = 0u64;
    for (i, (_, amount)) in spots.iter().enumerate() {
        let room = req - reserved;
        let min = if i == 0 {
            req / 4
        } else {
            room / (MAX_CONTRIBUTORS - i) as u64
        };
        if *amount < min {
            return Err(StakingError::SpotTooSmall {
                spot: i,
                amount: Atomic(*amount),
                min: Atomic(min),
            });
        }
        if *amount > room {
            return Err(StakingError::SpotTooLarge {
                spot: i,
                amount: Atomic(*amount),
                room: Atomic(room),
            });
        }
        reserved += amount;
    }
    for (i, (a, _)) in spots.iter().enumerate() {
        if spots[..i].iter().any(|(b, _)| b == a) {
            return Err(StakingError::DuplicateAddress);
        }
    }
    Ok(reserved)
}

/// The record a valid registration creates (before the operator's stake is credited).
pub fn validate_registration(
    params: &NetworkParams,
    reg: &Registration,
    sn_key: &PublicKey,
    height: Height,
    hf: u8,
) -> Result<ServiceNodeInfo, StakingError> {
    if reg.hf_or_expiration > 255 {
        return Err(StakingError::PortionBased);
    }
    if reg.hf_or_expiration != u64::from(hf) {
        return Err(StakingError::WrongHardFork {
            found: reg.hf_or_expiration,
            current: hf,
        });
    }
    let spots = registration_spots(reg);
    let req = staking_requirement(params, height).0;
    let reserved = check_registration_terms(req, reg.fee, &spots)?;
    if decompress(sn_key).is_none() {
        return Err(StakingError::BadServiceNodeKey);
    }
    if !schnorr_verify(
        &registration_hash(reg.fee, &spots, reg.hf_or_expiration),
        sn_key,
        &reg.signature,
    ) {
        return Err(StakingError::BadSignature);
    }
    Ok(ServiceNodeInfo {
        registration_height: height,
        registration_hf_version: hf,
        requested_unlock_height: Height(0),
        last_reward_block_height: height,
        last_reward_transaction_index: 0,
        decommission_count: 0,
        active_since_height: 0,
        last_decommission_height: Height(0),
        last_decommission_reason_consensus_all: 0,
        last_decommission_reason_consensus_any: 0,
        recommission_credit: params.sn.credit_initial,
        contributors: spots
            .iter()
            .map(|(a, amt)| Contributor {
                address: *a,
                amount: Atomic(0),
                reserved: Atomic(*amt),
                locked_contributions: vec![],
            })
            .collect(),
        total_contributed: Atomic(0),
        total_reserved: Atomic(reserved),
        staking_requirement: Atomic(req),
        fee: reg.fee,
        portions_for_operator: (u128::from(reg.fee) * u128::from(STAKING_PORTIONS)
            / u128::from(FEE_BASIS)) as u64,
        swarm_id: UNASSIGNED_SWARM_ID,
        swarm_since: Height(0),
        operator_address: spots[0].0,
        last_ip_change_height: height,
    })
}

/// Credits a contribution of `transferred` from `addr` to `info` (§1.4 steps 3–8); returns
/// the index of the contributor.
pub fn contribute(
    pk: &PublicKey,
    info: &mut ServiceNodeInfo,
    addr: Address,
    transferred: u64,
) -> Result<usize, StakingError> {
    let req = info.staking_requirement.0;
    let ci = info.contributors.iter().position(|c| c.address == addr);
    let existing: usize = info
        .contributors
        .iter()
        .map(|c| c.locked_contributions.len())
        .sum();
    let other_res = info
        .contributors
        .iter()
        .enumerate()
        .filter(|(j, c)| Some(*j) != ci && c.amount < c.reserved)
        .count();
    let unfilled = ci.map_or(0, |i| {
        info.contributors[i]
            .reserved
            .0
            .saturating_sub(info.contributors[i].amount.0)
    });
    if existing + other_res + 1 > MAX_CONTRIBUTORS
        || (ci.is_none() && info.contributors.len() >= MAX_CONTRIBUTORS)
    {
        return Err(StakingError::TooManyContributors);
    }
    let remaining = req.saturating_sub(info.total_reserved.0);
    if unfilled == 0 && remaining == 0 {
        return Err(StakingError::NoRoom(*pk));
    }
    let min = if unfilled > 0 {
        unfilled
    } else {
        remaining / (MAX_CONTRIBUTORS - (existing + other_res)) as u64
    };
    if transferred < min {
        return Err(StakingError::ContributionTooSmall {
            amount: Atomic(transferred),
            min: Atomic(min),
        });
    }
    let max = (u128::from(req - info.total_reserved.0.saturating_sub(unfilled).min(req)) * 101
        / 100) as u64;
    if transferred > max {
        return Err(StakingError::ContributionTooLarge {
            amount: Atomic(transferred),
            max: Atomic(max),
        });
    }
    let (reserved, amount) = ci.map_or((0, 0), |i| {
        (
            info.contributors[i].reserved.0,
            info.contributors[i].amount.0,
        )
    });
    let credited = transferred.min((reserved + remaining).saturating_sub(amount));
    if credited == 0 {
        return Err(StakingError::NoRoom(*pk));
    }
    let i = match ci {
        Some(i) => i,
        None => {
            info.contributors.push(Contributor {
                address: addr,
                amount: Atomic(0),
                reserved: Atomic(0),
                locked_contributions: vec![],
            });
            info.contributors.len() - 1
        }
    };
    let c = &mut info.contributors[i];
    c.amount = Atomic(c.amount.0 + credited);
    info.total_contributed = Atomic(info.total_contributed.0 + credited);
    if c.amount > c.reserved {
        info.total_reserved = Atomic(info.total_reserved.0 + (c.amount.0 - c.reserved.0));
        c.reserved = c.amount;
    }
    Ok(i)
}

/// Validates a stake transaction (registration and/or contribution) against `state`.
pub fn process_stake(
    params: &NetworkParams,
    state: &State,
    tx: &Transaction,
    fields: &[ExtraField],
    height: Height,
    hf: u8,
    tx_index: u32,
) -> Result<StakeEffect, StakingError> {
    let (addr, sn_key, staked) = decode_stake(tx, fields)?;
    let stake = match staked.as_slice() {
        [] => return Err(StakingError::NoStake),
        [one] => one.clone(),
        many => return Err(StakingError::MultipleStakes(many.len())),
    };
    if let Some(pk) = state.locked.get(&stake.key_image) {
        return Err(StakingError::LockedKeyImage(stake.key_image, *pk));
    }
    let registration = fields.iter().find_map(|f| match f {
        ExtraField::Registration(r) => Some(r),
        _ => None,
    });
    let mut info = match registration {
        Some(reg) => {
            if state.nodes.contains_key(&sn_key) {
                return Err(StakingError::AlreadyRegistered(sn_key));
            }
            let info = validate_registration(params, reg, &sn_key, height, hf)?;
            let operator = &info.contributors[0];
            if addr != operator.address {
                return Err(StakingError::StakerNotOperator);
            }
            if stake.amount < operator.reserved.0 {
                return Err(StakingError::StakeBelowReserved {
                    staked: Atomic(stake.amount),
                    reserved: operator.reserved,
                });
            }
            info
        }
        None => state
            .nodes
            .get(&sn_key)
            .map(|n| n.as_ref().clone())
            .ok_or(StakingError::UnknownNode(sn_key))?,
    };
    if info.is_funded() {
        return Err(StakingError::AlreadyFunded(sn_key));
    }
    let ci = contribute(&sn_key, &mut info, addr, stake.amount)?;
    info.contributors[ci]
        .locked_contributions
        .push(LockedContribution {
            key_image: stake.key_image,
            key_image_pub_key: stake.output_key,
            amount: Atomic(stake.amount),
        });
    info.last_reward_block_height = height;
    info.last_reward_transaction_index = tx_index;
    let activated = info.is_funded();
    if activated {
        info.active_since_height = height.0 as i64;
    }
    Ok(StakeEffect {
        pk: sn_key,
        info,
        key_image: stake.key_image,
        activated,
    })
}

/// Writes a validated stake into `state`.
pub fn commit_stake(state: &mut State, eff: StakeEffect) {
    state.locked.insert(eff.key_image, eff.pk);
    state.nodes.insert(eff.pk, Arc::new(eff.info));
}

/// Validates an unlock request; returns the node's new record.
pub fn process_unlock(
    params: &NetworkParams,
    state: &State,
    fields: &[ExtraField],
    height: Height,
) -> Result<(PublicKey, ServiceNodeInfo), StakingError> {
    let sn_key = fields
        .iter()
        .find_map(|f| match f {
            ExtraField::ServiceNodePubkey(k) => Some(*k),
            _ => None,
        })
        .ok_or(StakeDecodeError::Missing("service node key (0x74)"))?;
    let (ki, sig, nonce) = fields
        .iter()
        .find_map(|f| match f {
            ExtraField::KeyImageUnlock {
                key_image,
                signature,
                nonce,
            } => Some((*key_image, *signature, *nonce)),
            _ => None,
        })
        .ok_or(StakeDecodeError::Missing("unlock request (0x77)"))?;
    let node = state
        .nodes
        .get(&sn_key)
        .ok_or(StakingError::UnknownNode(sn_key))?;
    let contribution = node
        .contributors
        .iter()
        .flat_map(|c| c.locked_contributions.iter())
        .find(|l| l.key_image == ki)
        .ok_or(StakingError::UnlockUnknownKeyImage(ki, sn_key))?;
    if !schnorr_verify(
        &unlock_message(nonce),
        &contribution.key_image_pub_key,
        &sig,
    ) {
        return Err(StakingError::UnlockBadSignature);
    }
    if node.requested_unlock_height.0 != 0 {
        return Err(StakingError::UnlockAlreadyRequested(
            sn_key,
            node.requested_unlock_height,
        ));
    }
    let mut info = node.as_ref().clone();
    info.requested_unlock_height = Height(height.0 + params.stake_unlock_blocks);
    Ok((sn_key, info))
}
