#![doc = include_str!("../README.md")]

pub mod build;
pub mod command;
pub mod list;
pub mod proofs;
pub mod rules;
pub mod testkit;

pub use list::{ServiceNodeInfo, ServiceNodeList, State};
pub use rules::StakingError;

use sispop_chain::params::{NetworkParams, StakingRequirementRule};
use sispop_chain::{Atomic, Height, COIN};

/// The amount a service node must have staked to be funded, at `height`.
///
/// The pre-HF16 mainnet curve uses floating point exactly as the original did; it only matters
/// for replaying Sispop's early history, which this chain does not do.
pub fn staking_requirement(params: &NetworkParams, height: Height) -> Atomic {
    match params.staking_requirement {
        StakingRequirementRule::Flat(a) => a,
        StakingRequirementRule::DecayThenFlat {
            flat_from_hard_fork,
            flat,
        } => {
            if params.hard_fork_at(height) >= flat_from_hard_fork {
                return flat;
            }
            let base: u64 = if height.0 >= 133 { 75_000 } else { 1_500 };
            let halvings = (height.0.saturating_sub(105)) as f64 / 129_600.0;
            let decay = (base as f64 * COIN as f64 / halvings.exp2()) as u64;
            Atomic(base * COIN + decay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sispop_chain::Network;

    #[test]
    fn sispop_requirements() {
        let main = NetworkParams::get(Network::Mainnet);
        assert_eq!(
            staking_requirement(main, Height(86_097)),
            Atomic::coins(150_000)
        );
        assert_eq!(
            staking_requirement(main, Height(1_000_000)),
            Atomic::coins(150_000)
        );
        // The curve starts at 150,000 and had fallen to about 147,460 by h ≈ 6,545.
        assert_eq!(
            staking_requirement(main, Height(133)),
            Atomic(149_988_769_289_406)
        );
        assert_eq!(
            staking_requirement(main, Height(6_545)),
            Atomic(147_460_724_846_827)
        );
        // Below height 105 the exponent saturates at zero.
        assert_eq!(staking_requirement(main, Height(100)), Atomic::coins(3_000));
        assert_eq!(
            staking_requirement(NetworkParams::get(Network::Testnet), Height(5)),
            Atomic::coins(500)
        );
        assert_eq!(
            staking_requirement(NetworkParams::get(Network::Devnet), Height(5)),
            Atomic::coins(100)
        );
    }
}
