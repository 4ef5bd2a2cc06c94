//! `devnet`: bring up a local Sispop development network of `sispopd` processes on 127.0.0.1
//! (service nodes plus a plain node, in a sparse mesh), fund wallets by mining, register every
//! service node (solo and pooled), and wait until all nodes agree. State lives in
//! `<dir>/devnet.json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use cli::{Bench, Cli, Cmd, Scenario};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sispop_chain::{Network, NetworkParams, COIN};
use sispop_wallet::{Account, Daemon, Wallet, WalletFile};

/// The same allocator as the daemon's: the benches' client side allocates per request as much
/// as a node does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod cli;
mod dissolve;
mod hostile;
mod onion;
mod onion_bench;
mod scenario;
mod status;
mod web;

/// One node of the network, as recorded in devnet.json.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct NodeEntry {
    name: String,
    data_dir: PathBuf,
    rpc_url: String,
    rpc_port: u16,
    p2p_port: u16,
    pid: Option<u32>,
    mining: bool,
    service_node: bool,
    peers: Vec<u16>,
    /// Storage HTTPS port of a service node (0 in files written before it existed: the
    /// network default is used).
    #[serde(default)]
    storage_port: u16,
    /// `--dev-fault` values the node runs with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dev_faults: Vec<String>,
    /// Where the node serves Prometheus metrics (`http://127.0.0.1:PORT/metrics`; absent in
    /// files written before metrics existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics_url: Option<String>,
    /// `--log-level` the node runs with (sispopd's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,
    /// `--max-concurrency` the node runs with: its share of the machine's cores, at least
    /// one (absent in files written before it, and then sispopd's default, one per core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<usize>,
}

impl NodeEntry {
    /// The `IP:PORT` of `metrics_url`.
    fn metrics_bind(&self) -> Option<&str> {
        self.metrics_url
            .as_deref()?
            .strip_prefix("http://")?
            .strip_suffix("/metrics")
    }
}

/// devnet.json.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct DevnetFile {
    network: String,
    created: u64,
    miner_address: String,
    /// Wallet file holding the miner's keys (`sispop-wallet --wallet-file <it> address`).
    miner_wallet: PathBuf,
    nodes: Vec<NodeEntry>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `n` (rpc, p2p, storage, metrics) port quadruples, all distinct: every listener is held
/// until all are chosen, so the system cannot hand out the same port twice.
fn distinct_ports(n: usize) -> anyhow::Result<Vec<(u16, u16, u16, u16)>> {
    let held: Vec<TcpListener> = (0..4 * n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    Ok(ports
        .chunks_exact(4)
        .map(|p| (p[0], p[1], p[2], p[3]))
        .collect())
}

fn alive(pid: u32) -> bool {
    // A process exists and is not a zombie.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn find_sispopd(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    if let Ok(me) = std::env::current_exe() {
        let sibling = me.with_file_name("sispopd");
        if sibling.exists() {
            return Ok(sibling);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("sispopd");
            if p.exists() {
                return Ok(p);
            }
        }
    }
    bail!("cannot find the sispopd binary; build it (cargo build -p sispopd) or pass --sispopd")
}

fn load(dir: &Path) -> anyhow::Result<Option<DevnetFile>> {
    let p = dir.join("devnet.json");
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| {
        format!("{} is not a devnet state file", p.display())
    })?))
}

/// The password of the devnet's wallets, kept in `<dir>/wallet-password` (mode 0600) so an
/// operator can open them: `sispop-wallet --password-file <dir>/wallet-password ...`.
pub(crate) fn wallet_password(dir: &Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let p = dir.join("wallet-password");
    if !p.exists() {
        let mut raw = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        sispop_wallet::keys::write_private(&p, hex::encode(raw).as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(zeroize::Zeroizing::new(text.trim_end().to_owned()))
}

fn save(dir: &Path, f: &DevnetFile) -> anyhow::Result<()> {
    let tmp = dir.join("devnet.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(f)?)?;
    std::fs::rename(&tmp, dir.join("devnet.json"))?;
    Ok(())
}

fn spawn(sispopd: &Path, node: &NodeEntry, miner: &str) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(&node.data_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.data_dir.join("sispopd.log"))?;
    let mut cmd = Command::new(sispopd);
    cmd.arg("--devnet")
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(["--rpc-bind-port", &node.rpc_port.to_string()])
        .args([
            "--p2p-bind-ip",
            "127.0.0.1",
            "--p2p-bind-port",
            &node.p2p_port.to_string(),
        ]);
    for p in &node.peers {
        cmd.arg("--add-peer").arg(format!("127.0.0.1:{p}"));
    }
    if node.service_node {
        cmd.arg("--service-node")
            .args(["--storage-bind-ip", "127.0.0.1"]);
        if node.storage_port != 0 {
            cmd.args(["--storage-port", &node.storage_port.to_string()]);
        }
    }
    if node.mining {
        cmd.arg("--mine-to").arg(miner);
    }
    for f in &node.dev_faults {
        cmd.arg("--dev-fault").arg(f);
    }
    if let Some(bind) = node.metrics_bind() {
        cmd.arg("--metrics-bind").arg(bind);
    }
    if let Some(level) = &node.log_level {
        cmd.arg("--log-level").arg(level);
    }
    if let Some(n) = node.max_concurrency {
        cmd.arg("--max-concurrency").arg(n.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", sispopd.display()))?;
    Ok(child.id())
}

async fn info(url: &str) -> anyhow::Result<Value> {
    Ok(Daemon::new(url)?.call("get_info", json!({})).await?)
}

async fn generate(d: &Daemon, mut n: u64, to: &str) -> anyhow::Result<()> {
    while n > 0 {
        let k = n.min(50);
        d.call(
            "generateblocks",
            json!({"amount_of_blocks": k, "wallet_address": to}),
        )
        .await?;
        n -= k;
    }
    Ok(())
}

/// Whether every node has the same block at the lowest height any of them has reached (the
/// miner keeps extending the chain while we ask). Returns that height and block id.
async fn all_agree(state: &DevnetFile) -> Option<(u64, String)> {
    let mut lowest = u64::MAX;
    for n in &state.nodes {
        lowest = lowest.min(info(&n.rpc_url).await.ok()?["height"].as_u64()?);
    }
    let top = lowest.checked_sub(1)?;
    let mut seen: Option<String> = None;
    for n in &state.nodes {
        let h = Daemon::new(&n.rpc_url)
            .ok()?
            .call("get_block_header_by_height", json!({"height": top}))
            .await
            .ok()?;
        let hash = h["block_header"]["hash"].as_str()?.to_owned();
        match &seen {
            None => seen = Some(hash),
            Some(s) if *s == hash => {}
            Some(_) => return None,
        }
    }
    Some((lowest, seen?))
}

/// Registers every service node that is not registered yet: two of every three solo (the
/// miner wallet stakes everything), the third pooled between the miner (50 %) and two
/// contributor wallets (30 % and 20 %).
async fn register_all(dir: &Path, state: &DevnetFile, deadline: Instant) -> anyhow::Result<()> {
    let params = NetworkParams::get(Network::Devnet);
    let d0 = Daemon::new(&state.nodes[0].rpc_url)?;
    let registered: Vec<String> = d0.call("get_service_nodes", json!({})).await?
        ["service_node_states"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["service_node_pubkey"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut todo = Vec::new();
    for n in state.nodes.iter().filter(|n| n.service_node) {
        let keys = Daemon::new(&n.rpc_url)?
            .call("get_service_keys", json!({}))
            .await?;
        let pk = keys["service_node_pubkey"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !registered.contains(&pk) {
            todo.push((n.clone(), pk));
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let pw = wallet_password(dir)?;
    let mut miner = Wallet::open(&state.miner_wallet, pw.as_bytes())?;
    let contributors: Vec<Account> = (0..2)
        .map(|i| {
            let f = dir.join(format!("contributor-{i}.json"));
            if f.exists() {
                WalletFile::load(&f, pw.as_bytes()).map(|u| u.account)
            } else {
                let a = Account::generate();
                WalletFile::create(&f, &a, params, pw.as_bytes()).map(|_| a)
            }
        })
        .collect::<Result<_, _>>()?;
    let pooled = todo.iter().enumerate().filter(|(i, _)| i % 3 == 2).count() as u64;
    // 100 per node, plus what the miner sends the contributors of pooled nodes.
    let need = todo.len() as u64 * 100 + pooled * 60 + 10;
    let miner_addr = miner.address().to_string(params);
    println!(
        "funding: mining {} blocks for {} registrations ({pooled} pooled)",
        need / 16 + 30,
        todo.len()
    );
    generate(&d0, need / 16 + 30, &miner_addr).await?;
    miner.refresh(&d0).await?;
    // Contributors: 30 and 20 coins per pooled node, plus fees.
    let mut cw: Vec<Wallet> = Vec::new();
    for (i, c) in contributors.iter().enumerate() {
        let amount = pooled * if i == 0 { 30 } else { 20 } * COIN + pooled * COIN;
        if amount > pooled * COIN {
            // One output per pooled node, so each stake has its own input.
            for _ in 0..pooled {
                miner.transfer(&d0, &c.address(), amount / pooled).await?;
            }
        }
        cw.push(Wallet::new(Account::from_spend(c.spend), params));
    }
    generate(&d0, 3, &miner_addr).await?;
    miner.refresh(&d0).await?;
    for w in &mut cw {
        w.refresh(&d0).await?;
    }
    for (i, (n, pk)) in todo.iter().enumerate() {
        let d = Daemon::new(&n.rpc_url)?;
        let pool = i % 3 == 2;
        let contributions = if pool {
            json!([
                {"address": miner_addr, "amount": 50 * COIN},
                {"address": cw[0].address().to_string(params), "amount": 30 * COIN},
                {"address": cw[1].address().to_string(params), "amount": 20 * COIN},
            ])
        } else {
            json!([{"address": miner_addr, "amount": 100 * COIN}])
        };
        let fee = if pool { "10%" } else { "100%" };
        let cmd = d
            .call(
                "get_service_node_registration_cmd",
                json!({"operator_cut": fee, "contributions": contributions}),
            )
            .await?;
        let cmd = cmd["registration_cmd"]
            .as_str()
            .context("registration command")?
            .to_owned();
        let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let mut tries = 0;
        loop {
            match miner.stake(&d0, None, None, Some(&words)).await {
                Ok(_) => break,
                // Not enough unlocked coins yet: mine some more and try again.
                Err(sispop_wallet::WalletError::Funds { .. }) if tries < 10 => {
                    tries += 1;
                    generate(&d0, 12, &miner_addr).await?;
                    miner.refresh(&d0).await?;
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("registering {}", n.name)))
                }
            }
        }
        if pool {
            generate(&d0, 1, &miner_addr).await?;
            let sn = sispop_chain::PublicKey::from_hex(pk).context("pubkey")?;
            for (w, amt) in cw.iter_mut().zip([30 * COIN, 20 * COIN]) {
                w.refresh(&d0).await?;
                w.stake(&d0, Some(sn), Some(amt), None)
                    .await
                    .with_context(|| format!("contributing to {}", n.name))?;
            }
        }
        println!(
            "registered {} ({}){}",
            n.name,
            &pk[..16],
            if pool {
                " pooled: 50% operator, 30% + 20% contributors"
            } else {
                " solo"
            }
        );
        if Instant::now() > deadline {
            bail!("timed out registering service nodes");
        }
    }
    generate(&d0, 2, &miner_addr).await?;
    miner.save()?;
    Ok(())
}

async fn up(
    dir: &Path,
    nodes: usize,
    sispopd: Option<PathBuf>,
    timeout: u64,
    log_level: Option<String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let sispopd = find_sispopd(sispopd)?;
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let params = NetworkParams::get(Network::Devnet);
    let mut state = match load(&dir)? {
        Some(s) => {
            println!("resuming the devnet in {}", dir.display());
            s
        }
        None => {
            let miner = Account::generate();
            let miner_wallet = dir.join("miner-wallet.json");
            for stale in [
                "miner-wallet.json",
                "miner-wallet.json.cache",
                "contributor-0.json",
                "contributor-1.json",
                "wallet-password",
            ] {
                let _ = std::fs::remove_file(dir.join(stale));
            }
            WalletFile::create(
                &miner_wallet,
                &miner,
                params,
                wallet_password(&dir)?.as_bytes(),
            )?;
            // Service nodes 0..n, then one plain node; a sparse ring with chords.
            let total = nodes + 1;
            // Each process gets its share of the cores for its async threads: one node's
            // default of one per core, times every node, only adds wake-ups and switches.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let share = (cores / total).max(1);
            let ports = distinct_ports(total)?;
            let mut entries = Vec::new();
            for i in 0..total {
                let mut peers: Vec<u16> = [1usize, 2, 5]
                    .iter()
                    .filter(|k| **k < total)
                    .map(|k| ports[(i + k) % total].1)
                    .collect();
                peers.sort_unstable();
                peers.dedup();
                let service_node = i < nodes;
                entries.push(NodeEntry {
                    name: if service_node {
                        format!("sn-{i}")
                    } else {
                        "node".into()
                    },
                    data_dir: dir.join(if service_node {
                        format!("sn-{i}")
                    } else {
                        "node".into()
                    }),
                    rpc_url: format!("http://127.0.0.1:{}", ports[i].0),
                    rpc_port: ports[i].0,
                    p2p_port: ports[i].1,
                    storage_port: ports[i].2,
                    pid: None,
                    mining: i == 0,
                    service_node,
                    peers,
                    dev_faults: Vec::new(),
                    metrics_url: Some(format!("http://127.0.0.1:{}/metrics", ports[i].3)),
                    log_level: None,
                    max_concurrency: Some(share),
                });
            }
            println!(
                "creating a fresh devnet of {nodes} service nodes and 1 plain node in {}",
                dir.display()
            );
            DevnetFile {
                network: params.name.into(),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                miner_address: miner.address().to_string(params),
                miner_wallet,
                nodes: entries,
            }
        }
    };
    for node in &mut state.nodes {
        if log_level.is_some() {
            node.log_level.clone_from(&log_level);
        }
        if node.pid.is_some_and(alive) {
            if log_level.is_some() {
                println!(
                    "{} is running: its log filter applies from its next start",
                    node.name
                );
            }
            continue;
        }
        node.pid = Some(spawn(&sispopd, node, &state.miner_address)?);
    }
    save(&dir, &state)?;
    println!("started {} processes; waiting for RPC", state.nodes.len());
    for n in &state.nodes {
        wait_rpc(n, deadline).await?;
    }
    register_all(&dir, &state, deadline).await?;
    let want = state.nodes.iter().filter(|n| n.service_node).count();
    println!("waiting until every node agrees on the chain and sees {want} active service nodes");
    // Progress every few seconds: how many nodes see the whole list, and their heights.
    let mut last_note = Instant::now();
    let began = Instant::now();
    loop {
        let mut seeing = 0;
        let mut heights = Vec::new();
        for n in &state.nodes {
            let Ok(d) = Daemon::new(&n.rpc_url) else {
                continue;
            };
            if let Ok(i) = d.call("get_info", json!({})).await {
                heights.extend(i["height"].as_u64());
            }
            let active = d
                .call(
                    "get_service_nodes",
                    json!({"active_only": true, "fields": {"service_node_pubkey": true}}),
                )
                .await
                .ok()
                .and_then(|v| v["service_node_states"].as_array().map(Vec::len));
            seeing += usize::from(active == Some(want));
        }
        if seeing == state.nodes.len() && all_agree(&state).await.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for every node to agree on the chain and the service node list \
                 ({seeing}/{} see {want} active)",
                state.nodes.len()
            );
        }
        if last_note.elapsed() >= Duration::from_secs(3) {
            last_note = Instant::now();
            println!(
                "  {seeing}/{} nodes see {want} active service nodes; heights {}..{} ({:.0} s)",
                state.nodes.len(),
                heights.iter().min().copied().unwrap_or(0),
                heights.iter().max().copied().unwrap_or(0),
                began.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (h, hash) = all_agree(&state).await.context("agreement")?;
    let sns = Daemon::new(&state.nodes[0].rpc_url)?
        .call("get_service_nodes", json!({}))
        .await?;
    let mut swarms: Vec<u64> = sns["service_node_states"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["swarm_id"].as_u64()).collect())
        .unwrap_or_default();
    swarms.sort_unstable();
    swarms.dedup();
    println!("devnet is up: {} nodes agree at height {h} ({}…), {want} active service nodes in {} swarms", state.nodes.len(), &hash[..16], swarms.len());
    println!("miner address: {}", state.miner_address);
    println!("`devnet status` for details, `devnet down` to stop");
    Ok(())
}

/// Stops a node (SIGTERM, then SIGKILL after 20 s) and waits until it is gone.
fn stop(pid: u32) {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return;
    };
    kill(p, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        kill(p, libc::SIGKILL);
    }
}

/// Waits until a node answers RPC (bounded by `deadline`), failing early if it exited.
async fn wait_rpc(n: &NodeEntry, deadline: Instant) -> anyhow::Result<()> {
    let log = n.data_dir.join("sispopd.log");
    loop {
        if info(&n.rpc_url).await.is_ok() {
            return Ok(());
        }
        if !n.pid.is_some_and(alive) {
            let tail: String = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ");
            bail!(
                "{} exited during start-up ({}): {tail}",
                n.name,
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for {} to answer RPC (see {})",
                n.name,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn restart(
    dir: &Path,
    name: &str,
    faults: Vec<String>,
    sispopd: Option<PathBuf>,
) -> anyhow::Result<()> {
    let sispopd = find_sispopd(sispopd)?;
    let mut state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let miner = state.miner_address.clone();
    let n = state
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .with_context(|| format!("no node named {name}"))?;
    if let Some(pid) = n.pid.filter(|p| alive(*p)) {
        stop(pid);
    }
    n.dev_faults = faults;
    n.pid = Some(spawn(&sispopd, n, &miner)?);
    let n = n.clone();
    save(dir, &state)?;
    wait_rpc(&n, Instant::now() + Duration::from_secs(60)).await?;
    if n.dev_faults.is_empty() {
        println!("restarted {name}");
    } else {
        println!(
            "restarted {name} with --dev-fault {}",
            n.dev_faults.join(" --dev-fault ")
        );
    }
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(mut state) = load(dir)? else {
        bail!("no devnet in {}", dir.display());
    };
    let mut waiting = Vec::new();
    for n in &mut state.nodes {
        if let Some(pid) = n.pid.filter(|p| alive(*p)) {
            if let Ok(p) = libc::pid_t::try_from(pid) {
                kill(p, libc::SIGTERM);
                waiting.push((n.name.clone(), pid));
            }
        }
        n.pid = None;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, pid) in waiting {
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            if let Ok(p) = libc::pid_t::try_from(pid) {
                kill(p, libc::SIGKILL);
            }
            println!("{name} did not stop in time; killed");
        } else {
            println!("stopped {name}");
        }
    }
    save(dir, &state)
}

#[expect(
    unsafe_code,
    reason = "sending a signal to a process we started needs libc::kill"
)]
fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.cmd {
        Cmd::Up {
            nodes,
            sispopd,
            timeout,
            log_level,
        } => rt.block_on(up(&cli.dir, nodes, sispopd, timeout, log_level)),
        Cmd::Status => rt.block_on(status::status(&cli.dir)),
        Cmd::Web { port } => rt.block_on(web::web(&cli.dir, port)),
        Cmd::Down => down(&cli.dir),
        Cmd::Bench {
            which: Bench::Sync { blocks, sispopd },
        } => rt.block_on(bench::sync(&cli.dir, blocks, sispopd)),
        Cmd::Bench {
            which: Bench::Gossip { blocks },
        } => rt.block_on(bench::gossip(&cli.dir, blocks)),
        Cmd::Bench {
            which:
                Bench::Storage {
                    connections,
                    stores,
                    retrieves,
                },
        } => rt.block_on(bench::storage(&cli.dir, connections, stores, retrieves)),
        Cmd::Bench {
            which:
                Bench::Onion {
                    hops,
                    requests,
                    concurrency,
                    enc,
                },
        } => match sispop_relay::crypto::EncType::parse(Some(&enc)) {
            Ok(enc) => rt.block_on(onion_bench::bench(
                &cli.dir,
                hops,
                requests,
                concurrency,
                enc,
            )),
            Err(e) => Err(anyhow::anyhow!(e)),
        },
        Cmd::Scenario {
            which: Scenario::Outage(o),
        } => rt.block_on(scenario::outage(&cli.dir, o)),
        Cmd::Scenario {
            which: Scenario::Dissolve(o),
        } => rt.block_on(dissolve::dissolve(&cli.dir, o)),
        Cmd::Scenario {
            which: Scenario::Onion(o),
        } => rt.block_on(onion::onion(&cli.dir, o)),
        Cmd::Scenario {
            which: Scenario::Hostile(o),
        } => rt.block_on(hostile::hostile(&cli.dir, o)),
        Cmd::Restart {
            name,
            dev_fault,
            sispopd,
        } => rt.block_on(restart(&cli.dir, &name, dev_fault, sispopd)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
