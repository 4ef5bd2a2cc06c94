//! The message format swarm members exchange (replication, catch-up, migration).

use crate::store::{Message, MAX_MESSAGE_BODY};

/// A message as swarm members send it to each other (replication, catch-up, migration):
/// `{"p": account hex, "n": namespace, "h": hash, "t": timestamp, "e": expiry, "d": base64}`.
pub fn message_to_json(m: &Message) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "p": crate::pubkey_hex(&m.pubkey),
        "n": m.namespace,
        "h": m.hash,
        "t": m.timestamp,
        "e": m.expiry,
        "d": base64::engine::general_purpose::STANDARD.encode(&m.data),
    })
}

/// Reads a message a peer sent, checking that its hash is the hash of its content and its body
/// within the size limit.
pub fn message_from_json(v: &serde_json::Value) -> Result<Message, String> {
    use base64::Engine;
    let pubkey = crate::UserPubkey::from_hex(v["p"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let namespace = v["n"]
        .as_i64()
        .and_then(|n| i16::try_from(n).ok())
        .ok_or("bad namespace")?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(v["d"].as_str().ok_or("missing data")?)
        .map_err(|_| "data is not base64")?;
    if data.len() > MAX_MESSAGE_BODY {
        return Err("message body over the size limit".into());
    }
    let hash = crate::message_hash(&pubkey, namespace, &data);
    if v["h"].as_str() != Some(hash.as_str()) {
        return Err("hash does not match the message".into());
    }
    Ok(Message {
        pubkey,
        namespace,
        hash,
        timestamp: v["t"].as_u64().ok_or("bad timestamp")?,
        expiry: v["e"].as_u64().ok_or("bad expiry")?,
        data,
    })
}

/// What a node signs to confirm that it holds pushed messages (so the node that handed them
/// over may drop its copies): a domain tag, then each hash followed by a newline, in the order
/// listed.
pub fn held_statement<'a>(hashes: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = b"sispop storage held\n".to_vec();
    for h in hashes {
        out.extend_from_slice(h.as_bytes());
        out.push(b'\n');
    }
    out
}
