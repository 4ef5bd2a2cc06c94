#![doc = include_str!("../README.md")]

mod assign;
mod ids;
mod rng;
mod space;

pub use assign::{calc_swarm_changes, SwarmMap};
pub use ids::new_swarm_id;
pub use rng::{shuffle_portable, uniform_portable, Mt19937_64};
pub use space::{nearest_swarm, swarm_for_pubkey, swarm_space_position, PubkeyError};

/// Identifier of a swarm: a position on the 64-bit ring.
pub type SwarmId = u64;

/// A swarm with fewer members than this is "starving": refilled or dissolved.
pub const MIN_SWARM_SIZE: usize = 5;
/// Margin above the minimum that a swarm aims for.
pub const IDEAL_SWARM_MARGIN: usize = 2;
/// The size swarms aim for.
pub const IDEAL_SWARM_SIZE: usize = MIN_SWARM_SIZE + IDEAL_SWARM_MARGIN;
/// Members above this count are "excess", available to other swarms.
pub const EXCESS_BASE: usize = MIN_SWARM_SIZE;
/// Size of a swarm freshly created from excess.
pub const NEW_SWARM_SIZE: usize = IDEAL_SWARM_SIZE;
/// Upper bound operators are told about; the algorithm itself never consults it.
pub const MAX_SWARM_SIZE: usize = 10;
/// New nodes go to the smallest ~25 % of swarms.
pub const FILL_SWARM_LOWER_PERCENTILE: usize = 25;
/// Nodes of a dissolved swarm go to the smallest swarms.
pub const DECOMMISSIONED_REDISTRIBUTION_LOWER_PERCENTILE: usize = 0;
/// Donors for starving swarms are swarms above the 75th percentile size.
pub const STEALING_SWARM_UPPER_PERCENTILE: usize = 75;
/// The swarm id carried by nodes not yet placed in a swarm.
pub const UNASSIGNED_SWARM_ID: SwarmId = u64::MAX;
/// The largest assignable swarm id.
pub const MAX_ID: SwarmId = u64::MAX - 1;
