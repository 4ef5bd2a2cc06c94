//! A storage client for operators (`sispop-storage`): finds the swarm that owns an account
//! through any daemon's JSON-RPC (`get_swarm`, then `get_service_nodes` for the members'
//! addresses from their uptime proofs) and talks to a member's `/storage_rpc/v1` over HTTPS.
//!
//! Service nodes use self-signed certificates, so, as Session clients do, the certificate is
//! not checked against a CA: it only encrypts the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::HttpClientBuilder;
use serde_json::Value;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate but still checks the handshake signatures with it.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client configuration for service nodes' self-signed certificates (see the module docs).
pub fn tls_config() -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth())
}

/// POSTs `body` to `https://addr/storage_rpc/v1`; returns the status and the body text.
pub async fn post(addr: SocketAddr, body: &Value) -> anyhow::Result<(u16, String)> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS with {addr}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::post("/storage_rpc/v1")
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .with_context(|| format!("{addr} did not answer within 30 s"))?
}

/// POSTs raw bytes to `https://addr{path}`; returns the status and the body.
pub async fn post_bytes(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
        let tls = connector
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .with_context(|| format!("TLS with {addr}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, bytes.to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .with_context(|| format!("{addr} did not answer within 60 s"))?
}

/// An active service node with an uptime proof: its Ed25519 key and storage address.
#[derive(Clone, Debug)]
pub struct ServiceNode {
    /// Ed25519 key, hex.
    pub pubkey: String,
    /// `IP:storage port` from its last proof.
    pub addr: SocketAddr,
}

/// The active service nodes the daemon knows an address of (`get_service_nodes`).
pub async fn active_nodes(daemon: &str) -> anyhow::Result<Vec<ServiceNode>> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(daemon)
        .with_context(|| format!("daemon URL {daemon}"))?;
    let sns: Value = client
        .request("get_service_nodes", ObjectParams::new())
        .await
        .with_context(|| format!("get_service_nodes from {daemon}"))?;
    let mut out = Vec::new();
    for e in sns["service_node_states"].as_array().into_iter().flatten() {
        if e["active"] != Value::Bool(true) {
            continue;
        }
        let (Some(pk), Some(ip), Some(port)) = (
            e["service_node_pubkey"].as_str(),
            e["public_ip"]
                .as_str()
                .and_then(|i| i.parse::<std::net::IpAddr>().ok()),
            e["storage_port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok()),
        ) else {
            continue;
        };
        if port == 0 || ip.is_unspecified() {
            continue; // no uptime proof seen yet
        }
        out.push(ServiceNode {
            pubkey: pk.to_owned(),
            addr: SocketAddr::new(ip, port),
        });
    }
    Ok(out)
}

/// The members of the swarm that owns `pubkey` (66 hex), as (Ed25519 key, storage address).
pub async fn swarm(daemon: &str, pubkey: &str) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(daemon)
        .with_context(|| format!("daemon URL {daemon}"))?;
    let mut p = ObjectParams::new();
    p.insert("pubkey", pubkey)?;
    let sw: Value = client
        .request("get_swarm", p)
        .await
        .with_context(|| format!("get_swarm from {daemon}"))?;
    let members: Vec<String> = sw["snodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["pubkey_ed25519"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if members.is_empty() {
        bail!("no swarm owns {pubkey} yet (no active service nodes?)");
    }
    let mut p = ObjectParams::new();
    p.insert("service_node_pubkeys", &members)?;
    let sns: Value = client
        .request("get_service_nodes", p)
        .await
        .with_context(|| format!("get_service_nodes from {daemon}"))?;
    let mut out = Vec::new();
    for e in sns["service_node_states"].as_array().into_iter().flatten() {
        let (Some(pk), Some(ip), Some(port)) = (
            e["service_node_pubkey"].as_str(),
            e["public_ip"].as_str(),
            e["storage_port"].as_u64(),
        ) else {
            continue;
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if port == 0 || ip == "0.0.0.0" {
            continue; // no uptime proof seen yet
        }
        if let Ok(ip) = ip.parse::<std::net::IpAddr>() {
            out.push((pk.to_owned(), SocketAddr::new(ip, port)));
        }
    }
    if out.is_empty() {
        bail!("the daemon knows no address of the swarm's members yet (no uptime proofs)");
    }
    Ok(out)
}

/// One account of a load run: its 66-hex id and, when known, the Ed25519 seed that signs its
/// retrieves (a Session id's key).
#[derive(Clone, Debug)]
pub struct LoadAccount {
    /// `05…` or another prefixed id.
    pub pubkey: String,
    /// The Ed25519 seed behind it.
    pub seed: Option<[u8; 32]>,
}

/// Reads a `--pubkeys` file: one account a line, `<66 hex> [<64 hex seed>]`.
pub fn read_accounts(text: &str) -> anyhow::Result<Vec<LoadAccount>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut w = line.split_whitespace();
        let Some(pk) = w.next() else { continue };
        if pk.len() != 66 || hex::decode(pk).is_err() {
            bail!("line {}: {pk:?} is not a 66-hex account", i + 1);
        }
        let seed = match w.next() {
            Some(s) => Some(
                hex::decode(s)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .with_context(|| format!("line {}: the seed must be 64 hex", i + 1))?,
            ),
            None => None,
        };
        out.push(LoadAccount {
            pubkey: pk.to_owned(),
            seed,
        });
    }
    if out.is_empty() {
        bail!("no accounts");
    }
    Ok(out)
}

/// Prints `label: done/total (pct, rate/s)` to standard error every 2 s until aborted.
pub fn progress(
    label: &'static str,
    done: Arc<std::sync::atomic::AtomicU64>,
    total: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            let d = done.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "  {label}: {d}/{total} ({:.0} %, {:.0}/s)",
                d as f64 * 100.0 / total.max(1) as f64,
                d as f64 / start.elapsed().as_secs_f64().max(1e-3)
            );
        }
    })
}

/// What a load run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise or failed.
    pub failed: u64,
    /// Wall time in seconds.
    pub secs: f64,
    /// Latencies of the answered requests, ms, sorted.
    pub latencies: Vec<f64>,
    /// A sample failure.
    pub sample_error: Option<String>,
}

impl LoadResult {
    /// The `p`-quantile latency (ms).
    pub fn quantile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

/// A keep-alive HTTPS connection to `target`, from `source` when given.
pub async fn connect_from(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let socket = match target {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding source address {ip}"))?;
    }
    let tcp = socket.connect(target).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
    let tls = connector
        .connect(ServerName::IpAddress(target.ip().into()), tcp)
        .await?;
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Sends `total` requests made by `make(i)` to `target` over `connections` keep-alive
/// connections, spread over `sources` loopback source addresses (127.0.1.0 on) when the target
/// is on loopback, so a per-IP rate limit caps no figure.
pub async fn load(
    target: SocketAddr,
    connections: usize,
    sources: usize,
    total: u64,
    make: Arc<dyn Fn(u64) -> Value + Send + Sync>,
) -> LoadResult {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = progress("requests", done.clone(), total);
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|c| {
            let (next, make, done) = (next.clone(), make.clone(), done.clone());
            let source =
                (target.ip().is_loopback() && target.is_ipv4() && sources > 0).then(|| {
                    let k = u32::try_from(c % sources).unwrap_or(0);
                    std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0100 + k))
                });
            tokio::spawn(async move {
                let mut r = LoadResult::default();
                let mut conn = None;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return r;
                    }
                    if conn.is_none() {
                        match connect_from(target, source).await {
                            Ok(s) => conn = Some(s),
                            Err(e) => {
                                r.failed += 1;
                                r.sample_error.get_or_insert(format!("{e:#}"));
                                continue;
                            }
                        }
                    }
                    let Some(send) = conn.as_mut() else { continue };
                    let body = make(i).to_string();
                    let req = hyper::Request::post("/storage_rpc/v1")
                        .header(hyper::header::HOST, target.to_string())
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)));
                    let t0 = std::time::Instant::now();
                    let outcome = match req {
                        Ok(req) => match send.send_request(req).await {
                            Ok(resp) => {
                                let status = resp.status().as_u16();
                                match resp.into_body().collect().await {
                                    Ok(_) if status == 200 => Ok(()),
                                    Ok(b) => Err(format!(
                                        "{status} {}",
                                        String::from_utf8_lossy(&b.to_bytes())
                                    )),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            Err(e) => Err(e.to_string()),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match outcome {
                        Ok(()) => {
                            r.ok += 1;
                            r.latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        Err(e) => {
                            r.failed += 1;
                            r.sample_error.get_or_insert(e);
                            conn = None; // the server may have closed it
                        }
                    }
                }
            })
        })
        .collect();
    let mut all = LoadResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.ok += r.ok;
            all.failed += r.failed;
            all.latencies.extend(r.latencies);
            if all.sample_error.is_none() {
                all.sample_error = r.sample_error;
            }
        }
    }
    ticker.abort();
    all.secs = start.elapsed().as_secs_f64();
    all.latencies.sort_by(f64::total_cmp);
    all
}
