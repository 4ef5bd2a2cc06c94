//! The client's side of onion requests (reference `storage-and-onion.md` §5.4, §5.6), sans IO:
//! choose a path, build the layered request for it, and open the answer.
//!
//! A path is a list of service nodes; the request enters at the first and its destination is
//! the last (a storage request runs there), or an HTTP server the last one calls. Every layer
//! has its own ephemeral key. Our client encrypts with `xchacha20` unless told otherwise.

use base64::Engine as _;
use rand::seq::SliceRandom as _;
use rand_core::{CryptoRng, RngCore};
use serde_json::{json, Map, Value};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::crypto::{self, EncType, KeyTable};
use crate::encode_payload;
use crate::hop::{Protocol, ReplyKey};

/// A service node as a client knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Its Ed25519 key (its identity; what a layer names as `destination`).
    pub ed25519: [u8; 32],
    /// Its X25519 key (what layers are encrypted to).
    pub x25519: [u8; 32],
}

impl Node {
    /// A node from its Ed25519 key; `None` if the key is not a curve point.
    pub fn from_ed25519(ed25519: [u8; 32]) -> Option<Node> {
        let p = curve25519_dalek::edwards::CompressedEdwardsY(ed25519).decompress()?;
        Some(Node {
            ed25519,
            x25519: p.to_montgomery().to_bytes(),
        })
    }
}

/// An HTTP server at the end of a path, reached from the path's last node.
#[derive(Clone, Debug)]
pub struct HttpServer {
    /// Scheme.
    pub protocol: Protocol,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `/oxen/v4/lsrpc` and the like.
    pub target: String,
    /// The server's X25519 key.
    pub x25519: [u8; 32],
}

/// Where a request goes.
#[derive(Clone, Debug)]
pub enum Destination {
    /// The last node of the path runs a storage request.
    Storage,
    /// The last node of the path calls an HTTP server.
    Http(HttpServer),
}

/// A built request: the body to POST to the first node's `/onion_req/v2`, and the key that
/// opens the answer.
pub struct Built {
    /// The request body.
    pub body: Vec<u8>,
    /// The destination layer's key.
    pub reply: ReplyKey,
}

/// Why building a request failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No nodes in the path.
    #[error("a path needs at least one node")]
    EmptyPath,
    /// A node's key gives no shared secret.
    #[error("a node's X25519 key is unusable")]
    BadKey,
}

/// [`KeyTable`]s for the nodes a client encrypts to again and again (it keeps its paths, or it
/// sends many requests through a small network): with one, a layer's ephemeral key and its
/// agreement cost about half as much. A node's table is built the second time a request is
/// built for it; past [`KeyTables::MAX`] tables, the one used least recently goes. Shared by
/// all the client's tasks.
#[derive(Default)]
pub struct KeyTables {
    /// Key → its entry.
    tables: RwLock<HashMap<[u8; 32], Entry>>,
    seen: Mutex<HashSet<[u8; 32]>>,
    clock: AtomicU64,
}

/// A key's table (`None`: the key has no Edwards point) and when it was last used.
type Entry = (Option<Arc<KeyTable>>, AtomicU64);

impl KeyTables {
    /// Tables kept at most (30 KiB each).
    pub const MAX: usize = 256;
    /// Keys remembered as seen once (forgotten all together past this).
    const SEEN: usize = 4096;

    /// The table for `key`, building it if this is the key's second time.
    fn get(&self, key: &[u8; 32]) -> Option<Arc<KeyTable>> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Some((table, used)) = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            used.store(now, Ordering::Relaxed);
            return table.clone();
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= Self::SEEN {
                seen.clear();
            }
            if seen.insert(*key) {
                return None;
            }
        }
        let table = KeyTable::new(key).map(Arc::new);
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if tables.len() >= Self::MAX && !tables.contains_key(key) {
            let oldest = tables
                .iter()
                .min_by_key(|(_, (_, used))| used.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                tables.remove(&k);
            }
        }
        tables.insert(*key, (table.clone(), AtomicU64::new(now)));
        table
    }

    /// How many keys have a table (or are known to have none).
    pub fn len(&self) -> usize {
        self.tables.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fresh ephemeral key for each key in `to` and its agreement with it: (our public key,
/// shared secret), in order. Keys with a table in `tables` take it, all of them together
/// ([`KeyTable::ephemeral_agree_all`]: one inversion for the lot); the others take
/// [`crypto::ephemeral_agree`].
fn agree_all(
    to: &[[u8; 32]],
    rng: &mut (impl RngCore + CryptoRng),
    tables: Option<&KeyTables>,
) -> Result<Vec<crypto::Agreement>, BuildError> {
    let found: Vec<Option<Arc<KeyTable>>> =
        to.iter().map(|k| tables.and_then(|t| t.get(k))).collect();
    let with: Vec<&KeyTable> = found.iter().flatten().map(|t| &**t).collect();
    let mut tabled = KeyTable::ephemeral_agree_all(&with, rng)
        .map_err(|_| BuildError::BadKey)?
        .into_iter();
    to.iter()
        .zip(&found)
        .map(|(key, table)| match table {
            Some(_) => tabled.next().ok_or(BuildError::BadKey),
            None => crypto::ephemeral_agree(key).map_err(|_| BuildError::BadKey),
        })
        .collect()
}

/// Encrypts `plain` for `to` with the ephemeral key of `agreed` (its public key and shared
/// secret); returns the ciphertext, the ephemeral public key and the layer's key.
fn seal(
    plain: &[u8],
    to: &[u8; 32],
    (public, s): crypto::Agreement,
    enc: EncType,
    gcm_salt: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> (Vec<u8>, [u8; 32], ReplyKey) {
    let key = ReplyKey::new(enc, crypto::layer_key(enc, &s, &public, to, gcm_salt));
    (key.encrypt(plain, rng), public, key)
}

/// Builds an onion request through `path` (entry first). For [`Destination::Storage`],
/// `request` is a storage RPC body (`{"method", "params"}`) run by the last node; for an HTTP
/// server it is that server's own request. Every layer uses `enc`. `rng` makes the nonces.
///
/// Without `tables` (a one-off request), the ephemeral keys come from the system's generator
/// ([`crypto::ephemeral_agree`]). A client that sends many requests passes its [`KeyTables`]:
/// layers for nodes with a [`KeyTable`] cost about three quarters as much, and their
/// ephemeral keys come from `rng`, which must then be a cryptographic generator (the system's,
/// or one seeded from it).
pub fn build(
    path: &[Node],
    dest: &Destination,
    request: &[u8],
    enc: EncType,
    gcm_salt: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
    tables: Option<&KeyTables>,
) -> Result<Built, BuildError> {
    let (last, _) = path.split_last().ok_or(BuildError::EmptyPath)?;
    // Who each layer is for, innermost first: the destination, then the nodes outward.
    let (inner, wrapped) = match dest {
        Destination::Storage => (last.x25519, &path[..path.len() - 1]),
        Destination::Http(server) => (server.x25519, path),
    };
    let to: Vec<[u8; 32]> = std::iter::once(inner)
        .chain(wrapped.iter().rev().map(|n| n.x25519))
        .collect();
    let mut agreed = agree_all(&to, rng, tables)?.into_iter();
    let mut next = || agreed.next().ok_or(BuildError::BadKey);
    // The innermost layer, and the routing JSON the node before it reads.
    let (mut data, mut eph, reply, mut routing) = match dest {
        Destination::Storage => {
            let plain = encode_payload(request, &obj(json!({"headers": {}})));
            let (c, e, k) = seal(&plain, &inner, next()?, enc, gcm_salt, rng);
            let routing = json!({"destination": hex::encode(last.ed25519)});
            (c, e, k, routing)
        }
        Destination::Http(server) => {
            let (c, e, k) = seal(request, &inner, next()?, enc, gcm_salt, rng);
            let protocol = match server.protocol {
                Protocol::Http => "http",
                Protocol::Https => "https",
            };
            let routing = json!({
                "host": server.host, "target": server.target, "method": "POST",
                "protocol": protocol, "port": server.port,
            });
            (c, e, k, routing)
        }
    };
    // Outward: wrap for each node, innermost first.
    for node in wrapped.iter().rev() {
        routing["ephemeral_key"] = json!(hex::encode(eph));
        routing["enc_type"] = json!(enc.name());
        let plain = encode_payload(&data, &obj(routing));
        let (c, e, _) = seal(&plain, &node.x25519, next()?, enc, gcm_salt, rng);
        data = c;
        eph = e;
        routing = json!({"destination": hex::encode(node.ed25519)});
    }
    let outer = json!({"ephemeral_key": hex::encode(eph), "enc_type": enc.name()});
    Ok(Built {
        body: encode_payload(&data, &obj(outer)),
        reply,
    })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// What came back.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The destination answered: its status and body (JSON if the body was JSON, else a
    /// string).
    Destination {
        /// The destination's status.
        status: u16,
        /// Its body.
        body: Value,
    },
    /// A node on the path failed the request (a plaintext error).
    Path {
        /// The HTTP status from the entry.
        status: u16,
        /// The error text.
        text: String,
    },
}

/// Why an answer could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not base64.
    #[error("the answer is not base64")]
    Base64,
    /// Does not decrypt with the destination's key (an error from a node before it?).
    #[error("the answer does not decrypt")]
    Decrypt,
    /// Decrypts, but is not `{"body", "status"}`.
    #[error("the answer is not a status and body")]
    Shape,
}

/// Opens the answer of a storage destination: the entry's HTTP status and body.
pub fn open_answer(reply: &ReplyKey, status: u16, body: &[u8]) -> Result<Answer, AnswerError> {
    if status != 200 {
        return Ok(Answer::Path {
            status,
            text: String::from_utf8_lossy(body).into_owned(),
        });
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body.trim_ascii())
        .map_err(|_| AnswerError::Base64)?;
    let plain = reply.decrypt(&raw).map_err(|_| AnswerError::Decrypt)?;
    let v: Value = serde_json::from_slice(&plain).map_err(|_| AnswerError::Shape)?;
    let status = v["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or(AnswerError::Shape)?;
    let body = match &v["body"] {
        // A double-encoded JSON body is opened once more.
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(|b| b.is_object() || b.is_array())
            .unwrap_or_else(|| Value::String(s.clone())),
        other => other.clone(),
    };
    Ok(Answer::Destination { status, body })
}

/// Chooses a path of `len` distinct nodes ending at `dest` (when given): the others are drawn
/// at random from `nodes`, never `dest` again. `None` when there are not enough nodes.
pub fn choose_path(
    nodes: &[Node],
    len: usize,
    dest: Option<Node>,
    rng: &mut impl RngCore,
) -> Option<Vec<Node>> {
    let mut pool: Vec<Node> = nodes
        .iter()
        .filter(|n| dest.is_none_or(|d| d.ed25519 != n.ed25519))
        .copied()
        .collect();
    pool.sort_unstable_by_key(|n| n.ed25519);
    pool.dedup_by_key(|n| n.ed25519);
    let take = len.checked_sub(usize::from(dest.is_some()))?;
    if pool.len() < take || len == 0 {
        return None;
    }
    let mut path: Vec<Node> = pool.choose_multiple(rng, take).copied().collect();
    path.shuffle(rng);
    path.extend(dest);
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 32] {
        let mut secret = [0u8; 32];
        secret[1..5].copy_from_slice(&i.to_le_bytes()); // above the bits clamping clears
        crypto::x25519_public(&secret)
    }

    #[test]
    fn key_tables_keep_the_recently_used_within_their_bound() {
        let tables = KeyTables::default();
        let hot = key(0);
        assert!(tables.get(&hot).is_none(), "seen once: no table yet");
        assert!(tables.get(&hot).is_some(), "seen twice: a table");
        for i in 1..=(KeyTables::MAX as u32 + 10) {
            let k = key(i);
            tables.get(&k);
            tables.get(&k);
            assert!(tables.get(&hot).is_some(), "the key in use stays");
            assert!(tables.len() <= KeyTables::MAX);
        }
        assert_eq!(tables.len(), KeyTables::MAX);
        // The first of the others went long ago; it is built again on its next use.
        assert!(!tables.tables.read().expect("lock").contains_key(&key(1)));
        // A key on the twist is remembered as having no table.
        let twist = (0u8..=255)
            .map(|i| [i; 32])
            .find(|k| {
                curve25519_dalek::montgomery::MontgomeryPoint(*k)
                    .to_edwards(0)
                    .is_none()
            })
            .expect("a twist point");
        assert!(tables.get(&twist).is_none());
        assert!(tables.get(&twist).is_none());
        assert!(tables.tables.read().expect("lock").contains_key(&twist));
    }
}
