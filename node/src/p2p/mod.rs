//! Node-to-node networking on libp2p: TCP + Noise + Yamux, identify, gossipsub for blocks and
//! transactions, request-response for block sync, and an SN-only protocol gated on the service
//! node list. One task owns the swarm; the node talks to it through a channel.
//!
//! A service node's libp2p identity is its Ed25519 service-node key, so "is this peer an active
//! service node?" is one lookup ([`Node::service_node_for_peer`]).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, ValidationMode,
};
use libp2p::identity::{self, Keypair};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, noise, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, SwarmBuilder,
};
use rand::seq::IteratorRandom;
use sispop_chain::reader::DecodeError;
use sispop_chain::{AddOutcome, BlockError, Height, PublicKey};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::node::{unix_now, Node};
use crate::p2p::wire::{
    Request, Response, WireBlock, MAX_BLOCKS_PER_RESPONSE, MAX_GOSSIP_BYTES, MAX_RESPONSE_BYTES,
};

/// Gossip topic for blocks.
pub const BLOCKS_TOPIC: &str = "sispop/blocks/1";
/// Gossip topic for transactions.
pub const TXS_TOPIC: &str = "sispop/txs/1";
/// Gossip topic for uptime proofs (used by the testing suite).
pub const PROOFS_TOPIC: &str = "sispop/proofs/1";
/// Gossip topic for votes (used by the testing suite).
pub const VOTES_TOPIC: &str = "sispop/votes/1";
/// How long a misbehaving peer stays banned.
/// The protocol swarm members talk storage on (and onion layers, without a link).
pub const STORAGE_PROTOCOL: &str = "/sispop/storage/1";
pub const BAN_TIME: Duration = Duration::from_secs(600);
/// Gossip messages one peer may send per window before it counts as flooding.
pub const FLOOD_LIMIT: u32 = 400;
/// Sync requests (tips, locators, batches) a peer may make per [`FLOOD_WINDOW`]; beyond, it
/// is refused (not banned: an honest node syncing from scratch asks often).
pub const SYNC_REQUEST_LIMIT: u32 = 1_000;
/// Gossip messages validated at once (signatures, proofs, the chain).
pub const VALIDATORS: usize = 4;
/// Sync answers built at once (each reads up to 20 blocks from disk).
const SYNC_SERVERS: usize = 4;
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// Most connections kept. Validators dial the workers they test directly, and over a vote
/// window a service node is tested by validators from across the network, so the cap leaves
/// room for a few dozen of them beside the gossip peers (inbound and outbound limits of their
/// own are hardening work, issue 11).
pub const MAX_PEERS: u32 = peers::MAX_INBOUND + peers::MAX_OUTBOUND;

mod codec;
mod gossip_net;
mod handle;
mod inbound;
pub mod link;
mod peers;
mod sn_net;
mod storage_net;
pub(crate) use storage_net::answer as answer_storage_request;
mod sync_net;
pub mod sync_policy;
pub mod wire;
pub use codec::{BytesCodec, MAX_STORAGE_REQUEST_BYTES, OVERSIZED_REQUEST};
pub use handle::{Admits, Answerer, Gossip, NetHandle, NetStats, Services};
use storage_net::StorageWaiters;

/// What the node (RPC, services, tests) asks of the network task.
#[derive(Debug)]
pub enum NetCommand {
    /// Announce a block we accepted (mined or submitted over RPC).
    BroadcastBlock(WireBlock),
    /// Announce a transaction we accepted.
    BroadcastTx(Vec<u8>),
    /// Publish raw bytes on a topic (the testing suite's proofs and votes).
    Publish(String, Vec<u8>),
    /// Send an SN-only request to a peer and deliver its answer.
    SnRequest {
        /// The peer.
        peer: PeerId,
        /// Where to reach it, when known (from its uptime proof).
        addr: Option<Multiaddr>,
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Response>,
    },
    /// Send a storage request to a service node and deliver its answer.
    StorageRequest {
        /// The peer.
        peer: PeerId,
        /// Where to reach it, when known (from its uptime proof).
        addr: Option<Multiaddr>,
        /// The request.
        data: Vec<u8>,
        /// Where the answer (or why there is none) goes.
        reply: tokio::sync::oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// Dial an address.
    Dial(Multiaddr),
    /// Note where a peer can be reached (before a stream to it is asked for).
    AddAddress {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: Multiaddr,
        /// Told once the address is in.
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Send raw bytes as a sync request (diagnostics and tests).
    RawSyncRequest(PeerId, Vec<u8>),
}

/// Events the network task sends itself from blocking threads (never from outside).
#[derive(Debug)]
enum Internal {
    /// Ban a peer that broke a protocol's rules.
    Ban(PeerId, &'static str),
    /// A sync answer decoded off the event loop.
    SyncAnswer(PeerId, OutboundRequestId, Result<Response, DecodeError>),
    /// The answer to a peer's sync request, built off the event loop.
    SyncRespond {
        /// Its channel.
        channel: request_response::ResponseChannel<Vec<u8>>,
        /// The answer.
        data: Vec<u8>,
    },
    /// Result of validating a gossip message.
    Validated {
        /// The message.
        id: MessageId,
        /// Who relayed it.
        source: PeerId,
        /// Verdict.
        acceptance: MessageAcceptance,
        /// Ban reason when the peer is at fault.
        ban: Option<String>,
        /// The peer seems ahead of us (a block with an unknown parent).
        ahead: bool,
        /// It came through the anonymous transaction gossip.
        anonymous: bool,
    },
    /// Result of applying a batch of synced blocks.
    Synced {
        /// From whom.
        peer: PeerId,
        /// The first height asked for.
        from: u64,
        /// Blocks that changed our chain.
        progressed: usize,
        /// Blocks the peer sent.
        served: usize,
        /// The first block's parent was unknown.
        unknown_parent: bool,
        /// Ban reason when the peer sent invalid data.
        ban: Option<String>,
        /// A block failed for our own reasons (not the peer's fault).
        ours: bool,
    },
}

/// The behaviour; connection-managing parts first (rust-libp2p #4773).
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    gossip: gossipsub::Behaviour,
    /// Transactions gossip anonymously (their origin's key is not on them), apart from the
    /// signed blocks, proofs and votes.
    txgossip: gossipsub::Behaviour,
    sync: request_response::Behaviour<BytesCodec>,
    sn: request_response::Behaviour<BytesCodec>,
    /// Storage requests out; the answers come back through it.
    storage: request_response::Behaviour<BytesCodec>,
    /// Storage requests in, read once their sender is known ([`inbound`]).
    storage_in: inbound::Inbound,
    link: libp2p_stream::Behaviour,
}

/// The libp2p peer id of a service node key.
pub fn peer_id_of(pk: &PublicKey) -> Option<PeerId> {
    let ed = identity::ed25519::PublicKey::try_from_bytes(&pk.0).ok()?;
    Some(identity::PublicKey::from(ed).to_peer_id())
}

/// The identity: the SN Ed25519 key for service nodes, otherwise a key kept in `p2p_key`.
pub fn load_identity(data_dir: &Path, sn_seed: Option<[u8; 32]>) -> io::Result<Keypair> {
    if let Some(mut seed) = sn_seed {
        return Keypair::ed25519_from_bytes(&mut seed).map_err(|e| io::Error::other(e.to_string()));
    }
    let path = data_dir.join("p2p_key");
    let mut seed = [0u8; 32];
    if path.exists() {
        let b = std::fs::read(&path)?;
        if b.len() != 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "p2p_key must be 32 bytes",
            ));
        }
        seed.copy_from_slice(&b);
    } else {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        std::fs::write(&path, seed)?;
    }
    Keypair::ed25519_from_bytes(&mut seed).map_err(|e| io::Error::other(e.to_string()))
}

/// Parses `--add-peer` values: a multiaddr, or `host:port`.
pub fn parse_peer_addr(s: &str) -> Option<Multiaddr> {
    if s.starts_with('/') {
        return s.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: std::net::IpAddr = if host == "localhost" {
        "127.0.0.1".parse().ok()?
    } else {
        host.parse().ok()?
    };
    let proto = if ip.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{ip}/tcp/{port}").parse().ok()
}

/// Network settings.
pub struct NetConfig {
    /// Listen address.
    pub listen: Multiaddr,
    /// Peers to dial and keep dialling.
    pub peers: Vec<Multiaddr>,
    /// Seconds between sync rounds.
    pub sync_interval: Duration,
}

struct Loop {
    node: Node,
    swarm: libp2p::Swarm<Behaviour>,
    rx: mpsc::UnboundedReceiver<NetCommand>,
    /// For blocking threads to hand results back to the loop.
    tx: mpsc::UnboundedSender<Internal>,
    internal: mpsc::UnboundedReceiver<Internal>,
    stats: Arc<Mutex<NetStats>>,
    peers: Vec<Multiaddr>,
    blocks_topic: IdentTopic,
    txs_topic: IdentTopic,
    bans: HashMap<PeerId, Instant>,
    flood: HashMap<PeerId, (Instant, u32)>,
    tips: HashMap<PeerId, (u64, u128)>,
    in_flight: Option<InFlight>,
    /// The peer we sync from and the next height to ask it for (after its fork point).
    cursor: Option<(PeerId, u64)>,
    /// Batches taken in a row from the cursor's peer.
    run: u32,
    /// Addresses heard of, address bans, discovered peers.
    book: peers::PeerBook,
    connected: HashSet<PeerId>,
    sn_waiters: HashMap<OutboundRequestId, tokio::sync::oneshot::Sender<Response>>,
    storage_waiters: StorageWaiters,
    strikes: HashMap<PeerId, u32>,
    /// When sync progress was last logged, and the height then.
    sync_note: (Instant, u64),
    /// Sync requests each peer made in the current window.
    sync_asked: HashMap<PeerId, (Instant, u32)>,
    /// Sync answers being built on blocking threads.
    serving: Arc<tokio::sync::Semaphore>,
    /// Gossip messages being validated on blocking threads.
    validating: Arc<tokio::sync::Semaphore>,
}

/// The sync request we wait for.
#[derive(Clone, Copy)]
struct InFlight {
    peer: PeerId,
    id: OutboundRequestId,
    at: Instant,
    /// `None`: a locator; `Some(h)`: blocks from height `h`.
    from: Option<u64>,
    /// The answer came and is being applied: our time, not the peer's (no timeout).
    applying: bool,
}

pub use sync_policy::{judge_batch, SyncVerdict, MAX_SYNC_STRIKES};

/// Starts the network task.
pub fn start(
    node: Node,
    keypair: Keypair,
    cfg: NetConfig,
) -> anyhow::Result<(NetHandle, tokio::task::JoinHandle<()>)> {
    let local = node.params.sn.allow_dev_faults;
    // Transactions are at most `max_tx_size`: nothing larger is hashed for its id or kept.
    let tx_limit = node.params.max_tx_size.saturating_add(1024);
    let gossip_cfg = |anonymous: bool| {
        let mut b = gossipsub::ConfigBuilder::default();
        b.max_transmit_size(if anonymous {
            tx_limit
        } else {
            MAX_GOSSIP_BYTES
        })
        .validate_messages()
        .heartbeat_interval(Duration::from_millis(700))
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(sispop_chain::crypto::keccak256(&m.data).to_vec())
        });
        if anonymous {
            // Transactions: no origin key, sequence number or signature on the wire.
            b.validation_mode(ValidationMode::Anonymous)
                .protocol_id_prefix("/sispop/txsub");
        } else {
            b.validation_mode(ValidationMode::Strict);
        }
        b.build()
            .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))
    };
    let (signed_cfg, anonymous_cfg) = (gossip_cfg(false)?, gossip_cfg(true)?);
    let (storage_in, storage_streams) =
        inbound::Inbound::new(StreamProtocol::new(STORAGE_PROTOCOL));
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let rr_cfg =
                request_response::Config::default().with_request_timeout(Duration::from_secs(30));
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_PEERS))
                        .with_max_established_incoming(Some(peers::MAX_INBOUND))
                        .with_max_established_outgoing(Some(peers::MAX_OUTBOUND))
                        .with_max_established_per_peer(Some(2)),
                ),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/sispop/1.0.0".into(),
                    key.public(),
                )),
                gossip: {
                    let mut g = gossipsub::Behaviour::new(
                        MessageAuthenticity::Signed(key.clone()),
                        signed_cfg,
                    )?;
                    let (params, thresholds) = peers::score_params(local);
                    g.with_peer_score(params, thresholds)?;
                    g
                },
                txgossip: {
                    let mut g =
                        gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, anonymous_cfg)?;
                    let (params, thresholds) = peers::score_params(local);
                    g.with_peer_score(params, thresholds)?;
                    g
                },
                sync: request_response::Behaviour::with_codec(
                    BytesCodec::default(),
                    [(StreamProtocol::new("/sispop/sync/1"), ProtocolSupport::Full)],
                    rr_cfg.clone(),
                ),
                sn: request_response::Behaviour::with_codec(
                    BytesCodec {
                        max_response: codec::MAX_SN_RESPONSE_BYTES,
                        ..BytesCodec::default()
                    },
                    [(StreamProtocol::new("/sispop/sn/1"), ProtocolSupport::Full)],
                    rr_cfg.clone(),
                ),
                storage: request_response::Behaviour::with_codec(
                    BytesCodec::default(),
                    [(
                        StreamProtocol::new(STORAGE_PROTOCOL),
                        ProtocolSupport::Outbound,
                    )],
                    rr_cfg,
                ),
                storage_in,
                link: libp2p_stream::Behaviour::new(),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    let blocks_topic = IdentTopic::new(BLOCKS_TOPIC);
    let txs_topic = IdentTopic::new(TXS_TOPIC);
    for t in [BLOCKS_TOPIC, PROOFS_TOPIC, VOTES_TOPIC] {
        swarm
            .behaviour_mut()
            .gossip
            .subscribe(&IdentTopic::new(t))?;
    }
    swarm
        .behaviour_mut()
        .txgossip
        .subscribe(&IdentTopic::new(TXS_TOPIC))?;
    swarm.listen_on(cfg.listen.clone())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (internal_tx, internal) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(NetStats {
        peer_id: swarm.local_peer_id().to_string(),
        ..NetStats::default()
    }));
    info!(peer_id = %swarm.local_peer_id(), listen = %cfg.listen, "p2p started");
    let start_height = node.lock().chain.tip().0 .0;
    let link = swarm.behaviour().link.new_control();
    let mut lp = Loop {
        node,
        swarm,
        rx,
        tx: internal_tx,
        internal,
        stats: stats.clone(),
        peers: cfg.peers,
        blocks_topic,
        txs_topic,
        bans: HashMap::new(),
        flood: HashMap::new(),
        tips: HashMap::new(),
        in_flight: None,
        cursor: None,
        sync_asked: HashMap::new(),
        sync_note: (Instant::now(), start_height),
        serving: Arc::new(tokio::sync::Semaphore::new(SYNC_SERVERS)),
        validating: Arc::new(tokio::sync::Semaphore::new(VALIDATORS)),
        connected: HashSet::new(),
        sn_waiters: HashMap::new(),
        storage_waiters: HashMap::new(),
        strikes: HashMap::new(),
        run: 0,
        book: peers::PeerBook::default(),
    };
    let banner = lp.tx.clone();
    tokio::spawn(inbound::serve(
        lp.node.clone(),
        storage_streams,
        move |peer, reason| {
            let _ = banner.send(Internal::Ban(peer, reason));
        },
    ));
    let interval = cfg.sync_interval;
    let task = tokio::spawn(async move { lp.run(interval).await });
    Ok((
        NetHandle {
            tx,
            stats,
            link,
            services: Arc::new(std::sync::OnceLock::new()),
            links: Arc::new(link::Links::default()),
        },
        task,
    ))
}

impl Loop {
    fn stats(&self) -> std::sync::MutexGuard<'_, NetStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ban(&mut self, peer: PeerId, reason: &str) {
        let sn = self.node.service_node_for_peer(&peer);
        warn!(%peer, node = ?sn.map(|k| k.to_hex()), reason, ban_secs = BAN_TIME.as_secs(), "banning peer");
        self.node.metrics.banned(reason);
        self.bans.insert(peer, Instant::now() + BAN_TIME);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.ban_address(peer, Instant::now() + BAN_TIME);
        self.tips.remove(&peer);
        if self.in_flight.is_some_and(|f| f.peer == peer) {
            self.in_flight = None;
        }
        if self.cursor.is_some_and(|(p, _)| p == peer) {
            self.cursor = None;
        }
        self.stats().banned = self.bans.len();
    }

    fn dial_missing(&mut self) {
        for addr in self.peers.clone() {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "dial failed");
            }
        }
    }

    async fn run(&mut self, interval: Duration) {
        let mut stop = self.node.shutdown.subscribe();
        let mut tick = tokio::time::interval(interval);
        let mut redial = tokio::time::interval(Duration::from_secs(10));
        self.dial_missing();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(cmd) = self.rx.recv() => self.command(cmd),
                Some(ev) = self.internal.recv() => self.internal(ev),
                ev = self.swarm.select_next_some() => self.event(ev),
                _ = tick.tick() => self.sync_round(),
                _ = redial.tick() => {
                    let now = Instant::now();
                    let expired: Vec<PeerId> = self.bans.iter().filter(|(_, t)| **t <= now).map(|(p, _)| *p).collect();
                    for p in expired {
                        self.bans.remove(&p);
                        self.swarm.behaviour_mut().blocked.unblock_peer(p);
                    }
                    self.stats().banned = self.bans.len();
                    self.discover();
                    if self.connected.len() < self.peers.len() {
                        self.dial_missing();
                    }
                }
            }
        }
        info!("p2p stopped");
    }

    fn command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::BroadcastBlock(b) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(self.blocks_topic.clone(), b.to_bytes())
                {
                    debug!(error = %e, "block not gossiped");
                }
            }
            NetCommand::StorageRequest {
                peer,
                addr,
                data,
                reply,
            } => self.storage_request(peer, addr, data, reply),
            NetCommand::SnRequest {
                peer,
                addr,
                request,
                reply,
            } => {
                if let Some(a) = addr {
                    self.swarm.add_peer_address(peer, a);
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sn
                    .send_request(&peer, request.to_bytes());
                self.sn_waiters.insert(id, reply);
            }
            NetCommand::Publish(topic, data) => {
                let b = self.swarm.behaviour_mut();
                let g = if topic == TXS_TOPIC {
                    &mut b.txgossip
                } else {
                    &mut b.gossip
                };
                if let Err(e) = g.publish(IdentTopic::new(topic), data) {
                    debug!(error = %e, "not published");
                }
            }
            NetCommand::RawSyncRequest(peer, bytes) => {
                self.swarm.behaviour_mut().sync.send_request(&peer, bytes);
            }
            NetCommand::AddAddress { peer, addr, done } => {
                self.swarm.add_peer_address(peer, addr);
                let _ = done.send(());
            }
            NetCommand::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr) {
                    debug!(error = %e, "dial failed");
                }
            }
            NetCommand::BroadcastTx(t) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .txgossip
                    .publish(self.txs_topic.clone(), t)
                {
                    debug!(error = %e, "tx not gossiped");
                }
            }
        }
    }

    /// Results blocking threads hand back to the loop.
    fn internal(&mut self, ev: Internal) {
        match ev {
            Internal::SyncRespond { channel, data } => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, data);
            }
            Internal::Ban(peer, reason) => self.ban(peer, reason),
            Internal::SyncAnswer(peer, id, answer) => self.sync_response(peer, id, answer),
            Internal::Validated {
                id,
                source,
                acceptance,
                ban,
                ahead,
                anonymous,
            } => {
                self.report_validation(anonymous, &id, &source, acceptance);
                if let Some(reason) = ban {
                    self.ban(source, &reason);
                } else if ahead {
                    // A block we cannot attach yet: ask the relay for its real tip; the next
                    // sync round fetches what we miss if it is ahead.
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&source, Request::Tip.to_bytes());
                }
            }
            Internal::Synced {
                peer,
                from,
                progressed,
                served,
                unknown_parent,
                ban,
                ours,
            } => {
                // Only the batch we wait for moves sync on (a late one is stale).
                if !self
                    .in_flight
                    .is_some_and(|f| f.peer == peer && f.from == Some(from))
                {
                    return;
                }
                self.in_flight = None;
                if let Some(reason) = ban {
                    self.ban(peer, &reason);
                    return;
                }
                if ours && progressed == 0 {
                    // Refused for our own reasons (too deep a fork, side chains full, our
                    // store): not the peer's fault, but nothing to gain from it for now.
                    self.tips.remove(&peer);
                    self.cursor = None;
                    return;
                }
                let strikes = self.strikes.get(&peer).copied().unwrap_or(0);
                match judge_batch(served, unknown_parent, strikes) {
                    SyncVerdict::Continue => {
                        if progressed > 0 {
                            self.strikes.remove(&peer);
                        }
                        self.cursor = Some((peer, from.saturating_add(served as u64)));
                        self.run = self.run.saturating_add(1);
                    }
                    SyncVerdict::Strike => {
                        // It claimed more work than it served, or served blocks off its own
                        // fork point: forget the claim and the cursor until it answers a tip
                        // request again.
                        self.strikes.insert(peer, strikes + 1);
                        self.tips.remove(&peer);
                        self.cursor = None;
                        return;
                    }
                    SyncVerdict::Ban(reason) => {
                        self.ban(peer, reason);
                        return;
                    }
                }
                let (ours, cum) = {
                    let st = self.node.lock();
                    (
                        st.chain.tip().0 .0,
                        st.chain.tip_meta().cumulative_difficulty,
                    )
                };
                let target = self.stats().best_peer_height;
                // Progress, every few seconds while behind: where, how far, how fast.
                let (since, from_height) = self.sync_note;
                if target > ours && since.elapsed() >= Duration::from_secs(5) {
                    let rate = ours.saturating_sub(from_height) as f64
                        / since.elapsed().as_secs_f64().max(1e-3);
                    info!(
                        height = ours,
                        target,
                        pct = format!("{:.1}", ours as f64 * 100.0 / target as f64),
                        blocks_per_sec = format!("{rate:.1}"),
                        "syncing"
                    );
                    self.sync_note = (Instant::now(), ours);
                }
                // Keep going with the same peer while it claims more, for a few batches; then
                // choose again among the good peers ahead (a new peer starts with a locator).
                let next = if self.run >= sync_policy::BATCHES_PER_PEER {
                    self.run = 0;
                    self.choose_sync_peer(cum, Some(peer))
                } else {
                    self.tips
                        .get(&peer)
                        .is_some_and(|t| t.1 > cum)
                        .then_some(peer)
                };
                if let Some(p) = next {
                    self.sync_from(p);
                }
            }
        }
    }

    fn flooding(&mut self, peer: PeerId) -> bool {
        over_budget(&mut self.flood, peer, FLOOD_LIMIT)
    }

    fn event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "p2p listening");
                self.stats().listen.push(address.to_string());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if !self.peer_connected(peer_id, &endpoint) {
                    return;
                }
                if num_established.get() == 1 {
                    self.connected.insert(peer_id);
                    let mut s = self.stats();
                    if endpoint.is_dialer() {
                        s.outgoing += 1;
                    } else {
                        s.incoming += 1;
                    }
                }
                debug!(%peer_id, "connected");
                self.swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer_id, Request::Tip.to_bytes());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.peer_gone(peer_id);
                self.tips.remove(&peer_id);
                self.flood.remove(&peer_id);
                self.strikes.remove(&peer_id);
                self.sync_asked.remove(&peer_id);
                if self.cursor.is_some_and(|(p, _)| p == peer_id) {
                    self.cursor = None;
                }
                let mut s = self.stats();
                if endpoint.is_dialer() {
                    s.outgoing = s.outgoing.saturating_sub(1);
                } else {
                    s.incoming = s.incoming.saturating_sub(1);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.gossip_message(false, propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Txgossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.gossip_message(true, propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_sync(peer, &request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.sync_answer(peer, request_id, response),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                if self.in_flight.is_some_and(|f| f.id == request_id) {
                    self.in_flight = None;
                }
                match error {
                    request_response::OutboundFailure::Io(e)
                        if e.kind() == io::ErrorKind::InvalidData =>
                    {
                        self.ban(peer, &format!("oversized or malformed response: {e}"));
                    }
                    other => debug!(%peer, error = %other, "sync request failed"),
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.identified(peer_id, info.listen_addrs),
            SwarmEvent::Behaviour(BehaviourEvent::Sn(e)) => self.sn_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Storage(e)) => self.storage_event(e),
            _ => {}
        }
    }
}

/// Counts one more message from `peer` in the current [`FLOOD_WINDOW`]; whether it is over
/// `limit`.
fn over_budget(map: &mut HashMap<PeerId, (Instant, u32)>, peer: PeerId, limit: u32) -> bool {
    let now = Instant::now();
    let e = map.entry(peer).or_insert((now, 0));
    if now.duration_since(e.0) > FLOOD_WINDOW {
        *e = (now, 0);
    }
    e.1 += 1;
    e.1 > limit
}

/// Unix time (re-exported for callers that log it).
pub fn now() -> u64 {
    unix_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        assert_eq!(
            parse_peer_addr("127.0.0.1:9000").map(|a| a.to_string()),
            Some("/ip4/127.0.0.1/tcp/9000".into())
        );
        assert_eq!(
            parse_peer_addr("localhost:1").map(|a| a.to_string()),
            Some("/ip4/127.0.0.1/tcp/1".into())
        );
        assert_eq!(
            parse_peer_addr("[::1]:5").map(|a| a.to_string()),
            None,
            "bracketed IPv6 needs the multiaddr form"
        );
        assert!(parse_peer_addr("/ip6/::1/tcp/5").is_some());
        assert!(parse_peer_addr("nonsense").is_none());
        assert!(parse_peer_addr("1.2.3.4:99999").is_none());
    }
}
