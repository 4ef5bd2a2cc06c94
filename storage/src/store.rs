//! The message store (reference `storage-and-onion.md` §1.3–§1.10) on RocksDB.
//!
//! Column families, all keys big-endian so that RocksDB's byte order is the order we need:
//!
//! | family | key | value |
//! |---|---|---|
//! | `msg` | owner (33: prefix ‖ key) ‖ namespace (2, sign bit flipped) ‖ seq (8) | timestamp ms (8) ‖ expiry ms (8) ‖ hash length (1) ‖ hash ‖ data |
//! | `hash` | message hash (43 ASCII) | the `msg` key |
//! | `expiry` | expiry ms (8) ‖ the `msg` key | empty |
//! | default | `seq` | a bound on the sequence numbers handed out (8; reserved 1,024 at a time) |
//!
//! `seq` (kept in memory under the write lock, and in each insert's batch) grows with every
//! insert on this node, so iterating an owner's namespace in key order
//! gives insertion order, as upstream's row ids do. Every operation is one `WriteBatch`; the
//! write-ahead log is written before a call returns, so a store acknowledged to a client
//! survives the process being killed (the WAL is not fsynced per write: a power loss may lose
//! the last writes, which the swarm's other members still hold).
//!
//! Writes are serialised by one mutex (they read before they write); reads take no lock.
//!
//! An account's totals (messages and body bytes, for its limits) are not stored: they are
//! counted from its messages the first time a write needs them, then kept in memory under the
//! write lock and moved with every write ([`OWNER_CACHE`] accounts at most). Storing them
//! cost a read and a write per store, the largest share of a store after the message itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB,
};

use crate::{Namespace, UserPubkey};

const CF_MSG: &str = "msg";
const CF_HASH: &str = "hash";
const CF_EXPIRY: &str = "expiry";
/// Where account totals were kept before they were counted in memory; dropped at open.
const CF_OWNER_OLD: &str = "owner";
const CF_REVOKED: &str = "revoked";

mod revoked;
mod sampling;
pub use revoked::{Revocation, MAX_REVOKED};
pub use sampling::{wire_size, MessageMeta};
const SEQ_KEY: &[u8] = b"seq";
/// Sequence numbers are reserved this many at a time (one write of `seq` per block of inserts).
const SEQ_BLOCK: u64 = 1024;

/// Most accounts whose totals are kept in memory; past it some are forgotten (and counted
/// again from their messages when next needed).
pub const OWNER_CACHE: usize = 100_000;

/// What the write lock guards: the sequence numbers (the last one handed out, and the bound
/// stored on disk: every number up to it may be in use after a restart) and the accounts'
/// totals counted so far.
#[derive(Debug)]
struct Seq {
    last: u64,
    bound: u64,
    /// Owner → (message count, body bytes), exactly what the store holds.
    owners: std::collections::HashMap<[u8; OWNER_LEN], (u64, u64)>,
}

/// Bytes of an owner key: prefix and key.
pub const OWNER_LEN: usize = 33;
/// Bytes of a `msg` key.
const MSG_KEY_LEN: usize = OWNER_LEN + 2 + 8;

/// Largest message body (raw bytes).
pub const MAX_MESSAGE_BODY: usize = 76_800;
/// The retrieve budget ceiling (bytes of response).
pub const RETRIEVE_MAX_SIZE: u64 = 7_800_000;

/// What a message costs a retrieve's budget (upstream's: its base64 body, its hash and 100).
pub fn retrieve_cost(m: &Message) -> u64 {
    100 + m.hash.len() as u64 + (m.data.len() as u64).div_ceil(3) * 4
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The account.
    pub pubkey: UserPubkey,
    /// Its namespace.
    pub namespace: Namespace,
    /// The message hash (43 base64 characters).
    pub hash: String,
    /// Client creation time, unix ms.
    pub timestamp: u64,
    /// Expiry, unix ms.
    pub expiry: u64,
    /// The body.
    pub data: Vec<u8>,
}

/// What a store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored.
    New,
    /// Already held; its expiry was extended to the new one.
    Extended,
    /// Already held with an expiry at least as late.
    Exists,
}

/// Which namespaces a bulk operation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsFilter {
    /// One namespace.
    One(Namespace),
    /// Every namespace of the account.
    All,
}

/// How `expire` may move expiries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireMode {
    /// Set as given.
    Set,
    /// Only make earlier.
    Shorten,
    /// Only make later.
    Extend,
}

/// Per-account limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most messages one account may hold.
    pub max_messages: u64,
    /// Most body bytes one account may hold.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_messages: 100_000,
            max_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account holds as much as it may.
    #[error("account {0} is full ({1})")]
    Full(String, &'static str),
    /// A body over [`MAX_MESSAGE_BODY`].
    #[error("message body is {0} bytes, over the {MAX_MESSAGE_BODY} byte limit")]
    TooLarge(usize),
    /// RocksDB failed.
    #[error("storage database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record on disk that does not decode.
    #[error("corrupt storage record: {0}")]
    Corrupt(&'static str),
}

/// Estimated size of the store (RocksDB's estimates: cheap, not exact).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// Messages held.
    pub messages: u64,
    /// Bytes of message records (on disk and in memory tables).
    pub bytes: u64,
}

/// The message store.
pub struct MessageStore {
    db: DB,
    /// Serialises writes; holds the sequence numbers.
    write: Mutex<Seq>,
    limits: Limits,
    /// Fault injection for devnet scenarios (`--dev-fault drop-storage`): writes are
    /// acknowledged as if they were made and nothing is kept.
    discard: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn owner_bytes(pk: &UserPubkey) -> [u8; OWNER_LEN] {
    let mut o = [0u8; OWNER_LEN];
    o[0] = pk.prefix;
    o[1..].copy_from_slice(&pk.key);
    o
}

fn ns_bytes(ns: Namespace) -> [u8; 2] {
    // Flip the sign bit so that negative namespaces sort before positive ones.
    ((ns as u16) ^ 0x8000).to_be_bytes()
}

fn ns_from(b: [u8; 2]) -> Namespace {
    (u16::from_be_bytes(b) ^ 0x8000) as i16
}

fn msg_key(owner: &[u8; OWNER_LEN], ns: Namespace, seq: u64) -> [u8; MSG_KEY_LEN] {
    let mut k = [0u8; MSG_KEY_LEN];
    k[..OWNER_LEN].copy_from_slice(owner);
    k[OWNER_LEN..OWNER_LEN + 2].copy_from_slice(&ns_bytes(ns));
    k[OWNER_LEN + 2..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn expiry_key(expiry: u64, msg_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + MSG_KEY_LEN);
    k.extend_from_slice(&expiry.to_be_bytes());
    k.extend_from_slice(msg_key);
    k
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

fn encode_value(m: &Message) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + m.hash.len() + m.data.len());
    v.extend_from_slice(&m.timestamp.to_be_bytes());
    v.extend_from_slice(&m.expiry.to_be_bytes());
    v.push(m.hash.len() as u8);
    v.extend_from_slice(m.hash.as_bytes());
    v.extend_from_slice(&m.data);
    v
}

fn decode(key: &[u8], value: &[u8]) -> Result<Message, StoreError> {
    if key.len() != MSG_KEY_LEN {
        return Err(StoreError::Corrupt("message key length"));
    }
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&key[1..OWNER_LEN]);
    let timestamp = u64_at(value, 0).ok_or(StoreError::Corrupt("message value"))?;
    let expiry = u64_at(value, 8).ok_or(StoreError::Corrupt("message value"))?;
    let hlen = usize::from(*value.get(16).ok_or(StoreError::Corrupt("message value"))?);
    let hash = value
        .get(17..17 + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or(StoreError::Corrupt("message hash"))?
        .to_owned();
    Ok(Message {
        pubkey: UserPubkey {
            prefix: key[0],
            key: pk,
        },
        namespace: ns_from([key[OWNER_LEN], key[OWNER_LEN + 1]]),
        hash,
        timestamp,
        expiry,
        data: value[17 + hlen..].to_vec(),
    })
}

/// What one write changes in owners' totals.
#[derive(Default)]
struct Delta {
    owners: BTreeMap<[u8; OWNER_LEN], (i64, i64)>,
}

impl Delta {
    fn add(&mut self, owner: &[u8; OWNER_LEN], count: i64, bytes: i64) {
        let e = self.owners.entry(*owner).or_default();
        e.0 += count;
        e.1 += bytes;
    }
}

impl MessageStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, limits: Limits) -> Result<MessageStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Writes are serialised by our own lock (and the hashed memtable below cannot take
        // concurrent inserts).
        opts.set_allow_concurrent_memtable_write(false);
        // Hashes and owners are looked up by key, and a new message's hash is usually absent:
        // bloom filters answer those misses without reading table blocks.
        // Message bodies are end-to-end encrypted and hashes are random: compressing them on
        // every flush and compaction would cost CPU and save nothing.
        let plain = || {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::None);
            o
        };
        let point = || {
            let mut b = BlockBasedOptions::default();
            b.set_bloom_filter(10.0, false);
            let mut o = plain();
            o.set_block_based_table_factory(&b);
            // The same for the memtable: a lookup of an absent key skips the skiplist.
            o.set_memtable_whole_key_filtering(true);
            o.set_memtable_prefix_bloom_ratio(0.1);
            o
        };
        // Hashes are random and only ever looked up, never iterated: their memtable is a hash
        // of small skiplists (bucketed by the first 4 characters), where one big skiplist cost
        // a walk of some twenty cold nodes per insert.
        let hashed = || {
            let mut o = point();
            o.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(4));
            o.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
                bucket_count: 1 << 18,
                height: 4,
                branching_factor: 4,
            });
            o
        };
        let cfs = [
            ColumnFamilyDescriptor::new(CF_MSG, plain()),
            ColumnFamilyDescriptor::new(CF_HASH, hashed()),
            ColumnFamilyDescriptor::new(CF_EXPIRY, plain()),
            ColumnFamilyDescriptor::new(CF_REVOKED, point()),
        ];
        // A store made before totals were counted in memory has their family: it must be
        // opened to open the database, and is then dropped.
        let old = DB::list_cf(&opts, path)
            .unwrap_or_default()
            .iter()
            .any(|n| n == CF_OWNER_OLD);
        let cfs = cfs
            .into_iter()
            .chain(old.then(|| ColumnFamilyDescriptor::new(CF_OWNER_OLD, plain())));
        let mut db = DB::open_cf_descriptors(&opts, path, cfs)?;
        if old {
            db.drop_cf(CF_OWNER_OLD)?;
        }
        // Every number up to the stored bound may have been handed out: carry on above it.
        let bound = db.get(SEQ_KEY)?.and_then(|v| u64_at(&v, 0)).unwrap_or(0);
        Ok(MessageStore {
            db,
            write: Mutex::new(Seq {
                last: bound,
                bound,
                owners: Default::default(),
            }),
            limits,
            discard: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Devnet fault injection: from now on every write is acknowledged as if it were made, and
    /// nothing is kept (`--dev-fault drop-storage`, for scenarios that check storage tests).
    pub fn discard_writes(&self) {
        self.discard.store(true, Ordering::Relaxed);
    }

    fn discarding(&self) -> bool {
        self.discard.load(Ordering::Relaxed)
    }

    /// How many messages and bytes the store holds, estimated.
    pub fn stats(&self) -> StoreStats {
        let prop = |name: &str| {
            self.db
                .cf_handle(CF_MSG)
                .and_then(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
                .unwrap_or(0)
        };
        StoreStats {
            messages: prop("rocksdb.estimate-num-keys"),
            bytes: prop("rocksdb.estimate-live-data-size")
                .saturating_add(prop("rocksdb.cur-size-all-mem-tables")),
        }
    }

    /// The sequence number of the latest insert (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.lock().last
    }

    /// The message with `hash`, whoever owns it.
    pub fn get(&self, hash: &str) -> Result<Option<Message>, StoreError> {
        Ok(self.by_hash(hash)?.map(|(_, m)| m))
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::Corrupt("missing column family"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seq> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an account holds any message (one seek, no lock).
    pub fn holds_messages(&self, pk: &UserPubkey) -> Result<bool, StoreError> {
        let owner = owner_bytes(pk);
        let mut it = self.db.iterator_cf(
            self.cf(CF_MSG)?,
            IteratorMode::From(&owner, Direction::Forward),
        );
        Ok(match it.next() {
            Some(item) => item?.0.starts_with(&owner),
            None => false,
        })
    }

    /// An account's message count and body bytes.
    pub fn usage(&self, pk: &UserPubkey) -> Result<(u64, u64), StoreError> {
        let mut w = self.lock();
        self.totals(&mut w, &owner_bytes(pk))
    }

    /// An owner's totals: from memory, or counted from its messages (under the write lock, so
    /// nothing moves meanwhile).
    fn totals(&self, w: &mut Seq, owner: &[u8; OWNER_LEN]) -> Result<(u64, u64), StoreError> {
        if let Some(t) = w.owners.get(owner) {
            return Ok(*t);
        }
        let (mut count, mut bytes) = (0u64, 0u64);
        let it = self.db.iterator_cf(
            self.cf(CF_MSG)?,
            IteratorMode::From(owner, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(owner) {
                break;
            }
            let hlen = usize::from(*v.get(16).ok_or(StoreError::Corrupt("message value"))?);
            count = count.saturating_add(1);
            bytes = bytes.saturating_add(v.len().saturating_sub(17 + hlen) as u64);
        }
        if w.owners.len() >= OWNER_CACHE {
            // Room for more: a sixteenth goes (whichever the map lists first), not all, so a
            // full cache does not send every account back to be counted.
            let gone: Vec<[u8; OWNER_LEN]> =
                w.owners.keys().take(OWNER_CACHE / 16).copied().collect();
            for o in gone {
                w.owners.remove(&o);
            }
        }
        w.owners.insert(*owner, (count, bytes));
        Ok((count, bytes))
    }

    /// Writes `batch` and moves the totals of the owners it changed (those counted so far;
    /// the others are counted from the messages when next needed).
    fn apply(&self, w: &mut Seq, batch: WriteBatch, delta: Delta) -> Result<(), StoreError> {
        self.db.write(batch)?;
        for (owner, (dc, db)) in delta.owners {
            if let Some((c, b)) = w.owners.get_mut(&owner) {
                *c = c.saturating_add_signed(dc);
                *b = b.saturating_add_signed(db);
            }
        }
        Ok(())
    }

    fn remove(
        &self,
        batch: &mut WriteBatch,
        delta: &mut Delta,
        key: &[u8],
        m: &Message,
    ) -> Result<(), StoreError> {
        batch.delete_cf(self.cf(CF_MSG)?, key);
        batch.delete_cf(self.cf(CF_HASH)?, m.hash.as_bytes());
        batch.delete_cf(self.cf(CF_EXPIRY)?, expiry_key(m.expiry, key));
        let owner: [u8; OWNER_LEN] = key[..OWNER_LEN]
            .try_into()
            .map_err(|_| StoreError::Corrupt("message key length"))?;
        delta.add(&owner, -1, -(m.data.len() as i64));
        Ok(())
    }

    fn set_expiry(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        m: &Message,
        expiry: u64,
    ) -> Result<(), StoreError> {
        let mut updated = m.clone();
        updated.expiry = expiry;
        batch.put_cf(self.cf(CF_MSG)?, key, encode_value(&updated));
        batch.delete_cf(self.cf(CF_EXPIRY)?, expiry_key(m.expiry, key));
        batch.put_cf(self.cf(CF_EXPIRY)?, expiry_key(expiry, key), []);
        Ok(())
    }

    /// The message with `hash`, with its `msg` key.
    fn by_hash(&self, hash: &str) -> Result<Option<(Vec<u8>, Message)>, StoreError> {
        // Only well-formed hashes are held (and the hashed memtable reads 4 bytes of a key).
        if !crate::is_valid_message_hash(hash) {
            return Ok(None);
        }
        let Some(key) = self.db.get_cf(self.cf(CF_HASH)?, hash.as_bytes())? else {
            return Ok(None);
        };
        let Some(value) = self.db.get_cf(self.cf(CF_MSG)?, &key)? else {
            return Ok(None);
        };
        let m = decode(&key, &value)?;
        Ok(Some((key, m)))
    }

    /// An owner's messages in the namespaces `ns` selects, in insertion order per namespace,
    /// each with its key.
    fn owned(&self, pk: &UserPubkey, ns: NsFilter) -> Result<Vec<(Vec<u8>, Message)>, StoreError> {
        let owner = owner_bytes(pk);
        let prefix: Vec<u8> = match ns {
            NsFilter::One(n) => [&owner[..], &ns_bytes(n)].concat(),
            NsFilter::All => owner.to_vec(),
        };
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(CF_MSG)?,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((k.to_vec(), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// Stores a message (§1.7): a public-outbox namespace keeps only the newest message; a
    /// message already held only has its expiry extended. Returns what happened and the
    /// message's effective expiry.
    pub fn store(
        &self,
        m: &Message,
        public_outbox: bool,
    ) -> Result<(StoreOutcome, u64), StoreError> {
        if m.data.len() > MAX_MESSAGE_BODY {
            return Err(StoreError::TooLarge(m.data.len()));
        }
        if !crate::is_valid_message_hash(&m.hash) {
            return Err(StoreError::Corrupt("message hash"));
        }
        if self.discarding() {
            return Ok((StoreOutcome::New, m.expiry));
        }
        let mut w = self.lock();
        let mut batch = WriteBatch::default();
        let mut delta = Delta::default();
        if public_outbox {
            for (k, old) in self.owned(&m.pubkey, NsFilter::One(m.namespace))? {
                if old.hash != m.hash {
                    self.remove(&mut batch, &mut delta, &k, &old)?;
                }
            }
        }
        if let Some((k, old)) = self.by_hash(&m.hash)? {
            let outcome = if old.expiry < m.expiry {
                self.set_expiry(&mut batch, &k, &old, m.expiry)?;
                (StoreOutcome::Extended, m.expiry)
            } else {
                (StoreOutcome::Exists, old.expiry)
            };
            self.apply(&mut w, batch, delta)?;
            return Ok(outcome);
        }
        let owner = owner_bytes(&m.pubkey);
        let usage = self.totals(&mut w, &owner)?;
        let (dc, db) = delta.owners.get(&owner).copied().unwrap_or_default();
        let count = usage.0.saturating_add_signed(dc);
        let bytes = usage.1.saturating_add_signed(db);
        if count >= self.limits.max_messages {
            return Err(StoreError::Full(
                crate::pubkey_hex(&m.pubkey),
                "message count limit",
            ));
        }
        if bytes.saturating_add(m.data.len() as u64) > self.limits.max_bytes {
            return Err(StoreError::Full(crate::pubkey_hex(&m.pubkey), "byte limit"));
        }
        let seq = w.last.saturating_add(1);
        let key = msg_key(&owner, m.namespace, seq);
        let bound = if seq > w.bound {
            let b = seq.saturating_add(SEQ_BLOCK);
            batch.put(SEQ_KEY, b.to_be_bytes());
            b
        } else {
            w.bound
        };
        batch.put_cf(self.cf(CF_MSG)?, key, encode_value(m));
        batch.put_cf(self.cf(CF_HASH)?, m.hash.as_bytes(), key);
        batch.put_cf(self.cf(CF_EXPIRY)?, expiry_key(m.expiry, &key), []);
        delta.add(&owner, 1, m.data.len() as i64);
        self.apply(&mut w, batch, delta)?;
        w.last = seq;
        w.bound = bound;
        Ok((StoreOutcome::New, m.expiry))
    }

    /// Messages of an account's namespace after `last_hash` (from the start when it is not
    /// found), at most `max_count` (0: no limit) and within `max_size` bytes of response, the
    /// first always included (§1.8). Returns the messages and whether more remain.
    pub fn retrieve(
        &self,
        pk: &UserPubkey,
        ns: Namespace,
        last_hash: Option<&str>,
        max_count: usize,
        max_size: u64,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let owner = owner_bytes(pk);
        let prefix = [&owner[..], &ns_bytes(ns)].concat();
        let start = match last_hash {
            Some(h) => match self.by_hash(h)? {
                Some((k, _)) if k.starts_with(&prefix) => {
                    // Just after it.
                    let seq = u64_at(&k, OWNER_LEN + 2).unwrap_or(0);
                    msg_key(&owner, ns, seq.saturating_add(1)).to_vec()
                }
                _ => prefix.clone(),
            },
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        let mut used = 0u64;
        let mut more = false;
        let it = self.db.iterator_cf(
            self.cf(CF_MSG)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let m = decode(&k, &v)?;
            let cost = retrieve_cost(&m);
            if (max_count > 0 && out.len() >= max_count)
                || (!out.is_empty() && used.saturating_add(cost) > max_size)
            {
                more = true;
                break;
            }
            used = used.saturating_add(cost);
            out.push(m);
        }
        Ok((out, more))
    }

    /// Deletes an account's messages by hash (any namespace); returns the hashes deleted,
    /// sorted.
    pub fn delete(&self, pk: &UserPubkey, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        let mut w = self.lock();
        let owner = owner_bytes(pk);
        let mut batch = WriteBatch::default();
        let mut delta = Delta::default();
        let mut deleted = std::collections::BTreeSet::new();
        for h in hashes {
            if deleted.contains(h) {
                continue;
            }
            if let Some((k, m)) = self.by_hash(h)? {
                if k.starts_with(&owner) {
                    self.remove(&mut batch, &mut delta, &k, &m)?;
                    deleted.insert(m.hash);
                }
            }
        }
        self.apply(&mut w, batch, delta)?;
        Ok(deleted.into_iter().collect())
    }

    /// Deletes an account's messages in `ns` whose timestamp is at most `before` (`u64::MAX`:
    /// all). Returns (namespace, hash) of each, sorted by namespace then hash.
    pub fn delete_before(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
        before: u64,
    ) -> Result<Vec<(Namespace, String)>, StoreError> {
        let mut w = self.lock();
        let mut batch = WriteBatch::default();
        let mut delta = Delta::default();
        let mut deleted = Vec::new();
        for (k, m) in self.owned(pk, ns)? {
            if m.timestamp <= before {
                self.remove(&mut batch, &mut delta, &k, &m)?;
                deleted.push((m.namespace, m.hash));
            }
        }
        self.apply(&mut w, batch, delta)?;
        deleted.sort();
        Ok(deleted)
    }

    /// Deletes all of an account's messages in `ns`.
    pub fn delete_all(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
    ) -> Result<Vec<(Namespace, String)>, StoreError> {
        self.delete_before(pk, ns, u64::MAX)
    }

    /// Shortens to `expiry` every message of the account in `ns` that expires later. Returns
    /// (namespace, hash) of each updated, sorted.
    pub fn expire_all(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
        expiry: u64,
    ) -> Result<Vec<(Namespace, String)>, StoreError> {
        let mut w = self.lock();
        let mut batch = WriteBatch::default();
        let mut updated = Vec::new();
        for (k, m) in self.owned(pk, ns)? {
            if m.expiry > expiry {
                self.set_expiry(&mut batch, &k, &m, expiry)?;
                updated.push((m.namespace, m.hash));
            }
        }
        self.apply(&mut w, batch, Delta::default())?;
        updated.sort();
        Ok(updated)
    }

    /// Sets the expiry of each (hash, expiry) of the account as `mode` allows. Returns the
    /// updated hashes with their new expiry, and the unchanged ones (found, but the mode did
    /// not allow the change) with their current expiry, both sorted by hash.
    #[expect(clippy::type_complexity, reason = "two sorted (hash, expiry) lists")]
    pub fn expire(
        &self,
        pk: &UserPubkey,
        changes: &[(String, u64)],
        mode: ExpireMode,
    ) -> Result<(Vec<(String, u64)>, Vec<(String, u64)>), StoreError> {
        let mut w = self.lock();
        let owner = owner_bytes(pk);
        let mut batch = WriteBatch::default();
        let mut updated = Vec::new();
        let mut unchanged = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (h, e) in changes {
            if !seen.insert(h.clone()) {
                continue;
            }
            let Some((k, m)) = self.by_hash(h)? else {
                continue;
            };
            if !k.starts_with(&owner) {
                continue;
            }
            let allowed = match mode {
                ExpireMode::Set => m.expiry != *e,
                ExpireMode::Shorten => *e < m.expiry,
                ExpireMode::Extend => *e > m.expiry,
            };
            if allowed {
                self.set_expiry(&mut batch, &k, &m, *e)?;
                updated.push((m.hash, *e));
            } else if m.expiry == *e && mode == ExpireMode::Set {
                updated.push((m.hash, *e));
            } else {
                unchanged.push((m.hash, m.expiry));
            }
        }
        self.apply(&mut w, batch, Delta::default())?;
        updated.sort();
        unchanged.sort();
        Ok((updated, unchanged))
    }

    /// The expiries of the account's messages among `hashes`.
    pub fn get_expiries(
        &self,
        pk: &UserPubkey,
        hashes: &[String],
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let owner = owner_bytes(pk);
        let mut out = BTreeMap::new();
        for h in hashes {
            if let Some((k, m)) = self.by_hash(h)? {
                if k.starts_with(&owner) {
                    out.insert(m.hash, m.expiry);
                }
            }
        }
        Ok(out)
    }

    /// Deletes every message whose expiry is at or before `now_ms` (§1.9); returns how many,
    /// at most `max` per call so a large sweep does not hold the write lock for long.
    pub fn sweep(&self, now_ms: u64, max: usize) -> Result<usize, StoreError> {
        let mut w = self.lock();
        let mut batch = WriteBatch::default();
        let mut delta = Delta::default();
        let mut n = 0;
        let it = self
            .db
            .iterator_cf(self.cf(CF_EXPIRY)?, IteratorMode::Start);
        for item in it {
            let (k, _) = item?;
            let Some(expiry) = u64_at(&k, 0) else {
                return Err(StoreError::Corrupt("expiry key"));
            };
            if expiry > now_ms || n >= max {
                break;
            }
            let key = &k[8..];
            match self.db.get_cf(self.cf(CF_MSG)?, key)? {
                Some(v) => {
                    let m = decode(key, &v)?;
                    self.remove(&mut batch, &mut delta, key, &m)?;
                }
                None => batch.delete_cf(self.cf(CF_EXPIRY)?, &k),
            }
            n += 1;
        }
        self.apply(&mut w, batch, delta)?;
        Ok(n)
    }

    /// Stores messages received from swarm peers: each one not held yet is inserted, one held
    /// already keeps the later expiry. Limits apply as to clients. Returns how many were new.
    pub fn bulk_store(&self, msgs: &[Message]) -> Result<usize, StoreError> {
        Ok(self.store_new(msgs)?.len())
    }

    /// [`MessageStore::bulk_store`], returning the indices of the messages that were new. A
    /// message its account has no room for is skipped; the rest are still stored.
    pub fn store_new(&self, msgs: &[Message]) -> Result<Vec<usize>, StoreError> {
        Ok(self.store_held(msgs)?.0)
    }

    /// [`MessageStore::store_new`], returning also the indices of every message held once done
    /// (new, or held already): all but those their account had no room for.
    pub fn store_held(&self, msgs: &[Message]) -> Result<(Vec<usize>, Vec<usize>), StoreError> {
        let (mut new, mut held) = (Vec::new(), Vec::new());
        for (i, m) in msgs.iter().enumerate() {
            match self.store(m, false) {
                Ok((outcome, _)) => {
                    if outcome == StoreOutcome::New {
                        new.push(i);
                    }
                    held.push(i);
                }
                Err(StoreError::Full(..)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((new, held))
    }
}

pub use crate::peer::{held_statement, message_from_json, message_to_json};
