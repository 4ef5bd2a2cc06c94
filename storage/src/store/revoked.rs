//! Revoked subaccount tokens, per account: a subaccount whose token is here may no longer act
//! for the account. At most [`MAX_REVOKED`] per account are kept, the most recently revoked.
//!
//! Key `account(33) ‖ token(36)` → the unix ms it was (last) revoked (8, big-endian) ‖ the
//! account's signed request that revoked it (its `revoke_subaccount` params as JSON: the
//! [`Revocation::proof`] members pass on; empty for a record made before proofs were kept,
//! which is never passed on).

use rocksdb::WriteBatch;

use super::{owner_bytes, MessageStore, StoreError, CF_REVOKED, OWNER_LEN};
use crate::auth::TOKEN_LEN;
use crate::UserPubkey;

/// Revocations kept per account (upstream's `MAX_SUBACCOUNT_TOKENS`).
pub const MAX_REVOKED: usize = 50;

/// A revoked token as members pass it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The token.
    pub token: [u8; TOKEN_LEN],
    /// When it was revoked (unix ms: the signed request's timestamp).
    pub at: u64,
    /// The account's signed request (see the module docs; `rpc::proven_revocation` checks it).
    pub proof: Vec<u8>,
}

fn value(at: u64, proof: &[u8]) -> Vec<u8> {
    let mut v = at.to_be_bytes().to_vec();
    v.extend_from_slice(proof);
    v
}

fn parse(v: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let at = v
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or(StoreError::Corrupt("revocation record"))?;
    Ok((u64::from_be_bytes(at), &v[8..]))
}

fn key(pk: &UserPubkey, token: &[u8; TOKEN_LEN]) -> Vec<u8> {
    let mut k = owner_bytes(pk).to_vec();
    k.extend_from_slice(token);
    k
}

impl MessageStore {
    /// Revokes `tokens` for `pk` at `at` (a token revoked again keeps the later time), with the
    /// account's signed request as their proof, keeping the account's [`MAX_REVOKED`] most
    /// recent.
    pub fn revoke(
        &self,
        pk: &UserPubkey,
        tokens: &[[u8; TOKEN_LEN]],
        at: u64,
        proof: &[u8],
    ) -> Result<(), StoreError> {
        let entries: Vec<_> = tokens
            .iter()
            .map(|t| Revocation {
                token: *t,
                at,
                proof: proof.to_vec(),
            })
            .collect();
        self.put_revocations(pk, &entries, true).map(|_| ())
    }

    /// Takes revocations another node holds (when this node joins or returns, or an account
    /// is handed over), whose proofs the caller checked: each keeps the later of its time here
    /// and there. They never push out a revocation held here: past [`MAX_REVOKED`], only the
    /// newest of those that fit are added. Only an account that holds messages here keeps any
    /// (as with [`MessageStore::revoke`] through the RPC). Returns how many were new or later.
    pub fn merge_revocations(
        &self,
        pk: &UserPubkey,
        entries: &[Revocation],
    ) -> Result<usize, StoreError> {
        if entries.is_empty() || !self.holds_messages(pk)? {
            return Ok(0);
        }
        self.put_revocations(pk, entries, false)
    }

    /// Writes revocations (keeping the later time of a token already revoked), then trims the
    /// account to [`MAX_REVOKED`]: the oldest go; at equal times those written now stay when
    /// `own` (the account's own call), then the lowest tokens. Entries that are not `own`
    /// only fill the room left (the newest first) and never push out one held. Returns how
    /// many were new or later.
    fn put_revocations(
        &self,
        pk: &UserPubkey,
        entries: &[Revocation],
        own: bool,
    ) -> Result<usize, StoreError> {
        if entries.is_empty() || self.discarding() {
            return Ok(0);
        }
        let cf = self.cf(CF_REVOKED)?;
        let _w = self.lock();
        let held: std::collections::HashMap<[u8; TOKEN_LEN], u64> =
            self.revocations(pk)?.into_iter().collect();
        // One time per token, the latest (with its proof).
        let mut latest: std::collections::HashMap<[u8; TOKEN_LEN], (u64, &[u8])> =
            Default::default();
        for r in entries {
            let e = latest.entry(r.token).or_insert((r.at, &r.proof));
            if r.at > e.0 {
                *e = (r.at, &r.proof);
            }
        }
        let mut fresh: Vec<([u8; TOKEN_LEN], u64, &[u8])> = latest
            .into_iter()
            .filter(|(t, (at, _))| held.get(t).is_none_or(|h| h < at))
            .map(|(t, (at, proof))| (t, at, proof))
            .collect();
        if !own {
            // Later times for tokens held, then new tokens while there is room, newest first.
            fresh.sort_by(|a, b| {
                held.contains_key(&b.0)
                    .cmp(&held.contains_key(&a.0))
                    .then(b.1.cmp(&a.1))
                    .then(a.0.cmp(&b.0))
            });
            let mut room = MAX_REVOKED.saturating_sub(held.len());
            fresh.retain(|(t, _, _)| {
                held.contains_key(t) || {
                    let fits = room > 0;
                    room = room.saturating_sub(1);
                    fits
                }
            });
        }
        let mut b = WriteBatch::default();
        for (t, at, proof) in &fresh {
            b.put_cf(cf, key(pk, t), value(*at, proof));
        }
        let changed = fresh.len();
        self.db.write(b)?;
        let mut all = self.revocations(pk)?;
        if all.len() > MAX_REVOKED {
            let now: std::collections::HashSet<&[u8; TOKEN_LEN]> = if own {
                entries.iter().map(|r| &r.token).collect()
            } else {
                Default::default()
            };
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
        Ok(changed)
    }

    /// The revocations held with their proofs, in key order (account, token), from `after` (a
    /// key returned by an earlier call) on, at most `max`: what a member that joins the swarm
    /// pulls. Records without a proof are passed over. Returns (account, revocation) of each
    /// and the key to continue from.
    #[expect(clippy::type_complexity, reason = "a page and its cursor")]
    pub fn revocations_after(
        &self,
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<(Vec<(UserPubkey, Revocation)>, Option<Vec<u8>>), StoreError> {
        let cf = self.cf(CF_REVOKED)?;
        let mode = match after {
            Some(k) => rocksdb::IteratorMode::From(k, rocksdb::Direction::Forward),
            None => rocksdb::IteratorMode::Start,
        };
        let mut out = Vec::new();
        let mut last = None;
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item?;
            if after.is_some_and(|a| a == &k[..]) {
                continue;
            }
            if out.len() >= max {
                return Ok((out, last));
            }
            let (Some(prefix), Ok(token)) = (
                k.first(),
                <[u8; TOKEN_LEN]>::try_from(k.get(OWNER_LEN..).unwrap_or_default()),
            ) else {
                return Err(StoreError::Corrupt("revocation record"));
            };
            let (at, proof) = parse(&v)?;
            last = Some(k.to_vec());
            if proof.is_empty() {
                continue;
            }
            let mut acct = [0u8; 32];
            acct.copy_from_slice(&k[1..OWNER_LEN]);
            let account = UserPubkey {
                prefix: *prefix,
                key: acct,
            };
            out.push((
                account,
                Revocation {
                    token,
                    at,
                    proof: proof.to_vec(),
                },
            ));
        }
        Ok((out, None))
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
        Ok(self
            .revocations_with_proofs(pk)?
            .into_iter()
            .map(|r| (r.token, r.at))
            .collect())
    }

    /// An account's revocations with their proofs (empty for records made before proofs were
    /// kept).
    pub fn revocations_with_proofs(&self, pk: &UserPubkey) -> Result<Vec<Revocation>, StoreError> {
        let cf = self.cf(CF_REVOKED)?;
        let prefix = owner_bytes(pk);
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(cf, prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let Ok(token) = <[u8; TOKEN_LEN]>::try_from(&k[prefix.len()..]) else {
                return Err(StoreError::Corrupt("revocation record"));
            };
            let (at, proof) = parse(&v)?;
            out.push(Revocation {
                token,
                at,
                proof: proof.to_vec(),
            });
        }
        Ok(out)
    }
}
