//! The message store (reference `storage-and-onion.md` §1.3–§1.10) on RocksDB.
//!
//! Column families, all keys big-endian so that RocksDB's byte order is the order we need:
//!
//! | family | key | value |
//! |---|---|---|
//! | `meta` | owner (33: prefix ‖ key) ‖ namespace (2, sign bit flipped) ‖ seq (8) | timestamp ms (8) ‖ expiry ms (8) ‖ body length (4) ‖ hash length (1) ‖ hash ‖ other members' acks (`storage_test::ACK_LEN` each) |
//! | `msg` | the same key | the body |
//! | `hash` | message hash (43 ASCII) | the key |
//! | `expiry` | expiry ms (8) ‖ the key | empty |
//! | `revoked` | owner ‖ token | see `revoked` |
//! | `refute`, `tomb`, `bulkref` | | the account's requests that ended messages: see `refutes` |
//! | default | `seq`; `format` | a bound on the sequence numbers handed out (8; reserved 1,024 at a time); the layout (2) |
//!
//! `seq` (kept in memory under the write lock, and in each insert's batch) grows with every
//! insert on this node, so iterating an owner's namespace in key order
//! gives insertion order, as upstream's row ids do. Every operation is one `WriteBatch`, or
//! for the bulk ones a batch per chunk; the write-ahead log is written before a call returns,
//! so a store acknowledged to a client survives the process being killed (the WAL is not
//! fsynced per write: a power loss may lose the last writes, which the swarm's other members
//! still hold).
//!
//! Bodies are apart from everything else about a message (`meta`), so the operations over a
//! whole account (`delete_all`, `delete_before`, `expire_all`, counting its totals) and the
//! sweep read records of some 70 bytes, never bodies; and they work in chunks of
//! [`CHUNK`] messages, each under the write lock on its own, so that other clients' stores go
//! on between them. A store of the first layout (everything in `msg`) is moved to this one at
//! open.
//!
//! Writes are serialised by one mutex (they read before they write); reads take no lock. A
//! chunked operation hands the mutex over fairly after each chunk, so a writer waiting for it
//! goes next.
//!
//! An account's totals (messages and body bytes, for its limits) are not stored: they are
//! counted from its records the first time a write needs them, then kept in memory under the
//! write lock and moved with every write ([`OWNER_CACHE`] accounts at most). Storing them
//! cost a read and a write per store, the largest share of a store after the message itself.
//! They are kept apart for the public namespaces (those anyone may store to unsigned: `ns %
//! 10 == 0`) and the others, and each has its own limits: what strangers send an account
//! cannot fill the room its owner's signed namespaces need.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB,
};

use crate::{Namespace, UserPubkey};

const CF_MSG: &str = "msg";
const CF_META: &str = "meta";
const CF_HASH: &str = "hash";
const CF_EXPIRY: &str = "expiry";
/// Where account totals were kept before they were counted in memory; dropped at open.
const CF_OWNER_OLD: &str = "owner";
const CF_REVOKED: &str = "revoked";

mod bulk;
mod layout;
mod refutes;
mod revoked;
mod sampling;
use layout::{expiry_key, msg_key, ns_bytes, owner_bytes, u64_at, Meta};
pub use revoked::{Revocation, MAX_REVOKED};
pub use sampling::{wire_size, MessageMeta};
const SEQ_KEY: &[u8] = b"seq";
/// Sequence numbers are reserved this many at a time (one write of `seq` per block of inserts).
const SEQ_BLOCK: u64 = 1024;

/// Most accounts whose totals are kept in memory; past it some are forgotten (the smallest
/// first, cheapest to count again from their records when next needed).
pub const OWNER_CACHE: usize = 100_000;
/// Messages an operation over a whole account handles per hold of the write lock.
pub const CHUNK: usize = 256;

/// An account's totals: (messages, body bytes) in its public namespaces and in the others.
type Totals = [(u64, u64); 2];

/// What the write lock guards: the sequence numbers (the last one handed out, and the bound
/// stored on disk: every number up to it may be in use after a restart) and the accounts'
/// totals counted so far.
#[derive(Debug)]
struct Seq {
    last: u64,
    bound: u64,
    /// Owner → totals, exactly what the store holds.
    owners: std::collections::HashMap<[u8; OWNER_LEN], Totals>,
}

/// Which of an account's totals a namespace counts in: 0 for the public namespaces (anyone may
/// store there unsigned), 1 for the others.
fn class(ns: Namespace) -> usize {
    usize::from(!crate::rpc::is_public(ns))
}

/// Bytes of an owner key: prefix and key.
pub const OWNER_LEN: usize = 33;

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

/// Per-account limits, for the public namespaces and for the others each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most messages one account may hold in either kind of namespace.
    pub max_messages: u64,
    /// Most body bytes one account may hold in either kind of namespace.
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
    /// Messages moved from the first layout at open.
    upgraded: usize,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What one write changes in owners' totals.
#[derive(Default)]
struct Delta {
    owners: BTreeMap<[u8; OWNER_LEN], [(i64, i64); 2]>,
}

impl Delta {
    fn add(&mut self, owner: &[u8; OWNER_LEN], ns: Namespace, count: i64, bytes: i64) {
        let e = &mut self.owners.entry(*owner).or_default()[class(ns)];
        e.0 += count;
        e.1 += bytes;
    }

    fn of(&self, owner: &[u8; OWNER_LEN], ns: Namespace) -> (i64, i64) {
        self.owners.get(owner).map_or((0, 0), |d| d[class(ns)])
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
            ColumnFamilyDescriptor::new(CF_META, plain()),
            ColumnFamilyDescriptor::new(CF_HASH, hashed()),
            ColumnFamilyDescriptor::new(CF_EXPIRY, plain()),
            ColumnFamilyDescriptor::new(CF_REVOKED, point()),
            ColumnFamilyDescriptor::new(refutes::CF_REFUTE, plain()),
            ColumnFamilyDescriptor::new(refutes::CF_TOMB, point()),
            ColumnFamilyDescriptor::new(refutes::CF_BULK, plain()),
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
        let upgraded = layout::upgrade(&db)?;
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
            upgraded,
        })
    }

    /// How many messages were moved from the first layout when the store was opened.
    pub fn upgraded(&self) -> usize {
        self.upgraded
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
        let prop = |cf: &str, name: &str| {
            self.db
                .cf_handle(cf)
                .and_then(|cf| self.db.property_int_value_cf(&cf, name).ok().flatten())
                .unwrap_or(0)
        };
        let bytes = |cf: &str| {
            prop(cf, "rocksdb.estimate-live-data-size")
                .saturating_add(prop(cf, "rocksdb.cur-size-all-mem-tables"))
        };
        StoreStats {
            messages: prop(CF_META, "rocksdb.estimate-num-keys"),
            bytes: bytes(CF_MSG).saturating_add(bytes(CF_META)),
        }
    }

    /// The sequence number of the latest insert (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.lock().last
    }

    /// The message with `hash`, whoever owns it.
    pub fn get(&self, hash: &str) -> Result<Option<Message>, StoreError> {
        let Some((key, rec)) = self.by_hash(hash)? else {
            return Ok(None);
        };
        Ok(self
            .db
            .get_cf(self.cf(CF_MSG)?, key)?
            .map(|body| rec.with_body(body)))
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::Corrupt("missing column family"))
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Seq> {
        self.write.lock()
    }

    /// Whether an account holds any message (one seek, no lock).
    pub fn holds_messages(&self, pk: &UserPubkey) -> Result<bool, StoreError> {
        let owner = owner_bytes(pk);
        let mut it = self.db.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(&owner, Direction::Forward),
        );
        Ok(match it.next() {
            Some(item) => item?.0.starts_with(&owner),
            None => false,
        })
    }

    /// An account's message count and body bytes (all namespaces).
    pub fn usage(&self, pk: &UserPubkey) -> Result<(u64, u64), StoreError> {
        let mut w = self.lock();
        let t = self.totals(&mut w, &owner_bytes(pk))?;
        Ok((t[0].0 + t[1].0, t[0].1 + t[1].1))
    }

    /// An owner's totals: from memory, or counted from its records (under the write lock, so
    /// nothing moves meanwhile; records only, no bodies).
    fn totals(&self, w: &mut Seq, owner: &[u8; OWNER_LEN]) -> Result<Totals, StoreError> {
        if let Some(t) = w.owners.get(owner) {
            return Ok(*t);
        }
        let mut t: Totals = [(0, 0); 2];
        let it = self.db.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(owner, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(owner) {
                break;
            }
            let rec = Meta::decode(&k, &v)?;
            let e = &mut t[class(rec.namespace)];
            e.0 = e.0.saturating_add(1);
            e.1 = e.1.saturating_add(u64::from(rec.body_len));
        }
        if w.owners.len() >= OWNER_CACHE {
            // Room for more: the smallest sixteenth goes (cheapest to count again), not all,
            // so a full cache does not send every account back to be counted.
            let mut by_size: Vec<([u8; OWNER_LEN], u64)> = w
                .owners
                .iter()
                .map(|(o, t)| (*o, t[0].0 + t[1].0))
                .collect();
            let cut = OWNER_CACHE / 16;
            by_size.select_nth_unstable_by_key(cut, |(_, n)| *n);
            for (o, _) in &by_size[..cut] {
                w.owners.remove(o);
            }
        }
        w.owners.insert(*owner, t);
        Ok(t)
    }

    /// Writes `batch` and moves the totals of the owners it changed (those counted so far;
    /// the others are counted from the records when next needed).
    fn apply(&self, w: &mut Seq, batch: WriteBatch, delta: Delta) -> Result<(), StoreError> {
        self.db.write(batch)?;
        for (owner, d) in delta.owners {
            if let Some(t) = w.owners.get_mut(&owner) {
                for (t, (dc, db)) in t.iter_mut().zip(d) {
                    t.0 = t.0.saturating_add_signed(dc);
                    t.1 = t.1.saturating_add_signed(db);
                }
            }
        }
        Ok(())
    }

    fn remove(
        &self,
        batch: &mut WriteBatch,
        delta: &mut Delta,
        key: &[u8],
        rec: &Meta,
    ) -> Result<(), StoreError> {
        batch.delete_cf(self.cf(CF_MSG)?, key);
        batch.delete_cf(self.cf(CF_META)?, key);
        batch.delete_cf(self.cf(CF_HASH)?, rec.hash.as_bytes());
        batch.delete_cf(self.cf(CF_EXPIRY)?, expiry_key(rec.expiry, key));
        let owner: [u8; OWNER_LEN] = key[..OWNER_LEN]
            .try_into()
            .map_err(|_| StoreError::Corrupt("message key length"))?;
        delta.add(&owner, rec.namespace, -1, -i64::from(rec.body_len));
        Ok(())
    }

    fn set_expiry(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        rec: &Meta,
        expiry: u64,
    ) -> Result<(), StoreError> {
        let mut updated = rec.clone();
        updated.expiry = expiry;
        batch.put_cf(self.cf(CF_META)?, key, updated.value());
        batch.delete_cf(self.cf(CF_EXPIRY)?, expiry_key(rec.expiry, key));
        batch.put_cf(self.cf(CF_EXPIRY)?, expiry_key(expiry, key), []);
        Ok(())
    }

    /// The record of the message with `hash`, with its key.
    fn by_hash(&self, hash: &str) -> Result<Option<(Vec<u8>, Meta)>, StoreError> {
        // Only well-formed hashes are held (and the hashed memtable reads 4 bytes of a key).
        if !crate::is_valid_message_hash(hash) {
            return Ok(None);
        }
        let Some(key) = self.db.get_cf(self.cf(CF_HASH)?, hash.as_bytes())? else {
            return Ok(None);
        };
        let Some(value) = self.db.get_cf(self.cf(CF_META)?, &key)? else {
            return Ok(None);
        };
        let rec = Meta::decode(&key, &value)?;
        Ok(Some((key, rec)))
    }

    /// The records of an owner's messages in the namespaces `ns` selects, in key order, after
    /// `after` (a key from an earlier call) and at most `max`, each with its key.
    fn owned(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Vec<(Vec<u8>, Meta)>, StoreError> {
        let owner = owner_bytes(pk);
        let prefix: Vec<u8> = match ns {
            NsFilter::One(n) => [&owner[..], &ns_bytes(n)].concat(),
            NsFilter::All => owner.to_vec(),
        };
        let from = after.unwrap_or(&prefix);
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(from, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= max {
                break;
            }
            if after.is_some_and(|a| a == &k[..]) {
                continue;
            }
            out.push((k.to_vec(), Meta::decode(&k, &v)?));
        }
        Ok(out)
    }

    /// A cursor over bodies, for records read in key order from the same snapshot: one seek,
    /// then steps forward (a point lookup per body would search every level of `msg`).
    fn body_cursor<'a>(
        &'a self,
        snapshot: &'a rocksdb::Snapshot<'a>,
        start: &[u8],
    ) -> Result<BodyCursor<'a>, StoreError> {
        let mut it = snapshot.raw_iterator_cf(self.cf(CF_MSG)?);
        it.seek(start);
        Ok(BodyCursor(it))
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
            // One message: whatever else is there goes (a handful at most).
            for (k, old) in self.owned(&m.pubkey, NsFilter::One(m.namespace), None, usize::MAX)? {
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
        let usage = self.totals(&mut w, &owner)?[class(m.namespace)];
        let (dc, db) = delta.of(&owner, m.namespace);
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
        let rec = Meta {
            pubkey: m.pubkey,
            namespace: m.namespace,
            seq,
            timestamp: m.timestamp,
            expiry: m.expiry,
            body_len: u32::try_from(m.data.len()).unwrap_or(u32::MAX),
            hash: m.hash.clone(),
            acks: Vec::new(),
        };
        batch.put_cf(self.cf(CF_MSG)?, key, &m.data);
        batch.put_cf(self.cf(CF_META)?, key, rec.value());
        batch.put_cf(self.cf(CF_HASH)?, m.hash.as_bytes(), key);
        batch.put_cf(self.cf(CF_EXPIRY)?, expiry_key(m.expiry, &key), []);
        delta.add(&owner, m.namespace, 1, m.data.len() as i64);
        self.apply(&mut w, batch, delta)?;
        w.last = seq;
        w.bound = bound;
        Ok((StoreOutcome::New, m.expiry))
    }

    /// Messages of an account's namespace after `last_hash` (from the start when it is not
    /// found), at most `max_count` (0: no limit) and within `max_size` bytes of response, the
    /// first always included (§1.8); none that has expired by `now_ms` (the sweep may not have
    /// reached it yet). Returns the messages and whether more remain.
    pub fn retrieve(
        &self,
        pk: &UserPubkey,
        ns: Namespace,
        last_hash: Option<&str>,
        max_count: usize,
        max_size: u64,
        now_ms: u64,
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
        // Records (they carry each body's length, so the budget is decided on them) and the
        // bodies of those taken, side by side from one snapshot.
        let snapshot = self.db.snapshot();
        let mut bodies = self.body_cursor(&snapshot, &start)?;
        let mut out: Vec<Message> = Vec::new();
        let mut used = 0u64;
        let mut more = false;
        let it = snapshot.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let rec = Meta::decode(&k, &v)?;
            if rec.expiry <= now_ms {
                continue;
            }
            let cost = 100 + rec.hash.len() as u64 + u64::from(rec.body_len).div_ceil(3) * 4;
            if (max_count > 0 && out.len() >= max_count)
                || (!out.is_empty() && used.saturating_add(cost) > max_size)
            {
                more = true;
                break;
            }
            used = used.saturating_add(cost);
            let body = bodies.body_of(&k)?;
            out.push(rec.with_body(body));
        }
        Ok((out, more))
    }

    /// Keeps other members' acks (checked by the caller) with the message `hash`, at most
    /// [`MAX_ACKS`](crate::storage_test::MAX_ACKS) per message, one per member, each only while
    /// it names the message as held here. Returns how many were added.
    pub fn add_acks(
        &self,
        hash: &str,
        acks: &[crate::storage_test::Ack],
    ) -> Result<usize, StoreError> {
        use crate::storage_test::{Ack, MAX_ACKS};
        if acks.is_empty() || self.discarding() {
            return Ok(0);
        }
        let mut w = self.lock();
        let Some((key, mut rec)) = self.by_hash(hash)? else {
            return Ok(0);
        };
        let mut added = 0;
        for a in acks {
            let fits = a.hash == rec.hash
                && a.account == rec.pubkey
                && a.namespace == rec.namespace
                && a.timestamp == rec.timestamp;
            let known = rec.acks.iter().any(|k| Ack::member_of(k) == a.member);
            if fits && !known && rec.acks.len() < MAX_ACKS {
                rec.acks.push(a.compact());
                added += 1;
            }
        }
        if added > 0 {
            let mut batch = WriteBatch::default();
            batch.put_cf(self.cf(CF_META)?, &key, rec.value());
            self.apply(&mut w, batch, Delta::default())?;
        }
        Ok(added)
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
            if let Some((k, rec)) = self.by_hash(h)? {
                if k.starts_with(&owner) {
                    out.insert(rec.hash, rec.expiry);
                }
            }
        }
        Ok(out)
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

/// See [`MessageStore::body_cursor`].
struct BodyCursor<'a>(rocksdb::DBRawIteratorWithThreadMode<'a, DB>);

impl BodyCursor<'_> {
    /// The body under `key`, at or after the cursor (keys asked for in ascending order).
    fn body_of(&mut self, key: &[u8]) -> Result<Vec<u8>, StoreError> {
        while self.0.valid() && self.0.key().is_some_and(|k| k < key) {
            self.0.next();
        }
        match (self.0.key(), self.0.value()) {
            (Some(k), Some(v)) if k == key => Ok(v.to_vec()),
            _ => {
                self.0.status()?;
                Err(StoreError::Corrupt("a message's body is missing"))
            }
        }
    }
}

pub use crate::peer::{held_statement, message_from_json, message_to_json};
