//! `devnet bench sync|gossip`: throughput runs against a running devnet.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use sispop_chain::COIN;
use sispop_wallet::{Account, Daemon, Wallet};

use crate::{find_sispopd, free_port, info, kill, load, spawn, NodeEntry};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints `done/total what (pct, rate/s)` to standard error when 2 s have passed since the last.
fn note_progress(last: &mut Instant, began: Instant, what: &str, done: u64, total: u64) {
    if last.elapsed() < Duration::from_secs(2) {
        return;
    }
    *last = Instant::now();
    eprintln!(
        "  {done}/{total} {what} ({:.0} %, {:.1}/s)",
        done as f64 * 100.0 / total.max(1) as f64,
        done as f64 / began.elapsed().as_secs_f64().max(1e-3)
    );
}

pub async fn gossip(dir: &Path, blocks: u64) -> anyhow::Result<()> {
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let d0 = Daemon::new(&state.nodes[0].rpc_url)?;
    let others: Vec<Daemon> = state.nodes[1..]
        .iter()
        .map(|n| Daemon::new(&n.rpc_url))
        .collect::<Result<_, _>>()?;
    let mut delays = Vec::new();
    let began = Instant::now();
    let mut last_note = began;
    for done in 0..blocks {
        note_progress(&mut last_note, began, "blocks timed", done, blocks);
        let r = d0
            .call(
                "generateblocks",
                json!({"amount_of_blocks": 1, "wallet_address": state.miner_address}),
            )
            .await?;
        let start = Instant::now();
        let hash = r["blocks"][0].as_str().context("hash")?.to_owned();
        let mut pending: Vec<usize> = (0..others.len()).collect();
        let deadline = start + Duration::from_secs(30);
        while !pending.is_empty() {
            let mut still = Vec::new();
            for i in pending {
                let tip = others[i].call("get_info", json!({})).await?;
                let seen = tip["top_block_hash"].as_str() == Some(hash.as_str())
                    || others[i]
                        .call("get_block_header_by_hash", json!({"hash": hash}))
                        .await
                        .is_ok();
                if seen {
                    delays.push(start.elapsed().as_secs_f64() * 1000.0);
                } else {
                    still.push(i);
                }
            }
            pending = still;
            if Instant::now() > deadline {
                bail!(
                    "{} nodes did not receive block {hash} within 30 s",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    delays.sort_by(f64::total_cmp);
    println!(
        "gossip: {blocks} blocks to {} nodes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (includes RPC polling of every node)",
        others.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

pub async fn sync(dir: &Path, blocks: u64, sispopd: Option<PathBuf>) -> anyhow::Result<()> {
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let sispopd = find_sispopd(sispopd)?;
    let d0 = Daemon::new(&state.nodes[0].rpc_url)?;
    // Blocks with transfers, so sync validates real RingCT transactions.
    let pw = crate::wallet_password(dir)?;
    let mut w = Wallet::open(&state.miner_wallet, pw.as_bytes())?;
    let to = Account::generate().address();
    let mut left = blocks;
    let mut transfers = 0u64;
    while left > 0 {
        w.refresh(&d0).await?;
        for _ in 0..4 {
            match w.transfer(&d0, &to, COIN).await {
                Ok(_) => transfers += 1,
                Err(e) => {
                    eprintln!("transfer skipped: {e}");
                    break;
                }
            }
        }
        d0.call(
            "generateblocks",
            json!({"amount_of_blocks": 1, "wallet_address": state.miner_address}),
        )
        .await?;
        left -= 1;
    }
    w.save()?;
    let target = info(&state.nodes[0].rpc_url).await?["height"]
        .as_u64()
        .unwrap_or(0);
    let fresh = NodeEntry {
        name: "bench-sync".into(),
        data_dir: dir.join("bench-sync"),
        rpc_url: String::new(),
        rpc_port: free_port()?,
        p2p_port: free_port()?,
        pid: None,
        mining: false,
        service_node: false,
        peers: state.nodes.iter().take(3).map(|n| n.p2p_port).collect(),
        storage_port: 0,
        dev_faults: Vec::new(),
        metrics_url: None,
        log_level: None,
        max_concurrency: None,
    };
    let _ = std::fs::remove_dir_all(&fresh.data_dir);
    let url = format!("http://127.0.0.1:{}", fresh.rpc_port);
    let start = Instant::now();
    let pid = spawn(&sispopd, &fresh, &state.miner_address)?;
    let result = async {
        let mut last_note = Instant::now();
        loop {
            if let Ok(i) = info(&url).await {
                let h = i["height"].as_u64().unwrap_or(0);
                if h >= target {
                    break Ok::<_, anyhow::Error>(());
                }
                note_progress(&mut last_note, start, "blocks synced", h, target);
            }
            if start.elapsed() > Duration::from_secs(600) {
                bail!("sync did not finish in 600 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .await;
    let secs = start.elapsed().as_secs_f64();
    if let Ok(p) = libc::pid_t::try_from(pid) {
        kill(p, libc::SIGTERM);
    }
    result?;
    println!(
        "sync: a fresh node synced {target} blocks ({transfers} RingCT transfers in the last {blocks}) in {secs:.1} s: {:.0} blocks/s (includes process start-up)",
        target as f64 / secs
    );
    Ok(())
}

/// `devnet bench storage`: accounts owned by one service node's swarm, then
/// `sispop-storage bench` against that node.
pub async fn storage(
    dir: &Path,
    connections: usize,
    stores: u64,
    retrieves: u64,
) -> anyhow::Result<()> {
    let state = load(dir)?.context("no devnet; run `devnet up` first")?;
    // A service node that does not mine; on a one-node devnet (`up --nodes 1`: one swarm of
    // one, so no replication) the miner itself.
    let serving = |n: &&NodeEntry| n.service_node && n.storage_port != 0;
    let target = state
        .nodes
        .iter()
        .filter(serving)
        .find(|n| !n.mining)
        .or_else(|| state.nodes.iter().find(serving))
        .context("no service node with a storage port in this devnet")?;
    let d = Daemon::new(&target.rpc_url)?;
    let swarm = swarm_of(&d).await?;
    let lines = swarm_accounts(&d, &swarm, 64).await?;
    let file = dir.join("bench-storage-accounts.txt");
    std::fs::write(&file, lines.join("\n"))?;
    let client = std::env::current_exe()?.with_file_name("sispop-storage");
    println!(
        "target {} (swarm {swarm}; every store is replicated to its members)",
        target.name
    );
    let status = std::process::Command::new(&client)
        .args([
            "bench",
            "--target",
            &format!("https://127.0.0.1:{}", target.storage_port),
            "--pubkeys",
        ])
        .arg(&file)
        .args([
            "--connections",
            &connections.to_string(),
            "--stores",
            &stores.to_string(),
            "--retrieves",
            &retrieves.to_string(),
        ])
        .status()
        .with_context(|| format!("running {}", client.display()))?;
    if !status.success() {
        bail!("sispop-storage bench failed");
    }
    Ok(())
}

/// The swarm (as `get_service_nodes` names it) of the service node behind `d`.
async fn swarm_of(d: &Daemon) -> anyhow::Result<String> {
    let me = d.call("get_service_keys", json!({})).await?["service_node_pubkey"]
        .as_str()
        .context("service node key")?
        .to_owned();
    let sns = d
        .call("get_service_nodes", json!({"service_node_pubkeys": [me]}))
        .await?;
    Ok(sns["service_node_states"][0]["swarm"]
        .as_str()
        .context("the node is not in a swarm (is it active?)")?
        .to_owned())
}

/// `count` new accounts that `swarm` owns, as `sispop-storage bench --pubkeys` lines
/// (`<Session id> <seed hex>`).
pub async fn swarm_accounts(d: &Daemon, swarm: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut tries = 0;
    while lines.len() < count {
        tries += 1;
        if tries > 2000 {
            bail!("could not find accounts owned by swarm {swarm}");
        }
        let seed: [u8; 32] = rand::random();
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let id = format!(
            "05{}",
            hex::encode(sk.verifying_key().to_montgomery().to_bytes())
        );
        let owner = d.call("get_swarm", json!({"pubkey": id})).await?;
        if owner["swarm"].as_str() == Some(swarm) {
            lines.push(format!("{id} {}", hex::encode(seed)));
        }
    }
    Ok(lines)
}

/// Stores `stores` messages (1 h TTL) on a node for accounts its swarm owns, through
/// `sispop-storage bench`, so that the whole swarm holds them.
pub async fn seed_messages(dir: &Path, node: &NodeEntry, stores: u64) -> anyhow::Result<()> {
    let d = Daemon::new(&node.rpc_url)?;
    let swarm = swarm_of(&d).await?;
    let lines = swarm_accounts(&d, &swarm, 8).await?;
    let file = dir.join(format!("seed-accounts-{}.txt", node.name));
    std::fs::write(&file, lines.join("\n"))?;
    let client = std::env::current_exe()?.with_file_name("sispop-storage");
    let out = std::process::Command::new(&client)
        .args([
            "bench",
            "--target",
            &format!("https://127.0.0.1:{}", node.storage_port),
            "--pubkeys",
        ])
        .arg(&file)
        .args([
            "--connections",
            "2",
            "--sources",
            "2",
            "--stores",
            &stores.to_string(),
            "--retrieves",
            "0",
        ])
        .output()
        .with_context(|| format!("running {}", client.display()))?;
    if !out.status.success() {
        bail!(
            "storing messages on {} failed: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
