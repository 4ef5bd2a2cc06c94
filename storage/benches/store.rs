//! Message store throughput (issue 9): 128-byte namespace-0 stores spread over 1,000 accounts,
//! each acknowledged only once it is in RocksDB's write-ahead log, and retrieving an account's
//! 10 newest messages. Then (issue 23) the latency of those stores while another client empties
//! its full account (`delete_all` of 100,000 messages, filled again, in a loop), with p50, p99
//! and the worst printed, and how fast the sweep deletes expired messages.

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
                .retrieve(&reader, 0, None, 10, u64::MAX, 0)
                .expect("retrieve")
        })
    });
    g.finish();
}

/// A store's latency while a full account is emptied and filled again by another thread.
fn under_delete_all(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(
        MessageStore::open(&dir.path().join("storage"), Limits::default()).expect("open"),
    );
    let victim = UserPubkey {
        prefix: 5,
        key: [0xee; 32],
    };
    let full: Vec<Message> = (0..100_000u64)
        .map(|i| {
            let mut data = vec![0u8; 512];
            data[..8].copy_from_slice(&i.to_le_bytes());
            Message {
                pubkey: victim,
                namespace: 0,
                hash: message_hash(&victim, 0, &data),
                timestamp: 1_700_000_000_000,
                expiry: 1_700_000_000_000 + 14 * 86_400_000,
                data,
            }
        })
        .collect();
    store.bulk_store(&full).expect("fill");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deletes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let emptier = {
        let (store, stop, deletes) = (store.clone(), stop.clone(), deletes.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .delete_all(&victim, sispop_storage::store::NsFilter::All)
                    .expect("delete_all");
                deletes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store.bulk_store(&full).expect("fill");
            }
        })
    };
    let mut latencies = Vec::new();
    let mut i = 10_000_000u64;
    let mut g = c.benchmark_group("store while a full account is emptied");
    g.throughput(Throughput::Elements(1));
    g.bench_function("store 128 B (new message)", |b| {
        b.iter_custom(|n| {
            let started = std::time::Instant::now();
            for _ in 0..n {
                i += 1;
                let t = std::time::Instant::now();
                store.store(&message(i), false).expect("store");
                latencies.push(t.elapsed());
            }
            started.elapsed()
        })
    });
    g.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = emptier.join();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "store latency while emptying a 100,000-message account ({} delete_all): p50 {:?}, p99 {:?}, p99.9 {:?}, worst {:?}",
        deletes.load(std::sync::atomic::Ordering::Relaxed),
        at(0.5),
        at(0.99),
        at(0.999),
        latencies.last().copied().unwrap_or_default()
    );
}

/// How many expired messages a sweep deletes per second.
fn sweep(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(&dir.path().join("storage"), Limits::default()).expect("open");
    let mut i = 0u64;
    let mut g = c.benchmark_group("sweep");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(20);
    g.bench_function("sweep 10,000 expired 128 B messages", |b| {
        b.iter_batched(
            || {
                let msgs: Vec<Message> = (0..10_000)
                    .map(|_| {
                        i += 1;
                        Message {
                            expiry: 1_000,
                            ..message(i)
                        }
                    })
                    .collect();
                store.bulk_store(&msgs).expect("store");
            },
            |()| assert_eq!(store.sweep(2_000, 10_000).expect("sweep"), 10_000),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench, under_delete_all, sweep);
criterion_main!(benches);
