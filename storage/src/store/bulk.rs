//! Writes that may touch many messages: deletes and expiry changes by hash, over a whole
//! account, and the sweep of expired messages. Each reads records only (never bodies) and
//! works in chunks of [`CHUNK`] messages, taking the write lock for each chunk on its own, so
//! that stores from other clients go on in between.
//!
//! A chunked operation over an account is not atomic: a message stored while it runs may or
//! may not be in it (as if it had come just before or just after), and each message is
//! handled once.

use std::collections::BTreeSet;

use rocksdb::{IteratorMode, WriteBatch};

use super::{
    expiry_key, layout::Meta, owner_bytes, u64_at, Delta, ExpireMode, MessageStore, NsFilter,
    StoreError, CF_EXPIRY, CF_META, CHUNK,
};
use crate::{Namespace, UserPubkey};

impl MessageStore {
    /// Deletes an account's messages by hash (any namespace); returns the hashes deleted,
    /// sorted.
    pub fn delete(&self, pk: &UserPubkey, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        let owner = owner_bytes(pk);
        let mut deleted = BTreeSet::new();
        for chunk in hashes.chunks(CHUNK) {
            let mut w = self.lock();
            let mut batch = WriteBatch::default();
            let mut delta = Delta::default();
            for h in chunk {
                if deleted.contains(h) {
                    continue;
                }
                if let Some((k, rec)) = self.by_hash(h)? {
                    if k.starts_with(&owner) {
                        self.remove(&mut batch, &mut delta, &k, &rec)?;
                        deleted.insert(rec.hash);
                    }
                }
            }
            self.apply(&mut w, batch, delta)?;
            parking_lot::MutexGuard::unlock_fair(w);
        }
        Ok(deleted.into_iter().collect())
    }

    /// Runs `each` on the records of an account's messages in `ns`, a chunk at a time under
    /// the write lock, writing what it asks for after each chunk.
    fn over_account(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
        mut each: impl FnMut(&Self, &mut WriteBatch, &mut Delta, &[u8], &Meta) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut w = self.lock();
            let chunk = self.owned(pk, ns, after.as_deref(), CHUNK)?;
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let mut batch = WriteBatch::default();
            let mut delta = Delta::default();
            for (k, rec) in &chunk {
                each(self, &mut batch, &mut delta, k, rec)?;
            }
            self.apply(&mut w, batch, delta)?;
            parking_lot::MutexGuard::unlock_fair(w);
            if chunk.len() < CHUNK {
                return Ok(());
            }
        }
    }

    /// Deletes an account's messages in `ns` whose timestamp is at most `before` (`u64::MAX`:
    /// all). Returns (namespace, hash) of each, sorted by namespace then hash.
    pub fn delete_before(
        &self,
        pk: &UserPubkey,
        ns: NsFilter,
        before: u64,
    ) -> Result<Vec<(Namespace, String)>, StoreError> {
        let mut deleted = Vec::new();
        self.over_account(pk, ns, |s, batch, delta, k, rec| {
            if rec.timestamp <= before {
                s.remove(batch, delta, k, rec)?;
                deleted.push((rec.namespace, rec.hash.clone()));
            }
            Ok(())
        })?;
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
        let mut updated = Vec::new();
        self.over_account(pk, ns, |s, batch, _, k, rec| {
            if rec.expiry > expiry {
                s.set_expiry(batch, k, rec, expiry)?;
                updated.push((rec.namespace, rec.hash.clone()));
            }
            Ok(())
        })?;
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
        let owner = owner_bytes(pk);
        let mut updated = Vec::new();
        let mut unchanged = Vec::new();
        let mut seen = BTreeSet::new();
        for chunk in changes.chunks(CHUNK) {
            let mut w = self.lock();
            let mut batch = WriteBatch::default();
            for (h, e) in chunk {
                if !seen.insert(h.clone()) {
                    continue;
                }
                let Some((k, rec)) = self.by_hash(h)? else {
                    continue;
                };
                if !k.starts_with(&owner) {
                    continue;
                }
                let allowed = match mode {
                    ExpireMode::Set => rec.expiry != *e,
                    ExpireMode::Shorten => *e < rec.expiry,
                    ExpireMode::Extend => *e > rec.expiry,
                };
                if allowed {
                    self.set_expiry(&mut batch, &k, &rec, *e)?;
                    updated.push((rec.hash, *e));
                } else if rec.expiry == *e && mode == ExpireMode::Set {
                    updated.push((rec.hash, *e));
                } else {
                    unchanged.push((rec.hash, rec.expiry));
                }
            }
            self.apply(&mut w, batch, Delta::default())?;
            parking_lot::MutexGuard::unlock_fair(w);
        }
        updated.sort();
        unchanged.sort();
        Ok((updated, unchanged))
    }

    /// Deletes messages whose expiry is at or before `now_ms` (§1.9), at most `max`, a chunk
    /// at a time; returns how many. The daemon calls it until it returns less than `max`.
    pub fn sweep(&self, now_ms: u64, max: usize) -> Result<usize, StoreError> {
        let mut n = 0;
        // Where the last chunk stopped: the next seeks past it rather than walking again over
        // the entries it deleted.
        let mut from: Option<Vec<u8>> = None;
        while n < max {
            let want = CHUNK.min(max - n);
            let mut w = self.lock();
            let mut batch = WriteBatch::default();
            let mut delta = Delta::default();
            let mut here = 0;
            let mode = match &from {
                Some(k) => IteratorMode::From(k, rocksdb::Direction::Forward),
                None => IteratorMode::Start,
            };
            for item in self.db.iterator_cf(self.cf(CF_EXPIRY)?, mode) {
                let (k, _) = item?;
                if from.as_deref() == Some(&k[..]) {
                    continue;
                }
                let Some(expiry) = u64_at(&k, 0) else {
                    return Err(StoreError::Corrupt("expiry key"));
                };
                if expiry > now_ms || here >= want {
                    break;
                }
                let key = &k[8..];
                match self.db.get_cf(self.cf(CF_META)?, key)? {
                    Some(v) => {
                        let rec = Meta::decode(key, &v)?;
                        if rec.expiry == expiry {
                            self.remove(&mut batch, &mut delta, key, &rec)?;
                        } else {
                            // A stale entry (the expiry moved): only it goes.
                            batch.delete_cf(self.cf(CF_EXPIRY)?, expiry_key(expiry, key));
                        }
                    }
                    None => batch.delete_cf(self.cf(CF_EXPIRY)?, &k),
                }
                here += 1;
                from = Some(k.to_vec());
            }
            self.apply(&mut w, batch, delta)?;
            parking_lot::MutexGuard::unlock_fair(w);
            n += here;
            if here < want {
                break;
            }
        }
        Ok(n)
    }
}
