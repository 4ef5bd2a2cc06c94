//! `sispopd`: the Sispop service node daemon, and its console commands forwarded to a running
//! daemon (`sispopd status`).

mod config;
mod console;
mod console_reg;
mod node;
mod rpc;
mod rpc_sn;
mod snkeys;

use std::process::ExitCode;

use anyhow::Context;
use sispop_chain::Address;
use sispop_staking::ServiceNodeList;
use tracing::{error, info};

use crate::config::Args;
use crate::node::Node;

async fn wait_for_signal(node: &Node) {
    let mut stop = node.shutdown.subscribe();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot watch SIGTERM");
            let _ = stop.changed().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, stopping"),
        _ = term.recv() => info!("SIGTERM received, stopping"),
        _ = stop.changed() => info!("stop requested over RPC"),
    }
}

async fn run_daemon(args: Args) -> anyhow::Result<()> {
    let params = args.params();
    let data_dir = args.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let mining_to = args
        .mine_to
        .as_deref()
        .map(|a| Address::parse(a, params).with_context(|| format!("--mine-to {a}")))
        .transpose()?;
    let chain_dir = data_dir.join("chain");
    let chain = node::Chain::open_with(params, &chain_dir, ServiceNodeList::new(params))
        .with_context(|| format!("opening chain at {}", chain_dir.display()))?;
    let (height, hash) = chain.tip();
    info!(network = params.name, %height, top = %hash, dir = %data_dir.display(), service_nodes = chain.ext().state().nodes.len(), "chain loaded");
    let sn_keys = if args.service_node {
        let keys = snkeys::ServiceNodeKeys::load_or_create(&data_dir)?;
        info!(pubkey = %keys.primary, "running as a service node");
        Some(keys)
    } else {
        None
    };
    let node = Node::new(chain, mining_to, sn_keys);

    let rpc_addr = format!("{}:{}", args.rpc_bind_ip, args.rpc_port());
    let listener = tokio::net::TcpListener::bind(&rpc_addr)
        .await
        .with_context(|| format!("binding RPC to {rpc_addr}"))?;
    let rpc = tokio::spawn(rpc::serve(node.clone(), listener));
    let p2p_port = args.p2p_bind_port.unwrap_or(params.p2p_port);
    info!(
        p2p_port,
        "peer-to-peer networking is not part of this build yet; running as a standalone node"
    );
    let miner = mining_to.map(|a| tokio::spawn(node::run_miner(node.clone(), a)));

    wait_for_signal(&node).await;
    node.request_shutdown();
    let _ = rpc.await;
    if let Some(m) = miner {
        let _ = m.await;
    }
    let mut st = node.lock();
    st.chain.flush().context("flushing the chain database")?;
    info!(height = %st.chain.tip().0, "stopped cleanly");
    Ok(())
}

/// Output to a closed pipe (`| head`) ends the process quietly, as command-line tools do,
/// instead of panicking inside `println!`.
#[expect(
    unsafe_code,
    reason = "restoring the default SIGPIPE action needs libc::signal"
)]
fn default_sigpipe() {
    // SAFETY: called once at startup before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let args = match Args::load() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.command.is_empty() {
        return match runtime.block_on(console::run(&args.daemon_url(), &args.command)) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match runtime.block_on(run_daemon(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
