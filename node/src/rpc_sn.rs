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

use crate::node::Node;
use crate::rpc::{invalid, parse, RpcResult};

/// The x25519 key of a primary (= Ed25519) key.
fn x25519_of(pk: &PublicKey) -> String {
    curve25519_dalek::edwards::CompressedEdwardsY(pk.0)
        .decompress()
        .map(|p| hex::encode(p.to_montgomery().to_bytes()))
        .unwrap_or_default()
}

/// One `service_node_states` entry.
pub fn entry(node: &Node, pk: &PublicKey, n: &ServiceNodeInfo, height: Height) -> Value {
    let p = node.params;
    let state_height = if n.is_decommissioned() {
        n.last_decommission_height.0
    } else {
        n.active_since_height.max(0) as u64
    };
    json!({
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
        "earned_downtime_blocks": n.decommission_credit(height),
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
    })
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
    let wanted: Vec<PublicKey> = p
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
        .map(|(pk, n)| filter_fields(entry(node, pk, n, height), &p.fields))
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
    let st = node.lock();
    let state = st.chain.ext().state();
    let mut ids: Vec<u64> = state
        .active()
        .map(|(_, n)| n.swarm_id)
        .filter(|id| *id != UNASSIGNED_SWARM_ID)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let swarm = swarm_for_pubkey(&ids, &bytes).map_err(|e| invalid(e.to_string()))?;
    let Some(swarm) = swarm else {
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

/// Registers the service node methods.
pub fn register(m: &mut RpcModule<Node>) {
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
                let mut e = entry(&node, &keys.primary, n, height);
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
