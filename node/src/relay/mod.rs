//! The relay service (service nodes only): onion requests, and the persistent links between
//! service nodes they and forwarded writes travel on.
//!
//! - [`onion`]: the entry (`POST /onion_req/v2`, reached through [`crate::storage::server`]'s
//!   port), hops between service nodes, and the ends (this node's storage RPC, or an HTTP
//!   server). Layers are peeled on its own worker pool by `sispop_relay::hop` (sans IO).
//! - [`link`]: `/sispop/sn-link/2`, one multiplexed stream per pair of service nodes.
//!
//! It owns the relay's keys and worker pool. It calls the core ([`crate::node`]) for the list
//! of active service nodes, [`crate::storage::server`] to end a request at this node's
//! storage, and [`crate::p2p`] to open links.

pub mod link;
pub mod onion;
