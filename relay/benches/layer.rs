//! Onion layer cost (issue 10): building one layer on the client (a fresh ephemeral key, X25519
//! with the node's key, the key derivation, encryption of a 1 KiB payload) and peeling it on
//! the node (X25519 with the ephemeral key, the key derivation, decryption); and a whole
//! 3-hop request as a client builds it.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sispop_relay::client::{build, Destination, KeyTables, Node};
use sispop_relay::crypto::{
    decrypt, encrypt, ephemeral, ephemeral_agree, layer_key, shared_secret, x25519_public, EncType,
    KeyTable, StaticSecret, SISPOP_GCM_SALT,
};

fn bench(c: &mut Criterion) {
    let node_secret = [0x42u8; 32];
    let node_public = x25519_public(&node_secret);
    let node = StaticSecret::new(&node_secret).expect("key");
    let payload = vec![0x5au8; 1024];
    let mut rng = rand_core::OsRng;
    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Elements(1));
    for enc in [EncType::XChaCha20, EncType::AesGcm] {
        // The client's two ways: AWS-LC for a one-off request, a key table for many.
        g.bench_function(format!("build {} (1 KiB), one-off", enc.name()), |b| {
            b.iter(|| {
                let (public, s) = ephemeral_agree(&node_public).expect("secret");
                let key = layer_key(enc, &s, &public, &node_public, SISPOP_GCM_SALT);
                (public, encrypt(enc, &key, &payload, &mut rng))
            })
        });
        let table = KeyTable::new(&node_public).expect("a curve point");
        g.bench_function(format!("build {} (1 KiB), key table", enc.name()), |b| {
            b.iter(|| {
                let (public, s) = table.ephemeral_agree(&mut rng).expect("secret");
                let key = layer_key(enc, &s, &public, &node_public, SISPOP_GCM_SALT);
                (public, encrypt(enc, &key, &payload, &mut rng))
            })
        });
        let (secret, public) = ephemeral(&mut rng);
        let s = shared_secret(&secret, &node_public).expect("secret");
        let key = layer_key(enc, &s, &public, &node_public, SISPOP_GCM_SALT);
        let layer = encrypt(enc, &key, &payload, &mut rng);
        g.bench_function(format!("peel {} (1 KiB)", enc.name()), |b| {
            b.iter(|| {
                let s = node.agree(&public).expect("secret");
                let key = layer_key(enc, &s, &public, &node_public, SISPOP_GCM_SALT);
                decrypt(enc, &key, &layer).expect("decrypt")
            })
        });
    }
    g.finish();
    // The X25519 routes alone: a node's agreement (AWS-LC, against curve25519-dalek's two
    // routes), a public key, building a key table.
    let mut g = c.benchmark_group("x25519");
    let (_, eph) = ephemeral(&mut rng);
    g.bench_function("node agreement (AWS-LC)", |b| b.iter(|| node.agree(&eph)));
    g.bench_function("node agreement (dalek, Edwards)", |b| {
        b.iter(|| {
            curve25519_dalek::montgomery::MontgomeryPoint(eph)
                .to_edwards(0)
                .map(|p| p.mul_clamped(node_secret).to_montgomery())
        })
    });
    g.bench_function("node agreement (dalek, Montgomery ladder)", |b| {
        b.iter(|| curve25519_dalek::montgomery::MontgomeryPoint(eph).mul_clamped(node_secret))
    });
    g.bench_function("public key (AWS-LC)", |b| b.iter(|| x25519_public(&eph)));
    g.bench_function("public key (dalek, basepoint table)", |b| {
        b.iter(|| curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(eph))
    });
    g.bench_function("key table", |b| b.iter(|| KeyTable::new(&node_public)));
    g.finish();
    // The widest node-to-node layer a peer can send: 10 MiB of distinct keys (linear time).
    let mut g = c.benchmark_group("decode");
    let wide = {
        let mut b = b"d4:data3:abc13:ephemeral_key32:01234567890123456789012345678901".to_vec();
        let mut i = 0u64;
        while b.len() + 64 < sispop_relay::MAX_PAYLOAD {
            b.extend_from_slice(format!("10:k{i:09}0:").as_bytes());
            i += 1;
        }
        b.push(b'e');
        b
    };
    g.throughput(Throughput::Bytes(wide.len() as u64));
    g.sample_size(10);
    g.bench_function("node-to-node layer, 10 MiB of distinct keys", |b| {
        b.iter(|| sispop_relay::hop::decode_layer(&wide).expect("decodes"))
    });
    g.finish();
    // A whole request as `devnet bench onion` builds it: three layers around a `get_swarm`.
    let path: Vec<Node> = (1u8..=3)
        .map(|i| {
            let seed = [i; 32];
            let ed = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
            Node::from_ed25519(ed.to_bytes()).expect("a node key")
        })
        .collect();
    let body = br#"{"method":"get_swarm","params":{"pubkey":"05aa"}}"#;
    let tables = KeyTables::default();
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    for (name, tables) in [("one-off", None), ("key tables", Some(&tables))] {
        g.bench_function(format!("build 3 hops, {name}"), |b| {
            b.iter(|| {
                build(
                    &path,
                    &Destination::Storage,
                    body,
                    EncType::XChaCha20,
                    SISPOP_GCM_SALT,
                    &mut rng,
                    tables,
                )
                .expect("build")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
