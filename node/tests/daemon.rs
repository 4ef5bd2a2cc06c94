//! The daemon as a process: RPC over HTTP, `sispopd status`, bad RPC input, and SIGKILL while
//! mining followed by a restart that resumes from disk with an intact chain.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use serde_json::{json, Value};
use sispop_chain::crypto::{public_from_secret, random_scalar};
use sispop_chain::{Address, Network, NetworkParams};

const SISPOPD: &str = env!("CARGO_BIN_EXE_sispopd");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn devnet_address() -> String {
    let a = Address {
        spend: public_from_secret(&random_scalar(&mut OsRng)),
        view: public_from_secret(&random_scalar(&mut OsRng)),
    };
    a.to_string(NetworkParams::get(Network::Devnet))
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, port: u16, mine_to: &str) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .expect("log");
    // Its own p2p port too: tests run in parallel, and no two daemons may share one.
    let child = Command::new(SISPOPD)
        .args([
            "--devnet",
            "--rpc-bind-port",
            &port.to_string(),
            "--p2p-bind-ip",
            "127.0.0.1",
            "--p2p-bind-port",
            &free_port().to_string(),
            "--mine-to",
            mine_to,
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sispopd");
    Daemon { child }
}

/// A blocking JSON-RPC call over a plain TCP HTTP/1.1 request (no client library involved).
fn post(port: u16, path: &str, body: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (_, body) = resp.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn call(port: u16, method: &str, params: Value) -> Option<Value> {
    post(
        port,
        "/json_rpc",
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
    )
}

fn height(port: u16) -> Option<u64> {
    call(port, "get_info", json!({}))?["result"]["height"].as_u64()
}

fn wait_for_height(port: u16, at_least: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(h) = height(port) {
            if h >= at_least {
                return h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "height {at_least} not reached in {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_chain_links(port: u16, count: u64) {
    let mut prev = String::new();
    for h in 0..count {
        let hdr = call(port, "get_block_header_by_height", json!({"height": h})).expect("rpc")
            ["result"]["block_header"]
            .clone();
        assert_eq!(hdr["height"].as_u64(), Some(h));
        if h > 0 {
            assert_eq!(
                hdr["prev_hash"].as_str(),
                Some(prev.as_str()),
                "block {h} links to its parent"
            );
        }
        prev = hdr["hash"].as_str().expect("hash").to_owned();
    }
}

#[test]
fn rpc_status_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let d = start(dir.path(), port, &devnet_address());
    wait_for_height(port, 3, 30);

    let out = Command::new(SISPOPD)
        .args(["--devnet", "--rpc-bind-port", &port.to_string(), "status"])
        .output()
        .expect("status");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.starts_with("Height: "), "{line}");
    assert!(line.contains("on devnet, mining,"), "{line}");
    assert!(line.contains("connections, uptime "), "{line}");

    // A reader that went away (`sispopd status | head -c0`): a quiet exit, no panic.
    let mut gone = Command::new(SISPOPD)
        .args(["--devnet", "--rpc-bind-port", &port.to_string(), "status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("status");
    drop(gone.stdout.take());
    let out = gone.wait_with_output().expect("status");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad params get a clear error; the node keeps serving.
    let e = call(port, "get_block_header_by_height", json!({"height": "abc"})).expect("rpc");
    assert_eq!(e["error"]["code"], -32602);
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("invalid type"),
        "{e}"
    );
    let e = call(port, "get_block_header_by_height", json!({})).expect("rpc");
    assert!(e["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("height is required"));
    let e = call(port, "get_block", json!({"hash": "xyz"})).expect("rpc");
    assert_eq!(e["error"]["code"], -32602);
    let e = call(
        port,
        "get_outs",
        json!({"outputs": [{"index": 1_000_000_000u64}]}),
    )
    .expect("rpc");
    assert!(e["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("does not exist"));
    let e = call(port, "no_such_method", json!({})).expect("rpc");
    assert_eq!(e["error"]["code"], -32601);
    let e = post(port, "/json_rpc", "{not json").expect("rpc");
    assert_eq!(e["error"]["code"], -32700);
    let r = post(port, "/send_raw_transaction", r#"{"tx_as_hex":"0400ff"}"#).expect("rpc");
    assert_eq!(r["status"], "Failed");
    assert!(r["reason"]
        .as_str()
        .expect("reason")
        .contains("does not decode"));
    let pool = call(port, "get_transaction_pool_hashes", json!({})).expect("rpc");
    assert_eq!(pool["result"]["tx_hashes"], json!([]));
    let big = "x".repeat(5 * 1024 * 1024);
    // A body over the limit is answered with an error (or the connection is cut before the
    // upload finishes); either way the node keeps serving.
    if let Some(v) = post(port, "/json_rpc", &big) {
        assert!(v.get("error").is_some(), "oversized body accepted: {v}");
    }
    let h = height(port).expect("still serving");
    assert!(h >= 3);
    drop(d);
}

#[test]
fn sigterm_stops_cleanly_and_restart_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = devnet_address();
    let mut d = start(dir.path(), port, &addr);
    let before = wait_for_height(port, 4, 40);
    let pid = d.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = d.child.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "sispopd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "clean exit, got {code:?}");
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("stopped cleanly"), "{log}");
    drop(d);
    let port2 = free_port();
    let _d2 = start(dir.path(), port2, &addr);
    assert!(wait_for_height(port2, before, 20) >= before);
}

#[test]
fn sigkill_while_mining_then_restart_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = devnet_address();
    let mut d = start(dir.path(), port, &addr);
    let before = wait_for_height(port, 6, 40);
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("reap");
    drop(d);

    let port2 = free_port();
    let d2 = start(dir.path(), port2, &addr);
    let resumed = wait_for_height(port2, 1, 20);
    assert!(
        resumed >= before,
        "restart lost blocks: {resumed} < {before}"
    );
    let later = wait_for_height(port2, resumed + 2, 30);
    assert_chain_links(port2, later);
    drop(d2);
}

/// The operator's methods, as the README lists them: hidden from restricted callers.
const OPERATOR_METHODS: [&str; 8] = [
    "stop_daemon",
    "submit_block",
    "generateblocks",
    "get_service_keys",
    "get_service_node_key",
    "get_service_node_status",
    "get_service_node_registration_cmd",
    "get_service_node_registration_cmd_raw",
];

/// A blocking JSON-RPC call from `source` (a local address) to `target`.
fn call_from(
    source: std::net::IpAddr,
    target: std::net::SocketAddr,
    method: &str,
) -> Option<Value> {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        None,
    )
    .ok()?;
    socket
        .bind(&std::net::SocketAddr::new(source, 0).into())
        .ok()?;
    socket.connect(&target.into()).ok()?;
    let mut s = std::net::TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}).to_string();
    write!(s, "POST /json_rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    serde_json::from_str(resp.split_once("\r\n\r\n")?.1).ok()
}

/// This machine's first IPv4 address that is not loopback, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

/// Without `--restricted-rpc`, callers on loopback reach the operator's methods and callers
/// from any other address do not (oxend's default for its restricted port); `=0` lets them.
#[test]
fn rpc_is_restricted_for_remote_callers_by_default() {
    use sispopd::rpc::Restriction;
    let local: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
    let remote: std::net::IpAddr = "192.0.2.7".parse().expect("ip");
    assert!(!Restriction::from_flag(None).applies_to(local));
    assert!(Restriction::from_flag(None).applies_to(remote));
    assert!(Restriction::from_flag(Some(true)).applies_to(local));
    assert!(!Restriction::from_flag(Some(false)).applies_to(remote));
    let Some(outside) = outside_address() else {
        println!("no address but loopback here: the daemon's side is not checked");
        return;
    };
    for (flag, remote_hidden) in [(None, true), (Some("--restricted-rpc=0"), false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).expect("log");
        let mut cmd = Command::new(SISPOPD);
        cmd.args(["--devnet", "--rpc-bind-ip", "0.0.0.0", "--rpc-bind-port"])
            .arg(port.to_string())
            .args(["--p2p-bind-ip", "127.0.0.1", "--p2p-bind-port"])
            .arg(free_port().to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        cmd.args(flag);
        let child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sispopd");
        let _d = Daemon { child };
        wait_for_height(port, 0, 30);
        let target = std::net::SocketAddr::new(outside, port);
        for method in OPERATOR_METHODS {
            // (`stop_daemon` is only asked where it must be refused.)
            let stops = method == "stop_daemon";
            if !stops {
                let from_local = call_from(local, std::net::SocketAddr::new(local, port), method)
                    .expect("answer");
                assert_ne!(
                    from_local["error"]["code"], -32601,
                    "{method} on loopback: {from_local}"
                );
            }
            if stops && !remote_hidden {
                continue;
            }
            let from_outside = call_from(outside, target, method).expect("answer");
            assert_eq!(
                from_outside["error"]["code"] == -32601,
                remote_hidden,
                "{method} from {outside} with {flag:?}: {from_outside}"
            );
        }
    }
}

/// An oxend-style `sispop.conf` (switches written `key=1`, keys sispopd does not have) starts
/// the daemon; with `restricted-rpc=1` the operator's methods are hidden and the rest answer.
#[test]
fn restricted_rpc_from_an_oxend_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, p2p) = (free_port(), free_port());
    let conf = dir.path().join("sispop.conf");
    std::fs::write(
        &conf,
        format!(
            "devnet=1\nrestricted-rpc=1\nrpc-bind-port={port}\np2p-bind-port={p2p}\n\
             p2p-bind-ip=127.0.0.1\ndata-dir={}\nlog-file=/nonexistent/sispop.log\n\
             max-concurrency=4\n",
            dir.path().join("data").display()
        ),
    )
    .expect("conf");
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let child = Command::new(SISPOPD)
        .arg("--config-file")
        .arg(&conf)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sispopd");
    let _d = Daemon { child };
    wait_for_height(port, 1, 30);
    for method in OPERATOR_METHODS {
        let r = call(port, method, json!({})).expect("answer");
        assert_eq!(r["error"]["code"], -32601, "{method} hidden: {r}");
        assert_eq!(r["id"], 1);
    }
    // The public ones answer.
    for method in ["get_info", "get_height", "get_service_nodes"] {
        let r = call(port, method, json!({})).expect("answer");
        assert!(r.get("result").is_some(), "{method}: {r}");
    }
    let plain = post(port, "/stop_daemon", "{}").expect("answer");
    assert_eq!(plain["status"], "Failed", "{plain}");
    // A batch is checked call by call.
    let batch = post(
        port,
        "/json_rpc",
        &json!([
            {"jsonrpc": "2.0", "id": 1, "method": "get_height"},
            {"jsonrpc": "2.0", "id": 2, "method": "stop_daemon"},
        ])
        .to_string(),
    )
    .expect("answer");
    assert!(batch[0]["result"]["height"].as_u64().is_some(), "{batch}");
    assert_eq!(batch[1]["error"]["code"], -32601, "{batch}");
    // Still running, still answering.
    std::thread::sleep(Duration::from_millis(500));
    assert!(height(port).is_some(), "the daemon still runs");
    let text = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(
        text.contains("`log-file` is not a sispopd option; skipped"),
        "{text}"
    );
}

/// `--log-format json`: every log line is one JSON object with a level and its fields.
#[test]
fn json_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("log")).expect("log");
    let child = Command::new(SISPOPD)
        .args(["--devnet", "--log-format", "json", "--rpc-bind-port"])
        .arg(port.to_string())
        .args(["--p2p-bind-ip", "127.0.0.1", "--p2p-bind-port"])
        .arg(free_port().to_string())
        .arg("--mine-to")
        .arg(devnet_address())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sispopd");
    let d = Daemon { child };
    wait_for_height(port, 3, 30);
    drop(d);
    let text = std::fs::read_to_string(dir.path().join("log")).expect("log");
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"].is_object(), "{line}");
        lines += usize::from(v["fields"]["message"].is_string());
    }
    assert!(lines >= 2, "{text}");
}
