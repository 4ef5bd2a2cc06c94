//! The relay service (service nodes only): onion requests.
//!
//! - [`onion`]: the entry (`POST /onion_req/v2`, reached through [`crate::storage::server`]'s
//!   port), hops between service nodes, and the ends (this node's storage RPC, or an HTTP
//!   server). Layers are peeled on its own worker pool by `sispop_relay::hop` (sans IO).
//! - Layers travel between nodes on the persistent links of [`crate::p2p::link`]
//!   (`/sispop/sn-link/2`), or on `/sispop/storage/1` (tag 6).
//!
//! It owns the relay's keys and worker pool. It calls the core ([`crate::node`]) for the list
//! of active service nodes, [`crate::storage::server`] to end a request at this node's
//! storage, and [`crate::p2p`] to reach the next hop.

pub mod onion;
