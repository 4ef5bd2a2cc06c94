//! `/storage_rpc/v1` handlers (reference `storage-and-onion.md` §2): signed and public stores,
//! retrieval with and without auth, deletes and expiry changes with the node's signatures,
//! batch and sequence, and the status codes of bad requests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde_json::{json, Value};
use sispop_storage::rpc::{handle, Context};
use sispop_storage::store::{Limits, MessageStore};
use sispop_storage::{message_hash, pubkey_hex, UserPubkey};

const NOW: u64 = 1_800_000_000_000;

struct T {
    _dir: tempfile::TempDir,
    store: MessageStore,
    node: SigningKey,
    user: SigningKey,
    acct: UserPubkey,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MessageStore::open(&dir.path().join("s"), Limits::default()).expect("open");
        let user = SigningKey::from_bytes(&[3; 32]);
        let acct = UserPubkey {
            prefix: 5,
            key: user.verifying_key().to_montgomery().to_bytes(),
        };
        T {
            _dir: dir,
            store,
            node: SigningKey::from_bytes(&[9; 32]),
            user,
            acct,
        }
    }

    fn call(&self, method: &str, params: Value) -> (u16, Value) {
        let oxend = |endpoint: &str, params: &Value| match endpoint {
            "get_service_nodes" => Ok(json!({"service_node_states": [], "asked": params})),
            _ => Err("no such name".to_owned()),
        };
        let ctx = Context {
            now_ms: NOW,
            hf: [19, 0],
            height: 100,
            signer: &self.node,
            oxend: &oxend,
            answer: &Default::default(),
        };
        let body = json!({"method": method, "params": params}).to_string();
        let r = handle(&self.store, &ctx, body.as_bytes());
        (r.status, r.body)
    }

    /// Params with the account, its Ed25519 key and a signature over `msg`.
    fn signed(&self, msg: &str, p: Value) -> Value {
        self.signed_bytes(msg.as_bytes(), p)
    }

    fn signed_bytes(&self, msg: &[u8], mut p: Value) -> Value {
        p["pubkey"] = json!(pubkey_hex(&self.acct));
        p["pubkey_ed25519"] = json!(hex::encode(self.user.verifying_key().to_bytes()));
        p["signature"] = json!(STANDARD.encode(self.user.sign(msg).to_bytes()));
        p
    }

    /// A subaccount token for `sub` with `flags`, signed by the account.
    fn token(&self, sub: &SigningKey, flags: u8) -> Vec<u8> {
        let mut t = vec![self.acct.prefix, flags, 0, 0];
        t.extend_from_slice(&sub.verifying_key().to_bytes());
        t
    }

    /// Params signed over `msg` by the subaccount `sub` acting with `token`.
    fn sub_signed(&self, sub: &SigningKey, token: &[u8], msg: &str, p: Value) -> Value {
        self.sub_signed_bytes(sub, token, msg.as_bytes(), p)
    }

    fn sub_signed_bytes(&self, sub: &SigningKey, token: &[u8], msg: &[u8], mut p: Value) -> Value {
        p["pubkey"] = json!(pubkey_hex(&self.acct));
        p["pubkey_ed25519"] = json!(hex::encode(self.user.verifying_key().to_bytes()));
        p["subaccount"] = json!(STANDARD.encode(token));
        p["subaccount_sig"] = json!(STANDARD.encode(self.user.sign(token).to_bytes()));
        p["signature"] = json!(STANDARD.encode(sub.sign(msg).to_bytes()));
        p
    }

    fn node_hex(&self) -> String {
        hex::encode(self.node.verifying_key().to_bytes())
    }

    fn node_signed(&self, entry: &Value, msg: &[u8]) -> bool {
        let sig = STANDARD
            .decode(entry["signature"].as_str().expect("signature"))
            .expect("base64");
        let sig = Signature::from_slice(&sig).expect("64 bytes");
        self.node.verifying_key().verify(msg, &sig).is_ok()
    }
}

#[test]
fn store_retrieve_and_node_signatures() {
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    // Public inbox (namespace 0): no signature needed.
    let (code, body) = t.call(
        "store",
        json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "data": STANDARD.encode(b"hello")}),
    );
    assert_eq!(code, 200, "{body}");
    let hash = message_hash(&t.acct, 0, b"hello");
    assert_eq!(body["hash"], hash);
    let entry = &body["swarm"][t.node_hex()];
    assert_eq!(entry["expiry"], NOW + 60_000);
    assert!(t.node_signed(entry, hash.as_bytes()), "node signs the hash");
    assert_eq!(body["t"], NOW);
    assert_eq!(body["hf"], json!([19, 0]));
    // Again: already held.
    let (_, again) = t.call(
        "store",
        json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "data": STANDARD.encode(b"hello")}),
    );
    assert_eq!(again["swarm"][t.node_hex()]["already"], true);
    // A private namespace needs the owner's signature.
    let p = json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "namespace": 3,
                   "data": STANDARD.encode(b"note")});
    let (code, body) = t.call("store", p.clone());
    assert_eq!(code, 401, "{body}");
    assert!(body.as_str().expect("text").contains("signature required"));
    let (code, body) = t.call("store", t.signed(&format!("store3{NOW}"), p.clone()));
    assert_eq!(code, 200, "{body}");
    let (code, _) = t.call("store", t.signed(&format!("store4{NOW}"), p));
    assert_eq!(code, 401, "signed for another namespace");

    // Retrieve namespace 0: signed.
    let (code, body) = t.call("retrieve", json!({"pubkey": pk}));
    assert_eq!(
        (code, body),
        (401, json!("retrieve: request signature required"))
    );
    let (code, body) = t.call(
        "retrieve",
        t.signed(&format!("retrieve{NOW}"), json!({"timestamp": NOW})),
    );
    assert_eq!(code, 200, "{body}");
    let msgs = body["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["hash"], hash);
    assert_eq!(msgs[0]["data"], STANDARD.encode(b"hello"));
    assert_eq!(msgs[0]["expiration"], NOW + 60_000);
    assert_eq!(body["more"], false);
    // An old signature timestamp.
    let old = NOW - 61_000;
    let (code, _) = t.call(
        "retrieve",
        t.signed(&format!("retrieve{old}"), json!({"timestamp": old})),
    );
    assert_eq!(code, 406);
    // Namespace -10 is readable without auth.
    let (code, body) = t.call("retrieve", json!({"pubkey": pk, "namespace": -10}));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn bad_stores_get_upstream_codes() {
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    let data = STANDARD.encode(b"x");
    let cases = [
        (
            json!({"pubkey": pk, "timestamp": NOW, "ttl": 5_000, "data": data}),
            403,
        ),
        (
            json!({"pubkey": pk, "timestamp": NOW, "ttl": 15 * 86_400_000u64, "data": data}),
            403,
        ),
        (
            json!({"pubkey": pk, "timestamp": NOW + 20_000, "ttl": 60_000, "data": data}),
            406,
        ),
        (json!({"pubkey": pk, "timestamp": NOW, "data": data}), 400),
        (
            json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "expiry": NOW + 1, "data": data}),
            400,
        ),
        (
            json!({"pubkey": "05ab", "timestamp": NOW, "ttl": 60_000, "data": data}),
            400,
        ),
        (
            json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "data": "***"}),
            400,
        ),
        (
            json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "namespace": 40_000, "data": data}),
            400,
        ),
    ];
    for (p, want) in cases {
        let (code, body) = t.call("store", p.clone());
        assert_eq!(code, want, "{p} -> {body}");
    }
    assert_eq!(
        t.store.usage(&t.acct).expect("usage"),
        (0, 0),
        "nothing stored"
    );
    let ctx = Context {
        now_ms: NOW,
        hf: [19, 0],
        height: 100,
        signer: &t.node,
        oxend: &sispop_storage::rpc::no_daemon,
        answer: &Default::default(),
    };
    for garbage in [
        &b"not json"[..],
        b"[]",
        b"{\"method\":\"store\"}",
        b"{\"params\":{}}",
    ] {
        assert_eq!(handle(&t.store, &ctx, garbage).status, 400);
    }
    let (code, body) = t.call("frobnicate", json!({}));
    assert_eq!((code, body), (400, json!("no method frobnicate")));
    let (code, body) = t.call("info", json!({}));
    assert_eq!(code, 200);
    assert_eq!(body["timestamp"], NOW);
}

#[test]
fn deletes_and_expiries_are_signed_by_owner_and_node() {
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    let mut hs = Vec::new();
    for (i, ns) in [0i16, 0, 3].iter().enumerate() {
        let body = format!("m{i}");
        let p = json!({"pubkey": pk, "timestamp": NOW - i as u64, "ttl": 3_600_000,
                       "namespace": ns, "data": STANDARD.encode(&body)});
        let p = if *ns == 0 {
            p
        } else {
            t.signed(&format!("store{ns}{}", NOW - i as u64), p)
        };
        let (code, b) = t.call("store", p);
        assert_eq!(code, 200, "{b}");
        hs.push(message_hash(&t.acct, *ns, body.as_bytes()));
    }
    // get_expiries.
    let msg = format!("get_expiries{NOW}{}{}", hs[0], hs[1]);
    let (code, body) = t.call(
        "get_expiries",
        t.signed(&msg, json!({"timestamp": NOW, "messages": [hs[0], hs[1]]})),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["expiries"][&hs[0]], NOW + 3_600_000);
    assert!(body.get("t").is_none(), "get_expiries has no t/hf");
    // expire (shorten) one.
    let e = NOW + 60_000;
    let (code, body) = t.call(
        "expire",
        t.signed(
            &format!("expireshorten{e}{}", hs[0]),
            json!({"messages": [hs[0]], "expiry": e, "shorten": true}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let entry = &body["swarm"][t.node_hex()];
    assert_eq!(entry["updated"], json!([hs[0]]));
    assert!(t.node_signed(entry, format!("{pk}{e}{}{}", hs[0], hs[0]).as_bytes()));
    // The same under the name `expire_msgs`.
    let e2 = NOW + 45_000;
    let (code, body) = t.call(
        "expire_msgs",
        t.signed(
            &format!("expireshorten{e2}{}", hs[0]),
            json!({"messages": [hs[0]], "expiry": e2, "shorten": true}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["swarm"][t.node_hex()]["updated"], json!([hs[0]]));
    // A missing signature is a parse error, a wrong one names the method.
    let (code, body) = t.call("delete", json!({"pubkey": pk, "messages": [hs[1]]}));
    assert_eq!(
        (code, body),
        (
            400,
            json!("invalid request: Required field 'signature' missing")
        )
    );
    // delete one by hash: owner-signed, node-signed.
    let (code, body) = t.call(
        "delete",
        t.signed(&format!("delete{}", hs[1]), json!({"messages": [hs[1]]})),
    );
    assert_eq!(code, 200, "{body}");
    let entry = &body["swarm"][t.node_hex()];
    assert_eq!(entry["deleted"], json!([hs[1]]));
    assert!(t.node_signed(entry, format!("{pk}{}{}", hs[1], hs[1]).as_bytes()));
    // Nothing left to delete with required: 404.
    let (code, _) = t.call(
        "delete",
        t.signed(
            &format!("delete{}", hs[1]),
            json!({"messages": [hs[1]], "required": true}),
        ),
    );
    assert_eq!(code, 404);
    // A forged delete changes nothing.
    let (code, body) = t.call(
        "delete",
        t.signed("delete-something-else", json!({"messages": [hs[0]]})),
    );
    assert_eq!(
        (code, body),
        (401, json!("delete_msgs signature verification failed"))
    );
    // expire_all then delete_all across namespaces.
    let e = NOW + 30_000;
    let (code, body) = t.call(
        "expire_all",
        t.signed(
            &format!("expire_allall{e}"),
            json!({"expiry": e, "namespace": "all"}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = t.call(
        "delete_all",
        t.signed(
            &format!("delete_allall{NOW}"),
            json!({"timestamp": NOW, "namespace": "all"}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let deleted = &body["swarm"][t.node_hex()]["deleted"];
    assert_eq!(deleted["0"], json!([hs[0]]));
    assert_eq!(deleted["3"], json!([hs[2]]));
    assert_eq!(t.store.usage(&t.acct).expect("usage"), (0, 0));
}

#[test]
fn batch_and_sequence() {
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    let ok = json!({"method": "info", "params": {}});
    let bad = json!({"method": "store", "params": {"pubkey": pk}});
    let (code, body) = t.call("batch", json!({"requests": [bad, ok]}));
    assert_eq!(code, 200);
    let codes: Vec<u64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["code"].as_u64().expect("code"))
        .collect();
    assert_eq!(codes, [400, 200]);
    let (_, body) = t.call("sequence", json!({"requests": [bad, ok]}));
    assert_eq!(
        body["results"].as_array().map(Vec::len),
        Some(1),
        "stops at the failure"
    );
    // Every subrequest is checked before any runs: a nested meta-request, or an entry without
    // method or params, refuses the whole batch, and the store before it did not happen.
    let nested = json!({"method": "batch", "params": {"requests": [ok]}});
    assert_eq!(t.call("batch", json!({"requests": [nested]})).0, 400);
    let good_store = json!({"method": "store", "params": {"pubkey": pk, "timestamp": NOW,
        "ttl": 60_000, "data": STANDARD.encode(b"early")}});
    let (code, _) = t.call(
        "sequence",
        json!({"requests": [good_store, {"method": "info"}]}),
    );
    assert_eq!(code, 400);
    assert_eq!(t.store.usage(&t.acct).expect("usage").0, 0, "nothing ran");
    let many: Vec<Value> = (0..21).map(|_| ok.clone()).collect();
    assert_eq!(t.call("batch", json!({"requests": many})).0, 400);
    assert_eq!(t.call("batch", json!({"requests": []})).0, 400);
}

#[test]
fn revoked_subaccounts_lose_access_until_unrevoked() {
    let t = T::new();
    let sub = SigningKey::from_bytes(&[4; 32]);
    let token = t.token(&sub, 0b0001); // read
    let read = |ns: &str| {
        let p = if ns.is_empty() {
            json!({})
        } else {
            json!({"namespace": ns.parse::<i32>().expect("ns")})
        };
        t.call(
            "retrieve",
            t.sub_signed(
                &sub,
                &token,
                &format!("retrieve{ns}{NOW}"),
                json!({"timestamp": NOW, "namespace": p["namespace"].clone()}),
            ),
        )
        .0
    };
    assert_eq!(read(""), 200);
    let revoke_msg = |what: &str, toks: &[&[u8]]| {
        let mut m = format!("{what}{NOW}").into_bytes();
        toks.iter().for_each(|x| m.extend_from_slice(x));
        m
    };
    let revoke = json!({"revoke": [STANDARD.encode(&token)], "timestamp": NOW});
    // As upstream, revocations hang off an account that holds messages: with none, nothing
    // is kept.
    let (code, _) = t.call(
        "revoke_subaccount",
        t.signed_bytes(&revoke_msg("revoke_subaccount", &[&token]), revoke.clone()),
    );
    assert_eq!(code, 200);
    assert!(!t
        .store
        .is_revoked(&t.acct, token.as_slice().try_into().expect("36")));
    let pk = pubkey_hex(&t.acct);
    let (code, _) = t.call(
        "store",
        json!({"pubkey": pk, "timestamp": NOW, "ttl": 60_000, "data": STANDARD.encode(b"m")}),
    );
    assert_eq!(code, 200);
    // A subaccount cannot revoke, even signing the right string: only the account's key does.
    let (code, body) = t.call(
        "revoke_subaccount",
        t.sub_signed_bytes(
            &sub,
            &token,
            &revoke_msg("revoke_subaccount", &[&token]),
            revoke.clone(),
        ),
    );
    assert_eq!(
        (code, body),
        (
            401,
            json!("revoke_subaccount signature verification failed")
        )
    );
    let (code, body) = t.call(
        "revoke_subaccount",
        t.signed_bytes(
            &revoke_msg("revoke_subaccount", &[&token]),
            json!({"revoke": [STANDARD.encode(&token)], "timestamp": NOW}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let mine = &body["swarm"][t.node_hex()];
    let mut signed = pubkey_hex(&t.acct).into_bytes();
    signed.extend_from_slice(NOW.to_string().as_bytes());
    signed.extend_from_slice(&token);
    assert!(
        t.node_signed(mine, &signed),
        "node signs pubkey ‖ timestamp ‖ tokens"
    );
    assert_eq!(read(""), 401, "revoked");
    assert_eq!(read("-11"), 200, "still reads an unrevocable namespace");
    // Unrevoke (hex form of the token): counts what it lifted.
    let (code, body) = t.call(
        "unrevoke_subaccount",
        t.signed_bytes(
            &revoke_msg("unrevoke_subaccount", &[&token]),
            json!({"unrevoke": hex::encode(&token), "timestamp": NOW}),
        ),
    );
    assert_eq!(
        (code, &body["swarm"][t.node_hex()]["count"]),
        (200, &json!(1))
    );
    assert_eq!(read(""), 200);
    let (_, body) = t.call(
        "unrevoke_subaccount",
        t.signed_bytes(
            &revoke_msg("unrevoke_subaccount", &[&token]),
            json!({"unrevoke": hex::encode(&token), "timestamp": NOW}),
        ),
    );
    assert_eq!(body["swarm"][t.node_hex()]["count"], 0);
    // Bad input: too many at once, a malformed token, a stale timestamp, a bad signature.
    let many: Vec<Vec<u8>> = (0..51u8)
        .map(|i| t.token(&SigningKey::from_bytes(&[i; 32]), 1))
        .collect();
    let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    let list: Vec<String> = many.iter().map(|x| STANDARD.encode(x)).collect();
    let (code, body) = t.call(
        "revoke_subaccount",
        t.signed_bytes(
            &revoke_msg("revoke_subaccount", &refs),
            json!({"revoke": list, "timestamp": NOW}),
        ),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.as_str().expect("text").contains("more than 50"));
    assert_eq!(
        t.call(
            "revoke_subaccount",
            t.signed("x", json!({"revoke": "abc", "timestamp": NOW}))
        )
        .0,
        400
    );
    let (code, _) = t.call(
        "revoke_subaccount",
        t.signed_bytes(
            &revoke_msg("revoke_subaccount", &[&token]),
            json!({"revoke": [STANDARD.encode(&token)], "timestamp": NOW - 120_000}),
        ),
    );
    assert_eq!(code, 406);
    let (code, body) = t.call(
        "revoke_subaccount",
        t.signed(
            "wrong",
            json!({"revoke": [STANDARD.encode(&token)], "timestamp": NOW}),
        ),
    );
    assert_eq!(
        (code, body),
        (
            401,
            json!("revoke_subaccount signature verification failed")
        )
    );
    // At most 50 kept per account: revoking 50, then 11 (10 of them again), keeps 50.
    for chunk in many[..50].chunks(25).chain(std::iter::once(&many[40..51])) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let list: Vec<String> = chunk.iter().map(|x| STANDARD.encode(x)).collect();
        let (code, _) = t.call(
            "revoke_subaccount",
            t.signed_bytes(
                &revoke_msg("revoke_subaccount", &refs),
                json!({"revoke": list, "timestamp": NOW}),
            ),
        );
        assert_eq!(code, 200);
    }
    assert_eq!(t.store.revocations(&t.acct).expect("db").len(), 50);
    // At equal times, the tokens just revoked stay; the lowest of the others go.
    for x in &many[40..51] {
        assert!(t
            .store
            .is_revoked(&t.acct, x.as_slice().try_into().expect("36")));
    }
}

#[test]
fn ifelse_runs_the_branch_its_conditions_pick() {
    let t = T::new();
    let info = json!({"method": "info", "params": {}});
    let failing = json!({"method": "store", "params": {}});
    // Context: hf [19, 0], height 100, version 2.6.0.
    for (cond, expect) in [
        (json!({"height_at_least": 100}), true),
        (json!({"height_before": 100}), false),
        (json!({"hf_at_least": [19]}), true),
        (json!({"hf_at_least": 19, "height_before": null}), true),
        (json!({"hf_at_least": [19, 1]}), false),
        (json!({"hf_before": [19, 1], "height_at_least": 5}), true),
        (json!({"v_at_least": [2, 6]}), true),
        (json!({"v_before": [2, 6, 0]}), false),
    ] {
        let (code, body) = t.call("ifelse", json!({"if": cond, "then": info, "else": failing}));
        assert_eq!(code, 200);
        assert_eq!(body["condition"], expect, "{cond}");
        assert_eq!(body["hf"], json!([19, 0]));
        assert_eq!(body["v"], json!([2, 6, 0]));
        assert_eq!(body["height"], 100);
        assert_eq!(
            body["result"]["code"],
            if expect { 200 } else { 400 },
            "{body}"
        );
    }
    // No branch for the outcome: no result. Branches may nest meta-requests.
    let (_, body) = t.call("ifelse", json!({"if": {"height_before": 1}, "then": info}));
    assert!(body.get("result").is_none(), "{body}");
    let inner = json!({"method": "ifelse", "params": {"if": {"height_at_least": 1}, "then": info}});
    let (_, body) = t.call(
        "ifelse",
        json!({"if": {"height_at_least": 1}, "then": inner}),
    );
    assert_eq!(body["result"]["body"]["result"]["code"], 200);
    // Bad requests.
    for bad in [
        json!({"then": info}),
        json!({"if": {}, "then": info}),
        json!({"if": {"height_at_least": 1}}),
        json!({"if": {"hf_at_least": "19"}, "then": info}),
        json!({"if": {"height_at_least": 1}, "then": {"method": "info"}}),
    ] {
        assert_eq!(t.call("ifelse", bad.clone()).0, 400, "{bad}");
    }
    // An unknown method in either branch is refused before anything runs.
    let (code, body) = t.call(
        "ifelse",
        json!({"if": {"height_at_least": 1}, "then": info,
               "else": {"method": "frobnicate", "params": {}}}),
    );
    assert_eq!(
        (code, body),
        (
            400,
            json!("invalid request: Invalid ifelse request method \"else\"")
        )
    );
    // Not inside a batch: the whole batch is refused.
    let nested =
        json!({"method": "ifelse", "params": {"if": {"height_at_least": 1}, "then": info}});
    assert_eq!(t.call("batch", json!({"requests": [info, nested]})).0, 400);
}

#[test]
fn oxend_request_passes_allowed_endpoints_to_the_daemon() {
    let t = T::new();
    let (code, body) = t.call(
        "oxend_request",
        json!({"endpoint": "get_service_nodes", "params": {"active_only": true}}),
    );
    assert_eq!(code, 200);
    assert_eq!(body["result"]["asked"], json!({"active_only": true}));
    assert_eq!(body["t"], NOW);
    let (code, body) = t.call("oxend_request", json!({"endpoint": "ons_resolve"}));
    assert_eq!((code, body), (400, json!("no such name")));
    let (code, body) = t.call("oxend_request", json!({"endpoint": "get_info"}));
    assert_eq!(
        (code, body),
        (
            400,
            json!("invalid request: Invalid oxend endpoint 'get_info'")
        )
    );
}

/// A `batch` of 20 retrieves of an account's largest pages builds one answer of at most
/// `ANSWER_MAX_SIZE` (and a message over, since the first retrieve returns at least one; those
/// that find the answer full return none), not 20 retrieves' worth; each says there is more.
#[test]
fn a_batch_of_retrieves_is_one_answers_worth() {
    use sispop_storage::rpc::ANSWER_MAX_SIZE;
    use sispop_storage::store::{Message, MAX_MESSAGE_BODY};
    let t = T::new();
    let big: Vec<Message> = (0..300u32)
        .map(|i| {
            let mut data = vec![0u8; MAX_MESSAGE_BODY];
            data[..4].copy_from_slice(&i.to_le_bytes());
            Message {
                pubkey: t.acct,
                namespace: 0,
                hash: message_hash(&t.acct, 0, &data),
                timestamp: NOW,
                expiry: NOW + 3_600_000,
                data,
            }
        })
        .collect();
    assert_eq!(t.store.bulk_store(&big).expect("store"), 300);
    let one = t.signed(
        &format!("retrieve{NOW}"),
        json!({"timestamp": NOW, "max_size": -1}),
    );
    let requests: Vec<Value> = (0..20)
        .map(|_| json!({"method": "retrieve", "params": one}))
        .collect();
    let (code, body) = t.call("batch", json!({"requests": requests}));
    assert_eq!(code, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 20);
    let bytes: usize = results
        .iter()
        .flat_map(|r| r["body"]["messages"].as_array().expect("messages"))
        .map(|m| m["data"].as_str().expect("data").len())
        .sum();
    let one_message = MAX_MESSAGE_BODY.div_ceil(3) * 4;
    assert!(
        bytes as u64 <= ANSWER_MAX_SIZE + one_message as u64,
        "{bytes} bytes of messages in one answer"
    );
    assert!(
        bytes > 5_000_000,
        "the first retrieves got their pages: {bytes}"
    );
    assert!(results.iter().all(|r| r["body"]["more"] == true));
}

/// What ended a message the node had acknowledged is kept, and is a refutation only for the
/// messages it covered, signed by the account, once the message ended by `now`.
#[test]
fn the_accounts_requests_that_ended_messages_refute_tests_of_them() {
    use sispop_storage::rpc::refutes;
    use sispop_storage::storage_test::Ack;
    use sispop_storage::store::Message;
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    let member = SigningKey::from_bytes(&[4; 32]);
    // Three messages in namespace 0 and one in 3, acknowledged by a member at NOW - 1000.
    let mut msgs = Vec::new();
    for (i, ns) in [0i16, 0, 0, 3].iter().enumerate() {
        let body = format!("m{i}");
        let ts = NOW - 10_000 + i as u64;
        let p = json!({"pubkey": pk, "timestamp": ts, "ttl": 3_600_000,
                       "namespace": ns, "data": STANDARD.encode(&body)});
        let p = if *ns == 0 {
            p
        } else {
            t.signed(&format!("store{ns}{ts}"), p)
        };
        assert_eq!(t.call("store", p).0, 200);
        msgs.push(Message {
            pubkey: t.acct,
            namespace: *ns,
            hash: message_hash(&t.acct, *ns, body.as_bytes()),
            timestamp: ts,
            expiry: ts + 3_600_000,
            data: body.into_bytes(),
        });
    }
    let ack = |m: &Message| Ack::sign(&member, &m.into(), NOW - 1_000, 10);
    let kept = |m: &Message| t.store.refutations(&t.acct, &m.hash, NOW).expect("kept");
    let refuted = |m: &Message, now: u64| {
        kept(m)
            .iter()
            .any(|(method, params)| refutes(method, params, &ack(m), now))
    };
    assert!(msgs.iter().all(|m| kept(m).is_empty()), "nothing ended yet");
    // `delete` names m0: it refutes m0 only.
    let h0 = msgs[0].hash.clone();
    let (code, _) = t.call(
        "delete",
        t.signed(&format!("delete{h0}"), json!({"messages": [h0]})),
    );
    assert_eq!(code, 200);
    assert!(refuted(&msgs[0], NOW));
    assert!(!refuted(&msgs[1], NOW));
    // An expiry shortened: as the client can only ask for one at or after now, it refutes
    // once that time has come (or within the signature tolerance of it: clocks differ).
    let e = NOW + 120_000;
    let h1 = msgs[1].hash.clone();
    let (code, body) = t.call(
        "expire",
        t.signed(
            &format!("expireshorten{e}{h1}"),
            json!({"messages": [h1], "expiry": e, "shorten": true}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert!(!refuted(&msgs[1], NOW), "not expired yet");
    assert!(refuted(&msgs[1], e - 60_000));
    // `delete_all` of namespace 0: m2 (namespace 0), not m3 (namespace 3); and not a message
    // acknowledged after the request could have been made.
    let (code, body) = t.call(
        "delete_all",
        t.signed(
            &format!("delete_all{NOW}"),
            json!({"timestamp": NOW, "namespace": 0}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert!(refuted(&msgs[2], NOW));
    assert!(!refuted(&msgs[3], NOW));
    let later = Ack::sign(&member, &(&msgs[2]).into(), NOW + 120_000, 10);
    assert!(!kept(&msgs[2])
        .iter()
        .any(|(m, p)| refutes(m, p, &later, NOW + 120_000)));
    // A kept request altered, or signed by someone else: nothing.
    let (method, mut params) = kept(&msgs[0]).remove(0);
    params["messages"] = json!([msgs[3].hash]);
    assert!(!refutes(&method, &params, &ack(&msgs[3]), NOW));
    let stranger = SigningKey::from_bytes(&[8; 32]);
    let mut forged = t.signed(
        &format!("delete{}", msgs[3].hash),
        json!({"messages": [msgs[3].hash]}),
    );
    forged["signature"] = json!(STANDARD.encode(
        stranger
            .sign(format!("delete{}", msgs[3].hash).as_bytes())
            .to_bytes()
    ));
    assert!(!refutes("delete", &forged, &ack(&msgs[3]), NOW));
    // Extending ends nothing.
    let extend = t.signed(
        &format!("expireextend{e}{}", msgs[3].hash),
        json!({"messages": [msgs[3].hash], "expiry": e, "extend": true}),
    );
    assert!(!refutes("expire", &extend, &ack(&msgs[3]), u64::MAX));
}

/// What an honest worker keeps is enough to refute, whatever form the account's request took:
/// the legacy `pubKey`, an expiry as a list of one, junk fields of any size (not kept); and a
/// later request naming the same message (an extension) does not hide the one that ended it.
#[test]
fn kept_requests_refute_in_every_form_the_handler_took() {
    use sispop_storage::rpc::refutes;
    use sispop_storage::storage_test::Ack;
    use sispop_storage::store::Message;
    let t = T::new();
    let pk = pubkey_hex(&t.acct);
    let member = SigningKey::from_bytes(&[4; 32]);
    let mut msgs = Vec::new();
    for i in 0..3u64 {
        let body = format!("n{i}");
        let ts = NOW - 10_000 + i;
        let p = json!({"pubkey": pk, "timestamp": ts, "ttl": 3_600_000,
                       "data": STANDARD.encode(&body)});
        assert_eq!(t.call("store", p).0, 200);
        msgs.push(Message {
            pubkey: t.acct,
            namespace: 0,
            hash: message_hash(&t.acct, 0, body.as_bytes()),
            timestamp: ts,
            expiry: ts + 3_600_000,
            data: body.into_bytes(),
        });
    }
    let ack = |m: &Message| Ack::sign(&member, &m.into(), NOW - 1_000, 10);
    let refuted = |m: &Message, now: u64| {
        let kept = t.store.refutations(&t.acct, &m.hash, NOW).expect("kept");
        kept.iter()
            .any(|(method, params)| refutes(method, params, &ack(m), now))
    };
    // `pubKey`, and a megabyte of junk beside it.
    let h0 = msgs[0].hash.clone();
    let mut p = t.signed(&format!("delete{h0}"), json!({"messages": [h0]}));
    let key = p
        .as_object_mut()
        .and_then(|o| o.remove("pubkey"))
        .expect("pubkey");
    p["pubKey"] = key;
    p["junk"] = json!("x".repeat(1 << 20));
    let (code, body) = t.call("delete", p);
    assert_eq!(code, 200, "{body}");
    assert!(refuted(&msgs[0], NOW));
    let kept = t.store.refutations(&t.acct, &h0, NOW).expect("kept");
    assert!(
        kept.iter().all(|(_, p)| p.to_string().len() < 2_000),
        "{kept:?}"
    );
    // An expiry given as a list of one.
    let e = NOW + 1_000;
    let h1 = msgs[1].hash.clone();
    let (code, body) = t.call(
        "expire",
        t.signed(
            &format!("expireshorten{e}{h1}"),
            json!({"messages": [h1], "expiry": [e], "shorten": true}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert!(refuted(&msgs[1], e));
    // m2 shortened, then extended again: both requests are kept under it, and the shortening
    // still refutes once its time came (the message may have been swept in between).
    let h2 = msgs[2].hash.clone();
    for (word, expiry) in [("shorten", NOW + 500), ("extend", NOW + 2_000_000)] {
        let (code, body) = t.call(
            "expire",
            t.signed(
                &format!("expire{word}{expiry}{h2}"),
                json!({"messages": [h2], "expiry": expiry, word: true}),
            ),
        );
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(
        t.store.refutations(&t.acct, &h2, NOW).expect("kept").len(),
        1,
        "the extension is not kept"
    );
    assert!(refuted(&msgs[2], NOW + 500));
}
