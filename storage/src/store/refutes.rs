//! The account's requests that ended messages this node held (deletes, and expiry changes
//! that shortened them), kept for [`REFUTE_KEEP_MS`] so that a storage test of a message the
//! account ended can be answered with the account's own signature (`storage_test`).
//!
//! | family | key | value |
//! |---|---|---|
//! | `refute` | kept until, ms (8) ‖ id (8) | account (33) ‖ method length (1) ‖ method ‖ params (JSON) |
//! | `tomb` | account (33) ‖ hash ‖ the `refute` key | empty: a request that named the message |
//! | `bulkref` | account (33) ‖ the `refute` key | empty: a request over the account's messages |
//!
//! The id is the first 8 bytes of BLAKE2b of the account, method and params: the same request
//! applied twice is one record.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde_json::Value;

use super::{owner_bytes, u64_at, MessageStore, StoreError, CHUNK, OWNER_LEN};
use crate::storage_test::REFUTE_KEEP_MS;
use crate::UserPubkey;

pub(super) const CF_REFUTE: &str = "refute";
pub(super) const CF_TOMB: &str = "tomb";
pub(super) const CF_BULK: &str = "bulkref";

fn id(account: &UserPubkey, method: &str, params: &[u8]) -> [u8; 8] {
    let mut h = Blake2bVar::new(8).unwrap_or_else(|_| unreachable!("8 is a valid size"));
    h.update(&owner_bytes(account));
    h.update(method.as_bytes());
    h.update(&[0]);
    h.update(params);
    let mut out = [0u8; 8];
    h.finalize_variable(&mut out)
        .unwrap_or_else(|_| unreachable!("buffer matches the output size"));
    out
}

fn tomb_key(owner: &[u8], hash: &str, refute: &[u8]) -> Vec<u8> {
    [owner, hash.as_bytes(), refute].concat()
}

impl MessageStore {
    /// Keeps `params`, the account's request of `method` that ended messages at `now_ms`: the
    /// ones it named (`hashes`), or, for a request over the account (`None`), any it covered.
    pub fn keep_refutation(
        &self,
        account: &UserPubkey,
        method: &str,
        params: &Value,
        now_ms: u64,
        hashes: Option<&[String]>,
    ) -> Result<(), StoreError> {
        if self.discarding() {
            return Ok(());
        }
        let body = params.to_string().into_bytes();
        let owner = owner_bytes(account);
        let mut key = now_ms.saturating_add(REFUTE_KEEP_MS).to_be_bytes().to_vec();
        key.extend_from_slice(&id(account, method, &body));
        let mut value = owner.to_vec();
        value.push(u8::try_from(method.len()).unwrap_or(u8::MAX));
        value.extend_from_slice(method.as_bytes());
        value.extend_from_slice(&body);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_REFUTE)?, &key, value);
        match hashes {
            Some(hs) => {
                for h in hs {
                    batch.put_cf(self.cf(CF_TOMB)?, tomb_key(&owner, h, &key), []);
                }
            }
            None => batch.put_cf(self.cf(CF_BULK)?, [&owner[..], &key].concat(), []),
        }
        self.db.write(batch)?;
        Ok(())
    }

    fn refutation(&self, key: &[u8], now_ms: u64) -> Result<Option<(String, Value)>, StoreError> {
        if u64_at(key, 0).is_none_or(|until| until <= now_ms) {
            return Ok(None);
        }
        let Some(v) = self.db.get_cf(self.cf(CF_REFUTE)?, key)? else {
            return Ok(None);
        };
        let bad = StoreError::Corrupt("refutation record");
        let len = usize::from(*v.get(OWNER_LEN).ok_or(bad)?);
        let method = v
            .get(OWNER_LEN + 1..OWNER_LEN + 1 + len)
            .and_then(|m| std::str::from_utf8(m).ok())
            .ok_or(StoreError::Corrupt("refutation record"))?
            .to_owned();
        let params = serde_json::from_slice(&v[OWNER_LEN + 1 + len..])
            .map_err(|_| StoreError::Corrupt("refutation record"))?;
        Ok(Some((method, params)))
    }

    /// The account's kept requests that may have ended the message `hash`, as (method,
    /// params): the one that named it, and those over the account.
    pub fn refutations(
        &self,
        account: &UserPubkey,
        hash: &str,
        now_ms: u64,
    ) -> Result<Vec<(String, Value)>, StoreError> {
        let owner = owner_bytes(account);
        let mut keys = Vec::new();
        let named = [&owner[..], hash.as_bytes()].concat();
        for item in self.db.iterator_cf(
            self.cf(CF_TOMB)?,
            IteratorMode::From(&named, Direction::Forward),
        ) {
            let (k, _) = item?;
            if !k.starts_with(&named) || k.len() != named.len() + 16 {
                break;
            }
            keys.push(k[named.len()..].to_vec());
        }
        let bulk = self.cf(CF_BULK)?;
        for item in self
            .db
            .iterator_cf(bulk, IteratorMode::From(&owner, Direction::Forward))
        {
            let (k, _) = item?;
            if !k.starts_with(&owner) {
                break;
            }
            keys.push(k[OWNER_LEN..].to_vec());
        }
        let mut out = Vec::new();
        for k in keys {
            out.extend(self.refutation(&k, now_ms)?);
        }
        Ok(out)
    }

    /// Forgets kept requests whose time is up (at most `max`); returns how many.
    pub fn sweep_refutations(&self, now_ms: u64, max: usize) -> Result<usize, StoreError> {
        let (refute, tomb, bulk) = (self.cf(CF_REFUTE)?, self.cf(CF_TOMB)?, self.cf(CF_BULK)?);
        let mut n = 0;
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(refute, IteratorMode::Start) {
            let (k, v) = item?;
            if n >= max || u64_at(&k, 0).is_none_or(|until| until > now_ms) {
                break;
            }
            batch.delete_cf(refute, &k);
            if let Some(owner) = v.get(..OWNER_LEN) {
                batch.delete_cf(bulk, [owner, &k[..]].concat());
                // The hashes it named point at it no more (a later request that named one
                // again has put its own key there).
                if let Some((_, params)) = self.refutation(&k, 0)? {
                    let named: Vec<&str> = match &params["messages"] {
                        Value::String(h) => vec![h.as_str()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    for h in named {
                        batch.delete_cf(tomb, tomb_key(owner, h, &k));
                    }
                }
            }
            n += 1;
            if batch.len() >= CHUNK * 4 {
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        self.db.write(batch)?;
        Ok(n)
    }
}
