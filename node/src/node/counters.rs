//! What the node counts as it happens (block validation time, bans, state changes, storage
//! and onion requests), for [`crate::metrics`] to render: the services count into it through
//! the handle the core holds, and none of them depends on how it is served.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub(crate) type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Storage RPC methods named in labels (anything else is `other`, so a caller cannot grow the
/// label set).
const METHODS: &[&str] = &sispop_storage::rpc::METHODS;

fn latency() -> Histogram {
    // 100 µs to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// What the node counts as it happens.
#[derive(Debug)]
pub struct Metrics {
    block_validation: Histogram,
    bans: Family<Labels, Counter>,
    state_changes: Family<Labels, Counter>,
    replication: Histogram,
    storage_requests: Family<Labels, Counter>,
    storage_latency: HistogramFamily,
    onion: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            block_validation: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            bans: Family::default(),
            state_changes: Family::default(),
            replication: latency(),
            storage_requests: Family::default(),
            storage_latency: Family::new_with_constructor(latency),
            onion: Family::default(),
        }
    }
}

pub(crate) fn label(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// A block was checked (and applied, or refused) in `took`.
    pub fn block_validated(&self, took: Duration) {
        self.block_validation.observe(took.as_secs_f64());
    }

    /// A peer was banned; the label is the reason's fixed part (before any `:` detail), so the
    /// label set is the set of ban sites in the code.
    pub fn banned(&self, reason: &str) {
        let kind: String = reason
            .split(':')
            .next()
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        self.bans
            .get_or_create(&label(&[("reason", kind.trim())]))
            .inc();
    }

    /// A block changed a service node's state to `to`.
    pub fn state_changed(&self, to: &str) {
        self.state_changes
            .get_or_create(&label(&[("to", to)]))
            .inc();
    }

    /// A write reached the rest of its swarm (or timed out trying) in `took`.
    pub fn replicated(&self, took: Duration) {
        self.replication.observe(took.as_secs_f64());
    }

    /// A storage request was answered.
    pub fn storage_request(&self, method: Option<&str>, status: u16, took: Duration) {
        let method = method.filter(|m| METHODS.contains(m)).unwrap_or("other");
        self.storage_requests
            .get_or_create(&label(&[
                ("method", method),
                ("status", &status.to_string()),
            ]))
            .inc();
        self.storage_latency
            .get_or_create(&label(&[("method", method)]))
            .observe(took.as_secs_f64());
    }

    /// An onion request this node handled as `role` (`entry` or `hop`) ended with `status`.
    pub fn onion(&self, role: &str, status: u16) {
        let outcome = if status == 200 { "relayed" } else { "failed" };
        self.onion
            .get_or_create(&label(&[("role", role), ("outcome", outcome)]))
            .inc();
    }

    /// Registers what it counts in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "block_validation_seconds",
            "Time to check and apply (or refuse) a block",
            self.block_validation.clone(),
        );
        r.register("peer_bans", "Peers banned, by reason", self.bans.clone());
        r.register(
            "service_node_state_changes",
            "Service node state changes applied by blocks, by new state",
            self.state_changes.clone(),
        );
        r.register(
            "storage_replication_seconds",
            "Time for a client's write to reach the rest of its swarm",
            self.replication.clone(),
        );
        r.register(
            "storage_requests",
            "Storage RPC requests answered, by method and status",
            self.storage_requests.clone(),
        );
        r.register(
            "storage_request_seconds",
            "Storage RPC latency, by method",
            self.storage_latency.clone(),
        );
        r.register(
            "onion_requests",
            "Onion requests handled, by role and outcome",
            self.onion.clone(),
        );
    }
}
