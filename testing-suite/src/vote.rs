//! Obligations votes: format, signature, checks and the pool that collects them until a state
//! change can be made (reference `service-nodes.md` §4.9).
//!
//! On the wire (gossip topic `sispop/votes/1`) a vote is upstream's `quorum.vote_ob` bencoded
//! dict: `"v"` version 0, `"t"` type 0 (obligations), `"h"` quorum height, `"g"` group 1
//! (validator), `"i"` validator index, `"s"` 64-byte signature, `"wi"` worker index, `"sc"`
//! state, plus `"r"` the voter's reason bits (not signed, as upstream).

use std::collections::BTreeMap;

use curve25519_dalek::Scalar;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sispop_chain::crypto::{keccak256, schnorr_sign, schnorr_verify, Signature};
use sispop_chain::params::ServiceNodeTimings;
use sispop_chain::PublicKey;

use crate::decide::NewState;
use crate::quorum::ObligationsQuorum;

/// Largest vote message accepted (a vote is about 120 bytes).
pub const MAX_VOTE_BYTES: usize = 512;

/// One validator's vote on one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Height of the obligations quorum.
    pub height: u64,
    /// Index of the tested node among the quorum's workers.
    pub worker_index: u16,
    /// The state voted for.
    pub state: NewState,
    /// Why (reason bits; not signed).
    pub reason: u16,
    /// Index of the voter among the quorum's validators.
    pub validator_index: u16,
    /// The voter's primary key signature over [`vote_hash`].
    pub signature: Signature,
}

#[derive(Serialize, Deserialize)]
struct VoteDict {
    g: u8,
    h: u64,
    i: u16,
    #[serde(default)]
    r: u16,
    s: ByteBuf,
    sc: u16,
    t: u8,
    v: u8,
    wi: u16,
}

/// Why a vote was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// Does not decode.
    #[error("malformed vote: {0}")]
    Malformed(String),
    /// Outside the window of heights that can be voted on.
    #[error("vote for height {height} is outside the voting window ending at {latest}")]
    Stale {
        /// Vote height.
        height: u64,
        /// Our latest height.
        latest: u64,
    },
    /// We hold no quorum for the height.
    #[error("no obligations quorum known at height {0}")]
    UnknownQuorum(u64),
    /// Validator index out of range.
    #[error("validator index {index} out of range for a quorum of {size}")]
    ValidatorIndex {
        /// Index.
        index: u16,
        /// Validators.
        size: usize,
    },
    /// Worker index out of range.
    #[error("worker index {index} out of range for a quorum testing {size}")]
    WorkerIndex {
        /// Index.
        index: u16,
        /// Workers.
        size: usize,
    },
    /// The signature does not verify against the validator's key.
    #[error("vote signature does not verify against validator {0}")]
    BadSignature(PublicKey),
    /// That validator already voted the same way on the same worker.
    #[error("validator {0} already voted on this worker and state")]
    Duplicate(u16),
}

impl VoteError {
    /// True when the vote is invalid in itself (whoever relayed it is at fault).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            VoteError::Malformed(_)
                | VoteError::ValidatorIndex { .. }
                | VoteError::WorkerIndex { .. }
                | VoteError::BadSignature(_)
        )
    }
}

/// The signed hash: Keccak(height u64 LE ‖ worker index u32 LE ‖ state u16 LE), without the
/// state for a deregistration (compatibility with pre-HF12 votes, as upstream).
pub fn vote_hash(height: u64, worker_index: u16, state: NewState) -> [u8; 32] {
    let mut buf = Vec::with_capacity(14);
    buf.extend_from_slice(&height.to_le_bytes());
    buf.extend_from_slice(&u32::from(worker_index).to_le_bytes());
    if state != NewState::Deregister {
        buf.extend_from_slice(&(state as u16).to_le_bytes());
    }
    keccak256(&buf)
}

impl Vote {
    /// Signs a vote with the validator's primary key.
    #[expect(
        clippy::too_many_arguments,
        reason = "every field of the vote is an input"
    )]
    pub fn sign<R: RngCore + CryptoRng>(
        rng: &mut R,
        height: u64,
        worker_index: u16,
        state: NewState,
        reason: u16,
        validator_index: u16,
        public: &PublicKey,
        secret: &Scalar,
    ) -> Vote {
        let signature = schnorr_sign(rng, &vote_hash(height, worker_index, state), public, secret);
        Vote {
            height,
            worker_index,
            state,
            reason,
            validator_index,
            signature,
        }
    }

    /// The wire message.
    pub fn encode(&self) -> Vec<u8> {
        serde_bencode::to_bytes(&VoteDict {
            g: 1,
            h: self.height,
            i: self.validator_index,
            r: self.reason,
            s: ByteBuf::from(self.signature.0.to_vec()),
            sc: self.state as u16,
            t: 0,
            v: 0,
            wi: self.worker_index,
        })
        .unwrap_or_default()
    }

    /// Decodes a wire message (no signature check: that needs the quorum).
    pub fn decode(bytes: &[u8]) -> Result<Vote, VoteError> {
        if bytes.len() > MAX_VOTE_BYTES {
            return Err(VoteError::Malformed(format!("{} bytes", bytes.len())));
        }
        let d: VoteDict =
            serde_bencode::from_bytes(bytes).map_err(|e| VoteError::Malformed(e.to_string()))?;
        if d.v != 0 || d.t != 0 || d.g != 1 {
            return Err(VoteError::Malformed(format!(
                "version {}, type {}, group {}: only obligations validator votes (0, 0, 1)",
                d.v, d.t, d.g
            )));
        }
        let state = NewState::from_u64(u64::from(d.sc))
            .ok_or_else(|| VoteError::Malformed(format!("state {}", d.sc)))?;
        let sig = <[u8; 64]>::try_from(d.s.as_slice())
            .map_err(|_| VoteError::Malformed("signature must be 64 bytes".into()))?;
        Ok(Vote {
            height: d.h,
            worker_index: d.wi,
            state,
            reason: d.r,
            validator_index: d.i,
            signature: Signature(sig),
        })
    }

    /// Checks indices and signature against the quorum of the vote's height.
    pub fn verify(&self, quorum: &ObligationsQuorum<PublicKey>) -> Result<(), VoteError> {
        let v = quorum
            .validators
            .get(usize::from(self.validator_index))
            .ok_or(VoteError::ValidatorIndex {
                index: self.validator_index,
                size: quorum.validators.len(),
            })?;
        if usize::from(self.worker_index) >= quorum.workers.len() {
            return Err(VoteError::WorkerIndex {
                index: self.worker_index,
                size: quorum.workers.len(),
            });
        }
        if !schnorr_verify(
            &vote_hash(self.height, self.worker_index, self.state),
            v,
            &self.signature,
        ) {
            return Err(VoteError::BadSignature(*v));
        }
        Ok(())
    }
}

/// Whether a vote height can be voted on at `latest`: within `[latest − lifetime, latest]`.
/// With `buffer`, heights up to `buffer` blocks outside are tolerated (they are dropped without
/// blaming the sender, who may see a slightly different tip).
pub fn height_in_window(height: u64, latest: u64, timings: &ServiceNodeTimings) -> bool {
    height <= latest && height.saturating_add(timings.vote_lifetime) >= latest
}

type GroupKey = (u64, u16, NewState);

/// Votes collected per (height, worker, state), one per validator.
#[derive(Debug, Default)]
pub struct VotePool {
    groups: BTreeMap<GroupKey, BTreeMap<u16, Vote>>,
}

impl VotePool {
    /// An empty pool.
    pub fn new() -> VotePool {
        VotePool::default()
    }

    /// Checks a vote against the quorum of its height and keeps it. Returns whether it was new.
    /// `quorum` is `None` when we hold no quorum for that height.
    pub fn add(
        &mut self,
        vote: Vote,
        quorum: Option<&ObligationsQuorum<PublicKey>>,
        latest: u64,
        timings: &ServiceNodeTimings,
    ) -> Result<(), VoteError> {
        if !height_in_window(vote.height, latest, timings) {
            return Err(VoteError::Stale {
                height: vote.height,
                latest,
            });
        }
        let quorum = quorum.ok_or(VoteError::UnknownQuorum(vote.height))?;
        let group = self
            .groups
            .get(&(vote.height, vote.worker_index, vote.state));
        if group.is_some_and(|g| g.contains_key(&vote.validator_index)) {
            return Err(VoteError::Duplicate(vote.validator_index));
        }
        vote.verify(quorum)?;
        self.groups
            .entry((vote.height, vote.worker_index, vote.state))
            .or_default()
            .insert(vote.validator_index, vote);
        Ok(())
    }

    /// Groups with at least `min` votes, votes in ascending validator order.
    pub fn ready(&self, min: usize) -> Vec<(u64, u16, NewState, Vec<Vote>)> {
        self.groups
            .iter()
            .filter(|(_, g)| g.len() >= min)
            .map(|((h, w, s), g)| (*h, *w, *s, g.values().copied().collect()))
            .collect()
    }

    /// Votes held for a group.
    pub fn count(&self, height: u64, worker_index: u16, state: NewState) -> usize {
        self.groups
            .get(&(height, worker_index, state))
            .map_or(0, BTreeMap::len)
    }

    /// Drops a group (its state change landed in a block).
    pub fn remove(&mut self, height: u64, worker_index: u16, state: NewState) {
        self.groups.remove(&(height, worker_index, state));
    }

    /// Drops votes that can no longer be used at `latest`.
    pub fn prune(&mut self, latest: u64, timings: &ServiceNodeTimings) {
        self.groups
            .retain(|(h, _, _), _| height_in_window(*h, latest, timings));
    }

    /// Number of votes held.
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proof::tests::keys;
    use sispop_chain::{Network, NetworkParams};

    pub(crate) type Signer = (Scalar, PublicKey);

    pub(crate) fn quorum(n: u8) -> (ObligationsQuorum<PublicKey>, Vec<Signer>) {
        let signers: Vec<Signer> = (0..n)
            .map(|i| keys(100 + i))
            .map(|(_, x, p)| (x, p))
            .collect();
        let workers = (0..5).map(|i| keys(200 + i).2).collect();
        (
            ObligationsQuorum {
                validators: signers.iter().map(|s| s.1).collect(),
                workers,
            },
            signers,
        )
    }

    pub(crate) fn vote(s: &[Signer], i: u16, height: u64, worker: u16, state: NewState) -> Vote {
        let (x, p) = &s[usize::from(i)];
        Vote::sign(&mut rand::rngs::OsRng, height, worker, state, 1, i, p, x)
    }

    #[test]
    fn hash_layout() {
        let mut buf = 77u64.to_le_bytes().to_vec();
        buf.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(vote_hash(77, 3, NewState::Deregister), keccak256(&buf));
        buf.extend_from_slice(&1u16.to_le_bytes());
        assert_eq!(vote_hash(77, 3, NewState::Decommission), keccak256(&buf));
    }

    #[test]
    fn wire_round_trip_and_garbage() {
        let (q, s) = quorum(10);
        let v = vote(&s, 4, 50, 2, NewState::Decommission);
        let enc = v.encode();
        assert!(enc.starts_with(b"d1:gi1e1:hi50e1:ii4e1:ri1e1:s64:"));
        let d = Vote::decode(&enc).expect("test value");
        assert_eq!(d, v);
        d.verify(&q).expect("test value");
        // Well-formed but not an obligations validator vote (group 2), and an unknown state.
        let swap = |from: &[u8], to: &[u8]| {
            let at = enc
                .windows(from.len())
                .position(|w| w == from)
                .expect("present");
            let mut b = enc.clone();
            b[at..at + from.len()].copy_from_slice(to);
            b
        };
        assert!(matches!(
            Vote::decode(&swap(b"1:gi1e", b"1:gi2e")),
            Err(VoteError::Malformed(m)) if m.contains("group 2")
        ));
        assert!(matches!(
            Vote::decode(&swap(b"2:sci1e", b"2:sci9e")),
            Err(VoteError::Malformed(m)) if m.contains("state 9")
        ));
        assert!(Vote::decode(&[b'l'; 600]).is_err());
        let mut wrong = v;
        wrong.state = NewState::Recommission;
        assert_eq!(wrong.verify(&q), Err(VoteError::BadSignature(s[4].1)));
        wrong = v;
        wrong.validator_index = 5;
        assert!(
            matches!(wrong.verify(&q), Err(VoteError::BadSignature(_))),
            "not the signer"
        );
        wrong.validator_index = 10;
        assert!(matches!(
            wrong.verify(&q),
            Err(VoteError::ValidatorIndex { .. })
        ));
        wrong = v;
        wrong.worker_index = 5;
        assert!(matches!(
            wrong.verify(&q),
            Err(VoteError::WorkerIndex { .. })
        ));
    }

    #[test]
    fn pool_collects_and_refuses() {
        let t = &NetworkParams::get(Network::Devnet).sn;
        let (q, s) = quorum(10);
        let mut pool = VotePool::new();
        for i in 0..6 {
            pool.add(
                vote(&s, i, 100, 1, NewState::Decommission),
                Some(&q),
                105,
                t,
            )
            .expect("test value");
        }
        assert!(pool.ready(7).is_empty(), "6 votes are not enough");
        assert_eq!(
            pool.add(
                vote(&s, 3, 100, 1, NewState::Decommission),
                Some(&q),
                105,
                t
            ),
            Err(VoteError::Duplicate(3))
        );
        assert!(matches!(
            pool.add(vote(&s, 7, 100, 1, NewState::Decommission), None, 105, t),
            Err(VoteError::UnknownQuorum(100))
        ));
        assert!(matches!(
            pool.add(
                vote(&s, 7, 100, 1, NewState::Decommission),
                Some(&q),
                161,
                t
            ),
            Err(VoteError::Stale { .. })
        ));
        assert!(matches!(
            pool.add(
                vote(&s, 7, 106, 1, NewState::Decommission),
                Some(&q),
                105,
                t
            ),
            Err(VoteError::Stale { .. })
        ));
        let mut forged = vote(&s, 8, 100, 1, NewState::Decommission);
        forged.validator_index = 7;
        assert!(pool.add(forged, Some(&q), 105, t).is_err());
        assert_eq!(pool.len(), 6, "nothing refused was kept");
        pool.add(
            vote(&s, 9, 100, 1, NewState::Decommission),
            Some(&q),
            105,
            t,
        )
        .expect("test value");
        let ready = pool.ready(7);
        assert_eq!(ready.len(), 1);
        let idx: Vec<u16> = ready[0].3.iter().map(|v| v.validator_index).collect();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5, 9], "ascending validator order");
        pool.prune(161, t);
        assert!(pool.is_empty());
    }
}
