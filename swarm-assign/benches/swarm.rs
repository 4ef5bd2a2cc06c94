//! Full assignment of 10,000 new nodes, and one block's update at 10,000 nodes with 20 joins
//! and 20 departures.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sispop_swarm::{calc_swarm_changes, SwarmMap, UNASSIGNED_SWARM_ID};

fn key(i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}

fn bench(c: &mut Criterion) {
    let fresh: SwarmMap<[u8; 32]> =
        SwarmMap::from([(UNASSIGNED_SWARM_ID, (0..10_000).map(key).collect())]);
    let mut g = c.benchmark_group("swarm");
    g.sample_size(10);
    g.bench_function("assign_10000_new_nodes", |b| {
        b.iter_batched(
            || fresh.clone(),
            |m| calc_swarm_changes(m, 0x1234_5678),
            BatchSize::LargeInput,
        )
    });

    let settled = calc_swarm_changes(fresh, 0x1234_5678);
    let mut churned = settled.clone();
    let mut removed = 0;
    'outer: for members in churned.values_mut() {
        if members.len() > 5 {
            members.pop();
            removed += 1;
            if removed == 20 {
                break 'outer;
            }
        }
    }
    churned.insert(UNASSIGNED_SWARM_ID, (10_000..10_020).map(key).collect());
    g.bench_function("block_update_10000_nodes_20_joins_20_departures", |b| {
        b.iter_batched(
            || churned.clone(),
            |m| calc_swarm_changes(m, 42),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
