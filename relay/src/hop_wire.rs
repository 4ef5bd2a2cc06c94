//! The node-to-node form of an onion layer: a bencoded dict
//! `{data, enc_type, ephemeral_key (32 raw bytes), hop_no}`, as upstream's `sn.onion_request`.
//! Encoded with `serde_bencode`; decoded by a flat-dict reader that refuses nesting.

use serde::Serialize;

use crate::crypto::EncType;
use crate::hop::{HopError, Layer};
use crate::PayloadError;

/// The node-to-node form of a layer: a bencoded dict, as upstream's `sn.onion_request`.
#[derive(Serialize)]
struct Wire {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enc_type: Option<String>,
    #[serde(with = "serde_bytes")]
    ephemeral_key: Vec<u8>,
    hop_no: i64,
}

/// Encodes a layer for the next node.
pub fn encode_layer(layer: &Layer) -> Vec<u8> {
    serde_bencode::to_bytes(&Wire {
        data: layer.data.clone(),
        enc_type: Some(layer.enc.name().to_owned()),
        ephemeral_key: layer.ephemeral_key.to_vec(),
        hop_no: i64::from(layer.hop_no),
    })
    .unwrap_or_else(|_| unreachable!("a dict of bytes and integers always encodes"))
}

/// One value of a flat bencoded dict.
enum Flat<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

/// Reads a bencoded dict whose values are byte strings or integers only, in time linear in its
/// length and constant memory: each entry goes to `entry` as it is read. A nested list or dict
/// is refused rather than walked: a general decoder recurses once per level, and a peer could
/// nest a million levels in 10 MiB. Keys must be in ascending order (bencode's rule).
fn flat_dict<'a>(b: &'a [u8], mut entry: impl FnMut(&'a [u8], Flat<'a>)) -> Result<(), String> {
    fn digits(b: &[u8], mut i: usize, end: u8) -> Result<(&[u8], usize), String> {
        let start = i;
        while b.get(i).is_some_and(|c| *c != end) {
            i += 1;
        }
        if b.get(i) != Some(&end) || i == start || i - start > 19 {
            return Err("bad number".into());
        }
        Ok((&b[start..i], i + 1))
    }
    fn string(b: &[u8], i: usize) -> Result<(&[u8], usize), String> {
        let (len, i) = digits(b, i, b':')?;
        if !len.iter().all(u8::is_ascii_digit) || (len.len() > 1 && len[0] == b'0') {
            return Err("bad string length".into());
        }
        let n: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad string length")?;
        let end = i
            .checked_add(n)
            .filter(|e| *e <= b.len())
            .ok_or("string runs past the end")?;
        Ok((&b[i..end], end))
    }
    if b.first() != Some(&b'd') {
        return Err("not a dict".into());
    }
    let mut i = 1;
    let mut prev: Option<&[u8]> = None;
    loop {
        match b.get(i) {
            Some(b'e') if i + 1 == b.len() => return Ok(()),
            Some(b'e') => return Err("trailing bytes".into()),
            None => return Err("dict not closed".into()),
            Some(_) => {}
        }
        let (key, next) = string(b, i)?;
        let (value, next) = match b.get(next) {
            Some(b'i') => {
                let (n, after) = digits(b, next + 1, b'e')?;
                let v = std::str::from_utf8(n)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or("bad integer")?;
                (Flat::Int(v), after)
            }
            Some(c) if c.is_ascii_digit() => {
                let (v, after) = string(b, next)?;
                (Flat::Bytes(v), after)
            }
            _ => return Err("values must be strings or integers".into()),
        };
        // Keys in strictly ascending order, as bencode's canonical form has them (and every
        // encoder of this layer writes them): one comparison per key refuses duplicates in
        // linear time, where a search of the keys so far would be quadratic in a 10 MiB dict.
        if prev.is_some_and(|p| p >= key) {
            return Err("keys out of order or repeated".into());
        }
        prev = Some(key);
        entry(key, value);
        i = next;
    }
}

/// Decodes a layer from the previous node; a `hop_no` below 1 is 1.
pub fn decode_layer(bytes: &[u8]) -> Result<Layer, HopError> {
    if bytes.len() > crate::MAX_PAYLOAD {
        return Err(HopError::Parse(
            PayloadError::TooLarge(bytes.len()).to_string(),
        ));
    }
    let bad = |e: String| HopError::Parse(format!("bad onion hop: {e}"));
    // The four keys of a layer; others are read past.
    let mut fields: [Option<Flat<'_>>; 4] = [None, None, None, None];
    let names: [&[u8]; 4] = [b"data", b"enc_type", b"ephemeral_key", b"hop_no"];
    flat_dict(bytes, |k, v| {
        if let Some(i) = names.iter().position(|n| *n == k) {
            fields[i] = Some(v);
        }
    })
    .map_err(bad)?;
    let get = |k: &[u8]| {
        names
            .iter()
            .position(|n| *n == k)
            .and_then(|i| fields[i].as_ref())
    };
    let data = match get(b"data") {
        Some(Flat::Bytes(d)) => d.to_vec(),
        _ => return Err(bad("data must be a string".into())),
    };
    let ephemeral_key = match get(b"ephemeral_key") {
        Some(Flat::Bytes(k)) => <[u8; 32]>::try_from(*k)
            .map_err(|_| HopError::Parse("ephemeral_key must be 32 bytes".into()))?,
        _ => return Err(HopError::Parse("ephemeral_key must be 32 bytes".into())),
    };
    let enc = match get(b"enc_type") {
        None => EncType::parse(None),
        Some(Flat::Bytes(e)) => EncType::parse(Some(&String::from_utf8_lossy(e))),
        Some(Flat::Int(_)) => return Err(bad("enc_type must be a string".into())),
    }
    .map_err(|e| HopError::Parse(e.to_string()))?;
    let hop_no = match get(b"hop_no") {
        None => 1,
        Some(Flat::Int(n)) => *n,
        Some(Flat::Bytes(_)) => return Err(bad("hop_no must be an integer".into())),
    };
    Ok(Layer {
        data,
        ephemeral_key,
        enc,
        hop_no: u32::try_from(hop_no.max(1)).unwrap_or(u32::MAX),
    })
}
