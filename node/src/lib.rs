//! `sispopd` as a library: the daemon's parts, so integration tests can drive them.

pub mod accountability;
pub mod config;
pub mod console;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod relay;
pub mod rpc;
pub mod storage;
#[cfg(test)]
pub mod testnode;

use std::sync::Arc;

use anyhow::Context;
use sispop_chain::Address;
use sispop_staking::ServiceNodeList;
use tracing::{error, info, warn};

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

/// Runs the daemon until SIGINT, SIGTERM or `stop_daemon`.
pub async fn run_daemon(args: Args) -> anyhow::Result<()> {
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
        let keys = node::keys::ServiceNodeKeys::load_or_create(&data_dir)?;
        info!(pubkey = %keys.primary, "running as a service node");
        Some(keys)
    } else {
        None
    };
    let faults = node::faults::DevFaults::parse(&args.dev_fault).map_err(anyhow::Error::msg)?;
    if faults != node::faults::DevFaults::default() {
        if !params.sn.allow_dev_faults {
            anyhow::bail!("--dev-fault is only allowed on devnet");
        }
        warn!(?faults, "running with devnet faults switched on");
    }
    let endpoint = match args.service_node_public_ip.as_deref() {
        Some(ip) => Some(
            ip.parse::<std::net::Ipv4Addr>()
                .with_context(|| format!("--service-node-public-ip {ip}: not an IPv4 address"))?,
        ),
        None if params.sn.allow_private_ips => Some(std::net::Ipv4Addr::LOCALHOST),
        None => None,
    };
    let mut node = Node::new(chain, mining_to, sn_keys);
    node.faults = faults;
    node.keep_proofs_in(data_dir.join("proofs.json"));

    let rpc_addr = format!("{}:{}", args.rpc_bind_ip, args.rpc_port());
    let listener = tokio::net::TcpListener::bind(&rpc_addr)
        .await
        .with_context(|| format!("binding RPC to {rpc_addr}"))?;
    // The storage service, once started (service nodes): for metrics and the network's
    // answers, which start before it.
    let storage_cell: metrics::StorageCell = Arc::default();
    if let Some(addr) = &args.metrics_bind {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics to {addr}"))?;
        tokio::spawn(metrics::serve(node.clone(), storage_cell.clone(), listener));
    }
    let restriction = rpc::Restriction::from_flag(args.restricted_rpc);
    let rpc = tokio::spawn(rpc::serve(node.clone(), listener, restriction));
    let p2p_port = args.p2p_bind_port.unwrap_or(params.p2p_port);
    let listen = format!("/ip4/{}/tcp/{p2p_port}", args.p2p_bind_ip)
        .parse()
        .context("--p2p-bind-ip")?;
    let mut peers = Vec::new();
    for p in args.add_peer.iter().chain(&args.seed_node) {
        peers.push(
            p2p::parse_peer_addr(p)
                .with_context(|| format!("peer address {p} (use host:port or a multiaddr)"))?,
        );
    }
    let sn_seed = node.lock().sn_keys.as_ref().map(|k| k.seed);
    let keypair = p2p::load_identity(&data_dir, sn_seed).context("p2p identity")?;
    let sync_interval = std::time::Duration::from_millis(if params.target_block_time <= 5 {
        1000
    } else {
        5000
    });
    let (handle, net_task) = p2p::start(
        node.clone(),
        keypair,
        p2p::NetConfig {
            listen,
            peers,
            sync_interval,
        },
    )?;
    // What the services answer on the network (it imports none of them); onion layers go to
    // the relay, once a service node has started it.
    type Hops = std::sync::OnceLock<(Arc<relay::onion::Relay>, Arc<storage::server::Storage>)>;
    let hops: Arc<Hops> = Arc::default();
    let (to_relay, to_storage) = (hops.clone(), storage_cell.clone());
    let _ = handle.services.set(p2p::Services {
        on_proof: Arc::new(accountability::on_proof),
        on_vote: Arc::new(accountability::on_vote),
        admits: Arc::new(storage::sync::admits),
        answer: Arc::new(move |node, peer, request| {
            let (to_relay, storage) = (to_relay.clone(), to_storage.get().cloned());
            Box::pin(async move {
                // An onion layer waits on the next hop: a task, not a blocking thread.
                if request.first() == Some(&p2p::wire::tags::ONION) {
                    let Some((relay, storage)) = to_relay.get() else {
                        let mut v = 503u16.to_be_bytes().to_vec();
                        v.extend_from_slice(b"no relay service on this node");
                        return v;
                    };
                    return relay::onion::on_hop(&node, relay, storage, &peer, request).await;
                }
                storage::sync::answer_peer(node, storage, peer, request).await
            })
        }),
    });
    let _ = node.net.set(handle);
    let miner = mining_to.map(|a| tokio::spawn(node::run_miner(node.clone(), a)));
    let storage_port = args.storage_port.unwrap_or(params.storage_port);
    let storage_task = if args.service_node {
        let (storage, acceptor) = storage::server::open(&node, &data_dir)?;
        let addr = format!("{}:{storage_port}", args.storage_bind_ip);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding the storage server on {addr}"))?;
        let _ = storage_cell.set(storage.clone());
        let seed = node.lock().sn_keys.as_ref().map(|k| k.seed);
        if let Some(seed) = seed {
            let relay = relay::onion::Relay::start(&seed, args.max_concurrency)
                .context("starting the relay service")?;
            let relay = Arc::new(relay);
            let _ = hops.set((relay.clone(), storage.clone()));
            let _ = storage.onion_entry.set(relay::onion::at_entry(relay));
            if let Some(net) = node.net.get().filter(|_| !node.faults.no_sn_link) {
                tokio::spawn(p2p::link::serve(node.clone(), net.link.clone()));
            }
        }
        let sync = tokio::spawn(storage::sync::run(node.clone(), storage.clone()));
        tokio::spawn(storage::redeliver::run(node.clone(), storage.clone()));
        let serve = tokio::spawn(storage::server::serve(
            node.clone(),
            storage,
            acceptor,
            listener,
        ));
        Some((serve, sync))
    } else {
        None
    };
    let acct = args.service_node.then(|| {
        let endpoint = endpoint.map(|ip| accountability::Endpoint {
            ip,
            storage_port,
            p2p_port,
        });
        if endpoint.is_none() {
            warn!("--service-node-public-ip is not set: this node cannot send uptime proofs and will be decommissioned");
        }
        tokio::spawn(accountability::run(node.clone(), endpoint))
    });

    wait_for_signal(&node).await;
    node.request_shutdown();
    let _ = rpc.await;
    if let Some(m) = miner {
        let _ = m.await;
    }
    if let Some(a) = acct {
        let _ = a.await;
    }
    if let Some((serve, sync)) = storage_task {
        let _ = serve.await;
        let _ = sync.await;
    }
    let _ = net_task.await;
    let mut st = node.lock();
    st.chain.flush().context("flushing the chain database")?;
    info!(height = %st.chain.tip().0, "stopped cleanly");
    Ok(())
}
