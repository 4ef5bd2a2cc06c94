//! The message store against reference `storage-and-onion.md` §1.7–§1.10: store outcomes,
//! public outboxes, retrieval order and budgets, deletes, expiry changes, sweeping, per-account
//! limits, reopening, and a model-based property test of random operation sequences.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sispop_storage::store::{
    ExpireMode, Limits, Message, MessageStore, NsFilter, StoreError, StoreOutcome, MAX_MESSAGE_BODY,
};
use sispop_storage::{message_hash, Namespace, UserPubkey};

fn pk(i: u8) -> UserPubkey {
    UserPubkey {
        prefix: 5,
        key: [i; 32],
    }
}

fn msg(owner: u8, ns: Namespace, body: &str, t: u64, expiry: u64) -> Message {
    let p = pk(owner);
    Message {
        pubkey: p,
        namespace: ns,
        hash: message_hash(&p, ns, body.as_bytes()),
        timestamp: t,
        expiry,
        data: body.as_bytes().to_vec(),
    }
}

fn open(dir: &tempfile::TempDir) -> MessageStore {
    MessageStore::open(&dir.path().join("storage"), Limits::default()).expect("open")
}

fn hashes(ms: &[Message]) -> Vec<String> {
    ms.iter().map(|m| m.hash.clone()).collect()
}

#[test]
fn store_outcomes_and_retrieval_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let a = msg(1, 0, "a", 1000, 5000);
    assert_eq!(
        s.store(&a, false).expect("store"),
        (StoreOutcome::New, 5000)
    );
    assert_eq!(
        s.store(&a, false).expect("store"),
        (StoreOutcome::Exists, 5000)
    );
    let mut shorter = a.clone();
    shorter.expiry = 4000;
    assert_eq!(
        s.store(&shorter, false).expect("store"),
        (StoreOutcome::Exists, 5000),
        "a shorter expiry is not taken"
    );
    let mut longer = a.clone();
    longer.expiry = 9000;
    longer.data = b"other data is never overwritten".to_vec();
    assert_eq!(
        s.store(&longer, false).expect("store"),
        (StoreOutcome::Extended, 9000)
    );
    // Insertion order, not hash or timestamp order; namespaces and owners apart.
    let b = msg(1, 0, "b", 500, 5000);
    let c = msg(1, 0, "c", 100, 5000);
    let other_ns = msg(1, -10, "d", 100, 5000);
    let other_owner = msg(2, 0, "e", 100, 5000);
    for m in [&b, &c, &other_ns, &other_owner] {
        s.store(m, false).expect("store");
    }
    let (got, more) = s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(
        hashes(&got),
        [a.hash.clone(), b.hash.clone(), c.hash.clone()]
    );
    assert!(!more);
    assert_eq!(got[0].data, b"a", "data kept");
    assert_eq!(got[0].expiry, 9000);
    let (got, _) = s
        .retrieve(&pk(1), -10, None, 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(got, std::slice::from_ref(&other_ns));
    // last_hash: after it; unknown (or another namespace's) hash: from the start.
    let (got, _) = s
        .retrieve(&pk(1), 0, Some(&a.hash), 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(hashes(&got), [b.hash.clone(), c.hash.clone()]);
    let (got, _) = s
        .retrieve(&pk(1), 0, Some(&other_ns.hash), 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(got.len(), 3);
    // Count and byte budgets; the first message is always returned.
    let (got, more) = s
        .retrieve(&pk(1), 0, None, 2, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!((got.len(), more), (2, true));
    let (got, more) = s.retrieve(&pk(1), 0, None, 0, 1, 0).expect("retrieve");
    assert_eq!((got.len(), more), (1, true));
    let one = 100 + 43 + 4;
    let (got, more) = s
        .retrieve(&pk(1), 0, None, 0, 2 * one, 0)
        .expect("retrieve");
    assert_eq!((got.len(), more), (2, true));
    assert_eq!(s.usage(&pk(1)).expect("usage"), (4, 4));
}

#[test]
fn public_outbox_keeps_one_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let first = msg(1, -1, "profile v1", 1, 5000);
    let second = msg(1, -1, "profile v2", 2, 5000);
    let inbox = msg(1, 0, "dm", 1, 5000);
    s.store(&first, true).expect("store");
    s.store(&inbox, false).expect("store");
    s.store(&second, true).expect("store");
    let (got, _) = s
        .retrieve(&pk(1), -1, None, 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(got, [second]);
    let (got, _) = s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(got, [inbox], "other namespaces untouched");
    assert_eq!(s.usage(&pk(1)).expect("usage").0, 2);
}

#[test]
fn deletes_touch_only_the_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let mine: Vec<Message> = (0..4)
        .map(|i| {
            msg(
                1,
                if i < 2 { 0 } else { 3 },
                &format!("m{i}"),
                100 * i,
                9000,
            )
        })
        .collect();
    let theirs = msg(2, 0, "t", 0, 9000);
    for m in mine.iter().chain([&theirs]) {
        s.store(m, false).expect("store");
    }
    // By hash: another owner's hash and unknown hashes are skipped; duplicates count once.
    let deleted = s
        .delete(
            &pk(1),
            &[
                mine[1].hash.clone(),
                theirs.hash.clone(),
                "x".repeat(43),
                mine[1].hash.clone(),
            ],
        )
        .expect("delete");
    assert_eq!(deleted, [mine[1].hash.clone()]);
    assert_eq!(
        s.get_expiries(&pk(2), std::slice::from_ref(&theirs.hash))
            .expect("expiries")
            .len(),
        1
    );
    // Before a timestamp, in one namespace or all.
    let gone = s
        .delete_before(&pk(1), NsFilter::One(3), 200)
        .expect("delete_before");
    assert_eq!(gone, [(3, mine[2].hash.clone())]);
    let gone = s.delete_all(&pk(1), NsFilter::All).expect("delete_all");
    let mut want = vec![(0, mine[0].hash.clone()), (3, mine[3].hash.clone())];
    want.sort();
    assert_eq!(gone, want);
    assert_eq!(s.usage(&pk(1)).expect("usage"), (0, 0));
    assert_eq!(s.usage(&pk(2)).expect("usage"), (1, 1));
}

#[test]
fn expiry_changes_and_sweeping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let ms: Vec<Message> = (0..3)
        .map(|i| msg(1, 0, &format!("m{i}"), 0, 1000 * (i + 1)))
        .collect();
    for m in &ms {
        s.store(m, false).expect("store");
    }
    // expire_all only shortens.
    let upd = s
        .expire_all(&pk(1), NsFilter::All, 1500)
        .expect("expire_all");
    let mut want = vec![(0, ms[1].hash.clone()), (0, ms[2].hash.clone())];
    want.sort();
    assert_eq!(upd, want);
    // expire: extend-only leaves earlier requests unchanged and reports current expiries.
    let (u, unchanged) = s
        .expire(
            &pk(1),
            &[(ms[0].hash.clone(), 5000), (ms[1].hash.clone(), 1200)],
            ExpireMode::Extend,
        )
        .expect("expire");
    assert_eq!(u, [(ms[0].hash.clone(), 5000)]);
    assert_eq!(unchanged, [(ms[1].hash.clone(), 1500)]);
    let (u, _) = s
        .expire(&pk(1), &[(ms[0].hash.clone(), 100)], ExpireMode::Shorten)
        .expect("expire");
    assert_eq!(u, [(ms[0].hash.clone(), 100)]);
    let exp = s.get_expiries(&pk(1), &hashes(&ms)).expect("get_expiries");
    assert_eq!(
        exp.values().copied().collect::<Vec<_>>().len(),
        3,
        "{exp:?}"
    );
    assert_eq!(exp[&ms[0].hash], 100);
    // Sweeping follows the new expiries.
    assert_eq!(s.sweep(99, 100).expect("sweep"), 0);
    assert_eq!(s.sweep(1500, 100).expect("sweep"), 3);
    assert_eq!(s.usage(&pk(1)).expect("usage"), (0, 0));
    assert!(s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 0)
        .expect("retrieve")
        .0
        .is_empty());
}

#[test]
fn limits_refuse_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = MessageStore::open(
        &dir.path().join("storage"),
        Limits {
            max_messages: 2,
            max_bytes: 10,
        },
    )
    .expect("open");
    s.store(&msg(1, 0, "12345", 0, 9), false).expect("store");
    assert!(matches!(
        s.store(&msg(1, 0, "123456", 0, 9), false),
        Err(StoreError::Full(_, "byte limit"))
    ));
    s.store(&msg(1, 0, "1", 0, 9), false).expect("store");
    assert!(matches!(
        s.store(&msg(1, 0, "2", 0, 9), false),
        Err(StoreError::Full(_, "message count limit"))
    ));
    assert_eq!(s.usage(&pk(1)).expect("usage"), (2, 6));
    s.store(&msg(2, 0, "other", 0, 9), false)
        .expect("limits are per account");
    let big = Message {
        data: vec![0; MAX_MESSAGE_BODY + 1],
        ..msg(3, 0, "", 0, 9)
    };
    assert!(matches!(s.store(&big, false), Err(StoreError::TooLarge(_))));
    // Messages from peers: one a full account has no room for is skipped, the rest kept.
    let from_peers = [
        msg(1, 0, "3", 0, 9),
        msg(4, 0, "4", 0, 9),
        msg(2, 0, "5", 0, 9),
    ];
    assert_eq!(s.store_new(&from_peers).expect("store_new"), [1, 2]);
    assert_eq!(s.usage(&pk(1)).expect("usage"), (2, 6));
    assert_eq!(s.usage(&pk(4)).expect("usage"), (1, 1));
}

/// What anyone may store unsigned (the public namespaces, `ns % 10 == 0`) and what only the
/// owner's signature stores have budgets of their own: a full inbox leaves the owner's own
/// namespaces their whole room, counted again from the records after a reopen too.
#[test]
fn an_inbox_filled_by_strangers_leaves_the_owners_namespaces_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits {
        max_messages: 3,
        max_bytes: 1_000,
    };
    let s = MessageStore::open(&dir.path().join("storage"), limits).expect("open");
    for i in 0..3 {
        s.store(&msg(1, 0, &format!("spam {i}"), 0, 9), false)
            .expect("store");
    }
    assert!(matches!(
        s.store(&msg(1, 0, "one more", 0, 9), false),
        Err(StoreError::Full(..))
    ));
    assert!(matches!(
        s.store(&msg(1, -10, "another public one", 0, 9), false),
        Err(StoreError::Full(..))
    ));
    for ns in [2, 3, -11] {
        s.store(&msg(1, ns, "the owner's", 0, 9), false)
            .expect("signed namespaces have their own room");
    }
    drop(s);
    let s = MessageStore::open(&dir.path().join("storage"), limits).expect("open");
    assert!(matches!(
        s.store(&msg(1, 5, "a fourth signed", 0, 9), false),
        Err(StoreError::Full(..))
    ));
    assert!(matches!(
        s.store(&msg(1, 0, "spam again", 0, 9), false),
        Err(StoreError::Full(..))
    ));
    assert_eq!(s.usage(&pk(1)).expect("usage").0, 6);
}

/// A message past its expiry is never retrieved, swept yet or not.
#[test]
fn expired_messages_are_never_retrieved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let (gone, kept) = (msg(1, 0, "gone", 0, 1_000), msg(1, 0, "kept", 0, 5_000));
    s.store(&gone, false).expect("store");
    s.store(&kept, false).expect("store");
    let (got, _) = s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 1_000)
        .expect("retrieve");
    assert_eq!(got, std::slice::from_ref(&kept));
    let (got, _) = s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 999)
        .expect("retrieve");
    assert_eq!(got.len(), 2);
}

#[test]
fn reopened_store_keeps_everything_and_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = msg(1, 0, "before", 0, 9000);
    {
        let s = open(&dir);
        s.store(&before, false).expect("store");
    }
    let s = open(&dir);
    let after = msg(1, 0, "after", 0, 9000);
    s.store(&after, false).expect("store");
    let (got, _) = s
        .retrieve(&pk(1), 0, None, 0, u64::MAX, 0)
        .expect("retrieve");
    assert_eq!(got, [before, after]);
    // Scanning in pages visits every message once.
    for m in (0..5).map(|i| msg(2, 7, &format!("s{i}"), 0, 9000)) {
        s.store(&m, false).expect("store");
    }
    let scan_all = |max: usize, max_bytes: u64| {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let (page, next) = s.scan(cursor.as_deref(), max, max_bytes).expect("scan");
            assert!(!page.is_empty() && page.len() <= max);
            let bytes: u64 = page.iter().map(sispop_storage::store::wire_size).sum();
            assert!(
                page.len() == 1 || bytes <= max_bytes,
                "{bytes} > {max_bytes}"
            );
            seen.extend(page);
            pages += 1;
            match next {
                Some(k) => cursor = Some(k),
                None => return (seen, pages),
            }
        }
    };
    let (seen, pages) = scan_all(3, u64::MAX);
    assert_eq!((seen.len(), pages), (7, 3));
    // A byte budget under one message's size still moves on, one message a page.
    let (seen, pages) = scan_all(100, 1);
    assert_eq!((seen.len(), pages), (7, 7));
    // Room for two messages a page.
    let two = 2 * sispop_storage::store::wire_size(&seen[0]);
    let (seen, pages) = scan_all(100, two);
    assert_eq!((seen.len(), pages), (7, 4));
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Store(u8, i16, u8, u64),
    Delete(u8, u8),
    DeleteAll(u8, Option<i16>),
    ExpireAll(u8, u64),
    Sweep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let owner = 0u8..3;
    let ns = prop_oneof![Just(0i16), Just(-1), Just(3)];
    prop_oneof![
        4 => (owner.clone(), ns.clone(), 0u8..6, 1u64..100)
            .prop_map(|(o, n, b, e)| Op::Store(o, n, b, e)),
        1 => (owner.clone(), 0u8..6).prop_map(|(o, b)| Op::Delete(o, b)),
        1 => (owner.clone(), proptest::option::of(ns)).prop_map(|(o, n)| Op::DeleteAll(o, n)),
        1 => (owner, 1u64..100).prop_map(|(o, e)| Op::ExpireAll(o, e)),
        1 => (1u64..100).prop_map(Op::Sweep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random operations on the store and on a plain in-memory model give the same messages
    /// in the same order, with the same per-account totals.
    #[test]
    fn store_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        // (owner, ns) -> insertion-ordered messages.
        let mut model: BTreeMap<(u8, i16), Vec<Message>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Store(o, ns, body, expiry) => {
                    let m = msg(o, ns, &format!("body{body}"), 0, expiry);
                    let outbox = ns == -1;
                    s.store(&m, outbox).expect("store");
                    let list = model.entry((o, ns)).or_default();
                    if outbox {
                        list.retain(|x| x.hash == m.hash);
                    }
                    match list.iter_mut().find(|x| x.hash == m.hash) {
                        Some(x) => x.expiry = x.expiry.max(expiry),
                        None => list.push(m),
                    }
                }
                Op::Delete(o, body) => {
                    // Hash of the body in namespace 0.
                    let h = msg(o, 0, &format!("body{body}"), 0, 0).hash;
                    s.delete(&pk(o), std::slice::from_ref(&h)).expect("delete");
                    for ((mo, _), list) in model.iter_mut() {
                        if *mo == o {
                            list.retain(|x| x.hash != h);
                        }
                    }
                }
                Op::DeleteAll(o, ns) => {
                    let f = ns.map_or(NsFilter::All, NsFilter::One);
                    s.delete_all(&pk(o), f).expect("delete_all");
                    for ((mo, mns), list) in model.iter_mut() {
                        if *mo == o && ns.is_none_or(|n| n == *mns) {
                            list.clear();
                        }
                    }
                }
                Op::ExpireAll(o, e) => {
                    s.expire_all(&pk(o), NsFilter::All, e).expect("expire_all");
                    for ((mo, _), list) in model.iter_mut() {
                        if *mo == o {
                            for x in list.iter_mut() {
                                x.expiry = x.expiry.min(e);
                            }
                        }
                    }
                }
                Op::Sweep(now) => {
                    s.sweep(now, usize::MAX).expect("sweep");
                    for list in model.values_mut() {
                        list.retain(|x| x.expiry > now);
                    }
                }
            }
        }
        let mut totals = Vec::new();
        for o in 0..3u8 {
            let mut count = 0u64;
            let mut bytes = 0u64;
            for ns in [0i16, -1, 3] {
                let (got, _) = s.retrieve(&pk(o), ns, None, 0, u64::MAX, 0).expect("retrieve");
                let want = model.get(&(o, ns)).cloned().unwrap_or_default();
                prop_assert_eq!(&got, &want);
                count += want.len() as u64;
                bytes += want.iter().map(|m| m.data.len() as u64).sum::<u64>();
            }
            prop_assert_eq!(s.usage(&pk(o)).expect("usage"), (count, bytes));
            totals.push((count, bytes));
        }
        // The totals kept in memory through the writes are those counted afresh from the
        // messages after a restart.
        drop(s);
        let s = open(&dir);
        for o in 0..3u8 {
            prop_assert_eq!(s.usage(&pk(o)).expect("usage"), totals[usize::from(o)]);
        }
    }
}

/// A store made when account totals had a column family of their own opens, and loses it.
#[test]
fn a_store_with_the_old_totals_family_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("storage");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&o, &path, ["msg", "hash", "expiry", "owner", "revoked"])
            .expect("old layout");
        let cf = db.cf_handle("owner").expect("owner family");
        db.put_cf(cf, [1u8; 33], [0u8; 16]).expect("put");
    }
    let s = open(&dir);
    s.store(&msg(1, 0, "after", 0, 9000), false).expect("store");
    assert_eq!(s.usage(&pk(1)).expect("usage"), (1, 5));
    drop(s);
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), &path).expect("list");
    assert!(!families.iter().any(|f| f == "owner"), "{families:?}");
}

#[test]
fn peer_messages_round_trip_and_forged_hashes_are_refused() {
    use sispop_storage::store::{message_from_json, message_to_json};
    let m = msg(1, -10, "replicated", 5, 9000);
    let v = message_to_json(&m);
    assert_eq!(message_from_json(&v), Ok(m.clone()));
    let mut forged = v.clone();
    forged["d"] = serde_json::json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"something else"
    ));
    assert!(message_from_json(&forged).is_err());
    let mut bad = v;
    bad["n"] = serde_json::json!(40_000);
    assert!(message_from_json(&bad).is_err());
}

#[test]
fn storage_test_samples_and_lookups() {
    use sispop_storage::storage_test::{eligible, MIN_REMAINING_MS};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    assert_eq!(
        s.sample(&[0x80; 33], 0, 10, |_| true).expect("sample"),
        None,
        "empty store"
    );
    let now = 10_000_000;
    let live = now + MIN_REMAINING_MS;
    let dying = msg(2, 0, "dying", now, live - 1);
    let ok = msg(3, 0, "ok", now, live);
    s.store(&dying, false).expect("store");
    s.store(&ok, false).expect("store");
    let young = msg(1, 0, "arrived after the watermark", 0, live);
    s.store(&young, false).expect("store");
    let watermark = s.last_seq() - 1;
    let pick = |start: &[u8; 33], pick: u64, max: usize| {
        s.sample(start, pick, max, |m| {
            eligible(m, watermark) && m.expiry >= now + MIN_REMAINING_MS
        })
        .expect("sample")
    };
    // From any start, wrapping around, only the eligible message is picked.
    for start in [[0u8; 33], [2; 33], [3; 33], [4; 33], [0xff; 33]] {
        assert_eq!(pick(&start, 7, 10), Some(ok.clone()), "start {start:?}");
    }
    // The scan is bounded: from account 1, two messages (young, dying) are not enough.
    let mut from_one = [1u8; 33];
    from_one[0] = 5;
    assert_eq!(pick(&from_one, 0, 2), None);
    assert_eq!(s.get(&ok.hash).expect("get"), Some(ok.clone()));
    assert_eq!(s.get(&message_hash(&pk(9), 0, b"none")).expect("get"), None);
    // Every eligible message of an account can be picked, not only its first.
    let many: Vec<Message> = (0..5)
        .map(|i| msg(3, 0, &format!("more {i}"), now, live))
        .collect();
    for m in &many {
        s.store(m, false).expect("store");
    }
    let watermark = s.last_seq();
    let picked: std::collections::BTreeSet<String> = (0..12)
        .filter_map(|i| {
            s.sample(&[3; 33], i, 10, |m| eligible(m, watermark))
                .expect("sample")
        })
        .map(|m| m.hash)
        .collect();
    assert!(picked.len() >= 6, "{picked:?}");
    // Another prefix: reached when the first random byte is at or before it.
    let ed = UserPubkey {
        prefix: 3,
        key: [1; 32],
    };
    let mut other = msg(1, 0, "ed25519 account", now, live);
    other.pubkey = ed;
    other.hash = message_hash(&ed, 0, other.data.as_slice());
    s.store(&other, false).expect("store");
    let watermark = s.last_seq();
    assert_eq!(
        s.sample(&[0; 33], 0, 1, |m| eligible(m, watermark))
            .expect("sample"),
        Some(other.clone())
    );
}

/// Acks kept with a message (at most four, one per member, only acks of that message), and a
/// sample for a worker finds only messages carrying its ack, with that ack.
#[test]
fn acks_are_kept_with_their_messages_and_sampled_by_worker() {
    use ed25519_dalek::SigningKey;
    use sispop_storage::storage_test::{Ack, MAX_ACKS};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let (a, b) = (msg(1, 0, "a", 1, 9_000), msg(1, 0, "b", 1, 9_000));
    s.store(&a, false).expect("store");
    s.store(&b, false).expect("store");
    let members: Vec<SigningKey> = (0..6u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let acks: Vec<Ack> = members
        .iter()
        .map(|k| Ack::sign(k, &(&a).into(), 5, 1))
        .collect();
    // One of b's does not go with a; a repeated member counts once; four at most.
    let wrong = Ack::sign(&members[0], &(&b).into(), 5, 1);
    assert_eq!(
        s.add_acks(&a.hash, std::slice::from_ref(&wrong))
            .expect("add"),
        0
    );
    assert_eq!(s.add_acks(&a.hash, &acks[..2]).expect("add"), 2);
    assert_eq!(s.add_acks(&a.hash, &acks).expect("add"), MAX_ACKS - 2);
    let worker = |i: usize| members[i].verifying_key().to_bytes();
    for start in [[0u8; 33], [0xff; 33]] {
        let (m, ack) = s
            .sample_acked(&start, 3, 10, &worker(1), |_, _| true)
            .expect("sample")
            .expect("a's ack by member 1");
        assert_eq!((m, &ack), (a.clone(), &acks[1]));
        assert!(ack.verify());
    }
    assert_eq!(
        s.sample_acked(&[0; 33], 0, 10, &worker(5), |_, _| true)
            .expect("sample"),
        None,
        "member 5's ack did not fit"
    );
    // Acks outlive an expiry change (kept in the record), and go with the message.
    s.expire(&pk(1), &[(a.hash.clone(), 8_000)], ExpireMode::Set)
        .expect("expire");
    assert!(s
        .sample_acked(&[0; 33], 0, 10, &worker(0), |_, _| true)
        .expect("sample")
        .is_some());
    s.delete(&pk(1), std::slice::from_ref(&a.hash))
        .expect("delete");
    assert_eq!(
        s.sample_acked(&[0; 33], 0, 10, &worker(0), |_, _| true)
            .expect("sample"),
        None
    );
}

/// The account's requests that ended messages are kept, found by the message they named or by
/// the account, and forgotten when their time is up.
#[test]
fn requests_that_ended_messages_are_kept_for_a_while() {
    use sispop_storage::storage_test::REFUTE_KEEP_MS;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let named = serde_json::json!({"messages": ["h1", "h2"], "signature": "x"});
    let bulk = serde_json::json!({"timestamp": 5, "signature": "y"});
    s.keep_refutation(
        &pk(1),
        "delete",
        &named,
        1_000,
        Some(&["h1".into(), "h2".into()]),
    )
    .expect("keep");
    s.keep_refutation(&pk(1), "delete_all", &bulk, 2_000, None)
        .expect("keep");
    let found = s.refutations(&pk(1), "h2", 3_000).expect("find");
    assert_eq!(
        found,
        vec![
            ("delete".to_owned(), named.clone()),
            ("delete_all".to_owned(), bulk.clone())
        ]
    );
    assert_eq!(s.refutations(&pk(1), "h9", 3_000).expect("find").len(), 1);
    assert!(s.refutations(&pk(2), "h1", 3_000).expect("find").is_empty());
    // The first is past its time, the second not yet.
    let later = 1_000 + REFUTE_KEEP_MS;
    assert_eq!(s.refutations(&pk(1), "h1", later).expect("find").len(), 1);
    assert_eq!(s.sweep_refutations(later, 100).expect("sweep"), 1);
    assert_eq!(s.refutations(&pk(1), "h1", 0).expect("find").len(), 1);
    assert_eq!(s.sweep_refutations(u64::MAX, 100).expect("sweep"), 1);
    assert!(s.refutations(&pk(1), "h1", 0).expect("find").is_empty());
}

#[test]
fn discarding_store_acknowledges_and_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    s.discard_writes();
    let a = msg(1, 0, "a", 1000, 5000);
    assert_eq!(
        s.store(&a, false).expect("store"),
        (StoreOutcome::New, 5000)
    );
    assert_eq!(s.get(&a.hash).expect("get"), None);
    assert_eq!(
        s.bulk_store(&[msg(1, 0, "b", 1000, 5000)]).expect("bulk"),
        1
    );
    assert_eq!(
        s.retrieve(&pk(1), 0, None, 0, u64::MAX, 0)
            .expect("retrieve")
            .0,
        vec![]
    );
}

/// What a member that joins a swarm pulls: revocations page in key order, and a merge keeps the
/// later time of each token, the newest `MAX_REVOKED`, and nothing for an account without
/// messages here.
#[test]
fn revocations_page_and_merge() {
    use sispop_storage::store::{Revocation, MAX_REVOKED};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let tok = |i: u8| [i; sispop_storage::auth::TOKEN_LEN];
    let rev = |i: u8, at: u64, proof: &str| Revocation {
        token: tok(i),
        at,
        proof: proof.as_bytes().to_vec(),
    };
    let pairs = |l: &[(u8, u64)]| -> Vec<Revocation> {
        l.iter().map(|(t, at)| rev(*t, *at, "p")).collect()
    };
    s.store(&msg(1, 0, "held", 0, 9000), false).expect("store");
    s.store(&msg(2, 0, "held", 0, 9000), false).expect("store");
    s.revoke(&pk(1), &[tok(1), tok(2)], 100, b"p1")
        .expect("revoke");
    s.revoke(&pk(2), &[tok(3)], 200, b"p2").expect("revoke");
    // Pages of two, then one, in (account, token) order, each with its proof.
    let (first, next) = s.revocations_after(None, 2).expect("page");
    assert_eq!(
        first,
        vec![(pk(1), rev(1, 100, "p1")), (pk(1), rev(2, 100, "p1"))]
    );
    let (second, end) = s.revocations_after(next.as_deref(), 2).expect("page");
    assert_eq!(second, vec![(pk(2), rev(3, 200, "p2"))]);
    assert_eq!(end, None);

    // Merged into another member's store: later times win, earlier ones change nothing.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let other = open(&dir2);
    other
        .store(&msg(1, 0, "held", 0, 9000), false)
        .expect("store");
    other.revoke(&pk(1), &[tok(1)], 150, b"p").expect("revoke");
    let changed = other
        .merge_revocations(&pk(1), &pairs(&[(1, 100), (2, 100)]))
        .expect("merge");
    assert_eq!(changed, 1, "only the token it lacked");
    assert_eq!(
        other.revocations(&pk(1)).expect("list"),
        vec![(tok(1), 150), (tok(2), 100)]
    );
    assert!(other.is_revoked(&pk(1), &tok(2)));
    // An account that holds nothing here keeps no revocations.
    assert_eq!(
        other
            .merge_revocations(&pk(2), &pairs(&[(3, 200)]))
            .expect("merge"),
        0
    );
    assert!(!other.is_revoked(&pk(2), &tok(3)));
    // Merged revocations fill the room left, newest first, and never push out one held here,
    // however new they are.
    let many: Vec<_> = (0..MAX_REVOKED as u8 + 5)
        .map(|i| rev(100 + i, 1000 + u64::from(i), "p"))
        .collect();
    assert_eq!(
        other.merge_revocations(&pk(1), &many).expect("merge"),
        MAX_REVOKED - 2
    );
    let kept = other.revocations(&pk(1)).expect("list");
    assert_eq!(kept.len(), MAX_REVOKED);
    assert!(other.is_revoked(&pk(1), &tok(1)) && other.is_revoked(&pk(1), &tok(2)));
    assert!(
        !other.is_revoked(&pk(1), &tok(100)),
        "the oldest merged one had no room"
    );
    assert!(other.is_revoked(&pk(1), &tok(100 + MAX_REVOKED as u8 + 4)));
    // A token listed twice keeps its latest time.
    let dir3 = tempfile::tempdir().expect("tempdir");
    let third = open(&dir3);
    third
        .store(&msg(1, 0, "held", 0, 9000), false)
        .expect("store");
    assert_eq!(
        third
            .merge_revocations(&pk(1), &pairs(&[(9, 500), (9, 300)]))
            .expect("merge"),
        1
    );
    assert_eq!(
        third.revocations(&pk(1)).expect("list"),
        vec![(tok(9), 500)]
    );
    // The account's own revocation still pushes out its oldest.
    third
        .revoke(
            &pk(1),
            &many.iter().map(|r| r.token).collect::<Vec<_>>(),
            2000,
            b"p",
        )
        .expect("revoke");
    assert_eq!(third.revocations(&pk(1)).expect("list").len(), MAX_REVOKED);
    assert!(!third.is_revoked(&pk(1), &tok(9)), "the oldest went");
}
