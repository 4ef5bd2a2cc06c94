//! `devnet web`: a live page of the running devnet on 127.0.0.1, refreshing by itself: each
//! node (height, peers, state, swarm, last proof age), the swarms as groups, recent state
//! changes and votes as a timeline, and storage and relay request rates.
//!
//! A poller reads the nodes' RPC and metrics every 2 s into one JSON snapshot (`/api/state`);
//! the page (plain HTML, CSS and a small script, no build step) fetches it and draws it.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{json, Value};
use sispop_wallet::Daemon;

use crate::{alive, info, load, DevnetFile};

const PAGE: &str = include_str!("web.html");
/// Timeline entries kept.
const TIMELINE: usize = 60;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The sum of every sample of the metric family `name` (all label sets) in a metrics text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn http_get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(host).await.ok()?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("/{path}"))
            .header(hyper::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .ok()?;
        let resp = send.send_request(req).await.ok()?;
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()?
            .to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .ok()
        .flatten()
}

/// What the poller remembers between rounds.
#[derive(Default)]
struct Memory {
    /// Each service node's state, by key, as last seen.
    states: BTreeMap<String, String>,
    /// Node keys by node name (asked once).
    keys: BTreeMap<String, String>,
    /// Votes cast on the whole network, as last summed (none before the first poll).
    votes: Option<f64>,
    /// Storage and onion request totals and when they were read.
    totals: Option<(Instant, f64, f64)>,
    timeline: VecDeque<Value>,
}

/// One poll of the devnet: the snapshot the page draws.
async fn poll(state: &DevnetFile, mem: &mut Memory) -> Value {
    let reference = state
        .nodes
        .iter()
        .find(|n| n.pid.is_some_and(alive))
        .map(|n| n.rpc_url.clone());
    let list = match reference.as_deref().map(Daemon::new) {
        Some(Ok(d)) => d.call("get_service_nodes", json!({})).await.ok(),
        _ => None,
    };
    let entries: BTreeMap<String, Value> = list
        .as_ref()
        .and_then(|v| v["service_node_states"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e["service_node_pubkey"].as_str()?.to_owned(), e)))
        .collect();
    let now = now_secs();
    let mut nodes = Vec::new();
    let mut swarms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut storage_total, mut onion_total, mut votes) = (0.0, 0.0, 0.0);
    for n in &state.nodes {
        let running = n.pid.is_some_and(alive);
        let i = if running {
            info(&n.rpc_url).await.ok()
        } else {
            None
        };
        if n.service_node && running && !mem.keys.contains_key(&n.name) {
            if let Ok(d) = Daemon::new(&n.rpc_url) {
                if let Ok(k) = d.call("get_service_keys", json!({})).await {
                    if let Some(pk) = k["service_node_pubkey"].as_str() {
                        mem.keys.insert(n.name.clone(), pk.to_owned());
                    }
                }
            }
        }
        let key = mem.keys.get(&n.name).cloned();
        let e = key.as_ref().and_then(|k| entries.get(k));
        let sn_state = match e {
            Some(e) if e["active"] == true => "active",
            Some(e) if e["funded"] == true => "decommissioned",
            Some(_) => "awaiting",
            None if n.service_node => "unregistered",
            None => "-",
        };
        let swarm = e
            .filter(|e| e["active"] == true)
            .and_then(|e| e["swarm"].as_str())
            .map(str::to_owned);
        if let Some(s) = &swarm {
            swarms.entry(s.clone()).or_default().push(n.name.clone());
        }
        let proof_age = e
            .and_then(|e| e["last_uptime_proof"].as_u64())
            .filter(|t| *t > 0)
            .map(|t| now.saturating_sub(t));
        if let Some(url) = &n.metrics_url {
            if running {
                if let Some(text) = http_get(url).await {
                    storage_total += metric_sum(&text, "sispop_storage_requests_total");
                    onion_total += metric_sum(&text, "sispop_onion_requests_total");
                    votes += metric_sum(&text, "sispop_votes_cast_total");
                }
            }
        }
        nodes.push(json!({
            "name": n.name,
            "service_node": n.service_node,
            "running": running,
            "height": i.as_ref().and_then(|i| i["height"].as_u64()),
            "peers": i.as_ref().map(|i| i["outgoing_connections_count"].as_u64().unwrap_or(0)
                + i["incoming_connections_count"].as_u64().unwrap_or(0)),
            "state": sn_state,
            "swarm": swarm,
            "proof_age": proof_age,
            "key": key,
        }));
    }
    // The timeline: state changes since the last poll, and votes cast.
    let mut events = Vec::new();
    for (name, key) in &mem.keys {
        let now_state = entries
            .get(key)
            .map(|e| {
                if e["active"] == true {
                    "active"
                } else if e["funded"] == true {
                    "decommissioned"
                } else {
                    "awaiting"
                }
            })
            .unwrap_or("unregistered")
            .to_owned();
        match mem.states.insert(key.clone(), now_state.clone()) {
            Some(before) if before != now_state => events.push(json!({
                "time": now, "kind": "state", "node": name,
                "text": format!("{name}: {before} → {now_state}"),
            })),
            _ => {}
        }
    }
    if let Some(before) = mem.votes.filter(|b| votes > *b) {
        events.push(json!({
            "time": now, "kind": "votes",
            "text": format!("{} votes cast", votes - before),
        }));
    }
    mem.votes = Some(votes);
    for e in events {
        mem.timeline.push_front(e);
    }
    mem.timeline.truncate(TIMELINE);
    let (storage_rate, onion_rate) = match mem.totals {
        Some((t, s, o)) => {
            let dt = t.elapsed().as_secs_f64().max(1e-3);
            (
                ((storage_total - s) / dt).max(0.0),
                ((onion_total - o) / dt).max(0.0),
            )
        }
        None => (0.0, 0.0),
    };
    mem.totals = Some((Instant::now(), storage_total, onion_total));
    let swarms: Vec<Value> = swarms
        .into_iter()
        .map(|(id, members)| json!({"id": id, "members": members}))
        .collect();
    json!({
        "updated": now,
        "nodes": nodes,
        "swarms": swarms,
        "timeline": mem.timeline,
        "rates": {"storage": storage_rate, "onion": onion_rate},
    })
}

async fn handle(
    snapshot: Arc<Mutex<Value>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (body, ctype) = match req.uri().path() {
        "/" => (PAGE.to_owned(), "text/html; charset=utf-8"),
        "/api/state" => (
            snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_string(),
            "application/json",
        ),
        _ => ("not found".to_owned(), "text/plain"),
    };
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    if ctype == "text/plain" {
        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
    }
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    Ok(r)
}

/// Serves the page on 127.0.0.1:`port` (a free one when 0) until interrupted.
pub async fn web(dir: &Path, port: u16) -> anyhow::Result<()> {
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let mut mem = Memory::default();
    let snapshot = Arc::new(Mutex::new(poll(&state, &mut mem).await));
    let s = snapshot.clone();
    let dir = dir.to_owned();
    tokio::spawn(async move {
        let mut state = state;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // Pick up restarts (new pids) made by other devnet commands.
            if let Ok(Some(fresh)) = load(&dir) {
                state = fresh;
            }
            let v = poll(&state, &mut mem).await;
            *s.lock().unwrap_or_else(|p| p.into_inner()) = v;
        }
    });
    println!("devnet page at http://{addr}/ (Ctrl-C to stop)");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(snapshot.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_metric_families() {
        let text = "# HELP x\nsispop_onion_requests_total{role=\"entry\",outcome=\"relayed\"} 3\n\
                    sispop_onion_requests_total{role=\"hop\",outcome=\"failed\"} 2\n\
                    sispop_onion_requests_totalx 9\nsispop_votes_cast_total 4\n";
        assert_eq!(metric_sum(text, "sispop_onion_requests_total"), 5.0);
        assert_eq!(metric_sum(text, "sispop_votes_cast_total"), 4.0);
        assert_eq!(metric_sum(text, "sispop_storage_requests_total"), 0.0);
    }
}
