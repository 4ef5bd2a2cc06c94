//! The running node: chain + mempool behind one lock, the miner task, and chain-change
//! handling. Consensus rules live in `sispop-chain`; this file only wires them to time and tasks.

pub mod counters;
pub mod directory;
pub mod faults;
pub mod keys;
pub mod proofs;
pub mod workers;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sispop_chain::{AddOutcome, Address, BlockError, Mempool, NetworkParams};
use sispop_staking::ServiceNodeList;

use crate::node::directory::{SnDirectory, SnIds};
use crate::node::keys::ServiceNodeKeys;
use faults::DevFaults;
use proofs::Accountability;

/// The chain with the service node list kept in step.
pub type Chain = sispop_chain::Blockchain<ServiceNodeList>;
use tokio::sync::watch;
use tracing::{info, warn};

/// Unix time now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Chain, pool and run-time facts shared by the RPC server and the miner.
pub struct NodeState {
    /// The chain.
    pub chain: Chain,
    /// The transaction pool.
    pub pool: Mempool,
    /// When the daemon started.
    pub started: Instant,
    /// Address being mined to, if mining.
    pub mining_to: Option<Address>,
    /// Blocks this node mined since start.
    pub blocks_mined: u64,
    /// This node's service node keys (with `--service-node`).
    pub sn_keys: Option<ServiceNodeKeys>,
}

/// Shared handle.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Mutex<NodeState>>,
    /// The network task, once started.
    pub net: Arc<std::sync::OnceLock<crate::p2p::NetHandle>>,
    /// The active service nodes' peer ids and X25519 keys, as of the tip it was built for.
    sn_directory: Arc<Mutex<SnDirectory>>,
    /// Network parameters.
    pub params: &'static NetworkParams,
    /// Fires when the daemon should stop.
    pub shutdown: watch::Sender<bool>,
    /// Proofs, probes and votes (see [`crate::accountability`]).
    acct: Arc<Mutex<Accountability>>,
    /// Devnet fault switches.
    pub faults: DevFaults,
    /// What the node counts for its metrics.
    pub metrics: Arc<counters::Metrics>,
}

impl Node {
    /// Wraps an opened chain.
    pub fn new(chain: Chain, mining_to: Option<Address>, sn_keys: Option<ServiceNodeKeys>) -> Node {
        let params = chain.params();
        let (shutdown, _) = watch::channel(false);
        Node {
            inner: Arc::new(Mutex::new(NodeState {
                chain,
                pool: Mempool::new(params.mempool_max_bytes),
                started: Instant::now(),
                mining_to,
                blocks_mined: 0,
                sn_keys,
            })),
            params,
            shutdown,
            net: Arc::new(std::sync::OnceLock::new()),
            sn_directory: Arc::new(Mutex::new(SnDirectory::default())),
            acct: Arc::new(Mutex::new(Accountability::load(None))),
            faults: DevFaults::default(),
            metrics: Arc::new(counters::Metrics::default()),
        }
    }

    /// Keeps uptime proofs in `path` (loading what is there).
    pub fn keep_proofs_in(&self, path: std::path::PathBuf) {
        *self.acct() = Accountability::load(Some(path));
    }

    /// The accountability state. Take it after the chain lock, never before.
    pub fn acct(&self) -> MutexGuard<'_, Accountability> {
        self.acct.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The active service node a libp2p peer is, if any. This is the one gate for every
    /// SN-only protocol: a service node's peer id is derived from its Ed25519 primary key.
    pub fn service_node_for_peer(&self, peer: &libp2p::PeerId) -> Option<sispop_chain::PublicKey> {
        self.sn_directory(&self.lock()).by_peer(peer)
    }

    /// An active service node's peer id and X25519 key; `None` if it is not active.
    pub fn active_sn_ids(&self, pk: &sispop_chain::PublicKey) -> Option<SnIds> {
        self.sn_directory(&self.lock()).by_key(pk)
    }

    /// The ids of the swarms with active members at the tip, sorted (kept per tip).
    pub fn swarm_ids(&self) -> Arc<[u64]> {
        self.sn_directory(&self.lock()).swarm_ids()
    }

    /// The directory of active service nodes, brought to the tip of `st` (the caller holds
    /// the chain lock, which is taken before this one).
    pub fn sn_directory(&self, st: &NodeState) -> MutexGuard<'_, SnDirectory> {
        let mut dir = self.sn_directory.lock().unwrap_or_else(|p| p.into_inner());
        dir.refresh(st);
        dir
    }

    /// Validates a transaction into the pool and, if asked, announces it to peers.
    pub fn add_tx(
        &self,
        blob: Vec<u8>,
        broadcast: bool,
    ) -> Result<sispop_chain::TxHash, sispop_chain::PoolError> {
        if let Ok(tx) = sispop_chain::Transaction::from_bytes(&blob) {
            let known = self.lock().pool.get(&tx.hash()).is_some();
            if !known {
                self.preverify(None, &[(tx, blob.len())]);
            }
        }
        let hash = {
            let mut st = self.lock();
            let NodeState { chain, pool, .. } = &mut *st;
            pool.add(chain, blob.clone(), unix_now())?
        };
        if broadcast {
            if let Some(net) = self.net.get() {
                let _ = net.tx.send(crate::p2p::NetCommand::BroadcastTx(blob));
            }
        }
        Ok(hash)
    }

    /// Locks the state. A poisoned lock means a panic elsewhere; the state itself is still
    /// consistent (every change is one RocksDB batch), so keep serving.
    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the signatures and proofs of `txs` (with their blob sizes), and `block`'s proof
    /// of work, with the node's lock released: the lock is held only to read what the checks
    /// need, and again to leave the verdicts where validation under the lock finds them (see
    /// the chain's `presig`). Only what passes the cheap checks is checked, and a block's
    /// transactions only once its proof of work holds.
    fn preverify(
        &self,
        block: Option<&sispop_chain::Block>,
        txs: &[(sispop_chain::Transaction, usize)],
    ) {
        if let Some(b) = block {
            let pow = {
                let st = self.lock();
                let h = b.hash();
                if st.chain.store().block_meta(&h).ok().flatten().is_some()
                    || st.chain.store().alt_block(&h).ok().flatten().is_some()
                {
                    return;
                }
                st.chain.pow_check(b)
            };
            match pow.and_then(sispop_chain::PowCheck::run) {
                Some(v) => self.lock().chain.note_verified(v),
                None => return,
            }
        }
        let sigs: Vec<_> = {
            let st = self.lock();
            txs.iter()
                .filter_map(|(t, len)| st.chain.sig_check(t, *len))
                .collect()
        };
        let verdicts: Vec<sispop_chain::Verified> = sigs
            .into_iter()
            .filter_map(sispop_chain::SigCheck::run)
            .collect();
        if !verdicts.is_empty() {
            let st = self.lock();
            for v in verdicts {
                st.chain.note_verified(v);
            }
        }
    }

    /// Adds a block with its transactions, then updates the pool; with `broadcast`, announces
    /// it to peers when it changed our chain. Signatures, proofs and proof of work are checked
    /// before the lock is taken for the block itself.
    pub fn submit_block(
        &self,
        blob: &[u8],
        txs: &[Vec<u8>],
        broadcast: bool,
    ) -> Result<AddOutcome, BlockError> {
        if let Ok(block) = sispop_chain::Block::from_bytes(blob) {
            if blob.len() <= self.params.max_block_size && txs.len() <= self.params.max_block_txs {
                let decoded: Vec<(sispop_chain::Transaction, usize)> = txs
                    .iter()
                    .filter_map(|t| Some((sispop_chain::Transaction::from_bytes(t).ok()?, t.len())))
                    .collect();
                self.preverify(Some(&block), &decoded);
            }
        }
        let now = unix_now();
        let mut st = self.lock();
        let before = sn_states(st.chain.ext().state());
        let started = std::time::Instant::now();
        let outcome = st.chain.add_block(blob, txs, now);
        self.metrics.block_validated(started.elapsed());
        let outcome = outcome?;
        if let AddOutcome::Changed { .. } = &outcome {
            // One line per service node whose state the block changed (registered, activated,
            // decommissioned, recommissioned, deregistered or expired).
            let after = sn_states(st.chain.ext().state());
            let height = st.chain.tip().0 .0;
            for (pk, to) in &after {
                let from = before.get(pk).copied().unwrap_or("unregistered");
                if from != *to {
                    tracing::info!(node = %pk, from, to, height, "service node state changed");
                    self.metrics.state_changed(to);
                }
            }
            for (pk, from) in &before {
                if !after.contains_key(pk) {
                    tracing::info!(node = %pk, from, to = "unregistered", height, "service node state changed");
                    self.metrics.state_changed("unregistered");
                }
            }
        }
        if let AddOutcome::Changed { returned_txs, .. } = &outcome {
            let NodeState { chain, pool, .. } = &mut *st;
            pool.prune(chain);
            let expired = pool.expire(now, chain.params().mempool_max_age);
            if expired > 0 {
                tracing::info!(
                    expired,
                    "dropped transactions that waited too long in the pool"
                );
            }
            for tx in returned_txs.clone() {
                let _ = pool.add(chain, tx, now);
            }
            if broadcast {
                if let Some(net) = self.net.get() {
                    let _ = net.tx.send(crate::p2p::NetCommand::BroadcastBlock(
                        crate::p2p::wire::WireBlock {
                            blob: blob.to_vec(),
                            txs: txs.to_vec(),
                        },
                    ));
                }
            }
        }
        Ok(outcome)
    }

    /// Asks every task to stop.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Mines while the daemon runs. With a fixed difficulty (devnet) blocks are paced at the target
/// block time; otherwise the nonce search itself sets the pace.
pub async fn run_miner(node: Node, address: Address) {
    let mut stop = node.shutdown.subscribe();
    let fixed = matches!(
        node.params.difficulty,
        sispop_chain::params::DifficultyMode::Fixed(_)
    );
    info!(address = %address.to_string(node.params), "mining started");
    loop {
        if *stop.borrow() {
            break;
        }
        if fixed {
            let last = node.lock().chain.tip_meta().timestamp;
            let due = last + node.params.target_block_time;
            let now = unix_now();
            if now < due {
                let wait = Duration::from_secs(due - now);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
        }
        let template = {
            let st = node.lock();
            st.chain.block_template(
                &mut rand::rngs::OsRng,
                &address,
                st.pool.candidates(),
                unix_now(),
            )
        };
        let mut template = match template {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "cannot build a block template");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let found = tokio::task::spawn_blocking(move || {
            // RandomX costs milliseconds a hash; re-template often enough to pick up new txs.
            let tries = if matches!(
                template.params.pow,
                sispop_chain::params::PowAlgorithm::RandomX
            ) {
                500
            } else {
                200_000
            };
            let ok = template.mine(tries);
            (ok, template)
        })
        .await;
        let Ok((true, template)) = found else {
            continue;
        };
        let blob = template.block.serialize();
        let submitter = node.clone();
        let txs = template.txs.clone();
        // Validation is heavy: on a blocking thread, not the executor.
        let submitted =
            tokio::task::spawn_blocking(move || submitter.submit_block(&blob, &txs, true)).await;
        let Ok(submitted) = submitted else {
            continue;
        };
        match submitted {
            Ok(AddOutcome::Changed { .. }) => {
                let mut st = node.lock();
                st.blocks_mined += 1;
                info!(height = %template.height, hash = %template.block.hash(), txs = template.txs.len(), "mined block");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "own block rejected (tip moved?)"),
        }
    }
    info!("miner stopped");
}

/// A registered service node's state, named (logs and metrics).
pub fn sn_state_name(n: &sispop_staking::ServiceNodeInfo) -> &'static str {
    if n.is_active() {
        "active"
    } else if n.is_decommissioned() {
        "decommissioned"
    } else {
        "awaiting_contributions"
    }
}

/// Each registered service node's state, named.
fn sn_states(
    state: &sispop_staking::State,
) -> std::collections::BTreeMap<sispop_chain::PublicKey, &'static str> {
    state
        .nodes
        .iter()
        .map(|(pk, n)| (*pk, sn_state_name(n)))
        .collect()
}
