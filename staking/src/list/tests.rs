//! Tests of the service node list.
use super::*;
use crate::rules::{contribute, MAX_CONTRIBUTORS};
use proptest::prelude::*;
use sispop_chain::crypto::{public_from_secret, random_scalar};
use sispop_chain::Network;

fn params() -> &'static NetworkParams {
    NetworkParams::get(Network::Devnet)
}

fn addr(i: u8) -> Address {
    let k = public_from_secret(&curve25519_dalek::Scalar::from(u64::from(i) + 1));
    Address { spend: k, view: k }
}

fn funded(active_since: i64) -> ServiceNodeInfo {
    ServiceNodeInfo {
        registration_height: Height(1),
        registration_hf_version: 19,
        requested_unlock_height: Height(0),
        last_reward_block_height: Height(1),
        last_reward_transaction_index: 0,
        decommission_count: 0,
        active_since_height: active_since,
        last_decommission_height: Height(0),
        last_decommission_reason_consensus_all: 0,
        last_decommission_reason_consensus_any: 0,
        recommission_credit: params().sn.credit_initial,
        contributors: vec![Contributor {
            address: addr(1),
            amount: Atomic(100),
            reserved: Atomic(100),
            locked_contributions: vec![LockedContribution {
                key_image: KeyImage([7; 32]),
                key_image_pub_key: PublicKey([8; 32]),
                amount: Atomic(100),
            }],
        }],
        total_contributed: Atomic(100),
        total_reserved: Atomic(100),
        staking_requirement: Atomic(100),
        fee: 0,
        portions_for_operator: 0,
        swarm_id: 5,
        swarm_since: Height(0),
        operator_address: addr(1),
        last_ip_change_height: Height(1),
    }
}

#[test]
fn decommission_credit_and_state_hooks() {
    let pk = public_from_secret(&random_scalar(&mut rand::rngs::OsRng));
    let mut s = State::default();
    s.nodes.insert(pk, Arc::new(funded(10)));
    s.rebuild_locked();
    let t = &NetworkParams::get(Network::Mainnet).sn;
    // 60 initial + 1 block per 30 up: 900 blocks up → 90.
    assert_eq!(s.nodes[&pk].decommission_credit(Height(910), t), 90);
    assert_eq!(
        s.nodes[&pk].decommission_credit(Height(1_000_000), &params().sn),
        params().sn.credit_max,
        "capped"
    );
    assert!(s.decommission(&pk, Height(910), 1, 3));
    let n = &s.nodes[&pk];
    assert!(n.is_decommissioned() && !n.is_active() && n.is_funded());
    assert_eq!(n.swarm_id, UNASSIGNED_SWARM_ID);
    assert_eq!(n.decommission_count, 1);
    assert_eq!(
        n.decommission_credit(Height(950), t),
        50,
        "credit runs down while decommissioned"
    );
    assert!(!s.decommission(&pk, Height(951), 0, 0), "not twice");
    assert!(!s.ip_change_penalty(&pk, Height(951)), "only active nodes");
    assert!(s.recommission(&pk, Height(950), t));
    let n = &s.nodes[&pk];
    assert!(n.is_active());
    assert_eq!(n.recommission_credit, 90 - 2 * 40);
    assert_eq!(
        (n.last_reward_block_height, n.last_reward_transaction_index),
        (Height(950), u32::MAX)
    );
    assert!(s.ip_change_penalty(&pk, Height(960)));
    assert_eq!(s.nodes[&pk].last_ip_change_height, Height(960));
    // Deregistration removes the node and blacklists its stake.
    assert!(s.deregister(&pk, Height(1000), params()));
    assert!(s.nodes.is_empty() && s.locked.is_empty());
    assert_eq!(
        s.blacklist,
        vec![BlacklistEntry {
            key_image: KeyImage([7; 32]),
            unlock_height: Height(1000 + params().dereg_blacklist_blocks),
            amount: Atomic(100)
        }]
    );
}

#[test]
fn blacklisted_and_locked_key_images_cannot_be_spent() {
    let pk = public_from_secret(&random_scalar(&mut rand::rngs::OsRng));
    let mut list = ServiceNodeList::new(params());
    list.state.nodes.insert(pk, Arc::new(funded(10)));
    list.state.rebuild_locked();
    let spend = |ki: [u8; 32]| Transaction {
        version: 4,
        output_unlock_times: vec![],
        v3_state_change: false,
        unlock_time: 0,
        inputs: vec![monero_oxide::transaction::Input::ToKey {
            amount: None,
            key_offsets: vec![0],
            key_image: monero_oxide::ed25519::CompressedPoint::from(ki),
        }],
        outputs: vec![],
        extra: vec![],
        tx_type: TxType::Standard,
        rct: None,
    };
    assert!(matches!(
        list.check(&spend([7; 32]), Height(20)),
        Err(StakingError::LockedKeyImage(..))
    ));
    list.state.deregister(&pk, Height(20), params());
    assert!(matches!(
        list.check(&spend([7; 32]), Height(21)),
        Err(StakingError::Blacklisted(..))
    ));
    assert!(list.check(&spend([9; 32]), Height(21)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any sequence of contribution attempts keeps the record consistent: credited amounts
    /// add up, never exceed the requirement, reservations cover amounts, at most 4 contributors.
    #[test]
    fn contributions_keep_the_record_consistent(
        spots in proptest::collection::vec(1u64..60, 1..=4),
        attempts in proptest::collection::vec((0u8..6, 1u64..120), 0..12),
    ) {
        let req = 100u64;
        let mut reserved = 0;
        let mut spot_list = Vec::new();
        for (i, s) in spots.iter().enumerate() {
            let room = req - reserved;
            let amount = (*s).min(room).max(if i == 0 { req / 4 } else { 1 }).min(room);
            if amount == 0 { break; }
            spot_list.push((addr(i as u8), amount));
            reserved += amount;
        }
        let mut info = funded(0);
        info.contributors = spot_list.iter().map(|(a, r)| Contributor { address: *a, amount: Atomic(0), reserved: Atomic(*r), locked_contributions: vec![] }).collect();
        info.total_contributed = Atomic(0);
        info.total_reserved = Atomic(reserved);
        let pk = PublicKey([1; 32]);
        for (who, amount) in attempts {
            if info.is_funded() { break; }
            if let Ok(i) = contribute(&pk, &mut info, addr(who), amount) {
                info.contributors[i].locked_contributions.push(LockedContribution { key_image: KeyImage([who; 32]), key_image_pub_key: pk, amount: Atomic(amount) });
            }
            let sum: u64 = info.contributors.iter().map(|c| c.amount.0).sum();
            prop_assert_eq!(sum, info.total_contributed.0);
            prop_assert!(info.total_contributed.0 <= req);
            prop_assert!(info.contributors.len() <= MAX_CONTRIBUTORS);
            prop_assert!(info.contributors.iter().all(|c| c.amount <= c.reserved));
            let res: u64 = info.contributors.iter().map(|c| c.reserved.0).sum();
            prop_assert_eq!(res, info.total_reserved.0);
        }
    }
}
