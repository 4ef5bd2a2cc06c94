//! Clients of Sispop service nodes, kept out of the daemon (which links none of this):
//!
//! - [`storage`]: the storage client — finds an account's swarm through a daemon's RPC, talks
//!   `/storage_rpc/v1` and `/onion_req/v2` over TLS, and drives load runs; the
//!   `sispop-storage` tool (`src/bin/`) is its command line, the onion client's I/O included
//!   (the layers themselves are built by `sispop-relay`, sans IO).
//! - [`hostile`]: what an attacker's clients do to a node's ports (resets mid-answer, slow and
//!   silent connections), for the daemon's tests and the devnet's `scenario hostile`.

pub mod hostile;
pub mod storage;
