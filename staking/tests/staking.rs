//! Staking on a real chain (devnet parameters, RocksDB in a temp dir): registration,
//! pooled contributions, activation, leader payouts in the miner tx, unlock and expiry, and
//! every refusal the rules name.

use curve25519_dalek::Scalar;
use rand::rngs::OsRng;
use sispop_chain::builder::{build_transfer, SpendInput};
use sispop_chain::crypto::{
    derivation_to_scalar, hash_to_scalar, key_derivation, public_from_secret, random_scalar,
};
use sispop_chain::extra::{build_extra, parse_extra, tx_pubkey, ExtraField};
use sispop_chain::{
    mine, AddOutcome, Address, Atomic, Block, BlockError, Blockchain, Height, Mempool, Network,
    NetworkParams, PoolError, PublicKey, Transaction, TxError, TxType, COIN,
};
use sispop_staking::build::{build_stake_tx, build_unlock_tx, sign_registration};
use sispop_staking::ServiceNodeList;

type Chain = Blockchain<ServiceNodeList>;

struct Wallet {
    spend: Scalar,
    view: Scalar,
    addr: Address,
    /// (height of the coinbase, output index) of coins not yet spent.
    coins: Vec<(u64, u64)>,
}

fn wallet() -> Wallet {
    let spend = random_scalar(&mut OsRng);
    let view = hash_to_scalar(spend.as_bytes());
    Wallet {
        spend,
        view,
        addr: Address {
            spend: public_from_secret(&spend),
            view: public_from_secret(&view),
        },
        coins: vec![],
    }
}

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

struct Net {
    _dir: tempfile::TempDir,
    chain: Chain,
    pool: Mempool,
}

impl Net {
    fn new() -> Net {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain =
            Chain::open_with(params(), dir.path(), ServiceNodeList::new(params())).expect("open");
        Net {
            _dir: dir,
            chain,
            pool: Mempool::new(params().mempool_max_bytes),
        }
    }

    fn now(&self) -> u64 {
        self.chain.tip_meta().timestamp + 2
    }

    /// Mines one block to `to` with every pooled transaction.
    fn mine_to(&mut self, to: &mut Wallet) -> Block {
        let now = self.now();
        let mut t = self
            .chain
            .block_template(&mut OsRng, &to.addr, self.pool.candidates(), now)
            .expect("template");
        assert!(t.mine(1000));
        match self
            .chain
            .add_block(&t.block.serialize(), &t.txs, now)
            .expect("block")
        {
            AddOutcome::Changed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        self.pool.prune(&self.chain);
        to.coins.push((t.height.0, 0));
        t.block
    }

    fn submit(&mut self, tx: &Transaction) -> Result<(), PoolError> {
        let now = self.now();
        self.pool.add(&self.chain, tx.serialize(), now).map(|_| ())
    }

    fn height(&self) -> u64 {
        self.chain.tip().0 .0
    }

    /// A coinbase output of `w` as a ring input.
    fn input(&self, w: &Wallet, coin: (u64, u64)) -> SpendInput {
        let (_, meta, blob) = self
            .chain
            .block_at(Height(coin.0))
            .expect("db")
            .expect("block");
        let block = Block::from_bytes(&blob).expect("block");
        let r = tx_pubkey(&parse_extra(&block.miner_tx.extra).expect("extra")).expect("R");
        let d = key_derivation(&w.view, &r).expect("derivation");
        let secret = derivation_to_scalar(&d, coin.1) + w.spend;
        let amount = block.miner_tx.outputs[coin.1 as usize]
            .amount
            .expect("amount");
        ring_input(
            &self.chain,
            secret,
            amount,
            Scalar::ONE,
            meta.first_output_index + coin.1,
        )
    }

    /// Takes coins of `w` worth at least `amount`.
    fn take(&self, w: &mut Wallet, amount: u64) -> Vec<SpendInput> {
        let mut out = Vec::new();
        let mut sum = 0;
        while sum < amount {
            let coin = w.coins.remove(0);
            let i = self.input(w, coin);
            sum += i.amount;
            out.push(i);
        }
        out
    }
}

fn ring_input(chain: &Chain, secret: Scalar, amount: u64, mask: Scalar, real: u64) -> SpendInput {
    // Decoys from the oldest outputs, long past their unlock windows.
    let n = params().ring_size as u64;
    let mut members: Vec<u64> = (0..).filter(|i| *i != real).take(n as usize - 1).collect();
    members.push(real);
    members.sort_unstable();
    let ring = members
        .iter()
        .map(|&i| {
            let o = chain.store().output(i).expect("db").expect("out");
            (i, o.key, o.commitment)
        })
        .collect();
    let real_index = members
        .iter()
        .position(|&i| i == real)
        .expect("real in ring");
    SpendInput {
        secret,
        amount,
        mask,
        ring,
        real_index,
    }
}

const FEE: u64 = 20_000_000;

/// A stake (with `reg`, a registration) of `amount` from `w` to service node `sn`.
fn stake_tx(
    w: &Wallet,
    inputs: &[SpendInput],
    sn: PublicKey,
    amount: u64,
    reg: Option<sispop_chain::extra::Registration>,
) -> Transaction {
    build_stake_tx(&mut OsRng, &w.spend, &w.view, inputs, sn, amount, FEE, reg)
        .expect("build")
        .tx
}

/// A chain with a miner, an operator and two contributors holding spendable coinbase coins.
fn setup() -> (Net, Wallet, Wallet, Wallet, Wallet) {
    let mut net = Net::new();
    let mut miner = wallet();
    let mut op = wallet();
    let mut c1 = wallet();
    let mut c2 = wallet();
    for _ in 0..8 {
        net.mine_to(&mut op);
        net.mine_to(&mut c1);
        net.mine_to(&mut c2);
    }
    for _ in 0..15 {
        net.mine_to(&mut miner);
    }
    (net, miner, op, c1, c2)
}

fn sn_key() -> (Scalar, PublicKey) {
    let s = random_scalar(&mut OsRng);
    (s, public_from_secret(&s))
}

#[test]
fn pooled_registration_activates_when_funded_pays_the_leader_and_unlocks() {
    let (mut net, mut miner, mut op, mut c1, mut c2) = setup();
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let spots = [
        (op.addr, 25 * COIN),
        (c1.addr, 40 * COIN),
        (c2.addr, 35 * COIN),
    ];
    let reg = sign_registration(&mut OsRng, &sn_secret, 1000, &spots, hf);
    let inputs = net.take(&mut op, 25 * COIN + FEE);
    let op_stake = build_stake_tx(
        &mut OsRng,
        &op.spend,
        &op.view,
        &inputs,
        sn,
        25 * COIN,
        FEE,
        Some(reg),
    )
    .expect("registration");
    net.submit(&op_stake.tx).expect("registration accepted");
    net.mine_to(&mut miner);
    let node = net
        .chain
        .ext()
        .state()
        .nodes
        .get(&sn)
        .cloned()
        .expect("registered");
    assert!(!node.is_funded() && !node.is_active());
    assert_eq!(node.total_contributed, Atomic(25 * COIN));
    assert_eq!(node.total_reserved, Atomic(100 * COIN));
    assert_eq!(node.contributors.len(), 3);

    let inputs = net.take(&mut c1, 40 * COIN + FEE);
    let s1 = build_stake_tx(
        &mut OsRng,
        &c1.spend,
        &c1.view,
        &inputs,
        sn,
        40 * COIN,
        FEE,
        None,
    )
    .expect("c1 stake");
    net.submit(&s1.tx).expect("c1 accepted");
    net.mine_to(&mut miner);
    assert!(
        !net.chain.ext().state().nodes[&sn].is_active(),
        "not active until fully funded"
    );

    let inputs = net.take(&mut c2, 35 * COIN + FEE);
    let s2 = build_stake_tx(
        &mut OsRng,
        &c2.spend,
        &c2.view,
        &inputs,
        sn,
        35 * COIN,
        FEE,
        None,
    )
    .expect("c2 stake");
    net.submit(&s2.tx).expect("c2 accepted");
    net.mine_to(&mut miner);
    let node = net.chain.ext().state().nodes[&sn].clone();
    assert!(node.is_funded() && node.is_active());
    assert_eq!(node.total_contributed, Atomic(100 * COIN));
    assert_ne!(
        node.swarm_id,
        sispop_swarm::UNASSIGNED_SWARM_ID,
        "an active node is in a swarm"
    );
    assert_eq!(
        node.contributors
            .iter()
            .map(|c| c.amount)
            .collect::<Vec<_>>(),
        [25, 40, 35].map(|c| Atomic(c * COIN)).to_vec()
    );

    // The only active node leads the queue; the next block pays its contributors: 10 % fee to
    // the operator, the rest by stake.
    let block = net.mine_to(&mut miner);
    let outs: Vec<u64> = block
        .miner_tx
        .outputs
        .iter()
        .skip(1)
        .filter_map(|o| o.amount)
        .collect();
    // Portions arithmetic (fee in portions of 2^64 − 4, floors, remainder to the operator).
    assert_eq!(outs, vec![6_500_000_002, 7_199_999_999, 6_299_999_999]);
    assert_eq!(outs.iter().sum::<u64>(), 20 * COIN);
    let named = parse_extra(&block.miner_tx.extra)
        .expect("extra")
        .into_iter()
        .find_map(|f| match f {
            ExtraField::Winner(k) => Some(k),
            _ => None,
        });
    assert_eq!(named, Some(sn));
    // A miner tx that pays the wrong amount (or the wrong node) is refused.
    let now = net.now();
    let t = net
        .chain
        .block_template(&mut OsRng, &miner.addr, vec![], now)
        .expect("template");
    let mut wrong = t.block.clone();
    wrong.miner_tx.outputs[1].amount = Some(7_000_000_000);
    assert!(mine(params(), &t.seed, &mut wrong, 1, 10));
    assert!(matches!(
        net.chain.add_block(&wrong.serialize(), &[], now),
        Err(BlockError::MinerTx(_))
    ));
    let mut wrong = t.block.clone();
    wrong.miner_tx.outputs.truncate(1);
    wrong.miner_tx.output_unlock_times.truncate(1);
    assert!(matches!(
        net.chain.add_block(&wrong.serialize(), &[], now),
        Err(BlockError::MinerTx(_))
    ));

    // The locked stake cannot be spent.
    let locked_secret = stake_output_secret(&net, &op, &op_stake.tx);
    let real = output_index_of(&net, &op_stake.tx, 0);
    let spend_locked = build_transfer(
        &mut OsRng,
        &[ring_input(
            &net.chain,
            locked_secret,
            25 * COIN,
            stake_output_mask(&op, &op_stake.tx),
            real,
        )],
        &[(op.addr, 25 * COIN - FEE)],
        FEE,
        TxType::Standard,
        &[],
    )
    .expect("build")
    .tx;
    match net.submit(&spend_locked) {
        // A key image locked a block ago: refused, but not held against whoever relays it.
        Err(PoolError::Invalid(TxError::NotApplicable(msg))) => {
            assert!(msg.contains("locked"), "{msg}")
        }
        other => panic!("locked stake spent: {other:?}"),
    }

    // Unlock: once; the node expires after the unlock period and the stake is spendable.
    let unlock = build_unlock_tx(&mut OsRng, &locked_secret, op_stake.key_image, sn);
    net.submit(&unlock).expect("unlock accepted");
    net.mine_to(&mut miner);
    let requested = net.chain.ext().state().nodes[&sn].requested_unlock_height;
    assert_eq!(
        requested,
        Height(net.height() + params().stake_unlock_blocks)
    );
    let again = build_unlock_tx(&mut OsRng, &locked_secret, op_stake.key_image, sn);
    match net.submit(&again) {
        Err(PoolError::Invalid(TxError::NotApplicable(msg))) => {
            assert!(msg.contains("already has an unlock"), "{msg}")
        }
        other => panic!("second unlock: {other:?}"),
    }
    while net.height() <= requested.0 {
        assert!(net.chain.ext().state().nodes.contains_key(&sn));
        net.mine_to(&mut miner);
    }
    assert!(!net.chain.ext().state().nodes.contains_key(&sn), "expired");
    net.submit(&spend_locked)
        .expect("stake spendable after expiry");
}

/// The one-time secret of output 0 of a stake tx sent by `w`.
fn stake_output_secret(_net: &Net, w: &Wallet, tx: &Transaction) -> Scalar {
    let r = tx_pubkey(&parse_extra(&tx.extra).expect("extra")).expect("R");
    let d = key_derivation(&w.view, &r).expect("d");
    derivation_to_scalar(&d, 0) + w.spend
}

fn stake_output_mask(w: &Wallet, tx: &Transaction) -> Scalar {
    let r = tx_pubkey(&parse_extra(&tx.extra).expect("extra")).expect("R");
    let d = key_derivation(&w.view, &r).expect("d");
    sispop_chain::crypto::commitment_mask(&derivation_to_scalar(&d, 0))
}

fn output_index_of(net: &Net, tx: &Transaction, i: u64) -> u64 {
    net.chain
        .store()
        .tx(&tx.hash())
        .expect("db")
        .expect("mined")
        .1
        + i
}

/// The reason of a staking refusal, whether the transaction is invalid in itself or only does
/// not apply to the current list.
fn rejected(r: Result<(), PoolError>) -> String {
    match r {
        Err(PoolError::Invalid(TxError::Rejected(msg) | TxError::NotApplicable(msg))) => msg,
        other => panic!("expected a staking rejection, got {other:?}"),
    }
}

#[test]
fn staking_refusals_are_specific_and_change_nothing() {
    let (mut net, mut miner, mut op, mut c1, mut c2) = setup();
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let before = net.chain.ext().state().clone();

    // Forged signature: signed by another key.
    let (other_secret, _) = sn_key();
    let spots = [(op.addr, 50 * COIN), (c1.addr, 50 * COIN)];
    let forged = sign_registration(&mut OsRng, &other_secret, 0, &spots, hf);
    let inputs = net.take(&mut op, 50 * COIN + FEE);
    let tx = stake_tx(&op, &inputs, sn, 50 * COIN, Some(forged));
    assert!(rejected(net.submit(&tx)).contains("signature"));

    // Operator below a quarter; five spots; fee above 100 %; wrong hard fork.
    for (spots, fee, hf_used, want) in [
        (
            vec![(op.addr, 20 * COIN), (c1.addr, 80 * COIN)],
            0,
            hf,
            "below the minimum",
        ),
        (
            vec![
                (op.addr, 25 * COIN),
                (c1.addr, 25 * COIN),
                (c2.addr, 25 * COIN),
                (miner.addr, 15 * COIN),
                (wallet().addr, 10 * COIN),
            ],
            0,
            hf,
            "at most 4",
        ),
        (vec![(op.addr, 50 * COIN)], 10_001, hf, "exceeds 10000"),
        (vec![(op.addr, 50 * COIN)], 0, hf - 1, "hard fork"),
    ] {
        let reg = sign_registration(&mut OsRng, &sn_secret, fee, &spots, hf_used);
        let tx = stake_tx(&op, &inputs, sn, 50 * COIN, Some(reg));
        let msg = rejected(net.submit(&tx));
        assert!(msg.contains(want), "{want}: {msg}");
    }

    // Stake decoding: a tx whose revealed key does not match its outputs stakes nothing.
    let reg = sign_registration(&mut OsRng, &sn_secret, 0, &spots, hf);
    let mut tampered = stake_tx(&op, &inputs, sn, 50 * COIN, Some(reg.clone()));
    let mut fields = parse_extra(&tampered.extra).expect("extra");
    for f in &mut fields {
        if let ExtraField::TxSecretKey(k) = f {
            *k = random_scalar(&mut OsRng).to_bytes();
        }
    }
    tampered.extra = build_extra(&fields);
    // (Changing extra also breaks the ring signature, which the chain checks first.)
    assert!(net.submit(&tampered).is_err());

    // Operator staking less than reserved.
    let short = stake_tx(&op, &inputs, sn, 40 * COIN, Some(reg.clone()));
    assert!(rejected(net.submit(&short)).contains("less than the"));
    // Someone other than the operator submitting the registration.
    let c1_inputs = net.take(&mut c1, 50 * COIN + FEE);
    let not_op = stake_tx(&c1, &c1_inputs, sn, 50 * COIN, Some(reg.clone()));
    assert!(rejected(net.submit(&not_op)).contains("operator"));
    assert_eq!(net.chain.ext().state(), &before, "nothing changed");

    // A valid registration reserving everything for op and c1.
    let good = stake_tx(&op, &inputs, sn, 50 * COIN, Some(reg.clone()));
    net.submit(&good).expect("valid registration");
    net.mine_to(&mut miner);
    // A second registration for the same key.
    let more = net.take(&mut op, 50 * COIN + FEE);
    let dup = stake_tx(&op, &more, sn, 50 * COIN, Some(reg));
    assert!(rejected(net.submit(&dup)).contains("already registered"));
    // A contributor without a reservation: no room left.
    let c2_inputs = net.take(&mut c2, 30 * COIN + FEE);
    let outsider = stake_tx(&c2, &c2_inputs, sn, 30 * COIN, None);
    assert!(rejected(net.submit(&outsider)).contains("no unreserved room"));
    // c1 over-contributing beyond the remaining requirement + 1 %.
    let over = stake_tx(&c1, &c1_inputs, sn, 52 * COIN, None);
    assert!(rejected(net.submit(&over)).contains("exceeds the maximum"));
    // c1 under its reservation.
    let under = stake_tx(&c1, &c1_inputs, sn, 10 * COIN, None);
    assert!(rejected(net.submit(&under)).contains("below the minimum"));
    // Contribution to an unknown node.
    let (_, nobody) = sn_key();
    let lost = stake_tx(&c1, &c1_inputs, nobody, 50 * COIN, None);
    assert!(rejected(net.submit(&lost)).contains("not registered"));
    assert!(net.pool.is_empty());
}

#[test]
fn fifth_contributor_is_refused() {
    let (mut net, mut miner, mut op, c1, c2) = setup();
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let reg = sign_registration(&mut OsRng, &sn_secret, 0, &[(op.addr, 25 * COIN)], hf);
    let inputs = net.take(&mut op, 25 * COIN + FEE);
    net.submit(&stake_tx(&op, &inputs, sn, 25 * COIN, Some(reg)))
        .expect("reg");
    net.mine_to(&mut miner);
    // Three more contributors of 20 fill four slots; the fifth is refused.
    let mut others = vec![c1, c2, wallet()];
    for _ in 0..3 {
        net.mine_to(&mut others[2]);
    }
    for _ in 0..12 {
        net.mine_to(&mut miner);
    }
    for w in &mut others {
        let inputs = net.take(w, 25 * COIN + FEE);
        let tx = stake_tx(w, &inputs, sn, 25 * COIN, None);
        net.submit(&tx).expect("contribution");
        net.mine_to(&mut miner);
    }
    assert_eq!(net.chain.ext().state().nodes[&sn].contributors.len(), 4);
    assert!(net.chain.ext().state().nodes[&sn].is_active());
    let mut fifth = wallet();
    for _ in 0..3 {
        net.mine_to(&mut fifth);
    }
    for _ in 0..12 {
        net.mine_to(&mut miner);
    }
    let inputs = net.take(&mut fifth, 25 * COIN + FEE);
    let tx = stake_tx(&fifth, &inputs, sn, 25 * COIN, None);
    let msg = rejected(net.submit(&tx));
    assert!(
        msg.contains("fully funded") || msg.contains("maximum of 4"),
        "{msg}"
    );
}

/// A small deterministic RNG for scenario generation.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Submits `tx` and checks the pool's answer is the list's verdict on it: accepted when the
/// rules let it apply, refused with the rules' reason otherwise. (The caller then checks that
/// what was accepted is mined, which goes through the list's applying code, not its checks.)
fn submit_as_the_list_says(net: &mut Net, tx: &Transaction) -> bool {
    let verdict = net.chain.ext().check(tx, Height(net.height() + 1));
    match (verdict, net.submit(tx)) {
        (Ok(()), Ok(())) => true,
        (Err(e), Err(PoolError::Invalid(TxError::NotApplicable(m) | TxError::Rejected(m)))) => {
            assert_eq!(m, e.to_string());
            false
        }
        (v, r) => panic!("the list says {v:?}, the pool answered {r:?}"),
    }
}

/// Random staking traffic on one branch, a heavier competing branch, a reorg: the list equals a
/// fresh replay of the winning chain, and reopening from disk gives the same list again.
#[test]
fn reorg_gives_the_same_list_as_a_fresh_replay() {
    // Unlocks and contributions refused and accepted, over all seeds.
    let mut outcomes = [0u32; 2];
    for seed in [1u64, 7, 42, 99, 2024] {
        let mut rng = Lcg(seed);
        let (mut net, mut miner, mut op, mut c1, mut c2) = setup();
        // Coins for many contributions, unlocked.
        for _ in 0..12 {
            net.mine_to(&mut c2);
        }
        for _ in 0..15 {
            net.mine_to(&mut miner);
        }
        // Branch point: a second chain copies every block so far.
        let dir_b = tempfile::tempdir().expect("tempdir");
        let mut b =
            Chain::open_with(params(), dir_b.path(), ServiceNodeList::new(params())).expect("open");
        let copy_all = |from: &Chain, to: &mut Chain, start: u64| {
            for h in start..=from.tip().0 .0 {
                let (_, _, blob) = from.block_at(Height(h)).expect("db").expect("block");
                let block = Block::from_bytes(&blob).expect("block");
                let txs: Vec<Vec<u8>> = block
                    .tx_hashes
                    .iter()
                    .map(|t| from.store().tx(t).expect("db").expect("tx").2)
                    .collect();
                let now = from.tip_meta().timestamp + 2;
                to.add_block(&blob, &txs, now).expect("copy");
            }
        };
        copy_all(&net.chain, &mut b, 1);
        let fork = net.height();

        // Branch A: random registrations, contributions and unlocks.
        let mut registered: Vec<(Scalar, PublicKey)> = Vec::new();
        let mut accepted: Vec<sispop_chain::TxHash> = Vec::new();
        let mut stakes: Vec<(Scalar, sispop_chain::KeyImage, PublicKey)> = Vec::new();
        for _ in 0..14 {
            let hf = params().hard_fork_at(Height(net.height() + 1));
            match rng.next(4) {
                3 if !stakes.is_empty() => {
                    let (x, ki, sn) = stakes[rng.next(stakes.len() as u64) as usize];
                    let unlock = build_unlock_tx(&mut OsRng, &x, ki, sn);
                    let ok = submit_as_the_list_says(&mut net, &unlock);
                    outcomes[usize::from(ok)] += 1;
                    if ok {
                        accepted.push(unlock.hash());
                    }
                }
                0 if registered.len() < 2 => {
                    let (s, k) = sn_key();
                    let who: &mut Wallet = if rng.next(2) == 0 { &mut op } else { &mut c1 };
                    let reg = sign_registration(&mut OsRng, &s, 500, &[(who.addr, 50 * COIN)], hf);
                    let inputs = net.take(who, 50 * COIN + FEE);
                    let built = build_stake_tx(
                        &mut OsRng,
                        &who.spend,
                        &who.view,
                        &inputs,
                        k,
                        50 * COIN,
                        FEE,
                        Some(reg),
                    )
                    .expect("build");
                    net.submit(&built.tx).expect("registration");
                    registered.push((s, k));
                    stakes.push((
                        stake_output_secret(&net, who, &built.tx),
                        built.key_image,
                        k,
                    ));
                }
                1 if !registered.is_empty() => {
                    let (_, k) = registered[rng.next(registered.len() as u64) as usize];
                    let inputs = net.take(&mut c2, 25 * COIN + FEE);
                    let tx = stake_tx(&c2, &inputs, k, 25 * COIN, None);
                    let ok = submit_as_the_list_says(&mut net, &tx);
                    outcomes[usize::from(ok)] += 1;
                    if ok {
                        accepted.push(tx.hash());
                    }
                }
                _ => {}
            }
            net.mine_to(&mut miner);
            for h in accepted.drain(..) {
                assert!(
                    net.chain.store().tx(&h).expect("db").is_some(),
                    "seed {seed}: accepted {h} was mined, not dropped"
                );
            }
            assert!(net.pool.is_empty(), "seed {seed}: nothing left behind");
        }
        assert!(!net.chain.ext().state().nodes.is_empty() || registered.is_empty());

        // Branch B: more blocks (heavier), no staking.
        let mut other = wallet();
        for _ in 0..17 {
            let now = b.tip_meta().timestamp + 2;
            let mut t = b
                .block_template(&mut OsRng, &other.addr, vec![], now)
                .expect("template");
            assert!(t.mine(1000));
            b.add_block(&t.block.serialize(), &[], now)
                .expect("b block");
            other.coins.push((t.height.0, 0));
        }
        // A learns B's branch and reorganises.
        copy_all(&b, &mut net.chain, fork + 1);
        assert_eq!(
            net.chain.tip(),
            b.tip(),
            "seed {seed}: A follows the heavier branch"
        );
        assert_eq!(
            net.chain.ext().state(),
            b.ext().state(),
            "seed {seed}: list after reorg = replay of the winning chain"
        );
        // And a fresh replay from genesis agrees too.
        let dir_c = tempfile::tempdir().expect("tempdir");
        let mut c =
            Chain::open_with(params(), dir_c.path(), ServiceNodeList::new(params())).expect("open");
        copy_all(&b, &mut c, 1);
        assert_eq!(
            c.ext().state(),
            b.ext().state(),
            "seed {seed}: fresh replay"
        );
    }
    println!("unlocks and contributions refused/accepted: {outcomes:?}");
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both refusals and acceptances were exercised"
    );
}

/// The list survives a restart: reopening a chain restores the saved list and replays the
/// blocks after it.
#[test]
fn list_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut miner = wallet();
    let (sn_secret, sn) = sn_key();
    let state = {
        let chain =
            Chain::open_with(params(), dir.path(), ServiceNodeList::new(params())).expect("open");
        let mut net = Net {
            _dir: tempfile::tempdir().expect("unused"),
            chain,
            pool: Mempool::new(params().mempool_max_bytes),
        };
        for _ in 0..8 {
            net.mine_to(&mut miner);
        }
        for _ in 0..14 {
            net.mine_to(&mut wallet());
        }
        let hf = params().hard_fork_at(Height(net.height() + 1));
        let reg = sign_registration(&mut OsRng, &sn_secret, 0, &[(miner.addr, 100 * COIN)], hf);
        let inputs = net.take(&mut miner, 100 * COIN + FEE);
        net.submit(&stake_tx(&miner, &inputs, sn, 100 * COIN, Some(reg)))
            .expect("reg");
        for _ in 0..3 {
            net.mine_to(&mut wallet());
        }
        assert!(net.chain.ext().state().nodes[&sn].is_active());
        net.chain.ext().state().clone()
    };
    let reopened =
        Chain::open_with(params(), dir.path(), ServiceNodeList::new(params())).expect("reopen");
    assert_eq!(reopened.ext().state(), &state);
}

/// A stake transaction built by hand: `proofs` says which outputs (0: the stake, 1: the change)
/// carry a key image proof.
fn stake_with_proofs(
    w: &Wallet,
    inputs: &[SpendInput],
    sn: PublicKey,
    amount: u64,
    proofs: &[u64],
) -> Transaction {
    stake_naming(w, &w.addr, inputs, sn, amount, proofs)
}

/// [`stake_with_proofs`] whose extra names `contributor` (the outputs still pay `w`).
fn stake_naming(
    w: &Wallet,
    contributor: &Address,
    inputs: &[SpendInput],
    sn: PublicKey,
    amount: u64,
    proofs: &[u64],
) -> Transaction {
    use sispop_chain::crypto::derivation_to_scalar;
    use sispop_staking::proofs::sign_key_image;
    let r = random_scalar(&mut OsRng);
    let d = key_derivation(&r, &w.addr.view).expect("derivation");
    let mut fields = vec![
        ExtraField::Contributor {
            spend: contributor.spend,
            view: contributor.view,
        },
        ExtraField::ServiceNodePubkey(sn),
        ExtraField::TxSecretKey(r.to_bytes()),
    ];
    let signed: Vec<_> = proofs
        .iter()
        .map(|i| sign_key_image(&mut OsRng, &(derivation_to_scalar(&d, *i) + w.spend)))
        .collect();
    if !signed.is_empty() {
        fields.push(ExtraField::KeyImageProofs(signed));
    }
    let total: u64 = inputs.iter().map(|i| i.amount).sum();
    let dests = [(w.addr, amount), (w.addr, total - amount - FEE)];
    sispop_chain::builder::build_transfer_with_key(
        &mut OsRng,
        r,
        inputs,
        &dests,
        FEE,
        TxType::Stake,
        &fields,
    )
    .expect("build")
    .tx
}

/// A stake transaction must lock exactly one provable output: none (no key image proof) and
/// two (the change proven as well) are refused with their own errors, and a correct one of the
/// same shape is accepted.
#[test]
fn stakes_lock_exactly_one_output() {
    let (mut net, mut miner, mut op, _, _) = setup();
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let reg = sign_registration(&mut OsRng, &sn_secret, 0, &[(op.addr, 50 * COIN)], hf);
    let inputs = net.take(&mut op, 50 * COIN + FEE);
    net.submit(&stake_tx(&op, &inputs, sn, 50 * COIN, Some(reg)))
        .expect("registration");
    net.mine_to(&mut miner);
    for _ in 0..12 {
        net.mine_to(&mut miner);
    }
    let before = net.chain.ext().state().clone();
    let inputs = net.take(&mut op, 30 * COIN + FEE);
    let none = stake_with_proofs(&op, &inputs, sn, 25 * COIN, &[]);
    assert!(
        rejected(net.submit(&none)).contains("no staked output"),
        "no key image proof: no stake"
    );
    // Outputs whose keys are not the named contributor's (paid to op, naming another
    // address): no output is a stake.
    let elsewhere = stake_naming(&op, &wallet().addr, &inputs, sn, 25 * COIN, &[0]);
    assert!(
        rejected(net.submit(&elsewhere)).contains("no staked output"),
        "output keys that are not the contributor's"
    );
    let two = stake_with_proofs(&op, &inputs, sn, 25 * COIN, &[0, 1]);
    assert!(
        rejected(net.submit(&two)).contains("exactly one output, found 2"),
        "stake and change both proven"
    );
    assert_eq!(net.chain.ext().state(), &before, "nothing changed");
    let one = stake_with_proofs(&op, &inputs, sn, 25 * COIN, &[0]);
    net.submit(&one).expect("one proven output is a stake");
    net.mine_to(&mut miner);
    assert_eq!(
        net.chain.ext().state().nodes[&sn].total_contributed,
        Atomic(75 * COIN)
    );
}

/// Open reservations count toward the four contributors. Spots of 40, 30 and 15 (a split that
/// is not four quarters) leave 15 unreserved: one outsider takes it, and a second is refused
/// with `TooManyContributors` while c1 and c2 have not paid, whatever the amount; the reserved
/// contributors then complete the node.
#[test]
fn reservations_count_toward_the_contributor_limit() {
    let (mut net, mut miner, mut op, mut c1, mut c2) = setup();
    let mut a = wallet();
    let mut b = wallet();
    for _ in 0..3 {
        net.mine_to(&mut a);
        net.mine_to(&mut b);
    }
    for _ in 0..12 {
        net.mine_to(&mut miner);
    }
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let spots = [
        (op.addr, 40 * COIN),
        (c1.addr, 30 * COIN),
        (c2.addr, 15 * COIN),
    ];
    let reg = sign_registration(&mut OsRng, &sn_secret, 0, &spots, hf);
    let inputs = net.take(&mut op, 40 * COIN + FEE);
    net.submit(&stake_tx(&op, &inputs, sn, 40 * COIN, Some(reg)))
        .expect("registration");
    net.mine_to(&mut miner);
    assert_eq!(
        net.chain.ext().state().nodes[&sn].total_reserved,
        Atomic(85 * COIN),
        "15 left unreserved"
    );
    let inputs = net.take(&mut a, 15 * COIN + FEE);
    net.submit(&stake_tx(&a, &inputs, sn, 15 * COIN, None))
        .expect("the fourth contributor takes the unreserved part");
    net.mine_to(&mut miner);
    let before = net.chain.ext().state().clone();
    let inputs = net.take(&mut b, 15 * COIN + FEE);
    for amount in [15 * COIN, 5 * COIN] {
        let tx = stake_tx(&b, &inputs, sn, amount, None);
        let msg = rejected(net.submit(&tx));
        assert!(msg.contains("maximum of 4 contributors"), "{msg}");
    }
    assert_eq!(net.chain.ext().state(), &before, "nothing changed");
    for (w, amount) in [(&mut c1, 30 * COIN), (&mut c2, 15 * COIN)] {
        let inputs = net.take(w, amount + FEE);
        net.submit(&stake_tx(w, &inputs, sn, amount, None))
            .expect("reserved contributor");
        net.mine_to(&mut miner);
    }
    let node = &net.chain.ext().state().nodes[&sn];
    assert_eq!(node.contributors.len(), 4);
    assert!(node.is_active());
}

/// Stakes are checked against the state they are applied to: in a block, each against what the
/// ones before it leave (a registration and a contribution to it share a block; two
/// contributions that fit only one at a time do not), and a pooled stake that no longer fits
/// after a block leaves the pool.
#[test]
fn stakes_are_checked_in_block_order_and_stale_ones_leave_the_pool() {
    let (mut net, mut miner, mut op, mut c1, mut c2) = setup();
    let (sn_secret, sn) = sn_key();
    let hf = params().hard_fork_at(Height(net.height() + 1));
    let reg = sign_registration(&mut OsRng, &sn_secret, 0, &[(op.addr, 25 * COIN)], hf);
    let inputs = net.take(&mut op, 25 * COIN + FEE);
    let reg_tx = stake_tx(&op, &inputs, sn, 25 * COIN, Some(reg));
    let inputs = net.take(&mut c1, 25 * COIN + FEE);
    let contrib = stake_tx(&c1, &inputs, sn, 25 * COIN, None);
    // Against the tip alone the contribution names a node that does not exist yet.
    assert!(rejected(net.submit(&contrib)).contains("not registered"));
    let next = Height(net.height() + 1);
    let (first, r) = net
        .chain
        .ext()
        .check_in_order(&[&contrib, &reg_tx], next)
        .expect_err("contribution before its registration");
    assert!(first == 0 && !r.peer_fault, "{}", r.reason);
    // Registration first, then the contribution: one block holds both.
    let now = net.now();
    let mut t = net
        .chain
        .block_template(
            &mut OsRng,
            &miner.addr,
            vec![reg_tx.serialize(), contrib.serialize()],
            now,
        )
        .expect("template");
    assert_eq!(t.txs.len(), 2, "the template takes both");
    assert!(t.mine(1000));
    assert!(matches!(
        net.chain.add_block(&t.block.serialize(), &t.txs, now),
        Ok(AddOutcome::Changed { .. })
    ));
    miner.coins.push((t.height.0, 0));
    let node = &net.chain.ext().state().nodes[&sn];
    assert_eq!(node.total_contributed, Atomic(50 * COIN));

    // 50 of 100 left: two contributions of 50 each fit alone, not together.
    let inputs = net.take(&mut c2, 50 * COIN + FEE);
    let a = stake_tx(&c2, &inputs, sn, 50 * COIN, None);
    let inputs = net.take(&mut c1, 50 * COIN + FEE);
    let b = stake_tx(&c1, &inputs, sn, 50 * COIN, None);
    let next = Height(net.height() + 1);
    let (second, r) = net
        .chain
        .ext()
        .check_in_order(&[&a, &b], next)
        .expect_err("the second no longer fits");
    assert!(second == 1 && !r.peer_fault, "{}", r.reason);
    net.submit(&a).expect("fits alone");
    net.submit(&b).expect("fits alone");
    assert_eq!(net.pool.len(), 2);
    // The block takes one; the other no longer applies and leaves the pool.
    net.mine_to(&mut miner);
    let node = &net.chain.ext().state().nodes[&sn];
    assert_eq!(node.total_contributed, Atomic(100 * COIN));
    assert!(node.is_funded());
    assert!(net.pool.is_empty(), "the stale stake left the pool");
}
