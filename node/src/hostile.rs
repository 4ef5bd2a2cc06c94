//! Clients that misbehave on purpose, for the daemon's tests and `devnet scenario hostile`: they
//! do to a node what anyone on the internet can, so that the node's answer to it is checked
//! from outside.
//!
//! - [`resets`]: connections that send a request and reset (TCP RST, `SO_LINGER` 0) before
//!   reading the answer, or while it is being written. A process that let `SIGPIPE` end it
//!   would die of these without a log line.

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

async fn one(target: SocketAddr, what: &Reset, wait: Duration) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(target).await?;
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
                tokio_rustls::TlsConnector::from(Arc::new(crate::storage_client::tls_config()?));
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

/// Opens `count` connections to `target`, at most `concurrency` at once; each sends `what` and
/// resets after a pause between 0 and `max_wait` (so some resets land before the node reads
/// the request, some while it works on it and some while it writes the answer).
pub async fn resets(
    target: SocketAddr,
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
            // Spread evenly over the range, so every run has early and late resets.
            let wait = Duration::from_micros(max_us.saturating_mul(i as u64) / count.max(1) as u64);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                tokio::time::timeout(Duration::from_secs(20), one(target, &what, wait))
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
