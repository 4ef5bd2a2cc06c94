//! The relay service, wired: onion requests enter at `POST /onion_req/v2` on the storage HTTPS
//! port (from anyone: clients are not service nodes), travel between service nodes on the
//! SN-only storage protocol (tag 6, the layer bencoded as upstream's `sn.onion_request`), and
//! end at a node's own storage RPC or at an HTTP server the last node calls. The layer
//! handling itself is [`sispop_relay::hop`]'s.
//!
//! - Only an active service node relays: otherwise 503, at the entry and between nodes.
//! - A layer goes on only to an active service node on our list, never back to this node or
//!   to the node it came from (a loop); otherwise an error reply and nothing is sent.
//! - Each hop waits at most 30 s for the next (504 `Request time out`); the HTTP destination
//!   gets 25 s and may answer at most 10 MiB. Outside devnet, HTTP destinations that resolve
//!   to private, loopback or otherwise non-public addresses are refused.
//! - At most [`IN_FLIGHT`] requests are in hand at once (503 beyond); layers are peeled on a
//!   pool of threads (one per core, or `--max-concurrency`) with a bounded queue (503 when
//!   full).
//!
//! Replies pass back unchanged: status and body. An error before a layer is open is plaintext;
//! after it, it is encrypted for the client (reference `storage-and-onion.md` §5.5).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use libp2p::PeerId;
use sispop_chain::PublicKey;
use sispop_relay::hop::{self, Hop, HopError, Layer, NodeKey, Protocol, Reply};
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::debug;

use crate::node::workers::{Refused, Workers};
use crate::node::Node;
use crate::p2p::link::LinkError;
use crate::storage::server::{serve_rpc_then, serving, Storage};

pub use crate::p2p::wire::tags::ONION;
/// How long a hop waits for the next node.
const HOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the last node waits for an HTTP destination (below the hop timeout).
const URL_TIMEOUT: Duration = Duration::from_secs(25);
/// The largest answer taken from an HTTP destination.
const MAX_URL_REPLY: usize = 10 * 1024 * 1024;
/// Onion requests this node handles at once, as entry or hop.
pub const IN_FLIGHT: usize = 2048;
/// Requests to HTTP destinations in hand at once (each may wait 25 s, its name lookup on a
/// blocking thread).
const HTTP_IN_FLIGHT: usize = 64;
/// Threads that peel layers at most (with one per core, or the node's `--max-concurrency`).
const MAX_WORKERS: usize = 8;
/// Layers waiting for a thread.
const QUEUE: usize = 4096;

/// The relay service of a running service node.
pub struct Relay {
    key: NodeKey,
    me: PublicKey,
    workers: Workers,
    slots: Arc<tokio::sync::Semaphore>,
    http_slots: tokio::sync::Semaphore,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl Relay {
    /// The relay of the service node with this Ed25519 seed, peeling layers on `threads`
    /// threads (0: one per core), at most [`MAX_WORKERS`].
    pub fn start(seed: &[u8; 32], threads: usize) -> anyhow::Result<Relay> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if threads == 0 { cores } else { threads }.clamp(1, MAX_WORKERS);
        let me = PublicKey(
            ed25519_dalek::SigningKey::from_bytes(seed)
                .verifying_key()
                .to_bytes(),
        );
        Ok(Relay {
            key: NodeKey::from_ed25519_seed(seed)?,
            me,
            // Layers are peeled in the order they come (an entry's or a hop's), as many of
            // one client's as the queue holds: what bounds them is `IN_FLIGHT`.
            workers: Workers::start_with("onion", workers, QUEUE, QUEUE)?,
            slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
            http_slots: tokio::sync::Semaphore::new(HTTP_IN_FLIGHT),
            tls: Arc::new(web_tls()?),
        })
    }
}

/// TLS for HTTP destinations: normal certificate checks against the Mozilla roots.
fn web_tls() -> anyhow::Result<tokio_rustls::rustls::ClientConfig> {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(
        tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Nonces of replies: the thread's generator (ChaCha12, reseeded from the system's), not a
/// system call per reply.
fn rng() -> rand::rngs::ThreadRng {
    rand::thread_rng()
}

/// A place among the onion requests this node handles at once; `None` when all are taken.
/// The entry takes it before it reads the request body.
pub fn slot(relay: &Relay) -> Option<tokio::sync::OwnedSemaphorePermit> {
    relay.slots.clone().try_acquire_owned().ok()
}

/// The answer when no [`slot`] is free.
pub fn busy() -> Reply {
    Reply::plain(503, "Server busy, try again later")
}

/// The entry the storage port hands onion requests to (set at start-up): a request takes its
/// place among those in hand once its body is here (a slow sender holds none), else 503.
pub fn at_entry(relay: Arc<Relay>) -> crate::storage::server::OnionEntry {
    Arc::new(
        move |node: Node, storage: Arc<Storage>, body: Bytes, client: IpAddr| {
            let relay = relay.clone();
            Box::pin(async move {
                let Some(_slot) = slot(&relay) else {
                    let r = busy();
                    return (r.status, r.body);
                };
                let r = entry(&node, &relay, &storage, body, client).await;
                (r.status, r.body)
            })
        },
    )
}

/// A request from a client at `/onion_req/v2` (the caller holds a [`slot`]), from `client`.
pub async fn entry(
    node: &Node,
    relay: &Arc<Relay>,
    storage: &Arc<Storage>,
    body: Bytes,
    client: IpAddr,
) -> Reply {
    if let Err(why) = serving(node) {
        return Reply::plain(503, &format!("Service node is not ready: {why}\n"));
    }
    // Parsed on a worker with the peel (a client may send 10 MiB of JSON).
    let open = move || hop::parse_entry(&body).map_err(|e| e.reply(&mut rng()));
    let r = process(node, relay, storage, open, Came::Client(client)).await;
    node.metrics.onion("entry", r.status);
    r
}

/// A layer from another service node (`request` is the tag and the layer); the answer is
/// `status u16 BE ‖ body`.
pub async fn on_hop(
    node: &Node,
    relay: &Arc<Relay>,
    storage: &Arc<Storage>,
    peer: &PeerId,
    request: Vec<u8>,
) -> Vec<u8> {
    let r = hop_reply(node, relay, storage, peer, request).await;
    node.metrics.onion("hop", r.status);
    let mut out = r.status.to_be_bytes().to_vec();
    out.extend_from_slice(&r.body);
    out
}

async fn hop_reply(
    node: &Node,
    relay: &Arc<Relay>,
    storage: &Arc<Storage>,
    peer: &PeerId,
    request: Vec<u8>,
) -> Reply {
    let Some(from) = node.service_node_for_peer(peer) else {
        return Reply::plain(403, "not an active service node");
    };
    if serving(node).is_err() {
        return Reply::plain(503, &format!("Snode not ready: {}", relay.me.to_hex()));
    }
    let Ok(_slot) = relay.slots.try_acquire() else {
        return busy();
    };
    // Decoded on a worker with the peel (a layer may be 10 MiB).
    let open = move || {
        hop::decode_layer(request.get(1..).unwrap_or_default())
            .map_err(|e| Reply::plain(400, &format!("Invalid internal onion request: {e}")))
    };
    process(node, relay, storage, open, Came::Node(from)).await
}

/// Where a layer came from.
#[derive(Clone, Copy)]
enum Came {
    /// A client, at the entry.
    Client(IpAddr),
    /// The previous hop.
    Node(PublicKey),
}

/// Opens a layer (`open` reads it from the request, on a worker with the peel: an error there
/// is the reply) and does what it asks.
async fn process(
    node: &Node,
    relay: &Arc<Relay>,
    storage: &Arc<Storage>,
    open: impl FnOnce() -> Result<Layer, Reply> + Send + 'static,
    came: Came,
) -> Reply {
    let from = match came {
        Came::Node(pk) => Some(pk),
        Came::Client(_) => None,
    };
    let r = relay.clone();
    let salt = node.params.onion_gcm_salt;
    let peeled = move || {
        let layer = open()?;
        hop::peel(&r.key, &layer, salt).map_err(|e| {
            debug!(error = %e, "onion layer refused");
            e.reply(&mut rng())
        })
    };
    let hop = match relay.workers.run(peeled).await {
        Ok(Ok(h)) => h,
        Ok(Err(reply)) => return reply,
        Err(why) => return refused(why),
    };
    match hop {
        // A request that ends at its first hop reaches storage straight from the client, whose
        // address is known here: it is held to the client's storage rate, as a direct one is.
        Hop::Final { key, opts, .. } if matches!(came, Came::Client(ip) if !storage.allow(ip)) => {
            let limited = sispop_storage::rpc::Reply {
                status: 429,
                body: serde_json::json!("Too Many Requests"),
            };
            key.wrap(limited.status, &limited.body, opts, &mut rng())
        }
        Hop::Final { request, opts, key } => {
            // Encrypting a large answer is real work: off the executor, on the storage worker
            // that made it when it is final there, else on ours.
            let wrap = move |a: sispop_storage::rpc::Reply, _room: crate::storage::server::Room| {
                key.wrap(a.status, &a.body, opts, &mut rng())
            };
            // In turn with the other clients: the onion client's, or the previous hop's.
            let whose = match came {
                Came::Client(ip) => crate::storage::server::Client::from(ip).key(),
                Came::Node(pk) => u64::from_le_bytes(pk.0[..8].try_into().unwrap_or_default()),
            };
            match serve_rpc_then(node, storage, whose, Bytes::from(request), wrap).await {
                Ok(r) => r,
                Err((answer, room, Some(wrap))) => relay
                    .workers
                    .run(move || wrap(answer, room))
                    .await
                    .unwrap_or_else(refused),
                Err((_, _, None)) => refused(Refused::Died),
            }
        }
        Hop::Relay { next, layer, .. } => forward(node, relay, from, PublicKey(next), layer).await,
        Hop::Http {
            protocol,
            host,
            port,
            target,
            plaintext,
            key,
        } => {
            let to = Url {
                protocol,
                host,
                port,
                target,
            };
            let Ok(_http) = relay.http_slots.try_acquire() else {
                return busy();
            };
            // Boxed, as the other rare paths: a request's future (copied when its task is
            // spawned) stays the size of the common one.
            match Box::pin(http(node, relay, &to, plaintext)).await {
                Ok(r) => r,
                Err(UrlError::Refused) => HopError::Url(key).reply(&mut rng()),
                Err(UrlError::Timeout) => Reply::plain(504, "Request time out"),
                Err(UrlError::Failed(e)) => Reply::plain(502, &e),
            }
        }
    }
}

/// A status passed back from the next node or an HTTP server: a final one (200–599), else 502
/// (an informational or bodiless status would not carry the body back).
fn relayed(status: u16) -> u16 {
    if (200..=599).contains(&status) && status != 204 && status != 304 {
        status
    } else {
        502
    }
}

fn refused(why: Refused) -> Reply {
    match why {
        Refused::Busy => busy(),
        Refused::Died => Reply::plain(500, "onion request failed"),
    }
}

/// Sends a layer to the next node and returns its answer.
async fn forward(
    node: &Node,
    relay: &Relay,
    from: Option<PublicKey>,
    next: PublicKey,
    layer: Layer,
) -> Reply {
    if next == relay.me || Some(next) == from {
        return Reply::plain(400, &format!("Onion path loops back to {}", next.to_hex()));
    }
    let Some(ids) = node.active_sn_ids(&next) else {
        return Reply::plain(502, &format!("Next node not found: {}", next.to_hex()));
    };
    let mut data = vec![ONION];
    data.extend_from_slice(&hop::encode_layer(&layer));
    if data.len() as u64 > crate::p2p::MAX_STORAGE_REQUEST_BYTES {
        return Reply::plain(413, "onion request too large");
    }
    // The address from the node's proof, looked up only when a connection may be needed.
    let addr = || {
        crate::storage::sync::members_with_addr(node, vec![next])
            .pop()
            .and_then(|(_, a)| a)
    };
    let peer = ids.peer;
    // On the persistent link to the next node; a node that has none takes the layer on the
    // storage protocol.
    let data = Bytes::from(data);
    let linked = match node.net.get() {
        Some(net) => {
            net.links
                .ask(node, peer, &addr, data.clone(), HOP_TIMEOUT)
                .await
        }
        None => Err(LinkError::Unsupported),
    };
    let answer = match linked {
        Ok(a) => Ok(a),
        Err(LinkError::Timeout) => Err("timeout".to_owned()),
        Err(LinkError::Failed(e)) => Err(e),
        Err(LinkError::Unsupported) => {
            let data = Vec::from(data);
            Box::pin(crate::storage::sync::ask_within(
                node,
                &next,
                addr(),
                data,
                HOP_TIMEOUT,
            ))
            .await
        }
    };
    match answer {
        Ok(r) if r.len() >= 2 => Reply {
            status: relayed(u16::from_be_bytes([r[0], r[1]])),
            body: r[2..].to_vec(),
        },
        Ok(_) => Reply::plain(500, "Invalid response from snode"),
        Err(e) if e == "timeout" => Reply::plain(504, "Request time out"),
        Err(e) => {
            debug!(next = %next, error = %e, "onion hop failed");
            Reply::plain(502, &format!("Next node unreachable: {}", next.to_hex()))
        }
    }
}

struct Url {
    protocol: Protocol,
    host: String,
    port: u16,
    target: String,
}

enum UrlError {
    /// Not a destination this node calls.
    Refused,
    Timeout,
    Failed(String),
}

/// Whether an address is one the public internet routes (what non-devnet nodes may call).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, shared address space
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = a.segments();
            // Only global unicast (2000::/3), less the ranges that embed or translate IPv4
            // (6to4, Teredo, NAT64) and documentation.
            (s[0] & 0xe000) == 0x2000
                && s[0] != 0x2002 // 6to4
                && !(s[0] == 0x2001 && s[1] == 0) // Teredo
                && !(s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                && !(s[0] == 0x2001 && s[1] < 0x0200) // other IETF protocol assignments
        }
    }
}

/// Calls an HTTP destination with the layer's plaintext; its status and body come back as
/// they are.
async fn http(node: &Node, relay: &Relay, to: &Url, plaintext: Vec<u8>) -> Result<Reply, UrlError> {
    let devnet = node.params.network == sispop_chain::params::Network::Devnet;
    let work = async {
        let host = to.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, to.port))
            .await
            .map_err(|e| UrlError::Failed(format!("cannot resolve {host}: {e}")))?
            .collect();
        let Some(addr) = addrs.into_iter().find(|a| devnet || is_public(a.ip())) else {
            return Err(UrlError::Refused);
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| UrlError::Failed(format!("connecting to {addr}: {e}")))?;
        let default_port = match to.protocol {
            Protocol::Http => 80,
            Protocol::Https => 443,
        };
        let authority = if to.port == default_port {
            to.host.clone()
        } else {
            format!("{}:{}", to.host, to.port)
        };
        let req = hyper::Request::post(to.target.as_str())
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("Sispop Storage Server/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(plaintext)))
            .map_err(|e| UrlError::Failed(e.to_string()))?;
        let resp = match to.protocol {
            Protocol::Http => send(hyper_util::rt::TokioIo::new(tcp), req).await?,
            Protocol::Https => {
                let name = ServerName::try_from(host.to_owned()).map_err(|_| UrlError::Refused)?;
                let tls = tokio_rustls::TlsConnector::from(relay.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| UrlError::Failed(format!("TLS with {}: {e}", to.host)))?;
                send(hyper_util::rt::TokioIo::new(tls), req).await?
            }
        };
        Ok(resp)
    };
    tokio::time::timeout(URL_TIMEOUT, work)
        .await
        .map_err(|_| UrlError::Timeout)?
}

async fn send<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<Reply, UrlError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| UrlError::Failed(e.to_string()))?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| UrlError::Failed(e.to_string()))?;
    let status = relayed(resp.status().as_u16());
    let body = Limited::new(resp.into_body(), MAX_URL_REPLY)
        .collect()
        .await
        .map_err(|e| UrlError::Failed(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Reply {
        status,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for a in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "2a00:1450::1"] {
            assert!(is_public(a.parse().expect("ip")), "{a}");
        }
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::7f00:1",
            "2002:7f00:1::1",
            "2001:0:7f00:1::1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "fec0::1",
            "100::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(a.parse().expect("ip")), "{a}");
        }
    }

    use crate::testnode::TestNode;
    use sispop_relay::client::{build, open_answer, Answer, Destination, Node as PathNode};
    use sispop_relay::crypto::EncType;

    /// A request that ends at its first hop reaches storage straight from the client: it is
    /// held to the client's storage rate (429 past it, encrypted like any answer), and another
    /// client is not.
    #[tokio::test]
    async fn a_one_hop_onion_is_held_to_the_clients_storage_rate() {
        let t = TestNode::new(&[7, 7, 7], |_, _| {});
        let me = PathNode::from_ed25519(t.members[0].pk.0).expect("a node key");
        let request = br#"{"method": "info", "params": {}}"#;
        let ask = |ip: IpAddr| {
            let (node, storage, relay) = (t.node.clone(), t.storage.clone(), t.relay.clone());
            async move {
                let built = build(
                    &[me],
                    &Destination::Storage,
                    request,
                    EncType::XChaCha20,
                    node.params.onion_gcm_salt,
                    &mut rand::rngs::OsRng,
                    None,
                )
                .expect("built");
                let r = entry(&node, &relay, &storage, Bytes::from(built.body), ip).await;
                match open_answer(&built.reply, r.status, &r.body).expect("opens") {
                    Answer::Destination { status, .. } => status,
                    Answer::Path { status, text } => panic!("{status} {text}"),
                }
            }
        };
        let greedy: IpAddr = "10.1.1.1".parse().expect("ip");
        assert_eq!(ask(greedy).await, 200);
        // Its burst spent (as by direct requests: the same budget)...
        while t.storage.allow(greedy) {}
        assert_eq!(ask(greedy).await, 429);
        assert_eq!(ask("10.2.2.2".parse().expect("ip")).await, 200);
    }
}
