//! Decoders of everything a peer or caller sends, fed random bytes and mutated valid
//! encodings (issue 11): the node-to-node wire messages, blocks and transactions, onion layers
//! and payloads, and storage RPC bodies. Each must answer with an error or a value, never
//! panic; and what decodes must encode back to the same bytes where the format is canonical.
//! Runs `CASES` inputs per decoder (set `PROPTEST_CASES` for a longer run).

use proptest::prelude::*;
use sispop_chain::{Block, Network, NetworkParams, Transaction};
use sispopd::p2p::wire::{Request, Response, WireBlock};

const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(CASES),
        ..ProptestConfig::default()
    }
}

/// Valid encodings to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let genesis = sispop_chain::blockchain::genesis_block(NetworkParams::get(Network::Devnet));
    let block = genesis.serialize();
    let tx = genesis.miner_tx.serialize();
    let wb = WireBlock {
        blob: block.clone(),
        txs: vec![tx.clone(), tx.clone()],
    };
    vec![
        block,
        tx,
        wb.to_bytes(),
        Request::Blocks { from: 7, count: 20 }.to_bytes(),
        Request::Locator(vec![[3; 32], [4; 32]]).to_bytes(),
        Response::ForkPoint {
            height: 9,
            hash: [5; 32],
        }
        .to_bytes(),
        Response::Peers(vec![
            b"\x04\x7f\x00\x00\x01\x06\x56\x06".to_vec(),
            vec![0xa5; 64],
        ])
        .to_bytes(),
        Response::Blocks(vec![wb.clone(), wb]).to_bytes(),
        Response::Tip {
            height: 3,
            hash: [9; 32],
            cumulative_difficulty: 77,
        }
        .to_bytes(),
        sispop_relay::hop::encode_layer(&sispop_relay::hop::Layer {
            data: vec![1; 40],
            ephemeral_key: [2; 32],
            enc: sispop_relay::crypto::EncType::XChaCha20,
            hop_no: 3,
        }),
        b"\x04\x00\x00\x00abcd{\"ephemeral_key\":\"0101010101010101010101010101010101010101010101010101010101010101\",\"enc_type\":\"xchacha20\",\"hop_no\":2}".to_vec(),
        br#"{"method":"retrieve","params":{"pubkey":"050000000000000000000000000000000000000000000000000000000000000000","timestamp":1}}"#.to_vec(),
    ]
}

/// Random bytes, or a valid encoding with bytes flipped, cut or inserted.
fn input() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (
            0..seeds.len(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        )
            .prop_map(move |(i, edits)| {
                let mut b = seeds[i].clone();
                for (at, byte, kind) in edits {
                    if b.is_empty() {
                        b.push(byte);
                        continue;
                    }
                    let k = at.index(b.len());
                    match kind {
                        0 => b[k] = byte,
                        1 => b.truncate(k),
                        _ => b.insert(k, byte),
                    }
                }
                b
            }),
    ]
}

/// One store for every case (opening RocksDB per case would dominate the run).
fn store() -> &'static sispop_storage::store::MessageStore {
    static STORE: std::sync::OnceLock<(tempfile::TempDir, sispop_storage::store::MessageStore)> =
        std::sync::OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = sispop_storage::store::MessageStore::open(
                &dir.path().join("s"),
                sispop_storage::store::Limits::default(),
            )
            .expect("store");
            (dir, s)
        })
        .1
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wire_messages(b in input()) {
        if let Ok(m) = WireBlock::decode(&b) {
            prop_assert_eq!(m.to_bytes(), b.clone());
        }
        if let Ok(r) = Request::decode(&b) {
            prop_assert_eq!(r.to_bytes(), b.clone());
        }
        let _ = Response::decode(&b);
    }

    #[test]
    fn blocks_and_transactions(b in input()) {
        if let Ok(block) = Block::from_bytes(&b) {
            let _ = block.hash();
        }
        if let Ok(tx) = Transaction::from_bytes(&b) {
            let _ = tx.hash();
        }
    }

    /// Layers encrypted to the key that peels them (random bytes never are): a request built
    /// for a node, to it alone or on to another, opens to exactly what was sent; one with a
    /// byte of its ciphertext changed, or peeled by another node, is refused.
    #[test]
    fn onion_layers_built_for_the_node(
        request in proptest::collection::vec(any::<u8>(), 0..400),
        aes in any::<bool>(),
        two_hops in any::<bool>(),
        flip in any::<prop::sample::Index>(),
    ) {
        use sispop_relay::client::{build, Destination, Node};
        use sispop_relay::hop::{parse_entry, peel, Hop, NodeKey};
        let seed = [3u8; 32];
        let key = NodeKey::from_ed25519_seed(&seed).expect("key");
        let me = Node::from_ed25519(
            ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes(),
        )
        .expect("a node");
        let next = Node::from_ed25519(
            ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes(),
        )
        .expect("a node");
        let path: Vec<Node> = if two_hops { vec![me, next] } else { vec![me] };
        let enc = if aes {
            sispop_relay::crypto::EncType::AesGcm
        } else {
            sispop_relay::crypto::EncType::XChaCha20
        };
        let salt = sispop_relay::crypto::SISPOP_GCM_SALT;
        let built = build(&path, &Destination::Storage, &request, enc, salt, &mut rand::rngs::OsRng, None)
            .expect("built");
        let layer = parse_entry(&built.body).expect("a layer");
        match peel(&key, &layer, salt).expect("opens with its key") {
            Hop::Final { request: got, .. } => {
                prop_assert!(!two_hops);
                prop_assert_eq!(got, request);
            }
            Hop::Relay { next: to, .. } => {
                prop_assert!(two_hops);
                prop_assert_eq!(to, next.ed25519);
            }
            Hop::Http { .. } => prop_assert!(false, "not an HTTP destination"),
        }
        let mut changed = layer.clone();
        let i = flip.index(changed.data.len());
        changed.data[i] ^= 0x40;
        prop_assert!(peel(&key, &changed, salt).is_err());
        let stranger = NodeKey::from_ed25519_seed(&[5; 32]).expect("key");
        prop_assert!(peel(&stranger, &layer, salt).is_err());
    }

    #[test]
    fn onion_layers_and_payloads(b in input()) {
        if let Ok(l) = sispop_relay::hop::decode_layer(&b) {
            let again = sispop_relay::hop::decode_layer(&sispop_relay::hop::encode_layer(&l));
            prop_assert_eq!(again.ok(), Some(l));
        }
        let _ = sispop_relay::hop::parse_entry(&b);
        let _ = sispop_relay::decode_payload(&b);
        let key = sispop_relay::hop::NodeKey::from_ed25519_seed(&[3; 32]).expect("key");
        if let Ok(l) = sispop_relay::hop::parse_entry(&b) {
            prop_assert!(sispop_relay::hop::peel(&key, &l, b"SISPOP").is_err());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn storage_rpc_bodies(b in input()) {
        let s = store();
        let signer = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let ctx = sispop_storage::rpc::Context {
            now_ms: 1_700_000_000_000,
            hf: [19, 0],
            height: 1,
            signer: &signer,
            oxend: &sispop_storage::rpc::no_daemon,
            answer: &Default::default(),
        };
        let r = sispop_storage::rpc::handle(s, &ctx, &b);
        prop_assert!((200..600).contains(&r.status));
    }
}
