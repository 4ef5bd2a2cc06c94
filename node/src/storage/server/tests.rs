//! Where the storage port's answers are made, and in what room.

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};

use super::*;
use crate::testnode::TestNode;

/// A `batch` holding a write comes back to the executor to pass it on to the swarm; its answer
/// (up to several MB of JSON) is still serialised on a worker. In debug builds the answer
/// checks that it is made off the executor, so this goes red if it is not (as when thousands
/// of clients asking for large batches froze a devnet node for a minute and got it
/// decommissioned).
#[tokio::test(flavor = "current_thread")]
async fn a_batch_answer_is_serialised_on_a_worker() {
    let t = TestNode::new(&[7, 7, 7], |_, _| {});
    let batch = json!({"method": "batch", "params": {"requests": [
        {"method": "info", "params": {}}, {"method": "store", "params": {}}]}});
    assert!(crate::storage::replicate::passes_on(&batch, 200));
    let resp = serve_client_rpc(&t.node, &t.storage, 1, Bytes::from(batch.to_string())).await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let got: Value = serde_json::from_slice(&body).expect("json");
    let results = got["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{got}");
    assert_eq!(results[0]["code"], 200, "{got}");
    assert_eq!(results[1]["code"], 400, "{got}");
    // A plain request is answered the same way, on the worker that ran it.
    let info = json!({"method": "info", "params": {}}).to_string();
    let resp = serve_client_rpc(&t.node, &t.storage, 1, Bytes::from(info)).await;
    assert_eq!(resp.status(), 200);
}

/// An account (prefix 03, signing with its own key) holding `n` messages of 76,000 bytes on
/// `t`, and a signed retrieve of them all, as large as one may be.
fn big_account(t: &TestNode, n: usize) -> Value {
    let key = SigningKey::from_bytes(&[9; 32]);
    let id = format!("03{}", hex::encode(key.verifying_key().to_bytes()));
    let b64 = base64::engine::general_purpose::STANDARD;
    for i in 0..n {
        let mut data = vec![0u8; 76_000];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let req = json!({"method": "store", "params": {"pubkey": id, "timestamp": now_ms(),
            "ttl": 3_600_000, "data": b64.encode(&data)}});
        let r = storage_rpc_value(&t.node, &t.storage, &req);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let ts = now_ms();
    let sig = key.sign(format!("retrieve{ts}").as_bytes());
    json!({"method": "retrieve", "params": {"pubkey": id, "timestamp": ts, "max_size": -1,
        "signature": b64.encode(sig.to_bytes())}})
}

async fn answer(t: &TestNode, req: &Value) -> (u16, Value) {
    let resp = serve_client_rpc(&t.node, &t.storage, 1, Bytes::from(req.to_string())).await;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A retrieve takes its room in the answer budget before it runs: with room, a large answer;
/// while clients that do not read theirs hold the budget, what fits a small answer at once,
/// with `"more": true`, instead of megabytes built to be refused. The room of an answer
/// being written is what it needs, the rest given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrieve_is_made_in_the_room_left_for_answers() {
    let t = TestNode::new(&[7, 7, 7], |_, _| {});
    let retrieve = big_account(&t, 40);
    let (status, got) = answer(&t, &retrieve).await;
    assert_eq!(status, 200, "{got}");
    let all = got["messages"].as_array().expect("messages").len();
    assert_eq!(all, 40);
    let room = t.storage.clients.answer_room();

    // Answers nobody reads, holding all but a little of the budget.
    let held = t
        .storage
        .clients
        .answer(Bytes::from(vec![b' '; room - LARGE_ANSWER / 2]))
        .expect("room");
    let (status, got) = answer(&t, &retrieve).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["messages"].as_array().map(Vec::len),
        Some(1),
        "{got:.200}"
    );
    assert_eq!(got["more"], true);
    // A batch of retrieves: one message in all.
    let batch = json!({"method": "batch", "params": {"requests": [retrieve, retrieve]}});
    let (status, got) = answer(&t, &batch).await;
    assert_eq!(status, 200, "{got:.300}");
    let bodies: Vec<usize> = got["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["body"]["messages"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(bodies, [1, 0]);
    assert!(got["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|r| r["body"]["more"] == true));
    drop(held);

    // With the budget back, the answer is whole again, and holds only its size while written.
    let resp = serve_client_rpc(&t.node, &t.storage, 1, Bytes::from(retrieve.to_string())).await;
    let size = hyper::body::Body::size_hint(resp.body())
        .exact()
        .expect("size") as usize;
    assert!(size > 4_000_000, "{size}");
    let taken = room - t.storage.clients.answer_room();
    assert!(
        taken >= size && taken < size + 2048,
        "{taken} bytes held for an answer of {size}"
    );
    drop(resp);
    assert_eq!(t.storage.clients.answer_room(), room);
}

/// Room is taken for what may retrieve messages, an `ifelse` by its branches.
#[test]
fn room_is_taken_for_what_may_retrieve() {
    let r = |m: &str| json!({"method": m, "params": {}});
    let batch = |subs: Vec<Value>| json!({"method": "batch", "params": {"requests": subs}});
    let ifelse = |then: Value| json!({"method": "ifelse", "params": {"if": {"height_at_least": 1}, "then": then}});
    assert!(may_retrieve(&r("retrieve")));
    assert!(!may_retrieve(&r("store")));
    assert!(may_retrieve(&batch(vec![r("store"), r("retrieve")])));
    assert!(!may_retrieve(&batch(vec![r("store"), r("info")])));
    assert!(!may_retrieve(&ifelse(r("info"))));
    assert!(may_retrieve(&ifelse(batch(vec![r("retrieve")]))));
    assert!(may_retrieve(&ifelse(ifelse(r("retrieve")))));
}

/// A room given back down to what its answer took keeps only that, and at least a small
/// answer's worth is never asked of the budget.
#[test]
fn a_room_keeps_what_it_is_told() {
    let clients = Clients::new();
    let full = clients.answer_room();
    let mut room = clients.room(LARGE_ANSWER);
    assert_eq!(
        full - clients.answer_room(),
        LARGE_ANSWER.div_ceil(1024) * 1024
    );
    room.keep(300_000);
    assert_eq!(
        full - clients.answer_room(),
        300_000usize.div_ceil(1024) * 1024
    );
    room.keep(10);
    assert_eq!(full - clients.answer_room(), clients::SMALL);
    drop(room);
    assert_eq!(clients.answer_room(), full);
}
