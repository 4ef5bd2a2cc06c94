//! Uptime proof and vote verification throughput (issue 8 goal: ≥ 15,000 proofs/s per core,
//! both signatures).

use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use curve25519_dalek::Scalar;
use sha2::Digest;
use sispop_chain::crypto::public_from_secret;
use sispop_chain::PublicKey;
use sispop_testing::{NewState, ObligationsQuorum, SignedProof, UptimeProof, Vote};

fn keys(i: u8) -> ([u8; 32], Scalar, PublicKey) {
    let seed = [i; 32];
    let h = sha2::Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 63;
    a[31] |= 64;
    let x = Scalar::from_bytes_mod_order(a);
    (seed, x, public_from_secret(&x))
}

fn bench(c: &mut Criterion) {
    let (seed, x, pk) = keys(1);
    let proof = UptimeProof {
        pubkey: pk,
        pubkey_ed25519: pk,
        public_ip: Ipv4Addr::new(1, 2, 3, 4),
        storage_https_port: 22020,
        storage_omq_port: 0,
        quorumnet_port: 20000,
        version: [0, 1, 0],
        storage_version: [0, 1, 0],
        lokinet_version: [0, 0, 0],
        timestamp: 1_700_000_000,
    };
    let wire = proof.sign(&mut rand::rngs::OsRng, &x, &seed);
    let mut g = c.benchmark_group("uptime_proof");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_and_verify (both signatures)", |b| {
        b.iter(|| SignedProof::decode_and_verify(&wire).expect("valid"))
    });
    let signed = SignedProof::decode_and_verify(&wire).expect("valid");
    g.bench_function("part: primary (Cryptonote) signature", |b| {
        b.iter(|| sispop_chain::crypto::schnorr_verify(&signed.hash, &pk, &signed.sig))
    });
    g.bench_function("part: Ed25519 signature (verify_strict)", |b| {
        b.iter(|| {
            ed25519_dalek::VerifyingKey::from_bytes(&pk.0)
                .expect("key")
                .verify_strict(
                    &signed.hash,
                    &ed25519_dalek::Signature::from_bytes(&signed.ed_sig),
                )
                .is_ok()
        })
    });
    g.bench_function("part: decode", |b| {
        b.iter(|| UptimeProof::decode(&signed.proof.encode()).expect("decodes"))
    });
    g.bench_function("sign", |b| {
        b.iter(|| proof.sign(&mut rand::rngs::OsRng, &x, &seed))
    });
    g.finish();

    let signers: Vec<(Scalar, PublicKey)> =
        (0..10).map(|i| keys(10 + i)).map(|k| (k.1, k.2)).collect();
    let quorum = ObligationsQuorum {
        validators: signers.iter().map(|s| s.1).collect(),
        workers: (0..50).map(|i| keys(100 + i).2).collect(),
    };
    let vote = Vote::sign(
        &mut rand::rngs::OsRng,
        1000,
        7,
        NewState::Decommission,
        1,
        3,
        &signers[3].1,
        &signers[3].0,
    );
    let bytes = vote.encode();
    let mut g = c.benchmark_group("vote");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_and_verify", |b| {
        b.iter(|| {
            Vote::decode(&bytes)
                .expect("decodes")
                .verify(&quorum)
                .expect("valid")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
