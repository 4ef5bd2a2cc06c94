//! The command line of `devnet`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{dissolve, hostile, onion, scenario};

#[derive(Parser)]
#[command(name = "devnet", about = "Run a local Sispop development network")]
pub(crate) struct Cli {
    /// Directory holding the network's nodes and devnet.json.
    #[arg(long, global = true, default_value = "devnet-data")]
    pub(crate) dir: PathBuf,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Create (or resume) the network, register the service nodes, wait until all agree.
    Up {
        /// Number of service nodes (a plain node is added).
        #[arg(long, default_value_t = 20)]
        nodes: usize,
        /// Path of the sispopd binary (default: next to this binary, then PATH).
        #[arg(long)]
        sispopd: Option<PathBuf>,
        /// Seconds to wait for the network before giving up.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Log filter of the nodes started now and restarted later (sispopd's `--log-level`),
        /// e.g. `info,sispopd::relay::onion=debug`.
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Print a table of the nodes.
    Status,
    /// Serve a live page of the devnet on 127.0.0.1 (nodes, swarms, a timeline of state
    /// changes and votes, request rates) and print its URL.
    Web {
        /// Port (a free one when omitted).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Stop every node.
    Down,
    /// Throughput runs against the running devnet.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Fault scenarios against the running devnet, with a timeline of what the network did.
    Scenario {
        #[command(subcommand)]
        which: Scenario,
    },
    /// Restart one node (by name) with its recorded command line, optionally with devnet
    /// faults switched on (`--dev-fault no-proofs`, `--dev-fault unreachable`); without
    /// `--dev-fault` it runs healthy again.
    Restart {
        /// The node's name (`sn-3`).
        name: String,
        /// Fault to switch on; repeatable.
        #[arg(long, value_name = "FAULT")]
        dev_fault: Vec<String>,
        /// Path of the sispopd binary.
        #[arg(long)]
        sispopd: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum Scenario {
    /// SIGKILL some service nodes, restart some of them once they are decommissioned, and
    /// print who was voted what, at which height, and how long it took. Checks that every
    /// node holds the same list and that no healthy node is voted against.
    Outage(scenario::OutageOpts),
    /// Store messages in one swarm, decommission enough nodes (`--dev-fault no-proofs`) that
    /// it is dissolved, check that every message reached every member of its new swarm, then
    /// bring the nodes back and check again (needs at least two swarms: `up --nodes 21`).
    Dissolve(dissolve::DissolveOpts),
    /// Onion requests through 3 hops with each encryption type, to a storage node and to an
    /// HTTP server; malformed onions, loops, a stalled next hop, a stalled HTTP server and a
    /// decommissioned node each get their error reply, not a hang.
    Onion(onion::OnionOpts),
    /// What anyone on the internet can do to a service node, from outside: hundreds of
    /// requests reset before their answers on every port it listens on, then thousands of
    /// connections from 200 addresses that send bodies a byte at a time or never read their
    /// (large) answers, while a fresh client stores and retrieves; checks that the node keeps
    /// running and serving, answers the fresh client within a second, and stays within a
    /// memory bound.
    Hostile(hostile::HostileOpts),
}

#[derive(Subcommand)]
pub(crate) enum Bench {
    /// A fresh node syncs the devnet's chain from its peers: blocks/s.
    Sync {
        /// Blocks to add first (with 4 transfers each) so there is something to sync.
        #[arg(long, default_value_t = 200)]
        blocks: u64,
        /// Path of the sispopd binary.
        #[arg(long)]
        sispopd: Option<PathBuf>,
    },
    /// Storage over HTTPS against one service node (its swarm replicates every store):
    /// stores/s, retrieves/s, p50/p99, through `sispop-storage bench`.
    Storage {
        /// Keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Stores to send.
        #[arg(long, default_value_t = 20_000)]
        stores: u64,
        /// Retrieves to send.
        #[arg(long, default_value_t = 20_000)]
        retrieves: u64,
    },
    /// Onion requests through random 3-hop paths of the devnet's service nodes, from a client
    /// on this machine: requests/s, p50/p99, CPU time of the client and of the nodes.
    Onion {
        /// Nodes in each path (1: the entry answers; the figure without relaying).
        #[arg(long, default_value_t = 3)]
        hops: usize,
        /// Requests to send.
        #[arg(long, default_value_t = 5_000)]
        requests: u64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Layer encryption: `xchacha20` or `aes-gcm`.
        #[arg(long, default_value = "xchacha20")]
        enc: String,
    },
    /// Propagation delay of new blocks to every node: p50 / p99.
    Gossip {
        /// Blocks to time.
        #[arg(long, default_value_t = 30)]
        blocks: u64,
    },
}
