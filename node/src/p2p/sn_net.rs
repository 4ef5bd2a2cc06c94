//! The network side of the SN-only protocol `/sispop/sn/1`: pings from validators (answered
//! with our height and clock unless `--dev-fault unreachable`), refusals for peers that are not
//! active service nodes, and the answers to our own requests.

use libp2p::request_response;
use tracing::{debug, info};

use super::{Loop, OVERSIZED_REQUEST};
use crate::node::unix_now;
use crate::p2p::wire::{Request, Response};

impl Loop {
    pub(super) fn sn_event(&mut self, e: request_response::Event<Vec<u8>, Vec<u8>>) {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if request == OVERSIZED_REQUEST {
                    self.ban(peer, "oversized SN request");
                    return;
                }
                let resp = match (
                    self.node.service_node_for_peer(&peer),
                    Request::decode(&request),
                ) {
                    (None, _) => {
                        let mut s = self.stats();
                        s.sn_refusals += 1;
                        info!(%peer, refusals = s.sn_refusals, "refused an SN-only request from a peer that is not an active service node");
                        Response::Refused("not an active service node".into())
                    }
                    (Some(_), Ok(Request::SnPing { .. })) if self.node.faults.unreachable => {
                        // --dev-fault unreachable: drop the request unanswered.
                        debug!(%peer, "dev fault: SN ping left unanswered");
                        return;
                    }
                    (Some(_), Ok(Request::SnPing { .. })) => Response::SnPong {
                        height: self.node.lock().chain.tip().0 .0,
                        now: unix_now(),
                    },
                    (Some(_), _) => Response::Refused("unsupported request".into()),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sn
                    .send_response(channel, resp.to_bytes());
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.sn_waiters.remove(&request_id) {
                    let _ = reply.send(
                        Response::decode(&response)
                            .unwrap_or_else(|e| Response::Refused(e.to_string())),
                    );
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.sn_waiters.remove(&request_id) {
                    let _ = reply.send(Response::Refused(error.to_string()));
                }
            }
            _ => {}
        }
    }
}
