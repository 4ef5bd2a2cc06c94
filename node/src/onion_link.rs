//! Persistent links between service nodes for onion layers (`/sispop/onion-link/1`).
//!
//! Each layer used to travel on a request-response substream of its own: a yamux stream
//! opened and protocol-negotiated per hop, and several trips through the network task. A link
//! is one long-lived stream per (sender, next node), opened on first use, on which layers and
//! their answers are multiplexed by number; after the first layer nothing passes through the
//! network task.
//!
//! Frames, both ways: `id u64 LE ‖ length u32 LE ‖ bytes`. The opener sends layers (the bytes
//! that follow the storage protocol's onion tag); the other side answers each with the same id
//! (`status u16 BE ‖ body`, as on the storage protocol), in any order. A link carries layers
//! one way only: the other node opens its own link to send its layers back to us.
//!
//! Only active service nodes may use a link (checked when it is accepted, and again for every
//! layer by [`crate::onion::on_hop`]); a frame over the size limit closes it. A node that does
//! not speak the protocol is reached on the storage protocol instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot, OnceCell};
use tracing::debug;

use crate::node::Node;
use crate::p2p::{NetCommand, MAX_STORAGE_REQUEST_BYTES};
use crate::wire::MAX_RESPONSE_BYTES;

/// The link protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sispop/onion-link/1");
/// Layers one link's other side handles at once; past it, it stops reading.
const IN_FLIGHT: usize = 1024;
/// Frames waiting to be written on one link.
const QUEUE: usize = 1024;

type Waiters = Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>;

/// One open link to a node: where frames to write go, and who waits for which answer.
struct Link {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    waiting: Arc<Waiters>,
    next: AtomicU64,
}

type Open = Mutex<HashMap<PeerId, Arc<OnceCell<Arc<Link>>>>>;

/// The links this node opened, by next node.
#[derive(Default)]
pub struct Links {
    open: Arc<Open>,
}

/// Why a layer got no answer on a link.
#[derive(Debug)]
pub enum LinkError {
    /// The node does not speak the link protocol.
    Unsupported,
    /// No answer within the time limit.
    Timeout,
    /// The link could not be opened, or closed.
    Failed(String),
}

/// Takes a waiter out when the caller stops waiting (answered, timed out or dropped).
struct Waiting<'a> {
    waiting: &'a Waiters,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.waiting).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Links {
    /// Sends a layer to `peer` (reachable at `addr`, when known) and waits at most `limit`
    /// for its answer.
    pub async fn ask(
        &self,
        node: &Node,
        peer: PeerId,
        addr: Option<Multiaddr>,
        layer: Vec<u8>,
        limit: Duration,
    ) -> Result<Vec<u8>, LinkError> {
        let asked = async {
            let link = self.link(node, peer, addr).await?;
            let id = link.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&link.waiting).insert(id, tx);
            let _waiting = Waiting {
                waiting: &link.waiting,
                id,
            };
            link.tx
                .send((id, layer))
                .await
                .map_err(|_| LinkError::Failed("link closed".into()))?;
            rx.await
                .map_err(|_| LinkError::Failed("link closed".into()))
        };
        tokio::time::timeout(limit, asked)
            .await
            .unwrap_or(Err(LinkError::Timeout))
    }

    /// The open link to `peer`, opened now if there is none (one opening at a time per peer).
    async fn link(
        &self,
        node: &Node,
        peer: PeerId,
        addr: Option<Multiaddr>,
    ) -> Result<Arc<Link>, LinkError> {
        let cell = lock(&self.open).entry(peer).or_default().clone();
        let link = cell
            .get_or_try_init(|| async {
                let net = node
                    .net
                    .get()
                    .ok_or_else(|| LinkError::Failed("network not started".into()))?;
                if let Some(addr) = addr {
                    // The address goes in before the stream is asked for, so a dial finds it.
                    let (done, added) = oneshot::channel();
                    let _ = net.tx.send(NetCommand::AddAddress { peer, addr, done });
                    let _ = added.await;
                }
                let stream =
                    net.link
                        .clone()
                        .open_stream(peer, PROTOCOL)
                        .await
                        .map_err(|e| match e {
                            libp2p_stream::OpenStreamError::UnsupportedProtocol(_) => {
                                LinkError::Unsupported
                            }
                            e => LinkError::Failed(e.to_string()),
                        })?;
                Ok::<_, LinkError>(self.start(peer, stream, cell.clone()))
            })
            .await?;
        Ok(link.clone())
    }

    /// Starts the writer and reader of a link opened to `peer`.
    fn start(
        &self,
        peer: PeerId,
        stream: libp2p::Stream,
        cell: Arc<OnceCell<Arc<Link>>>,
    ) -> Arc<Link> {
        let (r, w) = stream.split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let waiting: Arc<Waiters> = Arc::default();
        tokio::spawn(write_frames(w, rx));
        let answers = waiting.clone();
        let open = self.open.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                match read_frame(&mut r, MAX_RESPONSE_BYTES).await {
                    Ok((id, answer)) => {
                        if let Some(w) = lock(&answers).remove(&id) {
                            let _ = w.send(answer);
                        }
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "onion link closed");
                        break;
                    }
                }
            }
            // Whoever still waits hears that the link closed; the next layer opens a new one.
            lock(&answers).clear();
            let mut open = lock(&open);
            if open.get(&peer).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                open.remove(&peer);
            }
        });
        Arc::new(Link {
            tx,
            waiting,
            next: AtomicU64::new(0),
        })
    }
}

/// Writes the frames of one side of a link, flushing when no more are ready (so frames that
/// queue up under load share writes).
async fn write_frames(
    w: futures::io::WriteHalf<libp2p::Stream>,
    mut rx: mpsc::Receiver<(u64, Vec<u8>)>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    while let Some(mut frame) = rx.recv().await {
        loop {
            if write_frame(&mut w, frame.0, &frame.1).await.is_err() {
                return;
            }
            match rx.try_recv() {
                Ok(f) => frame = f,
                Err(_) => break,
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.close().await;
}

async fn write_frame<W: futures::AsyncWrite + Unpin>(
    w: &mut W,
    id: u64,
    bytes: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut head = [0u8; 12];
    head[..8].copy_from_slice(&id.to_le_bytes());
    head[8..].copy_from_slice(&len.to_le_bytes());
    w.write_all(&head).await?;
    w.write_all(bytes).await
}

/// Reads one frame of at most `max` bytes (a larger one is an error: the link closes).
async fn read_frame<R: futures::AsyncRead + Unpin>(
    r: &mut R,
    max: u64,
) -> std::io::Result<(u64, Vec<u8>)> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).await?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[..8]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&head[8..]);
    let len = u32::from_le_bytes(len);
    if u64::from(len) > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {max} byte limit"),
        ));
    }
    // Grown as the bytes arrive: a length alone reserves nothing.
    let mut bytes = Vec::new();
    (&mut *r)
        .take(u64::from(len))
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() as u64 != u64::from(len) {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok((u64::from_le_bytes(id), bytes))
}

/// Accepts links from other nodes until shutdown: each one from an active service node is
/// served (its layers processed as they come, at most [`IN_FLIGHT`] at once).
pub async fn serve(node: Node, mut control: libp2p_stream::Control) {
    let mut incoming = match control.accept(PROTOCOL) {
        Ok(i) => i,
        Err(_) => {
            tracing::warn!("onion links are already accepted elsewhere");
            return;
        }
    };
    let mut stop = node.shutdown.subscribe();
    loop {
        let (peer, stream) = tokio::select! {
            s = incoming.next() => match s {
                Some(s) => s,
                None => break,
            },
            _ = stop.changed() => break,
        };
        if node.service_node_for_peer(&peer).is_none() {
            debug!(%peer, "onion link refused: not an active service node");
            continue;
        }
        tokio::spawn(serve_link(node.clone(), peer, stream));
    }
}

async fn serve_link(node: Node, peer: PeerId, stream: libp2p::Stream) {
    let (r, w) = stream.split();
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(write_frames(w, rx));
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut r = BufReader::new(r);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (id, layer) = match read_frame(&mut r, MAX_STORAGE_REQUEST_BYTES).await {
            Ok(f) => f,
            Err(e) => {
                debug!(%peer, error = %e, "onion link from a peer closed");
                break;
            }
        };
        let (node, tx) = (node.clone(), tx.clone());
        tokio::spawn(async move {
            let answer = crate::onion::on_hop(&node, &peer, &layer).await;
            drop(layer);
            let _ = tx.send((id, answer)).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 7, b"layer").await.expect("write");
        write_frame(&mut buf, u64::MAX, b"").await.expect("write");
        let mut r = futures::io::Cursor::new(buf.clone());
        assert_eq!(
            read_frame(&mut r, 5).await.expect("read"),
            (7, b"layer".to_vec())
        );
        assert_eq!(
            read_frame(&mut r, 5).await.expect("read"),
            (u64::MAX, vec![])
        );
        assert!(read_frame(&mut r, 5).await.is_err(), "nothing more");
        let mut r = futures::io::Cursor::new(buf.clone());
        let e = read_frame(&mut r, 4).await.expect_err("over the limit");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        // A length past the end of what arrives is an error, not a hang or a huge allocation.
        let mut cut = buf[..12].to_vec();
        cut[8..12].copy_from_slice(&3u32.to_le_bytes());
        let mut r = futures::io::Cursor::new(cut);
        assert!(read_frame(&mut r, 1 << 20).await.is_err());
    }
}
