//! `devnet status`: a table of the nodes.

use std::path::Path;

use anyhow::bail;
use serde_json::json;
use sispop_wallet::Daemon;

use crate::{alive, info, load};

/// Prints one line per node: pid, state, height, top, peers, SN state, swarm, RPC.
pub async fn status(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = load(dir)? else {
        bail!("no devnet in {}; run `devnet up`", dir.display());
    };
    let sns = match Daemon::new(&state.nodes[0].rpc_url) {
        Ok(d) => d.call("get_service_nodes", json!({})).await.ok(),
        Err(_) => None,
    };
    println!(
        "{:<6} {:>8} {:<8} {:>7} {:<18} {:>5} {:<8} {:<18} {:<24}",
        "NAME", "PID", "STATE", "HEIGHT", "TOP", "PEERS", "SN", "SWARM", "RPC"
    );
    for n in &state.nodes {
        let running = n.pid.is_some_and(alive);
        let i = if running {
            info(&n.rpc_url).await.ok()
        } else {
            None
        };
        let (h, top, peers) = match &i {
            Some(i) => (
                i["height"].as_u64().map_or("?".into(), |h| h.to_string()),
                i["top_block_hash"]
                    .as_str()
                    .map_or("?".into(), |s| format!("{}…", &s[..s.len().min(16)])),
                (i["outgoing_connections_count"].as_u64().unwrap_or(0)
                    + i["incoming_connections_count"].as_u64().unwrap_or(0))
                .to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (sn_state, swarm) = if n.service_node && running {
            let keys = Daemon::new(&n.rpc_url)?
                .call("get_service_keys", json!({}))
                .await
                .ok();
            let pk = keys
                .and_then(|k| k["service_node_pubkey"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let e = sns.as_ref().and_then(|v| {
                v["service_node_states"].as_array().and_then(|a| {
                    a.iter()
                        .find(|e| e["service_node_pubkey"] == pk.as_str())
                        .cloned()
                })
            });
            match e {
                Some(e) if e["active"] == true => (
                    "active".to_owned(),
                    e["swarm"].as_str().unwrap_or("?").to_owned(),
                ),
                Some(e) if e["funded"] == true => ("decomm".to_owned(), "-".to_owned()),
                Some(_) => ("awaiting".to_owned(), "-".to_owned()),
                None => ("unreg".to_owned(), "-".to_owned()),
            }
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        let st = match (running, i.is_some()) {
            (true, true) => "running",
            (true, false) => "starting",
            _ => "stopped",
        };
        println!(
            "{:<6} {:>8} {:<8} {:>7} {:<18} {:>5} {:<8} {:<18} {:<24}",
            n.name,
            n.pid.map_or("-".into(), |p| p.to_string()),
            st,
            h,
            top,
            peers,
            sn_state,
            swarm,
            n.rpc_url
        );
    }
    Ok(())
}
