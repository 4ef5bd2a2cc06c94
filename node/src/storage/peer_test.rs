//! Storage tests, wired: this node tests the storage of the workers it judges as a validator,
//! answers the tests of others, and makes and keeps the acknowledgements the tests rest on
//! (the scheme, and why a failure is a proof, are [`sispop_storage::storage_test`]'s). Results
//! go into the proof book, where the obligations checks read them
//! (`TestResults::storage_ok`), so a node that loses messages it signed for is voted out like
//! one that does not answer.
//!
//! Requests travel on the storage protocol (`/sispop/storage/1`) and are answered only for a
//! validator of a current obligations quorum in which the named worker is tested, and only by
//! the worker or a member of its swarm (so a worker cannot have a peer answer for it by asking
//! in its own name, and nobody else can make a node scan its store):
//! - sample (tag 4), to a witness: JSON `{"worker": hex, "nonce": hex32}`; answer `{"hash":
//!   H, "ack": {…}, "data": base64}` (a message this node holds that carries the worker's
//!   usable ack, with that ack and the body), or `{"hash": null}` when it holds none.
//! - test (tag 5), to the worker: JSON `{"worker": hex, "hash": H, "nonce": hex32, "ack":
//!   {…}}`; answer `{"proof": hex32}`, or `{"proof": null, "refute": {"method", "params"}}`
//!   (the account's request that ended the message), or `{"proof": null}`.

use base64::Engine as _;
use libp2p::Multiaddr;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use serde_json::{json, Value};
use sispop_chain::{Height, PublicKey};
use sispop_storage::rpc::refutes;
use sispop_storage::storage_test::{
    eligible, judge, proof, unusable, Ack, Acked, Answer, Verdict, ACK_HEIGHT_SLACK, ACK_WINDOW_MS,
    MAX_SCAN, MIN_REMAINING_MS,
};
use sispop_storage::{is_valid_message_hash, message_hash};
use tracing::{debug, info};

use crate::node::{unix_now, Node};
use crate::storage::server::{now_ms, owner_among, Storage};
use crate::storage::sync::{ask, members_with_addr, Asked, SAMPLE, TEST};

/// Longest sample answer read (a body of 76,800 bytes in base64, an ack and some JSON).
const MAX_SAMPLE_ANSWER: usize = 128 * 1024;
/// Longest test answer read (a kept request naming up to 1,000 hashes).
const MAX_TEST_ANSWER: usize = 128 * 1024;

fn hex32(v: &Value, key: &str) -> Option<[u8; 32]> {
    v[key]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// This node's chain height.
fn tip_height(node: &Node) -> u64 {
    node.lock().chain.tip().0 .0
}

/// This node's ack of a message it took at `at` (as entry, or forwarded from one; `m` as the
/// request gave it): of the message as it holds it (an earlier copy keeps its timestamp and
/// a later expiry), or as given when the store keeps nothing (`--dev-fault drop-storage`).
pub(crate) fn our_ack(node: &Node, storage: &Storage, m: &Acked, at: u64) -> (Ack, Acked) {
    let held = match storage.store.get(&m.hash) {
        Ok(Some(h)) => Acked::from(&h),
        _ => m.clone(),
    };
    (
        Ack::sign(&storage.signer, &held, at, tip_height(node)),
        held,
    )
}

/// Whether `a`, from `member`, acknowledges `m`, is signed by it, and was made now, at a
/// height near ours (an ack below it by more than [`ACK_HEIGHT_SLACK`], or of another time,
/// comes from a node that lags, or that picked a height before the last change of the swarms
/// or an old time so that it could never be tested: it is not kept).
pub(crate) fn keepable(node: &Node, member: &PublicKey, a: &Ack, m: &Acked) -> bool {
    let tip = tip_height(node);
    a.member == member.0
        && a.account == m.account
        && a.namespace == m.namespace
        && a.hash == m.hash
        && a.timestamp == m.timestamp
        && a.height.saturating_add(ACK_HEIGHT_SLACK) >= tip
        && a.height <= tip.saturating_add(ACK_HEIGHT_SLACK)
        && a.at.abs_diff(now_ms()) <= sispop_storage::rpc::SIGNATURE_TOLERANCE
        && a.verify()
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

/// Answers a sample request: a random message this node holds, old enough, that carries the
/// worker's ack (usable for a while yet), with that ack and the body.
pub fn answer_sample(
    node: &Node,
    storage: &Storage,
    from: &PublicKey,
    our_swarm: u64,
    body: &[u8],
) -> Result<Vec<u8>, Refusal> {
    let (_, worker, _) = request(body)?;
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
        .sample_acked(
            &random,
            rand::rngs::OsRng.gen(),
            MAX_SCAN,
            &worker.0,
            |m, a| {
                eligible(m, watermark)
                    && a.expiry >= now.saturating_add(MIN_REMAINING_MS)
                    && a.at.saturating_add(ACK_WINDOW_MS) >= now
                    && !sispop_storage::rpc::is_public_outbox(a.namespace)
                    && owner_among(&ids, &m.pubkey) == Some(our_swarm)
            },
        )
        .map_err(|e| (500, e.to_string()))?;
    let v = match picked {
        Some((m, ack)) => json!({
            "hash": m.hash,
            "ack": ack.to_json(),
            "data": base64::engine::general_purpose::STANDARD.encode(&m.data),
        }),
        None => json!({"hash": null}),
    };
    Ok(v.to_string().into_bytes())
}

/// Answers a test request: the proof of the message with the hash, if held; if not, the
/// account's request that ended it, if one was kept.
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
    if let Some(m) = storage.store.get(hash).map_err(|e| (500, e.to_string()))? {
        return Ok(json!({"proof": hex::encode(proof(&nonce, &m.data))})
            .to_string()
            .into_bytes());
    }
    // Not held: what ended it, if the account did (checked here as the tester will).
    let now = now_ms();
    let refutation = Ack::from_json(&req["ack"])
        .filter(|a| a.hash == hash)
        .and_then(|a| {
            let kept = storage.store.refutations(&a.account, hash, now).ok()?;
            kept.into_iter()
                .find(|(method, params)| refutes(method, params, &a, now))
        });
    let v = match refutation {
        Some((method, params)) => {
            json!({"proof": null, "refute": {"method": method, "params": params}})
        }
        None => json!({"proof": null}),
    };
    Ok(v.to_string().into_bytes())
}

/// The JSON body of a 200 answer of at most `max` bytes.
async fn ok_body(r: Vec<u8>, max: usize) -> Option<Value> {
    if r.get(..2)? != 200u16.to_be_bytes() || r.len() > max {
        return None;
    }
    crate::node::workers::parse_json(r, 2).await.ok()
}

/// Whether this node's chain says `ack` may be held against `worker` now: the worker is
/// active in the swarm that owns the account, has been since before the ack, and the swarms
/// have not changed since (so the worker has had no reason to hand the message over).
fn held_by_chain(node: &Node, worker: &PublicKey, ack: &Ack) -> Result<(), &'static str> {
    let st = node.lock();
    let state = st.chain.ext().state();
    let tip = st.chain.tip().0 .0;
    let n = state
        .nodes
        .get(worker)
        .filter(|n| n.is_active())
        .ok_or("the worker is not active")?;
    if ack.height < n.swarm_since.0 {
        return Err("the worker has moved since it signed");
    }
    if ack.height < state.swarm_ids_since.0 {
        return Err("the swarms have changed since it was signed");
    }
    if ack.height > tip.saturating_add(ACK_HEIGHT_SLACK) {
        return Err("signed at a height far above ours");
    }
    let ids = crate::storage::server::swarm_ids(state);
    if owner_among(&ids, &ack.account) != Some(n.swarm_id) {
        return Err("the account is not the worker's swarm's");
    }
    Ok(())
}

/// Tests one worker's storage (see the module docs) and records a conclusive result.
pub async fn test(node: Node, worker: PublicKey, worker_addr: Option<Multiaddr>) {
    let n = &node;
    let verdict = test_by(n, worker, worker_addr, |pk, addr, data| {
        Box::pin(async move { ask(n, &pk, addr, data).await })
    })
    .await;
    if verdict != Verdict::Inconclusive {
        node.acct()
            .book
            .storage_tested(worker, unix_now(), verdict == Verdict::Pass);
    }
}

/// [`test`], asking through `ask`, without recording: the verdict.
pub(crate) async fn test_by<'a>(
    node: &'a Node,
    worker: PublicKey,
    worker_addr: Option<Multiaddr>,
    ask: impl Fn(PublicKey, Option<Multiaddr>, Vec<u8>) -> Asked<'a>,
) -> Verdict {
    let witness = {
        let st = node.lock();
        let me = st.sn_keys.as_ref().map(|k| k.primary);
        let state = st.chain.ext().state();
        let Some(swarm) = state
            .nodes
            .get(&worker)
            .filter(|n| n.is_active())
            .map(|n| n.swarm_id)
        else {
            return Verdict::Inconclusive;
        };
        let members: Vec<PublicKey> = state
            .active()
            .filter(|(pk, n)| n.swarm_id == swarm && **pk != worker && Some(**pk) != me)
            .map(|(pk, _)| *pk)
            .collect();
        members.choose(&mut rand::thread_rng()).copied()
    };
    let Some(witness) = witness else {
        return Verdict::Inconclusive;
    };
    let (witness, witness_addr) = members_with_addr(node, vec![witness]).remove(0);
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut data = vec![SAMPLE];
    data.extend_from_slice(
        json!({"worker": worker.to_hex(), "nonce": hex::encode(nonce)})
            .to_string()
            .as_bytes(),
    );
    let sample = match ask(witness, witness_addr, data).await {
        Ok(r) => ok_body(r, MAX_SAMPLE_ANSWER).await,
        Err(_) => None,
    };
    let Some(sample) = sample else {
        debug!(%witness, "storage test: no sample from the witness");
        return Verdict::Inconclusive;
    };
    if sample["hash"].is_null() {
        // The witness holds nothing the worker signed for (recently enough).
        return Verdict::Inconclusive;
    }
    // The ack must be the worker's, of this body, and still binding.
    let body = sample["data"]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
    let ack = Ack::from_json(&sample["ack"]);
    let (Some(ack), Some(body)) = (ack, body) else {
        debug!(%witness, "storage test: a malformed sample");
        return Verdict::Inconclusive;
    };
    let now = now_ms();
    let why = if ack.member != worker.0 {
        Some("not the worker's")
    } else if message_hash(&ack.account, ack.namespace, &body) != ack.hash {
        Some("the body is not the acknowledged message")
    } else {
        unusable(&ack, now).or_else(|| held_by_chain(node, &worker, &ack).err())
    };
    if let Some(why) = why {
        debug!(%witness, node = %worker, why, "storage test: the sample's ack cannot be used");
        return Verdict::Inconclusive;
    }
    let expected = proof(&nonce, &body);
    let mut data = vec![TEST];
    data.extend_from_slice(
        json!({"worker": worker.to_hex(), "hash": ack.hash, "nonce": hex::encode(nonce),
               "ack": ack.to_json()})
        .to_string()
        .as_bytes(),
    );
    let answer = match ask(worker, worker_addr, data).await {
        // Only a 200 is an answer: a refusal (its chain does not have the quorum yet, it is
        // not serving, its store failed) says nothing about what it holds.
        Err(_) => Answer::NoAnswer,
        Ok(r) if r.get(..2) != Some(&200u16.to_be_bytes()[..]) => Answer::NoAnswer,
        Ok(r) => match ok_body(r, MAX_TEST_ANSWER).await {
            Some(v) => match hex32(&v, "proof") {
                Some(p) => Answer::Proof(p),
                None if v["refute"]["method"]
                    .as_str()
                    .is_some_and(|m| refutes(m, &v["refute"]["params"], &ack, now_ms())) =>
                {
                    Answer::Ended
                }
                None => Answer::Missing,
            },
            None => Answer::Missing,
        },
    };
    let verdict = judge(&expected, answer);
    match verdict {
        Verdict::Pass => debug!(node = %worker, hash = %ack.hash, "storage test passed"),
        Verdict::Fail => {
            info!(node = %worker, hash = %ack.hash, answer = ?answer, witness = %witness, acked_at = ack.at, "storage test failed: a message it signed for holding")
        }
        Verdict::Inconclusive => {
            debug!(node = %worker, hash = %ack.hash, answer = ?answer, "storage test inconclusive")
        }
    }
    verdict
}

#[cfg(test)]
mod tests;
