//! `devnet scenario outage`: service nodes die, the network votes them out, some come back.
//!
//! The scenario SIGKILLs some service nodes (never the miner), optionally restarts some healthy
//! ones with `--dev-fault no-proofs`, `unreachable` or `drop-storage` (the last after storing
//! messages in their swarms; it must be decommissioned for storage), and polls every running node
//! until each affected node has
//! gone where it should: a killed node that is restarted with its original command line once it
//! is decommissioned must be recommissioned; a killed node left dead must be deregistered and
//! its key images blacklisted; a faulty node must be decommissioned (it is then restarted
//! healthy and recommissioned, so the devnet ends as it began, less the deregistered nodes).
//!
//! While it runs it checks that nodes at the same block hold the same service node list and
//! that no healthy node ever leaves the active set; at the end it reads every node's log for the
//! votes cast during the run, and fails if any went against a healthy node. It prints a
//! timeline and fails when a target of issue 8 is missed: decommissioned within 90 s of death
//! (or of the fault), recommissioned within 90 s of coming back, deregistered within 6 minutes
//! of death.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sispop_wallet::Daemon;

use crate::{alive, find_sispopd, kill, load, save, spawn, stop, NodeEntry};

/// One line of the timeline.
fn note(t: f64, line: String) {
    println!("+{t:6.1}s  {line}");
}

/// Options of `devnet scenario outage`.
#[derive(clap::Args, Debug)]
pub struct OutageOpts {
    /// Service nodes to SIGKILL (never the miner).
    #[arg(long, default_value_t = 2)]
    kill: usize,
    /// How many of the killed nodes to restart once they are decommissioned.
    #[arg(long, default_value_t = 1)]
    restart: usize,
    /// Healthy service nodes to restart with `--dev-fault no-proofs`.
    #[arg(long, default_value_t = 0)]
    no_proofs: usize,
    /// Healthy service nodes to restart with `--dev-fault unreachable`.
    #[arg(long, default_value_t = 0)]
    unreachable: usize,
    /// Healthy service nodes to restart with `--dev-fault drop-storage` (messages are stored
    /// in their swarms first, so that storage tests have something to ask for).
    #[arg(long, default_value_t = 0)]
    drop_storage: usize,
    /// Seconds the whole scenario may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Path of the sispopd binary.
    #[arg(long)]
    sispopd: Option<PathBuf>,
}

/// Seconds from death (or the fault) to decommission, and from a restart to recommission.
const STATE_CHANGE_TARGET: f64 = 90.0;
/// The reason bit of failed storage tests.
const STORAGE_REASON: u64 = sispop_testing::decide::reason::STORAGE as u64;
/// Seconds from death to deregistration.
const DEREG_TARGET: f64 = 360.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Killed, and restarted once decommissioned.
    KilledRestarted,
    /// Killed and left dead.
    KilledDead,
    /// Restarted with a `--dev-fault`, restarted healthy once decommissioned.
    Faulty(&'static str),
    /// Left alone: must stay active.
    Healthy,
}

/// One service node followed by the scenario.
struct Tracked {
    /// Index in devnet.json.
    index: usize,
    name: String,
    pubkey: String,
    role: Role,
    key_images: Vec<String>,
    /// When it died or got its fault (seconds since start).
    hit: Option<f64>,
    /// When it came back (restarted healthy).
    back: Option<f64>,
    decommissioned: Option<f64>,
    recommissioned: Option<f64>,
    deregistered: Option<f64>,
    blacklisted: Option<f64>,
}

impl Tracked {
    fn label(&self) -> String {
        format!(
            "{} ({}…)",
            self.name,
            &self.pubkey[..8.min(self.pubkey.len())]
        )
    }

    /// Whether its part of the scenario is over.
    fn done(&self) -> bool {
        match self.role {
            Role::KilledRestarted | Role::Faulty(_) => self.recommissioned.is_some(),
            Role::KilledDead => self.deregistered.is_some() && self.blacklisted.is_some(),
            Role::Healthy => true,
        }
    }
}

/// What a node says of a service node: (active, swarm id, decommission count, state height,
/// reasons of the last decommission).
pub(crate) type Seen = (bool, u64, u64, u64, u64);

/// What one node said.
pub(crate) struct View {
    pub(crate) name: String,
    pub(crate) height: u64,
    pub(crate) hash: String,
    /// pubkey → what it says of that service node.
    pub(crate) nodes: BTreeMap<String, Seen>,
}

pub(crate) async fn view(name: &str, url: &str) -> Option<View> {
    let d = Daemon::new(url).ok()?;
    let v = d.call("get_service_nodes", json!({})).await.ok()?;
    let mut nodes = BTreeMap::new();
    for e in v["service_node_states"].as_array()? {
        let u = |k: &str| e[k].as_u64().unwrap_or(0);
        nodes.insert(
            e["service_node_pubkey"].as_str()?.to_owned(),
            (
                e["active"].as_bool()?,
                u("swarm_id"),
                u("decommission_count"),
                u("state_height"),
                u("last_decommission_reason_consensus_any"),
            ),
        );
    }
    Some(View {
        name: name.to_owned(),
        height: v["height"].as_u64()?,
        hash: v["block_hash"].as_str()?.to_owned(),
        nodes,
    })
}

fn reason_names(bits: u64) -> String {
    let names: Vec<&str> = [
        (0x01, "uptime"),
        (0x02, "checkpoints"),
        (0x04, "pulse"),
        (0x08, "storage"),
        (0x10, "timecheck"),
        (0x20, "timesync"),
        (0x40, "lokinet"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n)
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The votes cast in a log since `offset`: (target pubkey, state) → count.
fn votes_in_log(path: &Path, offset: u64) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    let Ok(bytes) = std::fs::read(path) else {
        return out;
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    for line in String::from_utf8_lossy(&bytes[start..]).lines() {
        if !line.contains("vote cast") {
            continue;
        }
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(|v| v.trim_matches('"').to_owned())
        };
        if let (Some(node), Some(state)) = (field("node="), field("state=")) {
            *out.entry((node, state)).or_default() += 1;
        }
    }
    out
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Picks `n` nodes spread over `from`.
fn spread(from: &[usize], n: usize) -> Vec<usize> {
    if n == 0 || from.is_empty() {
        return Vec::new();
    }
    let step = from.len() / n;
    (0..n)
        .map(|i| from[(i * step + step / 2).min(from.len() - 1)])
        .collect()
}

pub async fn outage(dir: &Path, o: OutageOpts) -> anyhow::Result<()> {
    let sispopd = find_sispopd(o.sispopd.clone())?;
    let mut state = load(dir)?.context("no devnet; run `devnet up` first")?;
    if let Some(n) = state.nodes.iter().find(|n| !n.pid.is_some_and(alive)) {
        bail!("{} is not running; run `devnet up` first", n.name);
    }
    let sn_idx: Vec<usize> = (0..state.nodes.len())
        .filter(|i| state.nodes[*i].service_node)
        .collect();
    let candidates: Vec<usize> = sn_idx
        .iter()
        .copied()
        .filter(|i| !state.nodes[*i].mining)
        .collect();
    if o.restart > o.kill {
        bail!("--restart {} is more than --kill {}", o.restart, o.kill);
    }
    let faulty = o.no_proofs + o.unreachable + o.drop_storage;
    if o.kill + faulty > candidates.len() {
        bail!(
            "only {} service nodes can be hit (the miner is spared)",
            candidates.len()
        );
    }
    if sn_idx.len().saturating_sub(o.kill) < 8 {
        bail!("a quorum needs 7 live validators: keep at least 8 service nodes alive");
    }
    // Who is who, and everyone active to begin with.
    let reference = &state.nodes[sn_idx[0]];
    let start_view = view(&reference.name, &reference.rpc_url)
        .await
        .context("reading the service node list")?;
    let full = Daemon::new(&reference.rpc_url)?
        .call("get_service_nodes", json!({}))
        .await?;
    let hit = spread(&candidates, o.kill + faulty);
    let mut tracked = Vec::new();
    for &i in &sn_idx {
        let n = &state.nodes[i];
        let keys = Daemon::new(&n.rpc_url)?
            .call("get_service_keys", json!({}))
            .await?;
        let pubkey = keys["service_node_pubkey"]
            .as_str()
            .context("service node key")?
            .to_owned();
        if start_view.nodes.get(&pubkey).is_none_or(|s| !s.0) {
            bail!(
                "{} is not an active service node yet; wait and retry",
                n.name
            );
        }
        let key_images = full["service_node_states"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["service_node_pubkey"] == pubkey.as_str())
            })
            .and_then(|e| e["contributors"].as_array())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["locked_contributions"].as_array())
                    .flatten()
                    .filter_map(|l| l["key_image"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let role = match hit.iter().position(|h| *h == i) {
            Some(k) if k < o.restart => Role::KilledRestarted,
            Some(k) if k < o.kill => Role::KilledDead,
            Some(k) if k < o.kill + o.no_proofs => Role::Faulty("no-proofs"),
            Some(k) if k < o.kill + o.no_proofs + o.unreachable => Role::Faulty("unreachable"),
            Some(_) => Role::Faulty("drop-storage"),
            None => Role::Healthy,
        };
        tracked.push(Tracked {
            index: i,
            name: n.name.clone(),
            pubkey,
            role,
            key_images,
            hit: None,
            back: None,
            decommissioned: None,
            recommissioned: None,
            deregistered: None,
            blacklisted: None,
        });
    }
    let logs: Vec<(PathBuf, u64)> = state
        .nodes
        .iter()
        .map(|n| {
            let p = n.data_dir.join("sispopd.log");
            let len = log_len(&p);
            (p, len)
        })
        .collect();

    // Messages in the swarms of the nodes that will drop theirs, stored while they still work.
    let seeded = Instant::now();
    for t in tracked
        .iter()
        .filter(|t| t.role == Role::Faulty("drop-storage"))
    {
        crate::bench::seed_messages(dir, &state.nodes[t.index], 20).await?;
        println!("stored 20 messages in the swarm of {}", t.label());
    }
    if o.drop_storage > 0 {
        // Storage tests only ask for messages old enough to have reached the whole swarm.
        let age = Duration::from_millis(sispop_storage::storage_test::MIN_AGE_MS);
        tokio::time::sleep(age.saturating_sub(seeded.elapsed())).await;
    }
    // Clients keep storing there, as they would: a node is tested only on messages it
    // acknowledged since the swarms last changed, and the outage changes them.
    let traffic = {
        let nodes: Vec<NodeEntry> = tracked
            .iter()
            .filter(|t| t.role == Role::Faulty("drop-storage"))
            .map(|t| state.nodes[t.index].clone())
            .collect();
        let dir = dir.to_path_buf();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(8)).await;
                for n in &nodes {
                    let _ = crate::bench::seed_messages(&dir, n, 4).await;
                }
            }
        })
    };
    /// Stops the client traffic when the scenario ends, however it ends.
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _traffic = Abort(traffic);

    let start = Instant::now();
    let secs = |at: Instant| at.duration_since(start).as_secs_f64();
    println!(
        "outage scenario on {} service nodes at height {}",
        sn_idx.len(),
        start_view.height
    );
    for t in tracked.iter_mut() {
        match t.role {
            Role::KilledRestarted | Role::KilledDead => {
                let n = &mut state.nodes[t.index];
                if let Some(pid) = n.pid.take().and_then(|p| libc::pid_t::try_from(p).ok()) {
                    kill(pid, libc::SIGKILL);
                }
                t.hit = Some(secs(Instant::now()));
                note(
                    secs(Instant::now()),
                    format!(
                        "SIGKILL {}{}",
                        t.label(),
                        if t.role == Role::KilledRestarted {
                            ", to be restarted once decommissioned"
                        } else {
                            ", left dead"
                        }
                    ),
                );
            }
            Role::Faulty(fault) => {
                let n = &mut state.nodes[t.index];
                if let Some(pid) = n.pid.take() {
                    stop(pid);
                }
                n.dev_faults = vec![fault.into()];
                n.pid = Some(spawn(&sispopd, n, &state.miner_address)?);
                t.hit = Some(secs(Instant::now()));
                note(
                    secs(Instant::now()),
                    format!("restarted {} with --dev-fault {fault}", t.label()),
                );
            }
            Role::Healthy => {}
        }
    }
    save(dir, &state)?;

    let deadline = start + Duration::from_secs(o.timeout);
    let mut failures: Vec<String> = Vec::new();
    let mut last_height = 0;
    loop {
        let now = secs(Instant::now());
        let mut views = Vec::new();
        for n in state.nodes.iter().filter(|n| n.pid.is_some_and(alive)) {
            if let Some(v) = view(&n.name, &n.rpc_url).await {
                views.push(v);
            }
        }
        // Nodes at the same block must hold the same list.
        let mut by_hash: BTreeMap<&str, &View> = BTreeMap::new();
        for v in &views {
            match by_hash.get(v.hash.as_str()) {
                Some(w) if w.nodes != v.nodes => failures.push(format!(
                    "{} and {} hold different service node lists at height {}",
                    w.name, v.name, v.height
                )),
                Some(_) => {}
                None => {
                    by_hash.insert(&v.hash, v);
                }
            }
        }
        if let Some(h) = views.iter().map(|v| v.height).max() {
            last_height = h;
        }
        let everywhere = |pred: &dyn Fn(Option<&Seen>) -> bool, pk: &str| {
            !views.is_empty() && views.iter().all(|v| pred(v.nodes.get(pk)))
        };
        for t in tracked.iter_mut() {
            let pk = t.pubkey.clone();
            match t.role {
                Role::Healthy => {
                    if let Some(v) = views.iter().find(|v| v.nodes.get(&pk).is_none_or(|s| !s.0)) {
                        let msg = format!(
                            "healthy {} is not active on {} at height {}",
                            t.label(),
                            v.name,
                            v.height
                        );
                        if !failures.contains(&msg) {
                            note(now, format!("FAIL: {msg}"));
                            failures.push(msg);
                        }
                    }
                    continue;
                }
                _ if t.hit.is_none() => continue,
                _ => {}
            }
            let since_hit = |t: &Tracked| now - t.hit.unwrap_or(0.0);
            if t.decommissioned.is_none() && everywhere(&|s| s.is_some_and(|s| !s.0), &pk) {
                t.decommissioned = Some(now);
                let s = views[0].nodes.get(&pk).copied().unwrap_or_default();
                note(
                    now,
                    format!(
                        "{} decommissioned at height {} (reasons: {}) on all {} running nodes, {:.0} s after {}",
                        t.label(),
                        s.3,
                        reason_names(s.4),
                        views.len(),
                        since_hit(t),
                        if matches!(t.role, Role::Faulty(_)) { "its fault" } else { "its death" }
                    ),
                );
                if t.role == Role::Faulty("drop-storage") && s.4 & STORAGE_REASON == 0 {
                    failures.push(format!(
                        "{} was decommissioned without the storage reason",
                        t.label()
                    ));
                }
                if since_hit(t) > STATE_CHANGE_TARGET {
                    failures.push(format!(
                        "{} took {:.0} s to be decommissioned (target {STATE_CHANGE_TARGET} s)",
                        t.label(),
                        since_hit(t)
                    ));
                }
                if matches!(t.role, Role::KilledRestarted | Role::Faulty(_)) {
                    let n = &mut state.nodes[t.index];
                    if let Some(pid) = n.pid.take() {
                        stop(pid);
                    }
                    n.dev_faults.clear();
                    n.pid = Some(spawn(&sispopd, n, &state.miner_address)?);
                    save(dir, &state)?;
                    let back = secs(Instant::now());
                    t.back = Some(back);
                    note(
                        back,
                        format!("restarted {} with its original command line", t.label()),
                    );
                }
            }
            if let (Some(back), None) = (t.back, t.recommissioned) {
                if everywhere(&|s| s.is_some_and(|s| s.0), &pk) {
                    t.recommissioned = Some(now);
                    let h = views[0].nodes.get(&pk).map_or(0, |s| s.3);
                    note(
                        now,
                        format!(
                            "{} recommissioned at height {h} on all {} running nodes, {:.0} s after it came back",
                            t.label(),
                            views.len(),
                            now - back
                        ),
                    );
                    if now - back > STATE_CHANGE_TARGET {
                        failures.push(format!(
                            "{} took {:.0} s to be recommissioned (target {STATE_CHANGE_TARGET} s)",
                            t.label(),
                            now - back
                        ));
                    }
                }
            }
            if t.role == Role::KilledDead {
                if t.deregistered.is_none() && everywhere(&|s| s.is_none(), &pk) {
                    t.deregistered = Some(now);
                    note(
                        now,
                        format!(
                            "{} deregistered by height {} on all {} running nodes, {:.0} s after its death",
                            t.label(),
                            views.iter().map(|v| v.height).min().unwrap_or(0),
                            views.len(),
                            since_hit(t)
                        ),
                    );
                    if since_hit(t) > DEREG_TARGET {
                        failures.push(format!(
                            "{} took {:.0} s to be deregistered (target {DEREG_TARGET} s)",
                            t.label(),
                            since_hit(t)
                        ));
                    }
                }
                if t.deregistered.is_some() && t.blacklisted.is_none() {
                    let bl = Daemon::new(&state.nodes[sn_idx[0]].rpc_url)?
                        .call("get_service_node_blacklisted_key_images", json!({}))
                        .await
                        .unwrap_or(Value::Null);
                    let listed: BTreeSet<&str> = bl["blacklist"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|e| e["key_image"].as_str()).collect())
                        .unwrap_or_default();
                    if t.key_images.iter().all(|k| listed.contains(k.as_str())) {
                        t.blacklisted = Some(now);
                        note(
                            now,
                            format!(
                                "{}'s {} key image(s) are blacklisted",
                                t.label(),
                                t.key_images.len()
                            ),
                        );
                    }
                }
            }
        }
        if tracked.iter().all(Tracked::done) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<String> = tracked
                .iter()
                .filter(|t| !t.done())
                .map(|t| format!("{} ({:?})", t.label(), t.role))
                .collect();
            failures.push(format!(
                "timed out after {} s waiting for {}",
                o.timeout,
                missing.join(", ")
            ));
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Votes cast during the run, from every node's log.
    let mut votes: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (path, offset) in &logs {
        for (k, n) in votes_in_log(path, *offset) {
            *votes.entry(k).or_default() += n;
        }
    }
    println!("votes cast during the run (from the nodes' logs):");
    for t in &tracked {
        let mine: Vec<String> = votes
            .iter()
            .filter(|((pk, _), _)| *pk == t.pubkey)
            .map(|((_, s), n)| format!("{s} ×{n}"))
            .collect();
        if mine.is_empty() {
            continue;
        }
        println!("  {}: {}", t.label(), mine.join(", "));
        if t.role == Role::Healthy {
            failures.push(format!("healthy {} was voted against", t.label()));
        }
    }
    println!(
        "{} blocks during the run",
        last_height.saturating_sub(start_view.height)
    );
    if failures.is_empty() {
        println!(
            "outage scenario passed in {:.0} s: {} healthy service nodes stayed active and were never voted against",
            secs(Instant::now()),
            tracked.iter().filter(|t| t.role == Role::Healthy).count()
        );
        Ok(())
    } else {
        for f in &failures {
            println!("FAIL: {f}");
        }
        bail!("outage scenario failed ({} problems)", failures.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_distinct_nodes() {
        let from: Vec<usize> = (1..20).collect();
        let s = spread(&from, 3);
        assert_eq!(s.len(), 3);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        assert_eq!(spread(&from, 0), Vec::<usize>::new());
        assert_eq!(spread(&from[..2], 2), vec![1, 2]);
    }

    #[test]
    fn votes_are_read_from_log_lines() {
        let dir = std::env::temp_dir().join(format!("devnet-votes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("log");
        let old = "2026-01-01T00:00:00Z  INFO vote cast node=aa voter=bb quorum_height=1 state=\"deregister\"\n";
        let new = "2026-01-01T00:00:01Z  INFO vote cast node=aa voter=cc quorum_height=2 state=\"decommission\" reasons=[\"uptime\"] credit=100\nsomething else\n";
        std::fs::write(&p, format!("{old}{new}")).expect("write");
        let v = votes_in_log(&p, old.len() as u64);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[&("aa".to_owned(), "decommission".to_owned())], 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
