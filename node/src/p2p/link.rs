//! Persistent links between service nodes (`/sispop/sn-link/2`) for the storage protocol's
//! small, frequent messages: onion layers, and writes forwarded to swarm members.
//!
//! Each of these used to travel on a request-response substream of its own: a yamux stream
//! opened and protocol-negotiated per message, and several trips through the network task. A
//! link is one long-lived stream per (sender, receiver), opened on first use, on which
//! requests and their answers are multiplexed by number; after the first request nothing
//! passes through the network task.
//!
//! Frames, both ways: `id u64 LE ‖ length u32 LE ‖ bytes`. The side that accepts a link first
//! writes a hello (id `u64::MAX`, no bytes); the opener sends nothing before it has read it. A
//! node may drop a new link unread (libp2p-stream holds one incoming stream while it waits to
//! be accepted and drops the next, so links that many nodes open at once lose some): the
//! opener sees that before any request is on it, and opens another. Then the opener sends
//! storage-protocol requests (tag byte, then the body: 6 an onion layer, 1 a forwarded
//! write); the other side answers each with the same id (`status u16 BE ‖ body`, as on the
//! storage protocol), in any order. A link carries requests one way only: the other node
//! opens its own link to send its requests to us. Bulk transfers (pulls, hand-overs) stay on
//! `/sispop/storage/1`, so they do not hold up the small messages behind them.
//!
//! Only active service nodes may use a link (checked when it is accepted, and again for every
//! request by its handler); a frame over the size limit closes it. A node that does not speak
//! the protocol is reached on the storage protocol instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use futures::StreamExt;
use hyper::body::Bytes;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot, OnceCell};
use tracing::debug;

use crate::node::Node;
use crate::p2p::wire::MAX_RESPONSE_BYTES;
use crate::p2p::{NetCommand, MAX_STORAGE_REQUEST_BYTES};

/// The link protocol. (Version 1 had no hello.)
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sispop/sn-link/2");
/// The id of the hello frame.
const HELLO: u64 = u64::MAX;
/// How long the opener waits for the hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at opening a link that the other side drops unread, and the pause before the
/// second (doubled before each further one).
const OPEN_TRIES: u32 = 4;
const OPEN_PAUSE: Duration = Duration::from_millis(20);
/// Requests one link's other side handles at once, answers not yet written included; past
/// it, it stops reading.
const IN_FLIGHT: usize = 1024;
/// Frames waiting to be written on one link.
const QUEUE: usize = 1024;
/// How long one write may wait for the other side to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Links one peer may have open to us at once.
const LINKS_PER_PEER: usize = 2;
/// How long a node that does not speak the protocol is sent requests on the storage protocol
/// before it is asked again.
const UNSUPPORTED_FOR: Duration = Duration::from_secs(600);
/// How long a link that could not be opened is not tried again (requests meanwhile fail at
/// once instead of queueing behind one attempt after another).
const FAILED_FOR: Duration = Duration::from_secs(5);

/// Who waits for which answer; `None` once the link is closed.
type Waiters = Mutex<Option<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;
type Open = Mutex<HashMap<PeerId, Arc<OnceCell<Arc<Link>>>>>;

/// One open link to a node.
struct Link {
    /// Frames to write.
    tx: mpsc::Sender<Frame>,
    waiting: Waiters,
    next: AtomicU64,
    /// When a frame was last read from it (ms since `born`).
    last_read: AtomicU64,
    born: Instant,
    /// The reader, stopped when the link is given up.
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

/// A frame to write, with the serving slot it holds until it is written.
type Frame = (u64, Bytes, Option<tokio::sync::OwnedSemaphorePermit>);

impl Link {
    /// Closes the link: whoever waits hears so, nobody can wait any more, and `open` (the
    /// map it was in, under `peer`) no longer lists it.
    fn close(self: &Arc<Link>, open: &Open, peer: &PeerId) {
        lock(&self.waiting).take();
        if let Some(r) = lock(&self.reader).take() {
            r.abort();
        }
        let mut open = lock(open);
        if open
            .get(peer)
            .and_then(|c| c.get())
            .is_some_and(|l| Arc::ptr_eq(l, self))
        {
            open.remove(peer);
        }
    }

    fn since_read(&self) -> Duration {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_read.load(Ordering::Relaxed)))
    }
}

/// The links this node opened, by next node.
#[derive(Default)]
pub struct Links {
    open: Arc<Open>,
    /// Nodes not to open a link to for now, and why.
    shunned: Mutex<HashMap<PeerId, (Instant, bool)>>,
}

/// Why a request got no answer on a link.
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
        if let Some(w) = lock(self.waiting).as_mut() {
            w.remove(&self.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed() -> LinkError {
    LinkError::Failed("link closed".into())
}

impl Links {
    /// Sends a storage-protocol request (tag and body) to `peer` (reachable at what `addr`
    /// gives, when known; asked only when a link has to be opened) and waits at most `limit`
    /// for its answer.
    pub async fn ask(
        &self,
        node: &Node,
        peer: PeerId,
        addr: &(dyn Fn() -> Option<Multiaddr> + Sync),
        layer: Bytes,
        limit: Duration,
    ) -> Result<Vec<u8>, LinkError> {
        if node.faults.no_sn_link {
            return Err(LinkError::Unsupported);
        }
        let mut used = None;
        let asked = async {
            // A link found closed before the request went out is replaced once: nothing was
            // sent, so nothing can happen twice.
            for _ in 0..2 {
                let link = self.link(node, peer, addr).await?;
                used = Some(link.clone());
                let id = link.next.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = oneshot::channel();
                let Some(w) = lock(&link.waiting).as_mut().map(|w| w.insert(id, tx)) else {
                    link.close(&self.open, &peer);
                    continue;
                };
                drop(w);
                let _waiting = Waiting {
                    waiting: &link.waiting,
                    id,
                };
                if link.tx.send((id, layer.clone(), None)).await.is_err() {
                    link.close(&self.open, &peer);
                    continue;
                }
                return rx.await.map_err(|_| closed());
            }
            Err(closed())
        };
        let r = tokio::time::timeout(limit, asked)
            .await
            .unwrap_or(Err(LinkError::Timeout));
        if let (Err(LinkError::Timeout), Some(link)) = (&r, used) {
            // Nothing heard on the link for as long as we waited: the connection is gone
            // without a word (a dead host, a dropped route). The next request opens a new one.
            if link.since_read() >= limit {
                debug!(%peer, "onion link silent; giving it up");
                link.close(&self.open, &peer);
            }
        }
        r
    }

    /// The open link to `peer`, opened now if there is none (one opening at a time per peer).
    async fn link(
        &self,
        node: &Node,
        peer: PeerId,
        addr: &(dyn Fn() -> Option<Multiaddr> + Sync),
    ) -> Result<Arc<Link>, LinkError> {
        if let Some(e) = self.shunned(&peer) {
            return Err(e);
        }
        let cell = lock(&self.open).entry(peer).or_default().clone();
        // Errors carry whether they are new (and shun the node) or the shunning itself.
        let opened = cell
            .get_or_try_init(|| async {
                // A request that waited while another's attempt failed finds the node shunned
                // now, instead of making an attempt of its own.
                if let Some(e) = self.shunned(&peer) {
                    return Err((e, false));
                }
                let net = node
                    .net
                    .get()
                    .ok_or_else(|| (LinkError::Failed("network not started".into()), true))?;
                if let Some(addr) = addr() {
                    // The address goes in before the stream is asked for, so a dial finds it.
                    let (done, added) = oneshot::channel();
                    let _ = net.tx.send(NetCommand::AddAddress { peer, addr, done });
                    let _ = added.await;
                }
                let (stream, _) = open_greeted(net.link.clone(), peer, OPEN_TRIES, OPEN_PAUSE)
                    .await
                    .map_err(|e| (e, true))?;
                Ok(self.start(peer, stream))
            })
            .await;
        match opened {
            Ok(link) => Ok(link.clone()),
            Err((e, false)) => Err(e),
            Err((e, true)) => {
                let (for_, unsupported) = match e {
                    LinkError::Unsupported => (UNSUPPORTED_FOR, true),
                    _ => (FAILED_FOR, false),
                };
                let mut shunned = lock(&self.shunned);
                let now = Instant::now();
                shunned.retain(|_, (until, _)| *until > now);
                shunned.insert(peer, (now + for_, unsupported));
                Err(e)
            }
        }
    }

    /// Why `peer` is not to be tried now, if it is not.
    fn shunned(&self, peer: &PeerId) -> Option<LinkError> {
        let (until, unsupported) = lock(&self.shunned).get(peer).copied()?;
        (Instant::now() < until).then(|| {
            if unsupported {
                LinkError::Unsupported
            } else {
                LinkError::Failed("link recently failed to open".into())
            }
        })
    }

    /// Starts the writer and reader of a link opened to `peer`.
    fn start(&self, peer: PeerId, stream: libp2p::Stream) -> Arc<Link> {
        let (r, w) = stream.split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let link = Arc::new(Link {
            tx,
            waiting: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(0),
            last_read: AtomicU64::new(0),
            born: Instant::now(),
            reader: Mutex::new(None),
        });
        let (open, weak) = (self.open.clone(), Arc::downgrade(&link));
        tokio::spawn(async move {
            write_frames(w, rx).await;
            // The writer stopped (the stream failed, or the link was given up).
            if let Some(link) = weak.upgrade() {
                link.close(&open, &peer);
            }
        });
        let (open, weak) = (self.open.clone(), Arc::downgrade(&link));
        let reader = tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                let frame = read_frame(&mut r, MAX_RESPONSE_BYTES).await;
                let Some(link) = weak.upgrade() else {
                    return;
                };
                match frame {
                    Ok((id, answer)) => {
                        let at = u64::try_from(link.born.elapsed().as_millis()).unwrap_or(0);
                        link.last_read.store(at, Ordering::Relaxed);
                        let waiter = lock(&link.waiting).as_mut().and_then(|w| w.remove(&id));
                        if let Some(w) = waiter {
                            let _ = w.send(answer);
                        }
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "onion link closed");
                        // Whoever still waits hears so; the next request opens a new link.
                        link.close(&open, &peer);
                        return;
                    }
                }
            }
        });
        *lock(&link.reader) = Some(reader.abort_handle());
        link
    }
}

/// Opens a stream to `peer` and reads its hello; a stream dropped unread is opened again after
/// `pause` (doubled each time, with up to half again at random, so the nodes of one burst do
/// not come back together), `tries` times in all. The stream and the attempts it took.
async fn open_greeted(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    tries: u32,
    mut pause: Duration,
) -> Result<(libp2p::Stream, u32), LinkError> {
    for attempt in 1..=tries {
        let mut stream = control
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| match e {
                libp2p_stream::OpenStreamError::UnsupportedProtocol(_) => LinkError::Unsupported,
                e => LinkError::Failed(e.to_string()),
            })?;
        let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream, 0)).await;
        match hello {
            Ok(Ok((HELLO, _))) => return Ok((stream, attempt)),
            Ok(Ok(_)) => return Err(LinkError::Failed("no hello on the link".into())),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(LinkError::Failed("no hello on the link".into()))
            }
            Err(_) => return Err(LinkError::Failed("no hello within the limit".into())),
            Ok(Err(e)) if attempt < tries => {
                debug!(%peer, error = %e, "onion link dropped before its hello; opening another");
                let jitter =
                    rand::Rng::gen_range(&mut rand::thread_rng(), Duration::ZERO..=pause / 2);
                tokio::time::sleep(pause + jitter).await;
                pause *= 2;
            }
            Ok(Err(e)) => return Err(LinkError::Failed(format!("link dropped: {e}"))),
        }
    }
    Err(LinkError::Failed("link dropped".into()))
}

/// Writes the frames of one side of a link, flushing when no more are ready (so frames that
/// queue up under load share writes); a frame's serving slot is freed once it is written.
async fn write_frames(w: futures::io::WriteHalf<libp2p::Stream>, mut rx: mpsc::Receiver<Frame>) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    while let Some(mut frame) = rx.recv().await {
        loop {
            // A side that stops reading is given up on, not waited for.
            let wrote = tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut w, frame.0, &frame.1));
            if !matches!(wrote.await, Ok(Ok(()))) {
                return;
            }
            drop(frame.2.take());
            match rx.try_recv() {
                Ok(f) => frame = f,
                Err(_) => break,
            }
        }
        if !matches!(
            tokio::time::timeout(WRITE_TIMEOUT, w.flush()).await,
            Ok(Ok(()))
        ) {
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
/// served (its requests handled as they come, at most [`IN_FLIGHT`] at once).
pub async fn serve(node: Node, mut control: libp2p_stream::Control) {
    let mut incoming = match control.accept(PROTOCOL) {
        Ok(i) => i,
        Err(_) => {
            tracing::warn!("onion links are already accepted elsewhere");
            return;
        }
    };
    let mut stop = node.shutdown.subscribe();
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
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
        {
            let mut n = lock(&per_peer);
            let open = n.entry(peer).or_default();
            if *open >= LINKS_PER_PEER {
                debug!(%peer, "onion link refused: that node has enough open");
                continue;
            }
            *open += 1;
        }
        let (node, per_peer) = (node.clone(), per_peer.clone());
        tokio::spawn(async move {
            serve_link(node, peer, stream).await;
            let mut n = lock(&per_peer);
            if let Some(open) = n.get_mut(&peer) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    n.remove(&peer);
                }
            }
        });
    }
}

async fn serve_link(node: Node, peer: PeerId, stream: libp2p::Stream) {
    let (r, w) = stream.split();
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = tokio::spawn(write_frames(w, rx));
    // The opener waits for this before it sends anything.
    if tx.send((HELLO, Bytes::new(), None)).await.is_err() {
        return;
    }
    // A slot is held from before a request is read until its answer is written: a peer that
    // stops reading answers stops being served, and nothing piles up.
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut r = BufReader::new(r);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        if tx.is_closed() {
            // The writer gave up: answers could not reach the other side.
            break;
        }
        let (id, request) = match read_frame(&mut r, MAX_STORAGE_REQUEST_BYTES).await {
            Ok(f) => f,
            Err(e) => {
                debug!(%peer, error = %e, "onion link from a peer closed");
                break;
            }
        };
        let (node, tx) = (node.clone(), tx.clone());
        // Boxed: the task then holds a pointer, where a request's future (some 3 KiB) would be
        // copied several times as the task is made and again when it ends.
        tokio::spawn(Box::pin(async move {
            let mut answer = answer(&node, peer, request).await;
            if answer.len() as u64 > MAX_RESPONSE_BYTES {
                // Past what the other side reads: this request fails, not the link.
                answer = 502u16.to_be_bytes().to_vec();
                answer.extend_from_slice(b"Invalid response from snode");
            }
            let _ = tx.send((id, Bytes::from(answer), Some(slot))).await;
        }));
    }
    drop(tx);
    // Answers still being made are written, then the stream closes.
    let _ = writer.await;
}

/// The answer to one request on a link: an onion layer or a forwarded write, answered as on the
/// storage protocol.
async fn answer(node: &Node, peer: PeerId, request: Vec<u8>) -> Vec<u8> {
    match request.first() {
        Some(&super::wire::tags::ONION | &super::wire::tags::FORWARD) => {
            crate::p2p::answer_storage_request(node, peer, request).await
        }
        _ => [&400u16.to_be_bytes()[..], b"not a link request"].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A libp2p swarm that speaks only plain streams, listening on 127.0.0.1, driven by a task
    /// of its own and connected to `peer`: its control, its peer id and its address.
    async fn stream_swarm(
        peer: Option<(PeerId, Multiaddr)>,
    ) -> (libp2p_stream::Control, PeerId, Multiaddr) {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
            .expect("listen");
        let addr = loop {
            if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
                swarm.select_next_some().await
            {
                break address;
            }
        };
        if let Some((peer, addr)) = peer {
            swarm.dial(addr).expect("dial");
            loop {
                if let libp2p::swarm::SwarmEvent::ConnectionEstablished { peer_id, .. } =
                    swarm.select_next_some().await
                {
                    assert_eq!(peer_id, peer);
                    break;
                }
            }
        }
        let (control, id) = (swarm.behaviour().new_control(), *swarm.local_peer_id());
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        (control, id, addr)
    }

    /// libp2p-stream keeps one incoming stream while it waits to be accepted and drops the
    /// next unread. Without the hello, a request sent on the dropped one was lost; with it,
    /// the opener sees the drop and opens another, and no stream reaches the acceptor twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_dropped_unread_is_opened_again() {
        let (mut b, b_id, b_addr) = stream_swarm(None).await;
        let (a, _, _) = stream_swarm(Some((b_id, b_addr))).await;
        let mut incoming = b.accept(PROTOCOL).expect("accept");
        // Long pauses, so that the timing below holds on a slow machine.
        let pause = Duration::from_millis(400);
        let first = tokio::spawn(open_greeted(a.clone(), b_id, OPEN_TRIES, pause));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // b accepts nothing yet: the first stream waits in the channel, and a second is
        // dropped. Opened once, it fails; opened with retries, it waits its turn.
        match open_greeted(a.clone(), b_id, 1, pause).await {
            Err(LinkError::Failed(e)) if e.starts_with("link dropped") => {}
            other => panic!("the second stream should be dropped unread: {other:?}"),
        }
        let retried = tokio::spawn(open_greeted(a.clone(), b_id, OPEN_TRIES, pause));
        // Its first try is dropped too (b still takes nothing); the second, 400–600 ms on,
        // finds b taking links.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Some((_, mut s)) = incoming.next().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    write_frame(&mut s, HELLO, b"").await.expect("hello");
                    s.flush().await.expect("flush");
                    // Held open as a served link would be.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let limit = Duration::from_secs(20);
        let first = tokio::time::timeout(limit, first).await.expect("in time");
        let first = first.expect("task");
        assert!(matches!(first, Ok((_, 1))), "{first:?}");
        let retried = tokio::time::timeout(limit, retried).await.expect("in time");
        match retried.expect("task") {
            Ok((_, tries)) => assert!(tries >= 2, "the first try should have been dropped"),
            Err(e) => panic!("no link: {e:?}"),
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "dropped streams never arrive"
        );
    }

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
