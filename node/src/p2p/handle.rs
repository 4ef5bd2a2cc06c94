//! The handle the node keeps to the network task, what the network looks like, and what the
//! services answer on it (given at start-up).

use std::sync::{Arc, Mutex};

use libp2p::gossipsub;
use libp2p::PeerId;
use sispop_chain::PublicKey;
use tokio::sync::mpsc;

use super::{link, NetCommand};
use crate::node::Node;

/// What the network looks like (shown by `get_info` and `status`).
#[derive(Debug, Default, Clone)]
pub struct NetStats {
    /// Outbound connections.
    pub outgoing: usize,
    /// Inbound connections.
    pub incoming: usize,
    /// Highest height a peer reported.
    pub best_peer_height: u64,
    /// Currently banned peers.
    pub banned: usize,
    /// Requests refused because the peer is not an active service node.
    pub sn_refusals: u64,
    /// Our peer id.
    pub peer_id: String,
    /// Addresses we listen on.
    pub listen: Vec<String>,
}

/// Handle kept by the node.
#[derive(Clone)]
pub struct NetHandle {
    /// Commands to the network task.
    pub tx: mpsc::UnboundedSender<NetCommand>,
    /// Live statistics.
    pub stats: Arc<Mutex<NetStats>>,
    /// Streams of our own protocols (the onion links of [`crate::p2p::link`]).
    pub link: libp2p_stream::Control,
    /// What the services answer on the network, given at start-up ([`Services`]).
    pub services: Arc<std::sync::OnceLock<Services>>,
    /// Persistent links to other service nodes, for onion layers and forwarded writes.
    pub links: Arc<link::Links>,
}

/// What the services answer on the network, given by the daemon's start-up: the network
/// knows the framing of their protocols, not their meaning, and imports none of them. Until
/// it is given, gossiped proofs and votes are ignored and storage requests answered 503.
#[derive(Clone)]
pub struct Services {
    /// Checks an uptime proof from gossip: whether to pass it on, and why to ban its sender.
    pub on_proof: Gossip,
    /// Checks a vote from gossip.
    pub on_vote: Gossip,
    /// Whether a storage-protocol request with this tag may be read from this service node
    /// (swarm-only tags from members of our swarm only), before its body is.
    pub admits: Admits,
    /// Answers a storage-protocol request from a peer (its tag first): `status u16 BE ‖ body`.
    pub answer: Answerer,
}

/// Whether a storage-protocol request with this tag may be read from this service node.
pub type Admits = Arc<dyn Fn(&Node, u8, &PublicKey) -> bool + Send + Sync>;

/// Answers a storage-protocol request from a peer.
pub type Answerer = Arc<
    dyn Fn(Node, PeerId, Vec<u8>) -> futures::future::BoxFuture<'static, Vec<u8>> + Send + Sync,
>;

/// A check of a gossiped message (on a validation thread).
pub type Gossip =
    Arc<dyn Fn(&Node, &[u8]) -> (gossipsub::MessageAcceptance, Option<String>) + Send + Sync>;

impl NetHandle {
    /// The services' answers, once given.
    pub fn services(&self) -> Option<&Services> {
        self.services.get()
    }
}
