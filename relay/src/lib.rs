#![doc = include_str!("../README.md")]

pub mod client;
pub mod crypto;
pub mod hop;
mod hop_wire;

use serde_json::{Map, Value};

/// Largest onion payload accepted (10 MB, the upstream request body limit).
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// Why a combined payload was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Fewer than 4 bytes.
    #[error("payload shorter than its 4-byte length prefix")]
    NoLength,
    /// The length prefix runs past the end.
    #[error("payload claims a {claimed}-byte blob but only {available} bytes follow")]
    Truncated {
        /// Claimed blob length.
        claimed: usize,
        /// Bytes after the prefix.
        available: usize,
    },
    /// Too large.
    #[error("payload of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The trailing part is not a JSON object.
    #[error("payload metadata is not a JSON object: {0}")]
    BadJson(String),
}

/// A decoded layer: the opaque blob and its JSON routing metadata.
#[derive(Debug, PartialEq)]
pub struct Payload<'a> {
    /// The (usually encrypted) blob.
    pub blob: &'a [u8],
    /// Routing metadata.
    pub json: Map<String, Value>,
}

/// `LE u32 len(blob) ‖ blob ‖ json`.
pub fn encode_payload(blob: &[u8], json: &Map<String, Value>) -> Vec<u8> {
    let meta = Value::Object(json.clone()).to_string();
    let mut out = Vec::with_capacity(4 + blob.len() + meta.len());
    out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    out.extend_from_slice(blob);
    out.extend_from_slice(meta.as_bytes());
    out
}

/// Splits a combined payload; the JSON must be an object and runs to the end.
pub fn decode_payload(data: &[u8]) -> Result<Payload<'_>, PayloadError> {
    if data.len() > MAX_PAYLOAD {
        return Err(PayloadError::TooLarge(data.len()));
    }
    let (len, rest) = data
        .split_first_chunk::<4>()
        .ok_or(PayloadError::NoLength)?;
    let claimed = u32::from_le_bytes(*len) as usize;
    if claimed > rest.len() {
        return Err(PayloadError::Truncated {
            claimed,
            available: rest.len(),
        });
    }
    let (blob, meta) = rest.split_at(claimed);
    match serde_json::from_slice::<Value>(meta) {
        Ok(Value::Object(json)) => Ok(Payload { blob, json }),
        Ok(_) => Err(PayloadError::BadJson("not an object".into())),
        Err(e) => Err(PayloadError::BadJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_payload_vector() {
        let mut json = Map::new();
        json.insert("headers".into(), Value::Object(Map::new()));
        let enc = encode_payload(b"ciphertext", &json);
        assert_eq!(
            hex::encode(&enc),
            "0a000000636970686572746578747b2268656164657273223a7b7d7d"
        );
        let dec = decode_payload(&enc).expect("decode");
        assert_eq!(dec.blob, b"ciphertext");
        assert_eq!(dec.json, json);
    }

    #[test]
    fn routing_metadata_survives() {
        let mut input = vec![0x0a, 0, 0, 0];
        input.extend_from_slice(b"ciphertext");
        input.extend_from_slice(br#"{"host":"host","target":"target"}"#);
        let p = decode_payload(&input).expect("decode");
        assert_eq!(p.json["host"], "host");
        assert_eq!(p.json["target"], "target");
    }

    #[test]
    fn malformed_payloads() {
        assert_eq!(decode_payload(&[1, 0]), Err(PayloadError::NoLength));
        assert!(matches!(
            decode_payload(&[0xff, 0xff, 0xff, 0xff, 1]),
            Err(PayloadError::Truncated { .. })
        ));
        assert!(matches!(
            decode_payload(&[0, 0, 0, 0]),
            Err(PayloadError::BadJson(_))
        ));
        assert!(matches!(
            decode_payload(b"\x00\x00\x00\x00[1]"),
            Err(PayloadError::BadJson(_))
        ));
        assert!(matches!(
            decode_payload(b"\x01\x00\x00\x00x{\"a\""),
            Err(PayloadError::BadJson(_))
        ));
    }
}
