//! What a node takes from its peers on the storage protocol (through [`TestNode`]: the answer
//! to a request off the wire, and what the store holds after).

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use sispop_storage::store::{message_to_json, Message};
use sispop_storage::{message_hash, UserPubkey};

use super::{PULL_REVOKED, PUSH};
use crate::storage::server::{now_ms, owner_among};
use crate::testnode::TestNode;

const A: u64 = 0x1000;
const B: u64 = 0x8000_0000_0000_0000;
const C: u64 = 0xc000_0000_0000_0000;

/// An Ed25519 account (prefix 03) that swarm `swarm` owns among `ids`, with its key.
fn account_of(ids: &[u64], swarm: u64) -> (SigningKey, UserPubkey) {
    account_where(|pk| owner_among(ids, pk) == Some(swarm))
}

/// An Ed25519 account (prefix 03) for which `wanted` holds, with its key.
fn account_where(wanted: impl Fn(&UserPubkey) -> bool) -> (SigningKey, UserPubkey) {
    for i in 0..=u16::MAX {
        let mut seed = [7u8; 32];
        seed[..2].copy_from_slice(&i.to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let pk = UserPubkey {
            prefix: 3,
            key: key.verifying_key().to_bytes(),
        };
        if wanted(&pk) {
            return (key, pk);
        }
    }
    unreachable!("one account in a few is what is wanted")
}

fn message(pk: &UserPubkey, namespace: i16, text: &str) -> Message {
    Message {
        pubkey: *pk,
        namespace,
        hash: message_hash(pk, namespace, text.as_bytes()),
        timestamp: now_ms(),
        expiry: now_ms() + 3_600_000,
        data: text.as_bytes().to_vec(),
    }
}

fn push(t: &TestNode, from: usize, body: Value) -> Value {
    let (status, answer) = t.request(from, PUSH, body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).expect("json")
}

fn held(t: &TestNode, m: &Message) -> bool {
    t.storage.store.get(&m.hash).expect("store").is_some()
}

#[test]
fn a_push_from_another_swarm_is_refused_even_into_a_signed_namespace() {
    let t = TestNode::new(&[A, A, A, B, B], |_, _| {});
    let (_, acct) = account_of(&[A, B], A);
    let m = message(&acct, 2, "config, as if its owner had signed it");
    let body = json!({"messages": [message_to_json(&m)]});
    assert_eq!(push(&t, 3, body.clone())["stored"], 0);
    assert!(
        !held(&t, &m),
        "a node of swarm B never held an account of A"
    );
    // The same from a member of our swarm (passing on what it took) is kept.
    assert_eq!(push(&t, 1, body)["stored"], 1);
    assert!(held(&t, &m));
}

#[test]
fn a_hand_over_from_the_swarm_that_owned_the_account_is_taken() {
    // Before: one swarm, B, owned every account. Now A, B and C, and the account is A's.
    // Member 5 (C) was not active before, so it never held the account.
    let before = [B, B, B, B, B];
    let t = TestNode::with_history(Some(&before), &[A, A, A, B, B, C], |_, _| {});
    let (_, acct) = account_of(&[A, B, C], A);
    let handed = message(&acct, 0, "handed over");
    assert_eq!(
        push(&t, 3, json!({"messages": [message_to_json(&handed)]}))["stored"],
        1
    );
    assert!(held(&t, &handed), "member 3 was in B, which owned it");
    let forged = message(&acct, 0, "never held");
    assert_eq!(
        push(&t, 5, json!({"messages": [message_to_json(&forged)]}))["stored"],
        0
    );
    assert!(!held(&t, &forged));
}

/// A `revoke_subaccount` request's proof: the account's signature over the method, the
/// timestamp and the tokens, by `signer`.
fn revocation(signer: &SigningKey, acct: &UserPubkey, ts: u64, token: &[u8; 36]) -> String {
    let mut text = format!("revoke_subaccount{ts}").into_bytes();
    text.extend_from_slice(token);
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&text).to_bytes());
    json!({"pubkey": sispop_storage::pubkey_hex(acct), "timestamp": ts,
           "revoke": [hex::encode(token)], "signature": sig})
    .to_string()
}

#[test]
fn revocations_from_peers_need_the_accounts_signature() {
    let t = TestNode::new(&[A, A, A, B, B], |_, _| {});
    let (owner, acct) = account_of(&[A, B], A);
    // Revocations are kept for accounts holding messages.
    let m = message(&acct, 0, "hello");
    push(&t, 1, json!({"messages": [message_to_json(&m)]}));
    let (forged, honest) = ([1u8; 36], [2u8; 36]);
    let ts = now_ms();
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let entry = |token: &[u8; 36], proof: Option<String>| {
        json!({"pubkey": sispop_storage::pubkey_hex(&acct), "token": hex::encode(token),
               "t": ts, "proof": proof})
    };
    let revoked = json!([
        entry(&forged, None),
        entry(&forged, Some(revocation(&stranger, &acct, ts, &forged))),
        // A good proof, but for another token.
        entry(&forged, Some(revocation(&owner, &acct, ts, &honest))),
        entry(&honest, Some(revocation(&owner, &acct, ts, &honest))),
    ]);
    // From a node of another swarm and from one of ours alike.
    push(&t, 3, json!({"messages": [], "revoked": revoked}));
    push(&t, 1, json!({"messages": [], "revoked": revoked}));
    assert!(!t.storage.store.is_revoked(&acct, &forged));
    assert!(t.storage.store.is_revoked(&acct, &honest));
    // Pulled by a member, it comes with its proof; nothing without one is listed.
    let (status, page) = t.request(1, PULL_REVOKED, br#"{"after": null, "max": 50}"#);
    assert_eq!(status, 200);
    let page: Value = serde_json::from_slice(&page).expect("json");
    let listed = page["revoked"].as_array().expect("list");
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["token"], hex::encode(honest));
    assert!(listed[0]["proof"]
        .as_str()
        .is_some_and(|p| p.contains("signature")));
}

#[test]
fn a_hand_over_drops_only_what_a_receiver_signed_for() {
    use super::confirmed;
    // The receiver: member 0 of [A, A, B]. The giver: member 2, handing over two messages of
    // an account A owns now and one of an account it does not (as from a giver whose chain
    // view is ahead of the receiver's, or behind).
    let before = [B, B, B];
    let t = TestNode::with_history(Some(&before), &[A, A, B], |_, _| {});
    let (_, ours) = account_of(&[A, B], A);
    let (_, theirs) = account_of(&[A, B], B);
    let msgs = [
        message(&ours, 0, "one"),
        message(&ours, 0, "two"),
        message(&theirs, 0, "not ours"),
    ];
    let body = json!({"messages": msgs.iter().map(message_to_json).collect::<Vec<_>>()});
    let mut data = body.to_string().into_bytes();
    let (status, answer) = t.request(2, PUSH, &data);
    assert_eq!(status, 200);
    let mut raw = status.to_be_bytes().to_vec();
    raw.extend_from_slice(&answer);
    let pushed: Vec<&str> = msgs.iter().map(|m| m.hash.as_str()).collect();
    let receiver = t.members[0].pk;
    let mut got = confirmed(&receiver, &raw, &pushed);
    got.sort();
    let mut want = vec![msgs[0].hash.clone(), msgs[1].hash.clone()];
    want.sort();
    assert_eq!(got, want, "the two it took, not the one it refused");
    // Signed by someone else, or altered: nothing is confirmed.
    assert!(confirmed(&t.members[1].pk, &raw, &pushed).is_empty());
    let forged = String::from_utf8_lossy(&raw[2..]).replace(&msgs[0].hash, &msgs[2].hash);
    let mut altered = raw[..2].to_vec();
    altered.extend_from_slice(forged.as_bytes());
    assert!(confirmed(&receiver, &altered, &pushed).is_empty());
    // A receiver that stores nothing (all refused: `{"stored": 0}`, a 200 nonetheless)
    // confirms nothing.
    data = json!({"messages": [message_to_json(&msgs[2])]})
        .to_string()
        .into_bytes();
    let (status, answer) = t.request(2, PUSH, &data);
    let mut raw = status.to_be_bytes().to_vec();
    raw.extend_from_slice(&answer);
    assert_eq!(status, 200);
    assert!(confirmed(&receiver, &raw, &pushed).is_empty());
}

/// The giver's side: `hand_over` drops exactly what a receiver signed for, and keeps the rest
/// (to offer again) when receivers store nothing.
#[tokio::test]
async fn a_hand_over_keeps_what_no_receiver_stored() {
    // The giver (member 0) is in B; the accounts moved to A (members 1 and 2).
    let before = [B, B, B];
    let now = [B, A, A];
    let giver = TestNode::as_member(0, Some(&before), &now, |_, _| {});
    let taker = TestNode::as_member(1, Some(&before), &now, |_, _| {});
    // Member 1 seen by a receiver whose view of the swarms differs (B and C, member 1 in C):
    // the account is B's there.
    let (_, acct) = account_where(|pk| {
        owner_among(&[A, B], pk) == Some(A) && owner_among(&[B, C], pk) == Some(B)
    });
    let msgs: Vec<Message> = (0..3)
        .map(|i| message(&acct, 0, &format!("message {i}")))
        .collect();
    giver.storage.store.bulk_store(&msgs).expect("store");
    let (m1, m2) = (taker.members[1].pk, taker.members[2].pk);
    // Member 1 answers as the real code does but stores nothing (its view of the swarms lags:
    // the account is not its swarm's); member 2 answers 200 `{"stored": 0}` unsigned.
    let lagging = TestNode::as_member(1, Some(&before), &[B, C, C], |_, _| {});
    let (moved, left, handed) =
        super::keeping::hand_over_by(&giver.node, &giver.storage, B, |pk, _, data| {
            let answer = if pk == m1 {
                let (s, b) = lagging.request(0, data[0], &data[1..]);
                [&s.to_be_bytes()[..], &b].concat()
            } else {
                [&200u16.to_be_bytes()[..], br#"{"stored": 0}"#].concat()
            };
            Box::pin(async move { Ok(answer) })
        })
        .await;
    assert_eq!((moved, left), (0, 3));
    assert!(handed.is_empty(), "nothing to drop");
    // Member 1 in step now: it signs for all three, and they go.
    let (moved, left, handed) =
        super::keeping::hand_over_by(&giver.node, &giver.storage, B, |pk, _, data| {
            let answer = if pk == m1 {
                let (s, b) = taker.request(0, data[0], &data[1..]);
                [&s.to_be_bytes()[..], &b].concat()
            } else {
                assert_eq!(pk, m2);
                [&503u16.to_be_bytes()[..], b"busy"].concat()
            };
            Box::pin(async move { Ok(answer) })
        })
        .await;
    assert_eq!((moved, left), (3, 0));
    assert!(msgs.iter().all(|m| held(&taker, m)));
    // Kept for a while (a validator behind us may still test us on them), then dropped.
    assert!(msgs.iter().all(|m| held(&giver, m)));
    super::keeping::drop_handed(&giver.node, &giver.storage, handed).await;
    assert!(msgs.iter().all(|m| !held(&giver, m)));
}
