//! The storage service (service nodes only): the swarm's message store, as clients and the
//! other members of the swarm reach it.
//!
//! - [`server`]: the HTTPS port — `POST /storage_rpc/v1` (and the entry of `/onion_req/v2`,
//!   handed to [`crate::relay`]), what each client may hold of it ([`server`]'s `clients`),
//!   the worker pool requests run on, and the sweep of expired messages.
//! - [`replicate`]: which parts of a client's request go on to the rest of the swarm.
//! - [`sync`]: the swarm protocol `/sispop/storage/1` — forwarded writes, pulls when a node
//!   joins a swarm, hand-overs when accounts change swarm, and its answers to peers.
//! - [`redeliver`]: writes a member missed, delivered again.
//! - [`peer_test`]: storage tests of other nodes (as a validator), answers to them, and the
//!   acknowledgements they rest on.
//!
//! It owns the message store (`sispop_storage::store`) and its worker pool. It calls the core
//! ([`crate::node`]) for the chain view (is this node active, which swarm owns an account),
//! the network ([`crate::p2p`], [`crate::p2p::link`]) to reach swarm members, and
//! [`crate::metrics`] to count requests.

pub mod peer_test;
pub mod redeliver;
pub mod replicate;
pub mod server;
pub mod sync;
