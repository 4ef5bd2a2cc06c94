//! Storage tests: how one service node tells whether another keeps its swarm's messages
//! (reference `storage-and-onion.md` §4.1, made stronger and made to count).
//!
//! Upstream's test has one swarm member (the tester) ask another (the testee) for the body of a
//! message the tester holds; the results were never reported, so they never counted. Here the
//! tester is a validator of the obligations quorum that judges the worker, and usually not in
//! its swarm:
//!
//! 1. The tester sends a fresh random nonce to a *witness*, another active member of the
//!    worker's swarm, which picks a random message of its swarm's accounts that reached it long
//!    enough ago to have reached every member ([`MIN_AGE_MS`], by this node's arrival order,
//!    not the client's timestamp: see [`Arrivals`]) and is far enough from expiry
//!    ([`MIN_REMAINING_MS`]), and answers its hash and the [`proof`] of its body under the
//!    nonce.
//! 2. The tester asks the worker for the proof of the message with that hash under the same
//!    nonce. The nonce is new for every test, so an answer cannot be remembered from an earlier
//!    one: the worker must hold the body (or fetch it, which a live, honest swarm peer could
//!    also have done for it).
//! 3. A matching proof passes. A miss, a different proof or a refusal fails only once a
//!    second witness confirms the first witness's proof; otherwise (or when the swarm has no
//!    second witness) the test counts for nothing. A lying witness alone cannot get an honest
//!    worker voted out.
//!
//! No message body leaves the swarm: the tester sees hashes and proofs only. A worker that does
//! not answer at all is left to the reachability checks.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

use std::collections::VecDeque;

use crate::store::MessageMeta;

/// A message is sampled only once it is this old (replication reaches a swarm within seconds).
pub const MIN_AGE_MS: u64 = 20_000;
/// A message is sampled only while it has this long left to live.
pub const MIN_REMAINING_MS: u64 = 60_000;
/// Most messages a witness looks at to find one to sample.
pub const MAX_SCAN: usize = 256;

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

/// Whether a witness may sample `m` at `now_ms`: it arrived here at or before `watermark`
/// ([`Arrivals::watermark`]) and has long enough to live.
pub fn eligible(m: &MessageMeta, now_ms: u64, watermark: u64) -> bool {
    m.seq <= watermark && m.expiry >= now_ms.saturating_add(MIN_REMAINING_MS)
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

/// What a node answered when asked for a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A proof.
    Proof([u8; 32]),
    /// Anything else it answered: it does not hold the message, it refused, or it answered
    /// garbage.
    NotFound,
    /// No answer at all (unreachable, timeout): left to the reachability checks.
    NoAnswer,
}

/// The outcome of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The worker holds the message.
    Pass,
    /// The worker does not hold a message its swarm holds.
    Fail,
    /// Nothing can be concluded.
    Inconclusive,
}

/// Judges a test: `expected` is the first witness's proof, `worker` the worker's answer, and
/// `confirmation` a second witness's answer (`None` when the swarm has no other member to ask).
pub fn judge(expected: &[u8; 32], worker: Answer, confirmation: Option<Answer>) -> Verdict {
    match worker {
        Answer::Proof(p) if p == *expected => Verdict::Pass,
        Answer::NoAnswer => Verdict::Inconclusive,
        Answer::Proof(_) | Answer::NotFound => match confirmation {
            Some(Answer::Proof(p)) if p == *expected => Verdict::Fail,
            Some(_) | None => Verdict::Inconclusive,
        },
    }
}

/// Whether the worker's answer needs a second witness before it is judged.
pub fn needs_confirmation(expected: &[u8; 32], worker: Answer) -> bool {
    matches!(worker, Answer::NotFound) || matches!(worker, Answer::Proof(p) if p != *expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserPubkey;

    #[test]
    fn proofs_depend_on_nonce_and_body() {
        let a = proof(&[1; 32], b"body");
        assert_eq!(a, proof(&[1; 32], b"body"));
        assert_ne!(a, proof(&[2; 32], b"body"));
        assert_ne!(a, proof(&[1; 32], b"bodz"));
    }

    #[test]
    fn verdicts() {
        let e = [7; 32];
        let other = Answer::Proof([8; 32]);
        let good = Answer::Proof(e);
        assert_eq!(judge(&e, good, None), Verdict::Pass);
        assert_eq!(
            judge(&e, Answer::NoAnswer, Some(good)),
            Verdict::Inconclusive
        );
        // A miss is a failure when a second witness agrees with the first, or there is none.
        assert_eq!(judge(&e, Answer::NotFound, Some(good)), Verdict::Fail);
        assert_eq!(judge(&e, other, Some(good)), Verdict::Fail);
        // The first witness is never believed on its own word.
        assert_eq!(judge(&e, Answer::NotFound, None), Verdict::Inconclusive);
        for c in [Answer::NotFound, other, Answer::NoAnswer] {
            assert_eq!(judge(&e, Answer::NotFound, Some(c)), Verdict::Inconclusive);
        }
        assert!(needs_confirmation(&e, Answer::NotFound));
        assert!(needs_confirmation(&e, other));
        assert!(!needs_confirmation(&e, good));
        assert!(!needs_confirmation(&e, Answer::NoAnswer));
    }

    #[test]
    fn sampling_window() {
        let m = MessageMeta {
            pubkey: UserPubkey {
                prefix: 5,
                key: [0; 32],
            },
            seq: 10,
            timestamp: 0,
            expiry: 2_000_000,
        };
        assert!(!eligible(&m, 1_000_000, 9), "arrived too recently");
        assert!(eligible(&m, 1_000_000, 10));
        assert!(eligible(&m, 2_000_000 - MIN_REMAINING_MS, 10));
        assert!(
            !eligible(&m, 2_000_000 - MIN_REMAINING_MS + 1, 10),
            "about to expire"
        );
    }

    #[test]
    fn arrivals_give_the_sequence_number_of_min_age_ago() {
        let mut a = Arrivals::default();
        assert_eq!(a.watermark(1_000_000), 0, "nothing known");
        a.note(100_000, 5);
        a.note(110_000, 8);
        a.note(120_000, 20);
        assert_eq!(a.watermark(100_000 + MIN_AGE_MS - 1), 0);
        assert_eq!(a.watermark(100_000 + MIN_AGE_MS), 5);
        assert_eq!(a.watermark(110_000 + MIN_AGE_MS), 8);
        assert_eq!(a.watermark(u64::MAX), 20);
        // Old notes are dropped, but never the one the watermark needs.
        for i in 0..1000u64 {
            a.note(130_000 + i * 10_000, 20 + i);
        }
        assert!(a.notes.len() <= 4, "{}", a.notes.len());
        let now = 130_000 + 999 * 10_000;
        assert_eq!(a.watermark(now), 20 + 997);
    }
}
