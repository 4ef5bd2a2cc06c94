//! Replication between the members of a swarm, over the SN-only libp2p protocol
//! `/sispop/storage/1` (forwarded writes on the persistent links of [`crate::p2p::link`]
//! when the member has them; reference `storage-and-onion.md` §3.4–§3.5):
//!
//! - **Forward**: a write a client sent to one member (store, delete, expiry changes) is sent
//!   on, as the client signed it, to every other member of the swarm, which checks and applies
//!   it as if the client had sent it there; their signed results join the `"swarm"` dict of the
//!   answer, as upstream's recursive requests do. A member that did not take it gets it again
//!   later ([`crate::storage::redeliver`]).
//! - **Pull**: when a node becomes an active member of a swarm (at start, after a restart, back
//!   from decommission, or moved to another swarm) it pages through each other member's
//!   messages and keeps those of accounts its swarm owns, so a node that joins a swarm receives
//!   its data and a node that was down catches up. Members already there pull only from a
//!   member that joined (it may hold messages of our accounts); a member leaving costs nothing.
//! - **Push**: when the swarms change (or we moved), every message held for an account another
//!   swarm now owns is sent to that swarm's members and, once one of them took it, dropped
//!   here; what no one took yet is offered again after 30 s, then after waits doubling up to
//!   30 minutes.
//!
//! Requests are accepted only from active service nodes (checked before a request is read:
//! `p2p::inbound`); forward and pull only from members of our own swarm (checked after the
//! tag, before the body). Pushed messages are taken only for accounts our swarm owns, and only
//! from a member of our swarm or, for a hand-over, from a node that was a member of the swarm
//! owning the account in one of the last layouts of the swarms (`SnDirectory::layouts`).
//! Revocations are taken only with the account's own signature on a request that revoked the
//! token. Every message from a peer is checked: its hash must be the hash of its content.
//!
//! Messages: a tag byte, then: 1 forward: the client's JSON body (answer: status u16 BE ‖
//! body); 2 pull: JSON `{"after": hex|null, "max": n}` (answer: JSON `{"messages": [...],
//! "next": hex|null}`); 3 push: JSON `{"messages": [...], "revoked": [...]?, "only_here":
//! bool?}` (answer: JSON `{"stored": n, "held": [hash…], "signature": hex}`: how many were
//! new, and the hashes of those pushed that this node now holds, signed with its key over
//! `storage::store::held_statement`; `only_here` from a member of our swarm: not passed on);
//! 4 and 5: storage tests, from any active service node ([`crate::storage::peer_test`]); 6: an
//! onion layer ([`crate::relay::onion`]); 7 pull revocations: JSON `{"after": hex|null, "max": n}`
//! (answer: JSON `{"revoked": [{"pubkey", "token" (hex), "t" (ms), "proof" (the account's
//! signed `revoke_subaccount` params, as a JSON string)}...], "next": hex|null}`).
//!
//! A member that pulls messages pulls the subaccount revocations after them, so a revoked
//! subaccount stays revoked on a member that joins or returns.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use serde_json::{json, Value};
use sispop_chain::PublicKey;
use sispop_storage::auth::TOKEN_LEN;
use sispop_storage::rpc::proven_revocation;
use sispop_storage::rpc::TTL_MAXIMUM_PRIVATE;
use sispop_storage::store::{
    held_statement, message_from_json, message_to_json, Message, Revocation, MAX_REVOKED,
};
use sispop_storage::UserPubkey;
use tracing::debug;

use crate::node::Node;
use crate::p2p::link::LinkError;
use crate::p2p::{peer_id_of, NetCommand};
use crate::storage::redeliver::{self as redeliver, missed_status, Write};
use crate::storage::server::{owner_among, serving, Storage};
use sispop_storage::storage_test::{Ack, Acked};

mod keeping;
pub use keeping::run;
#[cfg(test)]
mod tests;

/// How long a member may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages per pull page or push.
pub(crate) const PAGE: usize = 500;
/// Most bytes of messages (as they travel) in a pulled page: within what the puller reads of
/// an answer (16 MiB), with room for a page of large messages' JSON.
const PULL_PAGE_BYTES: u64 = 8 * 1024 * 1024;
/// Most bytes of messages in a handed-over page: with the accounts' revocations (at most 500
/// accounts × 50, about 4.5 MB of JSON) within what a peer takes in a request (10 MiB).
pub(crate) const PUSH_PAGE_BYTES: u64 = 4 * 1024 * 1024;
/// Most pages one pull takes from a member (5 million messages).
const MAX_PULL_PAGES: usize = 10_000;
/// How often the swarm is checked for changes.
const CHECK_EVERY: Duration = Duration::from_secs(3);

pub(crate) use crate::p2p::wire::tags::{FORWARD, PULL, PULL_REVOKED, PUSH, SAMPLE, TEST};

/// The other active members of our swarm, with an address from their last proof.
pub(crate) fn peers(node: &Node, swarm: u64) -> Vec<(PublicKey, Option<Multiaddr>)> {
    let st = node.lock();
    let Some(me) = st.sn_keys.as_ref().map(|k| k.primary) else {
        return Vec::new();
    };
    let members: Vec<PublicKey> = st
        .chain
        .ext()
        .state()
        .active()
        .filter(|(pk, n)| n.swarm_id == swarm && **pk != me)
        .map(|(pk, _)| *pk)
        .collect();
    drop(st);
    members_with_addr(node, members)
}

pub(crate) fn members_with_addr(
    node: &Node,
    members: Vec<PublicKey>,
) -> Vec<(PublicKey, Option<Multiaddr>)> {
    let acct = node.acct();
    members
        .into_iter()
        .map(|pk| {
            let addr = acct
                .book
                .get(&pk)
                .and_then(|r| r.proof.as_ref())
                .and_then(|p| {
                    format!("/ip4/{}/tcp/{}", p.public_ip, p.quorumnet_port)
                        .parse()
                        .ok()
                });
            (pk, addr)
        })
        .collect()
}

/// Sends `data` to a service node on the storage protocol and waits for the answer.
pub(crate) async fn ask(
    node: &Node,
    pk: &PublicKey,
    addr: Option<Multiaddr>,
    data: Vec<u8>,
) -> Result<Vec<u8>, String> {
    ask_within(node, pk, addr, data, PEER_TIMEOUT).await
}

/// [`ask`] with its own time limit; a late answer is the error `"timeout"`.
pub(crate) async fn ask_within(
    node: &Node,
    pk: &PublicKey,
    addr: Option<Multiaddr>,
    data: Vec<u8>,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    // Active nodes' peer ids are kept (deriving one costs a point decompression).
    let peer = node
        .active_sn_ids(pk)
        .map(|ids| ids.peer)
        .or_else(|| peer_id_of(pk))
        .ok_or("not a valid node key")?;
    // Forwarded writes go on the persistent link to the member, when it has one.
    let mut data = data;
    if data.first() == Some(&FORWARD) {
        if let Some(net) = node.net.get() {
            let bytes = hyper::body::Bytes::from(data);
            match net
                .links
                .ask(node, peer, &|| addr.clone(), bytes.clone(), limit)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(LinkError::Timeout) => return Err("timeout".into()),
                Err(LinkError::Failed(e)) => return Err(e),
                Err(LinkError::Unsupported) => data = Vec::from(bytes),
            }
        }
    }
    let net = node.net.get().ok_or("network not started")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    net.tx
        .send(NetCommand::StorageRequest {
            peer,
            addr,
            data,
            reply: tx,
        })
        .map_err(|_| "network stopped")?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("network stopped".into()),
        Err(_) => Err("timeout".into()),
    }
}

/// Sends a client's write on to the other members of our swarm and returns their `"swarm"`
/// entries (their own, or a failure entry as upstream writes them). A member that did not
/// take it gets it again later ([`crate::storage::redeliver`]): the message, for a store
/// (`stored`: what was stored), else the write itself. A store carries this node's ack of the
/// message (`"sispop_ack"`, next to the client's fields), and the members' acks in their
/// answers are kept with it ([`crate::storage::peer_test`]).
pub async fn forward(
    node: &Node,
    storage: &Arc<Storage>,
    swarm: u64,
    body: &[u8],
    stored: Option<&(Acked, u64)>,
) -> Vec<(String, Value)> {
    forward_by(node, storage, swarm, body, stored, |pk, addr, data| {
        Box::pin(async move { ask(node, &pk, addr, data).await })
    })
    .await
}

/// A request to a member and its answer (the network's [`ask`], or a test's stand-in).
pub(crate) type Asked<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// [`forward`], asking members through `ask`.
pub(crate) async fn forward_by<'a>(
    node: &'a Node,
    storage: &Arc<Storage>,
    swarm: u64,
    body: &[u8],
    stored: Option<&(Acked, u64)>,
    ask: impl Fn(PublicKey, Option<Multiaddr>, Vec<u8>) -> Asked<'a>,
) -> Vec<(String, Value)> {
    let mut data = vec![FORWARD];
    // What the members' acks must name: the message as we hold it.
    let mut held: Option<Acked> = None;
    match stored {
        Some((m, at)) => {
            let mut req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Value::Object(fields) = &mut req {
                let (ack, ours) = crate::storage::peer_test::our_ack(node, storage, m, *at);
                fields.insert("sispop_ack".into(), ack.to_json());
                data.extend_from_slice(req.to_string().as_bytes());
                held = Some(ours);
            } else {
                data.extend_from_slice(body);
            }
        }
        _ => data.extend_from_slice(body),
    }
    let held = held.as_ref();
    let data = &data;
    let acks = std::sync::Mutex::new(Vec::new());
    let acks = &acks;
    let ask = &ask;
    let asks = peers(node, swarm).into_iter().map(|(pk, addr)| {
        let data = data.clone();
        async move {
            let write = || match stored {
                Some((m, _)) => Write::Message(m.hash.clone()),
                None => Write::Request(body.to_vec()),
            };
            // Behind writes it missed: in order, after them.
            if redeliver::pending(storage, &pk) {
                redeliver::note(storage, pk, write());
                return (pk.to_hex(), json!({"failed": true, "query_failure": true}));
            }
            let answer = ask(pk, addr, data).await;
            let missed = match &answer {
                Ok(r) if r.len() >= 2 => missed_status(u16::from_be_bytes([r[0], r[1]])),
                _ => true,
            };
            if missed {
                redeliver::note(storage, pk, write());
            }
            let entry = match answer {
                Err(e) if e == "timeout" => json!({"failed": true, "timeout": true}),
                Err(_) => json!({"failed": true, "query_failure": true}),
                Ok(r) if r.len() >= 2 => {
                    let status = u16::from_be_bytes([r[0], r[1]]);
                    let text = || Value::String(String::from_utf8_lossy(&r[2..]).into_owned());
                    let body = match crate::node::workers::parse_json(r.clone(), 2).await {
                        Ok(v) => v,
                        Err(_) => text(),
                    };
                    if let (Some(m), Some(a)) = (held, Ack::from_json(&body["sispop_ack"])) {
                        if crate::storage::peer_test::keepable(node, &pk, &a, m) {
                            acks.lock().unwrap_or_else(|p| p.into_inner()).push(a);
                        }
                    }
                    match body["swarm"][pk.to_hex()].clone() {
                        // 404: a `delete` with `required` that found nothing there.
                        entry @ Value::Object(_) if status == 200 || status == 404 => entry,
                        _ => json!({"failed": true, "code": status.to_string(),
                                    "reason": body.as_str().unwrap_or_default()}),
                    }
                }
                Ok(_) => json!({"failed": true, "bad_peer_response": true}),
            };
            (pk.to_hex(), entry)
        }
    });
    let entries = futures::future::join_all(asks).await;
    let acks = std::mem::take(&mut *acks.lock().unwrap_or_else(|p| p.into_inner()));
    if let (Some(m), false) = (held, acks.is_empty()) {
        let (storage, hash) = (storage.clone(), m.hash.clone());
        let kept = tokio::task::spawn_blocking(move || storage.store.add_acks(&hash, &acks)).await;
        if let Ok(Err(e)) = kept {
            debug!(error = %e, "members' acks not kept");
        }
    }
    entries
}

/// The cursor and size of a page a member asks for (`{"after": hex|null, "max": n}`; at most
/// [`PAGE`]).
fn page_asked(req: &[u8]) -> (Option<Vec<u8>>, usize) {
    let req: Value = serde_json::from_slice(req).unwrap_or(Value::Null);
    let after = req["after"].as_str().and_then(|h| hex::decode(h).ok());
    let max = req["max"]
        .as_u64()
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(PAGE)
        .min(PAGE);
    (after, max)
}

/// Whether a request with this tag may come only from a member of our swarm.
pub(crate) fn swarm_only(tag: u8) -> bool {
    matches!(tag, FORWARD | PULL | PULL_REVOKED)
}

/// Whether `from` is a member of the swarm this node serves.
pub(crate) fn same_swarm(node: &Node, from: &PublicKey) -> bool {
    let Ok(our_swarm) = serving(node) else {
        return false;
    };
    node.lock()
        .chain
        .ext()
        .state()
        .nodes
        .get(from)
        .is_some_and(|n| n.swarm_id == our_swarm)
}

/// Whether a storage-protocol request with `tag` may be read from `from`: a swarm-only one
/// (a forward or a pull) from a member of our swarm only.
pub fn admits(node: &Node, tag: u8, from: &PublicKey) -> bool {
    !swarm_only(tag) || same_swarm(node, from)
}

/// Answers a storage request from a peer, on a blocking thread (`status u16 BE ‖ body`).
pub async fn answer_peer(
    node: Node,
    storage: Option<Arc<Storage>>,
    peer: PeerId,
    request: Vec<u8>,
) -> Vec<u8> {
    let status = |code: u16, text: &[u8]| {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(text);
        v
    };
    tokio::task::spawn_blocking(move || match storage {
        Some(storage) => on_request(&node, &storage, &peer, &request),
        None => status(503, b"no storage service on this node"),
    })
    .await
    .unwrap_or_else(|_| status(500, b"request failed"))
}

/// Answers a storage request from a peer (runs on a blocking thread).
pub fn on_request(node: &Node, storage: &Arc<Storage>, peer: &PeerId, data: &[u8]) -> Vec<u8> {
    let answer = |status: u16, body: Vec<u8>| {
        let mut v = status.to_be_bytes().to_vec();
        v.extend_from_slice(&body);
        v
    };
    let Some(from) = node.service_node_for_peer(peer) else {
        return answer(403, b"not an active service node".to_vec());
    };
    let Ok(our_swarm) = serving(node) else {
        return answer(503, b"not serving".to_vec());
    };
    let same_swarm = node
        .lock()
        .chain
        .ext()
        .state()
        .nodes
        .get(&from)
        .is_some_and(|n| n.swarm_id == our_swarm);
    let (tag, rest) = match data.split_first() {
        Some((t, r)) => (*t, r),
        None => return answer(400, b"empty request".to_vec()),
    };
    match tag {
        FORWARD if same_swarm => {
            let req: Value = serde_json::from_slice(rest).unwrap_or(Value::Null);
            let r = crate::storage::server::storage_rpc_value(node, storage, &req);
            let mut body = r.body;
            // A store: the entry's ack is kept with the message, and ours goes back.
            let stored = (r.status == 200 && req["method"] == "store")
                .then(|| sispop_storage::storage_test::stored(&req["params"], &body))
                .flatten();
            if let Some((m, at)) = stored {
                let (ours, held) = crate::storage::peer_test::our_ack(node, storage, &m, at);
                if let Some(a) = Ack::from_json(&req["sispop_ack"]) {
                    if crate::storage::peer_test::keepable(node, &from, &a, &held) {
                        if let Err(e) = storage.store.add_acks(&m.hash, &[a]) {
                            debug!(error = %e, "the entry's ack not kept");
                        }
                    }
                }
                body["sispop_ack"] = ours.to_json();
            }
            let body = match body {
                Value::String(s) => s.into_bytes(),
                v => v.to_string().into_bytes(),
            };
            answer(r.status, body)
        }
        PULL if same_swarm => {
            let (after, max) = page_asked(rest);
            match storage.store.scan(after.as_deref(), max, PULL_PAGE_BYTES) {
                Ok((msgs, next)) => {
                    let v = json!({
                        "messages": msgs.iter().map(message_to_json).collect::<Vec<_>>(),
                        "next": next.map(hex::encode),
                    });
                    answer(200, v.to_string().into_bytes())
                }
                Err(e) => answer(500, e.to_string().into_bytes()),
            }
        }
        PULL_REVOKED if same_swarm => {
            let (after, max) = page_asked(rest);
            match storage.store.revocations_after(after.as_deref(), max) {
                Ok((list, next)) => {
                    let v =
                        json!({"revoked": revocations_json(&list), "next": next.map(hex::encode)});
                    answer(200, v.to_string().into_bytes())
                }
                Err(e) => answer(500, e.to_string().into_bytes()),
            }
        }
        PUSH => {
            let req: Value = serde_json::from_slice(rest).unwrap_or(Value::Null);
            let mut msgs = owned_messages(node, our_swarm, &req["messages"]);
            // From a member of our swarm (passing on, or a missed write sent again), or handed
            // over by a node that was in the swarm owning the account in a recent layout of the
            // swarms; from anyone else, nothing.
            if !same_swarm {
                let layouts = {
                    let st = node.lock();
                    node.sn_directory(&st).layouts()
                };
                let before = msgs.len();
                msgs.retain(|m| layouts.iter().any(|l| l.holds(&from, &m.pubkey)));
                if msgs.len() < before {
                    debug!(node = %from, refused = before - msgs.len(), "pushed messages from a node that never held their accounts refused");
                }
            }
            match storage.store.store_held(&msgs) {
                Ok((new, held)) => {
                    // Revocations handed over with their accounts' messages.
                    for (acct, entries) in revocations_in(node, our_swarm, &req["revoked"]) {
                        if let Err(e) = storage.store.merge_revocations(&acct, &entries) {
                            debug!(error = %e, "handed-over revocations not kept");
                        }
                    }
                    // What is new here goes on to the rest of the swarm, so a message handed
                    // to one member (or pushed to some members only) reaches every member;
                    // not a redelivery from a member to this member alone (`"only_here"`).
                    let only_here = same_swarm && req["only_here"] == Value::Bool(true);
                    if !new.is_empty() && !only_here {
                        let fresh: Vec<Message> =
                            new.iter().filter_map(|i| msgs.get(*i).cloned()).collect();
                        if let Ok(rt) = tokio::runtime::Handle::try_current() {
                            rt.spawn(spread(node.clone(), storage.clone(), our_swarm, fresh));
                        }
                    }
                    // Signed, so the node handing them over drops only what is held here.
                    let held: Vec<&str> = held
                        .iter()
                        .filter_map(|i| msgs.get(*i).map(|m| m.hash.as_str()))
                        .collect();
                    let signature = ed25519_dalek::Signer::sign(
                        &storage.signer,
                        &held_statement(held.iter().copied()),
                    );
                    let v = json!({"stored": new.len(), "held": held,
                                   "signature": hex::encode(signature.to_bytes())});
                    answer(200, v.to_string().into_bytes())
                }
                Err(e) => answer(500, e.to_string().into_bytes()),
            }
        }
        SAMPLE => crate::storage::peer_test::answer_sample(node, storage, &from, our_swarm, rest)
            .map_or_else(
                |(code, why)| answer(code, why.into_bytes()),
                |v| answer(200, v),
            ),
        TEST => crate::storage::peer_test::answer_test(node, storage, &from, our_swarm, rest)
            .map_or_else(
                |(code, why)| answer(code, why.into_bytes()),
                |v| answer(200, v),
            ),
        FORWARD | PULL | PULL_REVOKED => answer(421, b"not a member of this swarm".to_vec()),
        _ => answer(400, b"unknown storage request".to_vec()),
    }
}

/// The hashes a member confirmed holding in its answer to a push (`{"held": [hash…],
/// "signature": hex}`, signed by its key over [`held_statement`]), among those pushed; none if
/// the answer is not a good signature of it.
pub(crate) fn confirmed(member: &PublicKey, answer: &[u8], pushed: &[&str]) -> Vec<String> {
    if answer.get(..2) != Some(&200u16.to_be_bytes()[..]) {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_slice::<Value>(&answer[2..]) else {
        return Vec::new();
    };
    let held: Vec<&str> = v["held"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // It can hold no more than what was pushed.
    if held.len() > pushed.len() {
        return Vec::new();
    }
    let signature = v["signature"]
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b));
    let key = ed25519_dalek::VerifyingKey::from_bytes(&member.0);
    let (Some(signature), Ok(key)) = (signature, key) else {
        return Vec::new();
    };
    if key
        .verify_strict(&held_statement(held.iter().copied()), &signature)
        .is_err()
    {
        return Vec::new();
    }
    let pushed: std::collections::HashSet<&str> = pushed.iter().copied().collect();
    held.into_iter()
        .filter(|h| pushed.contains(h))
        .map(str::to_owned)
        .collect()
}

/// Pushes messages that were new here to the other members of our swarm.
async fn spread(node: Node, storage: Arc<Storage>, swarm: u64, msgs: Vec<Message>) {
    let mut data = vec![PUSH];
    data.extend_from_slice(
        json!({"messages": msgs.iter().map(message_to_json).collect::<Vec<_>>()})
            .to_string()
            .as_bytes(),
    );
    let asks = peers(&node, swarm).into_iter().map(|(pk, addr)| {
        let data = data.clone();
        let (node, msgs, storage) = (&node, &msgs, &storage);
        async move {
            let failed = redeliver::pending(storage, &pk)
                || match ask(node, &pk, addr, data).await {
                    Ok(r) if r.len() >= 2 => missed_status(u16::from_be_bytes([r[0], r[1]])),
                    Ok(_) => true,
                    Err(e) => {
                        debug!(node = %pk, error = %e, "passing pushed messages on failed");
                        true
                    }
                };
            if failed {
                for m in msgs {
                    redeliver::note(storage, pk, Write::Message(m.hash.clone()));
                }
            }
        }
    });
    futures::future::join_all(asks).await;
}

/// The valid, unexpired messages in `list` whose accounts `swarm` owns.
fn owned_messages(node: &Node, swarm: u64, list: &Value) -> Vec<Message> {
    let now = crate::storage::server::now_ms();
    let ids = node.swarm_ids();
    list.as_array()
        .into_iter()
        .flatten()
        .take(PAGE)
        .filter_map(|v| match message_from_json(v) {
            Ok(m) => Some(m),
            Err(e) => {
                debug!(error = %e, "peer message refused");
                None
            }
        })
        .filter(|m| m.expiry > now && owner_among(&ids, &m.pubkey) == Some(swarm))
        .map(|mut m| {
            // No peer makes a message outlive what a client could have asked for.
            m.expiry = m.expiry.min(now.saturating_add(TTL_MAXIMUM_PRIVATE));
            m
        })
        .collect()
}

/// One page of a member's list (`tag` 2 messages or 7 revocations) from `after` on.
async fn ask_page(
    node: &Node,
    pk: &PublicKey,
    addr: Option<Multiaddr>,
    tag: u8,
    after: &Option<String>,
) -> Result<Value, String> {
    let mut data = vec![tag];
    data.extend_from_slice(json!({"after": after, "max": PAGE}).to_string().as_bytes());
    let r = ask(node, pk, addr, data).await?;
    if r.len() < 2 || r[..2] != 200u16.to_be_bytes() {
        return Err(format!(
            "refused: {}",
            String::from_utf8_lossy(r.get(2..).unwrap_or_default())
        ));
    }
    crate::node::workers::parse_json(r, 2).await
}

/// The cursor of the next page, if the page names one past `after`: the cursor must move
/// forward, so a member cannot keep us paging in place.
fn next_page(after: &Option<String>, page: &Value) -> Option<String> {
    let n = page["next"].as_str()?;
    let moved = match (after, hex::decode(n)) {
        (_, Err(_)) => false,
        (None, Ok(_)) => true,
        (Some(a), Ok(n)) => hex::decode(a).is_ok_and(|a| n > a),
    };
    moved.then(|| n.to_owned())
}

/// Revocations as a peer lists them (`[{"pubkey", "token", "t", "proof"}]`: at most those of
/// a page of accounts), by account, for the accounts `swarm` owns, each only with the
/// account's own signature on a request that revoked that token (`proof`; its timestamp is the
/// revocation's time, brought back to now if in the future). (They never push out revocations
/// held here: `MessageStore::merge_revocations`.)
fn revocations_in(node: &Node, swarm: u64, list: &Value) -> Vec<(UserPubkey, Vec<Revocation>)> {
    let now = crate::storage::server::now_ms();
    let ids = node.swarm_ids();
    let mut by_account: std::collections::BTreeMap<[u8; 33], (UserPubkey, Vec<Revocation>)> =
        Default::default();
    // The tokens of a revoke often share one request: checked once.
    let mut proven: std::collections::HashMap<(UserPubkey, String), Option<Proven>> =
        Default::default();
    for e in list
        .as_array()
        .into_iter()
        .flatten()
        .take(PAGE * MAX_REVOKED)
    {
        let (Some(acct), Some(token), Some(proof)) = (
            e["pubkey"]
                .as_str()
                .and_then(|h| UserPubkey::from_hex(h).ok()),
            e["token"]
                .as_str()
                .and_then(|t| hex::decode(t).ok())
                .and_then(|t| <[u8; TOKEN_LEN]>::try_from(t).ok()),
            e["proof"].as_str(),
        ) else {
            continue;
        };
        if owner_among(&ids, &acct) != Some(swarm) {
            continue;
        }
        let checked = proven
            .entry((acct, proof.to_owned()))
            .or_insert_with(|| proven_revocation(&acct, proof.as_bytes()));
        let Some((at, _)) = checked.as_ref().filter(|(_, toks)| toks.contains(&token)) else {
            debug!(account = %sispop_storage::pubkey_hex(&acct), "revocation without the account's signature refused");
            continue;
        };
        let mut raw = [0u8; 33];
        raw[0] = acct.prefix;
        raw[1..].copy_from_slice(&acct.key);
        by_account
            .entry(raw)
            .or_insert_with(|| (acct, Vec::new()))
            .1
            .push(Revocation {
                token,
                at: (*at).min(now),
                proof: proof.as_bytes().to_vec(),
            });
    }
    by_account.into_values().collect()
}

/// What a revocation's proof proves: its time and the tokens it revoked.
type Proven = (u64, Vec<[u8; TOKEN_LEN]>);

/// Revocations as listed between members, with their proofs.
fn revocations_json(list: &[(UserPubkey, Revocation)]) -> Vec<Value> {
    list.iter()
        .map(|(pk, r)| {
            json!({"pubkey": sispop_storage::pubkey_hex(pk), "token": hex::encode(r.token),
                   "t": r.at, "proof": String::from_utf8_lossy(&r.proof)})
        })
        .collect()
}

/// Pages through one member's list (`tag`: [`PULL`] messages or [`PULL_REVOKED`]
/// revocations), each page kept by `keep` on a blocking thread. Returns how many were new or
/// changed here.
async fn pull_pages(
    node: &Node,
    storage: &Arc<Storage>,
    swarm: u64,
    (pk, addr): (&PublicKey, Option<Multiaddr>),
    tag: u8,
    keep: fn(&Node, &Storage, u64, &Value) -> Result<usize, String>,
) -> Result<usize, String> {
    let mut after: Option<String> = None;
    let mut changed = 0;
    for _ in 0..MAX_PULL_PAGES {
        let v = ask_page(node, pk, addr.clone(), tag, &after).await?;
        let (n, s) = (node.clone(), storage.clone());
        let page = v.clone();
        changed += tokio::task::spawn_blocking(move || keep(&n, &s, swarm, &page))
            .await
            .map_err(|e| e.to_string())??;
        match next_page(&after, &v) {
            Some(n) => after = Some(n),
            None => return Ok(changed),
        }
    }
    Ok(changed)
}

/// Keeps the messages of a pulled page that our swarm owns.
fn keep_messages(
    node: &Node,
    storage: &Storage,
    swarm: u64,
    page: &Value,
) -> Result<usize, String> {
    let msgs = owned_messages(node, swarm, &page["messages"]);
    storage.store.bulk_store(&msgs).map_err(|e| e.to_string())
}

/// Keeps the revocations of a pulled page for accounts our swarm owns that hold messages here.
fn keep_revocations(
    node: &Node,
    storage: &Storage,
    swarm: u64,
    page: &Value,
) -> Result<usize, String> {
    let mut n = 0;
    for (acct, entries) in revocations_in(node, swarm, &page["revoked"]) {
        n += storage
            .store
            .merge_revocations(&acct, &entries)
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
}
