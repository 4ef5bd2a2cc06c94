//! Vectors of reference §9.3 and the upstream structural invariants of §3.5.

use super::*;
use proptest::prelude::*;

type Map = SwarmMap<u32>;

fn unassigned(nodes: impl IntoIterator<Item = u32>) -> Map {
    let mut m = Map::new();
    m.insert(UNASSIGNED_SWARM_ID, nodes.into_iter().collect());
    m
}

fn excess_of(m: &Map) -> usize {
    total_excess(m)
}

fn add_nodes(mut m: Map, nodes: impl IntoIterator<Item = u32>) -> Map {
    m.insert(UNASSIGNED_SWARM_ID, nodes.into_iter().collect());
    m
}

fn all_members(m: &Map) -> Vec<u32> {
    let mut v: Vec<u32> = m.values().flatten().copied().collect();
    v.sort_unstable();
    v
}

#[test]
fn vector_twenty_nodes_seed_12345() {
    let out = calc_swarm_changes(unassigned(1..=20), 12345);
    let mut want = Map::new();
    want.insert(0, vec![5, 7, 9, 10, 11, 12, 14, 16, 18, 20]);
    want.insert(
        9_223_372_036_854_775_807,
        vec![13, 6, 4, 1, 3, 8, 2, 15, 17, 19],
    );
    assert_eq!(out, want);

    let out = calc_swarm_changes(add_nodes(out, [21, 22, 23]), 999);
    let mut want = Map::new();
    want.insert(0, vec![5, 7, 10, 12, 14, 20, 21]);
    want.insert(9_223_372_036_854_775_807, vec![13, 6, 3, 8, 2, 15, 19, 22]);
    want.insert(
        13_835_058_055_282_163_711,
        vec![1, 16, 11, 18, 9, 17, 4, 23],
    );
    assert_eq!(out, want);
}

#[test]
fn vector_seven_nodes_seed_0() {
    let out = calc_swarm_changes(unassigned(1..=7), 0);
    let mut want = Map::new();
    want.insert(0, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(out, want);
}

fn check_growth_invariant(m: &Map, n: usize) {
    let swarms = 1 + n.saturating_sub(7) / 7;
    assert_eq!(m.len(), swarms, "swarm count at n={n}");
    if n >= 7 {
        assert_eq!(excess_of(m), 2 * swarms + n % 7, "excess at n={n}");
    }
}

#[test]
fn one_by_one_registration_of_280_nodes() {
    let mut m = Map::new();
    for i in 0..280u32 {
        m = calc_swarm_changes(add_nodes(m, [i]), u64::from(i));
        check_growth_invariant(&m, i as usize + 1);
    }
}

#[test]
fn bulk_registrations() {
    let mut m = Map::new();
    let mut next = 0u32;
    for (block, batch) in [1usize, 9, 17, 3, 40, 70, 2, 150].into_iter().enumerate() {
        let nodes: Vec<u32> = (next..next + batch as u32).collect();
        next += batch as u32;
        m = calc_swarm_changes(add_nodes(m, nodes), block as u64 * 7919);
        check_growth_invariant(&m, next as usize);
    }
}

#[test]
fn stealing_refills_a_starving_swarm_from_one_donor() {
    let mut m = Map::new();
    for i in 0..70u32 {
        m = calc_swarm_changes(add_nodes(m, [i]), u64::from(i));
    }
    let before = m.clone();
    // Drop one swarm to 4 members.
    let (&victim, members) = m.iter_mut().find(|(_, v)| v.len() >= 5).expect("a swarm");
    while members.len() > 4 {
        members.pop();
    }
    let trimmed = m.clone();
    let out = calc_swarm_changes(m, 4242);
    assert_eq!(out.len(), before.len());
    assert!(out[&victim].len() >= MIN_SWARM_SIZE);
    let losers: Vec<_> = out
        .iter()
        .filter(|(id, v)| **id != victim && v.len() != trimmed[*id].len())
        .map(|(id, v)| (trimmed[id].len(), v.len()))
        .collect();
    assert_eq!(losers.len(), 1, "exactly one donor");
    assert_eq!(
        losers[0].0 - losers[0].1,
        1,
        "the donor lost exactly one node"
    );
}

#[test]
fn all_at_minimum_and_one_below_dissolves_one_swarm() {
    let mut m = Map::new();
    for i in 0..100u32 {
        m = calc_swarm_changes(add_nodes(m, [i]), u64::from(i) * 31);
    }
    let count = m.len();
    for members in m.values_mut() {
        members.truncate(5);
    }
    if let Some(members) = m.values_mut().next() {
        members.truncate(4);
    }
    let total: usize = m.values().map(Vec::len).sum();
    let out = calc_swarm_changes(m, 77);
    assert_eq!(out.len(), count - 1);
    assert_eq!(out.values().map(Vec::len).sum::<usize>(), total);
    assert!(out.values().all(|v| v.len() >= MIN_SWARM_SIZE));
}

#[test]
fn new_swarm_from_excess_needs_29_extra_nodes_with_11_swarms() {
    for (extra, want_swarms) in [(28u32, 11usize), (29, 12)] {
        let mut m = Map::new();
        let mut next = 0u32;
        for s in 0..11u64 {
            m.insert(s * 1_000_000, (next..next + 5).collect());
            next += 5;
        }
        let ids: Vec<u64> = m.keys().copied().collect();
        for k in 0..extra {
            let id = ids[k as usize % ids.len()];
            m.get_mut(&id).expect("swarm").push(next);
            next += 1;
        }
        let mut rng = Mt19937_64::new(1);
        create_new_swarms(&mut m, &mut rng);
        assert_eq!(m.len(), want_swarms, "extra = {extra}");
        assert_eq!(all_members(&m), (0..next).collect::<Vec<_>>());
    }
}

#[test]
fn assign_snodes_prefers_the_smallest_swarms() {
    let mut m = Map::new();
    m.insert(0, vec![100, 101, 102]);
    m.insert(1, vec![110]);
    m.insert(2, vec![120, 121, 122, 123, 124]);
    m.insert(3, vec![130, 131]);
    let mut rng = Mt19937_64::new(42);
    assign(&[1], &mut m, &mut rng, FILL_SWARM_LOWER_PERCENTILE);
    assert_eq!(m[&1], vec![110, 1]);
    assign(&[2, 3], &mut m, &mut rng, FILL_SWARM_LOWER_PERCENTILE);
    // The next two land in swarms 1 and 3, one each.
    assert_eq!(m[&1].len(), 3);
    assert_eq!(m[&3].len(), 3);
    assert_eq!(m[&0].len(), 3);
    assert_eq!(m[&2].len(), 5);
}

#[test]
fn fewer_than_five_nodes_keep_one_swarm() {
    for n in 1..5u32 {
        let out = calc_swarm_changes(unassigned(0..n), 9);
        assert_eq!(out.len(), 1);
        assert_eq!(all_members(&out), (0..n).collect::<Vec<_>>());
    }
    // Two small swarms collapse into one that keeps every node.
    let mut m = Map::new();
    m.insert(5, vec![1, 2]);
    m.insert(99, vec![3, 4]);
    let out = calc_swarm_changes(m, 3);
    assert_eq!(out.len(), 1);
    assert_eq!(all_members(&out), vec![1, 2, 3, 4]);
}

#[test]
fn empty_input_is_unchanged() {
    assert!(calc_swarm_changes(Map::new(), 1).is_empty());
}

/// A random network history: existing swarms after growth, then departures and joins.
fn network() -> impl Strategy<Value = (Map, u64)> {
    (
        1usize..200,
        0usize..60,
        0usize..40,
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(initial, departures, joins, grow_seed, seed)| {
            let mut m = calc_swarm_changes(unassigned(0..initial as u32), grow_seed);
            let mut rng = Mt19937_64::new(grow_seed ^ 0x5eed);
            for _ in 0..departures.min(initial.saturating_sub(1)) {
                let ids: Vec<u64> = m.keys().copied().collect();
                let id = ids[uniform_portable(&mut rng, ids.len() as u64) as usize];
                let members = m.get_mut(&id).expect("swarm");
                let at = uniform_portable(&mut rng, members.len() as u64) as usize;
                members.remove(at);
                if members.is_empty() {
                    m.remove(&id);
                }
            }
            let base = initial as u32;
            if joins > 0 {
                m.insert(UNASSIGNED_SWARM_ID, (base..base + joins as u32).collect());
            }
            (m, seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_node_in_exactly_one_swarm((m, seed) in network()) {
        let input = all_members(&m);
        let out = calc_swarm_changes(m, seed);
        prop_assert_eq!(all_members(&out), input);
        prop_assert!(!out.contains_key(&UNASSIGNED_SWARM_ID));
    }

    #[test]
    fn swarms_hold_at_least_five_when_possible((m, seed) in network()) {
        let total: usize = m.values().map(Vec::len).sum();
        let out = calc_swarm_changes(m, seed);
        if total >= MIN_SWARM_SIZE {
            prop_assert!(out.values().all(|v| v.len() >= MIN_SWARM_SIZE));
        } else if total > 0 {
            prop_assert_eq!(out.len(), 1);
        }
    }

    #[test]
    fn result_depends_only_on_input_and_seed((m, seed) in network()) {
        let a = calc_swarm_changes(m.clone(), seed);
        let b = calc_swarm_changes(m, seed);
        prop_assert_eq!(a, b);
    }
}
