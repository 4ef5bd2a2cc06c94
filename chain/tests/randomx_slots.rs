//! The RandomX worker keeps the main chain's cache apart from a second one for other seeds:
//! hashes under foreign seeds rebuild only the second cache, never the main one. (Its own test
//! binary, so no other test's hashing moves the build counter.)

use std::sync::atomic::Ordering;

use sispop_chain::pow::{randomx_hash, RxSlot, RX_CACHE_BUILDS};

#[test]
fn foreign_seeds_never_evict_the_main_cache() {
    let builds = || RX_CACHE_BUILDS.load(Ordering::Relaxed);
    let (main, x, y) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let reference = randomx_hash(&main, b"input", RxSlot::Main).expect("hash");
    assert_eq!(builds(), 1);
    for foreign in [x, y, x, y] {
        randomx_hash(&foreign, b"input", RxSlot::Side).expect("side");
        assert_eq!(
            randomx_hash(&main, b"input", RxSlot::Main).expect("main"),
            reference
        );
    }
    assert_eq!(
        builds(),
        5,
        "one main build, four side builds, no main rebuild"
    );
    // The same seed hashes the same in either cache.
    assert_eq!(
        randomx_hash(&main, b"input", RxSlot::Side).expect("side"),
        reference
    );
}
