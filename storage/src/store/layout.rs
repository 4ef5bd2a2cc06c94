//! How messages lie in RocksDB (the table is in the parent module's docs): keys, the `meta`
//! record, and the move from the first layout, whose `msg` values carried everything.

use rocksdb::{IteratorMode, WriteBatch, DB};

use super::{StoreError, CF_META, CF_MSG, OWNER_LEN};
use crate::storage_test::ACK_LEN;
use crate::{Namespace, UserPubkey};

/// Bytes of a `msg` / `meta` key.
pub(super) const MSG_KEY_LEN: usize = OWNER_LEN + 2 + 8;
/// The layout this code writes, kept under [`FORMAT_KEY`] in the default family.
const FORMAT: u64 = 2;
const FORMAT_KEY: &[u8] = b"format";

pub(super) fn owner_bytes(pk: &UserPubkey) -> [u8; OWNER_LEN] {
    let mut o = [0u8; OWNER_LEN];
    o[0] = pk.prefix;
    o[1..].copy_from_slice(&pk.key);
    o
}

pub(super) fn ns_bytes(ns: Namespace) -> [u8; 2] {
    // Flip the sign bit so that negative namespaces sort before positive ones.
    ((ns as u16) ^ 0x8000).to_be_bytes()
}

pub(super) fn ns_from(b: [u8; 2]) -> Namespace {
    (u16::from_be_bytes(b) ^ 0x8000) as i16
}

pub(super) fn msg_key(owner: &[u8; OWNER_LEN], ns: Namespace, seq: u64) -> [u8; MSG_KEY_LEN] {
    let mut k = [0u8; MSG_KEY_LEN];
    k[..OWNER_LEN].copy_from_slice(owner);
    k[OWNER_LEN..OWNER_LEN + 2].copy_from_slice(&ns_bytes(ns));
    k[OWNER_LEN + 2..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn expiry_key(expiry: u64, msg_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + MSG_KEY_LEN);
    k.extend_from_slice(&expiry.to_be_bytes());
    k.extend_from_slice(msg_key);
    k
}

pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

/// A message's record in `meta`: everything but its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    /// The account.
    pub pubkey: UserPubkey,
    /// Its namespace.
    pub namespace: Namespace,
    /// Insertion number on this node.
    pub seq: u64,
    /// Client creation time, unix ms.
    pub timestamp: u64,
    /// Expiry, unix ms.
    pub expiry: u64,
    /// Bytes of the body.
    pub body_len: u32,
    /// The message hash.
    pub hash: String,
    /// Other members' acknowledgements of it (`storage_test::Ack::compact`).
    pub acks: Vec<[u8; ACK_LEN]>,
}

impl Meta {
    /// The record's value: timestamp (8) ‖ expiry (8) ‖ body length (4) ‖ hash length (1) ‖
    /// hash ‖ acks.
    pub fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(21 + self.hash.len() + self.acks.len() * ACK_LEN);
        v.extend_from_slice(&self.timestamp.to_be_bytes());
        v.extend_from_slice(&self.expiry.to_be_bytes());
        v.extend_from_slice(&self.body_len.to_be_bytes());
        v.push(u8::try_from(self.hash.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(self.hash.as_bytes());
        for a in &self.acks {
            v.extend_from_slice(a);
        }
        v
    }

    /// Reads a record.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Meta, StoreError> {
        let bad = || StoreError::Corrupt("message record");
        if key.len() != MSG_KEY_LEN {
            return Err(StoreError::Corrupt("message key length"));
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&key[1..OWNER_LEN]);
        let body_len = value
            .get(16..20)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(bad)?;
        let hlen = usize::from(*value.get(20).ok_or_else(bad)?);
        let hash = value
            .get(21..21 + hlen)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or(StoreError::Corrupt("message hash"))?
            .to_owned();
        let rest = &value[21 + hlen..];
        if !rest.len().is_multiple_of(ACK_LEN) {
            return Err(StoreError::Corrupt("message acks"));
        }
        let acks = rest
            .chunks_exact(ACK_LEN)
            .map(|c| <[u8; ACK_LEN]>::try_from(c).map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        Ok(Meta {
            pubkey: UserPubkey {
                prefix: key[0],
                key: pk,
            },
            namespace: ns_from([key[OWNER_LEN], key[OWNER_LEN + 1]]),
            seq: u64_at(key, OWNER_LEN + 2).ok_or_else(bad)?,
            timestamp: u64_at(value, 0).ok_or_else(bad)?,
            expiry: u64_at(value, 8).ok_or_else(bad)?,
            body_len,
            hash,
            acks,
        })
    }

    /// The message, with its body.
    pub fn with_body(self, data: Vec<u8>) -> super::Message {
        super::Message {
            pubkey: self.pubkey,
            namespace: self.namespace,
            hash: self.hash,
            timestamp: self.timestamp,
            expiry: self.expiry,
            data,
        }
    }
}

/// Reads a value of the first layout: timestamp (8) ‖ expiry (8) ‖ hash length (1) ‖ hash ‖
/// body. Returns the record and the body.
fn first_layout(key: &[u8], value: &[u8]) -> Result<(Meta, Vec<u8>), StoreError> {
    let bad = || StoreError::Corrupt("message value of the first layout");
    let hlen = usize::from(*value.get(16).ok_or_else(bad)?);
    let hash = value
        .get(17..17 + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(bad)?
        .to_owned();
    let data = value.get(17 + hlen..).ok_or_else(bad)?.to_vec();
    let mut rec = Meta::decode(key, &[0u8; 21])?;
    rec.timestamp = u64_at(value, 0).ok_or_else(bad)?;
    rec.expiry = u64_at(value, 8).ok_or_else(bad)?;
    rec.body_len = u32::try_from(data.len()).map_err(|_| bad())?;
    rec.hash = hash;
    Ok((rec, data))
}

/// Brings a store of the first layout (every field in `msg`'s value) to this one (bodies in
/// `msg`, the rest in `meta`), in batches; a message already moved (its `meta` record written)
/// is left alone, so a move cut short carries on at the next open. Returns how many moved.
pub(super) fn upgrade(db: &DB) -> Result<usize, StoreError> {
    if db.get(FORMAT_KEY)?.and_then(|v| u64_at(&v, 0)) == Some(FORMAT) {
        return Ok(0);
    }
    let cf = |name| {
        db.cf_handle(name)
            .ok_or(StoreError::Corrupt("missing column family"))
    };
    let (msg, meta) = (cf(CF_MSG)?, cf(CF_META)?);
    let mut moved = 0;
    let mut batch = WriteBatch::default();
    for item in db.iterator_cf(msg, IteratorMode::Start) {
        let (k, v) = item?;
        if db.get_cf(meta, &k)?.is_some() {
            continue;
        }
        let (rec, body) = first_layout(&k, &v)?;
        batch.put_cf(meta, &k, rec.value());
        batch.put_cf(msg, &k, body);
        moved += 1;
        if batch.len() >= 2_000 {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    batch.put(FORMAT_KEY, FORMAT.to_be_bytes());
    db.write(batch)?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Limits, MessageStore, NsFilter};
    use rocksdb::{ColumnFamilyDescriptor, Options};

    /// A store written in the first layout (as the previous release wrote it) opens, moved:
    /// every message, its order, its expiry and its totals are there.
    #[test]
    fn a_store_of_the_first_layout_is_moved_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let pk = UserPubkey {
            prefix: 5,
            key: [4; 32],
        };
        let owner = owner_bytes(&pk);
        let bodies: Vec<Vec<u8>> = (0..2_500u32).map(|i| i.to_le_bytes().to_vec()).collect();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let cfs = ["msg", "hash", "expiry", "revoked"]
                .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
            let db = DB::open_cf_descriptors(&opts, &path, cfs).expect("old store");
            let cf = |n| db.cf_handle(n).expect("cf");
            for (i, body) in bodies.iter().enumerate() {
                let seq = i as u64 + 1;
                let key = msg_key(&owner, 0, seq);
                let hash = crate::message_hash(&pk, 0, body);
                let mut v = 1_000u64.to_be_bytes().to_vec();
                v.extend_from_slice(&(9_000 + seq).to_be_bytes());
                v.push(hash.len() as u8);
                v.extend_from_slice(hash.as_bytes());
                v.extend_from_slice(body);
                db.put_cf(cf("msg"), key, v).expect("put");
                db.put_cf(cf("hash"), hash.as_bytes(), key).expect("put");
                db.put_cf(cf("expiry"), expiry_key(9_000 + seq, &key), [])
                    .expect("put");
            }
            db.put(b"seq", 3_000u64.to_be_bytes()).expect("put");
        }
        let s = MessageStore::open(&path, Limits::default()).expect("opens");
        assert_eq!(s.upgraded(), bodies.len());
        let (got, more) = s.retrieve(&pk, 0, None, 0, u64::MAX, 0).expect("retrieve");
        assert!(!more);
        assert_eq!(got.len(), bodies.len());
        assert_eq!(got[0].data, bodies[0]);
        assert_eq!(got[1].expiry, 9_002);
        assert_eq!(s.usage(&pk).expect("usage"), (2_500, 10_000));
        let last = crate::message_hash(&pk, 0, &bodies[2_499]);
        assert_eq!(
            s.get(&last).expect("get").expect("held").data,
            bodies[2_499]
        );
        drop(s);
        // Opened again: nothing more to move, everything still there.
        let s = MessageStore::open(&path, Limits::default()).expect("opens");
        assert_eq!(s.upgraded(), 0);
        assert_eq!(
            s.delete_all(&pk, NsFilter::All).expect("delete").len(),
            2_500
        );
        assert_eq!(s.sweep(u64::MAX, 10_000).expect("sweep"), 0);
    }
}
