//! `sispopd <command>`: console commands forwarded to a running daemon over its RPC, printed
//! the way the C++ daemon prints them.

pub mod register;

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;

/// Commands this build knows, with a one-line description.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "status",
        "one-line summary: height, network, mining, connections, uptime",
    ),
    ("print_height", "the current block count"),
    (
        "print_block <height|hash>",
        "a block header and its transactions",
    ),
    ("print_pool", "hashes of pooled transactions"),
    ("version", "the daemon's version"),
    ("print_sn_key", "this service node's public keys"),
    ("print_sn_status", "this service node's registration record"),
    ("print_sn [<pubkey> ...]", "registered service nodes"),
    ("print_sr <height>", "the staking requirement at a height"),
    (
        "print_quorum_state [<height>]",
        "the obligations quorum at a height (default: the tip)",
    ),
    (
        "prepare_registration",
        "interactively build the register_service_node command",
    ),
    ("stop_daemon | exit", "stop the daemon"),
    ("help", "this list"),
];

/// Why a console command failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The daemon could not be reached or answered an error.
    #[error("daemon at {0}: {1}")]
    Rpc(String, String),
    /// Unknown command or bad arguments.
    #[error("{0}")]
    Usage(String),
}

fn client(url: &str) -> Result<HttpClient, ConsoleError> {
    HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(30))
        .build(format!("{}/json_rpc", url.trim_end_matches('/')))
        .map_err(|e| ConsoleError::Rpc(url.to_owned(), e.to_string()))
}

async fn call(url: &str, method: &str, params: ObjectParams) -> Result<Value, ConsoleError> {
    client(url)?
        .request::<Value, _>(method, params)
        .await
        .map_err(|e| ConsoleError::Rpc(url.to_owned(), e.to_string()))
}

/// Formats a duration as `Xd Yh Zm Ws`.
pub fn uptime(secs: u64) -> String {
    format!(
        "{}d {}h {}m {}s",
        secs / 86_400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn hashrate(h: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s"];
    let mut v = h;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.2} {}", units[i])
}

/// The upstream `status` line from a `get_info` answer.
pub fn status_line(info: &Value) -> String {
    let height = info["height"].as_u64().unwrap_or(0);
    let target = info["target_height"].as_u64().unwrap_or(height).max(height);
    let pct = if target == 0 {
        100.0
    } else {
        height as f64 * 100.0 / target as f64
    };
    let diff = info["difficulty"].as_u64().unwrap_or(0) as f64;
    let block_time = info["target"].as_u64().unwrap_or(120).max(1) as f64;
    let mining = if info["mining"].as_bool().unwrap_or(false) {
        "mining"
    } else {
        "not mining"
    };
    format!(
        "Height: {}/{} ({:.1}%) on {}, {}, net hash {}, v{}(net v{}), up to date, {}(out)+{}(in) connections, uptime {}",
        height,
        target,
        pct,
        info["nettype"].as_str().unwrap_or("mainnet"),
        mining,
        hashrate(diff / block_time),
        info["version"].as_str().unwrap_or("?"),
        info["hard_fork"].as_u64().unwrap_or(0),
        info["outgoing_connections_count"].as_u64().unwrap_or(0),
        info["incoming_connections_count"].as_u64().unwrap_or(0),
        uptime(info["uptime"].as_u64().unwrap_or(0)),
    )
}

/// Amount in coins with 9 decimals.
pub fn coins(atomic: u64) -> String {
    sispop_chain::Atomic(atomic).to_string()
}

/// The `SN:` line of `status`.
pub fn sn_status_line(e: &Value) -> String {
    let pk = e["service_node_pubkey"].as_str().unwrap_or("?");
    let state = if !e["registered"].as_bool().unwrap_or(false) {
        "not registered".to_owned()
    } else if e["active"].as_bool().unwrap_or(false) {
        "active".to_owned()
    } else if e["funded"].as_bool().unwrap_or(false) {
        format!(
            "DECOMMISSIONED ({} blocks credit)",
            e["earned_downtime_blocks"].as_i64().unwrap_or(0)
        )
    } else {
        "awaiting".to_owned()
    };
    let proof = match e["last_uptime_proof"].as_u64().unwrap_or(0) {
        0 => "NOT RECEIVED".to_owned(),
        t => format!("{} ago", uptime(now_secs().saturating_sub(t))),
    };
    // Storage and relay run inside this daemon, so there are no companion pings to report.
    format!("SN: {pk} {state}, proof: {proof}, last pings: in-process (storage), n/a (sispopnet)")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The observations part of `print_sn_status`: proof, addresses, probe results.
fn sn_observations(e: &Value) -> String {
    let u = |k: &str| e[k].as_u64().unwrap_or(0);
    let ago = |t: u64| {
        if t == 0 {
            "never".to_owned()
        } else {
            format!("{} ago", uptime(now_secs().saturating_sub(t)))
        }
    };
    let ver = |k: &str| {
        e[k].as_array()
            .map(|v| {
                v.iter()
                    .map(|x| x.as_u64().unwrap_or(0).to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .unwrap_or_else(|| "?".into())
    };
    let ring = |k: &str, f: &str| {
        let v = e[k].as_array().cloned().unwrap_or_default();
        let ok = v.iter().filter(|x| x[f].as_bool().unwrap_or(false)).count();
        format!("{ok}/{}", v.len())
    };
    format!(
        "Last Uptime Proof Received: {}\nIP Address & Ports: {} : {} (storage), {} (quorumnet)\nVersions: sispopd {}, storage {}\nReachable over the node network: {} (last reachable {}, unreachable since {})\nTimestamp Participation: {} answered, Time Sync: {} in sync\n",
        ago(u("last_uptime_proof")),
        e["public_ip"].as_str().unwrap_or("?"),
        u("storage_port"),
        u("quorumnet_port"),
        ver("service_node_version"),
        ver("storage_server_version"),
        if e["quorumnet_reachable"].as_bool().unwrap_or(true) { "yes" } else { "NO" },
        ago(u("quorumnet_last_reachable")),
        ago(u("quorumnet_first_unreachable")),
        ring("timestamp_participation", "participated"),
        ring("timesync_status", "in_sync"),
    )
}

/// A readable service node record, as `print_sn_status` shows it.
pub fn sn_details(e: &Value, height: u64) -> String {
    let u = |k: &str| e[k].as_u64().unwrap_or(0);
    let unlock = u("requested_unlock_height");
    let mut s = String::new();
    s.push_str(&format!(
        "Service Node: {}\n",
        e["service_node_pubkey"].as_str().unwrap_or("?")
    ));
    s.push_str(&format!(
        "Current Height: {height}, Registration: {} (hf {})\n",
        u("registration_height"),
        u("registration_hf_version")
    ));
    if unlock == 0 {
        s.push_str("Expiry Info: Staking Infinitely (stake unlock not requested)\n");
    } else {
        s.push_str(&format!(
            "Expiry Info: Unlocks at height {unlock} (in {} blocks)\n",
            unlock.saturating_sub(height)
        ));
    }
    s.push_str(&format!(
        "Last Reward At (Height/TX Index): {}/{}\n",
        u("last_reward_block_height"),
        u("last_reward_transaction_index")
    ));
    s.push_str(&format!(
        "Operator Cut: {:.2}%\n",
        u("operator_fee") as f64 / 100.0
    ));
    s.push_str(&format!(
        "Operator Address: {}\n",
        e["operator_address"].as_str().unwrap_or("?")
    ));
    s.push_str(&format!(
        "Swarm: {}\n",
        if u("swarm_id") == u64::MAX {
            "(not in a swarm)".to_owned()
        } else {
            e["swarm"].as_str().unwrap_or("?").to_owned()
        }
    ));
    s.push_str(&format!(
        "Ed25519 Public Key: {}\nX25519 Public Key: {}\n",
        e["pubkey_ed25519"].as_str().unwrap_or("?"),
        e["pubkey_x25519"].as_str().unwrap_or("?")
    ));
    let state = if e["active"].as_bool().unwrap_or(false) {
        format!(
            "ACTIVE; Downtime Credits: {} blocks",
            e["earned_downtime_blocks"].as_i64().unwrap_or(0)
        )
    } else if e["funded"].as_bool().unwrap_or(false) {
        format!(
            "DECOMMISSIONED; Remaining Decommission Time Until DEREGISTRATION: {} blocks",
            e["earned_downtime_blocks"].as_i64().unwrap_or(0)
        )
    } else {
        "AWAITING CONTRIBUTIONS".to_owned()
    };
    s.push_str(&format!("Current Status: {state}\n"));
    if u("decommission_count") > 0 {
        s.push_str(&format!(
            "Decommissions: {}, last at height {} (reasons: {})\n",
            u("decommission_count"),
            u("state_height"),
            sispop_testing::decide::reason::names(
                u16::try_from(u("last_decommission_reason_consensus_any")).unwrap_or(u16::MAX)
            )
            .join(", ")
        ));
    }
    s.push_str(&sn_observations(e));
    s.push_str(&format!(
        "Total Contributed/Staking Requirement: {}/{} (reserved {})\n",
        coins(u("total_contributed")),
        coins(u("staking_requirement")),
        coins(u("total_reserved"))
    ));
    s.push_str("Contributors:\n");
    for (i, c) in e["contributors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        s.push_str(&format!(
            "    [{i}] {} contributed {} of {} reserved\n",
            c["address"].as_str().unwrap_or("?"),
            coins(c["amount"].as_u64().unwrap_or(0)),
            coins(c["reserved"].as_u64().unwrap_or(0))
        ));
    }
    s.trim_end().to_owned()
}

/// Runs one console command against the daemon at `url` and returns what to print.
pub async fn run(url: &str, words: &[String]) -> Result<String, ConsoleError> {
    let (cmd, rest) = words
        .split_first()
        .ok_or_else(|| ConsoleError::Usage("no command".into()))?;
    match cmd.as_str() {
        "status" => {
            let info = call(url, "get_info", ObjectParams::new()).await?;
            let mut out = status_line(&info);
            if info["service_node"].as_bool().unwrap_or(false) {
                let sn = call(url, "get_service_node_status", ObjectParams::new()).await?;
                out.push('\n');
                out.push_str(&sn_status_line(&sn["service_node_state"]));
            }
            Ok(out)
        }
        "print_sn_key" => {
            let k = call(url, "get_service_keys", ObjectParams::new()).await?;
            Ok(format!(
                "Service Node Public Key: {}\n     Ed25519 Public Key: {}\n      X25519 Public Key: {}",
                k["service_node_pubkey"].as_str().unwrap_or("?"),
                k["service_node_ed25519_pubkey"].as_str().unwrap_or("?"),
                k["service_node_x25519_pubkey"].as_str().unwrap_or("?")
            ))
        }
        "print_sr" => {
            let mut p = ObjectParams::new();
            if let Some(h) = rest.first() {
                let h: u64 = h
                    .parse()
                    .map_err(|_| ConsoleError::Usage("usage: print_sr <height>".into()))?;
                p.insert("height", h)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            }
            let v = call(url, "get_staking_requirement", p).await?;
            Ok(format!(
                "Staking Requirement: {}",
                coins(v["staking_requirement"].as_u64().unwrap_or(0))
            ))
        }
        "print_sn_status" => {
            let v = call(url, "get_service_node_status", ObjectParams::new()).await?;
            let e = &v["service_node_state"];
            if !e["registered"].as_bool().unwrap_or(false) {
                return Ok(format!(
                    "Service Node Unregistered State: {}",
                    e["service_node_pubkey"].as_str().unwrap_or("?")
                ));
            }
            Ok(sn_details(e, v["height"].as_u64().unwrap_or(0)))
        }
        "print_sn" => {
            let mut p = ObjectParams::new();
            p.insert("service_node_pubkeys", rest.to_vec())
                .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            let v = call(url, "get_service_nodes", p).await?;
            let height = v["height"].as_u64().unwrap_or(0);
            let states = v["service_node_states"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if states.is_empty() {
                return Ok("No service nodes are registered".into());
            }
            Ok(states
                .iter()
                .map(|e| sn_details(e, height))
                .collect::<Vec<_>>()
                .join("\n\n"))
        }
        "prepare_registration" => crate::console::register::prepare_registration(url).await,
        "print_quorum_state" => {
            let mut p = ObjectParams::new();
            if let Some(h) = rest.first() {
                let h: u64 = h.parse().map_err(|_| {
                    ConsoleError::Usage("usage: print_quorum_state [<height>]".into())
                })?;
                p.insert("start_height", h)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            }
            p.insert("quorum_type", 0)
                .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            let v = call(url, "get_quorum_state", p).await?;
            let qs = v["quorums"].as_array().cloned().unwrap_or_default();
            if qs.is_empty() {
                return Ok("No obligations quorum is held for that height (quorums are kept for the vote window only)".into());
            }
            Ok(serde_json::to_string_pretty(&qs[0]).unwrap_or_default())
        }
        "print_height" => {
            Ok(call(url, "get_block_count", ObjectParams::new()).await?["count"].to_string())
        }
        "version" => Ok(call(url, "get_info", ObjectParams::new()).await?["version"]
            .as_str()
            .unwrap_or("?")
            .to_owned()),
        "print_pool" => {
            let v = call(url, "get_transaction_pool_hashes", ObjectParams::new()).await?;
            let hashes: Vec<&str> = v["tx_hashes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Ok(if hashes.is_empty() {
                "Pool is empty".into()
            } else {
                hashes.join("\n")
            })
        }
        "print_block" => {
            let arg = rest
                .first()
                .ok_or_else(|| ConsoleError::Usage("usage: print_block <height|hash>".into()))?;
            let mut p = ObjectParams::new();
            if let Ok(h) = arg.parse::<u64>() {
                p.insert("height", h)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            } else {
                p.insert("hash", arg)
                    .map_err(|e| ConsoleError::Usage(e.to_string()))?;
            }
            let v = call(url, "get_block", p).await?;
            serde_json::to_string_pretty(&v["block_header"])
                .map_err(|e| ConsoleError::Usage(e.to_string()))
        }
        "stop_daemon" | "exit" => {
            call(url, "stop_daemon", ObjectParams::new()).await?;
            Ok("Stop signal sent".into())
        }
        "help" => Ok(COMMANDS
            .iter()
            .map(|(c, d)| format!("{c:<28} {d}"))
            .collect::<Vec<_>>()
            .join("\n")),
        other => Err(ConsoleError::Usage(format!(
            "unknown command '{other}'; try 'help'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_matches_upstream_shape() {
        let info = serde_json::json!({
            "height": 120, "target_height": 120, "nettype": "devnet", "difficulty": 1, "target": 2,
            "version": "0.1.0", "hard_fork": 19, "outgoing_connections_count": 0,
            "incoming_connections_count": 0, "uptime": 93_784, "mining": true
        });
        assert_eq!(
            status_line(&info),
            "Height: 120/120 (100.0%) on devnet, mining, net hash 0.50 H/s, v0.1.0(net v19), up to date, 0(out)+0(in) connections, uptime 1d 2h 3m 4s"
        );
    }
}
