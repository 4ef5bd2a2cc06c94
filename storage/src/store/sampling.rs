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

/// A record with its key.
type Keyed = (Box<[u8]>, Meta);

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
        let found = self.scan_window(random, max_scan, |rec| eligible(&MessageMeta::from(rec)))?;
        Ok(self.picked(found, pick)?.map(|(m, _)| m))
    }

    /// The record `pick` chooses among `found` (any, uniformly), with its body.
    fn picked(&self, found: Vec<Keyed>, pick: u64) -> Result<Option<(Message, Meta)>, StoreError> {
        let Some(len) = u64::try_from(found.len()).ok().filter(|n| *n > 0) else {
            return Ok(None);
        };
        let Some((key, rec)) = found
            .into_iter()
            .nth(usize::try_from(pick % len).unwrap_or(0))
        else {
            return Ok(None);
        };
        Ok(self
            .db
            .get_cf(self.cf(super::CF_MSG)?, &key)?
            .map(|body| (rec.clone().with_body(body), rec)))
    }

    /// The records `wanted` accepts within `max_scan` from a point chosen by `random`
    /// (wrapping around to the first key; see [`MessageStore::sample`]), with their keys.
    fn scan_window(
        &self,
        random: &[u8; OWNER_LEN],
        max_scan: usize,
        wanted: impl Fn(&Meta) -> bool,
    ) -> Result<Vec<Keyed>, StoreError> {
        let cf = self.cf(CF_META)?;
        let prefix = match self
            .db
            .iterator_cf(cf, IteratorMode::From(&random[..1], Direction::Forward))
            .next()
            .or_else(|| self.db.iterator_cf(cf, IteratorMode::Start).next())
        {
            Some(item) => item?.0.first().copied().unwrap_or(0),
            None => return Ok(Vec::new()),
        };
        let mut start = *random;
        start[0] = prefix;
        let mut seen = 0;
        let mut found = Vec::new();
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
                if wanted(&rec) {
                    found.push((k, rec));
                }
            }
        }
        Ok(found)
    }

    /// A message for a storage test of `worker`: as [`MessageStore::sample`], among messages
    /// that carry the worker's ack, with that ack; `eligible` sees each such message and ack.
    pub fn sample_acked(
        &self,
        random: &[u8; OWNER_LEN],
        pick: u64,
        max_scan: usize,
        worker: &[u8; 32],
        eligible: impl Fn(&MessageMeta, &crate::storage_test::Ack) -> bool,
    ) -> Result<Option<(Message, crate::storage_test::Ack)>, StoreError> {
        use crate::storage_test::Ack;
        let ack_of = |rec: &Meta| {
            let a = rec.acks.iter().find(|a| Ack::member_of(a) == worker)?;
            let m = crate::storage_test::Acked {
                account: rec.pubkey,
                namespace: rec.namespace,
                hash: rec.hash.clone(),
                timestamp: rec.timestamp,
                expiry: rec.expiry,
            };
            Some(Ack::from_compact(a, &m))
        };
        let found = self.scan_window(random, max_scan, |rec| {
            ack_of(rec).is_some_and(|a| eligible(&MessageMeta::from(rec), &a))
        })?;
        Ok(self
            .picked(found, pick)?
            .and_then(|(m, rec)| Some((m, ack_of(&rec)?))))
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
        // Records and their bodies side by side, from one snapshot.
        let snapshot = self.db.snapshot();
        let mut bodies = self.body_cursor(&snapshot, after.unwrap_or_default())?;
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut used = 0u64;
        for item in snapshot.iterator_cf(self.cf(CF_META)?, mode) {
            let (k, v) = item?;
            if after.is_some_and(|a| a == &k[..]) {
                continue;
            }
            let rec = Meta::decode(&k, &v)?;
            let cost = 256 + u64::from(rec.body_len).div_ceil(3) * 4;
            if out.len() >= max || (!out.is_empty() && used.saturating_add(cost) > max_bytes) {
                return Ok((out, last));
            }
            used = used.saturating_add(cost);
            out.push(rec.with_body(bodies.body_of(&k)?));
            last = Some(k.to_vec());
        }
        Ok((out, None))
    }
}

/// What a message takes between nodes, as JSON (its body in base64, and room for the other
/// fields): an upper bound.
pub fn wire_size(m: &Message) -> u64 {
    256 + (m.data.len() as u64).div_ceil(3) * 4
}
