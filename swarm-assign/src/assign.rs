//! `calc_swarm_changes`: the per-block swarm update (reference `service-nodes.md` §3.5).

use std::collections::BTreeMap;

use crate::{
    new_swarm_id, uniform_portable, Mt19937_64, SwarmId,
    DECOMMISSIONED_REDISTRIBUTION_LOWER_PERCENTILE, EXCESS_BASE, FILL_SWARM_LOWER_PERCENTILE,
    IDEAL_SWARM_SIZE, MIN_SWARM_SIZE, NEW_SWARM_SIZE, STEALING_SWARM_UPPER_PERCENTILE,
    UNASSIGNED_SWARM_ID,
};

/// Swarm id → members, in the order the algorithm keeps them. Ordered by id, like the
/// original's `std::map`.
pub type SwarmMap<K> = BTreeMap<SwarmId, Vec<K>>;

/// Applies one block's swarm changes.
///
/// `swarms` holds every active node under its current swarm id; nodes not yet in a swarm sit
/// under [`UNASSIGNED_SWARM_ID`] in ascending pubkey order. `seed` is the first 8 bytes of the
/// block hash read little-endian. The result places every node of the input in exactly one
/// swarm; the caller gives each node whose id changed its new id.
///
/// Deterministic: the result depends only on `(swarms, seed)`.
pub fn calc_swarm_changes<K: Clone + PartialEq>(mut swarms: SwarmMap<K>, seed: u64) -> SwarmMap<K> {
    if swarms.is_empty() {
        return swarms;
    }
    let mut rng = Mt19937_64::new(seed);
    let unassigned = swarms.remove(&UNASSIGNED_SWARM_ID).unwrap_or_default();
    if swarms.is_empty() {
        swarms.insert(new_swarm_id(std::iter::empty()), Vec::new());
    }

    // 1. Place new nodes among the smallest quarter of swarms.
    assign(
        &unassigned,
        &mut swarms,
        &mut rng,
        FILL_SWARM_LOWER_PERCENTILE,
    );

    // 2. Robin Hood: refill starving swarms from the largest ones.
    robin_hood(&mut swarms, &mut rng);

    // 3. Split excess into new swarms.
    create_new_swarms(&mut swarms, &mut rng);

    // 4. Dissolve swarms that are still too small. The last swarm is never dissolved: with
    //    fewer than MIN_SWARM_SIZE active nodes in total the network keeps one swarm that holds
    //    them all (the original throws here).
    while swarms.len() > 1 {
        let Some(id) = swarms
            .iter()
            .find(|(_, m)| m.len() < MIN_SWARM_SIZE)
            .map(|(id, _)| *id)
        else {
            break;
        };
        let members = swarms.remove(&id).unwrap_or_default();
        assign(
            &members,
            &mut swarms,
            &mut rng,
            DECOMMISSIONED_REDISTRIBUTION_LOWER_PERCENTILE,
        );
    }
    swarms
}

/// (id, size) of every swarm, ascending by size, ties by id (our documented divergence from
/// the unstable `std::sort` of the original).
fn sorted_sizes<K>(swarms: &SwarmMap<K>) -> Vec<(SwarmId, usize)> {
    let mut v: Vec<(SwarmId, usize)> = swarms.iter().map(|(id, m)| (*id, m.len())).collect();
    // The map iterates in id order, so a stable sort by size is a sort by (size, id).
    v.sort_by_key(|&(_, size)| size);
    v
}

fn total_excess<K>(swarms: &SwarmMap<K>) -> usize {
    swarms
        .values()
        .map(|m| m.len().saturating_sub(EXCESS_BASE))
        .sum()
}

fn new_swarm_threshold<K>(swarms: &SwarmMap<K>) -> usize {
    IDEAL_SWARM_SIZE + 2 * swarms.len()
}

/// Every member of every swarm larger than `threshold`, with the excess those swarms hold.
/// Picking uniformly from the pool picks a donor swarm in proportion to its size.
fn excess_pool<K: Clone>(threshold: usize, swarms: &SwarmMap<K>) -> (Vec<(K, SwarmId)>, usize) {
    let mut pool = Vec::new();
    let mut excess = 0;
    if threshold < EXCESS_BASE {
        return (pool, excess);
    }
    for (id, members) in swarms {
        if members.len() > threshold {
            pool.extend(members.iter().map(|k| (k.clone(), *id)));
            excess += members.len() - EXCESS_BASE;
        }
    }
    (pool, excess)
}

fn remove_member<K: PartialEq>(swarms: &mut SwarmMap<K>, key: &K, id: SwarmId) {
    if let Some(members) = swarms.get_mut(&id) {
        if let Some(pos) = members.iter().position(|k| k == key) {
            members.remove(pos);
        }
    }
}

fn create_new_swarms<K: Clone + PartialEq>(swarms: &mut SwarmMap<K>, rng: &mut Mt19937_64) {
    if swarms.values().any(|m| m.len() < MIN_SWARM_SIZE) {
        return;
    }
    while total_excess(swarms) >= new_swarm_threshold(swarms) {
        let mut fresh: Vec<(K, SwarmId)> = Vec::with_capacity(NEW_SWARM_SIZE);
        while fresh.len() < NEW_SWARM_SIZE {
            let (pool, _) = excess_pool(EXCESS_BASE, swarms);
            if pool.is_empty() {
                // Unreachable while excess >= threshold (every pick lowers the excess by one
                // and the threshold is at least 9); put the picked nodes back rather than lose
                // them.
                for (key, id) in fresh {
                    swarms.entry(id).or_default().push(key);
                }
                return;
            }
            let pick = uniform_portable(rng, pool.len() as u64) as usize;
            let (key, id) = pool[pick].clone();
            remove_member(swarms, &key, id);
            fresh.push((key, id));
        }
        let id = new_swarm_id(swarms.keys().copied());
        swarms.insert(id, fresh.into_iter().map(|(k, _)| k).collect());
    }
}

fn assign<K: Clone + PartialEq>(
    nodes: &[K],
    swarms: &mut SwarmMap<K>,
    rng: &mut Mt19937_64,
    percentile: usize,
) {
    for node in nodes {
        let sizes = sorted_sizes(swarms);
        let Some(last) = sizes.len().checked_sub(1) else {
            return;
        };
        let p_idx = percentile * last / 100;
        let p_val = sizes[p_idx].1;
        let upper = sizes[p_idx..]
            .iter()
            .position(|&(_, size)| size > p_val)
            .map_or(last, |off| p_idx + off - 1);
        let pick = uniform_portable(rng, upper as u64 + 1) as usize;
        let id = sizes[pick].0;
        swarms.entry(id).or_default().push(node.clone());
        create_new_swarms(swarms, rng);
    }
}

fn robin_hood<K: Clone + PartialEq>(swarms: &mut SwarmMap<K>, rng: &mut Mt19937_64) {
    // One snapshot of the sizes, reused below even as the live sizes change.
    let sizes = sorted_sizes(swarms);
    let Some(last) = sizes.len().checked_sub(1) else {
        return;
    };
    let p_idx = STEALING_SWARM_UPPER_PERCENTILE * last / 100;
    let donor_threshold = MIN_SWARM_SIZE.max(sizes[p_idx].1.saturating_sub(1));
    for &(starving, size) in &sizes {
        if size >= MIN_SWARM_SIZE {
            break;
        }
        loop {
            let live = swarms.get(&starving).map_or(0, Vec::len);
            if live >= MIN_SWARM_SIZE {
                break;
            }
            let (pool, excess) = excess_pool(donor_threshold, swarms);
            if excess < MIN_SWARM_SIZE - live || pool.is_empty() {
                return;
            }
            let pick = uniform_portable(rng, pool.len() as u64) as usize;
            let (key, from) = pool[pick].clone();
            remove_member(swarms, &key, from);
            swarms.entry(starving).or_default().push(key);
        }
    }
}

#[cfg(test)]
mod tests;
