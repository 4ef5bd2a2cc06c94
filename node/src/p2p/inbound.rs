//! Requests in on `/sispop/storage/1`, read by us rather than by libp2p's request-response:
//! that reads a whole request (up to 10 MiB) before anyone can ask who sent it. Here the
//! stream comes with its peer, so the stake check runs before a byte of it is read, the swarm
//! check (for what only members of our swarm may ask) after its one-byte tag, and only then is
//! the body read, within a size limit and a deadline.
//!
//! [`Inbound`] is a behaviour that takes the protocol's inbound streams and hands each, with
//! its peer, to [`serve`] over a bounded channel (a stream that finds it full is dropped, and
//! its sender sees the stream reset). The wire is request-response's: the request's bytes up to
//! the end of the stream, then the answer's. Outbound requests still go through request-response
//! (set up outbound-only for this protocol).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, StreamProtocol, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tracing::debug;

use super::codec::MAX_STORAGE_REQUEST_BYTES;
use crate::node::Node;

/// Streams waiting to be picked up by [`serve`].
const BACKLOG: usize = 1024;
/// Requests served at once, from all peers.
const IN_FLIGHT: usize = 512;
/// Requests served at once for one peer.
const PER_PEER: usize = 64;
/// How long a peer may take to send its request (10 MiB at about 350 kB/s) or read its answer.
const DEADLINE: Duration = Duration::from_secs(30);

/// The behaviour: inbound streams of one protocol, with their peer, into a channel.
pub struct Inbound {
    protocol: StreamProtocol,
    streams: mpsc::Sender<(PeerId, Stream)>,
}

impl Inbound {
    /// Takes `protocol`'s inbound streams; they come out of the receiver.
    pub fn new(protocol: StreamProtocol) -> (Inbound, mpsc::Receiver<(PeerId, Stream)>) {
        let (streams, rx) = mpsc::channel(BACKLOG);
        (Inbound { protocol, streams }, rx)
    }

    fn handler(&self, peer: PeerId) -> InboundHandler {
        InboundHandler {
            peer,
            protocol: self.protocol.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl NetworkBehaviour for Inbound {
    type ConnectionHandler = InboundHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// One connection's side of [`Inbound`].
pub struct InboundHandler {
    peer: PeerId,
    protocol: StreamProtocol,
    streams: mpsc::Sender<(PeerId, Stream)>,
}

impl ConnectionHandler for InboundHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: stream,
            ..
        }) = event
        {
            if self.streams.try_send((self.peer, stream)).is_err() {
                debug!(peer = %self.peer, "storage stream dropped: too many waiting");
            }
        }
    }
}

/// Requests of each peer being served, to hold each to [`PER_PEER`].
#[derive(Default)]
struct PerPeer(Mutex<HashMap<PeerId, usize>>);

/// A place of one peer's among [`PerPeer`], given back when dropped.
struct PeerSlot(Arc<PerPeer>, PeerId);

impl PerPeer {
    fn take(self: &Arc<Self>, peer: PeerId) -> Option<PeerSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(peer).or_default();
        (*n < PER_PEER).then(|| {
            *n += 1;
            PeerSlot(self.clone(), peer)
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// What reading a request came to.
pub(super) enum Read {
    /// The whole request (tag first).
    Request(Vec<u8>),
    /// Refused before its body was read: the answer to send.
    Refused(Vec<u8>),
    /// Over the size limit (the peer is at fault).
    Oversized,
    /// The stream failed or was too slow.
    Failed,
}

fn answer(status: u16, text: &str) -> Vec<u8> {
    let mut v = status.to_be_bytes().to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

/// Reads a request from `peer`: checks that it is an active service node before reading, and
/// that it is in our swarm after the tag when the tag needs that, then the body.
pub(super) async fn read_request(node: &Node, peer: &PeerId, stream: &mut Stream) -> Read {
    let Some(from) = node.service_node_for_peer(peer) else {
        if let Some(net) = node.net.get() {
            net.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sn_refusals += 1;
        }
        debug!(%peer, "storage request refused: not an active service node");
        return Read::Refused(answer(403, "not an active service node"));
    };
    let mut tag = [0u8; 1];
    match tokio::time::timeout(DEADLINE, stream.read_exact(&mut tag)).await {
        Ok(Ok(())) => {}
        _ => return Read::Failed,
    }
    let admits = node
        .net
        .get()
        .and_then(|n| n.services())
        .is_some_and(|s| (s.admits)(node, tag[0], &from));
    if !admits {
        return Read::Refused(answer(421, "not a member of this swarm"));
    }
    let mut request = tag.to_vec();
    let mut body = (&mut *stream).take(MAX_STORAGE_REQUEST_BYTES);
    match tokio::time::timeout(DEADLINE, body.read_to_end(&mut request)).await {
        Ok(Ok(_)) if request.len() as u64 > MAX_STORAGE_REQUEST_BYTES => Read::Oversized,
        Ok(Ok(_)) => Read::Request(request),
        _ => Read::Failed,
    }
}

/// Serves the streams [`Inbound`] hands over until the channel closes; `ban` is told of peers
/// that send more than a request may be.
pub(super) async fn serve(
    node: Node,
    mut streams: mpsc::Receiver<(PeerId, Stream)>,
    ban: impl Fn(PeerId, &'static str) + Send + Sync + 'static,
) {
    let all = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let per_peer = Arc::new(PerPeer::default());
    let ban = Arc::new(ban);
    while let Some((peer, mut stream)) = streams.recv().await {
        let (Ok(permit), Some(slot)) = (all.clone().try_acquire_owned(), per_peer.take(peer))
        else {
            debug!(%peer, "storage stream dropped: too many in hand");
            continue;
        };
        let (node, ban) = (node.clone(), ban.clone());
        tokio::spawn(async move {
            let _held = (permit, slot);
            let data = match read_request(&node, &peer, &mut stream).await {
                Read::Request(request) => super::storage_net::answer(&node, peer, request).await,
                Read::Refused(answer) => answer,
                Read::Oversized => {
                    ban(peer, "oversized storage request");
                    return;
                }
                Read::Failed => return,
            };
            let write = async {
                stream.write_all(&data).await?;
                stream.close().await
            };
            if let Ok(Err(e)) = tokio::time::timeout(DEADLINE, write).await {
                debug!(%peer, error = %e, "storage answer not delivered");
            }
        });
    }
}
