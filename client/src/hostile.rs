//! Clients that misbehave on purpose, for the daemon's tests and `devnet scenario hostile`: they
//! do to a node what anyone on the internet can, so that the node's answer to it is checked
//! from outside.
//!
//! - [`resets`]: connections that send a request and reset (TCP RST, `SO_LINGER` 0) before
//!   reading the answer, or while it is being written. A process that let `SIGPIPE` end it
//!   would die of these without a log line.
//! - [`hold`]: connections to the storage port that stay open, from many source addresses:
//!   bodies sent a byte at a time, or answers never read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// What to send on a connection before resetting it.
#[derive(Clone, Debug)]
pub enum Reset {
    /// Plain bytes (an HTTP request to the RPC or metrics port).
    Plain(Vec<u8>),
    /// An HTTP request inside TLS (the storage port: `/storage_rpc/v1`, `/onion_req/v2`).
    Tls(Vec<u8>),
    /// The start of a libp2p connection: multistream-select's header, the Noise protocol and a
    /// Noise first message, which the node answers with its own handshake message.
    P2p,
}

/// What came of a run of [`resets`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Connections that sent their request and were reset.
    pub reset: usize,
    /// Connections that could not be made (refused, or the TLS handshake failed).
    pub failed: usize,
}

/// An HTTP/1.1 POST of `body` to `path` (with `Host` and `Content-Length`), as bytes.
pub fn http_post(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// An HTTP/1.1 GET of `path`, as bytes.
pub fn http_get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// The first bytes a libp2p dialer sends: multistream-select's header and `/noise`, each
/// prefixed with its varint length, then the Noise XX first message (a 2-byte length and an
/// ephemeral key), which the listener answers.
fn p2p_hello() -> Vec<u8> {
    let mut b = Vec::new();
    for line in ["/multistream/1.0.0\n", "/noise\n"] {
        b.push(u8::try_from(line.len()).unwrap_or(u8::MAX));
        b.extend_from_slice(line.as_bytes());
    }
    b.extend_from_slice(&32u16.to_be_bytes());
    let key: [u8; 32] = rand::thread_rng().gen();
    b.extend_from_slice(&key);
    b
}

/// Makes the socket's close a reset: `SO_LINGER` with a zero timeout sends RST and drops
/// whatever is unsent or unread, as a client that crashed or gave up would.
fn reset_on_close(s: &TcpStream) -> std::io::Result<()> {
    socket2::SockRef::from(s).set_linger(Some(Duration::ZERO))
}

async fn connect_from(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(target).await
}

async fn one(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
    what: &Reset,
    wait: Duration,
) -> anyhow::Result<()> {
    let tcp = connect_from(target, source).await?;
    reset_on_close(&tcp)?;
    match what {
        Reset::Plain(req) => {
            let mut tcp = tcp;
            tcp.write_all(req).await?;
            tokio::time::sleep(wait).await;
        }
        Reset::P2p => {
            let mut tcp = tcp;
            tcp.write_all(&p2p_hello()).await?;
            tokio::time::sleep(wait).await;
        }
        Reset::Tls(req) => {
            let connector =
                tokio_rustls::TlsConnector::from(Arc::new(crate::storage::tls_config()?));
            let mut tls = connector
                .connect(ServerName::IpAddress(target.ip().into()), tcp)
                .await?;
            tls.write_all(req).await?;
            tls.flush().await?;
            tokio::time::sleep(wait).await;
            // Dropped without close_notify: the TCP socket underneath resets.
        }
    }
    Ok(())
}

/// Opens `count` connections to `target` from `sources` (round robin; none: the system's
/// choice), at most `concurrency` at once; each sends `what` and resets after a pause between
/// 0 and `max_wait` (so some resets land before the node reads the request, some while it
/// works on it and some while it writes the answer).
pub async fn resets(
    target: SocketAddr,
    sources: &[std::net::IpAddr],
    what: Reset,
    count: usize,
    concurrency: usize,
    max_wait: Duration,
) -> ResetReport {
    let what = Arc::new(what);
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let max_us = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (what, gate) = (what.clone(), gate.clone());
            let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
            // Spread evenly over the range, so every run has early and late resets.
            let wait = Duration::from_micros(max_us.saturating_mul(i as u64) / count.max(1) as u64);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                tokio::time::timeout(Duration::from_secs(20), one(target, source, &what, wait))
                    .await
                    .is_ok_and(|r| r.is_ok())
            })
        })
        .collect();
    let mut report = ResetReport::default();
    for t in tasks {
        if t.await.unwrap_or(false) {
            report.reset += 1;
        } else {
            report.failed += 1;
        }
    }
    report
}

/// What a hostile connection does once it is open.
#[derive(Clone, Debug)]
pub enum Hold {
    /// Sends the head of a request announcing a body of this length, then one byte of it
    /// every few seconds (within any per-read timeout, far from any reasonable deadline).
    SlowBody(u64),
    /// Sends a whole request (whose answer may be large) and never reads the answer.
    NoRead(Vec<u8>),
}

/// Connections held open by [`hold`]; dropping it closes them.
pub struct Held {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How many are open now (the node has not closed them).
    pub open: Arc<std::sync::atomic::AtomicUsize>,
    /// How many were opened (connected, and the TLS handshake done).
    pub opened: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens `count` TLS connections to `target`, spread over `sources` (source addresses to bind,
/// round robin; none: the system's choice), at most `concurrency` handshakes at once, and
/// keeps each doing `what` until the node closes it or the [`Held`] is dropped.
pub async fn hold(
    target: SocketAddr,
    sources: &[std::net::IpAddr],
    count: usize,
    concurrency: usize,
    what: Hold,
) -> Held {
    use std::sync::atomic::Ordering;
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut ready = Vec::new();
    let tasks = (0..count)
        .map(|i| {
            let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
            let (what, open, opened, gate) =
                (what.clone(), open.clone(), opened.clone(), gate.clone());
            let (done, up) = tokio::sync::oneshot::channel::<()>();
            ready.push(up);
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await;
                let tls = tokio::time::timeout(Duration::from_secs(20), connect_tls(target, source));
                let Ok(Ok(mut tls)) = tls.await else {
                    drop(done);
                    return;
                };
                drop(permit);
                opened.fetch_add(1, Ordering::Relaxed);
                open.fetch_add(1, Ordering::Relaxed);
                let head_sent = match &what {
                    Hold::SlowBody(len) => {
                        let head = format!(
                            "POST /storage_rpc/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n{{"
                        );
                        tls.write_all(head.as_bytes()).await
                    }
                    Hold::NoRead(req) => tls.write_all(req).await,
                };
                let _ = tls.flush().await;
                let _ = done.send(());
                if head_sent.is_ok() {
                    match what {
                        Hold::SlowBody(_) => loop {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            let trickle = async {
                                tls.write_all(b" ").await?;
                                tls.flush().await
                            };
                            // A write the node no longer takes: it closed the connection.
                            if tokio::time::timeout(Duration::from_secs(5), trickle)
                                .await
                                .map_or(true, |r| r.is_err())
                            {
                                break;
                            }
                        },
                        Hold::NoRead(_) => {
                            // Never read; notice only that the node reset the connection.
                            let (tcp, _) = tls.get_ref();
                            loop {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                let mut probe = [0u8; 1];
                                if matches!(tcp.peek(&mut probe).await, Ok(0) | Err(_)) {
                                    break;
                                }
                            }
                        }
                    }
                }
                open.fetch_sub(1, Ordering::Relaxed);
            })
        })
        .collect();
    // Back once every connection was tried.
    for up in ready {
        let _ = up.await;
    }
    Held {
        tasks,
        open,
        opened,
    }
}

async fn connect_tls(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = connect_from(target, source).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(crate::storage::tls_config()?));
    Ok(connector
        .connect(ServerName::IpAddress(target.ip().into()), tcp)
        .await?)
}

/// `count` loopback source addresses, 127.0.2.0 on (a client each, to a node on loopback).
pub fn loopback_sources(count: u32) -> Vec<std::net::IpAddr> {
    (0..count)
        .map(|k| std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0200 + k)))
        .collect()
}

/// The resident memory of process `pid`, in bytes (Linux).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
