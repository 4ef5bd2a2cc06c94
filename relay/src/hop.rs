//! What a service node does with one onion layer (reference `storage-and-onion.md` §5.5–§5.8),
//! sans IO: parse the request (from a client at the entry, or from the previous hop), peel
//! the layer with the node's X25519 key, and classify what is inside.
//!
//! The caller does the IO the [`Hop`] asks for (forward to the next node, run a storage
//! request, call an HTTP server) and answers with the [`Reply`] this module builds. Errors
//! before the layer is open are plaintext (the node has no key to encrypt them with); errors
//! after it are encrypted for the client with the layer's key, as upstream.

use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use serde_json::{Map, Value};

use crate::crypto::{self, EncType};
use crate::decode_payload;
pub use crate::hop_wire::{decode_layer, encode_layer};

/// Most hops a request may travel (`MAX_ONION_HOPS`); a hop numbered above it is refused.
pub const MAX_HOPS: u32 = 15;

/// A node's static X25519 key pair.
#[derive(Clone)]
pub struct NodeKey {
    secret: std::sync::Arc<crypto::StaticSecret>,
    /// The public key clients encrypt to.
    pub public: [u8; 32],
}

impl NodeKey {
    /// The key pair of a node with this Ed25519 seed (as libsodium converts it).
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Result<NodeKey, crypto::CryptoError> {
        let secret = zeroize::Zeroizing::new(crypto::x25519_secret_from_ed25519_seed(seed));
        Ok(NodeKey {
            public: crypto::x25519_public(&secret),
            secret: std::sync::Arc::new(crypto::StaticSecret::new(&secret)?),
        })
    }
}

/// One encrypted layer on its way to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The ciphertext for this node.
    pub data: Vec<u8>,
    /// The client's ephemeral X25519 key for this layer.
    pub ephemeral_key: [u8; 32],
    /// How the layer is encrypted.
    pub enc: EncType,
    /// Which hop this is (0 or 1 at the entry, one more at each node).
    pub hop_no: u32,
}

/// A reply to the previous hop or the client: a status and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status (the HTTP status at the entry).
    pub status: u16,
    /// The body, passed back through every hop unchanged.
    pub body: Vec<u8>,
}

impl Reply {
    /// A plaintext reply (an error that happened before the layer was open, or on the way).
    pub fn plain(status: u16, text: &str) -> Reply {
        Reply {
            status,
            body: text.as_bytes().to_vec(),
        }
    }
}

/// The key a layer was encrypted with; the node answers the client with it.
#[derive(Clone, Debug)]
pub struct ReplyKey {
    /// The layer's encryption.
    pub enc: EncType,
    key: [u8; 32],
}

impl ReplyKey {
    /// The key for `enc` with the given symmetric key.
    pub fn new(enc: EncType, key: [u8; 32]) -> ReplyKey {
        ReplyKey { enc, key }
    }

    /// Encrypts for the client.
    pub fn encrypt(&self, plaintext: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Vec<u8> {
        crypto::encrypt(self.enc, &self.key, plaintext, rng)
    }

    /// Decrypts what the other side encrypted with this key.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, crypto::CryptoError> {
        crypto::decrypt(self.enc, &self.key, data)
    }

    /// The final hop's answer (§5.7): `{"body": …, "status": n}` (keys in this order, compact)
    /// encrypted for the client, base64 unless the client asked for raw bytes. `body` is the
    /// response: a JSON value is serialised into a string unless the client asked for `json`,
    /// when it is embedded as is.
    pub fn wrap(
        &self,
        status: u16,
        body: &Value,
        opts: FinalOptions,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Reply {
        // Written straight into one buffer (`serde_json::to_writer`, not `Display`, which goes
        // through a formatter): the same compact bytes.
        let mut plain = Vec::with_capacity(64);
        plain.extend_from_slice(b"{\"body\":");
        let written = match body {
            v @ Value::String(_) => serde_json::to_writer(&mut plain, v),
            v if opts.json => serde_json::to_writer(&mut plain, v),
            v => serde_json::to_string(v).and_then(|s| serde_json::to_writer(&mut plain, &s)),
        };
        if written.is_err() {
            // Not for a `Value` (its keys are strings, its numbers finite); null if ever.
            plain.truncate(b"{\"body\":".len());
            plain.extend_from_slice(b"null");
        }
        plain.extend_from_slice(format!(",\"status\":{status}}}").as_bytes());
        let sealed = self.encrypt(&plain, rng);
        Reply {
            status: 200,
            body: if opts.base64 {
                base64::engine::general_purpose::STANDARD
                    .encode(sealed)
                    .into_bytes()
            } else {
                sealed
            },
        }
    }
}

/// How the final hop formats its answer (from the control JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalOptions {
    /// Embed a JSON response as JSON rather than as a string.
    pub json: bool,
    /// Base64-encode the encrypted answer (the default).
    pub base64: bool,
}

impl Default for FinalOptions {
    fn default() -> Self {
        FinalOptions {
            json: false,
            base64: true,
        }
    }
}

/// The scheme of an HTTP destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

/// What is inside a peeled layer.
#[derive(Debug)]
pub enum Hop {
    /// This node is the destination: run `request` (a storage RPC JSON body) and answer with
    /// [`ReplyKey::wrap`].
    Final {
        /// The storage request.
        request: Vec<u8>,
        /// How to format the answer.
        opts: FinalOptions,
        /// The layer's key.
        key: ReplyKey,
    },
    /// Forward `layer` to the service node with Ed25519 key `next`.
    Relay {
        /// The next node's Ed25519 key.
        next: [u8; 32],
        /// The layer for it (its `hop_no` already one more than ours).
        layer: Layer,
        /// The layer's key (for errors).
        key: ReplyKey,
    },
    /// Send `plaintext` (this layer's whole plaintext) to an HTTP server and pass its answer
    /// back verbatim.
    Http {
        /// Scheme.
        protocol: Protocol,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Path, `/loki/…/lsrpc` or `/oxen/…/lsrpc`.
        target: String,
        /// What to POST.
        plaintext: Vec<u8>,
        /// The layer's key (for errors).
        key: ReplyKey,
    },
}

/// Why a layer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// The request around the layer is malformed (plaintext 400).
    #[error("Error parsing onion request: {0}")]
    Parse(String),
    /// Too many hops (plaintext 400).
    #[error("onion request max path length exceeded")]
    TooManyHops,
    /// The layer does not decrypt (plaintext 400).
    #[error("Invalid ciphertext")]
    Ciphertext,
    /// The layer decrypts but what is inside is malformed (400, encrypted for the client).
    #[error("Invalid json")]
    Json(ReplyKey),
    /// An HTTP destination that is not allowed (400, encrypted for the client).
    #[error("Invalid url")]
    Url(ReplyKey),
}

impl HopError {
    /// The reply for this error: plaintext, or encrypted for the client when the layer was
    /// opened.
    pub fn reply(&self, rng: &mut (impl RngCore + CryptoRng)) -> Reply {
        let text = self.to_string();
        match self {
            HopError::Json(key) | HopError::Url(key) => {
                key.wrap(400, &Value::String(text), FinalOptions::default(), rng)
            }
            _ => Reply::plain(400, &text),
        }
    }
}

fn hex32(v: Option<&Value>) -> Option<[u8; 32]> {
    let s = v?.as_str()?;
    if s.len() != 64 {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn enc_type(v: Option<&Value>) -> Result<EncType, String> {
    match v {
        None | Some(Value::Null) => EncType::parse(None),
        Some(Value::String(s)) => EncType::parse(Some(s)),
        Some(_) => return Err("enc_type must be a string".into()),
    }
    .map_err(|e| e.to_string())
}

/// Parses the body a client posts to `/onion_req/v2`: `[N][ciphertext][json]` with the
/// layer's `ephemeral_key` (64 hex digits), `enc_type` and optional `hop_no`.
pub fn parse_entry(body: &[u8]) -> Result<Layer, HopError> {
    let p = decode_payload(body).map_err(|e| HopError::Parse(e.to_string()))?;
    let ephemeral_key = hex32(p.json.get("ephemeral_key"))
        .ok_or_else(|| HopError::Parse("ephemeral_key must be 64 hex digits".into()))?;
    let enc = enc_type(p.json.get("enc_type")).map_err(HopError::Parse)?;
    let hop_no = match p.json.get("hop_no") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64() {
            Some(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            None => return Err(HopError::Parse("hop_no must be an integer".into())),
        },
    };
    Ok(Layer {
        data: p.blob.to_vec(),
        ephemeral_key,
        enc,
        hop_no,
    })
}

/// Decrypts a layer with the node's key: its plaintext and the key to answer with. What an
/// HTTP destination (an open group server, a file server) does with the layer it is sent.
///
/// An `aes-gcm` layer that does not open under `gcm_salt` is tried under the Oxen lineage's
/// `"LOKI"` as well, so clients of both lineages are served; the answer goes back under the
/// key that opened the layer. (AES-GCM authenticates: a layer opens under one salt only.)
pub fn open(
    node: &NodeKey,
    layer: &Layer,
    gcm_salt: &[u8],
) -> Result<(Vec<u8>, ReplyKey), HopError> {
    let s = node
        .secret
        .agree(&layer.ephemeral_key)
        .map_err(|_| HopError::Ciphertext)?;
    let key_for = |salt: &[u8]| {
        ReplyKey::new(
            layer.enc,
            crypto::layer_key(layer.enc, &s, &layer.ephemeral_key, &node.public, salt),
        )
    };
    let key = key_for(gcm_salt);
    match key.decrypt(&layer.data) {
        Ok(plain) => Ok((plain, key)),
        Err(crypto::CryptoError::Auth)
            if layer.enc == EncType::AesGcm && gcm_salt != crypto::OXEN_GCM_SALT =>
        {
            let other = key_for(crypto::OXEN_GCM_SALT);
            let plain = other
                .decrypt(&layer.data)
                .map_err(|_| HopError::Ciphertext)?;
            Ok((plain, other))
        }
        Err(_) => Err(HopError::Ciphertext),
    }
}

/// Opens a layer with the node's key and classifies what is inside: `headers` → this node is
/// the destination; `host` → an HTTP server; otherwise → the next node (`destination`,
/// `ephemeral_key`, optional `enc_type`).
pub fn peel(node: &NodeKey, layer: &Layer, gcm_salt: &[u8]) -> Result<Hop, HopError> {
    if layer.hop_no > MAX_HOPS {
        return Err(HopError::TooManyHops);
    }
    let (plain, key) = open(node, layer, gcm_salt)?;
    let Ok(p) = decode_payload(&plain) else {
        return Err(HopError::Json(key));
    };
    if p.json.contains_key("headers") {
        let flag =
            |k: &str, default: bool| p.json.get(k).and_then(Value::as_bool).unwrap_or(default);
        let opts = FinalOptions {
            json: flag("json", false),
            base64: flag("base64", true),
        };
        return Ok(Hop::Final {
            request: p.blob.to_vec(),
            opts,
            key,
        });
    }
    if p.json.contains_key("host") {
        return http_hop(&p.json, plain.clone(), key);
    }
    let next = hex32(p.json.get("destination"));
    let eph = hex32(p.json.get("ephemeral_key"));
    let enc = enc_type(p.json.get("enc_type"));
    match (next, eph, enc) {
        (Some(next), Some(ephemeral_key), Ok(enc)) => Ok(Hop::Relay {
            next,
            layer: Layer {
                data: p.blob.to_vec(),
                ephemeral_key,
                enc,
                hop_no: layer.hop_no.saturating_add(1),
            },
            key,
        }),
        _ => Err(HopError::Json(key)),
    }
}

fn http_hop(json: &Map<String, Value>, plaintext: Vec<u8>, key: ReplyKey) -> Result<Hop, HopError> {
    let (Some(host), Some(target)) = (
        json.get("host").and_then(Value::as_str),
        json.get("target").and_then(Value::as_str),
    ) else {
        return Err(HopError::Json(key));
    };
    let protocol = match json.get("protocol") {
        None => Protocol::Https,
        Some(Value::String(p)) if p == "https" => Protocol::Https,
        Some(Value::String(p)) if p == "http" => Protocol::Http,
        Some(Value::String(_)) => return Err(HopError::Url(key)),
        Some(_) => return Err(HopError::Json(key)),
    };
    // 443 whatever the protocol, as upstream.
    let port = match json.get("port") {
        None => 443,
        Some(v) => match v.as_u64().and_then(|p| u16::try_from(p).ok()) {
            Some(p) if p != 0 => p,
            _ => return Err(HopError::Json(key)),
        },
    };
    let allowed_target = (target.starts_with("/loki/") || target.starts_with("/oxen/"))
        && target.ends_with("/lsrpc")
        && !target.contains('?')
        && !target.split('/').any(|seg| seg == "..");
    let allowed_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !allowed_target || !allowed_host {
        return Err(HopError::Url(key));
    }
    Ok(Hop::Http {
        protocol,
        host: host.to_owned(),
        port,
        target: target.to_owned(),
        plaintext,
        key,
    })
}

#[cfg(test)]
#[path = "hop_tests.rs"]
mod tests;
