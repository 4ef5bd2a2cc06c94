//! The client API of `/storage_rpc/v1` as this node answers it (reference
//! `storage-and-onion.md` §2): `{"method": M, "params": {...}}` in, an HTTP status and a body
//! out. Each method validates its parameters, checks the clock and the signature, runs against
//! the [`MessageStore`] and returns this node's result, signed with its Ed25519 key where
//! upstream signs. Swarm membership (421), the stake gate (503) and the fan-out to the other
//! members of the swarm belong to the daemon, which wraps these results in the `"swarm"` dict.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};

use crate::auth::{self, flags, Signed, Subaccount, TOKEN_LEN};
use crate::store::{ExpireMode, Message, MessageStore, NsFilter, StoreError, RETRIEVE_MAX_SIZE};
use crate::{is_valid_message_hash, message_hash, pubkey_hex, Namespace, UserPubkey};

/// Shortest TTL (ms).
pub const TTL_MINIMUM: u64 = 10_000;
/// Longest TTL of a public-inbox namespace (ms).
pub const TTL_MAXIMUM: u64 = 14 * 86_400_000;
/// Longest TTL elsewhere, and of any expiry update (ms).
pub const TTL_MAXIMUM_PRIVATE: u64 = 30 * 86_400_000;
/// Clock tolerance of a store (ms).
pub const STORE_TOLERANCE: u64 = 10_000;
mod deletes;
mod meta;
mod subaccounts;
pub use deletes::{refutes, MAX_HASHES};
pub use subaccounts::proven_revocation;

pub use meta::OXEND_ENDPOINTS;

/// Window of a signed request's timestamp (ms).
pub const SIGNATURE_TOLERANCE: u64 = 60_000;
/// Most subrequests in a batch or sequence.
pub const BATCH_REQUEST_MAX: usize = 20;
/// Largest message body in base64 characters.
pub const MAX_MESSAGE_BODY_B64: usize = 102_400;
/// Our storage server version, as `info` reports it.
pub const VERSION: [u16; 3] = [2, 6, 0];

/// What the node supplies.
pub struct Context<'a> {
    /// Unix time in ms.
    pub now_ms: u64,
    /// `[hardfork, snode_revision]`.
    pub hf: [u64; 2],
    /// The chain height (for `ifelse`).
    pub height: u64,
    /// This node's Ed25519 key (signs results).
    pub signer: &'a SigningKey,
    /// Answers `oxend_request` for an allowed endpoint and its params: the daemon's JSON
    /// result, or its error message.
    pub oxend: &'a dyn Fn(&str, &Value) -> Result<Value, String>,
    /// What the messages of one answer may still take (shared by the retrieves of a batch or
    /// sequence, which would otherwise hold 20 retrieves' worth).
    pub answer: &'a AnswerBudget,
}

/// Most bytes of messages (at upstream's cost per message) one answer holds, `batch` and
/// `sequence` included: one retrieve's ceiling. A retrieve that reaches it answers what fits
/// (at least one message, unless earlier retrieves of the same answer took it all) with
/// `"more": true`; upstream has no such bound, so a batch of 20 retrieves could build an answer
/// of some 150 MB. The node may give an answer less (see `AnswerBudget::new`).
pub const ANSWER_MAX_SIZE: u64 = RETRIEVE_MAX_SIZE;

/// The bytes of messages one answer may still take ([`ANSWER_MAX_SIZE`] at first).
#[derive(Debug)]
pub struct AnswerBudget(std::sync::atomic::AtomicU64);

impl Default for AnswerBudget {
    fn default() -> AnswerBudget {
        AnswerBudget(std::sync::atomic::AtomicU64::new(ANSWER_MAX_SIZE))
    }
}

impl AnswerBudget {
    /// A budget of `limit` bytes of messages (at most [`ANSWER_MAX_SIZE`]).
    pub fn new(limit: u64) -> AnswerBudget {
        AnswerBudget(std::sync::atomic::AtomicU64::new(
            limit.min(ANSWER_MAX_SIZE),
        ))
    }

    /// What is left.
    pub fn left(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn spend(&self, bytes: u64) {
        let _ = self.0.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |left| Some(left.saturating_sub(bytes)),
        );
    }
}

/// An [`Context::oxend`] for a store with no daemon behind it.
pub fn no_daemon(_: &str, _: &Value) -> Result<Value, String> {
    Err("no daemon behind this storage server".into())
}

/// A status and a body (JSON for success and 421, plain text otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }
    fn err(status: u16, text: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Value::String(text.into()),
        }
    }
    fn bad(text: impl std::fmt::Display) -> Reply {
        Reply::err(400, format!("invalid request: {text}"))
    }
}

type R<T> = Result<T, Reply>;

/// Whether anyone may store to `ns` (public inbox).
pub fn is_public(ns: Namespace) -> bool {
    ns % 10 == 0
}

/// Whether `ns` keeps one message per account (public outbox).
pub fn is_public_outbox(ns: Namespace) -> bool {
    ns < 0 && (-(i32::from(ns))) % 20 == 1
}

/// Whether `ns` may be retrieved without a signature.
pub fn is_no_auth_retrieve(ns: Namespace) -> bool {
    is_public_outbox(ns) || ns == -10
}

fn get<'v>(p: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    p.get(key)
}

fn pubkey(p: &Map<String, Value>) -> R<UserPubkey> {
    let v = match (get(p, "pubkey"), get(p, "pubKey")) {
        (Some(v), None) | (None, Some(v)) => v,
        (Some(_), Some(_)) => return Err(Reply::bad("only one of pubkey and pubKey is allowed")),
        (None, None) => return Err(Reply::bad("Required field 'pubkey' missing")),
    };
    let s = v
        .as_str()
        .ok_or_else(|| Reply::bad("pubkey must be a string"))?;
    UserPubkey::from_hex(s).map_err(|_| Reply::bad("Pubkey must be 66 hex digits (33 bytes) long"))
}

fn uint(p: &Map<String, Value>, key: &str) -> R<Option<u64>> {
    match get(p, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Reply::bad(format!("'{key}' must be a non-negative integer"))),
        // Legacy clients send store's timestamp and ttl as decimal strings.
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| Reply::bad(format!("'{key}' must be an integer"))),
        Some(_) => Err(Reply::bad(format!("'{key}' must be an integer"))),
    }
}

fn required(p: &Map<String, Value>, key: &str) -> R<u64> {
    uint(p, key)?.ok_or_else(|| Reply::bad(format!("Required field '{key}' missing")))
}

fn namespace(p: &Map<String, Value>) -> R<Namespace> {
    match get(p, "namespace") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i16::try_from(n).ok())
            .ok_or_else(|| Reply::bad("namespace must be between -32768 and 32767")),
        Some(_) => Err(Reply::bad("namespace must be an integer")),
    }
}

fn ns_filter(p: &Map<String, Value>) -> R<NsFilter> {
    match get(p, "namespace") {
        Some(Value::String(s)) if s == "all" => Ok(NsFilter::All),
        _ => namespace(p).map(NsFilter::One),
    }
}

fn ns_string(ns: NsFilter) -> String {
    match ns {
        NsFilter::All => "all".into(),
        NsFilter::One(0) => String::new(),
        NsFilter::One(n) => n.to_string(),
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

fn bytes_field<const N: usize>(p: &Map<String, Value>, key: &str) -> R<Option<[u8; N]>> {
    let Some(v) = get(p, key) else {
        return Ok(None);
    };
    let s = v
        .as_str()
        .ok_or_else(|| Reply::bad(format!("'{key}' must be a string")))?;
    let raw = if s.len() == 2 * N && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..N)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
    } else {
        b64(s)
    };
    raw.and_then(|r| <[u8; N]>::try_from(r).ok())
        .map(Some)
        .ok_or_else(|| Reply::bad(format!("'{key}' is not valid: expected {N} bytes")))
}

/// The authentication fields, if a signature is present.
fn signed(p: &Map<String, Value>) -> R<Option<Signed>> {
    let Some(signature) = bytes_field::<64>(p, "signature")? else {
        return Ok(None);
    };
    let token = bytes_field::<TOKEN_LEN>(p, "subaccount")?;
    let token_sig = bytes_field::<64>(p, "subaccount_sig")?;
    let subaccount = match (token, token_sig) {
        (Some(token), Some(signature)) => Some(Subaccount { token, signature }),
        (None, None) => None,
        _ => {
            return Err(Reply::bad(
                "subaccount and subaccount_sig must be given together",
            ))
        }
    };
    Ok(Some(Signed {
        signature,
        pubkey_ed25519: bytes_field::<32>(p, "pubkey_ed25519")?,
        subaccount,
    }))
}

fn never(_: &[u8; TOKEN_LEN]) -> bool {
    false
}

/// Whether a subaccount token is revoked for `acct` (the store's revocation list).
fn revoked<'a>(
    store: &'a MessageStore,
    acct: &'a UserPubkey,
) -> impl Fn(&[u8; TOKEN_LEN]) -> bool + 'a {
    move |t| store.is_revoked(acct, t)
}

/// Namespaces a revoked subaccount may still retrieve from (`-11`, `-111`, `-211`, …).
fn unrevocable(ns: Namespace) -> bool {
    ns < 0 && (-i32::from(ns)) % 100 == 11
}

/// Requires and verifies a signature over `msg`.
/// Requires and verifies a signature over `msg`; `what` names the method in error texts, as
/// upstream's do.
fn authorise(
    what: &str,
    acct: &UserPubkey,
    p: &Map<String, Value>,
    msg: &[u8],
    need: u8,
    revoked: &dyn Fn(&[u8; TOKEN_LEN]) -> bool,
) -> R<()> {
    let s = signed(p)?.ok_or_else(|| Reply::bad("Required field 'signature' missing"))?;
    auth::verify(acct, &s, msg, need, revoked).map_err(|e| auth_error(what, e))
}

/// As upstream, every failed verification is "<method> signature verification failed" (401);
/// only `pubkey_ed25519` on an account that may not use one is a 400.
fn auth_error(what: &str, e: auth::AuthError) -> Reply {
    match e {
        auth::AuthError::Ed25519NotAllowed => Reply::err(400, format!("{what}: {e}")),
        _ => Reply::err(401, format!("{what} signature verification failed")),
    }
}

fn in_window(ts: u64, now: u64, tolerance: u64) -> bool {
    ts.abs_diff(now) <= tolerance
}

fn check_time(what: &str, ts: u64, ctx: &Context<'_>) -> R<()> {
    if in_window(ts, ctx.now_ms, SIGNATURE_TOLERANCE) {
        Ok(())
    } else {
        Err(Reply::err(
            406,
            format!("{what} timestamp too far from current time"),
        ))
    }
}

fn hashes(p: &Map<String, Value>) -> R<Vec<String>> {
    let list: Vec<String> = match get(p, "messages") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| Reply::bad("messages must be strings"))?,
        _ => return Err(Reply::bad("Required field 'messages' missing")),
    };
    if list.is_empty() {
        return Err(Reply::bad("messages must not be empty"));
    }
    if list.len() > MAX_HASHES {
        return Err(Reply::bad(format!(
            "messages may name at most {MAX_HASHES} hashes"
        )));
    }
    if let Some(h) = list.iter().find(|h| !is_valid_message_hash(h)) {
        return Err(Reply::bad(format!("invalid message hash {h:?}")));
    }
    Ok(list)
}

fn sign(ctx: &Context<'_>, parts: &[&[u8]]) -> String {
    STANDARD.encode(ctx.signer.sign(&parts.concat()).to_bytes())
}

fn store_error(e: StoreError) -> Reply {
    match e {
        StoreError::Full(..) => Reply::err(500, e.to_string()),
        StoreError::TooLarge(_) => Reply::bad(e),
        StoreError::Db(_) | StoreError::Corrupt(_) => Reply::err(500, "request failed"),
    }
}

fn with_misc(mut v: Value, ctx: &Context<'_>) -> Value {
    if let Value::Object(o) = &mut v {
        o.insert("t".into(), json!(ctx.now_ms));
        o.insert("hf".into(), json!(ctx.hf));
    }
    v
}

/// The account a request is for, when it names one (for the swarm check before `handle`).
pub fn request_pubkey(params: &Value) -> Option<UserPubkey> {
    params.as_object().and_then(|p| pubkey(p).ok())
}

/// Handles a request body.
pub fn handle(store: &MessageStore, ctx: &Context<'_>, body: &[u8]) -> Reply {
    match serde_json::from_slice::<Value>(body) {
        Ok(req) => handle_value(store, ctx, &req),
        Err(_) => Reply::err(400, "invalid json"),
    }
}

/// [`handle`] for a body already parsed.
pub fn handle_value(store: &MessageStore, ctx: &Context<'_>, req: &Value) -> Reply {
    let Value::Object(req) = req else {
        return Reply::err(400, "invalid json");
    };
    let (Some(Value::String(method)), Some(params)) = (req.get("method"), req.get("params")) else {
        return Reply::err(400, "invalid json: no `method` field");
    };
    handle_method(store, ctx, method, params, true)
}

/// Handles one method call (`top` is false inside a batch or sequence).
pub fn handle_method(
    store: &MessageStore,
    ctx: &Context<'_>,
    method: &str,
    params: &Value,
    top: bool,
) -> Reply {
    let Value::Object(p) = params else {
        return Reply::bad("params must be an object");
    };
    let r = match method {
        "store" => store_msg(store, ctx, p),
        "retrieve" => retrieve(store, ctx, p),
        "delete" => deletes::delete(store, ctx, p),
        "delete_all" => deletes::delete_all(store, ctx, p),
        "delete_before" => deletes::delete_before(store, ctx, p),
        // `expire_msgs` is the name some clients and our issue tracker use; upstream's is
        // `expire` (the signed string starts with "expire" either way).
        "expire" | "expire_msgs" => deletes::expire(store, ctx, p),
        "expire_all" => deletes::expire_all(store, ctx, p),
        "get_expiries" => get_expiries(store, ctx, p).map(Reply::ok),
        "revoke_subaccount" => subaccounts::revoke(store, ctx, p, false),
        "oxend_request" => meta::oxend_request(ctx, p),
        "ifelse" if top => return meta::ifelse(store, ctx, p),
        "unrevoke_subaccount" => subaccounts::revoke(store, ctx, p, true),
        "info" => Ok(Reply::ok(
            json!({"version": VERSION, "timestamp": ctx.now_ms}),
        )),
        "batch" | "sequence" if top => return batch(store, ctx, p, method == "sequence"),
        "batch" | "sequence" | "ifelse" => Err(Reply::bad(
            "Invalid batch subrequest: subrequests may not contain meta-requests",
        )),
        other => Err(Reply::err(400, format!("no method {other}"))),
    };
    match r {
        Ok(mut reply) => {
            if method != "get_expiries" {
                reply.body = with_misc(reply.body, ctx);
            }
            reply
        }
        Err(e) => e,
    }
}

fn store_msg(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let acct = pubkey(p)?;
    let ns = namespace(p)?;
    let timestamp = required(p, "timestamp")?;
    let expiry = match (uint(p, "ttl")?, uint(p, "expiry")?) {
        (Some(ttl), None) => timestamp.saturating_add(ttl),
        (None, Some(e)) => e,
        _ => return Err(Reply::bad("exactly one of 'ttl' and 'expiry' is required")),
    };
    let data_b64 = get(p, "data")
        .and_then(Value::as_str)
        .ok_or_else(|| Reply::bad("Required field 'data' missing"))?;
    if data_b64.len() > MAX_MESSAGE_BODY_B64 {
        return Err(Reply::bad(
            "Message body exceeds maximum allowed length of 76800 bytes",
        ));
    }
    let data = b64(data_b64).ok_or_else(|| Reply::bad("data is not valid base64"))?;
    let ttl = expiry.saturating_sub(timestamp);
    let max = if is_public(ns) {
        TTL_MAXIMUM
    } else {
        TTL_MAXIMUM_PRIVATE
    };
    if expiry < timestamp || !(TTL_MINIMUM..=max).contains(&ttl) {
        return Err(Reply::err(403, "Provided expiry/TTL is not valid."));
    }
    if timestamp > ctx.now_ms.saturating_add(STORE_TOLERANCE)
        || expiry < ctx.now_ms.saturating_sub(STORE_TOLERANCE)
    {
        return Err(Reply::err(406, "Timestamp error: check your clock"));
    }
    if !is_public(ns) {
        if signed(p)?.is_none() {
            return Err(Reply::err(
                401,
                format!("store: signature required to store to namespace {ns}"),
            ));
        }
        let sig_ts = uint(p, "sig_timestamp")?.unwrap_or(timestamp);
        check_time("store signature", sig_ts, ctx)?;
        let need = if is_public_outbox(ns) {
            flags::WRITE | flags::DELETE
        } else {
            flags::WRITE
        };
        let msg = format!("store{}{sig_ts}", ns_string(NsFilter::One(ns)));
        authorise(
            "store",
            &acct,
            p,
            msg.as_bytes(),
            need,
            &revoked(store, &acct),
        )?;
    }
    let m = Message {
        pubkey: acct,
        namespace: ns,
        hash: message_hash(&acct, ns, &data),
        timestamp,
        expiry,
        data,
    };
    let (outcome, expiry) = store.store(&m, is_public_outbox(ns)).map_err(store_error)?;
    let mut entry = json!({
        "hash": m.hash,
        "signature": sign(ctx, &[m.hash.as_bytes()]),
        "expiry": expiry,
        "t": ctx.now_ms,
    });
    if outcome != crate::store::StoreOutcome::New {
        entry["already"] = json!(true);
    }
    Ok(Reply::ok(
        json!({"hash": m.hash, "swarm": {hex(ctx): entry}}),
    ))
}

fn hex(ctx: &Context<'_>) -> String {
    ctx.signer
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn retrieve(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Reply> {
    let acct = pubkey(p)?;
    let ns = namespace(p)?;
    let needs_sig = !is_no_auth_retrieve(ns)
        || ["signature", "timestamp", "pubkey_ed25519"]
            .iter()
            .any(|k| p.contains_key(*k));
    if needs_sig {
        let Some(ts) = uint(p, "timestamp")? else {
            return Err(Reply::err(401, "retrieve: request signature required"));
        };
        check_time("retrieve signature", ts, ctx)?;
        let msg = format!("retrieve{}{ts}", ns_string(NsFilter::One(ns)));
        // A revoked subaccount may still read the unrevocable namespaces.
        let revoked_here = revoked(store, &acct);
        let check: &dyn Fn(&[u8; TOKEN_LEN]) -> bool = if unrevocable(ns) {
            &never
        } else {
            &revoked_here
        };
        authorise("retrieve", &acct, p, msg.as_bytes(), flags::READ, check)?;
    }
    let last = match get(p, "last_hash").or_else(|| get(p, "lastHash")) {
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if is_valid_message_hash(s) => Some(s.as_str()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Reply::bad("invalid last_hash")),
    };
    let max_count = uint(p, "max_count")?.unwrap_or(0);
    let max_size = match get(p, "max_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| Reply::bad("max_size must be an integer"))?,
        ),
    };
    // Upstream: both unset means a fifth of the ceiling; -k means the ceiling / k.
    let budget = match (max_count, max_size.unwrap_or(0)) {
        (0, 0) => RETRIEVE_MAX_SIZE / 5,
        (_, 0) => RETRIEVE_MAX_SIZE,
        (_, k) if k < 0 => RETRIEVE_MAX_SIZE / k.unsigned_abs(),
        (_, k) => k.unsigned_abs().min(RETRIEVE_MAX_SIZE),
    };
    let left = ctx.answer.left();
    let (msgs, more) = if left == 0 {
        // The answer this is part of is full (earlier retrieves of its batch took it all):
        // nothing here, and `more` when there is something to ask for again.
        let (next, _) = store
            .retrieve(&acct, ns, last, 1, 0, ctx.now_ms)
            .map_err(store_error)?;
        (Vec::new(), !next.is_empty())
    } else {
        store
            .retrieve(
                &acct,
                ns,
                last,
                usize::try_from(max_count).unwrap_or(usize::MAX),
                budget.min(left),
                ctx.now_ms,
            )
            .map_err(store_error)?
    };
    ctx.answer
        .spend(msgs.iter().map(crate::store::retrieve_cost).sum());
    let messages: Vec<Value> = msgs
        .iter()
        .map(|m| {
            json!({
                "hash": m.hash,
                "timestamp": m.timestamp,
                "expiration": m.expiry,
                "data": STANDARD.encode(&m.data),
            })
        })
        .collect();
    Ok(Reply::ok(json!({"messages": messages, "more": more})))
}

fn swarm_entry(ctx: &Context<'_>, entry: Value) -> Reply {
    Reply::ok(json!({"swarm": {hex(ctx): entry}}))
}

fn get_expiries(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>) -> R<Value> {
    let acct = pubkey(p)?;
    let hs = hashes(p)?;
    let ts = required(p, "timestamp")?;
    check_time("get_expiries", ts, ctx)?;
    let msg = format!("get_expiries{ts}{}", hs.concat());
    authorise(
        "get_expiries",
        &acct,
        p,
        msg.as_bytes(),
        flags::READ,
        &revoked(store, &acct),
    )?;
    let e = store.get_expiries(&acct, &hs).map_err(store_error)?;
    Ok(json!({"expiries": e}))
}

/// Methods a request may name (the daemon answers `get_swarm` itself).
pub const METHODS: [&str; 19] = [
    "store",
    "retrieve",
    "delete",
    "delete_all",
    "delete_before",
    "expire",
    "expire_msgs",
    "expire_all",
    "get_expiries",
    "info",
    "get_swarm",
    "get_snodes_for_pubkey",
    "revoke_subaccount",
    "unrevoke_subaccount",
    "oxend_request",
    "batch",
    "sequence",
    "ifelse",
    "monitor",
];

/// The methods every member of the swarm applies itself: the entry node forwards them as the
/// client signed them (upstream's recursive requests, §2.5).
pub const RECURSIVE_METHODS: [&str; 9] = [
    "store",
    "delete",
    "delete_all",
    "delete_before",
    "expire",
    "expire_msgs",
    "expire_all",
    "revoke_subaccount",
    "unrevoke_subaccount",
];

/// The subrequests of a `batch` or `sequence`, all checked before any runs (as upstream
/// parses the whole request first): 1 to [`BATCH_REQUEST_MAX`] of `{"method", "params"}`,
/// none of them a meta-request.
pub fn subrequests(params: &Value) -> Result<&Vec<Value>, Reply> {
    let Some(Value::Array(reqs)) = params.get("requests") else {
        return Err(Reply::bad("Required field 'requests' missing"));
    };
    if reqs.is_empty() || reqs.len() > BATCH_REQUEST_MAX {
        return Err(Reply::bad(format!(
            "batch and sequence take 1 to {BATCH_REQUEST_MAX} requests"
        )));
    }
    for r in reqs {
        let (Some(Value::String(m)), Some(_)) = (r.get("method"), r.get("params")) else {
            return Err(Reply::bad("each request needs 'method' and 'params'"));
        };
        if matches!(m.as_str(), "batch" | "sequence" | "ifelse") {
            return Err(Reply::bad(
                "Invalid batch subrequest: subrequests may not contain meta-requests",
            ));
        }
    }
    Ok(reqs)
}

fn batch(store: &MessageStore, ctx: &Context<'_>, p: &Map<String, Value>, sequence: bool) -> Reply {
    let reqs = match subrequests(&Value::Object(p.clone())) {
        Ok(r) => r.clone(),
        Err(e) => return e,
    };
    let mut results = Vec::new();
    for r in &reqs {
        let (m, params) = (r["method"].as_str().unwrap_or_default(), &r["params"]);
        let reply = handle_method(store, ctx, m, params, false);
        let failed = !(200..300).contains(&reply.status);
        results.push(json!({"code": reply.status, "body": reply.body}));
        if sequence && failed {
            break;
        }
    }
    Reply::ok(json!({"results": results}))
}
