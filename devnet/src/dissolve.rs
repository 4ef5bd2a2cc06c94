//! `devnet scenario dissolve`: a swarm loses so many members that it is dissolved, and no
//! message it held is lost.
//!
//! The scenario stores messages for accounts of one swarm (the target), then restarts nodes
//! with `--dev-fault no-proofs` so that they are decommissioned and leave their swarms: first
//! every other swarm's members beyond 5, then the target's beyond 4. A swarm of 4 that no other
//! swarm can refill is dissolved (reference `service-nodes.md` §3.5): its accounts pass to other
//! swarms and its members join them. The scenario waits until every member of each account's
//! new swarm returns every message, then restarts the faulty nodes healthy, waits until they
//! are recommissioned and the swarms re-formed, and checks every message on every member of its
//! owning swarm again. It needs at least two swarms: `devnet up --nodes 21` makes three.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use sispop_chain::{Network, NetworkParams};
use sispop_wallet::Daemon;

use crate::scenario::view;
use crate::{alive, find_sispopd, load, save, spawn, stop};

/// Options of `devnet scenario dissolve`.
#[derive(clap::Args, Debug)]
pub struct DissolveOpts {
    /// Messages to store in the target swarm.
    #[arg(long, default_value_t = 24)]
    messages: u64,
    /// Seconds the whole scenario may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Path of the sispopd binary.
    #[arg(long)]
    sispopd: Option<std::path::PathBuf>,
}

fn note(start: Instant, line: String) {
    println!("+{:6.1}s  {line}", start.elapsed().as_secs_f64());
}

/// What every member of an account's swarm returns: (member, status, hashes).
fn members_hold(
    client: &Path,
    rpc: &str,
    seed: &str,
) -> anyhow::Result<Vec<(String, String, BTreeSet<String>)>> {
    let out = std::process::Command::new(client)
        .args(["--daemon", rpc, "--seed", seed, "retrieve", "--every"])
        .output()
        .with_context(|| format!("running {}", client.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f.as_slice() {
                ["member", pk, _addr, status, _count, rest @ ..] => Some((
                    (*pk).to_owned(),
                    (*status).to_owned(),
                    rest.first()
                        .map(|h| {
                            h.split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                )),
                _ => None,
            }
        })
        .collect())
}

/// Whether every member of each account's owning swarm holds all of its messages; the
/// shortfalls otherwise.
fn all_held(
    client: &Path,
    rpc: &str,
    accounts: &BTreeMap<String, BTreeSet<String>>,
) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for (seed, want) in accounts {
        let got = members_hold(client, rpc, seed)?;
        if got.is_empty() {
            missing.push(format!("no swarm answers for account seed {}…", &seed[..8]));
        }
        for (pk, status, have) in got {
            let lacking = want.difference(&have).count();
            if status != "200" || lacking > 0 {
                missing.push(format!(
                    "{}… (status {status}) lacks {lacking} of {} messages",
                    &pk[..8.min(pk.len())],
                    want.len()
                ));
            }
        }
    }
    Ok(missing)
}

pub async fn dissolve(dir: &Path, o: DissolveOpts) -> anyhow::Result<()> {
    let sispopd = find_sispopd(o.sispopd.clone())?;
    let client = std::env::current_exe()?.with_file_name("sispop-storage");
    let mut state = load(dir)?.context("no devnet; run `devnet up` first")?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.timeout);
    // The running service nodes (one left dead by an earlier scenario takes no part).
    let sn: Vec<usize> = (0..state.nodes.len())
        .filter(|i| state.nodes[*i].service_node && state.nodes[*i].pid.is_some_and(alive))
        .collect();
    if sn.is_empty() {
        bail!("no service node is running; run `devnet up` first");
    }
    let rpc = state.nodes[sn[0]].rpc_url.clone();
    let v = view("reference", &rpc)
        .await
        .context("reading the service node list")?;
    // Each service node's key and swarm.
    let mut swarms: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for &i in &sn {
        let k = Daemon::new(&state.nodes[i].rpc_url)?
            .call("get_service_keys", json!({}))
            .await?["service_node_pubkey"]
            .as_str()
            .context("service node key")?
            .to_owned();
        let Some(&(true, swarm, ..)) = v.nodes.get(&k) else {
            bail!("{} is not an active service node yet", state.nodes[i].name);
        };
        swarms.entry(swarm).or_default().push(i);
        keys.insert(i, k);
    }
    if swarms.len() < 2 {
        bail!("only one swarm: run `devnet up --nodes 21` for three");
    }
    // The target: the swarm without the miner with the fewest members to spare.
    let has_miner = |m: &Vec<usize>| m.iter().any(|i| state.nodes[*i].mining);
    let (&target, members) = swarms
        .iter()
        .filter(|(_, m)| !has_miner(m))
        .min_by_key(|(_, m)| m.len())
        .context("every swarm holds the miner")?;
    println!(
        "dissolve scenario: {} swarms ({}); target swarm {target:x} of {}",
        swarms.len(),
        swarms
            .values()
            .map(|m| m.len().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        members.len()
    );
    // Decommission credit of each node: one without enough would be deregistered instead.
    let full = Daemon::new(&rpc)?
        .call("get_service_nodes", json!({}))
        .await?;
    let credit: BTreeMap<String, i64> = full["service_node_states"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["service_node_pubkey"].as_str()?.to_owned(),
                e["earned_downtime_blocks"].as_i64()?,
            ))
        })
        .collect();
    let minimum = NetworkParams::get(Network::Devnet).sn.credit_minimum;
    // Who gets the fault: the other swarms' members beyond 5, then the target's beyond 4; the
    // nodes with the most credit first.
    let pick = |m: &Vec<usize>, keep: usize| -> anyhow::Result<Vec<usize>> {
        let mut spare: Vec<usize> = m
            .iter()
            .copied()
            .filter(|i| !state.nodes[*i].mining)
            .filter(|i| credit.get(&keys[i]).is_some_and(|c| *c >= minimum))
            .collect();
        spare.sort_by_key(|i| std::cmp::Reverse(credit.get(&keys[i]).copied().unwrap_or(0)));
        let n = m.len().saturating_sub(keep);
        if spare.len() < n {
            bail!(
                "cannot shrink a swarm of {} to {keep}: only {} nodes other than the miner have \
                 the {minimum} blocks of credit a decommission needs",
                m.len(),
                spare.len()
            );
        }
        Ok(spare[..n].to_vec())
    };
    let mut first = Vec::new();
    for (id, m) in &swarms {
        if *id != target {
            first.extend(pick(m, 5)?);
        }
    }
    let second = pick(members, 4)?;
    if sn.len() - first.len() - second.len() < 8 {
        bail!("too few service nodes would stay active for quorums to vote");
    }

    // Messages in the target swarm, and what each account holds.
    let seed_node = members
        .iter()
        .copied()
        .find(|i| !second.contains(i))
        .unwrap_or(members[0]);
    crate::bench::seed_messages(dir, &state.nodes[seed_node], o.messages).await?;
    let file = dir.join(format!("seed-accounts-{}.txt", state.nodes[seed_node].name));
    let mut accounts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(&file)?.lines() {
        let Some(seed) = line.split(' ').nth(1) else {
            continue;
        };
        let held = members_hold(&client, &rpc, seed)?;
        let all: BTreeSet<String> = held.iter().flat_map(|(_, _, h)| h.clone()).collect();
        if !all.is_empty() {
            accounts.insert(seed.to_owned(), all);
        }
    }
    let total: usize = accounts.values().map(BTreeSet::len).sum();
    note(
        start,
        format!(
            "stored {total} messages for {} accounts of swarm {target:x}",
            accounts.len()
        ),
    );

    let mut faulty = Vec::new();
    let mut gone = BTreeSet::new();
    for (stage, group) in [("other swarms", &first), ("the target swarm", &second)] {
        for &i in group {
            let n = &mut state.nodes[i];
            if let Some(pid) = n.pid.take() {
                stop(pid);
            }
            n.dev_faults = vec!["no-proofs".into()];
            n.pid = Some(spawn(&sispopd, n, &state.miner_address)?);
            faulty.push(i);
        }
        save(dir, &state)?;
        note(
            start,
            format!(
                "restarted {} node(s) of {stage} with --dev-fault no-proofs",
                group.len()
            ),
        );
        loop {
            let Some(v) = view("reference", &rpc).await else {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            };
            for &i in group {
                if !v.nodes.contains_key(&keys[&i]) && gone.insert(i) {
                    // Too little credit left for a decommission: out of its swarm all the same.
                    note(
                        start,
                        format!(
                            "{} was deregistered, not decommissioned",
                            state.nodes[i].name
                        ),
                    );
                }
            }
            let active: Vec<&str> = group
                .iter()
                .filter(|i| v.nodes.get(&keys[*i]).is_some_and(|s| s.0))
                .map(|i| state.nodes[*i].name.as_str())
                .collect();
            if active.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for the faulty nodes of {stage} to be decommissioned; \
                     still active at height {}: {}",
                    v.height,
                    active.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        note(
            start,
            format!("the faulty nodes of {stage} are decommissioned"),
        );
    }
    // The target swarm must be gone.
    let v = view("reference", &rpc).await.context("service node list")?;
    let ids: BTreeSet<u64> = v.nodes.values().filter(|s| s.0).map(|s| s.1).collect();
    if ids.contains(&target) {
        bail!("swarm {target:x} was not dissolved (swarms now: {ids:x?})");
    }
    note(
        start,
        format!(
            "swarm {target:x} dissolved at height {}; {} swarms remain",
            v.height,
            ids.len()
        ),
    );
    let check = |what: &str| -> anyhow::Result<bool> {
        let missing = all_held(&client, &rpc, &accounts)?;
        if missing.is_empty() {
            note(
                start,
                format!("{what}: every member of each account's swarm holds all {total} messages"),
            );
            return Ok(true);
        }
        if Instant::now() > deadline {
            bail!("{what}: messages missing: {}", missing.join("; "));
        }
        Ok(false)
    };
    while !check("after the dissolution")? {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    // A deregistered node stays out; the others come back healthy.
    let faulty: Vec<usize> = faulty.into_iter().filter(|i| !gone.contains(i)).collect();
    for &i in &faulty {
        let n = &mut state.nodes[i];
        if let Some(pid) = n.pid.take() {
            stop(pid);
        }
        n.dev_faults.clear();
        n.pid = Some(spawn(&sispopd, n, &state.miner_address)?);
    }
    save(dir, &state)?;
    note(start, format!("restarted {} node(s) healthy", faulty.len()));
    loop {
        let v = view("reference", &rpc).await;
        let back = |v: &crate::scenario::View| {
            keys.iter()
                .filter(|(i, _)| !gone.contains(*i))
                .all(|(_, k)| v.nodes.get(k).is_some_and(|s| s.0))
        };
        if v.as_ref().is_some_and(back) {
            break;
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for the faulty nodes to be recommissioned");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let v = view("reference", &rpc).await.context("service node list")?;
    let ids: BTreeSet<u64> = v.nodes.values().filter(|s| s.0).map(|s| s.1).collect();
    note(
        start,
        format!(
            "all recommissioned at height {}; {} swarms",
            v.height,
            ids.len()
        ),
    );
    while !check("after the swarms re-formed")? {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    println!(
        "dissolve scenario passed in {:.0} s: no message lost",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
