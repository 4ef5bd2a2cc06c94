//! `devnet bench onion`: onion requests per second through the devnet's service nodes, with
//! latency and the CPU time of the client and of the nodes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rand::seq::SliceRandom as _;
use serde_json::json;
use sispop_client::storage::active_nodes;
use sispop_relay::client::{build, open_answer, Answer, Destination, KeyTables, Node};
use sispop_relay::crypto::EncType;

use crate::onion::{node_of, SALT};
use crate::{alive, load};

/// `devnet bench onion`: `requests` `get_swarm` requests through fresh random paths of `hops`
/// nodes (3: entry, relay, destination), `concurrency` at a time over keep-alive connections to the
/// entries; prints requests/s, p50/p99 latency, and the CPU time the client and the nodes
/// used.
pub async fn bench(
    dir: &Path,
    hops: usize,
    requests: u64,
    concurrency: usize,
    enc: EncType,
) -> anyhow::Result<()> {
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let rpc = state
        .nodes
        .iter()
        .find(|n| n.service_node && n.pid.is_some_and(alive))
        .context("no service node is running")?
        .rpc_url
        .clone();
    let nodes = active_nodes(&rpc).await?;
    let all: Arc<Vec<(Node, SocketAddr)>> = Arc::new(
        nodes
            .iter()
            .filter_map(|s| Some((node_of(s)?, s.addr)))
            .collect(),
    );
    ensure!(
        (1..=all.len()).contains(&hops),
        "a path of {hops} needs that many active service nodes with proofs"
    );
    let id = format!("05{}", hex::encode(rand::random::<[u8; 32]>()));
    let body = Arc::new(json!({"method": "get_swarm", "params": {"pubkey": id}}).to_string());
    println!(
        "onion bench: {requests} get_swarm requests through {hops} random hops of {} nodes, {concurrency} at a time, {}",
        all.len(),
        enc.name()
    );
    let pids: Vec<u32> = state
        .nodes
        .iter()
        .filter_map(|n| n.pid.filter(|p| alive(*p)))
        .collect();
    // What the nodes use idle (blocks, proofs, gossip), to take out of the figure.
    let idle_from = (Instant::now(), nodes_cpu(&pids));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rate = (nodes_cpu(&pids) - idle_from.1) / idle_from.0.elapsed().as_secs_f64();
    let cpu_before = nodes_cpu(&pids);
    let self_before = own_cpu();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = sispop_client::storage::progress("onion requests", done.clone(), requests);
    let start = Instant::now();
    // The client keeps precomputed tables of the nodes' keys, as a client that sends many
    // requests would (each layer then costs about half as much to build).
    let tables = Arc::new(KeyTables::default());
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|c| {
            let (all, body, next, done) = (all.clone(), body.clone(), next.clone(), done.clone());
            let tables = tables.clone();
            tokio::spawn(async move {
                // Each task enters at one node, over one keep-alive connection.
                let (entry, addr) = all[c % all.len()];
                let mut conn = None;
                let mut lat = Vec::new();
                let mut failed = 0u64;
                let mut sample = None;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                    let t0 = Instant::now();
                    // A stalled node answers within the hops' 30 s timeout; an entry that
                    // stopped answering at all must not hang the bench.
                    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
                        let mut path = {
                            let mut rng = rand::thread_rng();
                            let rest: Vec<Node> = all
                                .choose_multiple(&mut rng, hops)
                                .map(|(n, _)| *n)
                                .filter(|n| *n != entry)
                                .take(hops - 1)
                                .collect();
                            rest
                        };
                        path.insert(0, entry);
                        let built = build(
                            &path,
                            &Destination::Storage,
                            body.as_bytes(),
                            enc,
                            SALT,
                            // A generator seeded from the system's (ChaCha12), not a
                            // system call for every key and nonce.
                            &mut rand::thread_rng(),
                            Some(&tables),
                        )?;
                        if conn.is_none() {
                            conn = Some(sispop_client::storage::connect_from(addr, None).await?);
                        }
                        let send = conn.as_mut().context("connection")?;
                        let req = hyper::Request::post("/onion_req/v2")
                            .header(hyper::header::HOST, addr.to_string())
                            .body(Full::new(Bytes::from(built.body)))?;
                        let resp = send.send_request(req).await?;
                        let status = resp.status().as_u16();
                        let b = resp.into_body().collect().await?.to_bytes();
                        match open_answer(&built.reply, status, &b)? {
                            Answer::Destination { status: 200, .. } => Ok(()),
                            other => Err(anyhow::anyhow!("{other:?}")),
                        }
                    })
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 60 s")));
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match outcome {
                        Ok(()) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => {
                            failed += 1;
                            sample.get_or_insert(format!("{e:#}"));
                            conn = None;
                        }
                    }
                }
                (lat, failed, sample)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut sample = None;
    for t in tasks {
        let (l, f, s) = t.await?;
        lat.extend(l);
        failed += f;
        sample = sample.or(s);
    }
    ticker.abort();
    let secs = start.elapsed().as_secs_f64();
    let client_cpu = own_cpu() - self_before;
    let node_cpu = (nodes_cpu(&pids) - cpu_before - idle_rate * secs).max(0.0);
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "onion: {} ok, {failed} failed in {secs:.1} s: {:.0} requests/s, latency p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        lat.len() as f64 / secs.max(1e-9),
        q(0.5),
        q(0.99)
    );
    let n = lat.len().max(1) as f64;
    println!(
        "cpu: client {client_cpu:.1} s ({:.0} µs/request), nodes {node_cpu:.1} s beyond idle ({:.0} µs/request; idle {idle_rate:.2} cores), of {:.1} s of 2 cores",
        client_cpu * 1e6 / n,
        node_cpu * 1e6 / n,
        secs * 2.0
    );
    if let Some(e) = sample {
        println!("  a failure: {e}");
    }
    ensure!(!lat.is_empty(), "no request went through");
    Ok(())
}

/// CPU seconds (user + system) this process has used.
fn own_cpu() -> f64 {
    proc_cpu("self")
}

/// CPU seconds the processes have used, from /proc.
fn nodes_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|p| proc_cpu(&p.to_string())).sum()
}

fn proc_cpu(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 a second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
