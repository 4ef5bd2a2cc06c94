//! Onion layer cost (issue 10): building one layer on the client (a fresh ephemeral key, X25519
//! with the node's key, the key derivation, encryption of a 1 KiB payload) and peeling it on
//! the node (X25519 with the ephemeral key, the key derivation, decryption).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sispop_relay::crypto::{
    decrypt, encrypt, ephemeral, layer_key, shared_secret, x25519_public, EncType, SISPOP_GCM_SALT,
};

fn bench(c: &mut Criterion) {
    let node_secret = [0x42u8; 32];
    let node_public = x25519_public(&node_secret);
    let payload = vec![0x5au8; 1024];
    let mut rng = rand_core::OsRng;
    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Elements(1));
    for enc in [EncType::XChaCha20, EncType::AesGcm] {
        g.bench_function(format!("build {} (1 KiB)", enc.name()), |b| {
            b.iter(|| {
                let (secret, public) = ephemeral(&mut rng);
                let s = shared_secret(&secret, &node_public).expect("secret");
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
                let s = shared_secret(&node_secret, &public).expect("secret");
                let key = layer_key(enc, &s, &public, &node_public, SISPOP_GCM_SALT);
                decrypt(enc, &key, &layer).expect("decrypt")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
