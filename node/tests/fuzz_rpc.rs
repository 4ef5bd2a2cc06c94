//! Every JSON-RPC method called with random params (issue 11): each answers a result or an
//! error and nothing panics (a panic hook counts any, including those jsonrpsee would turn into
//! an internal error). Runs `CASES` calls (set `PROPTEST_CASES` for a longer run).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use jsonrpsee::RpcModule;
use proptest::prelude::*;
use serde_json::{json, Value};
use sispop_chain::{Network, NetworkParams};
use sispopd::node::Node;

const CASES: u32 = 2_000;
static PANICS: AtomicUsize = AtomicUsize::new(0);

struct Fixture {
    _dir: tempfile::TempDir,
    module: RpcModule<Node>,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            hook(info);
        }));
        let params = NetworkParams::get(Network::Devnet);
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = sispopd::node::Chain::open_with(
            params,
            &dir.path().join("chain"),
            sispop_staking::ServiceNodeList::new(params),
        )
        .expect("chain");
        let node = Node::new(chain, None, None);
        let f = Fixture {
            _dir: dir,
            module: sispopd::rpc::module(node),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime"),
        };
        // The calls reach the handlers: a good one answers.
        let (r, _) = f
            .rt
            .block_on(f.module.raw_json_request(
                r#"{"jsonrpc":"2.0","id":1,"method":"get_block_header_by_height","params":{"height":0}}"#,
                1,
            ))
            .expect("call");
        assert!(r.get().contains("\"block_header\""), "{}", r.get());
        f
    })
}

/// Param names the methods read, so random objects often reach the handlers' checks.
const KEYS: &[&str] = &[
    "height",
    "start_height",
    "end_height",
    "hash",
    "txs_hashes",
    "outputs",
    "amounts",
    "from_height",
    "to_height",
    "cumulative",
    "amount_of_blocks",
    "wallet_address",
    "service_node_pubkeys",
    "limit",
    "fields",
    "pubkey",
    "active_only",
    "poll_block_hash",
    "get_txid",
    "index",
    "amount",
    "tx_as_hex",
    "blob",
    "decode_as_json",
    "block_hash",
    "heights",
    "quorum_type",
    "start",
    "end",
    "operator_cut",
    "contributions",
    "args",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(0u64),
            Just(1u64 << 63)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[0-9a-f]{0,70}".prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::vec((0..KEYS.len(), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (KEYS[k].to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CASES),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_params(m in any::<prop::sample::Index>(), params in value()) {
        let f = fixture();
        let methods: Vec<&str> = f
            .module
            .method_names()
            .filter(|n| *n != "stop_daemon")
            .collect();
        let method = methods[m.index(methods.len())];
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = f
            .rt
            .block_on(f.module.raw_json_request(&req.to_string(), 1))
            .map(|(r, _)| r.get().to_owned());
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "{} {} panicked", method, req);
        if let Ok(text) = answer {
            let v: Value = serde_json::from_str(&text).expect("JSON answer");
            prop_assert!(v.get("result").is_some() || v.get("error").is_some(), "{}", v);
        }
    }
}
