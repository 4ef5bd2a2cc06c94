//! End-to-end chain tests on a temporary RocksDB: mining, a real RingCT transfer through the
//! mempool into a block, every kind of bad input, reorgs, and reopening from disk.

use curve25519_dalek::Scalar;
use rand::rngs::OsRng;
use sispop_chain::builder::{build_transfer, SpendInput};
use sispop_chain::crypto::{
    derivation_to_scalar, key_derivation, public_from_secret, random_scalar, zero_commit,
};
use sispop_chain::extra::{parse_extra, tx_pubkey};
use sispop_chain::{
    mine, AddOutcome, Address, Block, BlockError, Blockchain, ChainEvent, Height, Mempool, Network,
    NetworkParams, PoolError, Transaction, TxError, TxType,
};

struct Wallet {
    view: Scalar,
    spend: Scalar,
    addr: Address,
}

fn wallet() -> Wallet {
    let view = random_scalar(&mut OsRng);
    let spend = random_scalar(&mut OsRng);
    Wallet {
        view,
        spend,
        addr: Address {
            spend: public_from_secret(&spend),
            view: public_from_secret(&view),
        },
    }
}

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

fn now_after(chain: &Blockchain) -> u64 {
    chain.tip_meta().timestamp + params().target_block_time
}

fn mine_block(chain: &mut Blockchain, to: &Address, txs: Vec<Vec<u8>>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let now = now_after(chain);
    let mut t = chain
        .block_template(&mut OsRng, to, txs, now)
        .expect("template");
    assert!(t.mine(1_000_000));
    let blob = t.block.serialize();
    match chain
        .add_block(&blob, &t.txs, now)
        .expect("own block is valid")
    {
        AddOutcome::Changed { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    (blob, t.txs)
}

/// The spendable coinbase output of `w` at `height`, with a ring of decoys around it.
fn coinbase_input(chain: &Blockchain, w: &Wallet, height: u64) -> SpendInput {
    let (_, _, blob) = chain.block_at(Height(height)).expect("db").expect("block");
    let block = Block::from_bytes(&blob).expect("block");
    let r_pub = tx_pubkey(&parse_extra(&block.miner_tx.extra).expect("extra")).expect("tx pubkey");
    let d = key_derivation(&w.view, &r_pub).expect("derivation");
    let secret = derivation_to_scalar(&d, 0) + w.spend;
    let amount = block.miner_tx.outputs[0].amount.expect("plaintext");
    let meta = chain
        .store()
        .block_meta(&block.hash())
        .expect("db")
        .expect("meta");
    let real = meta.first_output_index;
    let ring_size = params().ring_size as u64;
    let total = chain.output_count();
    let start = real.saturating_sub(ring_size / 2).min(total - ring_size);
    let ring: Vec<_> = (start..start + ring_size)
        .map(|i| {
            let o = chain.store().output(i).expect("db").expect("output");
            (i, o.key, o.commitment)
        })
        .collect();
    assert_eq!(
        public_from_secret(&secret).0,
        chain.store().output(real).expect("db").expect("out").key
    );
    assert_eq!(
        zero_commit(amount),
        chain
            .store()
            .output(real)
            .expect("db")
            .expect("out")
            .commitment
    );
    SpendInput {
        secret,
        amount,
        mask: Scalar::ONE,
        real_index: (real - start) as usize,
        ring,
    }
}

fn open() -> (tempfile::TempDir, Blockchain) {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = Blockchain::open(params(), dir.path()).expect("open");
    (dir, chain)
}

fn transfer(chain: &Blockchain, from: &Wallet, height: u64, to: &Address, fee: u64) -> Transaction {
    let input = coinbase_input(chain, from, height);
    let amount = input.amount;
    build_transfer(
        &mut OsRng,
        &[input],
        &[(*to, amount - fee - 1000), (from.addr, 1000)],
        fee,
        TxType::Standard,
        &[],
    )
    .expect("build")
    .tx
}

#[test]
fn mines_and_spends_a_ringct_transfer() {
    let (_dir, mut chain) = open();
    let miner = wallet();
    let bob = wallet();
    for _ in 0..25 {
        mine_block(&mut chain, &miner.addr, vec![]);
    }
    assert_eq!(chain.tip().0, Height(25));
    let tx = transfer(&chain, &miner, 3, &bob.addr, 10_000_000);
    let blob = tx.serialize();
    assert_eq!(Transaction::from_bytes(&blob).expect("round trip"), tx);
    let mut pool = Mempool::new(params().mempool_max_bytes);
    let hash = pool
        .add(&chain, blob.clone(), 0)
        .expect("valid transfer enters the pool");
    assert!(matches!(
        pool.add(&chain, blob.clone(), 0),
        Err(PoolError::AlreadyPooled(_))
    ));
    let (_, included) = mine_block(&mut chain, &miner.addr, pool.candidates());
    assert_eq!(included, vec![blob.clone()]);
    pool.prune(&chain);
    assert!(pool.is_empty());
    let (h, _, _) = chain.store().tx(&hash).expect("db").expect("tx stored");
    assert_eq!(h, Height(26));
    // A transaction nobody mines leaves the pool after its maximum age.
    let waiting = transfer(&chain, &miner, 7, &bob.addr, 10_000_000);
    pool.add(&chain, waiting.serialize(), 1_000).expect("valid");
    assert_eq!(
        pool.expire(1_000 + params().mempool_max_age, params().mempool_max_age),
        0
    );
    assert_eq!(
        pool.expire(1_001 + params().mempool_max_age, params().mempool_max_age),
        1
    );
    assert!(pool.is_empty());
    // Spending the same output again is refused.
    let again = transfer(&chain, &miner, 3, &bob.addr, 10_000_000);
    assert!(matches!(
        pool.add(&chain, again.serialize(), 0),
        Err(PoolError::Invalid(TxError::Spent(_)))
    ));
}

#[test]
fn invalid_transactions_are_refused_and_change_nothing() {
    let (_dir, mut chain) = open();
    let miner = wallet();
    for _ in 0..25 {
        mine_block(&mut chain, &miner.addr, vec![]);
    }
    let good = transfer(&chain, &miner, 4, &miner.addr, 10_000_000);
    let mut pool = Mempool::new(params().mempool_max_bytes);
    let check = |pool: &mut Mempool, chain: &Blockchain, tx: &Transaction| {
        let r = pool.add(chain, tx.serialize(), 0);
        assert!(r.is_err(), "accepted a bad tx");
        assert!(pool.is_empty());
        r
    };
    // Tampered amount commitment: range proof or balance fails.
    let mut t = good.clone();
    if let Some(rct) = t.rct.as_mut() {
        rct.base.commitments.swap(0, 1);
    }
    check(&mut pool, &chain, &t).expect_err("swapped commitments");
    // Fee too low.
    let cheap = transfer(&chain, &miner, 5, &miner.addr, 1);
    assert!(matches!(
        check(&mut pool, &chain, &cheap),
        Err(PoolError::Invalid(TxError::FeeTooLow { .. }))
    ));
    // Tampered extra breaks the ring signature.
    let mut t = good.clone();
    t.extra.extend([0x79, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        check(&mut pool, &chain, &t),
        Err(PoolError::Invalid(TxError::RingSignature(0)))
    ));
    // Unknown extra tag.
    let mut t = good.clone();
    t.extra.push(0x55);
    assert!(matches!(
        check(&mut pool, &chain, &t),
        Err(PoolError::Invalid(TxError::Extra(_)))
    ));
    // A changed type breaks the ring signature.
    let mut t = good.clone();
    t.tx_type = TxType::Stake;
    assert!(matches!(
        check(&mut pool, &chain, &t),
        Err(PoolError::Invalid(TxError::RingSignature(0)))
    ));
    // An unlock request on a chain without service node rules.
    let unlock = Transaction {
        version: 4,
        output_unlock_times: vec![],
        v3_state_change: false,
        unlock_time: 0,
        inputs: vec![],
        outputs: vec![],
        extra: vec![],
        tx_type: TxType::KeyImageUnlock,
        rct: None,
    };
    assert!(matches!(
        check(&mut pool, &chain, &unlock),
        Err(PoolError::Invalid(TxError::Rejected(_)))
    ));
    // Truncated and oversized blobs.
    let blob = good.serialize();
    for cut in [1, 10, blob.len() / 2, blob.len() - 1] {
        assert!(matches!(
            pool.add(&chain, blob[..cut].to_vec(), 0),
            Err(PoolError::Invalid(TxError::Decode(_)))
        ));
    }
    let mut long = blob.clone();
    long.push(0);
    assert!(pool.add(&chain, long, 0).is_err(), "trailing byte");
    // Duplicate key image inside one transaction.
    let a = coinbase_input(&chain, &miner, 6);
    let dup = build_transfer(
        &mut OsRng,
        &[a.clone(), a.clone()],
        &[(miner.addr, a.amount * 2 - 20_000_000)],
        20_000_000,
        TxType::Standard,
        &[],
    )
    .expect("build")
    .tx;
    assert!(matches!(
        check(&mut pool, &chain, &dup),
        Err(PoolError::Invalid(TxError::DoubleSpend(_)))
    ));
    // The good one still goes in.
    pool.add(&chain, good.serialize(), 0).expect("good tx");
    let conflicting = transfer(&chain, &miner, 4, &miner.addr, 20_000_000);
    assert!(matches!(
        pool.add(&chain, conflicting.serialize(), 0),
        Err(PoolError::Conflict(..))
    ));
}

#[test]
fn invalid_blocks_are_refused_and_change_nothing() {
    let (_dir, mut chain) = open();
    let miner = wallet();
    for _ in 0..12 {
        mine_block(&mut chain, &miner.addr, vec![]);
    }
    let tip = chain.tip();
    let now = now_after(&chain);
    let template = chain
        .block_template(&mut OsRng, &miner.addr, vec![], now)
        .expect("template");
    let try_block = |chain: &mut Blockchain, b: &Block| chain.add_block(&b.serialize(), &[], now);

    let mut b = template.block.clone();
    b.header.prev_id = sispop_chain::BlockHash([7; 32]);
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::UnknownParent(_))
    ));
    let mut b = template.block.clone();
    b.header.timestamp = 1;
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::TimestampTooOld(..))
    ));
    let mut b = template.block.clone();
    b.header.timestamp = now + 10_000;
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::TimestampTooNew(..))
    ));
    let mut b = template.block.clone();
    b.header.major_version = 7;
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::Version { .. })
    ));
    let mut b = template.block.clone();
    b.miner_tx.outputs[0].amount = Some(1_000_000 * sispop_chain::COIN);
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::MinerTx(_))
    ));
    let mut b = template.block.clone();
    b.miner_tx.inputs = vec![monero_oxide::transaction::Input::Gen(99)];
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::MinerTx(_))
    ));
    let mut b = template.block.clone();
    b.miner_tx.extra.push(0x66);
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::MinerTx(_))
    ));
    let mut b = template.block.clone();
    b.tx_hashes.push(sispop_chain::TxHash([1; 32]));
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::MissingTx(_))
    ));
    let mut b = template.block.clone();
    b.tx_hashes = vec![sispop_chain::TxHash([1; 32]); 2];
    assert!(matches!(
        try_block(&mut chain, &b),
        Err(BlockError::TxList(_))
    ));
    // Garbage, truncation, oversize, a varint that never ends.
    let blob = template.block.serialize();
    for cut in 0..blob.len() {
        assert!(chain.add_block(&blob[..cut], &[], now).is_err());
    }
    assert!(matches!(
        chain.add_block(&[0xff; 64], &[], now),
        Err(BlockError::Decode(_))
    ));
    assert!(matches!(
        chain.add_block(&vec![0; 3 * 1024 * 1024], &[], now),
        Err(BlockError::TooLarge(..))
    ));
    assert_eq!(chain.tip(), tip, "nothing changed");
    // The untouched template is still good.
    let mut b = template.block;
    assert!(mine(
        params(),
        &template.seed,
        &mut b,
        template.difficulty,
        10
    ));
    assert!(matches!(
        chain.add_block(&b.serialize(), &[], now),
        Ok(AddOutcome::Changed { .. })
    ));
    assert!(matches!(
        chain.add_block(&b.serialize(), &[], now),
        Ok(AddOutcome::AlreadyKnown)
    ));
}

#[test]
fn randomx_networks_verify_randomx() {
    // Testnet rules (RandomX) with a fixed difficulty of 64 so the test mines quickly.
    let mut p = NetworkParams::get(Network::Testnet).clone();
    p.difficulty = sispop_chain::params::DifficultyMode::Fixed(64);
    let p: &'static NetworkParams = Box::leak(Box::new(p));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Blockchain::open(p, dir.path()).expect("open");
    let miner = wallet();
    let mut keccak = p.clone();
    keccak.pow = sispop_chain::params::PowAlgorithm::Keccak;
    for _ in 0..3 {
        let now = chain.tip_meta().timestamp + 120;
        let mut t = chain
            .block_template(&mut OsRng, &miner.addr, vec![], now)
            .expect("template");
        // A nonce that meets the target under Keccak but not under RandomX is refused.
        loop {
            let rx = sispop_chain::pow::pow_hash(p, &t.block, &t.seed).expect("randomx");
            let kc = sispop_chain::pow::pow_hash(&keccak, &t.block, &t.seed).expect("keccak");
            if sispop_chain::pow::check_pow(&kc, 64) && !sispop_chain::pow::check_pow(&rx, 64) {
                break;
            }
            t.block.header.nonce += 1;
        }
        assert!(matches!(
            chain.add_block(&t.block.serialize(), &[], now),
            Err(BlockError::Pow(64))
        ));
        // The wrong nonce's hash computed without the chain gives no verdict.
        assert!(chain.pow_check(&t.block).expect("randomx").run().is_none());
        assert!(matches!(
            chain.add_block(&t.block.serialize(), &[], now),
            Err(BlockError::Pow(64))
        ));
        assert!(t.mine(100_000));
        let hits = chain.verdict_hits().1;
        let v = chain.pow_check(&t.block).expect("randomx").run();
        chain.note_verified(v.expect("meets the difficulty"));
        assert!(matches!(
            chain.add_block(&t.block.serialize(), &[], now),
            Ok(AddOutcome::Changed { .. })
        ));
        assert_eq!(chain.verdict_hits().1, hits + 1, "RandomX not run again");
    }
}

#[test]
fn wrong_pow_is_refused() {
    // A devnet variant whose blocks need difficulty 256.
    let mut p = params().clone();
    p.difficulty = sispop_chain::params::DifficultyMode::Fixed(256);
    let p: &'static NetworkParams = Box::leak(Box::new(p));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chain = Blockchain::open(p, dir.path()).expect("open");
    let now = chain.tip_meta().timestamp + 2;
    let mut t = chain
        .block_template(&mut OsRng, &wallet().addr, vec![], now)
        .expect("template");
    assert_eq!(t.difficulty, 256);
    // Find a nonce that misses the target, submit it, and see it refused.
    while sispop_chain::pow::check_pow(
        &sispop_chain::pow::pow_hash(p, &t.block, &t.seed).expect("pow"),
        256,
    ) {
        t.block.header.nonce += 1;
    }
    let tip = chain.tip();
    assert!(matches!(
        chain.add_block(&t.block.serialize(), &[], now),
        Err(BlockError::Pow(256))
    ));
    assert_eq!(chain.tip(), tip);
    assert!(t.mine(1_000_000));
    assert!(matches!(
        chain.add_block(&t.block.serialize(), &[], now),
        Ok(AddOutcome::Changed { .. })
    ));
}

#[test]
fn heavier_fork_reorganises_and_matches_a_fresh_replay() {
    let (_d1, mut a) = open();
    let (_d2, mut b) = open();
    let (_d3, mut fresh) = open();
    let miner = wallet();
    let other = wallet();
    let mut shared = Vec::new();
    for _ in 0..4 {
        let blk = mine_block(&mut a, &miner.addr, vec![]);
        b.add_block(&blk.0, &blk.1, now_after(&b)).expect("shared");
        shared.push(blk);
    }
    // a mines 2, b mines 3 on a fork.
    for _ in 0..2 {
        mine_block(&mut a, &miner.addr, vec![]);
    }
    let mut fork = Vec::new();
    for _ in 0..3 {
        fork.push(mine_block(&mut b, &other.addr, vec![]));
    }
    let old_tip = a.tip();
    let mut events = Vec::new();
    for (blob, txs) in &fork {
        match a.add_block(blob, txs, now_after(&b)).expect("fork block") {
            AddOutcome::Changed { events: e, .. } => events.extend(e),
            AddOutcome::SideChain => {}
            AddOutcome::AlreadyKnown => panic!("unexpected"),
        }
    }
    assert_eq!(a.tip(), b.tip());
    let detached: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ChainEvent::Detached(..)))
        .collect();
    let attached: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ChainEvent::Attached(..)))
        .collect();
    assert_eq!(detached.len(), 2);
    assert_eq!(attached.len(), 3);
    assert_eq!(
        events[0],
        ChainEvent::Detached(old_tip.0, old_tip.1),
        "tip detached first"
    );
    // Same state as replaying b's chain from scratch.
    for (blob, txs) in shared.iter().chain(fork.iter()) {
        fresh.add_block(blob, txs, now_after(&b)).expect("replay");
    }
    assert_eq!(fresh.tip(), a.tip());
    assert_eq!(fresh.output_count(), a.output_count());
    assert_eq!(fresh.tip_meta(), a.tip_meta());
    for i in 0..fresh.output_count() {
        assert_eq!(
            fresh.store().output(i).expect("db"),
            a.store().output(i).expect("db")
        );
    }
}

#[test]
fn reopening_resumes_at_the_stored_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let miner = wallet();
    let tip = {
        let mut chain = Blockchain::open(params(), dir.path()).expect("open");
        for _ in 0..5 {
            mine_block(&mut chain, &miner.addr, vec![]);
        }
        chain.tip()
    };
    let chain = Blockchain::open(params(), dir.path()).expect("reopen");
    assert_eq!(chain.tip(), tip);
    // Every block's miner tx, genesis included, can be looked up by id.
    for h in 0..=tip.0 .0 {
        let (_, _, blob) = chain.block_at(Height(h)).expect("db").expect("block");
        let miner = Block::from_bytes(&blob).expect("block").miner_tx.hash();
        assert!(
            chain.store().tx(&miner).expect("db").is_some(),
            "miner tx of block {h}"
        );
    }
    // A database of another network is refused.
    assert!(Blockchain::open(NetworkParams::get(Network::Mainnet), dir.path()).is_err());
}

/// A transfer whose range proof and ring signatures are all valid but whose pseudo-outputs do
/// not add up to its outputs and fee is refused as unbalanced, in the pool and in a block: only
/// the balance check stands between it and minted coins (delete the check and this goes red).
#[test]
fn an_unbalanced_transfer_is_refused() {
    let (_dir, mut chain) = open();
    let miner = wallet();
    for _ in 0..25 {
        mine_block(&mut chain, &miner.addr, vec![]);
    }
    let input = coinbase_input(&chain, &miner, 3);
    let amount = input.amount;
    let fee = 10_000_000;
    let bad = sispop_chain::builder::build_unbalanced_transfer(
        &mut OsRng,
        std::slice::from_ref(&input),
        &[(miner.addr, amount - fee)],
        fee,
        Scalar::from(7u64),
    )
    .expect("build")
    .tx;
    let mut pool = Mempool::new(params().mempool_max_bytes);
    assert!(matches!(
        pool.add(&chain, bad.serialize(), 0),
        Err(PoolError::Invalid(TxError::Unbalanced))
    ));
    assert!(pool.is_empty());
    // In a block, the block is refused and the chain stays where it was.
    let tip = chain.tip();
    let now = now_after(&chain);
    let mut t = chain
        .block_template(&mut OsRng, &miner.addr, vec![], now)
        .expect("template");
    t.block.tx_hashes.push(bad.hash());
    t.txs.push(bad.serialize());
    assert!(t.mine(1_000_000));
    assert!(matches!(
        chain.add_block(&t.block.serialize(), &t.txs, now),
        Err(BlockError::Tx(_, TxError::Unbalanced))
    ));
    assert_eq!(chain.tip(), tip);
    // The same spend, balanced, is accepted: the offset alone made the difference.
    let good = sispop_chain::builder::build_unbalanced_transfer(
        &mut OsRng,
        &[input],
        &[(miner.addr, amount - fee)],
        fee,
        Scalar::ZERO,
    )
    .expect("build")
    .tx;
    pool.add(&chain, good.serialize(), 0).expect("balanced");
}

#[test]
fn side_chains_are_bounded_in_depth_and_number() {
    let mut p = params().clone();
    p.difficulty = sispop_chain::params::DifficultyMode::Fixed(1);
    p.max_side_depth = 8;
    p.max_side_blocks = 4;
    let p: &'static NetworkParams = Box::leak(Box::new(p));
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut a = Blockchain::open(p, d1.path()).expect("open");
    let mut b = Blockchain::open(p, d2.path()).expect("open");
    let (miner, other) = (wallet(), wallet());
    let mine = |c: &mut Blockchain, to: &Address| {
        let now = c.tip_meta().timestamp + p.target_block_time;
        let mut t = c
            .block_template(&mut OsRng, to, vec![], now)
            .expect("template");
        assert!(t.mine(1_000));
        let blob = t.block.serialize();
        assert!(matches!(
            c.add_block(&blob, &t.txs, now),
            Ok(AddOutcome::Changed { .. })
        ));
        (blob, t.txs, now)
    };
    let shared = mine(&mut a, &miner.addr);
    b.add_block(&shared.0, &shared.1, shared.2).expect("shared");
    // A: heights 2..9; B's fork: heights 2..7 (less work, so it stays a side chain).
    for _ in 0..8 {
        mine(&mut a, &miner.addr);
    }
    let fork: Vec<_> = (0..6).map(|_| mine(&mut b, &other.addr)).collect();
    for (i, (blob, txs, now)) in fork.iter().enumerate() {
        let r = a.add_block(blob, txs, *now + 100);
        if i < 4 {
            assert!(matches!(r, Ok(AddOutcome::SideChain)), "{r:?}");
        } else if i == 4 {
            // Full: refused, without blame, nothing kept.
            let err = r.expect_err("full");
            assert!(matches!(err, BlockError::SideChainsFull(4)), "{err}");
            assert!(!err.is_peer_fault());
        } else {
            assert!(matches!(r, Err(BlockError::UnknownParent(_))), "{r:?}");
        }
    }
    assert_eq!(a.store().alt_count(), 4, "at most max_side_blocks are kept");
    // The main chain moves on: side blocks more than 8 below the tip are pruned…
    for _ in 0..4 {
        mine(&mut a, &miner.addr);
    }
    assert_eq!(a.tip().0 .0, 13);
    assert_eq!(a.store().alt_count(), 1, "only height 5 is within 8 of 13");
    // …and refused outright, before any proof of work, without blame (an honest peer may be
    // on an old fork).
    let (blob, txs, now) = &fork[0];
    let err = a.add_block(blob, txs, *now + 100).expect_err("too deep");
    assert!(matches!(err, BlockError::TooDeep { .. }), "{err}");
    assert!(!err.is_peer_fault());
    // The index survives a restart.
    drop(a);
    let a = Blockchain::open(p, d1.path()).expect("reopen");
    assert_eq!(a.store().alt_count(), 1);
}

/// Signatures and proofs checked without the chain (`sig_check`, then `run` with the lock
/// released, then `note_verified`): a valid transfer's verdict is kept and found; an invalid
/// one gives no verdict, so validation still refuses it; and proof of work can be checked the
/// same way.
#[test]
fn verdicts_reached_without_the_chain_are_only_for_what_verifies() {
    let (_dir, mut chain) = open();
    let miner = wallet();
    for _ in 0..25 {
        mine_block(&mut chain, &miner.addr, vec![]);
    }
    let good = transfer(&chain, &miner, 4, &miner.addr, 10_000_000);
    let len = good.serialize().len();
    let verdict = chain
        .sig_check(&good, len)
        .expect("a transfer's rings are on chain")
        .run()
        .expect("a valid transfer verifies");
    chain.note_verified(verdict);
    assert_eq!(chain.verdict_hits().0, 0);
    let mut pool = Mempool::new(params().mempool_max_bytes);
    pool.add(&chain, good.serialize(), 0).expect("valid");
    assert_eq!(chain.verdict_hits().0, 1, "validation used the verdict");
    // Cheap checks come first: an oversized blob or a short ring is not verified at all.
    assert!(chain.sig_check(&good, params().max_tx_size + 1).is_none());
    let mut short = good.clone();
    if let Some(monero_oxide::transaction::Input::ToKey { key_offsets, .. }) =
        short.inputs.first_mut()
    {
        key_offsets.pop();
    }
    assert!(chain.sig_check(&short, len).is_none());
    // Tampered extra: the ring signature fails, so there is no verdict to note, and the pool
    // still refuses it.
    let mut bad = good.clone();
    bad.extra.extend([0x79, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(chain.sig_check(&bad, len).expect("rings").run().is_none());
    assert!(matches!(
        Mempool::new(params().mempool_max_bytes).add(&chain, bad.serialize(), 0),
        Err(PoolError::Invalid(TxError::RingSignature(0)))
    ));
    // Nothing to check without the chain for a coinbase.
    let now = now_after(&chain);
    let mut t = chain
        .block_template(&mut OsRng, &miner.addr, vec![], now)
        .expect("template");
    assert!(chain.sig_check(&t.block.miner_tx, 100).is_none());
    // Proof of work: a verdict only for a hash that meets the difficulty, and validation
    // uses it.
    assert!(t.mine(1_000_000));
    let v = chain.pow_check(&t.block).expect("parent known").run();
    chain.note_verified(v.expect("meets the difficulty"));
    let hits = chain.verdict_hits().1;
    chain
        .add_block(&t.block.serialize(), &t.txs, now)
        .expect("block");
    assert_eq!(chain.verdict_hits().1, hits + 1, "validation used the hash");
    // A block on an unknown parent is not worth any work.
    let mut orphan = t.block.clone();
    orphan.header.prev_id = sispop_chain::BlockHash([9; 32]);
    assert!(chain.pow_check(&orphan).is_none());
}
