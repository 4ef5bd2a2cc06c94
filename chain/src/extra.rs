//! tx_extra: the tagged fields of a transaction's `extra` blob (reference `service-nodes.md`
//! §6.3). Parsing is strict: an unknown tag, a malformed payload or trailing garbage rejects the
//! whole transaction with a reason naming the tag.

use thiserror::Error;

use crate::crypto::Signature;
use crate::reader::{put_varint, DecodeError, Reader};
use crate::types::{KeyImage, PublicKey};

/// Tag bytes.
pub mod tag {
    /// Zero padding to the end of extra.
    pub const PADDING: u8 = 0x00;
    /// Transaction public key R.
    pub const PUBKEY: u8 = 0x01;
    /// Nonce (payment ids).
    pub const NONCE: u8 = 0x02;
    /// Merge-mining commitment.
    pub const MERGE_MINING: u8 = 0x03;
    /// Additional per-output public keys.
    pub const ADDITIONAL_PUBKEYS: u8 = 0x04;
    /// Service node registration.
    pub const SN_REGISTER: u8 = 0x70;
    /// Legacy deregistration.
    pub const SN_DEREG_OLD: u8 = 0x71;
    /// Reward queue winner.
    pub const SN_WINNER: u8 = 0x72;
    /// Staking contributor address.
    pub const SN_CONTRIBUTOR: u8 = 0x73;
    /// Service node primary key.
    pub const SN_PUBKEY: u8 = 0x74;
    /// Revealed transaction secret key.
    pub const TX_SECRET_KEY: u8 = 0x75;
    /// Key-image ownership proofs of staked outputs.
    pub const TX_KEY_IMAGE_PROOFS: u8 = 0x76;
    /// Stake unlock request.
    pub const TX_KEY_IMAGE_UNLOCK: u8 = 0x77;
    /// Service node state change.
    pub const SN_STATE_CHANGE: u8 = 0x78;
    /// Burned amount.
    pub const BURN: u8 = 0x79;
    /// Name system record.
    pub const NAME_SYSTEM: u8 = 0x7A;
    /// Minergate tag.
    pub const MINERGATE: u8 = 0xDE;
}

/// Longest padding accepted.
pub const MAX_PADDING: usize = 255;
/// Most reserved spots a registration may carry (bounded well above the consensus limit, so
/// the parser never allocates for an absurd count).
pub const MAX_REGISTRATION_SPOTS: usize = 64;

/// A registration record (tag 0x70).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Registration {
    /// Spend keys of the reserved spots, operator first.
    pub public_spend_keys: Vec<PublicKey>,
    /// View keys of the reserved spots.
    pub public_view_keys: Vec<PublicKey>,
    /// Operator fee in basis points (HF19+).
    pub fee: u64,
    /// Reserved amounts (atomic, HF19+).
    pub amounts: Vec<u64>,
    /// Hard fork of the registration (<= 255) or an expiry timestamp (legacy).
    pub hf_or_expiration: u64,
    /// Service node key's signature over the registration hash.
    pub signature: Signature,
}

/// One validator's vote inside a state change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateChangeVote {
    /// Index in the quorum's validator list.
    pub validator_index: u64,
    /// The vote signature.
    pub signature: Signature,
}

/// A service node state change (tag 0x78).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateChange {
    /// 0 (legacy layout) or 4 (reasons layout).
    pub version: u8,
    /// 0 deregister, 1 decommission, 2 recommission, 3 ip change penalty.
    pub state: u64,
    /// Quorum height the votes refer to.
    pub block_height: u64,
    /// Worker index in that quorum.
    pub service_node_index: u64,
    /// The votes.
    pub votes: Vec<StateChangeVote>,
    /// AND of the voters' reason bits (version 4).
    pub reason_consensus_all: u64,
    /// OR of the voters' reason bits (version 4).
    pub reason_consensus_any: u64,
}

/// A legacy deregistration (tag 0x71, fixed-width fields).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OldDeregister {
    /// Quorum height.
    pub block_height: u64,
    /// Worker index.
    pub service_node_index: u32,
    /// (signature, validator index) pairs.
    pub votes: Vec<(Signature, u32)>,
}

/// One field of tx_extra.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ExtraField {
    /// `n` zero bytes up to the end.
    Padding(usize),
    /// Transaction public key.
    PubKey(PublicKey),
    /// Nonce bytes (payment ids).
    Nonce(Vec<u8>),
    /// Merge-mining depth and root.
    MergeMining {
        /// Depth.
        depth: u64,
        /// Merkle root.
        root: [u8; 32],
    },
    /// Additional public keys.
    AdditionalPubKeys(Vec<PublicKey>),
    /// Registration.
    Registration(Registration),
    /// Legacy deregistration.
    OldDeregister(OldDeregister),
    /// Reward winner's key.
    Winner(PublicKey),
    /// Contributor address keys.
    Contributor {
        /// Spend key.
        spend: PublicKey,
        /// View key.
        view: PublicKey,
    },
    /// Service node primary key.
    ServiceNodePubkey(PublicKey),
    /// Revealed tx secret key.
    TxSecretKey([u8; 32]),
    /// Key-image proofs.
    KeyImageProofs(Vec<(KeyImage, Signature)>),
    /// Unlock request.
    KeyImageUnlock {
        /// Locked key image.
        key_image: KeyImage,
        /// Signature with the output key.
        signature: Signature,
        /// Nonce (fixed 4 bytes LE).
        nonce: u32,
    },
    /// State change.
    StateChange(StateChange),
    /// Burned amount.
    Burn(u64),
    /// Minergate string.
    Minergate(Vec<u8>),
}

/// Why tx_extra was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtraError {
    /// A tag this chain does not know.
    #[error("unknown tx_extra tag {0:#04x}")]
    UnknownTag(u8),
    /// A known tag this chain does not accept.
    #[error("tx_extra tag {0:#04x} ({1}) is not accepted on this chain")]
    Unsupported(u8, &'static str),
    /// A payload that does not decode.
    #[error("malformed tx_extra field {tag:#04x}: {source}")]
    Malformed {
        /// The tag.
        tag: u8,
        /// What went wrong.
        source: DecodeError,
    },
    /// Padding that is not all zero or too long.
    #[error("tx_extra padding must be at most {MAX_PADDING} zero bytes at the end")]
    BadPadding,
}

fn sig(r: &mut Reader<'_>, what: &'static str) -> Result<Signature, DecodeError> {
    Ok(Signature(r.array::<64>(what)?))
}

fn key(r: &mut Reader<'_>, what: &'static str) -> Result<PublicKey, DecodeError> {
    Ok(PublicKey(r.array::<32>(what)?))
}

fn parse_state_change(r: &mut Reader<'_>) -> Result<StateChange, DecodeError> {
    let first = r.varint("state change version/state")?;
    let (version, state) = if first < 4 {
        (0, first)
    } else if first == 4 {
        (4, r.varint("state change state")?)
    } else {
        return Err(DecodeError::Invalid(format!(
            "state change version {first}"
        )));
    };
    let block_height = r.varint("state change height")?;
    let service_node_index = r.varint("state change worker index")?;
    let n = r.count("state change votes", 65)?;
    let mut votes = Vec::with_capacity(n);
    for _ in 0..n {
        let validator_index = r.varint("vote validator index")?;
        votes.push(StateChangeVote {
            validator_index,
            signature: sig(r, "vote signature")?,
        });
    }
    let (reason_consensus_all, reason_consensus_any) = if version == 4 {
        (
            r.varint("reason_consensus_all")?,
            r.varint("reason_consensus_any")?,
        )
    } else {
        (0, 0)
    };
    Ok(StateChange {
        version,
        state,
        block_height,
        service_node_index,
        votes,
        reason_consensus_all,
        reason_consensus_any,
    })
}

fn parse_registration(r: &mut Reader<'_>) -> Result<Registration, DecodeError> {
    let spots = |r: &mut Reader<'_>, what| -> Result<Vec<PublicKey>, DecodeError> {
        let n = r.count(what, 32)?;
        if n > MAX_REGISTRATION_SPOTS {
            return Err(DecodeError::Invalid(format!("{n} reserved spots")));
        }
        (0..n).map(|_| key(r, what)).collect()
    };
    let public_spend_keys = spots(r, "registration spend keys")?;
    let public_view_keys = spots(r, "registration view keys")?;
    let fee = r.u64_le("registration fee")?;
    let n = r.count("registration amounts", 1)?;
    if n > MAX_REGISTRATION_SPOTS {
        return Err(DecodeError::Invalid(format!("{n} registration amounts")));
    }
    let amounts = (0..n)
        .map(|_| r.varint("registration amount"))
        .collect::<Result<Vec<_>, _>>()?;
    let hf_or_expiration = r.u64_le("registration hf/expiration")?;
    let signature = sig(r, "registration signature")?;
    if public_spend_keys.len() != public_view_keys.len() || public_spend_keys.len() != amounts.len()
    {
        return Err(DecodeError::Invalid(
            "registration spot counts differ".into(),
        ));
    }
    Ok(Registration {
        public_spend_keys,
        public_view_keys,
        fee,
        amounts,
        hf_or_expiration,
        signature,
    })
}

fn parse_field(t: u8, r: &mut Reader<'_>) -> Result<ExtraField, DecodeError> {
    Ok(match t {
        tag::PUBKEY => ExtraField::PubKey(key(r, "tx pubkey")?),
        tag::NONCE => {
            let n = r.byte("nonce length")? as usize;
            ExtraField::Nonce(r.slice(n, "nonce")?.to_vec())
        }
        tag::MERGE_MINING => {
            let n = r.count("merge mining length", 1)?;
            let body = r.slice(n, "merge mining")?;
            let mut inner = Reader::new(body);
            let depth = inner.varint("merge mining depth")?;
            let root = inner.array::<32>("merge mining root")?;
            inner.finish()?;
            ExtraField::MergeMining { depth, root }
        }
        tag::ADDITIONAL_PUBKEYS => {
            let n = r.count("additional pubkeys", 32)?;
            ExtraField::AdditionalPubKeys(
                (0..n)
                    .map(|_| key(r, "additional pubkey"))
                    .collect::<Result<_, _>>()?,
            )
        }
        tag::SN_REGISTER => ExtraField::Registration(parse_registration(r)?),
        tag::SN_DEREG_OLD => {
            let block_height = r.u64_le("dereg height")?;
            let service_node_index = r.u32_le("dereg index")?;
            let n = r.count("dereg votes", 68)?;
            let votes = (0..n)
                .map(|_| {
                    Ok((
                        sig(r, "dereg vote signature")?,
                        r.u32_le("dereg vote index")?,
                    ))
                })
                .collect::<Result<_, DecodeError>>()?;
            ExtraField::OldDeregister(OldDeregister {
                block_height,
                service_node_index,
                votes,
            })
        }
        tag::SN_WINNER => ExtraField::Winner(key(r, "winner")?),
        tag::SN_CONTRIBUTOR => ExtraField::Contributor {
            spend: key(r, "contributor spend")?,
            view: key(r, "contributor view")?,
        },
        tag::SN_PUBKEY => ExtraField::ServiceNodePubkey(key(r, "service node pubkey")?),
        tag::TX_SECRET_KEY => ExtraField::TxSecretKey(r.array::<32>("tx secret key")?),
        tag::TX_KEY_IMAGE_PROOFS => {
            let n = r.count("key image proofs", 96)?;
            let proofs = (0..n)
                .map(|_| {
                    Ok((
                        KeyImage(r.array::<32>("proof key image")?),
                        sig(r, "proof signature")?,
                    ))
                })
                .collect::<Result<_, DecodeError>>()?;
            ExtraField::KeyImageProofs(proofs)
        }
        tag::TX_KEY_IMAGE_UNLOCK => ExtraField::KeyImageUnlock {
            key_image: KeyImage(r.array::<32>("unlock key image")?),
            signature: sig(r, "unlock signature")?,
            nonce: r.u32_le("unlock nonce")?,
        },
        tag::SN_STATE_CHANGE => ExtraField::StateChange(parse_state_change(r)?),
        tag::BURN => ExtraField::Burn(r.u64_le("burn amount")?),
        tag::MINERGATE => {
            let n = r.count("minergate length", 1)?;
            ExtraField::Minergate(r.slice(n, "minergate")?.to_vec())
        }
        other => return Err(DecodeError::Invalid(format!("tag {other:#04x}"))),
    })
}

/// Parses every field of `extra`.
pub fn parse_extra(extra: &[u8]) -> Result<Vec<ExtraField>, ExtraError> {
    let mut r = Reader::new(extra);
    let mut fields = Vec::new();
    while r.remaining() > 0 {
        let t = r
            .byte("tag")
            .map_err(|source| ExtraError::Malformed { tag: 0, source })?;
        match t {
            tag::PADDING => {
                let rest = r.rest();
                if rest.len() + 1 > MAX_PADDING || rest.iter().any(|&b| b != 0) {
                    return Err(ExtraError::BadPadding);
                }
                fields.push(ExtraField::Padding(rest.len() + 1));
                break;
            }
            tag::NAME_SYSTEM => return Err(ExtraError::Unsupported(t, "name system")),
            tag::PUBKEY
            | tag::NONCE
            | tag::MERGE_MINING
            | tag::ADDITIONAL_PUBKEYS
            | tag::SN_REGISTER
            | tag::SN_DEREG_OLD
            | tag::SN_WINNER
            | tag::SN_CONTRIBUTOR
            | tag::SN_PUBKEY
            | tag::TX_SECRET_KEY
            | tag::TX_KEY_IMAGE_PROOFS
            | tag::TX_KEY_IMAGE_UNLOCK
            | tag::SN_STATE_CHANGE
            | tag::BURN
            | tag::MINERGATE => {
                fields.push(
                    parse_field(t, &mut r)
                        .map_err(|source| ExtraError::Malformed { tag: t, source })?,
                );
            }
            other => return Err(ExtraError::UnknownTag(other)),
        }
    }
    Ok(fields)
}

impl ExtraField {
    /// Appends the tag and payload.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            ExtraField::Padding(n) => out.extend(std::iter::repeat_n(0u8, *n)),
            ExtraField::PubKey(k) => {
                out.push(tag::PUBKEY);
                out.extend_from_slice(&k.0);
            }
            ExtraField::Nonce(d) => {
                out.push(tag::NONCE);
                out.push(d.len().min(255) as u8);
                out.extend_from_slice(&d[..d.len().min(255)]);
            }
            ExtraField::MergeMining { depth, root } => {
                out.push(tag::MERGE_MINING);
                let mut body = Vec::new();
                put_varint(&mut body, *depth);
                body.extend_from_slice(root);
                put_varint(out, body.len() as u64);
                out.extend(body);
            }
            ExtraField::AdditionalPubKeys(keys) => {
                out.push(tag::ADDITIONAL_PUBKEYS);
                put_varint(out, keys.len() as u64);
                keys.iter().for_each(|k| out.extend_from_slice(&k.0));
            }
            ExtraField::Registration(reg) => {
                out.push(tag::SN_REGISTER);
                put_varint(out, reg.public_spend_keys.len() as u64);
                reg.public_spend_keys
                    .iter()
                    .for_each(|k| out.extend_from_slice(&k.0));
                put_varint(out, reg.public_view_keys.len() as u64);
                reg.public_view_keys
                    .iter()
                    .for_each(|k| out.extend_from_slice(&k.0));
                out.extend_from_slice(&reg.fee.to_le_bytes());
                put_varint(out, reg.amounts.len() as u64);
                reg.amounts.iter().for_each(|a| put_varint(out, *a));
                out.extend_from_slice(&reg.hf_or_expiration.to_le_bytes());
                out.extend_from_slice(&reg.signature.0);
            }
            ExtraField::OldDeregister(d) => {
                out.push(tag::SN_DEREG_OLD);
                out.extend_from_slice(&d.block_height.to_le_bytes());
                out.extend_from_slice(&d.service_node_index.to_le_bytes());
                put_varint(out, d.votes.len() as u64);
                for (s, i) in &d.votes {
                    out.extend_from_slice(&s.0);
                    out.extend_from_slice(&i.to_le_bytes());
                }
            }
            ExtraField::Winner(k) => {
                out.push(tag::SN_WINNER);
                out.extend_from_slice(&k.0);
            }
            ExtraField::Contributor { spend, view } => {
                out.push(tag::SN_CONTRIBUTOR);
                out.extend_from_slice(&spend.0);
                out.extend_from_slice(&view.0);
            }
            ExtraField::ServiceNodePubkey(k) => {
                out.push(tag::SN_PUBKEY);
                out.extend_from_slice(&k.0);
            }
            ExtraField::TxSecretKey(k) => {
                out.push(tag::TX_SECRET_KEY);
                out.extend_from_slice(k);
            }
            ExtraField::KeyImageProofs(p) => {
                out.push(tag::TX_KEY_IMAGE_PROOFS);
                put_varint(out, p.len() as u64);
                for (ki, s) in p {
                    out.extend_from_slice(&ki.0);
                    out.extend_from_slice(&s.0);
                }
            }
            ExtraField::KeyImageUnlock {
                key_image,
                signature,
                nonce,
            } => {
                out.push(tag::TX_KEY_IMAGE_UNLOCK);
                out.extend_from_slice(&key_image.0);
                out.extend_from_slice(&signature.0);
                out.extend_from_slice(&nonce.to_le_bytes());
            }
            ExtraField::StateChange(sc) => {
                out.push(tag::SN_STATE_CHANGE);
                if sc.version == 4 {
                    put_varint(out, 4);
                }
                put_varint(out, sc.state);
                put_varint(out, sc.block_height);
                put_varint(out, sc.service_node_index);
                put_varint(out, sc.votes.len() as u64);
                for v in &sc.votes {
                    put_varint(out, v.validator_index);
                    out.extend_from_slice(&v.signature.0);
                }
                if sc.version == 4 {
                    put_varint(out, sc.reason_consensus_all);
                    put_varint(out, sc.reason_consensus_any);
                }
            }
            ExtraField::Burn(a) => {
                out.push(tag::BURN);
                out.extend_from_slice(&a.to_le_bytes());
            }
            ExtraField::Minergate(d) => {
                out.push(tag::MINERGATE);
                put_varint(out, d.len() as u64);
                out.extend_from_slice(d);
            }
        }
    }
}

/// Serialises fields into an extra blob.
pub fn build_extra(fields: &[ExtraField]) -> Vec<u8> {
    let mut out = Vec::new();
    fields.iter().for_each(|f| f.write(&mut out));
    out
}

/// The first 0x01 transaction public key, if any.
pub fn tx_pubkey(fields: &[ExtraField]) -> Option<PublicKey> {
    fields.iter().find_map(|f| match f {
        ExtraField::PubKey(k) => Some(*k),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_field() -> Vec<ExtraField> {
        let s = Signature([7; 64]);
        vec![
            ExtraField::PubKey(PublicKey([1; 32])),
            ExtraField::Nonce(vec![0, 1, 2, 3]),
            ExtraField::MergeMining {
                depth: 3,
                root: [9; 32],
            },
            ExtraField::AdditionalPubKeys(vec![PublicKey([2; 32]), PublicKey([3; 32])]),
            ExtraField::Registration(Registration {
                public_spend_keys: vec![PublicKey([0x11; 32])],
                public_view_keys: vec![PublicKey([0x22; 32])],
                fee: 10_000,
                amounts: vec![15_000_000_000_000],
                hf_or_expiration: 19,
                signature: s,
            }),
            ExtraField::OldDeregister(OldDeregister {
                block_height: 5,
                service_node_index: 2,
                votes: vec![(s, 1), (s, 4)],
            }),
            ExtraField::Winner(PublicKey([4; 32])),
            ExtraField::Contributor {
                spend: PublicKey([5; 32]),
                view: PublicKey([6; 32]),
            },
            ExtraField::ServiceNodePubkey(PublicKey([8; 32])),
            ExtraField::TxSecretKey([10; 32]),
            ExtraField::KeyImageProofs(vec![(KeyImage([12; 32]), s)]),
            ExtraField::KeyImageUnlock {
                key_image: KeyImage([13; 32]),
                signature: s,
                nonce: 0x4B4C_4E55,
            },
            ExtraField::StateChange(StateChange {
                version: 4,
                state: 1,
                block_height: 1000,
                service_node_index: 3,
                votes: vec![StateChangeVote {
                    validator_index: 0,
                    signature: s,
                }],
                reason_consensus_all: 1,
                reason_consensus_any: 3,
            }),
            ExtraField::StateChange(StateChange {
                version: 0,
                state: 2,
                block_height: 7,
                service_node_index: 1,
                votes: vec![],
                reason_consensus_all: 0,
                reason_consensus_any: 0,
            }),
            ExtraField::Burn(12345),
            ExtraField::Minergate(b"mg".to_vec()),
            ExtraField::Padding(4),
        ]
    }

    #[test]
    fn every_tag_round_trips() {
        let fields = every_field();
        let blob = build_extra(&fields);
        assert_eq!(parse_extra(&blob), Ok(fields));
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        let blob = build_extra(&every_field()[..every_field().len() - 1]);
        for cut in 1..blob.len() {
            // Cutting at a field boundary yields a valid shorter list; anywhere else an error.
            let _ = parse_extra(&blob[..cut]);
        }
        assert!(parse_extra(&blob[..blob.len() - 1]).is_err());
    }

    #[test]
    fn unknown_and_bad_tags() {
        assert_eq!(parse_extra(&[0x55]), Err(ExtraError::UnknownTag(0x55)));
        assert!(matches!(
            parse_extra(&[0x7A, 0]),
            Err(ExtraError::Unsupported(0x7A, _))
        ));
        assert_eq!(
            parse_extra(&[0x00, 0x00, 0x01]),
            Err(ExtraError::BadPadding)
        );
        assert!(matches!(
            parse_extra(&[0x01, 0x02]),
            Err(ExtraError::Malformed { tag: 0x01, .. })
        ));
        // A count far larger than the input.
        assert!(matches!(
            parse_extra(&[0x04, 0xff, 0xff, 0xff, 0x7f]),
            Err(ExtraError::Malformed { tag: 0x04, .. })
        ));
        // Registration with mismatched spot counts.
        let mut reg = vec![0x70, 1];
        reg.extend([0x11; 32]);
        reg.push(0);
        reg.extend(0u64.to_le_bytes());
        reg.push(0);
        reg.extend(19u64.to_le_bytes());
        reg.extend([0; 64]);
        assert!(matches!(
            parse_extra(&reg),
            Err(ExtraError::Malformed { tag: 0x70, .. })
        ));
    }
}
