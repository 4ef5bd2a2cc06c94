//! State changes applied by the service node list (reference `service-nodes.md` §2.3, §4.10):
//! 7 of 10 votes decommission, recommission, penalise and deregister a node; 6 votes, a forged
//! vote, an unknown or expired quorum height and a change that no longer applies are refused
//! with their reason and change nothing; a block that is detached restores the list exactly;
//! two lists fed the same blocks agree byte for byte.

use sispop_chain::extension::{BlockTx, ChainExtension};
use sispop_chain::{BlockHash, Height, Network, NetworkParams, Transaction};
use sispop_staking::testkit::{block, signed_state_change, state};
use sispop_staking::ServiceNodeList;
use sispop_swarm::UNASSIGNED_SWARM_ID;
use sispop_testing::NewState;

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

fn hash(h: u64) -> BlockHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&h.to_le_bytes());
    b[31] = 0x5a;
    BlockHash(b)
}

/// Attaches the block at `h` (on `h - 1`) carrying `txs`.
fn attach(list: &mut ServiceNodeList, h: u64, txs: &[&Transaction]) {
    let b = block(hash(h - 1));
    let btxs: Vec<BlockTx<'_>> = txs
        .iter()
        .map(|tx| BlockTx {
            hash: tx.hash(),
            tx,
        })
        .collect();
    list.attach(&b, hash(h), Height(h), &btxs);
}

/// A list of 12 nodes at height 100, then block 101 (so a quorum exists at 101).
fn setup() -> (
    ServiceNodeList,
    std::collections::HashMap<sispop_chain::PublicKey, curve25519_dalek::Scalar>,
) {
    let (s, secrets) = state(12, (Height(100), hash(100)));
    let mut list = ServiceNodeList::new(params());
    list.restore(&serde_json::to_vec(&s).expect("json"))
        .expect("restore");
    attach(&mut list, 101, &[]);
    (list, secrets)
}

#[test]
fn votes_decommission_recommission_penalise_and_deregister() {
    let (mut list, secrets) = setup();
    let q = list.state().quorum(Height(101)).expect("quorum").clone();
    assert_eq!(q.validators.len(), 10);
    assert_eq!(q.workers.len(), 2);
    let target = q.workers[0];
    assert!(list.state().nodes[&target].is_active());
    let dec =
        signed_state_change(list.state(), &secrets, 101, 0, NewState::Decommission, 7).expect("tx");
    list.check_tx(&dec, Height(102))
        .expect("7 votes are enough");
    assert!(list.conflict_key(&dec).is_some());

    attach(&mut list, 102, &[&dec]);
    let n = &list.state().nodes[&target];
    assert!(n.is_decommissioned() && !n.is_active() && n.is_funded());
    assert_eq!(n.swarm_id, UNASSIGNED_SWARM_ID, "left its swarm");
    assert_eq!(n.decommission_count, 1);
    assert_eq!(n.last_decommission_height, Height(102));
    assert_eq!(n.last_decommission_reason_consensus_any, 1);
    assert!(list.state().active().all(|(pk, _)| *pk != target));
    assert_ne!(list.state().leader(), Some(target), "earns nothing");
    assert!(
        list.state()
            .active()
            .all(|(_, n)| n.swarm_id != UNASSIGNED_SWARM_ID),
        "the others were given swarms"
    );
    // The same change again no longer applies: refused, but not the sender's fault.
    let again = list
        .check_tx(&dec, Height(103))
        .expect_err("applied already");
    assert!(!again.peer_fault, "{}", again.reason);

    // Recommission, voted in the quorum of 103: the quorum of the block that decommissioned
    // it cannot vote on it (a decommissioned node is always a worker).
    attach(&mut list, 103, &[]);
    let q = list.state().quorum(Height(103)).expect("quorum").clone();
    let wi = q.workers.iter().position(|w| *w == target).expect("worker") as u16;
    let q102 = list.state().quorum(Height(102)).expect("quorum").clone();
    let wi102 = q102
        .workers
        .iter()
        .position(|w| *w == target)
        .expect("worker") as u16;
    let early = signed_state_change(
        list.state(),
        &secrets,
        102,
        wi102,
        NewState::Recommission,
        7,
    )
    .expect("tx");
    let r = list
        .check_tx(&early, Height(104))
        .expect_err("voted too early");
    assert!(!r.peer_fault, "{}", r.reason);
    let rec = signed_state_change(list.state(), &secrets, 103, wi, NewState::Recommission, 7)
        .expect("tx");
    attach(&mut list, 104, &[&rec]);
    let n = &list.state().nodes[&target];
    assert!(n.is_active());
    assert_eq!(n.active_since_height, 104);
    assert_ne!(n.swarm_id, UNASSIGNED_SWARM_ID, "rejoined a swarm");
    assert_eq!(
        (n.last_reward_block_height, n.last_reward_transaction_index),
        (Height(104), u32::MAX),
        "back of the reward queue"
    );

    // An IP-change penalty on a worker of 104.
    let q = list.state().quorum(Height(104)).expect("quorum").clone();
    let penalised = q.workers[1];
    let ip = signed_state_change(list.state(), &secrets, 104, 1, NewState::IpChangePenalty, 7)
        .expect("tx");
    attach(&mut list, 105, &[&ip]);
    let n = &list.state().nodes[&penalised];
    assert!(n.is_active());
    assert_eq!(n.last_ip_change_height, Height(105));
    assert_eq!(n.last_reward_block_height, Height(105));

    // Deregistration: removed, stake blacklisted.
    let q = list.state().quorum(Height(105)).expect("quorum").clone();
    let gone = q.workers[0];
    let before = list.snapshot();
    let dereg =
        signed_state_change(list.state(), &secrets, 105, 0, NewState::Deregister, 7).expect("tx");
    attach(&mut list, 106, &[&dereg]);
    assert!(!list.state().nodes.contains_key(&gone));
    assert!(list
        .state()
        .blacklist
        .iter()
        .any(|b| b.key_image.0 == gone.0));
    assert!(!list.state().locked.values().any(|pk| *pk == gone));

    // A reorg takes it back exactly.
    assert!(list.detach(Height(106), hash(106), (Height(105), hash(105))));
    assert_eq!(list.snapshot(), before);
    assert!(list.state().nodes.contains_key(&gone));
}

#[test]
fn bad_state_changes_are_refused_and_change_nothing() {
    let (mut list, secrets) = setup();
    let before = list.snapshot();
    let reason = |tx: &Transaction, at: u64| {
        let r = list.check_tx(tx, Height(at)).expect_err("refused");
        (r.reason, r.peer_fault)
    };
    let six =
        signed_state_change(list.state(), &secrets, 101, 0, NewState::Decommission, 6).expect("tx");
    let (why, fault) = reason(&six, 102);
    assert!(why.contains("6 votes") && fault, "{why}");

    // A vote signed for another state: the signature does not verify.
    let mut forged =
        signed_state_change(list.state(), &secrets, 101, 0, NewState::Deregister, 7).expect("tx");
    let dec =
        signed_state_change(list.state(), &secrets, 101, 0, NewState::Decommission, 7).expect("tx");
    // Same votes, state field switched to decommission.
    forged.extra = dec.extra.clone();
    let fields = sispop_chain::extra::parse_extra(&dec.extra).expect("extra");
    let mut sc = sispop_staking::list::state_change_field(&fields)
        .expect("sc")
        .clone();
    sc.state = NewState::Recommission as u64;
    forged.extra =
        sispop_chain::extra::build_extra(&[sispop_chain::extra::ExtraField::StateChange(sc)]);
    let (why, fault) = reason(&forged, 102);
    assert!(why.contains("does not verify") && fault, "{why}");

    // Unknown quorum height, quorum height not before the block, too old.
    let (why, fault) = reason(&dec, 101);
    assert!(why.contains("cannot be included") && !fault, "{why}");
    let (why, fault) = reason(&dec, 101 + params().sn.vote_lifetime);
    assert!(why.contains("cannot be included") && !fault, "{why}");

    // A block carrying the bad ones changes nothing (the miner's block is judged by the chain;
    // the list ignores what does not apply).
    attach(&mut list, 102, &[&six, &forged]);
    assert!(list
        .state()
        .nodes
        .values()
        .all(|n| n.is_active() && n.decommission_count == 0));
    assert!(list.detach(Height(102), hash(102), (Height(101), hash(101))));
    assert_eq!(list.snapshot(), before);

    // Two identical changes in one block: the second no longer applies.
    attach(&mut list, 102, &[&dec, &dec]);
    assert_eq!(
        list.state()
            .nodes
            .values()
            .filter(|n| n.decommission_count == 1)
            .count(),
        1
    );
}

#[test]
fn quorums_are_kept_for_the_vote_window_and_lists_agree() {
    let (mut a, secrets) = setup();
    let (mut b, _) = setup();
    let dec =
        signed_state_change(a.state(), &secrets, 101, 1, NewState::Decommission, 8).expect("tx");
    for h in 102..=200 {
        let txs: Vec<&Transaction> = if h == 130 { vec![&dec] } else { vec![] };
        attach(&mut a, h, &txs);
        attach(&mut b, h, &txs);
    }
    assert_eq!(a.snapshot(), b.snapshot(), "same blocks, same list");
    let keep = params().sn.vote_lifetime + params().sn.vote_verify_buffer;
    let heights: Vec<u64> = a.state().quorums.keys().map(|h| h.0).collect();
    assert_eq!(heights.first(), Some(&(200 - keep)));
    assert_eq!(heights.last(), Some(&200));
    assert_eq!(
        a.state()
            .nodes
            .values()
            .filter(|n| n.decommission_count == 1)
            .count(),
        1,
        "the change at 130 applied (within the lifetime of its quorum at 101)"
    );
    // Quorums survive a snapshot and restore.
    let mut c = ServiceNodeList::new(params());
    c.restore(&a.snapshot()).expect("restore");
    assert_eq!(c.state().quorums, a.state().quorums);
}
