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
mod tests {
    use super::*;
    use crate::client::{
        build, choose_path, open_answer, Answer, Destination, HttpServer, KeyTables, Node,
    };
    use crate::crypto::SISPOP_GCM_SALT;
    use crate::encode_payload;
    use serde_json::json;

    struct TestNode {
        key: NodeKey,
        pub_: Node,
    }

    fn node(i: u8) -> TestNode {
        let seed = [i; 32];
        let ed = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        TestNode {
            key: NodeKey::from_ed25519_seed(&seed).expect("key"),
            pub_: Node::from_ed25519(ed).expect("a point"),
        }
    }

    fn rng() -> rand_core::OsRng {
        rand_core::OsRng
    }

    /// Walks a request through `nodes` as the nodes would; returns what the last one sees.
    fn walk(nodes: &[TestNode], body: &[u8]) -> Result<Hop, HopError> {
        let mut layer = parse_entry(body)?;
        for (i, n) in nodes.iter().enumerate() {
            match peel(&n.key, &layer, SISPOP_GCM_SALT)? {
                Hop::Relay { next, layer: l, .. } => {
                    assert_eq!(next, nodes[i + 1].pub_.ed25519, "routes to the next node");
                    // Across the node network and back.
                    layer = decode_layer(&encode_layer(&l))?;
                    assert_eq!(layer, l);
                }
                done => {
                    assert_eq!(i, nodes.len() - 1, "ends at the last node");
                    return Ok(done);
                }
            }
        }
        unreachable!("the path ended without a destination")
    }

    #[test]
    fn three_hops_with_tables_for_some_nodes_only() {
        // Node 2 has a table (seen twice on a path of its own), nodes 1 and 3 not yet: the
        // layers' agreements come from a table and from AWS-LC, interleaved, in path order.
        let nodes = [node(1), node(2), node(3)];
        let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
        let tables = KeyTables::default();
        let req = br#"{"method":"retrieve","params":{}}"#;
        let (dest, salt) = (&Destination::Storage, SISPOP_GCM_SALT);
        for _ in 0..2 {
            build(
                &path[1..2],
                dest,
                req,
                EncType::XChaCha20,
                salt,
                &mut rng(),
                Some(&tables),
            )
            .expect("build");
        }
        assert_eq!(tables.len(), 1);
        let built = build(
            &path,
            dest,
            req,
            EncType::XChaCha20,
            salt,
            &mut rng(),
            Some(&tables),
        )
        .expect("build");
        let Hop::Final { request, key, .. } = walk(&nodes, &built.body).expect("walk") else {
            panic!("not final");
        };
        assert_eq!(request, req);
        let reply = key.wrap(
            200,
            &json!({"messages": []}),
            FinalOptions::default(),
            &mut rng(),
        );
        assert_eq!(
            open_answer(&built.reply, reply.status, &reply.body),
            Ok(Answer::Destination {
                status: 200,
                body: json!({"messages": []})
            })
        );
    }

    #[test]
    fn three_hops_to_a_storage_node_and_back() {
        let nodes = [node(1), node(2), node(3)];
        let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
        // Without key tables, then with: the first request through `tables` sees the nodes
        // once, the second builds their tables, the third uses them.
        let tables = KeyTables::default();
        for (enc, round) in [EncType::XChaCha20, EncType::AesGcm]
            .into_iter()
            .flat_map(|e| (0..4).map(move |r| (e, r)))
        {
            let req = br#"{"method":"get_swarm","params":{}}"#;
            let (dest, salt) = (&Destination::Storage, SISPOP_GCM_SALT);
            let built = match round {
                0 => build(&path, dest, req, enc, salt, &mut rng(), None),
                _ => build(&path, dest, req, enc, salt, &mut rng(), Some(&tables)),
            }
            .expect("build");
            let first_rounds = enc == EncType::XChaCha20 && round < 2;
            assert_eq!(tables.len(), if first_rounds { 0 } else { 3 });
            let Hop::Final { request, opts, key } = walk(&nodes, &built.body).expect("walk") else {
                panic!("not final");
            };
            assert_eq!(request, req);
            assert_eq!(opts, FinalOptions::default());
            // The destination answers with JSON; it comes back double-encoded and opens.
            let reply = key.wrap(421, &json!({"snodes": []}), opts, &mut rng());
            assert_eq!(reply.status, 200);
            assert_eq!(
                open_answer(&built.reply, reply.status, &reply.body),
                Ok(Answer::Destination {
                    status: 421,
                    body: json!({"snodes": []})
                })
            );
        }
    }

    #[test]
    fn final_answer_is_the_upstream_shape() {
        let key = ReplyKey::new(EncType::XChaCha20, [3u8; 32]);
        let raw = FinalOptions {
            json: false,
            base64: false,
        };
        let r = key.wrap(200, &json!({"a": 1}), raw, &mut rng());
        assert_eq!(
            key.decrypt(&r.body).expect("opens"),
            br#"{"body":"{\"a\":1}","status":200}"#
        );
        let embedded = FinalOptions {
            json: true,
            base64: false,
        };
        let r = key.wrap(200, &json!({"a": 1}), embedded, &mut rng());
        assert_eq!(
            key.decrypt(&r.body).expect("opens"),
            br#"{"body":{"a":1},"status":200}"#
        );
        let r = key.wrap(503, &json!("not ready"), embedded, &mut rng());
        assert_eq!(
            key.decrypt(&r.body).expect("opens"),
            br#"{"body":"not ready","status":503}"#
        );
    }

    #[test]
    fn http_destination() {
        let nodes = [node(1), node(2), node(3)];
        let server = node(9);
        let path: Vec<Node> = nodes.iter().map(|n| n.pub_).collect();
        let dest = Destination::Http(HttpServer {
            protocol: Protocol::Http,
            host: "127.0.0.1".into(),
            port: 8080,
            target: "/oxen/v4/lsrpc".into(),
            x25519: server.pub_.x25519,
        });
        // One-off, then with tables (built on the second request, used on the third): the
        // server's layer is among those the tables cover.
        let tables = KeyTables::default();
        for round in 0..4 {
            let with = (round > 0).then_some(&tables);
            let built = build(
                &path,
                &dest,
                b"l2:{}e",
                EncType::XChaCha20,
                SISPOP_GCM_SALT,
                &mut rng(),
                with,
            )
            .expect("build");
            http_layers_open(&nodes, &server, &built);
        }
        assert_eq!(tables.len(), 4);
    }

    fn http_layers_open(nodes: &[TestNode], server: &TestNode, built: &crate::client::Built) {
        let Hop::Http {
            protocol,
            host,
            port,
            target,
            plaintext,
            ..
        } = walk(nodes, &built.body).expect("walk")
        else {
            panic!("not http");
        };
        assert_eq!(
            (protocol, host.as_str(), port, target.as_str()),
            (Protocol::Http, "127.0.0.1", 8080, "/oxen/v4/lsrpc")
        );
        // The server gets the whole plaintext and opens its own layer.
        let p = crate::decode_payload(&plaintext).expect("payload");
        let layer = Layer {
            data: p.blob.to_vec(),
            ephemeral_key: hex32(p.json.get("ephemeral_key")).expect("key"),
            enc: enc_type(p.json.get("enc_type")).expect("enc"),
            hop_no: 0,
        };
        let s = server.key.secret.agree(&layer.ephemeral_key).expect("s");
        let k = crypto::layer_key(
            layer.enc,
            &s,
            &layer.ephemeral_key,
            &server.pub_.x25519,
            SISPOP_GCM_SALT,
        );
        assert_eq!(
            crypto::decrypt(layer.enc, &k, &layer.data).expect("opens"),
            b"l2:{}e"
        );
    }

    /// One layer for `n` whose plaintext is `plain`.
    fn layer_for(n: &TestNode, plain: &[u8], enc: EncType) -> Layer {
        let (secret, public) = crypto::ephemeral(&mut rng());
        let s = crypto::shared_secret(&secret, &n.pub_.x25519).expect("s");
        let k = crypto::layer_key(enc, &s, &public, &n.pub_.x25519, SISPOP_GCM_SALT);
        Layer {
            data: crypto::encrypt(enc, &k, plain, &mut rng()),
            ephemeral_key: public,
            enc,
            hop_no: 1,
        }
    }

    fn encrypted_error(e: HopError, text: &str) {
        let (HopError::Json(key) | HopError::Url(key)) = &e else {
            panic!("expected an encrypted error, got {e}");
        };
        let r = e.reply(&mut rng());
        assert_eq!(r.status, 200, "wrapped for the client, as upstream");
        assert_eq!(
            open_answer(key, r.status, &r.body),
            Ok(Answer::Destination {
                status: 400,
                body: json!(text)
            })
        );
    }

    #[test]
    fn bad_entries_are_plain_400s() {
        for body in [
            &b""[..],
            b"\x01\x00",
            b"\xff\xff\x00\x00abc{}",
            b"\x00\x00\x00\x00not json",
            b"\x00\x00\x00\x00{}",
            b"\x00\x00\x00\x00{\"ephemeral_key\":\"zz\"}",
            b"\x00\x00\x00\x00{\"ephemeral_key\":\"0101\"}",
        ] {
            let e = parse_entry(body).expect_err("refused");
            assert!(matches!(e, HopError::Parse(_)), "{e}");
            let r = e.reply(&mut rng());
            assert_eq!(r.status, 400);
            assert!(r.body.starts_with(b"Error parsing onion request: "));
        }
        let key = hex::encode([9u8; 32]);
        let body = encode_payload(
            b"x",
            &obj(json!({"ephemeral_key": key, "enc_type": "aes-cbc"})),
        );
        assert!(matches!(parse_entry(&body), Err(HopError::Parse(_))));
        let body = encode_payload(b"x", &obj(json!({"ephemeral_key": key, "hop_no": -5})));
        assert_eq!(parse_entry(&body).expect("ok").hop_no, 0);
        let big = vec![0u8; crate::MAX_PAYLOAD + 1];
        assert!(matches!(parse_entry(&big), Err(HopError::Parse(_))));
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn bad_layers() {
        let n = node(4);
        let good = layer_for(
            &n,
            &encode_payload(b"{}", &obj(json!({"headers": {}}))),
            EncType::XChaCha20,
        );
        assert!(matches!(
            peel(&n.key, &good, SISPOP_GCM_SALT),
            Ok(Hop::Final { .. })
        ));
        // Fails authentication: a flipped byte, or a layer for another node.
        let mut flipped = good.clone();
        flipped.data[30] ^= 1;
        assert!(matches!(
            peel(&n.key, &flipped, SISPOP_GCM_SALT),
            Err(HopError::Ciphertext)
        ));
        assert!(matches!(
            peel(&node(5).key, &good, SISPOP_GCM_SALT),
            Err(HopError::Ciphertext)
        ));
        // A layer under our salt does not open under a stranger's; one under the Oxen
        // lineage's salt opens at a Sispop node, and its answer opens with the client's key.
        let gcm = layer_for(
            &n,
            &encode_payload(b"{}", &obj(json!({"headers": {}}))),
            EncType::AesGcm,
        );
        assert!(matches!(
            peel(&n.key, &gcm, b"OTHER"),
            Err(HopError::Ciphertext)
        ));
        let (secret, public) = crypto::ephemeral(&mut rng());
        let shared = crypto::shared_secret(&secret, &n.pub_.x25519).expect("s");
        let oxen_key = crypto::layer_key(
            EncType::AesGcm,
            &shared,
            &public,
            &n.pub_.x25519,
            crypto::OXEN_GCM_SALT,
        );
        let oxen = Layer {
            data: crypto::encrypt(
                EncType::AesGcm,
                &oxen_key,
                &encode_payload(b"{}", &obj(json!({"headers": {}}))),
                &mut rng(),
            ),
            ephemeral_key: public,
            enc: EncType::AesGcm,
            hop_no: 1,
        };
        let Ok(Hop::Final { key, .. }) = peel(&n.key, &oxen, SISPOP_GCM_SALT) else {
            panic!("an Oxen-lineage aes-gcm layer opens");
        };
        let answer = key.wrap(200, &json!("ok"), FinalOptions::default(), &mut rng());
        assert_eq!(
            open_answer(
                &ReplyKey::new(EncType::AesGcm, oxen_key),
                answer.status,
                &answer.body
            ),
            Ok(Answer::Destination {
                status: 200,
                body: json!("ok")
            })
        );
        // Truncated.
        let mut short = good.clone();
        short.data.truncate(10);
        assert!(matches!(
            peel(&n.key, &short, SISPOP_GCM_SALT),
            Err(HopError::Ciphertext)
        ));
        // A low-order ephemeral key.
        let mut zero = good.clone();
        zero.ephemeral_key = [0u8; 32];
        assert!(matches!(
            peel(&n.key, &zero, SISPOP_GCM_SALT),
            Err(HopError::Ciphertext)
        ));
        // Too many hops.
        let mut far = good.clone();
        far.hop_no = MAX_HOPS + 1;
        let e = peel(&n.key, &far, SISPOP_GCM_SALT).expect_err("refused");
        assert_eq!(
            e.reply(&mut rng()),
            Reply::plain(400, "onion request max path length exceeded")
        );
        far.hop_no = MAX_HOPS;
        assert!(peel(&n.key, &far, SISPOP_GCM_SALT).is_ok());
        // Opens, but what is inside is not a request.
        let inner: [&[u8]; 8] = [
            b"garbage",
            b"\x05\x00\x00\x00ab",
            b"\x00\x00\x00\x00{\"destination\":\"00\"}",
            b"\x00\x00\x00\x00[]",
            b"\x00\x00\x00\x00{}",
            b"\x00\x00\x00\x00{\"host\":\"a.b\"}",
            b"\x00\x00\x00\x00{\"host\":\"a.b\",\"target\":\"/oxen/v4/lsrpc\",\"port\":70000}",
            b"\x00\x00\x00\x00{\"host\":\"a.b\",\"target\":\"/oxen/v4/lsrpc\",\"protocol\":5}",
        ];
        for plain in inner {
            let l = layer_for(&n, plain, EncType::XChaCha20);
            encrypted_error(
                peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
                "Invalid json",
            );
        }
        let d = hex::encode(node(6).pub_.ed25519);
        let e = hex::encode([7u8; 32]);
        let l = layer_for(
            &n,
            &encode_payload(
                b"",
                &obj(json!({"destination": d, "ephemeral_key": e, "enc_type": "rot13"})),
            ),
            EncType::XChaCha20,
        );
        encrypted_error(
            peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
            "Invalid json",
        );
        // HTTP destinations outside the allowed targets.
        for (protocol, target, host) in [
            ("ftp", "/oxen/v4/lsrpc", "a.b"),
            ("https", "/admin", "a.b"),
            ("https", "/oxen/v4/lsrpc?x=1", "a.b"),
            ("https", "/oxen/../admin/lsrpc", "a.b"),
            ("https", "/oxen/v4/lsrpc", "a.b/evil"),
            ("https", "/oxen/v4/lsrpc", ""),
        ] {
            let l = layer_for(
                &n,
                &encode_payload(
                    b"",
                    &obj(json!({"host": host, "target": target, "protocol": protocol})),
                ),
                EncType::AesGcm,
            );
            encrypted_error(
                peel(&n.key, &l, SISPOP_GCM_SALT).expect_err("refused"),
                "Invalid url",
            );
        }
    }

    #[test]
    fn bad_node_to_node_layers() {
        for bytes in [
            &b""[..],
            b"garbage",
            b"d4:data3:abce",
            b"d4:data3:abc13:ephemeral_key3:abce",
            b"d4:data3:abc8:enc_type5:rot1313:ephemeral_key32:01234567890123456789012345678901e",
            b"d4:data3:abc13:ephemeral_key32:012345678901234567890123456789016:hop_no3:abce",
            b"d4:data3:abc13:ephemeral_key32:01234567890123456789012345678901e trailing",
            b"d4:data3:abc4:data3:abc13:ephemeral_key32:01234567890123456789012345678901e",
            b"d4:data03:abc13:ephemeral_key32:01234567890123456789012345678901e",
            b"d4:data99:abc13:ephemeral_key32:01234567890123456789012345678901e",
        ] {
            assert!(
                matches!(decode_layer(bytes), Err(HopError::Parse(_))),
                "{bytes:?}"
            );
        }
        let ok = b"d4:data3:abc13:ephemeral_key32:012345678901234567890123456789016:hop_noi-3ee";
        let l = decode_layer(ok).expect("decodes");
        assert_eq!(
            (l.enc, l.hop_no),
            (EncType::AesGcm, 1),
            "defaults as upstream"
        );
        assert_eq!(l.data, b"abc");
        // Nesting is refused without being walked, however deep.
        let mut deep = b"d4:data3:abc1:x".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 1_000_000));
        assert!(matches!(decode_layer(&deep), Err(HopError::Parse(_))));
        // What we send decodes, at every hop number.
        for hop_no in [1, 15, 16, u32::MAX] {
            let l = Layer {
                data: vec![1, 2, 3],
                ephemeral_key: [5u8; 32],
                enc: EncType::XChaCha20,
                hop_no,
            };
            assert_eq!(decode_layer(&encode_layer(&l)).expect("decodes"), l);
        }
    }

    #[test]
    fn paths() {
        let nodes: Vec<Node> = (1..=6).map(|i| node(i).pub_).collect();
        let dest = nodes[2];
        for _ in 0..50 {
            let p = choose_path(&nodes, 3, Some(dest), &mut rng()).expect("path");
            assert_eq!(p.len(), 3);
            assert_eq!(p[2], dest);
            assert!(p[0] != p[1] && p[0] != dest && p[1] != dest, "distinct");
            let p = choose_path(&nodes, 3, None, &mut rng()).expect("path");
            assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
        }
        assert!(choose_path(&nodes[1..3], 3, Some(dest), &mut rng()).is_none());
        assert!(choose_path(&[dest, dest, dest], 2, Some(dest), &mut rng()).is_none());
        assert!(choose_path(&nodes, 0, None, &mut rng()).is_none());
    }
}
