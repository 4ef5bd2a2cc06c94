//! The service node list: a per-block state machine over registrations, contributions, unlock
//! requests, expiry, rewards and (driven by the testing suite) state changes, with swarm
//! assignment, a history for rollbacks, and snapshots (reference `service-nodes.md` §2).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sispop_chain::extension::{BlockTx, ChainExtension, Rejection, ServiceNodePayout};
use sispop_chain::extra::{parse_extra, ExtraField, StateChange};
use sispop_chain::params::ServiceNodeTimings;
use sispop_chain::{
    Address, Atomic, Block, BlockHash, Height, KeyImage, NetworkParams, PublicKey, Transaction,
    TxType,
};
use sispop_swarm::{calc_swarm_changes, SwarmMap, UNASSIGNED_SWARM_ID};
use sispop_testing::{obligations_quorum, verify_state_change, NewState, ObligationsQuorum};

use crate::rules::{self, StakingError};
use crate::staking_requirement;

mod ext;

/// How many past states are kept for rollbacks.
pub const STATE_HISTORY: usize = 60;

/// The obligations quorum of one height, shared between states.
pub type Quorum = Arc<ObligationsQuorum<PublicKey>>;

/// A locked stake output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedContribution {
    /// Key image of the locked output.
    pub key_image: KeyImage,
    /// One-time key of the locked output (signs the unlock request).
    pub key_image_pub_key: PublicKey,
    /// Full decoded amount of the output.
    pub amount: Atomic,
}

/// One contributor of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contributor {
    /// Wallet address.
    pub address: Address,
    /// Amount credited toward the requirement.
    pub amount: Atomic,
    /// Amount reserved for this contributor at registration.
    pub reserved: Atomic,
    /// Its locked outputs.
    pub locked_contributions: Vec<LockedContribution>,
}

/// A service node's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNodeInfo {
    /// Height of the registration.
    pub registration_height: Height,
    /// Hard fork of the registration.
    pub registration_hf_version: u8,
    /// Height at which the node expires (0: no unlock requested).
    pub requested_unlock_height: Height,
    /// Reward queue position: last height it was paid or moved to the back.
    pub last_reward_block_height: Height,
    /// Reward queue tie-break.
    pub last_reward_transaction_index: u32,
    /// Times decommissioned.
    pub decommission_count: u32,
    /// Height it became active; negated while decommissioned.
    pub active_since_height: i64,
    /// Height of the last decommission.
    pub last_decommission_height: Height,
    /// AND of the reasons of the last decommission.
    pub last_decommission_reason_consensus_all: u16,
    /// OR of the reasons of the last decommission.
    pub last_decommission_reason_consensus_any: u16,
    /// Credit carried over from before the last decommission.
    pub recommission_credit: i64,
    /// Contributors, operator first.
    pub contributors: Vec<Contributor>,
    /// Sum of credited amounts.
    pub total_contributed: Atomic,
    /// Sum of reserved amounts.
    pub total_reserved: Atomic,
    /// Requirement frozen at registration.
    pub staking_requirement: Atomic,
    /// Operator fee in basis points (0..=10000).
    pub fee: u64,
    /// The fee as portions of `STAKING_PORTIONS`.
    pub portions_for_operator: u64,
    /// Swarm, or `UNASSIGNED_SWARM_ID`.
    pub swarm_id: u64,
    /// The height at which `swarm_id` last changed (a node that left its swarm and came back
    /// has a later one): what the node held before it may have been handed over.
    #[serde(default)]
    pub swarm_since: Height,
    /// Operator wallet.
    pub operator_address: Address,
    /// Height of the last IP change penalty (or registration).
    pub last_ip_change_height: Height,
}

impl ServiceNodeInfo {
    /// Fully staked.
    pub fn is_funded(&self) -> bool {
        self.total_contributed >= self.staking_requirement
    }
    /// Decommissioned (funded, temporarily out of service).
    pub fn is_decommissioned(&self) -> bool {
        self.active_since_height < 0
    }
    /// Funded and not decommissioned.
    pub fn is_active(&self) -> bool {
        self.is_funded() && !self.is_decommissioned()
    }

    /// Earned downtime in blocks at `height` (§2.4). Heights are chain heights (far below
    /// `i64::MAX`); the arithmetic saturates all the same.
    pub fn decommission_credit(&self, height: Height, t: &ServiceNodeTimings) -> i64 {
        let h = i64::try_from(height.0).unwrap_or(i64::MAX);
        let last_decomm = i64::try_from(self.last_decommission_height.0).unwrap_or(i64::MAX);
        let blocks_up = if !self.is_funded() {
            0
        } else if self.is_decommissioned() {
            last_decomm.saturating_add(self.active_since_height)
        } else {
            h.saturating_sub(self.active_since_height)
        };
        let earned = blocks_up.max(0).saturating_mul(t.credit_per_period) / t.credit_period.max(1);
        let mut credit = self
            .recommission_credit
            .saturating_add(earned)
            .min(t.credit_max);
        if self.is_decommissioned() {
            credit = credit.saturating_sub(h.saturating_sub(last_decomm));
        }
        credit
    }

    /// Whether a vote at quorum height `height` may concern this node (upstream
    /// `can_be_voted_on`): funded, and the height after its registration and after its last
    /// change of state.
    pub fn can_be_voted_on(&self, height: Height) -> bool {
        let h = i64::try_from(height.0).unwrap_or(i64::MAX);
        self.is_funded()
            && height > self.registration_height
            && !(self.is_decommissioned() && height <= self.last_decommission_height)
            && !(self.is_active() && h <= self.active_since_height)
    }

    /// Whether a state change voted at quorum height `height` applies to this node now
    /// (upstream `can_transition_to_state`).
    pub fn can_transition_to(&self, height: Height, state: NewState) -> bool {
        if !self.can_be_voted_on(height) {
            return false;
        }
        match state {
            NewState::Deregister => height > self.registration_height,
            NewState::IpChangePenalty => {
                height > self.last_ip_change_height && !self.is_decommissioned()
            }
            NewState::Decommission => self.is_active(),
            NewState::Recommission => self.is_decommissioned(),
        }
    }
}

/// A frozen stake of a deregistered node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    /// The frozen key image.
    pub key_image: KeyImage,
    /// Height from which it may be spent again.
    pub unlock_height: Height,
    /// Amount of the frozen output.
    pub amount: Atomic,
}

/// The list at one block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Block the state is as of (`None` before genesis).
    pub tip: Option<(Height, BlockHash)>,
    /// Every registered node.
    pub nodes: BTreeMap<PublicKey, Arc<ServiceNodeInfo>>,
    /// Frozen stakes.
    pub blacklist: Vec<BlacklistEntry>,
    /// Locked key image → node (derived from `nodes`).
    #[serde(skip)]
    pub locked: BTreeMap<KeyImage, PublicKey>,
    /// Obligations quorums of the recent heights whose votes and state changes are still
    /// valid, each built from the state after its block (§2.2 step 9).
    #[serde(default)]
    pub quorums: BTreeMap<Height, Quorum>,
    /// The height at which the set of swarm ids last changed (accounts move between swarms
    /// only then).
    #[serde(default)]
    pub swarm_ids_since: Height,
}

impl State {
    /// The ids of the swarms with active members.
    pub fn swarm_ids(&self) -> std::collections::BTreeSet<u64> {
        self.active()
            .map(|(_, n)| n.swarm_id)
            .filter(|id| *id != sispop_swarm::UNASSIGNED_SWARM_ID)
            .collect()
    }

    pub(crate) fn rebuild_locked(&mut self) {
        self.locked = self
            .nodes
            .iter()
            .flat_map(|(pk, n)| {
                n.contributors
                    .iter()
                    .flat_map(|c| c.locked_contributions.iter())
                    .map(move |l| (l.key_image, *pk))
            })
            .collect();
    }

    /// Active nodes in pubkey order.
    pub fn active(&self) -> impl Iterator<Item = (&PublicKey, &Arc<ServiceNodeInfo>)> {
        self.nodes.iter().filter(|(_, n)| n.is_active())
    }

    /// The reward-queue leader: the active node with the smallest
    /// (last reward height, last reward tx index, pubkey).
    pub fn leader(&self) -> Option<PublicKey> {
        self.active()
            .min_by_key(|(pk, n)| {
                (
                    n.last_reward_block_height,
                    n.last_reward_transaction_index,
                    **pk,
                )
            })
            .map(|(pk, _)| *pk)
    }

    /// Decommission an active node (testing-suite hook, §2.3).
    pub fn decommission(
        &mut self,
        pk: &PublicKey,
        height: Height,
        reasons_all: u16,
        reasons_any: u16,
    ) -> bool {
        let Some(n) = self.nodes.get_mut(pk) else {
            return false;
        };
        if !n.is_active() {
            return false;
        }
        let n = Arc::make_mut(n);
        n.active_since_height = -n.active_since_height;
        n.last_decommission_height = height;
        n.last_decommission_reason_consensus_all = reasons_all;
        n.last_decommission_reason_consensus_any = reasons_any;
        n.decommission_count += 1;
        n.swarm_id = UNASSIGNED_SWARM_ID;
        n.swarm_since = height;
        true
    }

    /// Recommission a decommissioned node (testing-suite hook, §2.3).
    pub fn recommission(&mut self, pk: &PublicKey, height: Height, t: &ServiceNodeTimings) -> bool {
        let Some(n) = self.nodes.get_mut(pk) else {
            return false;
        };
        if !n.is_decommissioned() {
            return false;
        }
        let n = Arc::make_mut(n);
        let credit_at_decomm = n.decommission_credit(n.last_decommission_height, t);
        let down = i64::try_from(height.0.saturating_sub(n.last_decommission_height.0))
            .unwrap_or(i64::MAX);
        n.recommission_credit = credit_at_decomm
            .saturating_sub(down.saturating_mul(2))
            .max(0);
        n.active_since_height = height.0 as i64;
        n.last_reward_block_height = height;
        n.last_reward_transaction_index = u32::MAX;
        true
    }

    /// Deregister a node: removed, its stakes blacklisted (testing-suite hook, §2.3).
    pub fn deregister(&mut self, pk: &PublicKey, height: Height, params: &NetworkParams) -> bool {
        let Some(n) = self.nodes.remove(pk) else {
            return false;
        };
        for l in n
            .contributors
            .iter()
            .flat_map(|c| c.locked_contributions.iter())
        {
            self.locked.remove(&l.key_image);
            self.blacklist.push(BlacklistEntry {
                key_image: l.key_image,
                unlock_height: Height(height.0.saturating_add(params.dereg_blacklist_blocks)),
                amount: l.amount,
            });
        }
        true
    }

    /// IP change penalty: back of the reward queue (testing-suite hook, §2.3).
    pub fn ip_change_penalty(&mut self, pk: &PublicKey, height: Height) -> bool {
        let Some(n) = self.nodes.get_mut(pk) else {
            return false;
        };
        if !n.is_active() {
            return false;
        }
        let n = Arc::make_mut(n);
        n.last_reward_block_height = height;
        n.last_reward_transaction_index = u32::MAX;
        n.last_ip_change_height = height;
        true
    }

    /// The obligations quorum of `height`, if it is still held.
    pub fn quorum(&self, height: Height) -> Option<&Quorum> {
        self.quorums.get(&height)
    }

    /// Active and decommissioned (funded) nodes, each in pubkey order.
    pub fn quorum_candidates(&self) -> (Vec<PublicKey>, Vec<PublicKey>) {
        let active = self.active().map(|(pk, _)| *pk).collect();
        let decomm = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_funded() && n.is_decommissioned())
            .map(|(pk, _)| *pk)
            .collect();
        (active, decomm)
    }

    /// Verifies a state change for a block at `height` against the quorum it names and the
    /// node's current state. Returns the node and its new state.
    pub fn check_state_change(
        &self,
        sc: &StateChange,
        height: Height,
        t: &ServiceNodeTimings,
    ) -> Result<(PublicKey, NewState), Rejection> {
        let quorum = self.quorum(Height(sc.block_height)).map(|q| &**q);
        let (pk, state) = verify_state_change(sc, quorum, height.0, t).map_err(|e| {
            if e.is_peer_fault() {
                Rejection::invalid(e.to_string())
            } else {
                Rejection::stale(e.to_string())
            }
        })?;
        let node = self.nodes.get(&pk).ok_or_else(|| {
            Rejection::stale(format!("service node {pk} is no longer registered"))
        })?;
        if !node.can_transition_to(Height(sc.block_height), state) {
            return Err(Rejection::stale(format!(
                "service node {pk} cannot take the {} voted at height {}",
                state.name(),
                sc.block_height
            )));
        }
        Ok((pk, state))
    }

    /// Applies a verified state change (§2.3). Returns whether it applied (any applied state
    /// change requests a swarm update, as upstream).
    pub fn apply_state_change(
        &mut self,
        pk: &PublicKey,
        state: NewState,
        sc: &StateChange,
        height: Height,
        params: &NetworkParams,
    ) -> bool {
        let reasons_all = u16::try_from(sc.reason_consensus_all).unwrap_or(u16::MAX);
        let reasons_any = u16::try_from(sc.reason_consensus_any).unwrap_or(u16::MAX);
        let applied = match state {
            NewState::Decommission => self.decommission(pk, height, reasons_all, reasons_any),
            NewState::Recommission => self.recommission(pk, height, &params.sn),
            NewState::Deregister => self.deregister(pk, height, params),
            NewState::IpChangePenalty => self.ip_change_penalty(pk, height),
        };
        tracing::info!(node = %pk, state = state.name(), %height, quorum_height = sc.block_height, reasons = ?sispop_testing::decide::reason::names(reasons_any), "service node state change applied");
        applied
    }

    /// Payouts for the leader's contributors from `share` (§2.5): the operator fee first,
    /// then by stake; the rounding remainder goes to the first entry.
    pub fn payouts(&self, share: Atomic) -> ServiceNodePayout {
        let Some(leader) = self.leader() else {
            return ServiceNodePayout::default();
        };
        let Some(n) = self.nodes.get(&leader) else {
            return ServiceNodePayout::default();
        };
        let mut out: Vec<(Address, Atomic)> = Vec::new();
        let portions = u128::from(rules::STAKING_PORTIONS);
        let req = u128::from(n.staking_requirement.0.max(1));
        let pfo = u128::from(n.portions_for_operator);
        for (i, c) in n.contributors.iter().enumerate() {
            let mut portion = u128::from(c.amount.0) * (portions - pfo) / req;
            if i == 0 {
                portion += pfo;
            }
            let amount = u128::from(share.0) * portion.min(portions) / portions;
            if amount > 0 {
                out.push((c.address, Atomic(amount as u64)));
            }
        }
        let paid: u64 = out.iter().map(|(_, a)| a.0).sum();
        if let Some(first) = out.first_mut() {
            first.1 = Atomic(first.1 .0 + share.0.saturating_sub(paid));
        }
        ServiceNodePayout {
            leader: Some(leader),
            payouts: out,
        }
    }
}

/// The list with its history: the chain extension of a Sispop node.
pub struct ServiceNodeList {
    params: &'static NetworkParams,
    state: State,
    history: VecDeque<State>,
}

impl std::fmt::Debug for ServiceNodeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNodeList")
            .field("tip", &self.state.tip)
            .field("nodes", &self.state.nodes.len())
            .finish()
    }
}

/// The state change field of a transaction's extra.
pub fn state_change_field(fields: &[ExtraField]) -> Option<&StateChange> {
    fields.iter().find_map(|f| match f {
        ExtraField::StateChange(sc) => Some(sc),
        _ => None,
    })
}

fn winner(block: &Block) -> Option<PublicKey> {
    parse_extra(&block.miner_tx.extra)
        .ok()?
        .into_iter()
        .find_map(|f| match f {
            ExtraField::Winner(k) if k.0 != [0; 32] => Some(k),
            _ => None,
        })
}

impl ServiceNodeList {
    /// An empty list for a network.
    pub fn new(params: &'static NetworkParams) -> ServiceNodeList {
        ServiceNodeList {
            params,
            state: State::default(),
            history: VecDeque::new(),
        }
    }

    /// A list that starts from `state` (for tests and tools that need a given list without
    /// the blocks that would make it; `state.tip` must be a block of the chain it is used with).
    pub fn from_state(params: &'static NetworkParams, state: State) -> ServiceNodeList {
        ServiceNodeList::from_states(params, Vec::new(), state)
    }

    /// [`ServiceNodeList::from_state`] with the states of earlier blocks, oldest first (what
    /// [`ServiceNodeList::recent_states`] gives).
    pub fn from_states(
        params: &'static NetworkParams,
        history: Vec<State>,
        state: State,
    ) -> ServiceNodeList {
        ServiceNodeList {
            params,
            state,
            history: history.into(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The states after each of the last blocks (at most [`STATE_HISTORY`]), oldest first, not
    /// counting the current one.
    pub fn recent_states(&self) -> impl Iterator<Item = &State> {
        self.history.iter()
    }

    /// Network parameters.
    pub fn params(&self) -> &'static NetworkParams {
        self.params
    }

    /// Applies one block to `state` (§2.2).
    fn apply_block(
        &self,
        state: &mut State,
        block: &Block,
        hash: BlockHash,
        height: Height,
        txs: &[BlockTx<'_>],
    ) {
        let hf = self.params.hard_fork_at(height);
        // The swarms before this block: a swarm that vanishes through expiries or state
        // changes counts as a change as much as one that the reassignment makes or removes.
        let ids_before = state.swarm_ids();
        state.tip = Some((height, hash));
        state.blacklist.retain(|b| height < b.unlock_height);
        let mut swarm_update = false;
        let expired: Vec<PublicKey> = state
            .nodes
            .iter()
            .filter(|(_, n)| n.requested_unlock_height.0 != 0 && height > n.requested_unlock_height)
            .map(|(pk, _)| *pk)
            .collect();
        for pk in expired {
            if let Some(n) = state.nodes.remove(&pk) {
                swarm_update |= n.is_active();
                for l in n
                    .contributors
                    .iter()
                    .flat_map(|c| c.locked_contributions.iter())
                {
                    state.locked.remove(&l.key_image);
                }
                tracing::info!(node = %pk, %height, "service node expired; its stake is unlocked");
            }
        }
        if let Some(w) = winner(block) {
            if let Some(n) = state.nodes.get_mut(&w) {
                let n = Arc::make_mut(n);
                n.last_reward_block_height = height;
                n.last_reward_transaction_index = u32::MAX;
            }
        }
        for (index, btx) in txs.iter().enumerate() {
            match self.apply_tx(state, btx.tx, index, height, hf) {
                Ok(changed) => swarm_update |= changed,
                Err(e) => {
                    tracing::debug!(tx = %btx.hash, error = %e, "staking part of the transaction ignored")
                }
            }
        }
        if swarm_update {
            let mut input: SwarmMap<PublicKey> = SwarmMap::new();
            for (pk, n) in state.active() {
                input.entry(n.swarm_id).or_default().push(*pk);
            }
            let mut seed = [0u8; 8];
            seed.copy_from_slice(&hash.0[..8]);
            let out = calc_swarm_changes(input, u64::from_le_bytes(seed));
            for (id, members) in out {
                for pk in members {
                    if let Some(n) = state.nodes.get_mut(&pk) {
                        if n.swarm_id != id {
                            let n = Arc::make_mut(n);
                            n.swarm_id = id;
                            n.swarm_since = height;
                        }
                    }
                }
            }
        }
        if state.swarm_ids() != ids_before {
            state.swarm_ids_since = height;
        }
        // Quorums for this height, from the state after the block (§2.2 step 9); keep those
        // that votes and state changes may still name.
        let (active, decomm) = state.quorum_candidates();
        if !active.is_empty() {
            let q = obligations_quorum(&active, &decomm, &hash.0);
            state.quorums.insert(height, Arc::new(q));
        }
        let keep = self.params.sn.vote_lifetime + self.params.sn.vote_verify_buffer;
        let cutoff = Height(height.0.saturating_sub(keep));
        state.quorums = state.quorums.split_off(&cutoff);
    }

    /// Applies the staking part of one transaction (at `index` in its block) to `state`.
    /// Returns whether the active set changed (swarms must be recomputed).
    fn apply_tx(
        &self,
        state: &mut State,
        tx: &Transaction,
        index: usize,
        height: Height,
        hf: u8,
    ) -> Result<bool, StakingError> {
        let fields = parse_extra(&tx.extra).map_err(|e| StakingError::Invalid(e.to_string()))?;
        match tx.tx_type {
            TxType::Stake => {
                let eff = rules::process_stake(
                    self.params,
                    state,
                    tx,
                    &fields,
                    height,
                    hf,
                    u32::try_from(index).unwrap_or(u32::MAX),
                )?;
                let activated = eff.activated;
                rules::commit_stake(state, eff);
                Ok(activated)
            }
            TxType::KeyImageUnlock => {
                let (pk, n) = rules::process_unlock(self.params, state, &fields, height)?;
                state.nodes.insert(pk, Arc::new(n));
                Ok(false)
            }
            TxType::StateChange => match state_change_field(&fields) {
                None => Err(StakingError::Invalid("no state change field".into())),
                Some(sc) => match state.check_state_change(sc, height, &self.params.sn) {
                    Ok((pk, new)) => {
                        Ok(state.apply_state_change(&pk, new, sc, height, self.params))
                    }
                    Err(r) => Err(StakingError::Invalid(r.reason)),
                },
            },
            _ => Ok(false),
        }
    }

    /// Checks a block's transactions in order, each against the state the ones before it
    /// leave (a registration and a contribution to it may share a block; two contributions
    /// that only fit one at a time may not). Returns the index of the first that fails.
    pub fn check_in_order(
        &self,
        txs: &[&Transaction],
        height: Height,
    ) -> Result<(), (usize, Rejection)> {
        if txs.iter().all(|t| t.tx_type == TxType::Standard) {
            // Nothing changes the list: each is checked against the tip's state.
            for (i, t) in txs.iter().enumerate() {
                self.check_tx_in(&self.state, t, height)
                    .map_err(|r| (i, r))?;
            }
            return Ok(());
        }
        let hf = self.params.hard_fork_at(height);
        let mut work = self.state.clone();
        for (i, t) in txs.iter().enumerate() {
            self.check_tx_in(&work, t, height).map_err(|r| (i, r))?;
            let _ = self.apply_tx(&mut work, t, i, height, hf);
        }
        Ok(())
    }

    /// [`ChainExtension::check_tx`] against `state`.
    fn check_tx_in(
        &self,
        state: &State,
        tx: &Transaction,
        height: Height,
    ) -> Result<(), Rejection> {
        if tx.tx_type == TxType::StateChange {
            let fields = parse_extra(&tx.extra).map_err(|e| Rejection::invalid(e.to_string()))?;
            let sc = state_change_field(&fields)
                .ok_or_else(|| Rejection::invalid("state change without its 0x78 field"))?;
            return state
                .check_state_change(sc, height, &self.params.sn)
                .map(|_| ());
        }
        self.check_in(state, tx, height).map_err(|e| {
            if e.is_state_dependent() {
                Rejection::stale(e.to_string())
            } else {
                Rejection::invalid(e.to_string())
            }
        })
    }

    /// Checks a transaction against the list (locked and blacklisted key images, and the
    /// staking rules of stake and unlock transactions).
    pub fn check(&self, tx: &Transaction, height: Height) -> Result<(), StakingError> {
        self.check_in(&self.state, tx, height)
    }

    fn check_in(
        &self,
        state: &State,
        tx: &Transaction,
        height: Height,
    ) -> Result<(), StakingError> {
        for ki in tx.key_images() {
            if let Some(pk) = state.locked.get(&ki) {
                return Err(StakingError::LockedKeyImage(ki, *pk));
            }
            if let Some(b) = state.blacklist.iter().find(|b| b.key_image == ki) {
                return Err(StakingError::Blacklisted(ki, b.unlock_height));
            }
        }
        let fields = parse_extra(&tx.extra).map_err(|e| StakingError::Invalid(e.to_string()))?;
        let hf = self.params.hard_fork_at(height);
        match tx.tx_type {
            TxType::Standard => Ok(()),
            TxType::Stake => {
                rules::process_stake(self.params, state, tx, &fields, height, hf, 0).map(|_| ())
            }
            TxType::KeyImageUnlock => {
                rules::process_unlock(self.params, state, &fields, height).map(|_| ())
            }
            TxType::StateChange => {
                let sc = state_change_field(&fields)
                    .ok_or_else(|| StakingError::Invalid("no state change field".into()))?;
                state
                    .check_state_change(sc, height, &self.params.sn)
                    .map(|_| ())
                    .map_err(|r| StakingError::Invalid(r.reason))
            }
            TxType::NameSystem => Err(StakingError::Invalid(
                "name system transactions are not accepted".into(),
            )),
        }
    }

    /// The staking requirement at `height`.
    pub fn requirement(&self, height: Height) -> Atomic {
        staking_requirement(self.params, height)
    }
}

#[cfg(test)]
mod tests;
