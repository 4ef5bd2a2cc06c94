//! Revoked subaccount tokens, per account: a subaccount whose token is here may no longer act
//! for the account. At most [`MAX_REVOKED`] per account are kept, the most recently revoked.
//!
//! Key `account(33) ‖ token(36)` → the unix ms it was (last) revoked.

use rocksdb::WriteBatch;

use super::{owner_bytes, MessageStore, StoreError, CF_REVOKED};
use crate::auth::TOKEN_LEN;
use crate::UserPubkey;

/// Revocations kept per account (upstream's `MAX_SUBACCOUNT_TOKENS`).
pub const MAX_REVOKED: usize = 50;

fn key(pk: &UserPubkey, token: &[u8; TOKEN_LEN]) -> Vec<u8> {
    let mut k = owner_bytes(pk).to_vec();
    k.extend_from_slice(token);
    k
}

impl MessageStore {
    /// Revokes `tokens` for `pk` at `now_ms` (a token revoked again keeps the later time),
    /// keeping the account's [`MAX_REVOKED`] most recent.
    pub fn revoke(
        &self,
        pk: &UserPubkey,
        tokens: &[[u8; TOKEN_LEN]],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if tokens.is_empty() || self.discarding() {
            return Ok(());
        }
        let cf = self.cf(CF_REVOKED)?;
        let _w = self.lock();
        let mut b = WriteBatch::default();
        for t in tokens {
            b.put_cf(cf, key(pk, t), now_ms.to_be_bytes());
        }
        self.db.write(b)?;
        // Past the limit, the oldest revocations go; at equal times the ones this call made
        // stay, then the lowest tokens.
        let mut all = self.revocations(pk)?;
        if all.len() > MAX_REVOKED {
            let now: std::collections::HashSet<&[u8; TOKEN_LEN]> = tokens.iter().collect();
            all.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then(now.contains(&b.0).cmp(&now.contains(&a.0)))
                    .then(a.0.cmp(&b.0))
            });
            let mut b = WriteBatch::default();
            for (t, _) in &all[MAX_REVOKED..] {
                b.delete_cf(cf, key(pk, t));
            }
            self.db.write(b)?;
        }
        Ok(())
    }

    /// Lifts the revocation of `tokens` for `pk`; how many were revoked.
    pub fn unrevoke(
        &self,
        pk: &UserPubkey,
        tokens: &[[u8; TOKEN_LEN]],
    ) -> Result<usize, StoreError> {
        if self.discarding() {
            return Ok(0);
        }
        let cf = self.cf(CF_REVOKED)?;
        let _w = self.lock();
        let mut b = WriteBatch::default();
        let mut count = 0;
        let mut seen = std::collections::HashSet::new();
        for t in tokens {
            if seen.insert(*t) && self.db.get_cf(cf, key(pk, t))?.is_some() {
                count += 1;
                b.delete_cf(cf, key(pk, t));
            }
        }
        self.db.write(b)?;
        Ok(count)
    }

    /// Whether `token` is revoked for `pk`.
    pub fn is_revoked(&self, pk: &UserPubkey, token: &[u8; TOKEN_LEN]) -> bool {
        let Ok(cf) = self.cf(CF_REVOKED) else {
            return false;
        };
        // A read failure counts as revoked: refuse rather than let a revoked key act.
        self.db
            .get_cf(cf, key(pk, token))
            .map_or(true, |v| v.is_some())
    }

    /// An account's revoked tokens with when they were revoked.
    pub fn revocations(&self, pk: &UserPubkey) -> Result<Vec<([u8; TOKEN_LEN], u64)>, StoreError> {
        let cf = self.cf(CF_REVOKED)?;
        let prefix = owner_bytes(pk);
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(cf, prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (Ok(t), Ok(ts)) = (
                <[u8; TOKEN_LEN]>::try_from(&k[prefix.len()..]),
                <[u8; 8]>::try_from(&v[..]),
            ) else {
                return Err(StoreError::Corrupt("revocation record"));
            };
            out.push((t, u64::from_be_bytes(ts)));
        }
        Ok(out)
    }
}
