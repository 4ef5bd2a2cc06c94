//! `devnet scenario hostile`: what anyone on the internet can do to a service node, done to one
//! of the devnet's from outside (`sispop_client::hostile`'s clients), and what must still hold:
//!
//! 1. An account of the node's swarm is filled with large messages, so that a `batch` of its
//!    retrieves is a large answer.
//! 2. Hundreds of requests on every port the node listens on (storage, onion, JSON-RPC,
//!    metrics, p2p) are reset before or while their answers are written; the node must keep
//!    running, and serve on every port after.
//! 3. Thousands of connections from 200 loopback addresses hold the storage port: bodies sent
//!    a byte at a time, bodies announced at 10 MB, and batches of large retrieves whose answers
//!    are never read. While they are held, a fresh client stores and retrieves for 15 s, each
//!    answered within a second, and the node's resident memory must stay under
//!    `--rss-limit-mib`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use sispop_client::hostile::{
    hold, http_get, http_post, loopback_sources, resets, resident_bytes, Hold, Reset,
};
use sispop_client::storage::{active_nodes, post, swarm};

use crate::{alive, load};

/// Options of `devnet scenario hostile`.
#[derive(clap::Args)]
pub struct HostileOpts {
    /// Connections reset per port.
    #[arg(long, default_value_t = 300)]
    resets: usize,
    /// Connections held open on the storage port (a third each: slow bodies, bodies announced
    /// at 10 MB, unread answers).
    #[arg(long, default_value_t = 3_000)]
    connections: usize,
    /// Most resident memory the node may take meanwhile, MiB (about 1,300 were seen with the
    /// defaults: the answers held within their 128 MiB budget, four workers each building a
    /// 7.8 MB answer, the connections' buffers, RocksDB).
    #[arg(long, default_value_t = 2_048)]
    rss_limit_mib: u64,
    /// Large messages to fill the account with (76,000 bytes each).
    #[arg(long, default_value_t = 60)]
    messages: usize,
}

fn note(start: Instant, line: &str) {
    println!("+{:6.1}s  {line}", start.elapsed().as_secs_f64());
}

fn now_ms() -> u64 {
    sispopd::storage::server::now_ms()
}

/// An Ed25519 account (prefix 03: it signs with its own key).
struct Account {
    key: SigningKey,
    id: String,
}

impl Account {
    fn new() -> Account {
        let key = SigningKey::from_bytes(&rand::random());
        let id = format!("03{}", hex::encode(key.verifying_key().to_bytes()));
        Account { key, id }
    }

    /// A signed retrieve of namespace 0, as large as one may be.
    fn retrieve(&self) -> Value {
        let ts = now_ms();
        let sig = self.key.sign(format!("retrieve{ts}").as_bytes());
        json!({"method": "retrieve", "params": {"pubkey": self.id, "timestamp": ts,
            "max_size": -1,
            "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())}})
    }

    fn store(&self, data: &[u8]) -> Value {
        json!({"method": "store", "params": {"pubkey": self.id, "timestamp": now_ms(),
            "ttl": 3_600_000, "data": base64::engine::general_purpose::STANDARD.encode(data)}})
    }
}

/// A new account whose swarm `node` is in. The owner of each candidate is worked out here from
/// the active nodes' swarm ids (a swarm made when the swarms last changed may own a sliver of
/// the key space, too small for a few dozen `get_swarm` questions to find); the node itself
/// then confirms it.
async fn account_of(rpc: &str, node: &str) -> anyhow::Result<Account> {
    let d = sispop_wallet::Daemon::new(rpc)?;
    for _ in 0..3 {
        let sns = d.call("get_service_nodes", json!({})).await?;
        let active: Vec<(&str, u64)> = sns["service_node_states"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["active"].as_bool() == Some(true))
            .filter_map(|e| Some((e["service_node_pubkey"].as_str()?, e["swarm_id"].as_u64()?)))
            .collect();
        let mine = active
            .iter()
            .find(|(pk, _)| *pk == node)
            .map(|(_, id)| *id)
            .context("the node is not active")?;
        // As the node's own list: swarms with members, the unassigned "swarm" not one.
        let mut ids: Vec<u64> = active
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| *id != u64::MAX)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for _ in 0..200_000 {
            let a = Account::new();
            let key = a.key.verifying_key().to_bytes();
            let pk = sispop_storage::UserPubkey { prefix: 3, key };
            if sispopd::storage::server::owner_among(&ids, &pk) != Some(mine) {
                continue;
            }
            if swarm(rpc, &a.id).await?.iter().any(|(pk, _)| pk == node) {
                return Ok(a);
            }
            break; // the swarms changed meanwhile: ask again
        }
    }
    bail!("no account of {node:.16}'s swarm found")
}

/// Runs the scenario against the first running service node.
pub async fn hostile(dir: &Path, o: HostileOpts) -> anyhow::Result<()> {
    let start = Instant::now();
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let n = state
        .nodes
        .iter()
        .find(|n| n.service_node && n.pid.is_some_and(alive))
        .context("no service node is running")?;
    let pid = n.pid.context("no pid")?;
    let d = sispop_wallet::Daemon::new(&n.rpc_url)?;
    let me = d.call("get_service_keys", json!({})).await?["service_node_pubkey"]
        .as_str()
        .context("the node's key")?
        .to_owned();
    let target = active_nodes(&n.rpc_url)
        .await?
        .into_iter()
        .find(|s| s.pubkey == me)
        .context("the node is not an active service node with an address yet")?
        .addr;
    let running = || alive(pid);
    note(start, &format!("{} ({me:.16}…) at {target}", n.name));

    // 1. An account of its swarm, filled with large messages.
    let account = account_of(&n.rpc_url, &me).await?;
    for i in 0..o.messages {
        let mut data = vec![0u8; 76_000];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let (code, body) = post(target, &account.store(&data)).await?;
        ensure!(code == 200, "storing a large message: {code} {body}");
    }
    note(
        start,
        &format!(
            "filled an account of its swarm with {} messages ({} MB)",
            o.messages,
            o.messages * 76_000 / 1_000_000
        ),
    );

    // 2. Resets on every port.
    let metrics = n
        .metrics_url
        .as_deref()
        .and_then(|u| u.strip_prefix("http://")?.strip_suffix("/metrics"))
        .context("the node serves no metrics")?
        .parse()?;
    let rpc: std::net::SocketAddr = format!("127.0.0.1:{}", n.rpc_port).parse()?;
    let p2p: std::net::SocketAddr = format!("127.0.0.1:{}", n.p2p_port).parse()?;
    let batch = json!({"method": "batch", "params": {"requests":
        (0..20).map(|_| account.retrieve()).collect::<Vec<_>>()}})
    .to_string();
    let headers = json!({"jsonrpc": "2.0", "id": 1, "method": "get_block_headers_range",
        "params": {"start_height": 0, "end_height": 40}})
    .to_string();
    let ports = [
        (
            "storage (large answers)",
            target,
            Reset::Tls(http_post("x", "/storage_rpc/v1", batch.as_bytes())),
        ),
        (
            "onion",
            target,
            Reset::Tls(http_post("x", "/onion_req/v2", &[7u8; 600])),
        ),
        (
            "JSON-RPC",
            rpc,
            Reset::Plain(http_post("x", "/json_rpc", headers.as_bytes())),
        ),
        ("metrics", metrics, Reset::Plain(http_get("x", "/metrics"))),
        ("p2p", p2p, Reset::P2p),
    ];
    let sources = loopback_sources(200);
    for (name, addr, what) in ports {
        let r = resets(
            addr,
            &sources,
            what,
            o.resets,
            32,
            Duration::from_millis(20),
        )
        .await;
        if !running() {
            bail!("{} died of resets on its {name} port", n.name);
        }
        note(
            start,
            &format!(
                "{name}: {} connections reset mid-answer ({} not made); still running",
                r.reset, r.failed
            ),
        );
    }
    let info = d.call("get_info", json!({})).await?;
    ensure!(info["height"].as_u64().is_some(), "RPC: {info}");
    let text = get_metrics(metrics).await?;
    ensure!(text.contains("sispop_chain_height"), "metrics: {text:.200}");
    let (code, body) = post(target, &json!({"method": "info", "params": {}})).await?;
    ensure!(code == 200, "storage: {code} {body}");
    tokio::net::TcpStream::connect(p2p).await.context("p2p")?;
    note(start, "after the resets: serving on every port");

    // 3. Connections held open, then a fresh client storing and retrieving while they are.
    let before = resident_bytes(pid).unwrap_or(0);
    // The node's resident memory, watched from now on.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watching = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = resident_bytes(pid).unwrap_or(0);
                peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let third = o.connections / 3;
    let req = http_post("x", "/storage_rpc/v1", batch.as_bytes());
    let (slow, big, silent) = tokio::join!(
        hold(target, &sources, third, 64, Hold::SlowBody(1_000)),
        hold(target, &sources, third, 64, Hold::SlowBody(10_000_000)),
        hold(target, &sources, third, 64, Hold::NoRead(req)),
    );
    let fresh = account_of(&n.rpc_url, &me).await?;
    let (mut worst, mut rounds) = (Duration::ZERO, 0usize);
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(15) {
        let asked = Instant::now();
        let (code, body) = post(target, &fresh.store(format!("fresh {rounds}").as_bytes())).await?;
        worst = worst.max(asked.elapsed());
        ensure!(code == 200, "the fresh client's store: {code} {body}");
        let asked = Instant::now();
        let (code, body) = post(target, &fresh.retrieve()).await?;
        worst = worst.max(asked.elapsed());
        ensure!(code == 200, "the fresh client's retrieve: {code} {body}");
        let got: Value = serde_json::from_str(&body)?;
        rounds += 1;
        ensure!(
            got["messages"].as_array().map(Vec::len) == Some(rounds),
            "the fresh client's messages: {body:.300}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let opened: usize = [&slow, &big, &silent]
        .iter()
        .map(|h| h.opened.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    watching.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    note(
        start,
        &format!(
            "{opened} connections held on the storage port from 200 addresses; meanwhile a fresh client stored and retrieved {rounds} times in 15 s, the slowest answer in {worst:?}; resident memory {} MiB before, at most {} MiB during",
            before >> 20,
            peak >> 20
        ),
    );
    ensure!(
        worst < Duration::from_secs(1),
        "the fresh client waited {worst:?}"
    );
    ensure!(
        peak >> 20 <= o.rss_limit_mib,
        "resident memory {} MiB, over {} MiB",
        peak >> 20,
        o.rss_limit_mib
    );
    drop((slow, big, silent));
    ensure!(running(), "{} is not running", n.name);
    let info = d.call("get_info", json!({})).await?;
    ensure!(info["height"].as_u64().is_some(), "RPC: {info}");
    println!("hostile scenario passed");
    Ok(())
}

/// GET /metrics over plain HTTP: the body.
async fn get_metrics(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await??;
    Ok(out)
}
