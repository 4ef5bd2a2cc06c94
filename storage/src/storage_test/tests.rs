use super::*;
use crate::{message_hash, UserPubkey};

fn message(ns: Namespace) -> Message {
    let pubkey = UserPubkey {
        prefix: 5,
        key: [3; 32],
    };
    Message {
        pubkey,
        namespace: ns,
        hash: message_hash(&pubkey, ns, b"body"),
        timestamp: 1_000,
        expiry: 10_000_000,
        data: b"body".to_vec(),
    }
}

#[test]
fn proofs_depend_on_nonce_and_body() {
    let a = proof(&[1; 32], b"body");
    assert_eq!(a, proof(&[1; 32], b"body"));
    assert_ne!(a, proof(&[2; 32], b"body"));
    assert_ne!(a, proof(&[1; 32], b"bodz"));
}

#[test]
fn acks_are_the_members_signature_over_every_field() {
    let signer = SigningKey::from_bytes(&[9; 32]);
    let m = message(0);
    let ack = Ack::sign(&signer, &Acked::from(&m), 5_000, 77);
    assert!(ack.verify());
    assert_eq!(Ack::from_json(&ack.to_json()), Some(ack.clone()));
    assert_eq!(Ack::from_compact(&ack.compact(), &Acked::from(&m)), ack);
    // Any field changed: no longer the member's signature.
    let changed = [
        Ack {
            member: [1; 32],
            ..ack.clone()
        },
        Ack {
            namespace: 1,
            ..ack.clone()
        },
        Ack {
            hash: message(1).hash,
            ..ack.clone()
        },
        Ack {
            timestamp: 1_001,
            ..ack.clone()
        },
        Ack {
            expiry: 20_000_000,
            ..ack.clone()
        },
        Ack {
            at: 5_001,
            ..ack.clone()
        },
        Ack {
            height: 78,
            ..ack.clone()
        },
    ];
    for a in changed {
        assert!(!a.verify(), "{a:?}");
    }
}

#[test]
fn which_acks_can_be_held_against_their_signer() {
    let signer = SigningKey::from_bytes(&[9; 32]);
    let now = 2_000_000;
    let ack = |ns: Namespace, at: u64, expiry: u64| {
        Ack::sign(
            &signer,
            &Acked::from(&Message {
                expiry,
                ..message(ns)
            }),
            at,
            5,
        )
    };
    assert_eq!(unusable(&ack(0, now, now + MIN_REMAINING_MS), now), None);
    assert!(
        unusable(&ack(-21, now, 10_000_000), now).is_some(),
        "an outbox"
    );
    assert!(
        unusable(&ack(0, now, now + MIN_REMAINING_MS - 1), now).is_some(),
        "expiring"
    );
    assert!(
        unusable(&ack(0, now + 60_001, 10_000_000), now).is_some(),
        "future"
    );
    let later = now + ACK_WINDOW_MS + 1;
    assert!(unusable(&ack(0, now, u64::MAX), later).is_some(), "too old");
    let mut forged = ack(0, now, 10_000_000);
    forged.signature[0] ^= 1;
    assert!(unusable(&forged, now).is_some(), "not the signature");
}

#[test]
fn verdicts() {
    let e = [7; 32];
    assert_eq!(judge(&e, Answer::Proof(e)), Verdict::Pass);
    assert_eq!(judge(&e, Answer::Proof([8; 32])), Verdict::Fail);
    assert_eq!(judge(&e, Answer::Missing), Verdict::Fail);
    assert_eq!(judge(&e, Answer::Ended), Verdict::Inconclusive);
    assert_eq!(judge(&e, Answer::NoAnswer), Verdict::Inconclusive);
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
