//! Storage tests, wired: this node tests the storage of the workers it judges as a validator,
//! and answers the tests of others (the scheme and its verdicts are
//! [`sispop_storage::storage_test`]'s). Results go into the proof book, where the obligations
//! checks read them (`TestResults::storage_ok`), so a node that does not keep its swarm's
//! messages is voted out like one that does not answer.
//!
//! Requests travel on the storage protocol (`/sispop/storage/1`) and are answered only for a
//! validator of a current obligations quorum in which the named worker is tested, and only by
//! the worker or a member of its swarm (so a worker cannot have a peer answer for it by asking
//! in its own name, and nobody else can make a node scan its store):
//! - sample (tag 4), to a witness: JSON `{"worker": hex, "nonce": hex32}`; answer
//!   `{"hash": H, "proof": hex32}`, or `{"hash": null}` when this node holds no message old
//!   enough to test with.
//! - test (tag 5), to the worker or a second witness: JSON `{"worker": hex, "hash": H,
//!   "nonce": hex32}`; answer `{"proof": hex32}`, or `{"proof": null}` when this node does not
//!   hold the message.

use libp2p::Multiaddr;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use serde_json::{json, Value};
use sispop_chain::{Height, PublicKey};
use sispop_storage::is_valid_message_hash;
use sispop_storage::storage_test::{
    eligible, judge, needs_confirmation, proof, Answer, Verdict, MAX_SCAN,
};
use tracing::{debug, info};

use crate::node::{unix_now, Node};
use crate::storage_server::{now_ms, owner_among, Storage};
use crate::storage_sync::{ask, members_with_addr, SAMPLE, TEST};

fn hex32(v: &Value, key: &str) -> Option<[u8; 32]> {
    v[key]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// Checks that `from` may ask this node about `worker`: it validates a current quorum that
/// tests `worker`, and this node is `worker` or a member of its swarm (`our_swarm`).
fn allowed(
    node: &Node,
    from: &PublicKey,
    worker: &PublicKey,
    our_swarm: u64,
) -> Result<(), Refusal> {
    let st = node.lock();
    let state = st.chain.ext().state();
    let me = st.sn_keys.as_ref().map(|k| k.primary);
    let member = Some(*worker) == me
        || state
            .nodes
            .get(worker)
            .is_some_and(|n| n.swarm_id == our_swarm);
    if !member {
        return Err((403, "not a member of the worker's swarm".into()));
    }
    let tip = st.chain.tip().0 .0;
    let first = tip.saturating_sub(node.params.sn.vote_lifetime);
    let validates = state
        .quorums
        .range(Height(first)..)
        .any(|(_, q)| q.workers.contains(worker) && q.validators.contains(from));
    if validates {
        Ok(())
    } else {
        Err((403, "not a validator of a quorum testing this node".into()))
    }
}

/// A refusal: the status (400 malformed, 403 not allowed, 500 store failure) and why.
pub type Refusal = (u16, String);

fn bad(why: &str) -> Refusal {
    (400, why.to_owned())
}

fn request(body: &[u8]) -> Result<(Value, PublicKey, [u8; 32]), Refusal> {
    let req: Value = serde_json::from_slice(body).map_err(|_| bad("request is not JSON"))?;
    let worker = req["worker"]
        .as_str()
        .and_then(PublicKey::from_hex)
        .ok_or_else(|| bad("worker must be a service node key"))?;
    let nonce = hex32(&req, "nonce").ok_or_else(|| bad("nonce must be 32 bytes of hex"))?;
    Ok((req, worker, nonce))
}

/// Answers a sample request: a random message of an account our swarm owns, old enough.
pub fn answer_sample(
    node: &Node,
    storage: &Storage,
    from: &PublicKey,
    our_swarm: u64,
    body: &[u8],
) -> Result<Vec<u8>, Refusal> {
    let (_, worker, nonce) = request(body)?;
    allowed(node, from, &worker, our_swarm)?;
    let ids = storage.swarm_ids(node);
    let now = now_ms();
    let watermark = storage
        .arrivals
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .watermark(now);
    let mut random = [0u8; sispop_storage::store::OWNER_LEN];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let picked = storage
        .store
        .sample(&random, rand::rngs::OsRng.gen(), MAX_SCAN, |m| {
            eligible(m, now, watermark) && owner_among(&ids, &m.pubkey) == Some(our_swarm)
        })
        .map_err(|e| (500, e.to_string()))?;
    let v = match picked {
        Some(m) => json!({"hash": m.hash, "proof": hex::encode(proof(&nonce, &m.data))}),
        None => json!({"hash": null}),
    };
    Ok(v.to_string().into_bytes())
}

/// Answers a test request: the proof of the message with the hash, if held.
pub fn answer_test(
    node: &Node,
    storage: &Storage,
    from: &PublicKey,
    our_swarm: u64,
    body: &[u8],
) -> Result<Vec<u8>, Refusal> {
    let (req, worker, nonce) = request(body)?;
    let hash = req["hash"]
        .as_str()
        .filter(|h| is_valid_message_hash(h))
        .ok_or_else(|| bad("hash must be a message hash"))?;
    allowed(node, from, &worker, our_swarm)?;
    let held = storage.store.get(hash).map_err(|e| (500, e.to_string()))?;
    let v = json!({"proof": held.map(|m| hex::encode(proof(&nonce, &m.data)))});
    Ok(v.to_string().into_bytes())
}

/// The JSON body of a 200 answer.
fn ok_body(r: &[u8]) -> Option<Value> {
    // A sample or a proof is a few hundred bytes: anything long is not one.
    if r.get(..2)? != 200u16.to_be_bytes() || r.len() > crate::workers::INLINE_JSON {
        return None;
    }
    serde_json::from_slice(&r[2..]).ok()
}

/// Asks a node for its proof of a message in the test of `worker`. Any answer but a proof is a
/// miss; only no answer at all is [`Answer::NoAnswer`].
async fn ask_proof(
    node: &Node,
    pk: &PublicKey,
    addr: Option<Multiaddr>,
    worker: &PublicKey,
    hash: &str,
    nonce: &[u8; 32],
) -> Answer {
    let mut data = vec![TEST];
    data.extend_from_slice(
        json!({"worker": worker.to_hex(), "hash": hash, "nonce": hex::encode(nonce)})
            .to_string()
            .as_bytes(),
    );
    match ask(node, pk, addr, data).await {
        Err(_) => Answer::NoAnswer,
        Ok(r) => match ok_body(&r).and_then(|v| hex32(&v, "proof")) {
            Some(p) => Answer::Proof(p),
            None => Answer::NotFound,
        },
    }
}

/// Tests one worker's storage (see the module docs) and records a conclusive result.
pub async fn test(node: Node, worker: PublicKey, worker_addr: Option<Multiaddr>) {
    let witnesses = {
        let st = node.lock();
        let me = st.sn_keys.as_ref().map(|k| k.primary);
        let state = st.chain.ext().state();
        let Some(swarm) = state
            .nodes
            .get(&worker)
            .filter(|n| n.is_active())
            .map(|n| n.swarm_id)
        else {
            return;
        };
        let mut w: Vec<PublicKey> = state
            .active()
            .filter(|(pk, n)| n.swarm_id == swarm && **pk != worker && Some(**pk) != me)
            .map(|(pk, _)| *pk)
            .collect();
        w.shuffle(&mut rand::thread_rng());
        w.truncate(2);
        w
    };
    // A miss needs a second witness to count: a swarm with fewer cannot be tested.
    if witnesses.len() < 2 {
        return;
    }
    let witnesses = members_with_addr(&node, witnesses);
    let (first, first_addr) = witnesses[0].clone();
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut data = vec![SAMPLE];
    data.extend_from_slice(
        json!({"worker": worker.to_hex(), "nonce": hex::encode(nonce)})
            .to_string()
            .as_bytes(),
    );
    let answer = ask(&node, &first, first_addr, data).await;
    let Some(sample) = answer.as_deref().ok().and_then(ok_body) else {
        debug!(witness = %first, answer = ?answer.map(|r| String::from_utf8_lossy(&r).into_owned()), "storage test: no sample from the witness");
        return;
    };
    let (Some(hash), Some(expected)) = (
        sample["hash"]
            .as_str()
            .filter(|h| is_valid_message_hash(h))
            .map(str::to_owned),
        hex32(&sample, "proof"),
    ) else {
        // The swarm holds nothing old enough to test with.
        return;
    };
    let answer = ask_proof(&node, &worker, worker_addr, &worker, &hash, &nonce).await;
    let confirmation = match witnesses.get(1) {
        Some((second, addr)) if needs_confirmation(&expected, answer) => {
            Some(ask_proof(&node, second, addr.clone(), &worker, &hash, &nonce).await)
        }
        _ => None,
    };
    let verdict = judge(&expected, answer, confirmation);
    match verdict {
        Verdict::Pass => debug!(node = %worker, %hash, "storage test passed"),
        Verdict::Fail => {
            info!(node = %worker, %hash, answer = ?answer, witness = %first, "storage test failed")
        }
        Verdict::Inconclusive => {
            debug!(node = %worker, %hash, answer = ?answer, confirmation = ?confirmation, "storage test inconclusive");
            return;
        }
    }
    node.acct()
        .book
        .storage_tested(worker, unix_now(), verdict == Verdict::Pass);
}
