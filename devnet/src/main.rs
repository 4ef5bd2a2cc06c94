//! `devnet`: bring up a local Sispop development network of `sispopd` processes on 127.0.0.1,
//! show its state, and take it down. State lives in `<dir>/devnet.json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::HttpClientBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sispop_chain::{Network, NetworkParams};
use sispop_wallet::{Account, WalletFile};

#[derive(Parser)]
#[command(name = "devnet", about = "Run a local Sispop development network")]
struct Cli {
    /// Directory holding the network's nodes and devnet.json.
    #[arg(long, global = true, default_value = "devnet-data")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create (or resume) the network and wait until it produces blocks.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Path of the sispopd binary (default: next to this binary, then PATH).
        #[arg(long)]
        sispopd: Option<PathBuf>,
        /// Seconds to wait for blocks before giving up.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print a table of the nodes.
    Status,
    /// Stop every node.
    Down,
}

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
}

/// devnet.json.
#[derive(Serialize, Deserialize, Debug)]
struct DevnetFile {
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

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // A process exists and is not a zombie.
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
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

fn state_path(dir: &Path) -> PathBuf {
    dir.join("devnet.json")
}

fn load(dir: &Path) -> anyhow::Result<Option<DevnetFile>> {
    let p = state_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| {
        format!("{} is not a devnet state file", p.display())
    })?))
}

fn save(dir: &Path, f: &DevnetFile) -> anyhow::Result<()> {
    let tmp = dir.join("devnet.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(f)?)?;
    std::fs::rename(&tmp, state_path(dir))?;
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
        .arg("--rpc-bind-port")
        .arg(node.rpc_port.to_string())
        .arg("--p2p-bind-port")
        .arg(node.p2p_port.to_string());
    if node.mining {
        cmd.arg("--mine-to").arg(miner);
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

async fn rpc(url: &str, method: &str) -> anyhow::Result<Value> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(5))
        .build(format!("{url}/json_rpc"))?;
    Ok(client
        .request::<Value, _>(method, ObjectParams::new())
        .await?)
}

async fn up(
    dir: &Path,
    nodes: usize,
    sispopd: Option<PathBuf>,
    timeout: u64,
) -> anyhow::Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
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
            if miner_wallet.exists() {
                std::fs::remove_file(&miner_wallet)?;
            }
            WalletFile::create(&miner_wallet, &miner, params)?;
            let addr = miner.address();
            let mut entries = Vec::new();
            for i in 0..nodes {
                let rpc_port = free_port()?;
                entries.push(NodeEntry {
                    name: format!("node-{i}"),
                    data_dir: dir.join(format!("node-{i}")),
                    rpc_url: format!("http://127.0.0.1:{rpc_port}"),
                    rpc_port,
                    p2p_port: free_port()?,
                    pid: None,
                    mining: i == 0,
                });
            }
            println!("creating a fresh devnet in {}", dir.display());
            DevnetFile {
                network: params.name.into(),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                miner_address: addr.to_string(params),
                miner_wallet,
                nodes: entries,
            }
        }
    };
    for node in &mut state.nodes {
        if node.pid.is_some_and(alive) {
            println!(
                "{} already running (pid {})",
                node.name,
                node.pid.unwrap_or(0)
            );
            continue;
        }
        let pid = spawn(&sispopd, node, &state.miner_address)?;
        node.pid = Some(pid);
        println!("started {} pid {} rpc {}", node.name, pid, node.rpc_url);
    }
    save(&dir, &state)?;

    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut first: Option<u64> = None;
    loop {
        if Instant::now() > deadline {
            bail!("the devnet did not produce blocks within {timeout} s; see the sispopd.log files under {}", dir.display());
        }
        for node in &state.nodes {
            if !node.pid.is_some_and(alive) {
                bail!(
                    "{} exited; see {}",
                    node.name,
                    node.data_dir.join("sispopd.log").display()
                );
            }
        }
        if let Ok(info) = rpc(&state.nodes[0].rpc_url, "get_info").await {
            let h = info["height"].as_u64().unwrap_or(0);
            match first {
                None => first = Some(h),
                Some(f) if h > f => {
                    println!("devnet is up: height {h} and growing; `devnet status` for details, `devnet down` to stop");
                    println!("miner address: {}", state.miner_address);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn status(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = load(dir)? else {
        bail!("no devnet in {}; run `devnet up`", dir.display());
    };
    println!(
        "{:<8} {:>8} {:<8} {:>8} {:<18} {:>5} {:<24}",
        "NAME", "PID", "STATE", "HEIGHT", "TOP", "POOL", "RPC"
    );
    for n in &state.nodes {
        let running = n.pid.is_some_and(alive);
        let info = if running {
            rpc(&n.rpc_url, "get_info").await.ok()
        } else {
            None
        };
        let (h, top, pool) = match &info {
            Some(i) => (
                i["height"].as_u64().map_or("?".into(), |h| h.to_string()),
                i["top_block_hash"]
                    .as_str()
                    .map_or("?".into(), |s| format!("{}…", &s[..s.len().min(16)])),
                i["tx_pool_size"]
                    .as_u64()
                    .map_or("?".into(), |p| p.to_string()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let st = match (running, info.is_some()) {
            (true, true) => "running",
            (true, false) => "starting",
            _ => "stopped",
        };
        println!(
            "{:<8} {:>8} {:<8} {:>8} {:<18} {:>5} {:<24}",
            n.name,
            n.pid.map_or("-".into(), |p| p.to_string()),
            st,
            h,
            top,
            pool,
            n.rpc_url
        );
    }
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(mut state) = load(dir)? else {
        bail!("no devnet in {}", dir.display());
    };
    for n in &mut state.nodes {
        let Some(pid) = n.pid.filter(|p| alive(*p)) else {
            n.pid = None;
            continue;
        };
        let Ok(p) = libc::pid_t::try_from(pid) else {
            continue;
        };
        kill(p, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            kill(p, libc::SIGKILL);
            println!("{} did not stop in time; killed", n.name);
        } else {
            println!("stopped {}", n.name);
        }
        n.pid = None;
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
    let rt = match tokio::runtime::Builder::new_current_thread()
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
        } => rt.block_on(up(&cli.dir, nodes, sispopd, timeout)),
        Cmd::Status => rt.block_on(status(&cli.dir)),
        Cmd::Down => down(&cli.dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
