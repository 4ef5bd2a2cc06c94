//! Reads over the whole store: a random message for a storage test, and every message in key
//! order for handing data over.

use rocksdb::{Direction, IteratorMode};

use super::{layout::Meta, Message, MessageStore, StoreError, CF_META, OWNER_LEN};
use crate::UserPubkey;

/// A stored message without its body: what storage-test sampling looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    /// The account.
    pub pubkey: UserPubkey,
    /// Insertion number on this node (grows with every insert, replicated ones included).
    pub seq: u64,
    /// Client creation time, unix ms.
    pub timestamp: u64,
    /// Expiry, unix ms.
    pub expiry: u64,
}

impl From<&Meta> for MessageMeta {
    fn from(r: &Meta) -> MessageMeta {
        MessageMeta {
            pubkey: r.pubkey,
            seq: r.seq,
            timestamp: r.timestamp,
            expiry: r.expiry,
        }
    }
}

impl MessageStore {
    /// A message for a storage test, picked at random among those `eligible` accepts within
    /// `max_scan` messages from a point chosen by `random` (wrapping around to the first key):
    /// the first byte picks the account prefix (the first prefix held at or after it), the
    /// rest the place among that prefix's accounts, and `pick` the message among the eligible
    /// ones in the window. Only the chosen message's body is read.
    pub fn sample(
        &self,
        random: &[u8; OWNER_LEN],
        pick: u64,
        max_scan: usize,
        eligible: impl Fn(&MessageMeta) -> bool,
    ) -> Result<Option<Message>, StoreError> {
        let cf = self.cf(CF_META)?;
        let prefix = match self
            .db
            .iterator_cf(cf, IteratorMode::From(&random[..1], Direction::Forward))
            .next()
            .or_else(|| self.db.iterator_cf(cf, IteratorMode::Start).next())
        {
            Some(item) => item?.0.first().copied().unwrap_or(0),
            None => return Ok(None),
        };
        let mut start = *random;
        start[0] = prefix;
        let mut seen = 0;
        let mut found: Vec<(Box<[u8]>, Meta)> = Vec::new();
        // From the start point to the end, then from the first key up to the start point.
        for (pass, mode) in [
            IteratorMode::From(&start, Direction::Forward),
            IteratorMode::Start,
        ]
        .into_iter()
        .enumerate()
        {
            for item in self.db.iterator_cf(cf, mode) {
                let (k, v) = item?;
                if seen >= max_scan || (pass == 1 && k[..] >= start[..]) {
                    break;
                }
                seen += 1;
                let rec = Meta::decode(&k, &v)?;
                if eligible(&MessageMeta::from(&rec)) {
                    found.push((k, rec));
                }
            }
        }
        let Some(len) = u64::try_from(found.len()).ok().filter(|n| *n > 0) else {
            return Ok(None);
        };
        let (key, rec) = found.swap_remove(usize::try_from(pick % len).unwrap_or(0));
        match self.db.get_cf(self.cf(super::CF_MSG)?, &key)? {
            Some(body) => Ok(Some(rec.with_body(body))),
            None => Ok(None),
        }
    }

    /// Every message held, in key order (account, namespace, insertion), from `after` (a key
    /// returned by an earlier call) on, at most `max`, and at most `max_bytes` as they go
    /// between nodes ([`wire_size`]; the first always comes): for pulls and hand-overs, whose
    /// messages must fit what a peer accepts. Returns the messages and the key to continue
    /// from.
    pub fn scan(
        &self,
        after: Option<&[u8]>,
        max: usize,
        max_bytes: u64,
    ) -> Result<(Vec<Message>, Option<Vec<u8>>), StoreError> {
        let mode = match after {
            Some(k) => IteratorMode::From(k, Direction::Forward),
            None => IteratorMode::Start,
        };
        // Records first, then the bodies of those taken, from one snapshot.
        let snapshot = self.db.snapshot();
        let mut taken: Vec<(Vec<u8>, Meta)> = Vec::new();
        let mut next = None;
        let mut used = 0u64;
        for item in snapshot.iterator_cf(self.cf(CF_META)?, mode) {
            let (k, v) = item?;
            if after.is_some_and(|a| a == &k[..]) {
                continue;
            }
            let rec = Meta::decode(&k, &v)?;
            let cost = 256 + u64::from(rec.body_len).div_ceil(3) * 4;
            if taken.len() >= max || (!taken.is_empty() && used.saturating_add(cost) > max_bytes) {
                next = taken.last().map(|(k, _)| k.clone());
                break;
            }
            used = used.saturating_add(cost);
            taken.push((k.to_vec(), rec));
        }
        let keys: Vec<Vec<u8>> = taken.iter().map(|(k, _)| k.clone()).collect();
        let bodies = self.bodies(&keys, Some(&snapshot))?;
        let out = taken
            .into_iter()
            .zip(bodies)
            .map(|((_, rec), body)| rec.with_body(body))
            .collect();
        Ok((out, next))
    }
}

/// What a message takes between nodes, as JSON (its body in base64, and room for the other
/// fields): an upper bound.
pub fn wire_size(m: &Message) -> u64 {
    256 + (m.data.len() as u64).div_ceil(3) * 4
}
