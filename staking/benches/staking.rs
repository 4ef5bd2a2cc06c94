//! Staking benchmarks: verifying a stake transaction (RingCT checks plus the staking rules,
//! as the mempool does), applying one block to a service node list of 2,000 nodes, and applying
//! a block with 100 state changes to that list.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use curve25519_dalek::Scalar;
use rand::rngs::OsRng;
use sispop_chain::builder::SpendInput;
use sispop_chain::crypto::{
    derivation_to_scalar, hash_to_scalar, key_derivation, public_from_secret, random_scalar,
};
use sispop_chain::extension::{BlockTx, ChainExtension};
use sispop_chain::extra::{parse_extra, tx_pubkey};
use sispop_chain::{
    Address, Atomic, Block, BlockHash, Blockchain, Height, Mempool, Network, NetworkParams, COIN,
};
use sispop_staking::build::{build_stake_tx, sign_registration};
use sispop_staking::testkit;
use sispop_staking::ServiceNodeList;
use sispop_testing::NewState;

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

fn bench_verify(c: &mut Criterion) {
    let spend = random_scalar(&mut OsRng);
    let view = hash_to_scalar(spend.as_bytes());
    let addr = Address {
        spend: public_from_secret(&spend),
        view: public_from_secret(&view),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain =
        Blockchain::open_with(params(), dir.path(), ServiceNodeList::new(params())).expect("open");
    for _ in 0..30 {
        let now = chain.tip_meta().timestamp + 2;
        let mut t = chain
            .block_template(&mut OsRng, &addr, vec![], now)
            .expect("template");
        assert!(t.mine(100));
        chain
            .add_block(&t.block.serialize(), &[], now)
            .expect("block");
    }
    // Operator registration spending 7 coinbase outputs (7 × 16 ≥ 100 + fee).
    let inputs: Vec<SpendInput> = (1..=7u64)
        .map(|h| {
            let (_, meta, blob) = chain.block_at(Height(h)).expect("db").expect("block");
            let block = Block::from_bytes(&blob).expect("block");
            let r = tx_pubkey(&parse_extra(&block.miner_tx.extra).expect("extra")).expect("R");
            let d = key_derivation(&view, &r).expect("d");
            let real = meta.first_output_index;
            let mut members: Vec<u64> = (0..).filter(|i| *i != real).take(9).collect();
            members.push(real);
            members.sort_unstable();
            let ring = members
                .iter()
                .map(|&i| {
                    let o = chain.store().output(i).expect("db").expect("out");
                    (i, o.key, o.commitment)
                })
                .collect();
            SpendInput {
                secret: derivation_to_scalar(&d, 0) + spend,
                amount: block.miner_tx.outputs[0].amount.expect("amount"),
                mask: Scalar::ONE,
                ring,
                real_index: members.iter().position(|&i| i == real).expect("real"),
            }
        })
        .collect();
    let sn = random_scalar(&mut OsRng);
    let hf = params().hard_fork_at(Height(chain.tip().0 .0 + 1));
    let reg = sign_registration(&mut OsRng, &sn, 1000, &[(addr, 100 * COIN)], hf);
    let tx = build_stake_tx(
        &mut OsRng,
        &spend,
        &view,
        &inputs,
        public_from_secret(&sn),
        100 * COIN,
        20_000_000,
        Some(reg),
    )
    .expect("build")
    .tx;
    let blob = tx.serialize();
    let mut g = c.benchmark_group("staking");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_registration_tx_7_inputs", |b| {
        b.iter(|| {
            let mut pool = Mempool::new(1 << 30);
            pool.add(&chain, blob.clone(), 0).expect("valid")
        })
    });
    g.finish();
}

fn bench_block_update(c: &mut Criterion) {
    let (state, _) = testkit::state(2000, (Height(100), BlockHash([1; 32])));
    let mut list = ServiceNodeList::new(params());
    list.restore(&serde_json::to_vec(&state).expect("json"))
        .expect("restore");
    // Assign swarms once so the benchmark measures a steady block.
    let leader = list.state().leader().expect("leader");
    let payout = list.state().payouts(Atomic(20 * COIN));
    let addr = payout.payouts[0].0;
    let miner_tx = sispop_chain::reward::build_miner_tx(
        &mut OsRng,
        params(),
        Height(101),
        &addr,
        Atomic(16 * COIN),
        &payout,
    )
    .expect("miner tx");
    let block = Block {
        header: sispop_chain::BlockHeader {
            major_version: 19,
            minor_version: 19,
            timestamp: 0,
            prev_id: BlockHash([1; 32]),
            nonce: 0,
        },
        miner_tx,
        tx_hashes: vec![],
    };
    assert_eq!(
        list.payouts(Height(101), Atomic(20 * COIN)).leader,
        Some(leader)
    );
    let mut g = c.benchmark_group("staking");
    g.sample_size(20);
    g.bench_function("sn_list_block_update_2000_nodes", |b| {
        b.iter_batched(
            || {
                let mut l = ServiceNodeList::new(params());
                l.restore(&serde_json::to_vec(&state).expect("json"))
                    .expect("restore");
                l
            },
            |mut l| l.attach(&block, BlockHash([2; 32]), Height(101), &[]),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A block with 100 state changes (7 votes each, 700 signatures), on a 2,000-node list:
/// every vote verified against its quorum, every change applied, swarms recomputed.
fn bench_state_changes(c: &mut Criterion) {
    let (state, secrets) = testkit::state(2000, (Height(100), BlockHash([1; 32])));
    let mut list = ServiceNodeList::new(params());
    list.restore(&serde_json::to_vec(&state).expect("json"))
        .expect("restore");
    let hash = |h: u64| BlockHash([h as u8; 32]);
    for h in 101..=105 {
        list.attach(&testkit::block(hash(h - 1)), hash(h), Height(h), &[]);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut txs = Vec::new();
    'outer: for h in 101..=105u64 {
        let q = list.state().quorum(Height(h)).expect("quorum").clone();
        for (wi, w) in q.workers.iter().enumerate() {
            if seen.insert(*w) {
                txs.push(
                    testkit::signed_state_change(
                        list.state(),
                        &secrets,
                        h,
                        wi as u16,
                        NewState::Decommission,
                        7,
                    )
                    .expect("tx"),
                );
                if txs.len() == 100 {
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(txs.len(), 100);
    let block = testkit::block(hash(105));
    let snap = list.snapshot();
    let btxs: Vec<BlockTx<'_>> = txs
        .iter()
        .map(|tx| BlockTx {
            hash: tx.hash(),
            tx,
        })
        .collect();
    // The block does what it says.
    let mut check = ServiceNodeList::new(params());
    check.restore(&snap).expect("restore");
    check.attach(&block, hash(106), Height(106), &btxs);
    assert_eq!(
        check
            .state()
            .nodes
            .values()
            .filter(|n| n.is_decommissioned())
            .count(),
        100
    );
    let mut g = c.benchmark_group("staking");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100));
    g.bench_function("block_with_100_state_changes_2000_nodes", |b| {
        b.iter_batched(
            || {
                let mut l = ServiceNodeList::new(params());
                l.restore(&snap).expect("restore");
                l
            },
            |mut l| l.attach(&block, hash(106), Height(106), &btxs),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_verify,
    bench_block_update,
    bench_state_changes
);
criterion_main!(benches);
