//! Staking benchmarks: verifying a stake transaction (RingCT checks plus the staking rules,
//! as the mempool does), and applying one block to a service node list of 2,000 nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use curve25519_dalek::Scalar;
use rand::rngs::OsRng;
use sispop_chain::builder::SpendInput;
use sispop_chain::crypto::{
    derivation_to_scalar, hash_to_scalar, key_derivation, public_from_secret, random_scalar,
};
use sispop_chain::extension::ChainExtension;
use sispop_chain::extra::{parse_extra, tx_pubkey};
use sispop_chain::{
    Address, Atomic, Block, BlockHash, Blockchain, Height, Mempool, Network, NetworkParams,
    PublicKey, COIN,
};
use sispop_staking::build::{build_stake_tx, sign_registration};
use sispop_staking::list::{Contributor, LockedContribution, ServiceNodeInfo, State};
use sispop_staking::ServiceNodeList;

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

fn node(i: u32) -> (PublicKey, ServiceNodeInfo) {
    let s = Scalar::from(u64::from(i) + 1);
    let pk = public_from_secret(&s);
    let a = Address {
        spend: pk,
        view: pk,
    };
    let info = ServiceNodeInfo {
        registration_height: Height(1),
        registration_hf_version: 19,
        requested_unlock_height: Height(0),
        last_reward_block_height: Height(u64::from(i)),
        last_reward_transaction_index: 0,
        decommission_count: 0,
        active_since_height: 2,
        last_decommission_height: Height(0),
        last_decommission_reason_consensus_all: 0,
        last_decommission_reason_consensus_any: 0,
        recommission_credit: 60,
        contributors: vec![Contributor {
            address: a,
            amount: Atomic(100 * COIN),
            reserved: Atomic(100 * COIN),
            locked_contributions: vec![LockedContribution {
                key_image: sispop_chain::KeyImage(pk.0),
                key_image_pub_key: pk,
                amount: Atomic(100 * COIN),
            }],
        }],
        total_contributed: Atomic(100 * COIN),
        total_reserved: Atomic(100 * COIN),
        staking_requirement: Atomic(100 * COIN),
        fee: 1000,
        portions_for_operator: 0,
        swarm_id: sispop_swarm::UNASSIGNED_SWARM_ID,
        operator_address: a,
        last_ip_change_height: Height(1),
    };
    (pk, info)
}

fn bench_block_update(c: &mut Criterion) {
    let nodes: BTreeMap<PublicKey, Arc<ServiceNodeInfo>> =
        (0..2000).map(node).map(|(k, v)| (k, Arc::new(v))).collect();
    let state = State {
        tip: Some((Height(100), BlockHash([1; 32]))),
        nodes,
        blacklist: vec![],
        locked: Default::default(),
        quorums: Default::default(),
    };
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

criterion_group!(benches, bench_verify, bench_block_update);
criterion_main!(benches);
