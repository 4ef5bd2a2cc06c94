//! Conformance interface: reads `{"seed": u64, "swarms": {"<id>": ["<pubkey hex>", ...]}}` on
//! stdin, applies `calc_swarm_changes`, prints the resulting map in the same shape.

use std::io::Read;
use std::process::ExitCode;

use serde_json::{Map, Value};
use sispop_swarm::{calc_swarm_changes, SwarmMap};

fn run() -> Result<String, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let doc: Value = serde_json::from_str(&input).map_err(|e| format!("input is not JSON: {e}"))?;
    let seed = doc
        .get("seed")
        .and_then(Value::as_u64)
        .ok_or("\"seed\" must be an unsigned 64-bit integer")?;
    let swarms = doc
        .get("swarms")
        .and_then(Value::as_object)
        .ok_or("\"swarms\" must be an object of swarm id -> pubkey list")?;
    let mut map: SwarmMap<String> = SwarmMap::new();
    let mut seen = std::collections::HashSet::new();
    for (id, members) in swarms {
        let id: u64 = id
            .parse()
            .map_err(|_| format!("swarm id {id:?} is not a decimal u64"))?;
        let members = members
            .as_array()
            .ok_or_else(|| format!("members of swarm {id} must be a list"))?;
        let mut list = Vec::with_capacity(members.len());
        for m in members {
            let pk = m
                .as_str()
                .ok_or_else(|| format!("member of swarm {id} is not a string"))?;
            if pk.is_empty() || hex::decode(pk).is_err() {
                return Err(format!("member {pk:?} of swarm {id} is not a hex pubkey"));
            }
            if !seen.insert(pk.to_owned()) {
                return Err(format!("pubkey {pk} appears more than once"));
            }
            list.push(pk.to_owned());
        }
        map.insert(id, list);
    }
    let out = calc_swarm_changes(map, seed);
    let mut obj = Map::new();
    for (id, members) in out {
        obj.insert(id.to_string(), Value::from(members));
    }
    let mut doc = Map::new();
    doc.insert("seed".into(), Value::from(seed));
    doc.insert("swarms".into(), Value::Object(obj));
    serde_json::to_string(&Value::Object(doc)).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
