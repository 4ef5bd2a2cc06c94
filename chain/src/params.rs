//! Network parameters: every number that differs between mainnet, testnet and devnet lives in
//! one [`NetworkParams`] value. Code asks the params; it never branches on the network.

use crate::types::{Atomic, Height, COIN};

/// Which network a node runs on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Network {
    /// The production network.
    Mainnet,
    /// The public test network.
    Testnet,
    /// A local development network with small, fast parameters.
    Devnet,
}

/// The proof-of-work hash function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PowAlgorithm {
    /// RandomX (light mode for verification), keyed by a seed block as in Monero.
    RandomX,
    /// Keccak-256 of the hashing blob: cheap, for local development networks.
    Keccak,
}

/// How the next block's difficulty is chosen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DifficultyMode {
    /// LWMA over the last `window` solve times.
    Lwma {
        /// Number of solve times averaged.
        window: usize,
    },
    /// Every block has this difficulty (devnet).
    Fixed(u128),
}

/// Block reward split for a hard fork range (reference `sispop-operator-docs.md` §2.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RewardSplit {
    /// Paid to the miner (plus fees).
    pub miner: Atomic,
    /// Paid to the service node at the head of the reward queue.
    pub service_nodes: Atomic,
    /// Accrues to the foundation (governance) address, paid in batches.
    pub foundation: Atomic,
}

impl RewardSplit {
    /// The whole block reward.
    pub fn total(&self) -> Atomic {
        Atomic(self.miner.0 + self.service_nodes.0 + self.foundation.0)
    }
}

/// How a network's staking requirement depends on height.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StakingRequirementRule {
    /// The same at every height.
    Flat(Atomic),
    /// Sispop mainnet: a halving curve `base + base / 2^((h − 105) / 129600)` (base 75,000 from
    /// height 133, 1,500 before), then flat from a hard fork on.
    DecayThenFlat {
        /// First hard fork with the flat requirement.
        flat_from_hard_fork: u8,
        /// The flat requirement.
        flat: Atomic,
    },
}

/// Service node accountability numbers: uptime proofs, tests, votes and decommission credits
/// (reference `service-nodes.md` §2.4, §4.12, §5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ServiceNodeTimings {
    /// Seconds between a node's uptime proofs.
    pub uptime_proof_frequency: u64,
    /// A node whose last proof is older than this many seconds fails its uptime check.
    pub uptime_proof_validity: u64,
    /// Seconds between the checks that decide whether to send a proof or vote.
    pub uptime_proof_check_interval: u64,
    /// Seconds after start before the first proof.
    pub uptime_proof_startup_delay: u64,
    /// How far (seconds) a proof's timestamp may be from the receiver's clock.
    pub uptime_proof_tolerance: u64,
    /// A failed reachability test counts only while it is at most this many seconds old.
    pub reachable_max_failure_validity: u64,
    /// Votes and state changes are valid for this many blocks after their quorum height.
    pub vote_lifetime: u64,
    /// Votes this many blocks outside the window are ignored without penalising the sender.
    pub vote_verify_buffer: u64,
    /// Validators do not vote on quorums within this many blocks of the tip.
    pub reorg_safety_buffer: u64,
    /// Deregistration votes are withheld for this many blocks after the latest hard fork.
    pub dereg_grace_blocks: u64,
    /// Decommission credit of a new node, in blocks.
    pub credit_initial: i64,
    /// Most credit a node can hold.
    pub credit_max: i64,
    /// Credit needed to be decommissioned rather than deregistered.
    pub credit_minimum: i64,
    /// Credit earned per `credit_period` blocks of uptime.
    pub credit_per_period: i64,
    /// See `credit_per_period` (mainnet: 24 blocks per 720, a day).
    pub credit_period: i64,
    /// Accept proofs that advertise private or loopback addresses.
    pub allow_private_ips: bool,
    /// Whether `--dev-fault` switches may be used.
    pub allow_dev_faults: bool,
}

/// All consensus and default networking numbers of one network.
#[derive(Debug, Clone)]
pub struct NetworkParams {
    /// Which network.
    pub network: Network,
    /// Human name (`mainnet`, `testnet`, `devnet`).
    pub name: &'static str,
    /// 16-byte network id, mixed into the genesis block so networks never share a chain.
    pub network_id: [u8; 16],
    /// Base58 prefix of standard addresses.
    pub address_prefix: u64,
    /// Default P2P port.
    pub p2p_port: u16,
    /// Default JSON-RPC port.
    pub rpc_port: u16,
    /// Default storage server port.
    pub storage_port: u16,
    /// Salt of the AES-GCM key derivation of onion request layers (`HMAC-SHA256(salt, S)`):
    /// `SISPOP` on Sispop's networks, as the Sispop lineage uses (Oxen's is `LOKI`).
    pub onion_gcm_salt: &'static [u8],
    /// Target seconds between blocks.
    pub target_block_time: u64,
    /// Difficulty algorithm.
    pub difficulty: DifficultyMode,
    /// Proof-of-work hash.
    pub pow: PowAlgorithm,
    /// Hard forks as (major version, first height), ascending.
    pub hard_forks: &'static [(u8, u64)],
    /// Genesis block timestamp.
    pub genesis_timestamp: u64,
    /// Genesis block nonce.
    pub genesis_nonce: u32,
    /// Blocks before a coinbase output can be spent.
    pub coinbase_unlock_window: u64,
    /// Blocks before an ordinary output can be spent.
    pub spendable_age: u64,
    /// Ring members per input.
    pub ring_size: usize,
    /// Largest accepted block blob in bytes.
    pub max_block_size: usize,
    /// Largest accepted transaction blob in bytes.
    pub max_tx_size: usize,
    /// Largest number of transactions in a block.
    pub max_block_txs: usize,
    /// Side-chain blocks more than this far below the tip are refused and pruned: a reorg that
    /// deep is never taken.
    pub max_side_depth: u64,
    /// At most this many side-chain blocks are kept; past it new ones are refused until old
    /// ones fall below `max_side_depth`.
    pub max_side_blocks: usize,
    /// How far in the future a block timestamp may be, in seconds.
    pub future_time_limit: u64,
    /// A block's timestamp must exceed the median of this many previous timestamps.
    pub timestamp_check_window: usize,
    /// Minimum fee per byte of transaction blob.
    pub fee_per_byte: u64,
    /// Foundation reward is paid every this many blocks.
    pub governance_interval: u64,
    /// Mempool byte limit.
    pub mempool_max_bytes: usize,
    /// Seconds a transaction may wait in the pool before it is dropped.
    pub mempool_max_age: u64,
    /// Staking requirement rule.
    pub staking_requirement: StakingRequirementRule,
    /// Blocks from an unlock request until the node expires and its stake is free.
    pub stake_unlock_blocks: u64,
    /// Blocks a deregistered node's stake stays blacklisted.
    pub dereg_blacklist_blocks: u64,
    /// Uptime proofs, tests, votes and credits.
    pub sn: ServiceNodeTimings,
}

/// Mainnet accountability numbers (reference `service-nodes.md` §4.12).
const MAINNET_SN: ServiceNodeTimings = ServiceNodeTimings {
    uptime_proof_frequency: 3600,
    uptime_proof_validity: 2 * 3600 + 5 * 60,
    uptime_proof_check_interval: 30,
    uptime_proof_startup_delay: 30,
    uptime_proof_tolerance: 5 * 60,
    reachable_max_failure_validity: 5 * 60,
    vote_lifetime: 60,
    vote_verify_buffer: 5,
    reorg_safety_buffer: 11,
    dereg_grace_blocks: 5040,
    credit_initial: 60,
    credit_max: 1440,
    credit_minimum: 60,
    credit_per_period: 24,
    credit_period: 720,
    allow_private_ips: false,
    allow_dev_faults: false,
};

/// Sispop mainnet hard forks (reference `service-nodes.md` §11).
const MAINNET_FORKS: &[(u8, u64)] = &[
    (7, 0),
    (8, 100),
    (9, 102),
    (10, 110),
    (11, 118),
    (12, 120),
    (13, 125),
    (14, 128),
    (15, 130),
    (16, 86_097),
    (17, 99_714),
    (18, 99_845),
];

const TESTNET_FORKS: &[(u8, u64)] = &[
    (7, 0),
    (8, 100),
    (9, 102),
    (10, 110),
    (11, 118),
    (12, 120),
    (13, 125),
    (14, 128),
    (15, 130),
    (16, 140),
    (17, 150),
    (18, 160),
    (19, 170),
];

/// Devnet runs the newest rules from the first block.
const DEVNET_FORKS: &[(u8, u64)] = &[(19, 0)];

static MAINNET: NetworkParams = NetworkParams {
    network: Network::Mainnet,
    name: "mainnet",
    network_id: [
        0x01, 0x30, 0x60, 0x70, 0x15, 0x30, 0x45, 0x60, 0x75, 0x80, 0x34, 0x67, 0x25, 0x39, 0x80,
        0x00,
    ],
    address_prefix: 18,
    p2p_port: 20000,
    rpc_port: 30000,
    storage_port: 22020,
    onion_gcm_salt: b"SISPOP",
    target_block_time: 120,
    difficulty: DifficultyMode::Lwma { window: 59 },
    pow: PowAlgorithm::RandomX,
    hard_forks: MAINNET_FORKS,
    genesis_timestamp: 1_577_836_800,
    genesis_nonce: 70,
    coinbase_unlock_window: 60,
    spendable_age: 10,
    ring_size: 10,
    max_block_size: 2 * 1024 * 1024,
    max_tx_size: 1_000_000,
    max_block_txs: 10_000,
    max_side_depth: 720,
    max_side_blocks: 2_000,
    future_time_limit: 60 * 60 * 2,
    timestamp_check_window: 60,
    fee_per_byte: 215,
    governance_interval: 5040,
    mempool_max_bytes: 648_000_000,
    mempool_max_age: 86_400,
    staking_requirement: StakingRequirementRule::DecayThenFlat {
        flat_from_hard_fork: 16,
        flat: Atomic::coins(150_000),
    },
    stake_unlock_blocks: 10_800,
    dereg_blacklist_blocks: 21_600,
    sn: MAINNET_SN,
};

static TESTNET: NetworkParams = NetworkParams {
    network: Network::Testnet,
    name: "testnet",
    network_id: [
        0x22, 0x3a, 0x78, 0x65, 0x88, 0x6f, 0xca, 0xb8, 0x01, 0xa1, 0xdc, 0x07, 0x71, 0x55, 0x15,
        0x22,
    ],
    address_prefix: 156,
    p2p_port: 38156,
    rpc_port: 38157,
    storage_port: 38158,
    onion_gcm_salt: b"SISPOP",
    target_block_time: 120,
    difficulty: DifficultyMode::Lwma { window: 59 },
    pow: PowAlgorithm::RandomX,
    hard_forks: TESTNET_FORKS,
    genesis_timestamp: 1_577_836_800,
    genesis_nonce: 10001,
    coinbase_unlock_window: 60,
    spendable_age: 10,
    ring_size: 10,
    max_block_size: 2 * 1024 * 1024,
    max_tx_size: 1_000_000,
    max_block_txs: 10_000,
    max_side_depth: 720,
    max_side_blocks: 2_000,
    future_time_limit: 60 * 60 * 2,
    timestamp_check_window: 60,
    fee_per_byte: 215,
    governance_interval: 1000,
    mempool_max_bytes: 648_000_000,
    mempool_max_age: 86_400,
    staking_requirement: StakingRequirementRule::Flat(Atomic::coins(500)),
    stake_unlock_blocks: 720,
    dereg_blacklist_blocks: 1_440,
    sn: ServiceNodeTimings {
        uptime_proof_frequency: 600,
        uptime_proof_validity: 21 * 60,
        ..MAINNET_SN
    },
};

static DEVNET: NetworkParams = NetworkParams {
    network: Network::Devnet,
    name: "devnet",
    network_id: [
        0xa9, 0xf7, 0x5c, 0x7d, 0x55, 0x17, 0xcb, 0x6b, 0x5b, 0xf4, 0x63, 0x79, 0x7a, 0x57, 0xab,
        0xd4,
    ],
    address_prefix: 3930,
    p2p_port: 38856,
    rpc_port: 38857,
    storage_port: 38858,
    onion_gcm_salt: b"SISPOP",
    target_block_time: 2,
    difficulty: DifficultyMode::Fixed(1),
    pow: PowAlgorithm::Keccak,
    hard_forks: DEVNET_FORKS,
    genesis_timestamp: 1_700_000_000,
    genesis_nonce: 10002,
    coinbase_unlock_window: 10,
    spendable_age: 2,
    ring_size: 10,
    max_block_size: 2 * 1024 * 1024,
    max_tx_size: 1_000_000,
    max_block_txs: 10_000,
    max_side_depth: 720,
    max_side_blocks: 2_000,
    future_time_limit: 120,
    timestamp_check_window: 11,
    fee_per_byte: 1,
    governance_interval: 10,
    mempool_max_bytes: 64_000_000,
    mempool_max_age: 3_600,
    staking_requirement: StakingRequirementRule::Flat(Atomic::coins(100)),
    stake_unlock_blocks: 20,
    dereg_blacklist_blocks: 40,
    // A proof every 10 s, down after 30 s; 2 s blocks. A dead node is decommissioned within
    // about a minute and, as its credit is capped at 90 blocks (180 s), deregistered within
    // about 4 minutes of its death however long it was up (issue 8: within 5 minutes).
    sn: ServiceNodeTimings {
        uptime_proof_frequency: 10,
        uptime_proof_validity: 30,
        uptime_proof_check_interval: 2,
        uptime_proof_startup_delay: 2,
        uptime_proof_tolerance: 60,
        reachable_max_failure_validity: 60,
        vote_lifetime: 60,
        vote_verify_buffer: 5,
        reorg_safety_buffer: 4,
        dereg_grace_blocks: 0,
        credit_initial: 60,
        credit_max: 90,
        credit_minimum: 30,
        credit_per_period: 24,
        credit_period: 720,
        allow_private_ips: true,
        allow_dev_faults: true,
    },
};

impl NetworkParams {
    /// The parameters of a network.
    pub fn get(network: Network) -> &'static NetworkParams {
        match network {
            Network::Mainnet => &MAINNET,
            Network::Testnet => &TESTNET,
            Network::Devnet => &DEVNET,
        }
    }

    /// The major version (hard fork) in force at `height`.
    pub fn hard_fork_at(&self, height: Height) -> u8 {
        self.hard_forks
            .iter()
            .take_while(|(_, h)| *h <= height.0)
            .last()
            .map_or(self.hard_forks[0].0, |(v, _)| *v)
    }

    /// Block reward split at a hard fork (Sispop `sispop_economy.h`).
    pub fn reward_split(&self, hard_fork: u8) -> RewardSplit {
        if hard_fork >= 17 {
            RewardSplit {
                miner: Atomic(16 * COIN),
                service_nodes: Atomic(20 * COIN),
                foundation: Atomic(4 * COIN),
            }
        } else if hard_fork == 16 {
            RewardSplit {
                miner: Atomic(375 * COIN),
                service_nodes: Atomic(750 * COIN),
                foundation: Atomic(125 * COIN),
            }
        } else {
            RewardSplit {
                miner: Atomic(600 * COIN),
                service_nodes: Atomic(1650 * COIN),
                foundation: Atomic(250 * COIN),
            }
        }
    }

    /// Minimum fee for a transaction blob of `size` bytes.
    pub fn min_fee(&self, size: usize) -> Atomic {
        Atomic(self.fee_per_byte.saturating_mul(size as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_fork_lookup() {
        let m = NetworkParams::get(Network::Mainnet);
        assert_eq!(m.hard_fork_at(Height(0)), 7);
        assert_eq!(m.hard_fork_at(Height(99)), 7);
        assert_eq!(m.hard_fork_at(Height(100)), 8);
        assert_eq!(m.hard_fork_at(Height(86_097)), 16);
        assert_eq!(m.hard_fork_at(Height(99_714)), 17);
        assert_eq!(m.hard_fork_at(Height(10_000_000)), 18);
        assert_eq!(
            NetworkParams::get(Network::Devnet).hard_fork_at(Height(5)),
            19
        );
    }

    #[test]
    fn sispop_reward_split() {
        let m = NetworkParams::get(Network::Mainnet);
        assert_eq!(m.reward_split(17).total(), Atomic(40 * COIN));
        assert_eq!(m.reward_split(16).total(), Atomic(1250 * COIN));
        assert_eq!(m.reward_split(15).total(), Atomic(2500 * COIN));
    }

    #[test]
    fn forks_are_ascending() {
        for n in [Network::Mainnet, Network::Testnet, Network::Devnet] {
            let f = NetworkParams::get(n).hard_forks;
            assert!(f.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
            assert_eq!(f[0].1, 0);
        }
    }
}
