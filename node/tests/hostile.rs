//! The daemon as a process against hostile clients: hundreds of connections reset before or
//! while their answers are written, on every port it listens on (storage and onion over TLS,
//! JSON-RPC, metrics, p2p), and the node keeps running and serving.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use serde_json::{json, Value};
use sispop_chain::crypto::{public_from_secret, random_scalar};
use sispop_chain::{Address, Network, NetworkParams};
use sispop_client::hostile::{http_get, http_post, resets, Reset};

const SISPOPD: &str = env!("CARGO_BIN_EXE_sispopd");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking HTTP request over plain TCP; the status line and the body.
fn request(port: u16, raw: &[u8]) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(raw).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

fn rpc(port: u16, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut raw = http_post("127.0.0.1", "/json_rpc", body.as_bytes());
    // One request per connection here.
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    raw.splice(at..at, b"\r\nConnection: close".iter().copied());
    serde_json::from_str(&request(port, &raw)?.1).ok()
}

fn height(port: u16) -> Option<u64> {
    rpc(port, "get_info", json!({}))?["result"]["height"].as_u64()
}

/// An unregistered service node (its storage port answers 503 past the connection layer) with
/// 30 blocks, and its ports: RPC, p2p, storage, metrics.
struct Node {
    d: Daemon,
    dir: tempfile::TempDir,
    rpc: u16,
    p2p: u16,
    storage: u16,
    metrics: u16,
}

fn start() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rpc_port, p2p, storage, metrics) = (free_port(), free_port(), free_port(), free_port());
    let miner = Address {
        spend: public_from_secret(&random_scalar(&mut OsRng)),
        view: public_from_secret(&random_scalar(&mut OsRng)),
    }
    .to_string(NetworkParams::get(Network::Devnet));
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let d = Daemon(
        Command::new(SISPOPD)
            .args(["--devnet", "--service-node", "--rpc-bind-port"])
            .arg(rpc_port.to_string())
            .args(["--p2p-bind-ip", "127.0.0.1", "--p2p-bind-port"])
            .arg(p2p.to_string())
            .args(["--storage-bind-ip", "127.0.0.1", "--storage-port"])
            .arg(storage.to_string())
            .arg("--metrics-bind")
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sispopd"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while height(rpc_port).is_none() {
        assert!(Instant::now() < deadline, "no RPC within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Enough blocks that a range of their headers is an answer of many writes.
    let made = rpc(
        rpc_port,
        "generateblocks",
        json!({"amount_of_blocks": 30, "wallet_address": miner}),
    );
    assert!(height(rpc_port).is_some_and(|h| h >= 30), "{made:?}");
    Node {
        d,
        dir,
        rpc: rpc_port,
        p2p,
        storage,
        metrics,
    }
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, text) = request(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}

#[test]
fn resets_mid_answer_on_every_port_leave_the_node_serving() {
    let node = start();
    let (rpc_port, p2p, storage, metrics) = (node.rpc, node.p2p, node.storage, node.metrics);
    let (dir, mut d) = (&node.dir, node.d);
    let headers = json!({"jsonrpc": "2.0", "id": 1, "method": "get_block_headers_range",
        "params": {"start_height": 0, "end_height": 29}})
    .to_string();
    let storage_info = json!({"method": "info", "params": {}}).to_string();
    let attacks = [
        (
            "rpc",
            at(rpc_port),
            Reset::Plain(http_post("127.0.0.1", "/json_rpc", headers.as_bytes())),
        ),
        (
            "rpc (plain path)",
            at(rpc_port),
            Reset::Plain(http_post("127.0.0.1", "/get_info", b"{}")),
        ),
        (
            "metrics",
            at(metrics),
            Reset::Plain(http_get("127.0.0.1", "/metrics")),
        ),
        (
            "storage",
            at(storage),
            Reset::Tls(http_post(
                "127.0.0.1",
                "/storage_rpc/v1",
                storage_info.as_bytes(),
            )),
        ),
        (
            "onion",
            at(storage),
            Reset::Tls(http_post("127.0.0.1", "/onion_req/v2", &[7u8; 600])),
        ),
        ("p2p", at(p2p), Reset::P2p),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (name, addr, what) in attacks {
        // From 16 addresses: each client may hold a few dozen connections at once.
        let sources = sispop_client::hostile::loopback_sources(16);
        let report = rt.block_on(resets(
            addr,
            &sources,
            what,
            300,
            32,
            Duration::from_millis(4),
        ));
        assert!(
            d.0.try_wait().expect("wait").is_none(),
            "sispopd died of resets on the {name} port:\n{}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        assert!(
            report.reset >= 250,
            "{name}: most connections were made and reset: {report:?}"
        );
    }
    // Still serving on every port.
    assert!(height(rpc_port).is_some_and(|h| h >= 30), "RPC answers");
    let (status, text) = request(
        metrics,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("metrics answer");
    assert!(status.contains("200"), "{status}");
    assert!(text.contains("sispop_chain_height"), "{text}");
    let answer = rt.block_on(sispop_client::storage::post(
        at(storage),
        &json!({"method": "info", "params": {}}),
    ));
    let (code, body) = answer.expect("the storage port answers");
    // Not registered: the stake gate answers, as it should.
    assert_eq!(code, 503, "{body}");
    assert!(std::net::TcpStream::connect(at(p2p)).is_ok(), "p2p accepts");
    assert!(d.0.try_wait().expect("wait").is_none(), "still running");
}

/// 4,600 connections, more than the node keeps open, that send a body a byte at a time,
/// announce a 10 MB body, or never read their answers, from 200 addresses: a fresh client is
/// answered within a second (it pushes out one of theirs), the node's memory stays bounded,
/// and the deadlines close them all.
#[test]
fn slow_and_silent_clients_do_not_starve_the_storage_port() {
    use sispop_client::hostile::{hold, loopback_sources, resident_bytes, Hold};
    let node = start();
    let pid = node.d.0.id();
    let before = resident_bytes(pid).expect("rss");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sources = loopback_sources(200);
    let target = at(node.storage);
    let info = json!({"method": "info", "params": {}}).to_string();
    let started = Instant::now();
    let (slow, big, silent) = rt.block_on(async {
        let slow = hold(target, &sources, 2600, 64, Hold::SlowBody(1000)).await;
        let big = hold(target, &sources, 400, 64, Hold::SlowBody(10_000_000)).await;
        let request = http_post("127.0.0.1", "/storage_rpc/v1", info.as_bytes());
        let silent = hold(target, &sources, 1600, 64, Hold::NoRead(request)).await;
        (slow, big, silent)
    });
    let opened = [&slow, &big, &silent]
        .iter()
        .map(|h| h.opened.load(std::sync::atomic::Ordering::Relaxed))
        .sum::<usize>();
    println!(
        "{opened} hostile connections made in {:?}",
        started.elapsed()
    );
    assert!(opened >= 4096, "{opened}");
    let open = metric(node.metrics, "sispop_storage_connections").expect("metric");
    assert!(open >= 4000.0, "the node holds about all it may: {open}");
    // A fresh client, from an address of its own, is answered at once (503 here: the node is
    // not registered; the point is that the port serves).
    for _ in 0..5 {
        let asked = Instant::now();
        let answer = rt.block_on(sispop_client::storage::post(
            target,
            &json!({"method": "info", "params": {}}),
        ));
        let took = asked.elapsed();
        let (code, body) = answer.expect("the fresh client is answered");
        assert_eq!(code, 503, "{body}");
        assert!(took < Duration::from_secs(1), "answered in {took:?}");
    }
    let during = resident_bytes(pid).expect("rss");
    println!(
        "resident memory: {} MiB before, {} MiB with the connections held",
        before >> 20,
        during >> 20
    );
    assert!(
        during < before + (512 << 20),
        "resident memory grew by {} MiB",
        (during - before) >> 20
    );
    // The deadlines close every one of them (bodies within 30 s, silent connections once a
    // read has made no progress for 45 s or a write for 15 s).
    let deadline = Instant::now() + Duration::from_secs(80);
    loop {
        let open = metric(node.metrics, "sispop_storage_connections").expect("metric");
        if open < 10.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_secs(1));
    }
    drop((slow, big, silent));
    assert!(node.d.0.id() == pid);
}
