//! The storage HTTPS endpoint: `POST /storage_rpc/v1` on `--storage-port`, TLS with a
//! self-signed certificate made at first start and kept in the data dir (rustls + rcgen).
//!
//! A request is served only while this node is an active service node (otherwise 503), and
//! only for accounts its swarm owns (otherwise 421 with the owning swarm, as upstream). The
//! methods themselves are `sispop_storage::rpc`'s, run on a blocking thread. Expired messages
//! are swept every 10 s.
//!
//! Each client IP may make 300 requests a second with bursts of 600 (429 beyond, as upstream).
//! What a client may hold of the port (connections, large bodies and answers, time to send or
//! read them) is bounded by [`clients`]; bodies are read within a deadline, and an onion
//! request takes its place among those in hand only once its body is here.
//! Writes are replicated to the rest of the swarm by [`crate::storage::sync`]; other nodes test
//! that this one keeps them through [`crate::storage::peer_test`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sispop_storage::ratelimit::RateLimiter;
use sispop_storage::rpc::{self, Context, Reply};
use sispop_storage::store::{Limits, MessageStore};
use sispop_storage::UserPubkey;
use sispop_swarm::UNASSIGNED_SWARM_ID;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::node::workers::{Refused, Workers};
use crate::node::Node;

mod clients;
#[cfg(test)]
mod tests;
pub use clients::{Answer, Client, Clients, Room};

/// Client requests waiting for a worker; beyond this many the server answers 503.
const QUEUE: usize = 4096;
/// Threads that run client requests (parsing, signatures, the store).
const WORKERS: usize = 4;
/// Room taken for an answer that may be large: the messages of one answer at most, and the
/// rest of its JSON.
const LARGE_ANSWER: usize = sispop_storage::rpc::ANSWER_MAX_SIZE as usize + clients::SMALL;

/// Whether `req` may retrieve messages (a retrieve, a batch or sequence holding one, or an
/// `ifelse` either of whose branches may).
fn may_retrieve(req: &Value) -> bool {
    match req["method"].as_str().unwrap_or("") {
        "retrieve" => true,
        "batch" | "sequence" => req["params"]["requests"]
            .as_array()
            .is_some_and(|subs| subs.iter().any(|s| s["method"] == "retrieve")),
        "ifelse" => ["then", "else"]
            .iter()
            .any(|b| req["params"].get(b).is_some_and(may_retrieve)),
        _ => false,
    }
}

/// The bytes of messages an answer made in `room` may hold: [`ANSWER_MAX_SIZE`] in a large
/// room; in a small one, what keeps its JSON small (upstream's cost of a message is more than
/// its JSON).
///
/// [`ANSWER_MAX_SIZE`]: sispop_storage::rpc::ANSWER_MAX_SIZE
fn messages_in(room: &Room) -> sispop_storage::rpc::AnswerBudget {
    sispop_storage::rpc::AnswerBudget::new(room.bytes().saturating_sub(clients::SMALL / 2) as u64)
}

/// Largest request body (upstream: 10 MiB, else 413).
const MAX_BODY: usize = 10 * 1024 * 1024;
/// A TLS handshake and the request head must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often expired messages are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The storage service of a running daemon.
pub struct Storage {
    /// The messages.
    pub store: MessageStore,
    /// This node's Ed25519 key (it signs results and confirmations).
    pub(crate) signer: ed25519_dalek::SigningKey,
    /// Per-client-IP request budget (upstream: 300/s, bursts of 600).
    limiter: std::sync::Mutex<RateLimiter>,
    /// What serving needs from the chain, as of one tip.
    route: std::sync::Mutex<Option<Arc<Route>>>,
    /// When inserts happened, for storage-test sampling (noted at every sweep).
    pub arrivals: std::sync::Mutex<sispop_storage::storage_test::Arrivals>,
    /// The threads that run client requests.
    workers: Workers,
    /// Writes swarm members missed, to deliver again.
    pub missed: std::sync::Mutex<crate::storage::redeliver::Missed>,
    /// Client connections and the memory they hold.
    pub clients: Arc<Clients>,
    /// What takes the onion requests that enter at this port: the relay service's entry,
    /// given at start-up (without it, 503).
    pub onion_entry: std::sync::OnceLock<OnionEntry>,
}

/// The entry of onion requests at `/onion_req/v2` (the relay's: this service knows nothing of
/// onions): the body and the client's address in, the status and body of the answer out.
pub type OnionEntry = Arc<
    dyn Fn(
            Node,
            Arc<Storage>,
            Bytes,
            std::net::IpAddr,
        ) -> futures::future::BoxFuture<'static, (u16, Vec<u8>)>
        + Send
        + Sync,
>;

/// What serving a request needs from the chain: computed once per block, not per request.
struct Route {
    tip: sispop_chain::BlockHash,
    height: u64,
    hf: u64,
    /// Our swarm, or why we do not serve.
    serving: Result<u64, String>,
    /// The swarms with active members, sorted.
    ids: Arc<[u64]>,
}

impl Storage {
    /// Room for the answer to `req`, taken before it runs: [`LARGE_ANSWER`] from the answer
    /// budget when it may retrieve messages, none otherwise (or when the budget has not that
    /// much left). Its answer is made and held in that room until written, so the answers
    /// being made count against the budget as well as those being written: when clients that
    /// do not read their answers hold it, a retrieve answers what fits a small answer with
    /// `"more": true` at once, instead of building megabytes that would wait for their turn
    /// or be refused.
    pub fn room_for(&self, req: &Value) -> Room {
        if may_retrieve(req) {
            self.clients.room(LARGE_ANSWER)
        } else {
            Room::none()
        }
    }

    /// The swarms with active members, sorted, as of the current tip.
    pub fn swarm_ids(&self, node: &Node) -> Arc<[u64]> {
        self.route(node).ids.clone()
    }

    fn route(&self, node: &Node) -> Arc<Route> {
        let st = node.lock();
        let (height, tip) = st.chain.tip();
        let mut cached = self.route.lock().unwrap_or_else(|p| p.into_inner());
        match cached.as_ref() {
            Some(r) if r.tip == tip => r.clone(),
            _ => {
                let r = Arc::new(Route {
                    tip,
                    height: height.0,
                    hf: u64::from(node.params.hard_fork_at(height)),
                    serving: serving_in(&st),
                    ids: node.sn_directory(&st).swarm_ids(),
                });
                *cached = Some(r.clone());
                r
            }
        }
    }

    /// Whether a client's request is within its rate (and counts it).
    pub(crate) fn allow(&self, client: std::net::IpAddr) -> bool {
        // Per client as the connections are counted: an IPv6 /64 is one.
        let client = match Client::from(client) {
            Client::V4(v4) => std::net::IpAddr::V4(v4),
            Client::V6(prefix) => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::from(u128::from(prefix) << 64))
            }
        };
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(client, now_ms().saturating_mul(1000))
    }
}

/// Loads the TLS key and certificate from the data dir, making them on first start.
fn tls(data_dir: &Path) -> anyhow::Result<tokio_rustls::rustls::ServerConfig> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert_path = data_dir.join("storage-tls-cert.der");
    let key_path = data_dir.join("storage-tls-key.der");
    if !cert_path.exists() || !key_path.exists() {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .context("making the storage TLS certificate")?;
        write_private(&key_path, c.key_pair.serialized_der())?;
        std::fs::write(&cert_path, c.cert.der())
            .with_context(|| format!("writing {}", cert_path.display()))?;
        info!(cert = %cert_path.display(), "made a self-signed storage TLS certificate");
    }
    let cert =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .context("the storage TLS key or certificate is unusable")?;
    Ok(cfg)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub use crate::node::directory::{owner_among, swarm_ids};

/// The swarm that owns `pubkey` and the `get_swarm` answer for it, with each member's
/// addresses from its last uptime proof.
pub fn swarm_answer(node: &Node, pubkey: &UserPubkey) -> (Option<u64>, Value) {
    let st = node.lock();
    let state = st.chain.ext().state();
    let Some(swarm) = owner_among(&node.sn_directory(&st).swarm_ids(), pubkey) else {
        return (
            None,
            json!({"snodes": [], "swarm": format!("{:x}", UNASSIGNED_SWARM_ID)}),
        );
    };
    // What the answer needs, gathered under the locks; the JSON is made after.
    type Member = (
        sispop_chain::PublicKey,
        Option<[u8; 32]>,
        Option<(std::net::Ipv4Addr, u16, u16)>,
    );
    let members: Vec<Member> = {
        let dir = node.sn_directory(&st);
        let acct = node.acct();
        state
            .active()
            .filter(|(_, n)| n.swarm_id == swarm)
            .map(|(pk, _)| {
                let proof = acct.book.get(pk).and_then(|r| r.proof.as_ref());
                (
                    *pk,
                    dir.by_key(pk).map(|ids| ids.x25519),
                    proof.map(|p| (p.public_ip, p.storage_https_port, p.storage_omq_port)),
                )
            })
            .collect()
    };
    drop(st);
    let snodes: Vec<Value> = members
        .into_iter()
        .map(|(pk, x, proof)| {
            let (ip, https, omq) = proof.map_or_else(
                || ("0.0.0.0".to_owned(), 0, 0),
                |(ip, https, omq)| (ip.to_string(), https, omq),
            );
            json!({
                "pubkey_legacy": pk.to_hex(),
                "pubkey_ed25519": pk.to_hex(),
                "pubkey_x25519": x.map(hex::encode).unwrap_or_default(),
                "ip": ip,
                "port": https.to_string(),
                "port_https": https,
                "port_omq": omq,
                "port_quic": omq,
            })
        })
        .collect();
    (
        Some(swarm),
        json!({"snodes": snodes, "swarm": format!("{swarm:x}")}),
    )
}

/// Whether this node may serve now: an active service node. Returns its swarm.
pub fn serving(node: &Node) -> Result<u64, String> {
    serving_in(&node.lock())
}

fn serving_in(st: &crate::node::NodeState) -> Result<u64, String> {
    let Some(keys) = st.sn_keys.as_ref() else {
        return Err("not a service node".into());
    };
    match st.chain.ext().state().nodes.get(&keys.primary) {
        Some(n) if n.is_active() => Ok(n.swarm_id),
        Some(n) if n.is_decommissioned() => Err("decommissioned".into()),
        Some(_) => Err("awaiting contributions".into()),
        None => Err("not registered".into()),
    }
}

fn respond(status: u16, body: &Value) -> Response<Bytes> {
    let (text, ctype) = match body {
        Value::String(s) => (s.clone(), "text/plain; charset=utf-8"),
        // `Display` is serde_json's own compiled serialiser of a `Value`: `to_string` would be
        // instantiated here, unoptimised in a debug build (12 times slower on a 7.8 MB answer,
        // a second of a worker on a loaded devnet).
        other => (other.to_string(), "application/json"),
    };
    let mut r = Response::new(Bytes::from(text));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

/// An answer to send: a large one takes its share of the answer budget until written, and is
/// 503 when that is spent.
fn deliver(storage: &Storage, r: Response<Bytes>) -> Response<Answer> {
    deliver_in(storage, r, Room::none())
}

/// [`deliver`] for an answer made in `room`.
fn deliver_in(storage: &Storage, r: Response<Bytes>, room: Room) -> Response<Answer> {
    let (parts, bytes) = r.into_parts();
    match storage.clients.answer_in(bytes, room) {
        Some(body) => Response::from_parts(parts, body),
        None => busy_answer(),
    }
}

fn busy_answer() -> Response<Answer> {
    let (parts, bytes) = respond(503, &json!("Server busy, try again later")).into_parts();
    Response::from_parts(parts, Answer::small(bytes))
}

/// The accounts a request names (one, or one per subrequest of a batch or sequence, or of
/// both branches of an `ifelse`).
fn accounts(req: &Value) -> Vec<UserPubkey> {
    let params = &req["params"];
    match req["method"].as_str() {
        Some("ifelse") => ["then", "else"]
            .iter()
            .flat_map(|b| accounts(&params[*b]))
            .collect(),
        Some("batch" | "sequence") => params["requests"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| rpc::request_pubkey(&r["params"]))
                    .collect()
            })
            .unwrap_or_default(),
        _ => rpc::request_pubkey(params).into_iter().collect(),
    }
}

/// Serves one request on this node alone (the stake gate, the swarm check, the method).
pub fn storage_rpc(node: &Node, storage: &Storage, body: &[u8]) -> Reply {
    match serde_json::from_slice::<Value>(body) {
        Ok(req) => storage_rpc_value(node, storage, &req),
        // The stake gate comes first, as for any other request.
        Err(_) => match &storage.route(node).serving {
            Err(why) => Reply {
                status: 503,
                body: Value::String(format!("Service node is not ready: {why}")),
            },
            Ok(_) => Reply {
                status: 400,
                body: json!("invalid json"),
            },
        },
    }
}

/// [`storage_rpc`] for a parsed body.
pub fn storage_rpc_value(node: &Node, storage: &Storage, req: &Value) -> Reply {
    storage_rpc_within(node, storage, req, &Default::default())
}

/// [`storage_rpc_value`], its messages within what is left of `answer` (the budget of the
/// whole answer it is part of: a `sequence`'s subrequests share one).
pub fn storage_rpc_within(
    node: &Node,
    storage: &Storage,
    req: &Value,
    answer: &sispop_storage::rpc::AnswerBudget,
) -> Reply {
    let route = storage.route(node);
    let hf = route.hf;
    let misc = |mut v: Value| {
        v["t"] = json!(now_ms());
        v["hf"] = json!([hf, 0]);
        v
    };
    let our_swarm = match &route.serving {
        Ok(s) => *s,
        Err(why) => {
            return Reply {
                status: 503,
                body: Value::String(format!("Service node is not ready: {why}")),
            }
        }
    };
    if let Some("get_swarm" | "get_snodes_for_pubkey") = req["method"].as_str() {
        return match rpc::request_pubkey(&req["params"]) {
            Some(pk) => Reply {
                status: 200,
                body: misc(swarm_answer(node, &pk).1),
            },
            None => Reply {
                status: 400,
                body: Value::String(
                    "invalid request: Pubkey must be 66 hex digits (33 bytes) long".into(),
                ),
            },
        };
    }
    for pk in accounts(req) {
        if owner_among(&route.ids, &pk) != Some(our_swarm) {
            return Reply {
                status: 421,
                body: misc(swarm_answer(node, &pk).1),
            };
        }
    }
    let oxend = |endpoint: &str, params: &Value| match endpoint {
        "get_service_nodes" => crate::rpc::service_nodes::get_service_nodes_json(node, params),
        // No name system on Sispop's networks.
        _ => Err(format!("{endpoint} is not available on this network")),
    };
    let ctx = Context {
        now_ms: now_ms(),
        hf: [hf, 0],
        height: route.height,
        signer: &storage.signer,
        oxend: &oxend,
        answer,
    };
    rpc::handle_value(&storage.store, &ctx, req)
}

async fn handle(
    node: Node,
    storage: Arc<Storage>,
    client: std::net::IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Answer>, Infallible> {
    Ok(handle_bytes(&node, &storage, client, req).await)
}

async fn handle_bytes(
    node: &Node,
    storage: &Arc<Storage>,
    client: std::net::IpAddr,
    req: Request<Incoming>,
) -> Response<Answer> {
    let small = |status: u16, text: &str| deliver(storage, respond(status, &json!(text)));
    let onion = req.uri().path() == "/onion_req/v2";
    // Onion requests are not limited per IP (upstream): the entry is all a relay sees of its
    // clients (a request that ends here, at its first hop, is: the relay's entry).
    if !onion && !storage.allow(client) {
        return small(429, "Too Many Requests");
    }
    if !onion && req.uri().path() != "/storage_rpc/v1" {
        return small(404, "not found");
    }
    if req.method() != Method::POST {
        return small(405, "use POST");
    }
    // A body larger than allowed is refused before it is read; a large one needs room in the
    // budget of large bodies, and every one must arrive within the deadline.
    let len = hyper::body::Body::size_hint(req.body()).exact();
    if len.is_some_and(|l| l > MAX_BODY as u64) {
        // Read past, not kept (up to the limit, within the deadline), so that a client still
        // writing it reads the 413 rather than a broken connection.
        let mut body = req.into_body();
        let drain = async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > MAX_BODY {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(clients::BODY_DEADLINE, drain).await;
        return small(413, "request body too large");
    }
    let Ok(_room) = storage.clients.body_room(len, MAX_BODY) else {
        return small(503, "Server busy, try again later");
    };
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout(clients::BODY_DEADLINE, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return small(413, "request body too large"),
        Err(_) => return small(408, "request body timed out"),
    };
    if onion {
        let Some(entry) = storage.onion_entry.get() else {
            return small(503, "Service node is not ready: no relay service\n");
        };
        let (status, body) = entry(node.clone(), storage.clone(), body, client).await;
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return deliver(storage, resp);
    }
    serve_client_rpc(node, storage, clients::Client::from(client).key(), body).await
}

/// Answers the body of a `/storage_rpc/v1` request from `whose` (its client key). The answer
/// (up to [`LARGE_ANSWER`] of JSON) is serialised on a worker, never on the executor: on the
/// worker that made it when nothing is left to do here, else on one taken in turn with the
/// client's other requests (a write, or a `batch` holding writes, comes back here to go on to
/// the swarm first). It is made and held in the room taken for it ([`Storage::room_for`]).
async fn serve_client_rpc(
    node: &Node,
    storage: &Arc<Storage>,
    whose: u64,
    body: Bytes,
) -> Response<Answer> {
    let s = storage.clone();
    let answer = move |r: Reply, room: Room| {
        debug_assert!(
            crate::node::workers::is_off_executor(),
            "a storage answer is serialised on the executor"
        );
        deliver_in(&s, respond(r.status, &r.body), room)
    };
    let refused_answer = |why| {
        let r = refused(why);
        deliver(storage, respond(r.status, &r.body))
    };
    match serve_rpc_then(node, storage, whose, body, answer).await {
        Ok(resp) => resp,
        // The answer to a write already made is given even when the queue is full.
        Err((r, room, Some(answer))) => {
            match storage
                .workers
                .run_or_give_back(whose, move || answer(r, room))
                .await
            {
                Ok(done) => done.unwrap_or_else(refused_answer),
                Err(back) => crate::node::workers::off_executor(back)
                    .await
                    .unwrap_or_else(refused_answer),
            }
        }
        Err((_, _, None)) => refused_answer(Refused::Died),
    }
}

/// Serves a client's storage request as `/storage_rpc/v1` does (on a worker thread, in turn
/// with other clients': `client` says whose), writes replicated to the rest of the swarm;
/// and `finish` applied to the answer and the room it was made in ([`Storage::room_for`]) on
/// the worker thread that made it, in the same job, when nothing is left to do on the
/// executor (the answer to anything but a write to pass on to the swarm): one hand-off between
/// threads instead of two. Otherwise the answer comes back with its room and `finish`, for the
/// caller to apply where it would have; `None` if a job that took it died.
pub async fn serve_rpc_then<T, F>(
    node: &Node,
    storage: &Arc<Storage>,
    client: u64,
    body: Bytes,
    finish: F,
) -> Result<T, (Reply, Room, Option<F>)>
where
    T: Send + 'static,
    F: FnOnce(Reply, Room) -> T + Send + 'static,
{
    enum Job<T> {
        Done(T),
        Local(Reply, Value, Room),
        Sequence(Value, Room),
    }
    let started = std::time::Instant::now();
    // Where the job finds `finish`, and where it stays when the job does not run.
    let slot = Arc::new(std::sync::Mutex::new(Some(finish)));
    let take =
        |slot: &std::sync::Mutex<Option<F>>| slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let (n, b, s, theirs) = (node.clone(), body.clone(), storage.clone(), slot.clone());
    let done = move |n: &Node, r: Reply, room: Room, method: Option<&str>| match take(&theirs) {
        Some(f) => {
            // Counted once `finish` has run: if it died, the request is counted as failed.
            let (status, took) = (r.status, started.elapsed());
            let t = f(r, room);
            n.metrics.storage_request(method, status, took);
            Job::Done(t)
        }
        None => Job::Local(r, Value::Null, room),
    };
    // A top-level `sequence` runs here, one subrequest at a time (below); anything else runs
    // on a worker as a whole.
    let job = storage
        .workers
        .run_for(client, move || match serde_json::from_slice::<Value>(&b) {
            Ok(req) if req["method"] == "sequence" => {
                let room = s.room_for(&req);
                Job::Sequence(req, room)
            }
            Ok(req) => {
                let mut room = s.room_for(&req);
                let budget = messages_in(&room);
                let r = storage_rpc_within(&n, &s, &req, &budget);
                if crate::storage::replicate::passes_on(&req, r.status) {
                    // While its writes go on to the swarm, it holds the room of the messages
                    // it took (and the rest of its JSON), not a whole answer's.
                    let took = messages_in(&room).left().saturating_sub(budget.left());
                    room.keep(took as usize + clients::SMALL);
                    Job::Local(r, req, room)
                } else {
                    done(&n, r, room, req["method"].as_str())
                }
            }
            Err(_) => done(&n, storage_rpc(&n, &s, &b), Room::none(), None),
        })
        .await;
    let (mut reply, req, room) = match job {
        Ok(Job::Done(t)) => return Ok(t),
        Ok(Job::Local(r, req, room)) => (r, Some(req), room),
        Ok(Job::Sequence(req, room)) => (
            Box::pin(serve_sequence(node, storage, client, &req, &room)).await,
            Some(req),
            room,
        ),
        Err(why) => (refused(why), None, Room::none()),
    };
    // Writes go on to the rest of the swarm, whose signed results join ours.
    if let (Some(req), Ok(swarm)) = (&req, serving(node)) {
        if req["method"] != "sequence" {
            crate::storage::replicate::replicate(
                node,
                storage,
                swarm,
                req,
                Some(&body),
                &mut reply.status,
                &mut reply.body,
            )
            .await;
        }
    }
    let method = req.as_ref().and_then(|r| r["method"].as_str());
    node.metrics
        .storage_request(method, reply.status, started.elapsed());
    Err((reply, room, take(&slot)))
}

fn refused(why: Refused) -> Reply {
    let (status, text) = match why {
        Refused::Busy => (503, "Server busy, try again later"),
        Refused::Died => (500, "request failed"),
    };
    Reply {
        status,
        body: json!(text),
    }
}

/// A `sequence`, as upstream runs it: each subrequest runs here and goes on to the swarm
/// before the next starts (so members apply them in order), and the result with the swarm's
/// answers merged in decides whether the next runs. Every subrequest is checked first.
async fn serve_sequence(
    node: &Node,
    storage: &Arc<Storage>,
    client: u64,
    req: &Value,
    room: &Room,
) -> Reply {
    if let Err(why) = &storage.route(node).serving {
        return Reply {
            status: 503,
            body: Value::String(format!("Service node is not ready: {why}")),
        };
    }
    let subs = match rpc::subrequests(&req["params"]) {
        Ok(subs) => subs.clone(),
        Err(r) => return r,
    };
    let mut results = Vec::with_capacity(subs.len());
    // One budget for the messages of the whole answer, as for a `batch`.
    let budget = Arc::new(messages_in(room));
    for sub in subs {
        let (n, s, one, b) = (node.clone(), storage.clone(), sub.clone(), budget.clone());
        let mut r = storage
            .workers
            .run_for(client, move || storage_rpc_within(&n, &s, &one, &b))
            .await
            .unwrap_or_else(refused);
        if let Ok(swarm) = serving(node) {
            crate::storage::replicate::replicate(
                node,
                storage,
                swarm,
                &sub,
                None,
                &mut r.status,
                &mut r.body,
            )
            .await;
        }
        let failed = !(200..300).contains(&r.status);
        results.push(json!({"code": r.status, "body": r.body}));
        if failed {
            break;
        }
    }
    Reply {
        status: 200,
        body: json!({"results": results}),
    }
}

/// Opens the store and the TLS config (before the daemon starts serving anything).
pub fn open(node: &Node, data_dir: &Path) -> anyhow::Result<(Arc<Storage>, TlsAcceptor)> {
    let seed = node
        .lock()
        .sn_keys
        .as_ref()
        .map(|k| k.seed)
        .context("the storage server runs on service nodes only")?;
    let dir = data_dir.join("storage");
    if node.faults.drop_storage && dir.exists() {
        warn!("--dev-fault drop-storage: emptying the message store");
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("emptying the message store at {}", dir.display()))?;
    }
    let store = MessageStore::open(&dir, Limits::default())
        .with_context(|| format!("opening the message store at {}", dir.display()))?;
    if store.upgraded() > 0 {
        info!(
            messages = store.upgraded(),
            "message store moved to its second layout"
        );
    }
    if node.faults.drop_storage {
        store.discard_writes();
    }
    let acceptor = TlsAcceptor::from(Arc::new(tls(data_dir)?));
    Ok((
        Arc::new(Storage {
            store,
            signer: ed25519_dalek::SigningKey::from_bytes(&seed),
            limiter: std::sync::Mutex::new(RateLimiter::new()),
            route: std::sync::Mutex::new(None),
            arrivals: std::sync::Mutex::new(Default::default()),
            workers: Workers::start("storage", WORKERS, QUEUE)
                .context("starting the storage worker threads")?,
            missed: Default::default(),
            clients: Clients::new(),
            onion_entry: std::sync::OnceLock::new(),
        }),
        acceptor,
    ))
}

/// Sweeps expired messages (and kept requests whose time is up) every [`SWEEP_EVERY`], until
/// shutdown.
async fn sweep(storage: Arc<Storage>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let s = storage.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.limiter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .purge(now_ms().saturating_mul(1000));
            // Until done (a chunk at a time under the write lock), or for at most
            // half the interval: the sweep keeps up with short-lived messages.
            let began = std::time::Instant::now();
            let mut swept = 0;
            loop {
                match s.store.sweep(now_ms(), 10_000) {
                    Ok(n) => {
                        swept += n;
                        if n < 10_000 || began.elapsed() > SWEEP_EVERY / 2 {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "sweeping expired messages failed");
                        break;
                    }
                }
            }
            if swept > 0 {
                debug!(messages = swept, "expired messages swept");
            }
            // The account's requests that ended messages, once no ack can need them.
            if let Err(e) = s.store.sweep_refutations(now_ms(), 10_000) {
                warn!(error = %e, "sweeping kept requests failed");
            }
            s.arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note(now_ms(), s.store.last_seq());
        })
        .await;
    }
}

/// Serves `/storage_rpc/v1` over TLS on `listener` and sweeps expired messages, until shutdown.
pub async fn serve(
    node: Node,
    storage: Arc<Storage>,
    acceptor: TlsAcceptor,
    listener: TcpListener,
) {
    let mut stop = node.shutdown.subscribe();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    info!(
        ?addr,
        "storage server listening at https://…/storage_rpc/v1"
    );
    // Expired messages are swept on a task of their own: the accept loop never waits for it.
    tokio::spawn(sweep(storage.clone(), node.shutdown.subscribe()));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "storage accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admitted) = storage.clients.admit(peer.ip()) else {
            debug!(%peer, "storage connection refused: that client holds enough");
            continue;
        };
        let (node, storage, acceptor) = (node.clone(), storage.clone(), acceptor.clone());
        tokio::spawn(async move {
            // Every read and write, the handshake's included, must move within the timeout.
            let mut io = tokio_io_timeout::TimeoutStream::new(stream);
            io.set_read_timeout(Some(clients::READ_TIMEOUT));
            io.set_write_timeout(Some(clients::WRITE_TIMEOUT));
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(Box::pin(io)))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "storage TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let client = peer.ip();
            let svc = service_fn(move |req| handle(node.clone(), storage.clone(), client, req));
            let conn = http1::Builder::new()
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                // A request head fits in this (hyper's default lets one take about 400 KiB).
                .max_buf_size(64 * 1024)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(300), conn) => {}
                _ = admitted.closed.notified() => debug!(%peer, "storage connection pushed out by a newer client"),
            }
        });
    }
    info!("storage server stopped");
}
