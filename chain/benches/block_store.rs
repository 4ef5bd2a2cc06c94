//! Block validation + store throughput: blocks/s for blocks carrying N RingCT transfers
//! (1 input, ring 10, 2 outputs, CLSAG + Bulletproofs+), on a real RocksDB in a temp dir.
//! Each iteration validates and writes one block on the same parent, then pops it (untimed).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use curve25519_dalek::Scalar;
use rand::rngs::OsRng;
use sispop_chain::builder::{build_transfer, SpendInput};
use sispop_chain::crypto::{
    derivation_to_scalar, key_derivation, public_from_secret, random_scalar,
};
use sispop_chain::extra::{parse_extra, tx_pubkey};
use sispop_chain::{Address, Block, Blockchain, Height, Network, NetworkParams, TxType};

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

fn spend_coinbase(
    chain: &Blockchain,
    view: &Scalar,
    spend: &Scalar,
    height: u64,
    to: &Address,
) -> Vec<u8> {
    let (hash, meta, blob) = chain.block_at(Height(height)).expect("db").expect("block");
    let block = Block::from_bytes(&blob).expect("block");
    let _ = hash;
    let r = tx_pubkey(&parse_extra(&block.miner_tx.extra).expect("extra")).expect("pubkey");
    let d = key_derivation(view, &r).expect("derivation");
    let secret = derivation_to_scalar(&d, 0) + spend;
    let amount = block.miner_tx.outputs[0].amount.expect("amount");
    let real = meta.first_output_index;
    let n = params().ring_size as u64;
    let start = real.saturating_sub(n / 2).min(chain.output_count() - n);
    let ring = (start..start + n)
        .map(|i| {
            let o = chain.store().output(i).expect("db").expect("out");
            (i, o.key, o.commitment)
        })
        .collect();
    let input = SpendInput {
        secret,
        amount,
        mask: Scalar::ONE,
        ring,
        real_index: (real - start) as usize,
    };
    let fee = 50_000;
    build_transfer(
        &mut OsRng,
        &[input],
        &[(*to, amount - fee - 1000), (*to, 1000)],
        fee,
        TxType::Standard,
        &[],
    )
    .expect("build")
    .tx
    .serialize()
}

fn bench(c: &mut Criterion) {
    let view = random_scalar(&mut OsRng);
    let spend = random_scalar(&mut OsRng);
    let addr = Address {
        spend: public_from_secret(&spend),
        view: public_from_secret(&view),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Blockchain::open(params(), dir.path()).expect("open");
    for _ in 0..60 {
        let now = chain.tip_meta().timestamp + 2;
        let mut t = chain
            .block_template(&mut OsRng, &addr, vec![], now)
            .expect("template");
        assert!(t.mine(1000));
        chain
            .add_block(&t.block.serialize(), &[], now)
            .expect("block");
    }
    let mut g = c.benchmark_group("block_validate_and_store");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for n_txs in [0usize, 4, 16] {
        let txs: Vec<Vec<u8>> = (0..n_txs as u64)
            .map(|i| spend_coinbase(&chain, &view, &spend, 5 + i, &addr))
            .collect();
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{n_txs}_txs"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let now = chain.tip_meta().timestamp + 2;
                    let mut t = chain
                        .block_template(&mut OsRng, &addr, txs.clone(), now)
                        .expect("template");
                    assert_eq!(t.txs.len(), n_txs);
                    assert!(t.mine(1000));
                    let blob = t.block.serialize();
                    let start = Instant::now();
                    chain.add_block(&blob, &t.txs, now).expect("valid block");
                    total += start.elapsed();
                    chain.pop_blocks(1).expect("pop");
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
