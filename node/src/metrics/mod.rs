//! Prometheus metrics (`prometheus-client`), served in the text format at `/metrics` on
//! `--metrics-bind` (off by default).
//!
//! Values that the node already keeps (heights, peers, the pool, the proof and vote counters,
//! the service node list, the message store) are read when scraped; what only passes by (block
//! validation time, bans, storage requests and their latency, onion requests) is counted as it
//! happens, in [`Metrics`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::node::counters::{label, Labels};
use crate::node::Node;
use crate::storage::server::Storage;

/// The metrics text for `node` (and its storage service, on a service node), as of now.
pub fn render(node: &Node, storage: Option<&Storage>) -> String {
    let mut r = Registry::with_prefix("sispop");
    node.metrics.register(&mut r);

    let gauge = |r: &mut Registry, name: &str, help: &str, v: u64| {
        r.register(name, help, ConstGauge::new(v));
    };
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        r.register(name, help, ConstCounter::new(v));
    };
    {
        let st = node.lock();
        let (h, _) = st.chain.tip();
        gauge(&mut r, "chain_height", "Blocks in the main chain", h.0 + 1);
        gauge(
            &mut r,
            "mempool_transactions",
            "Transactions in the pool",
            st.pool.len() as u64,
        );
        gauge(
            &mut r,
            "mempool_bytes",
            "Bytes of transactions in the pool",
            st.pool.bytes() as u64,
        );
        let state = st.chain.ext().state();
        let by_state: Family<Labels, Gauge> = Family::default();
        for (_, n) in state.nodes.iter() {
            by_state
                .get_or_create(&label(&[("state", crate::node::sn_state_name(n))]))
                .inc();
        }
        r.register(
            "service_nodes",
            "Registered service nodes, by state",
            by_state,
        );
        if let Some(keys) = st.sn_keys.as_ref() {
            let own = state
                .nodes
                .get(&keys.primary)
                .map_or("not_registered", |n| crate::node::sn_state_name(n));
            let f: Family<Labels, Gauge> = Family::default();
            f.get_or_create(&label(&[("state", own)])).set(1);
            r.register(
                "service_node_state",
                "This node's service node state (1 for the current one)",
                f,
            );
        }
    }
    if let Some(net) = node.net.get() {
        let s = net.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        gauge(
            &mut r,
            "sync_target_height",
            "Highest chain height a peer claims",
            s.best_peer_height.saturating_add(1),
        );
        let peers: Family<Labels, Gauge> = Family::default();
        peers
            .get_or_create(&label(&[("direction", "in")]))
            .set(i64::try_from(s.incoming).unwrap_or(i64::MAX));
        peers
            .get_or_create(&label(&[("direction", "out")]))
            .set(i64::try_from(s.outgoing).unwrap_or(i64::MAX));
        r.register("peers", "Connected peers, by direction", peers);
        gauge(&mut r, "peers_banned", "Peers banned now", s.banned as u64);
    }
    {
        let c = node.acct().counters;
        counter(
            &mut r,
            "uptime_proofs_sent",
            "Own uptime proofs published",
            c.proofs_sent,
        );
        counter(
            &mut r,
            "uptime_proofs_received",
            "Uptime proofs accepted from the network",
            c.proofs_received,
        );
        counter(
            &mut r,
            "uptime_proofs_rejected",
            "Uptime proofs refused",
            c.proofs_rejected,
        );
        counter(&mut r, "votes_cast", "Votes this node cast", c.votes_cast);
        counter(
            &mut r,
            "votes_received",
            "Valid votes received",
            c.votes_received,
        );
        counter(&mut r, "votes_rejected", "Votes refused", c.votes_rejected);
        counter(
            &mut r,
            "state_changes_submitted",
            "State-change transactions this node put in the pool",
            c.state_changes_submitted,
        );
    }
    if let Some(storage) = storage {
        let s = storage.store.stats();
        gauge(
            &mut r,
            "storage_messages",
            "Messages held (estimate)",
            s.messages,
        );
        gauge(
            &mut r,
            "storage_bytes",
            "Bytes of messages held (estimate)",
            s.bytes,
        );
        gauge(
            &mut r,
            "storage_connections",
            "Client connections open on the storage port",
            storage.clients.open() as u64,
        );
        let (missed, dropped) = {
            let m = storage.missed.lock().unwrap_or_else(|p| p.into_inner());
            (m.len() as u64, m.dropped)
        };
        gauge(
            &mut r,
            "storage_redeliveries_pending",
            "Writes swarm members missed, waiting to be delivered again",
            missed,
        );
        counter(
            &mut r,
            "storage_redeliveries_dropped",
            "Writes swarm members missed that were dropped because too many were waiting",
            dropped,
        );
    }
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &r) {
        warn!(error = %e, "encoding metrics failed");
    }
    out
}

/// Most open metrics connections.
const MAX_CONNECTIONS: usize = 32;

async fn handle(
    node: Node,
    storage: StorageCell,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, ctype) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "see /metrics\n".to_owned(),
            "text/plain",
        )
    } else {
        let n = node.clone();
        match tokio::task::spawn_blocking(move || render(&n, storage.get().map(|s| &**s))).await {
            Ok(text) => (
                StatusCode::OK,
                text,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics failed\n".to_owned(),
                "text/plain",
            ),
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    Ok(r)
}

/// The storage service, once a service node has started it.
pub type StorageCell = Arc<std::sync::OnceLock<Arc<Storage>>>;

/// Serves `/metrics` on `listener` until shutdown.
pub async fn serve(node: Node, storage: StorageCell, listener: TcpListener) {
    let mut stop = node.shutdown.subscribe();
    info!(addr = ?listener.local_addr().ok(), "metrics at /metrics");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (node, storage) = (node.clone(), storage.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let svc =
                hyper::service::service_fn(move |req| handle(node.clone(), storage.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sispop_chain::{Network, NetworkParams};

    #[test]
    fn renders_with_bounded_labels() {
        let params = NetworkParams::get(Network::Devnet);
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = crate::node::Chain::open_with(
            params,
            &dir.path().join("chain"),
            sispop_staking::ServiceNodeList::new(params),
        )
        .expect("chain");
        let node = Node::new(chain, None, None);
        node.metrics
            .banned("sent an invalid block during sync: bad proof of work");
        node.metrics
            .banned("sent an invalid block during sync: another detail");
        node.metrics.state_changed("decommissioned");
        node.metrics
            .storage_request(Some("evil\"} 1\nsispop_x"), 200, Duration::from_millis(3));
        node.metrics.onion("entry", 502);
        node.metrics.block_validated(Duration::from_millis(2));
        let text = render(&node, None);
        for line in [
            "sispop_chain_height 1",
            "sispop_peer_bans_total{reason=\"sent an invalid block during sync\"} 2",
            "sispop_service_node_state_changes_total{to=\"decommissioned\"} 1",
            "sispop_storage_requests_total{method=\"other\",status=\"200\"} 1",
            "sispop_onion_requests_total{role=\"entry\",outcome=\"failed\"} 1",
            "sispop_block_validation_seconds_count 1",
            "# TYPE sispop_uptime_proofs_received counter",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            !text.contains("sispop_x"),
            "a caller's method name is not a label"
        );
    }
}
