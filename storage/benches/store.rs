//! Message store throughput (issue 9): 128-byte namespace-0 stores spread over 1,000 accounts,
//! each acknowledged only once it is in RocksDB's write-ahead log, and retrieving an account's
//! 10 newest messages.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sispop_storage::store::{Limits, Message, MessageStore};
use sispop_storage::{message_hash, UserPubkey};

fn message(i: u64) -> Message {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&(i % 1000).to_le_bytes());
    let pubkey = UserPubkey { prefix: 5, key };
    let mut data = vec![0u8; 128];
    data[..8].copy_from_slice(&i.to_le_bytes());
    Message {
        pubkey,
        namespace: 0,
        hash: message_hash(&pubkey, 0, &data),
        timestamp: 1_700_000_000_000,
        expiry: 1_700_000_000_000 + 14 * 86_400_000,
        data,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(&dir.path().join("storage"), Limits::default()).expect("open");
    let mut i = 0u64;
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("store 128 B (new message)", |b| {
        b.iter(|| {
            i += 1;
            store.store(&message(i), false).expect("store")
        })
    });
    let reader = message(1).pubkey;
    g.bench_function("retrieve 10 messages of one account", |b| {
        b.iter(|| {
            store
                .retrieve(&reader, 0, None, 10, u64::MAX)
                .expect("retrieve")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
