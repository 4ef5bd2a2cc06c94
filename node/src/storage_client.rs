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

fn tls_config() -> anyhow::Result<ClientConfig> {
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
