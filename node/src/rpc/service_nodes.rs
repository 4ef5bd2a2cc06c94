//! Service node RPC methods with oxend names and fields: `get_service_nodes` (aliases
//! `get_n_service_nodes`, `get_all_service_nodes`), `get_service_node_status`,
//! `get_staking_requirement`, `get_service_keys` (`get_service_node_key`),
//! `get_service_node_registration_cmd(_raw)`, `get_service_node_blacklisted_key_images`, and
//! `get_swarm` (`get_snodes_for_pubkey`).

use jsonrpsee::RpcModule;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sispop_chain::{Address, Height, PublicKey};
use sispop_staking::build::sign_registration;
use sispop_staking::command::{format_command, percent_to_basis_points};
use sispop_staking::rules::check_registration_terms;
use sispop_staking::{staking_requirement, ServiceNodeInfo};
use sispop_swarm::{swarm_for_pubkey, UNASSIGNED_SWARM_ID};
use sispop_testing::{NewState, ProofRecord};

use crate::node::Node;
use crate::rpc::{invalid, parse, RpcResult};

/// The x25519 key of a primary (= Ed25519) key.
fn x25519_of(pk: &PublicKey) -> String {
    curve25519_dalek::edwards::CompressedEdwardsY(pk.0)
        .decompress()
        .map(|p| hex::encode(p.to_montgomery().to_bytes()))
        .unwrap_or_default()
}

/// The fields of `get_service_nodes` that come from this node's observations (proofs, probes).
fn observed(rec: Option<&ProofRecord>) -> Value {
    let proof = rec.and_then(|r| r.proof.as_ref());
    let q = rec.map(|r| r.quorumnet).unwrap_or_default();
    let ring = |f: fn(&ProofRecord) -> &Vec<(u64, bool)>, key: &str| -> Value {
        rec.map_or_else(Vec::new, |r| {
            f(r).iter()
                .map(|(_, ok)| json!({ key: ok }))
                .collect::<Vec<_>>()
        })
        .into()
    };
    json!({
        "last_uptime_proof": rec.map_or(0, |r| r.received),
        "public_ip": proof.map_or_else(|| "0.0.0.0".to_owned(), |p| p.public_ip.to_string()),
        "storage_port": proof.map_or(0, |p| p.storage_https_port),
        "storage_lmq_port": proof.map_or(0, |p| p.storage_omq_port),
        "quorumnet_port": proof.map_or(0, |p| p.quorumnet_port),
        "service_node_version": proof.map_or([0; 3], |p| p.version),
        "storage_server_version": proof.map_or([0; 3], |p| p.storage_version),
        "lokinet_version": proof.map_or([0; 3], |p| p.lokinet_version),
        // No storage test exists yet (issue 9): upstream's default with no reports.
        "storage_server_reachable": true,
        "storage_server_first_unreachable": 0,
        "storage_server_last_unreachable": 0,
        "storage_server_last_reachable": 0,
        "lokinet_reachable": true,
        "lokinet_first_unreachable": 0,
        "lokinet_last_unreachable": 0,
        "lokinet_last_reachable": 0,
        "quorumnet_reachable": q.first_unreachable == 0,
        "quorumnet_first_unreachable": q.first_unreachable,
        "quorumnet_last_unreachable": q.last_unreachable,
        "quorumnet_last_reachable": q.last_reachable,
        "checkpoint_participation": [],
        "pulse_participation": [],
        "timestamp_participation": ring(|r| &r.timestamp_participation.entries, "participated"),
        "timesync_status": ring(|r| &r.timesync.entries, "in_sync"),
    })
}

/// One `service_node_states` entry.
pub fn entry(
    node: &Node,
    pk: &PublicKey,
    n: &ServiceNodeInfo,
    height: Height,
    rec: Option<&ProofRecord>,
) -> Value {
    let p = node.params;
    let state_height = if n.is_decommissioned() {
        n.last_decommission_height.0
    } else {
        n.active_since_height.max(0) as u64
    };
    let mut v = json!({
        "service_node_pubkey": pk.to_hex(),
        "registration_height": n.registration_height.0,
        "registration_hf_version": n.registration_hf_version,
        "requested_unlock_height": n.requested_unlock_height.0,
        "last_reward_block_height": n.last_reward_block_height.0,
        "last_reward_transaction_index": n.last_reward_transaction_index,
        "active": n.is_active(),
        "funded": n.is_funded(),
        "state_height": state_height,
        "decommission_count": n.decommission_count,
        "last_decommission_reason_consensus_all": n.last_decommission_reason_consensus_all,
        "last_decommission_reason_consensus_any": n.last_decommission_reason_consensus_any,
        "earned_downtime_blocks": n.decommission_credit(height, &p.sn),
        "contributors": n.contributors.iter().map(|c| json!({
            "amount": c.amount.0,
            "reserved": c.reserved.0,
            "address": c.address.to_string(p),
            "locked_contributions": c.locked_contributions.iter().map(|l| json!({
                "key_image": l.key_image.to_hex(),
                "key_image_pub_key": l.key_image_pub_key.to_hex(),
                "amount": l.amount.0,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "total_contributed": n.total_contributed.0,
        "total_reserved": n.total_reserved.0,
        "staking_requirement": n.staking_requirement.0,
        "portions_for_operator": n.portions_for_operator,
        "operator_fee": n.fee,
        "swarm_id": n.swarm_id,
        "swarm": format!("{:x}", n.swarm_id),
        "operator_address": n.operator_address.to_string(p),
        "pubkey_ed25519": pk.to_hex(),
        "pubkey_x25519": x25519_of(pk),
        "last_ip_change_height": n.last_ip_change_height.0,
    });
    if let (Value::Object(o), Value::Object(more)) = (&mut v, observed(rec)) {
        o.extend(more);
    }
    v
}

fn filter_fields(v: Value, fields: &Option<Map<String, Value>>) -> Value {
    let (Some(f), Value::Object(obj)) = (fields, &v) else {
        return v;
    };
    if f.is_empty() {
        return v;
    }
    Value::Object(
        obj.iter()
            .filter(|(k, _)| f.get(*k).and_then(Value::as_bool).unwrap_or(false))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[derive(Deserialize, Default)]
struct GetServiceNodes {
    #[serde(default)]
    service_node_pubkeys: Vec<String>,
    #[serde(default)]
    active_only: bool,
    #[serde(default)]
    limit: i64,
    fields: Option<Map<String, Value>>,
    poll_block_hash: Option<String>,
}

/// `get_service_nodes` with JSON params (null for none), for the storage server's
/// `oxend_request`: the result, or the error message.
pub fn get_service_nodes_json(node: &Node, params: &Value) -> Result<Value, String> {
    let p: GetServiceNodes = if params.is_null() {
        GetServiceNodes::default()
    } else {
        serde_json::from_value(params.clone()).map_err(|e| format!("invalid params: {e}"))?
    };
    get_service_nodes(node, p).map_err(|e| e.message().to_owned())
}

fn get_service_nodes(node: &Node, p: GetServiceNodes) -> RpcResult {
    if p.service_node_pubkeys.len() > 10_000 {
        return Err(invalid("too many service_node_pubkeys"));
    }
    let st = node.lock();
    let (height, hash) = st.chain.tip();
    let mut out = json!({
        "status": "OK",
        "height": height.0,
        "target_height": height.0,
        "block_hash": hash.to_hex(),
        "hardfork": node.params.hard_fork_at(height),
        "snode_revision": 0,
    });
    if p.poll_block_hash.as_deref() == Some(hash.to_hex().as_str()) {
        out["unchanged"] = json!(true);
        return Ok(out);
    }
    let state = st.chain.ext().state();
    let acct = node.acct();
    let wanted: std::collections::HashSet<PublicKey> = p
        .service_node_pubkeys
        .iter()
        .map(|s| {
            PublicKey::from_hex(s)
                .ok_or_else(|| invalid(format!("{s} is not a 64-hex service node pubkey")))
        })
        .collect::<Result<_, _>>()?;
    let mut entries: Vec<Value> = state
        .nodes
        .iter()
        .filter(|(pk, n)| {
            (wanted.is_empty() || wanted.contains(pk)) && (!p.active_only || n.is_active())
        })
        .map(|(pk, n)| filter_fields(entry(node, pk, n, height, acct.book.get(pk)), &p.fields))
        .collect();
    if p.limit > 0 && entries.len() > p.limit as usize {
        // A random sample, as oxend gives.
        use rand::seq::SliceRandom;
        entries.shuffle(&mut rand::rngs::OsRng);
        entries.truncate(p.limit as usize);
    }
    out["service_node_states"] = Value::Array(entries);
    Ok(out)
}

#[derive(Deserialize, Default)]
struct HeightParam {
    height: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Contribution {
    address: String,
    amount: u64,
}

#[derive(Deserialize, Default)]
struct RegistrationCmd {
    operator_cut: Option<String>,
    #[serde(default)]
    contributions: Vec<Contribution>,
}

#[derive(Deserialize, Default)]
struct RegistrationCmdRaw {
    #[serde(default)]
    args: Vec<String>,
}

/// Signs a registration with this node's key after checking its terms.
fn registration_cmd(node: &Node, fee: u64, spots: Vec<(Address, u64)>) -> RpcResult {
    let st = node.lock();
    let keys = st
        .sn_keys
        .as_ref()
        .ok_or_else(|| invalid("this daemon is not running with --service-node"))?;
    let next = Height(st.chain.tip().0 .0 + 1);
    let req = staking_requirement(node.params, next).0;
    check_registration_terms(req, fee, &spots).map_err(|e| invalid(e.to_string()))?;
    let reg = sign_registration(
        &mut rand::rngs::OsRng,
        &keys.primary_secret,
        fee,
        &spots,
        node.params.hard_fork_at(next),
    );
    Ok(
        json!({"status": "OK", "registration_cmd": format_command(&reg, &keys.primary, node.params)}),
    )
}

fn swarm_of(node: &Node, pubkey: &str) -> RpcResult {
    let bytes = hex::decode(pubkey).map_err(|_| invalid("pubkey must be hex"))?;
    // Checks the length: 33 bytes, or a bare 32-byte key.
    swarm_for_pubkey(&[], &bytes).map_err(|e| invalid(e.to_string()))?;
    let st = node.lock();
    let state = st.chain.ext().state();
    let ids = node.sn_directory(&st).swarm_ids();
    let Some(swarm) = swarm_for_pubkey(&ids, &bytes).ok().flatten() else {
        return Ok(json!({"snodes": [], "swarm": format!("{:x}", UNASSIGNED_SWARM_ID)}));
    };
    let snodes: Vec<Value> = state
        .active()
        .filter(|(_, n)| n.swarm_id == swarm)
        .map(|(pk, _)| json!({"pubkey_legacy": pk.to_hex(), "pubkey_ed25519": pk.to_hex(), "pubkey_x25519": x25519_of(pk)}))
        .collect();
    Ok(
        json!({"snodes": snodes, "swarm": format!("{swarm:x}"), "hf": node.params.hard_fork_at(st.chain.tip().0)}),
    )
}

#[derive(Deserialize, Default)]
struct QuorumStateParams {
    start_height: Option<u64>,
    end_height: Option<u64>,
    quorum_type: Option<u8>,
}

/// Most heights one `get_quorum_state` call may span (as oxend).
const MAX_QUORUM_HEIGHTS: u64 = 256;

/// `get_quorum_state`: obligations quorums of the heights this node still holds (the vote
/// window; Sispop's chain has no checkpointing, blink or pulse quorums).
fn quorum_state(node: &Node, p: QuorumStateParams) -> RpcResult {
    let st = node.lock();
    let tip = st.chain.tip().0 .0;
    // As oxend: no heights means the tip; one of the two means that single height.
    let start = p.start_height.or(p.end_height).unwrap_or(tip);
    let end = p.end_height.unwrap_or(start);
    let (lo, hi) = (start.min(end), start.max(end));
    if hi - lo >= MAX_QUORUM_HEIGHTS {
        return Err(invalid(format!(
            "at most {MAX_QUORUM_HEIGHTS} heights per request"
        )));
    }
    let ty = p.quorum_type.unwrap_or(255);
    if !matches!(ty, 0..=3 | 255) {
        return Err(invalid(format!("quorum_type {ty} is not 0-3 or 255 (all)")));
    }
    let mut quorums = Vec::new();
    if ty == 0 || ty == 255 {
        let state = st.chain.ext().state();
        let mut list: Vec<Value> = state
            .quorums
            .range(Height(lo)..=Height(hi))
            .map(|(h, q)| {
                json!({
                    "height": h.0,
                    "quorum_type": 0,
                    "quorum": {
                        "validators": q.validators.iter().map(PublicKey::to_hex).collect::<Vec<_>>(),
                        "workers": q.workers.iter().map(PublicKey::to_hex).collect::<Vec<_>>(),
                    }
                })
            })
            .collect();
        if start > end {
            list.reverse();
        }
        quorums = list;
    }
    Ok(json!({"status": "OK", "quorums": quorums, "untrusted": false}))
}

#[derive(Deserialize, Default)]
struct StateChangesParams {
    start_height: Option<u64>,
    end_height: Option<u64>,
}

/// Most blocks one `get_service_nodes_state_changes` call scans.
const MAX_STATE_CHANGE_SCAN: u64 = 100_000;

/// `get_service_nodes_state_changes`: totals of state changes and unlocks in a height range.
fn state_changes(node: &Node, p: StateChangesParams) -> RpcResult {
    use sispop_chain::extra::parse_extra;
    use sispop_chain::{Block, Transaction, TxType};
    let tip = node.lock().chain.tip().0 .0;
    let start = p.start_height.unwrap_or(0);
    let end = p.end_height.unwrap_or(tip).min(tip);
    if start > end {
        return Err(invalid("start_height is above end_height or the chain"));
    }
    if end - start >= MAX_STATE_CHANGE_SCAN {
        return Err(invalid(format!(
            "at most {MAX_STATE_CHANGE_SCAN} blocks per request"
        )));
    }
    let mut totals = [0u64; 4];
    let mut unlocks = 0u64;
    for h in start..=end {
        // The lock is taken per block so a long scan does not stall the node.
        let st = node.lock();
        let Ok(Some((_, _, blob))) = st.chain.block_at(Height(h)) else {
            continue;
        };
        let Ok(block) = Block::from_bytes(&blob) else {
            continue;
        };
        for th in &block.tx_hashes {
            let Some((_, _, tb)) = st.chain.store().tx(th).ok().flatten() else {
                continue;
            };
            let Ok(tx) = Transaction::from_bytes(&tb) else {
                continue;
            };
            match tx.tx_type {
                TxType::KeyImageUnlock => unlocks += 1,
                TxType::StateChange => {
                    let fields = parse_extra(&tx.extra).unwrap_or_default();
                    if let Some(s) = sispop_staking::list::state_change_field(&fields)
                        .and_then(|sc| NewState::from_u64(sc.state))
                    {
                        totals[s as usize] += 1;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(json!({
        "status": "OK",
        "start_height": start,
        "end_height": end,
        "total_deregister": totals[NewState::Deregister as usize],
        "total_decommission": totals[NewState::Decommission as usize],
        "total_recommission": totals[NewState::Recommission as usize],
        "total_ip_change_penalty": totals[NewState::IpChangePenalty as usize],
        "total_unlock": unlocks,
        "untrusted": false,
    }))
}

/// Registers the service node methods.
pub fn register(m: &mut RpcModule<Node>) {
    m.register_blocking_method("get_quorum_state", |p, node, _| {
        quorum_state(&node, parse(&p)?)
    })
    .expect("registered once");
    m.register_blocking_method("get_service_nodes_state_changes", |p, node, _| {
        state_changes(&node, parse(&p)?)
    })
    .expect("registered once");
    for name in [
        "get_service_nodes",
        "get_n_service_nodes",
        "get_all_service_nodes",
    ] {
        m.register_blocking_method(name, |p, node, _| get_service_nodes(&node, parse(&p)?))
            .expect("registered once");
    }
    m.register_blocking_method("get_service_node_status", |_p, node, _| -> RpcResult {
        let st = node.lock();
        let keys = st
            .sn_keys
            .clone()
            .ok_or_else(|| invalid("this daemon is not running with --service-node"))?;
        let height = st.chain.tip().0;
        let e = match st.chain.ext().state().nodes.get(&keys.primary) {
            Some(n) => {
                let mut e = entry(
                    &node,
                    &keys.primary,
                    n,
                    height,
                    node.acct().book.get(&keys.primary),
                );
                e["registered"] = json!(true);
                e
            }
            None => json!({"service_node_pubkey": keys.primary.to_hex(), "registered": false}),
        };
        Ok(json!({"status": "OK", "service_node_state": e, "height": height.0}))
    })
    .expect("registered once");
    m.register_blocking_method("get_staking_requirement", |p, node, _| -> RpcResult {
        let HeightParam { height } = parse(&p)?;
        let h = height.unwrap_or_else(|| node.lock().chain.tip().0 .0 + 1);
        Ok(json!({"status": "OK", "height": h, "staking_requirement": staking_requirement(node.params, Height(h)).0}))
    })
    .expect("registered once");
    for name in ["get_service_keys", "get_service_node_key"] {
        m.register_blocking_method(name, |_p, node, _| -> RpcResult {
            let keys = node
                .lock()
                .sn_keys
                .clone()
                .ok_or_else(|| invalid("this daemon is not running with --service-node"))?;
            Ok(json!({
                "status": "OK",
                "service_node_pubkey": keys.primary.to_hex(),
                "service_node_ed25519_pubkey": keys.ed25519.to_hex(),
                "service_node_x25519_pubkey": hex::encode(keys.x25519),
            }))
        })
        .expect("registered once");
    }
    m.register_blocking_method(
        "get_service_node_registration_cmd",
        |p, node, _| -> RpcResult {
            let RegistrationCmd {
                operator_cut,
                contributions,
            } = parse(&p)?;
            let fee = percent_to_basis_points(operator_cut.as_deref().unwrap_or("100%"))
                .map_err(|e| invalid(e.to_string()))?;
            let spots = contributions
                .iter()
                .map(|c| {
                    Address::parse(&c.address, node.params)
                        .map(|a| (a, c.amount))
                        .map_err(|e| invalid(format!("{}: {e}", c.address)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            registration_cmd(&node, fee, spots)
        },
    )
    .expect("registered once");
    m.register_blocking_method(
        "get_service_node_registration_cmd_raw",
        |p, node, _| -> RpcResult {
            let RegistrationCmdRaw { args } = parse(&p)?;
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err(invalid(
                    "args: [<operator cut %>, <address>, <amount>, ...]",
                ));
            }
            let fee = percent_to_basis_points(&args[0]).map_err(|e| invalid(e.to_string()))?;
            let mut spots = Vec::new();
            for pair in args[1..].chunks(2) {
                let a = Address::parse(&pair[0], node.params)
                    .map_err(|e| invalid(format!("{}: {e}", pair[0])))?;
                let amt: u64 = pair[1]
                    .parse()
                    .map_err(|_| invalid(format!("{} is not an atomic amount", pair[1])))?;
                spots.push((a, amt));
            }
            registration_cmd(&node, fee, spots)
        },
    )
    .expect("registered once");
    m.register_blocking_method("get_service_node_blacklisted_key_images", |_p, node, _| -> RpcResult {
        let st = node.lock();
        let list: Vec<Value> = st
            .chain
            .ext()
            .state()
            .blacklist
            .iter()
            .map(|b| json!({"key_image": b.key_image.to_hex(), "unlock_height": b.unlock_height.0, "amount": b.amount.0}))
            .collect();
        Ok(json!({"status": "OK", "blacklist": list}))
    })
    .expect("registered once");
    for name in ["get_swarm", "get_snodes_for_pubkey"] {
        m.register_blocking_method(name, |p, node, _| -> RpcResult {
            #[derive(Deserialize, Default)]
            struct P {
                pubkey: Option<String>,
            }
            let P { pubkey } = parse(&p)?;
            swarm_of(&node, &pubkey.ok_or_else(|| invalid("pubkey is required"))?)
        })
        .expect("registered once");
    }
}
