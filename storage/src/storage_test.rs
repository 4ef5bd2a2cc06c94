//! Storage tests: how one service node tells whether another keeps its swarm's messages
//! (reference `storage-and-onion.md` §4.1, made stronger and made to count), such that **a
//! failure is a proof**: a node fails only for a message it signed for holding.
//!
//! 1. **Acknowledgements.** A member that takes a message a client stored (as the entry node,
//!    or forwarded from it) signs an [`Ack`]: its key, the account, namespace, hash,
//!    timestamp and expiry of the message, its clock and its chain height. The entry keeps the
//!    members' acks with the message, and each member keeps the entry's. Nothing else makes
//!    an ack: messages pushed between members (`only_here` redeliveries, hand-overs, pulls)
//!    and public-outbox messages (one per account, replaced by the next) never get one.
//! 2. **The test.** A validator of the quorum judging a node (the worker) asks another member
//!    of its swarm (the witness) for a random message it holds that carries the worker's ack,
//!    old enough to have reached every member ([`MIN_AGE_MS`], by the witness's arrival order)
//!    and far from its acknowledged expiry ([`MIN_REMAINING_MS`]). The witness answers the
//!    ack and the message's body. The validator checks that the ack is the worker's
//!    signature over that message ([`Ack::verify`], the body's hash is the acked hash) and is
//!    usable ([`usable`]: recent, not an outbox's, and made while the worker was already in
//!    the swarm that owns the account, as the validator's own chain says), then asks the worker
//!    for `BLAKE2b-256("sispop storage test" ‖ nonce ‖ body)` under a fresh nonce.
//! 3. **The verdict** ([`judge`]). The right proof passes. A wrong proof, or none, fails,
//!    unless the worker shows the account's own signed request that ended the message (a
//!    delete naming it, a `delete_all` or `delete_before` that covered it, an expiry change
//!    that made it expire by now: `rpc::refutes`), which makes the test count for nothing, as
//!    does no answer at all (left to the reachability checks).
//!
//! Why it is sound: the proof is computed by the validator from a body that hashes to the
//! acked hash, so no witness can make an honest worker's right answer look wrong. A worker
//! fails only for a message it signed for holding, whose acknowledged expiry is still ahead,
//! in a namespace that keeps every message, while it has been in the swarm that owns the
//! account since it signed; an honest worker still holds such a message unless the account
//! ended it, and then it kept the account's signed request ([`REFUTE_KEEP_MS`], longer than an
//! ack is usable). A member pushing a message to every member but one gets no ack from that
//! one; racing stores to a public outbox make no acks at all; a message handed over when the
//! swarms change is kept for a while after (`storage_sync`), and acks from before the change
//! are not usable.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde_json::{json, Value};

use std::collections::VecDeque;

use crate::store::{Message, MessageMeta};
use crate::{Namespace, UserPubkey};

/// A message is sampled only once it is this old (replication reaches a swarm within seconds).
pub const MIN_AGE_MS: u64 = 20_000;
/// A message is sampled only while its acknowledged expiry is this far ahead.
pub const MIN_REMAINING_MS: u64 = 60_000;
/// Most messages a witness looks at to find one to sample.
pub const MAX_SCAN: usize = 256;
/// How long after it was signed an ack can be held against its signer.
pub const ACK_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// How long a node keeps the account's request that ended a message it had acknowledged:
/// longer than any ack of it is usable.
pub const REFUTE_KEEP_MS: u64 = ACK_WINDOW_MS + 3600 * 1000;
/// Acks of other members a node keeps with one message.
pub const MAX_ACKS: usize = 4;
/// An ack signed at a height this far below the keeper's own tip is not kept (its signer
/// lags, or chose a height before the last swarm change so that it could never be tested).
pub const ACK_HEIGHT_SLACK: u64 = 10;
/// Bytes of an ack as kept with its message (the message gives the rest).
pub const ACK_LEN: usize = 32 + 8 + 8 + 8 + 64;

/// The answer to a test: BLAKE2b-256 of a domain tag, the nonce and the message body.
pub fn proof(nonce: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut h =
        Blake2bVar::new(32).unwrap_or_else(|_| unreachable!("32 is a valid BLAKE2b output size"));
    h.update(b"sispop storage test");
    h.update(nonce);
    h.update(data);
    let mut out = [0u8; 32];
    h.finalize_variable(&mut out)
        .unwrap_or_else(|_| unreachable!("buffer matches the output size"));
    out
}

/// What an ack names of a message: everything but its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// The account.
    pub account: UserPubkey,
    /// The namespace.
    pub namespace: Namespace,
    /// The hash.
    pub hash: String,
    /// The client's timestamp.
    pub timestamp: u64,
    /// The expiry, as held.
    pub expiry: u64,
}

impl From<&Message> for Acked {
    fn from(m: &Message) -> Acked {
        Acked {
            account: m.pubkey,
            namespace: m.namespace,
            hash: m.hash.clone(),
            timestamp: m.timestamp,
            expiry: m.expiry,
        }
    }
}

/// What a `store` that succeeded stored, from its `params` and its answer (`body`), and when
/// it was stored (the answer's `"t"`): the message as the request gave it (the node acks what
/// it holds, which may be an earlier copy: see `MessageStore::get`). `None` for a public
/// outbox (never acked).
pub fn stored(params: &Value, body: &Value) -> Option<(Acked, u64)> {
    let account = crate::rpc::request_pubkey(params)?;
    let namespace = match &params["namespace"] {
        Value::Null => 0,
        v => i16::try_from(v.as_i64()?).ok()?,
    };
    if crate::rpc::is_public_outbox(namespace) {
        return None;
    }
    let hash = body["hash"].as_str()?.to_owned();
    let entry = body["swarm"].as_object()?.values().next()?;
    Some((
        Acked {
            account,
            namespace,
            hash,
            timestamp: params["timestamp"].as_u64()?,
            expiry: entry["expiry"].as_u64()?,
        },
        entry["t"].as_u64()?,
    ))
}

/// A member's signed statement that it holds a message (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The signer's Ed25519 key (its service node key).
    pub member: [u8; 32],
    /// The message's account.
    pub account: UserPubkey,
    /// Its namespace.
    pub namespace: Namespace,
    /// Its hash.
    pub hash: String,
    /// Its timestamp (the client's).
    pub timestamp: u64,
    /// Its expiry, as the signer held it.
    pub expiry: u64,
    /// The signer's clock when it signed (unix ms).
    pub at: u64,
    /// The signer's chain height when it signed.
    pub height: u64,
    /// The signature.
    pub signature: [u8; 64],
}

impl Ack {
    /// What is signed.
    fn text(&self) -> Vec<u8> {
        let mut t = b"sispop storage ack\n".to_vec();
        t.extend_from_slice(&self.member);
        t.push(self.account.prefix);
        t.extend_from_slice(&self.account.key);
        t.extend_from_slice(&self.namespace.to_be_bytes());
        t.extend_from_slice(self.hash.as_bytes());
        t.push(b'\n');
        for n in [self.timestamp, self.expiry, self.at, self.height] {
            t.extend_from_slice(&n.to_be_bytes());
        }
        t
    }

    /// `signer`'s ack of `m` (as it holds it) at `at`, its chain at `height`.
    pub fn sign(signer: &SigningKey, m: &Acked, at: u64, height: u64) -> Ack {
        let mut a = Ack {
            member: signer.verifying_key().to_bytes(),
            account: m.account,
            namespace: m.namespace,
            hash: m.hash.clone(),
            timestamp: m.timestamp,
            expiry: m.expiry,
            at,
            height,
            signature: [0; 64],
        };
        a.signature = signer.sign(&a.text()).to_bytes();
        a
    }

    /// Whether the signature is the member's.
    pub fn verify(&self) -> bool {
        VerifyingKey::from_bytes(&self.member).is_ok_and(|k| {
            k.verify_strict(
                &self.text(),
                &ed25519_dalek::Signature::from_bytes(&self.signature),
            )
            .is_ok()
        })
    }

    /// As members send it.
    pub fn to_json(&self) -> Value {
        json!({
            "member": hex::encode(self.member),
            "pubkey": crate::pubkey_hex(&self.account),
            "namespace": self.namespace,
            "hash": self.hash,
            "timestamp": self.timestamp,
            "expiry": self.expiry,
            "at": self.at,
            "height": self.height,
            "signature": hex::encode(self.signature),
        })
    }

    /// Reads one a member sent (not checked: see [`Ack::verify`]).
    pub fn from_json(v: &Value) -> Option<Ack> {
        let bytes = |k: &str| v[k].as_str().and_then(|s| hex::decode(s).ok());
        Some(Ack {
            member: bytes("member")?.try_into().ok()?,
            account: UserPubkey::from_hex(v["pubkey"].as_str()?).ok()?,
            namespace: i16::try_from(v["namespace"].as_i64()?).ok()?,
            hash: v["hash"]
                .as_str()
                .filter(|h| crate::is_valid_message_hash(h))?
                .to_owned(),
            timestamp: v["timestamp"].as_u64()?,
            expiry: v["expiry"].as_u64()?,
            at: v["at"].as_u64()?,
            height: v["height"].as_u64()?,
            signature: bytes("signature")?.try_into().ok()?,
        })
    }

    /// As kept with its message: member ‖ expiry ‖ at ‖ height ‖ signature.
    pub fn compact(&self) -> [u8; ACK_LEN] {
        let mut b = [0u8; ACK_LEN];
        b[..32].copy_from_slice(&self.member);
        b[32..40].copy_from_slice(&self.expiry.to_be_bytes());
        b[40..48].copy_from_slice(&self.at.to_be_bytes());
        b[48..56].copy_from_slice(&self.height.to_be_bytes());
        b[56..].copy_from_slice(&self.signature);
        b
    }

    /// An ack kept with a message (`m` gives the account, namespace, hash and timestamp).
    pub fn from_compact(b: &[u8; ACK_LEN], m: &Acked) -> Ack {
        let n = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let mut member = [0u8; 32];
        member.copy_from_slice(&b[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[56..]);
        Ack {
            member,
            account: m.account,
            namespace: m.namespace,
            hash: m.hash.clone(),
            timestamp: m.timestamp,
            expiry: n(32),
            at: n(40),
            height: n(48),
            signature,
        }
    }

    /// The member of a compact ack.
    pub fn member_of(b: &[u8; ACK_LEN]) -> &[u8] {
        &b[..32]
    }
}

/// Why an ack cannot be held against its signer now (`None`: it can), as far as the ack
/// alone tells; the daemon checks the swarms against its chain besides.
pub fn unusable(ack: &Ack, now_ms: u64) -> Option<&'static str> {
    if !ack.verify() {
        return Some("not the member's signature");
    }
    if crate::rpc::is_public_outbox(ack.namespace) {
        return Some("a public outbox keeps only its newest message");
    }
    if ack.expiry < now_ms.saturating_add(MIN_REMAINING_MS) {
        return Some("expired, or about to");
    }
    if ack.at.saturating_add(ACK_WINDOW_MS) < now_ms {
        return Some("too old");
    }
    if ack.at > now_ms.saturating_add(crate::rpc::SIGNATURE_TOLERANCE) {
        return Some("signed in the future");
    }
    None
}

/// Whether a witness may sample `m` at `now_ms`: it arrived here at or before `watermark`
/// ([`Arrivals::watermark`]).
pub fn eligible(m: &MessageMeta, watermark: u64) -> bool {
    m.seq <= watermark
}

/// When this node's inserts happened: the store's last sequence number noted now and then, so
/// that "arrived at least [`MIN_AGE_MS`] ago" can be told from a message's sequence number
/// (clients choose their timestamps; arrival here is what replication timing is about).
#[derive(Clone, Debug, Default)]
pub struct Arrivals {
    /// (unix ms, last sequence number then), oldest first.
    notes: VecDeque<(u64, u64)>,
}

impl Arrivals {
    /// Notes the store's last sequence number at `now_ms`, forgetting notes no longer needed.
    pub fn note(&mut self, now_ms: u64, last_seq: u64) {
        self.notes.push_back((now_ms, last_seq));
        // Keep only the newest note that is already old enough, and those after it.
        let cutoff = now_ms.saturating_sub(MIN_AGE_MS);
        while self.notes.len() > 1 && self.notes[1].0 <= cutoff {
            self.notes.pop_front();
        }
    }

    /// The highest sequence number that had arrived [`MIN_AGE_MS`] before `now_ms` (0 when
    /// nothing is known to be that old).
    pub fn watermark(&self, now_ms: u64) -> u64 {
        let cutoff = now_ms.saturating_sub(MIN_AGE_MS);
        self.notes
            .iter()
            .take_while(|(t, _)| *t <= cutoff)
            .last()
            .map_or(0, |(_, s)| *s)
    }
}

/// What the worker answered when asked for its proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A proof.
    Proof([u8; 32]),
    /// No proof, and the account's signed request that ended the message (checked).
    Ended,
    /// No proof and nothing to show for it (or garbage).
    Missing,
    /// No answer at all (unreachable, timeout): left to the reachability checks.
    NoAnswer,
}

/// The outcome of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The worker holds the message.
    Pass,
    /// The worker does not hold a message it signed for holding.
    Fail,
    /// Nothing can be concluded.
    Inconclusive,
}

/// Judges a test of a usable ack: `expected` is the proof the tester computed from the body
/// (which hashes to the acked hash), `answer` the worker's.
pub fn judge(expected: &[u8; 32], answer: Answer) -> Verdict {
    match answer {
        Answer::Proof(p) if p == *expected => Verdict::Pass,
        Answer::Proof(_) | Answer::Missing => Verdict::Fail,
        Answer::Ended | Answer::NoAnswer => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests;
