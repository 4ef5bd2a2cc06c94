//! The network side of `/sispop/storage/1`: requests out to service nodes, and the answers to
//! requests in (read by [`super::inbound`]), which the services give ([`super::Services`]).

use std::collections::HashMap;

use libp2p::request_response::{self, OutboundRequestId};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;
use tracing::debug;

use super::Loop;
use crate::node::Node;

/// Where the answers to our storage requests go.
pub type StorageWaiters = HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, String>>>;

impl Loop {
    pub(super) fn storage_request(
        &mut self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    ) {
        if let Some(a) = addr {
            self.swarm.add_peer_address(peer, a);
        }
        let id = self.swarm.behaviour_mut().storage.send_request(&peer, data);
        self.storage_waiters.insert(id, reply);
    }

    pub(super) fn storage_event(&mut self, e: request_response::Event<Vec<u8>, Vec<u8>>) {
        match e {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.storage_waiters.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                debug!(error = %error, "storage request failed");
                if let Some(reply) = self.storage_waiters.remove(&request_id) {
                    // Callers tell a late answer from a failed one.
                    let why = match error {
                        request_response::OutboundFailure::Timeout => "timeout".to_owned(),
                        e => e.to_string(),
                    };
                    let _ = reply.send(Err(why));
                }
            }
            _ => {}
        }
    }
}

/// The answer to a request from `peer` (`status u16 BE ‖ body`): the services' (the relay's
/// for onion layers, the storage service's for the rest).
pub(crate) async fn answer(node: &Node, peer: PeerId, request: Vec<u8>) -> Vec<u8> {
    match node.net.get().and_then(|n| n.services().cloned()) {
        Some(s) => (s.answer)(node.clone(), peer, request).await,
        None => {
            let mut v = 503u16.to_be_bytes().to_vec();
            v.extend_from_slice(b"no storage service on this node");
            v
        }
    }
}
