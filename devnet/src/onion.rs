//! `devnet scenario onion`: onion requests through the devnet's service nodes, good and bad.
//!
//! 1. For each encryption type, a message stored through one fresh 3-hop path comes back from
//!    another member of its swarm through another path.
//! 2. An HTTP destination (a server this scenario runs on 127.0.0.1, which opens its layer as
//!    an open group server would) gets the request and its encrypted answer reaches the client.
//! 3. Malformed onions each get their error reply: a truncated payload, a length prefix past
//!    the end, garbage JSON, an unknown `enc_type`, an oversized body, a layer that fails
//!    authentication, a layer that opens to garbage, a next hop that is not a service node, a
//!    path that loops back, too many hops (claimed at the entry, and a real path of 17 nodes).
//!    The entry keeps serving afterwards.
//! 4. A stalled next hop (SIGSTOP) and a stalled HTTP destination give `504 Request time out`
//!    within the hop timeouts, while other requests pass.
//! 5. A node without persistent links (restarted with `--dev-fault no-sn-link`, as a build
//!    from before them) relays as entry, as middle hop and as destination: layers reach it
//!    and leave it on `/sispop/storage/1`. When it is in the account's swarm (it is chosen
//!    there when it can be), a store on another member is forwarded to it on that protocol and
//!    it keeps it. It is restarted healthy after.
//! 6. A decommissioned node (restarted with `--dev-fault no-proofs`) refuses to be an entry
//!    (503) and is not relayed to (502 `Next node not found`); it is restarted healthy after.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rand::seq::SliceRandom as _;
use serde_json::{json, Value};
use sispop_client::storage::{active_nodes, post_bytes, swarm, ServiceNode};
use sispop_relay::client::{
    build, choose_path, open_answer, Answer, Destination, HttpServer, Node,
};
use sispop_relay::crypto::EncType;
use sispop_relay::hop::{self, NodeKey, Protocol};
use sispop_wallet::Daemon;

use crate::{alive, find_sispopd, load, save, spawn, stop};

/// Options of `devnet scenario onion`.
#[derive(clap::Args, Debug)]
pub struct OnionOpts {
    /// Skip the decommissioned-node part (the slowest: a node must miss its proofs).
    #[arg(long)]
    no_decommission: bool,
    /// Seconds the whole scenario may take.
    #[arg(long, default_value_t = 400)]
    timeout: u64,
    /// Path of the sispopd binary.
    #[arg(long)]
    sispopd: Option<std::path::PathBuf>,
}

pub(crate) const SALT: &[u8] = b"SISPOP";

fn note(start: Instant, line: &str) {
    println!("+{:6.1}s  {line}", start.elapsed().as_secs_f64());
}

pub(crate) fn node_of(sn: &ServiceNode) -> Option<Node> {
    hex::decode(&sn.pubkey)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(Node::from_ed25519)
}

struct Net {
    nodes: Vec<ServiceNode>,
}

impl Net {
    fn addr(&self, n: &Node) -> anyhow::Result<SocketAddr> {
        let k = hex::encode(n.ed25519);
        self.nodes
            .iter()
            .find(|s| s.pubkey == k)
            .map(|s| s.addr)
            .with_context(|| format!("no address for {k}"))
    }
    fn all(&self) -> Vec<Node> {
        self.nodes.iter().filter_map(node_of).collect()
    }
    /// Sends a request along `path` (its last node runs it); the answer.
    async fn send(&self, path: &[Node], req: &Value, enc: EncType) -> anyhow::Result<Answer> {
        let built = build(
            path,
            &Destination::Storage,
            req.to_string().as_bytes(),
            enc,
            SALT,
            &mut rand::rngs::OsRng,
            None,
        )?;
        let (status, body) = post_bytes(self.addr(&path[0])?, "/onion_req/v2", built.body).await?;
        Ok(open_answer(&built.reply, status, &body)?)
    }
    async fn raw(&self, entry: &Node, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
        let (status, body) = post_bytes(self.addr(entry)?, "/onion_req/v2", body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn signed(sk: &SigningKey, id: &str, method: &str, extra: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let sig = sk.sign(format!("{method}{now}").as_bytes());
    let mut params = json!({
        "pubkey": id,
        "pubkey_ed25519": hex::encode(sk.verifying_key().to_bytes()),
        "timestamp": now,
        "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    });
    if let (Some(p), Value::Object(e)) = (params.as_object_mut(), extra) {
        p.extend(e);
    }
    json!({"method": method, "params": params})
}

/// A `get_swarm` request through `path` (xchacha20).
fn ping_through(path: &[Node], ping: &Value) -> anyhow::Result<sispop_relay::client::Built> {
    Ok(build(
        path,
        &Destination::Storage,
        ping.to_string().as_bytes(),
        EncType::XChaCha20,
        SALT,
        &mut rand::rngs::OsRng,
        None,
    )?)
}

/// An HTTP destination on 127.0.0.1: opens its layer and answers `echo:` and the request,
/// encrypted; with `stall`, never answers.
async fn http_server(key: NodeKey, stall: bool) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let key = Arc::new(key);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let key = key.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let key = key.clone();
                        async move {
                            if stall {
                                tokio::time::sleep(Duration::from_secs(120)).await;
                            }
                            let body = req.into_body().collect().await?.to_bytes();
                            let reply = match hop::parse_entry(&body)
                                .and_then(|l| hop::open(&key, &l, SALT))
                            {
                                Ok((plain, k)) => {
                                    let mut echo = b"echo:".to_vec();
                                    echo.extend_from_slice(&plain);
                                    (200, k.encrypt(&echo, &mut rand::rngs::OsRng))
                                }
                                Err(e) => (400, e.to_string().into_bytes()),
                            };
                            let mut r = hyper::Response::new(Full::new(Bytes::from(reply.1)));
                            *r.status_mut() = hyper::StatusCode::from_u16(reply.0)
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            Ok::<_, hyper::Error>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Restarts node `i` of the devnet with `faults` (none: healthy) and records it.
fn restart_as(
    dir: &Path,
    state: &mut crate::DevnetFile,
    sispopd: &Path,
    i: usize,
    faults: &[&str],
) -> anyhow::Result<()> {
    let n = &mut state.nodes[i];
    if let Some(pid) = n.pid.take() {
        stop(pid);
    }
    n.dev_faults = faults.iter().map(|f| (*f).to_owned()).collect();
    n.pid = Some(spawn(sispopd, n, &state.miner_address)?);
    save(dir, state)
}

fn expect(what: &str, got: (u16, String), status: u16, prefix: &str) -> anyhow::Result<()> {
    ensure!(
        got.0 == status && got.1.starts_with(prefix),
        "{what}: expected {status} {prefix:?}, got {} {:?}",
        got.0,
        got.1.chars().take(200).collect::<String>()
    );
    Ok(())
}

fn payload(blob: &[u8], json: Value) -> Vec<u8> {
    let Value::Object(m) = json else {
        return Vec::new();
    };
    sispop_relay::encode_payload(blob, &m)
}

/// Runs the scenario against the devnet in `dir`.
pub async fn onion(dir: &Path, o: OnionOpts) -> anyhow::Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.timeout);
    let mut state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let running: Vec<usize> = (0..state.nodes.len())
        .filter(|i| state.nodes[*i].service_node && state.nodes[*i].pid.is_some_and(alive))
        .collect();
    let rpc = state.nodes[*running.first().context("no service node is running")?]
        .rpc_url
        .clone();
    let net = Net {
        nodes: active_nodes(&rpc).await?,
    };
    ensure!(
        net.nodes.len() >= 6,
        "onion paths need at least 6 active service nodes"
    );
    let seed: [u8; 32] = rand::random();
    let sk = SigningKey::from_bytes(&seed);
    let id = format!(
        "05{}",
        hex::encode(sk.verifying_key().to_montgomery().to_bytes())
    );
    let members: Vec<Node> = swarm(&rpc, &id)
        .await?
        .iter()
        .filter_map(|(pk, addr)| {
            node_of(&ServiceNode {
                pubkey: pk.clone(),
                addr: *addr,
            })
        })
        .collect();
    ensure!(
        members.len() >= 2,
        "the account's swarm has fewer than 2 members"
    );
    let all = net.all();
    let mut rng = rand::thread_rng();
    println!(
        "onion scenario: {} active service nodes, account {id} in a swarm of {}",
        all.len(),
        members.len()
    );

    // 1. Store and retrieve through 3 hops, each encryption type.
    for enc in [EncType::XChaCha20, EncType::AesGcm] {
        let text = format!(
            "onion {} {}",
            enc.name(),
            hex::encode(rand::random::<[u8; 4]>())
        );
        let data = base64::engine::general_purpose::STANDARD.encode(&text);
        let store = signed(&sk, &id, "store", json!({"ttl": 600_000, "data": data}));
        let dest = *members.choose(&mut rng).context("member")?;
        let path = choose_path(&all, 3, Some(dest), &mut rng).context("path")?;
        let t = Instant::now();
        let Answer::Destination { status: 200, body } = net.send(&path, &store, enc).await? else {
            bail!("store through {} failed", enc.name());
        };
        let hash = body["hash"]
            .as_str()
            .context("store answer has a hash")?
            .to_owned();
        let store_ms = t.elapsed().as_millis();
        let other = members
            .iter()
            .copied()
            .find(|m| *m != dest)
            .context("member")?;
        let path = choose_path(&all, 3, Some(other), &mut rng).context("path")?;
        let t = Instant::now();
        let retrieve = signed(&sk, &id, "retrieve", json!({}));
        let Answer::Destination { status: 200, body } = net.send(&path, &retrieve, enc).await?
        else {
            bail!("retrieve through {} failed", enc.name());
        };
        let found = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["hash"] == hash.as_str() && m["data"] == data.as_str());
        ensure!(
            found,
            "the message stored through {} came back: {body}",
            enc.name()
        );
        note(
            start,
            &format!(
                "{}: stored through 3 hops ({store_ms} ms) and retrieved from another member ({} ms)",
                enc.name(),
                t.elapsed().as_millis()
            ),
        );
    }

    // 2. An HTTP destination.
    let server_key = NodeKey::from_ed25519_seed(&rand::random()).map_err(anyhow::Error::msg)?;
    let server = HttpServer {
        protocol: Protocol::Http,
        host: "127.0.0.1".into(),
        port: http_server(server_key.clone(), false).await?.port(),
        target: "/oxen/v4/lsrpc".into(),
        x25519: server_key.public,
    };
    let path = choose_path(&all, 3, None, &mut rng).context("path")?;
    let built = build(
        &path,
        &Destination::Http(server.clone()),
        b"l3:abce",
        EncType::XChaCha20,
        SALT,
        &mut rand::rngs::OsRng,
        None,
    )?;
    let (status, body) = post_bytes(net.addr(&path[0])?, "/onion_req/v2", built.body).await?;
    ensure!(
        status == 200,
        "HTTP destination: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let plain = built
        .reply
        .decrypt(&body)
        .map_err(|e| anyhow::anyhow!("HTTP answer: {e}"))?;
    ensure!(
        plain == b"echo:l3:abce",
        "HTTP answer {:?}",
        String::from_utf8_lossy(&plain)
    );
    note(
        start,
        "HTTP destination on 127.0.0.1 reached through 3 hops; its answer decrypts",
    );

    // 3. Malformed onions, all at one entry.
    let entry = *all.choose(&mut rng).context("entry")?;
    let key = hex::encode(rand::random::<[u8; 32]>());
    let parse = "Error parsing onion request: ";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("truncated payload", vec![1, 0], 400, parse),
        (
            "length prefix past the end",
            b"\xff\xff\x00\x00abc{}".to_vec(),
            400,
            parse,
        ),
        (
            "garbage JSON",
            b"\x00\x00\x00\x00{not json".to_vec(),
            400,
            parse,
        ),
        ("no ephemeral key", payload(b"x", json!({})), 400, parse),
        (
            "unknown enc_type",
            payload(b"x", json!({"ephemeral_key": key, "enc_type": "rot13"})),
            400,
            parse,
        ),
        ("oversized body", vec![0u8; 10 * 1024 * 1024 + 1], 413, ""),
        (
            "ciphertext that fails authentication",
            payload(&[7u8; 64], json!({"ephemeral_key": key})),
            400,
            "Invalid ciphertext",
        ),
        (
            "too many hops",
            payload(&[7u8; 64], json!({"ephemeral_key": key, "hop_no": 16})),
            400,
            "onion request max path length exceeded",
        ),
    ];
    for (what, body, status, prefix) in cases {
        expect(what, net.raw(&entry, body).await?, status, prefix)?;
    }
    // A layer that opens but holds garbage: the error is encrypted for the client.
    let eph = rand::random::<[u8; 32]>();
    let s = sispop_relay::crypto::shared_secret(&eph, &entry.x25519).map_err(anyhow::Error::msg)?;
    let epub = sispop_relay::crypto::x25519_public(&eph);
    let k = sispop_relay::crypto::layer_key(EncType::XChaCha20, &s, &epub, &entry.x25519, SALT);
    let sealed =
        sispop_relay::crypto::encrypt(EncType::XChaCha20, &k, b"garbage", &mut rand::rngs::OsRng);
    let body = payload(
        &sealed,
        json!({"ephemeral_key": hex::encode(epub), "enc_type": "xchacha20"}),
    );
    let (status, text) = net.raw(&entry, body).await?;
    let reply = hop::ReplyKey::new(EncType::XChaCha20, k);
    match open_answer(&reply, status, text.as_bytes()) {
        Ok(Answer::Destination { status: 400, body }) if body == "Invalid json" => {}
        other => bail!("garbage inside a layer: {other:?}"),
    }
    // A next hop that is not a service node.
    let stranger = Node::from_ed25519(
        SigningKey::from_bytes(&rand::random())
            .verifying_key()
            .to_bytes(),
    )
    .context("key")?;
    let dest = *members
        .iter()
        .filter(|m| **m != entry)
        .collect::<Vec<_>>()
        .choose(&mut rng)
        .copied()
        .context("member")?;
    let ping = json!({"method": "get_swarm", "params": {"pubkey": id}});
    let built = ping_through(&[entry, stranger, dest], &ping)?;
    expect(
        "next hop not a service node",
        net.raw(&entry, built.body).await?,
        502,
        &format!("Next node not found: {}", hex::encode(stranger.ed25519)),
    )?;
    // Loops: back to the node itself, and back to the node it came from.
    let other = *all
        .iter()
        .find(|n| **n != entry && **n != dest)
        .context("node")?;
    for (what, path) in [
        (
            "a path that returns to the same node",
            vec![entry, entry, dest],
        ),
        (
            "a path that returns to the previous node",
            vec![entry, other, entry, dest],
        ),
    ] {
        let built = ping_through(&path, &ping)?;
        expect(
            what,
            net.raw(&entry, built.body).await?,
            400,
            "Onion path loops back to",
        )?;
    }
    // A path of 17 nodes circling three (no node sends straight back): the 16th refuses it.
    let third = *all
        .iter()
        .find(|n| **n != entry && **n != dest && **n != other)
        .context("node")?;
    let mut long: Vec<Node> = [entry, other, third]
        .iter()
        .copied()
        .cycle()
        .take(16)
        .collect();
    long.push(dest);
    let built = ping_through(&long, &ping)?;
    expect(
        "a path of 17 hops",
        net.raw(&entry, built.body).await?,
        400,
        "onion request max path length exceeded",
    )?;
    match net
        .send(&[entry, other, dest], &ping, EncType::AesGcm)
        .await?
    {
        Answer::Destination { status: 200, .. } => {}
        other => bail!("the entry stopped serving after bad input: {other:?}"),
    }
    // A client of the Oxen lineage (aes-gcm keys under "LOKI") is served as well.
    let built = build(
        &[entry, other, dest],
        &Destination::Storage,
        ping.to_string().as_bytes(),
        EncType::AesGcm,
        sispop_relay::crypto::OXEN_GCM_SALT,
        &mut rand::rngs::OsRng,
        None,
    )?;
    let (status, body) = post_bytes(net.addr(&entry)?, "/onion_req/v2", built.body).await?;
    match open_answer(&built.reply, status, &body)? {
        Answer::Destination { status: 200, .. } => {}
        other => bail!("an Oxen-lineage aes-gcm request: {other:?}"),
    }
    note(
        start,
        "malformed onions: each got its error reply; the entry still serves",
    );

    // 4. A stalled next hop and a stalled HTTP destination.
    let mut index = std::collections::BTreeMap::new();
    for &i in &running {
        let k = Daemon::new(&state.nodes[i].rpc_url)?
            .call("get_service_keys", json!({}))
            .await?["service_node_pubkey"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !state.nodes[i].mining {
            index.insert(k, i);
        }
    }
    let pid_of = |n: &Node| -> Option<(usize, u32)> {
        let i = *index.get(&hex::encode(n.ed25519))?;
        Some((i, state.nodes[i].pid?))
    };
    let stalled = all
        .iter()
        .copied()
        .filter(|n| *n != entry && *n != dest && *n != other)
        .find(|n| pid_of(n).is_some())
        .context("a node to stall")?;
    let (_, pid) = pid_of(&stalled).context("pid")?;
    crate::kill(pid as libc::pid_t, libc::SIGSTOP);
    let slow_server = http_server(server_key.clone(), true).await?;
    let t = Instant::now();
    let stalled_path = [entry, stalled, dest];
    let via_stalled = net.send(&stalled_path, &ping, EncType::XChaCha20);
    let slow = async {
        let to = Destination::Http(HttpServer {
            port: slow_server.port(),
            ..server.clone()
        });
        let path = [entry, other];
        let built = build(
            &path,
            &to,
            b"l0:e",
            EncType::XChaCha20,
            SALT,
            &mut rand::rngs::OsRng,
            None,
        )?;
        net.raw(&entry, built.body).await
    };
    let others = async {
        let mut ok = 0;
        for _ in 0..10 {
            let p = [entry, other, dest];
            if let Ok(Answer::Destination { status: 200, .. }) =
                net.send(&p, &ping, EncType::XChaCha20).await
            {
                ok += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ok
    };
    let (stalled_answer, slow_answer, passed) = tokio::join!(via_stalled, slow, others);
    crate::kill(pid as libc::pid_t, libc::SIGCONT);
    let took = t.elapsed();
    // Over an open connection the stalled node never answers (504 after the hop timeout); with
    // no connection open yet, the dial never completes its handshake (502 when it gives up).
    let stalled_reply = match stalled_answer? {
        Answer::Path { status: 504, text } if text == "Request time out" => "504 Request time out",
        Answer::Path { status: 502, text } if text.starts_with("Next node unreachable") => {
            "502 Next node unreachable"
        }
        other => bail!("a stalled next hop: {other:?}"),
    };
    expect(
        "a stalled HTTP destination",
        slow_answer?,
        504,
        "Request time out",
    )?;
    ensure!(
        passed == 10,
        "only {passed} of 10 requests passed beside the stalled ones"
    );
    ensure!(
        took < Duration::from_secs(45),
        "the stalled requests took {took:?}"
    );
    note(
        start,
        &format!(
            "stalled next hop: {stalled_reply}; stalled HTTP server: 504 Request time out; in {:.1} s, while 10 other requests passed",
            took.as_secs_f64()
        ),
    );

    // 5. A node without links (as a build from before them): layers reach it, and leave it,
    // on the storage protocol, as entry, as middle hop and as destination.
    let sispopd = find_sispopd(o.sispopd.clone())?;
    // A member of the account's swarm if one is free, so forwarded writes reach it too.
    let legacy = members
        .iter()
        .chain(all.iter())
        .copied()
        .filter(|n| *n != entry && *n != dest && *n != other && *n != stalled)
        .find(|n| pid_of(n).is_some())
        .context("a node to run without links")?;
    let (li, _) = pid_of(&legacy).context("pid")?;
    restart_as(dir, &mut state, &sispopd, li, &["no-sn-link"])?;
    note(
        start,
        &format!(
            "{} restarted with --dev-fault no-sn-link",
            state.nodes[li].name
        ),
    );
    let result = async {
        for (role, path) in [
            ("entry", [legacy, other, dest]),
            ("middle hop", [entry, legacy, dest]),
            ("destination", [entry, other, legacy]),
        ] {
            // Until it is serving again after the restart.
            loop {
                match net.send(&path, &ping, EncType::XChaCha20).await {
                    Ok(Answer::Destination { status: 200, .. }) => break,
                    r if Instant::now() > deadline => {
                        bail!("a node without links as the {role}: {r:?}")
                    }
                    _ => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        }
        if !members.contains(&legacy) {
            return Ok(false);
        }
        // A store on another member of its swarm is forwarded to it (tag 1), and it keeps it.
        let data = base64::engine::general_purpose::STANDARD.encode("to a node without links");
        let store = signed(&sk, &id, "store", json!({"ttl": 600_000, "data": data}));
        let Answer::Destination { status: 200, body } = net
            .send(&[entry, other, dest], &store, EncType::XChaCha20)
            .await?
        else {
            bail!("a store beside a node without links failed");
        };
        let entry_of = &body["swarm"][hex::encode(legacy.ed25519)];
        ensure!(
            entry_of["signature"].is_string() && entry_of.get("failed").is_none(),
            "the store forwarded to a node without links: {body}"
        );
        let retrieve = signed(&sk, &id, "retrieve", json!({}));
        let Answer::Destination { status: 200, body } = net
            .send(&[entry, other, legacy], &retrieve, EncType::XChaCha20)
            .await?
        else {
            bail!("a retrieve from a node without links failed");
        };
        let kept = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["data"] == data.as_str());
        ensure!(kept, "a node without links kept a forwarded store: {body}");
        Ok(true)
    }
    .await;
    restart_as(dir, &mut state, &sispopd, li, &[])?;
    let forwarded = if result? {
        "; a store forwarded to it was kept"
    } else {
        ""
    };
    note(
        start,
        &format!(
            "a node without links: 200 as entry, middle hop and destination{forwarded}; {} restarted healthy",
            state.nodes[li].name
        ),
    );

    // 6. A decommissioned node.
    if o.no_decommission {
        println!("onion scenario passed");
        return Ok(());
    }
    let pid_of = |n: &Node| -> Option<(usize, u32)> {
        let i = *index.get(&hex::encode(n.ed25519))?;
        Some((i, state.nodes[i].pid?))
    };
    let full = Daemon::new(&rpc)?
        .call("get_service_nodes", json!({}))
        .await?;
    let minimum = sispop_chain::NetworkParams::get(sispop_chain::Network::Devnet)
        .sn
        .credit_minimum;
    let credit = |k: &str| {
        full["service_node_states"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["service_node_pubkey"] == k)
            .and_then(|e| e["earned_downtime_blocks"].as_i64())
            .unwrap_or(0)
    };
    let victim = all
        .iter()
        .copied()
        .filter(|n| *n != entry && *n != dest && *n != other && pid_of(n).is_some())
        .max_by_key(|n| credit(&hex::encode(n.ed25519)))
        .context("a node to decommission")?;
    let vk = hex::encode(victim.ed25519);
    ensure!(
        credit(&vk) >= minimum,
        "no node has the credit a decommission needs"
    );
    let (vi, _) = pid_of(&victim).context("pid")?;
    restart_as(dir, &mut state, &sispopd, vi, &["no-proofs"])?;
    note(
        start,
        &format!(
            "{} restarted with --dev-fault no-proofs; waiting for its decommission",
            state.nodes[vi].name
        ),
    );
    let decommissioned = loop {
        let v = Daemon::new(&rpc)?
            .call("get_service_nodes", json!({"service_node_pubkeys": [vk]}))
            .await?;
        let e = &v["service_node_states"][0];
        if e["active"] == false && e["funded"] == true {
            break true;
        }
        if e.is_null() || Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let result = async {
        ensure!(decommissioned, "{vk} was not decommissioned in time");
        note(start, "decommissioned");
        // Let every node see it.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let built = ping_through(&[victim, other, dest], &ping)?;
        expect(
            "a decommissioned entry",
            net.raw(&victim, built.body).await?,
            503,
            "Service node is not ready",
        )?;
        let built = ping_through(&[entry, victim, dest], &ping)?;
        expect(
            "a path through a decommissioned node",
            net.raw(&entry, built.body).await?,
            502,
            &format!("Next node not found: {vk}"),
        )?;
        note(
            start,
            "a decommissioned node: 503 as an entry, 502 Next node not found as a hop",
        );
        Ok(())
    }
    .await;
    // Healthy again, whatever happened.
    restart_as(dir, &mut state, &sispopd, vi, &[])?;
    note(
        start,
        &format!("{} restarted healthy", state.nodes[vi].name),
    );
    result?;
    println!("onion scenario passed");
    Ok(())
}
