//! Storage tests end to end between three nodes of a test network (a tester, a witness and a
//! worker, each with its own store and chain, their requests passed by hand), and the framing
//! attempts of issue 23: none of them gets an honest worker a recorded failure.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use sispop_chain::Height;
use sispop_storage::storage_test::{stored, Ack, Verdict, MIN_AGE_MS};
use sispop_storage::UserPubkey;
use sispop_testing::ObligationsQuorum;

use super::test_by;
use crate::storage::server::{now_ms, owner_among, storage_rpc_value};
use crate::storage::sync::{forward_by, PUSH};
use crate::testnode::TestNode;

const A: u64 = 0x1000;
const B: u64 = 0x8000_0000_0000_0000;
/// Member 0 tests (in swarm B), 1 is the witness, 2 the worker (swarm A has no other member,
/// so the tester's pick of a witness falls on 1).
const SWARMS: [u64; 5] = [B, A, A, B, B];
const TESTER: usize = 0;
const WITNESS: usize = 1;
const WORKER: usize = 2;

/// An Ed25519 account (prefix 03: it signs with its own key) of swarm A, with its key.
fn ed25519_account_of_a() -> (ed25519_dalek::SigningKey, UserPubkey) {
    (0..=u8::MAX)
        .map(|i| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
            let account = UserPubkey {
                prefix: 3,
                key: key.verifying_key().to_bytes(),
            };
            (key, account)
        })
        .find(|(_, a)| owner_among(&[A, B], a) == Some(A))
        .expect("an account of A")
}

/// The three nodes, with the tester validating a quorum that tests the worker.
struct Net {
    tester: TestNode,
    witness: TestNode,
    worker: TestNode,
    account: UserPubkey,
}

fn net(edit: impl Fn(&mut sispop_staking::State, &[crate::testnode::Member]) + Copy) -> Net {
    let with_quorum = move |s: &mut sispop_staking::State, m: &[crate::testnode::Member]| {
        s.quorums.insert(
            Height(0),
            Arc::new(ObligationsQuorum {
                validators: vec![m[TESTER].pk],
                workers: vec![m[WORKER].pk],
            }),
        );
        edit(s, m);
    };
    let account = (0..=u16::MAX)
        .map(|i| {
            let mut key = [9u8; 32];
            key[..2].copy_from_slice(&i.to_le_bytes());
            UserPubkey { prefix: 5, key }
        })
        .find(|pk| owner_among(&[A, B], pk) == Some(A))
        .expect("an account of A");
    Net {
        tester: TestNode::as_member(TESTER, None, &SWARMS, with_quorum),
        witness: TestNode::as_member(WITNESS, None, &SWARMS, with_quorum),
        worker: TestNode::as_member(WORKER, None, &SWARMS, with_quorum),
        account,
    }
}

fn answer(status: u16, body: Vec<u8>) -> Vec<u8> {
    [&status.to_be_bytes()[..], &body].concat()
}

impl Net {
    /// A client's store at the witness (the entry), forwarded to the worker as the daemon
    /// forwards it; returns the message's hash.
    async fn store(&self, namespace: i16, text: &str) -> String {
        self.store_at(namespace, text, now_ms()).await
    }

    /// [`Net::store`] with the client's timestamp `ts`.
    async fn store_at(&self, namespace: i16, text: &str, ts: u64) -> String {
        let params = json!({"pubkey": sispop_storage::pubkey_hex(&self.account),
            "namespace": namespace, "timestamp": ts, "ttl": 3_600_000,
            "data": base64::engine::general_purpose::STANDARD.encode(text)});
        let req = json!({"method": "store", "params": params});
        let entry = &self.witness;
        let r = storage_rpc_value(&entry.node, &entry.storage, &req);
        assert_eq!(r.status, 200, "{}", r.body);
        let m = stored(&req["params"], &r.body);
        let bytes = req.to_string().into_bytes();
        let worker = entry.members[WORKER].pk;
        forward_by(
            &entry.node,
            &entry.storage,
            A,
            &bytes,
            m.as_ref(),
            |pk, _, data| {
                let a = if pk == worker {
                    let (s, b) = self.worker.request(WITNESS, data[0], &data[1..]);
                    Ok(answer(s, b))
                } else {
                    Err("not in this test".into())
                };
                Box::pin(async move { a })
            },
        )
        .await;
        r.body["hash"].as_str().expect("hash").to_owned()
    }

    /// Lets everything the witness holds count as old enough to sample.
    fn age(&self) {
        let s = &self.witness.storage;
        s.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(now_ms() - MIN_AGE_MS - 1_000, s.store.last_seq());
    }

    /// The tester's test of the worker, `witness` and `worker` answering (by default, the
    /// nodes themselves).
    async fn test_with(
        &self,
        witness: impl Fn(u8, &[u8]) -> Vec<u8> + Sync,
        worker: impl Fn(u8, &[u8]) -> Vec<u8> + Sync,
    ) -> Verdict {
        let m = &self.tester.members;
        let (w, x) = (m[WITNESS].pk, m[WORKER].pk);
        let (witness, worker) = (&witness, &worker);
        test_by(&self.tester.node, x, None, |pk, _, data| {
            let a = if pk == w {
                Ok(witness(data[0], &data[1..]))
            } else if pk == x {
                Ok(worker(data[0], &data[1..]))
            } else {
                Err("not in this test".into())
            };
            Box::pin(async move { a })
        })
        .await
    }

    async fn test(&self) -> Verdict {
        self.test_with(
            |t, b| self.witness_answer(t, b),
            |t, b| self.worker_answer(t, b),
        )
        .await
    }

    fn witness_answer(&self, tag: u8, body: &[u8]) -> Vec<u8> {
        let (s, b) = self.witness.request(TESTER, tag, body);
        answer(s, b)
    }

    fn worker_answer(&self, tag: u8, body: &[u8]) -> Vec<u8> {
        let (s, b) = self.worker.request(TESTER, tag, body);
        answer(s, b)
    }
}

#[tokio::test]
async fn a_worker_that_holds_what_it_signed_for_passes() {
    let n = net(|_, _| {});
    // Nothing acknowledged yet: nothing to test with.
    assert_eq!(n.test().await, Verdict::Inconclusive);
    n.store(0, "hello").await;
    n.age();
    assert_eq!(n.test().await, Verdict::Pass);
}

#[tokio::test]
async fn a_worker_that_lost_what_it_signed_for_fails() {
    let n = net(|_, _| {});
    let hash = n.store(0, "hello").await;
    n.age();
    // Gone from the worker without the account asking (as with `--dev-fault drop-storage`).
    n.worker
        .storage
        .store
        .delete(&n.account, std::slice::from_ref(&hash))
        .expect("delete");
    assert_eq!(n.test().await, Verdict::Fail);
    // And one that answers something else than the proof.
    let n = net(|_, _| {});
    n.store(0, "hello").await;
    n.age();
    let garbage = |_: u8, _: &[u8]| {
        answer(
            200,
            json!({"proof": hex::encode([1u8; 32])})
                .to_string()
                .into_bytes(),
        )
    };
    assert_eq!(
        n.test_with(|t, b| n.witness_answer(t, b), garbage).await,
        Verdict::Fail
    );
}

#[tokio::test]
async fn a_message_the_account_deleted_is_not_held_against_the_worker() {
    let (key, account) = ed25519_account_of_a();
    let n = Net {
        account,
        ..net(|_, _| {})
    };
    let hash = n.store(0, "to be deleted").await;
    n.age();
    // The owner deletes it; the delete reaches the worker only (the witness keeps it).
    let sig = ed25519_dalek::Signer::sign(&key, format!("delete{hash}").as_bytes());
    let del = json!({"method": "delete", "params": {
        "pubkey": sispop_storage::pubkey_hex(&n.account), "messages": [hash],
        "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())}});
    let r = storage_rpc_value(&n.worker.node, &n.worker.storage, &del);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(n.worker.storage.store.get(&hash).expect("get").is_none());
    assert_eq!(n.test().await, Verdict::Inconclusive);
    // Without the request kept, the same answer is a failure.
    let m = net(|_, _| {});
    let hash = m.store(0, "lost").await;
    m.age();
    m.worker
        .storage
        .store
        .delete(&m.account, std::slice::from_ref(&hash))
        .expect("delete");
    assert_eq!(m.test().await, Verdict::Fail);
}

/// Framing, 1: a member pushes a message to every member but the worker (`only_here`, or a
/// hand-over): the worker never signed for it, so no witness can test it on it, though the
/// worker does not hold it.
#[tokio::test]
async fn a_message_pushed_past_the_worker_cannot_frame_it() {
    let n = net(|_, _| {});
    let m = sispop_storage::store::Message {
        pubkey: n.account,
        namespace: 0,
        hash: sispop_storage::message_hash(&n.account, 0, b"pushed"),
        timestamp: now_ms(),
        expiry: now_ms() + 3_600_000,
        data: b"pushed".to_vec(),
    };
    // As a push from a member leaves it (here from the worker itself, which then drops it:
    // any push, as it carries no ack, is the same).
    let push = json!({"messages": [sispop_storage::store::message_to_json(&m)], "only_here": true});
    let (status, _) = n.witness.request(WORKER, PUSH, push.to_string().as_bytes());
    assert_eq!(status, 200);
    assert!(n.witness.storage.store.get(&m.hash).expect("get").is_some());
    assert!(n.worker.storage.store.get(&m.hash).expect("get").is_none());
    n.age();
    assert_eq!(n.test().await, Verdict::Inconclusive);
}

/// Framing, 2: racing stores to a public outbox leave members holding different messages;
/// outbox messages are never acknowledged, so never tested.
#[tokio::test]
async fn racing_outbox_stores_cannot_frame_the_worker() {
    let n = net(|_, _| {});
    // Namespace -21 is a public outbox; stores there need the account's signature, so here
    // they go straight into the witness's and the worker's stores, as two racing stores that
    // each reached one of them first would leave them.
    for (node, text) in [(&n.witness, "first"), (&n.worker, "second")] {
        let m = sispop_storage::store::Message {
            pubkey: n.account,
            namespace: -21,
            hash: sispop_storage::message_hash(&n.account, -21, text.as_bytes()),
            timestamp: now_ms(),
            expiry: now_ms() + 3_600_000,
            data: text.as_bytes().to_vec(),
        };
        node.storage.store.store(&m, true).expect("store");
    }
    let params = json!({"pubkey": sispop_storage::pubkey_hex(&n.account), "namespace": -21});
    assert!(stored(
        &params,
        &json!({"hash": "x", "swarm": {"k": {"expiry": 1}}})
    )
    .is_none());
    n.age();
    assert_eq!(n.test().await, Verdict::Inconclusive);
}

/// Framing, 3: a witness that lies: an ack it signed itself in the worker's name, the
/// worker's ack with another message's body, or a proof computed from another body; none
/// makes the worker fail, and the worker, honest, passes when the witness tells the truth.
#[tokio::test]
async fn a_lying_witness_cannot_frame_the_worker() {
    let n = net(|_, _| {});
    n.store(0, "hello").await;
    n.store(0, "other").await;
    n.age();
    let honest = |t: u8, b: &[u8]| n.witness_answer(t, b);
    let witness_key = ed25519_dalek::SigningKey::from_bytes(&[(WITNESS + 1) as u8; 32]);
    let forged = |v: &mut Value| {
        let mut a = Ack::from_json(&v["ack"]).expect("ack");
        let resigned = Ack::sign(
            &witness_key,
            &sispop_storage::storage_test::Acked {
                account: a.account,
                namespace: a.namespace,
                hash: a.hash.clone(),
                timestamp: a.timestamp,
                expiry: a.expiry,
            },
            a.at,
            a.height,
        );
        a.signature = resigned.signature;
        v["ack"] = a.to_json();
    };
    let other_body = |v: &mut Value| {
        v["data"] = json!(base64::engine::general_purpose::STANDARD.encode("not this one"));
    };
    let later_expiry = |v: &mut Value| {
        v["ack"]["expiry"] = json!(v["ack"]["expiry"].as_u64().expect("expiry") + 1_000_000);
    };
    // The worker, asked, has lost nothing here: any failure would be a frame.
    let lost = |t: u8, b: &[u8]| {
        // Answers as if it did not hold the message: only a valid ack could make that count.
        let _ = (t, b);
        answer(200, json!({"proof": null}).to_string().into_bytes())
    };
    for change in [
        &forged as &(dyn Fn(&mut Value) + Sync),
        &other_body,
        &later_expiry,
    ] {
        let lie = |t: u8, b: &[u8]| {
            let r = n.witness_answer(t, b);
            let mut v: Value = serde_json::from_slice(&r[2..]).expect("json");
            change(&mut v);
            answer(200, v.to_string().into_bytes())
        };
        assert_eq!(n.test_with(lie, lost).await, Verdict::Inconclusive);
    }
    assert_eq!(
        n.test_with(honest, |t, b| n.worker_answer(t, b)).await,
        Verdict::Pass
    );
}

/// Framing, 4: an ack from before the worker moved to its swarm (or before the swarms
/// changed) is not held against it, whatever it answers.
#[tokio::test]
async fn an_ack_from_before_the_swarms_changed_is_not_used() {
    let moved = |s: &mut sispop_staking::State, m: &[crate::testnode::Member]| {
        // In the tester's chain, the worker joined its swarm after height 0.
        let info = s.nodes.get_mut(&m[WORKER].pk).expect("worker");
        Arc::make_mut(info).swarm_since = Height(1);
    };
    let n = Net {
        tester: TestNode::as_member(TESTER, None, &SWARMS, |s, m| {
            s.quorums.insert(
                Height(0),
                Arc::new(ObligationsQuorum {
                    validators: vec![m[TESTER].pk],
                    workers: vec![m[WORKER].pk],
                }),
            );
            moved(s, m);
        }),
        ..net(|_, _| {})
    };
    let hash = n.store(0, "hello").await;
    n.age();
    n.worker
        .storage
        .store
        .delete(&n.account, std::slice::from_ref(&hash))
        .expect("delete");
    assert_eq!(n.test().await, Verdict::Inconclusive);
}

/// The worker's ack names the message as it holds it: stored again with a later timestamp
/// (the hash is the same), the worker keeps the earlier one and signs that; the entry, which
/// holds the later one, does not keep an ack of another message, so the account's
/// `delete_before` that covered the earlier timestamp, applied at the worker alone, cannot
/// make it fail.
#[tokio::test]
async fn the_ack_names_what_the_worker_holds() {
    let (key, account) = ed25519_account_of_a();
    let n = Net {
        account,
        ..net(|_, _| {})
    };
    let (old, new) = (now_ms() - 30_000, now_ms());
    // The worker already holds it with the earlier timestamp (an earlier store reached it).
    let m = sispop_storage::store::Message {
        pubkey: account,
        namespace: 0,
        hash: sispop_storage::message_hash(&account, 0, b"again"),
        timestamp: old,
        expiry: old + 3_600_000,
        data: b"again".to_vec(),
    };
    n.worker.storage.store.store(&m, false).expect("store");
    let hash = n.store_at(0, "again", new).await;
    assert_eq!(hash, m.hash);
    n.age();
    let sample = n.witness_answer(
        super::SAMPLE,
        json!({"worker": n.tester.members[WORKER].pk.to_hex(),
        "nonce": hex::encode([1u8; 32])})
        .to_string()
        .as_bytes(),
    );
    // Its ack names the earlier timestamp, which is not what the witness holds: not kept.
    let v: Value = serde_json::from_slice(&sample[2..]).expect("json");
    assert_eq!(v["hash"], Value::Null, "{v}");
    // The account deletes what is older than `old` + 1 ms: at the worker only.
    let before = old + 1;
    let sig = ed25519_dalek::Signer::sign(&key, format!("delete_before{before}").as_bytes());
    let del = json!({"method": "delete_before", "params": {
        "pubkey": sispop_storage::pubkey_hex(&account), "before": before,
        "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())}});
    let r = storage_rpc_value(&n.worker.node, &n.worker.storage, &del);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(n.worker.storage.store.get(&hash).expect("get").is_none());
    assert_eq!(n.test().await, Verdict::Inconclusive);
}
