//! Random, well-formed, correctly signed `/storage_rpc/v1` requests, so that the handlers run
//! past parsing and authentication (random bytes almost all stop at JSON or 401), each checked
//! against its own signature: a request the account signed is never refused as unsigned
//! (401), and the same request with one bit of its signature flipped is refused exactly when
//! the signed one got past authentication. Between requests, the store's totals must match
//! what retrieving shows.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use serde_json::{json, Value};
use sispop_storage::rpc::{handle, Context};
use sispop_storage::store::{Limits, MessageStore};
use sispop_storage::{message_hash, pubkey_hex, UserPubkey};

const NOW: u64 = 1_800_000_000_000;

/// One request of the test: the method, its params (unsigned), and what the account signs.
#[derive(Clone, Debug)]
struct Req {
    method: &'static str,
    params: Value,
    text: Vec<u8>,
    /// Whether the signature matters (not for a store to a public namespace; a retrieve of
    /// one read without a signature still checks one that is given).
    signed: bool,
}

fn ns_text(ns: &Value) -> String {
    match ns {
        Value::String(s) if s == "all" => "all".into(),
        Value::Number(n) if n.as_i64() == Some(0) => String::new(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Hashes of the messages the test stores (some exist, some never do).
fn hash_of(account: &UserPubkey, i: u8) -> String {
    message_hash(account, i16::from(i % 3), format!("body {i}").as_bytes())
}

fn request(account: UserPubkey) -> impl Strategy<Value = Req> {
    let ns = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!(-10))
    ];
    let any_ns = prop_oneof![ns.clone(), Just(json!("all"))];
    let hashes = proptest::collection::vec(0u8..12, 1..4)
        .prop_map(move |is| is.iter().map(|i| hash_of(&account, *i)).collect::<Vec<_>>());
    let skew = -5_000i64..5_000;
    prop_oneof![
        // store: its body makes one of the hashes above (namespace from the body's number).
        (0u8..12, skew.clone(), 10_000u64..3_600_000).prop_map(move |(i, s, ttl)| {
            let ts = NOW.saturating_add_signed(s);
            let ns = i % 3;
            Req {
                signed: ns != 0,
                method: "store",
                params: json!({"namespace": ns, "timestamp": ts, "ttl": ttl,
                               "data": STANDARD.encode(format!("body {i}"))}),
                text: format!(
                    "store{}{ts}",
                    if ns == 0 {
                        String::new()
                    } else {
                        ns.to_string()
                    }
                )
                .into_bytes(),
            }
        }),
        (ns.clone(), skew.clone()).prop_map(|(ns, s)| {
            let ts = NOW.saturating_add_signed(s);
            Req {
                signed: true,
                method: "retrieve",
                text: format!("retrieve{}{ts}", ns_text(&ns)).into_bytes(),
                params: json!({"namespace": ns, "timestamp": ts}),
            }
        }),
        hashes.clone().prop_map(|hs| Req {
            method: "delete",
            signed: true,
            text: format!("delete{}", hs.concat()).into_bytes(),
            params: json!({"messages": hs}),
        }),
        (any_ns.clone(), skew.clone()).prop_map(|(ns, s)| {
            let ts = NOW.saturating_add_signed(s);
            Req {
                method: "delete_all",
                signed: true,
                text: format!("delete_all{}{ts}", ns_text(&ns)).into_bytes(),
                params: json!({"namespace": ns, "timestamp": ts}),
            }
        }),
        (any_ns.clone(), skew.clone()).prop_map(|(ns, s)| {
            let before = NOW.saturating_add_signed(s);
            Req {
                method: "delete_before",
                signed: true,
                text: format!("delete_before{}{before}", ns_text(&ns)).into_bytes(),
                params: json!({"namespace": ns, "before": before}),
            }
        }),
        (hashes.clone(), 0u64..7_200_000, 0u8..3).prop_map(|(hs, d, word)| {
            let expiry = NOW + d;
            let (w, extra) = match word {
                0 => ("", json!({})),
                1 => ("shorten", json!({"shorten": true})),
                _ => ("extend", json!({"extend": true})),
            };
            let mut params = json!({"messages": hs, "expiry": expiry});
            if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
                p.extend(e);
            }
            Req {
                method: "expire",
                signed: true,
                text: format!("expire{w}{expiry}{}", hs.concat()).into_bytes(),
                params,
            }
        }),
        (any_ns, 0u64..7_200_000).prop_map(|(ns, d)| {
            let expiry = NOW + d;
            Req {
                method: "expire_all",
                signed: true,
                text: format!("expire_all{}{expiry}", ns_text(&ns)).into_bytes(),
                params: json!({"namespace": ns, "expiry": expiry}),
            }
        }),
        (hashes, skew.clone()).prop_map(|(hs, s)| {
            let ts = NOW.saturating_add_signed(s);
            Req {
                method: "get_expiries",
                signed: true,
                text: format!("get_expiries{ts}{}", hs.concat()).into_bytes(),
                params: json!({"messages": hs, "timestamp": ts}),
            }
        }),
        (any::<[u8; 4]>(), skew).prop_map(|(t, s)| {
            let ts = NOW.saturating_add_signed(s);
            let mut token = vec![5u8, 0b11, 0, 0];
            token.extend_from_slice(&[t[0]; 32]);
            let mut text = format!("revoke_subaccount{ts}").into_bytes();
            text.extend_from_slice(&token);
            Req {
                method: "revoke_subaccount",
                signed: true,
                params: json!({"revoke": hex::encode(&token), "timestamp": ts}),
                text,
            }
        }),
    ]
}

fn call(store: &MessageStore, node: &SigningKey, method: &str, params: &Value) -> (u16, Value) {
    let ctx = Context {
        now_ms: NOW,
        hf: [19, 0],
        height: 100,
        signer: node,
        oxend: &sispop_storage::rpc::no_daemon,
        answer: &Default::default(),
    };
    let body = json!({"method": method, "params": params}).to_string();
    let r = handle(store, &ctx, body.as_bytes());
    (r.status, r.body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn signed_requests_reach_the_handlers(reqs in proptest::collection::vec(
        request(UserPubkey { prefix: 5, key: SigningKey::from_bytes(&[3; 32]).verifying_key().to_montgomery().to_bytes() }),
        1..24,
    )) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MessageStore::open(&dir.path().join("s"), Limits::default()).expect("open");
        let node = SigningKey::from_bytes(&[9; 32]);
        let user = SigningKey::from_bytes(&[3; 32]);
        let account = UserPubkey {
            prefix: 5,
            key: user.verifying_key().to_montgomery().to_bytes(),
        };
        let mut reached = 0;
        for r in &reqs {
            let mut p = r.params.clone();
            p["pubkey"] = json!(pubkey_hex(&account));
            p["pubkey_ed25519"] = json!(hex::encode(user.verifying_key().to_bytes()));
            let signature = user.sign(&r.text).to_bytes();
            // With one bit of the signature flipped first: that may change nothing.
            let mut flipped = signature;
            flipped[7] ^= 0x10;
            p["signature"] = json!(STANDARD.encode(flipped));
            let (bad, bad_body) = call(&store, &node, r.method, &p);
            p["signature"] = json!(STANDARD.encode(signature));
            let (code, body) = call(&store, &node, r.method, &p);
            prop_assert!((200..600).contains(&code));
            prop_assert_ne!(code, 401, "{} {} -> {}", r.method, p, body);
            if !r.signed {
                prop_assert_ne!(bad, 401, "{} needs no signature: {}", r.method, bad_body);
            } else if code == 200 || code == 404 {
                reached += 1;
                prop_assert_eq!(bad, 401, "a forged {} got {}: {}", r.method, bad, bad_body);
            } else {
                // Refused before its signature was looked at: the same for both.
                prop_assert_eq!(bad, code, "{} {} / {}", r.method, body, bad_body);
            }
            // What the store counts is what a retrieve of every namespace shows.
            let (count, bytes) = store.usage(&account).expect("usage");
            let held: Vec<_> = [-10i16, 0, 1, 2]
                .iter()
                .flat_map(|ns| {
                    store
                        .retrieve(&account, *ns, None, 0, u64::MAX, NOW)
                        .expect("retrieve")
                        .0
                })
                .collect();
            prop_assert_eq!(count, held.len() as u64);
            prop_assert_eq!(bytes, held.iter().map(|m| m.data.len() as u64).sum::<u64>());
        }
        // Most signed requests get through (the skews and namespaces are mostly valid).
        let signed = reqs.iter().filter(|r| r.signed).count();
        prop_assert!(reached * 3 >= signed, "{reached} of {signed}");
    }
}
