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
/// The pre-HF16 mainnet curve, `base + base / 2^((h − 105) / 129600)`, is computed in integers
/// (the original used `exp2` on doubles, whose last bits a platform's libm may round
/// differently): see [`decayed`].
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
            Atomic(base * COIN + decayed(base * COIN, height.0.saturating_sub(105), 129_600))
        }
    }
}

/// `⌊amount / 2^(n / d)⌋`, in integers: the whole halvings `n / d` as a shift, the fraction
/// `2^(−r/d) = e^(−r·ln 2/d)` as a series in 64-bit fixed point (its terms alternate and
/// shrink, so the sum is within a few units of 2^−64 of the true value). `amount` below 2^63.
pub fn decayed(amount: u64, n: u64, d: u64) -> u64 {
    const ONE: u128 = 1 << 64;
    /// ln 2 · 2^64, rounded down.
    const LN2: u128 = 0xB172_17F7_D1CF_79AB;
    let (halvings, r) = (n / d.max(1), u128::from(n % d.max(1)));
    if halvings >= 64 {
        return 0;
    }
    // y = (r/d)·ln 2 < ln 2, in fixed point; every term below is < 2^64, a product < 2^128.
    let y = r * LN2 / u128::from(d.max(1));
    let (mut sum, mut term) = (ONE, ONE);
    for k in 1..=40u128 {
        term = term * y / ONE / k;
        if term == 0 {
            break;
        }
        if k % 2 == 1 {
            sum -= term;
        } else {
            sum += term;
        }
    }
    let scaled = (u128::from(amount) * sum) >> 64;
    u64::try_from(scaled >> halvings).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sispop_chain::Network;

    fn params_hf(p: &NetworkParams, h: u64) -> u8 {
        p.hard_fork_at(Height(h))
    }

    /// The original's double arithmetic, for comparison only.
    fn with_doubles(base: u64, n: u64) -> u64 {
        let halvings = n as f64 / 129_600.0;
        (base as f64 * COIN as f64 / halvings.exp2()) as u64
    }

    proptest! {
        /// The integer curve is the doubles' to within one atomic unit everywhere the curve
        /// applies (their rounding of the last bit is what differs), and never increases.
        #[test]
        fn integer_curve_matches_doubles(n in 0u64..3_000_000) {
            for base in [1_500u64, 75_000] {
                let exact = decayed(base * COIN, n, 129_600);
                prop_assert!(exact.abs_diff(with_doubles(base, n)) <= 1, "{base} at {n}");
                prop_assert!(decayed(base * COIN, n + 1, 129_600) <= exact);
            }
        }
    }

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
        // Where the formula bends: the exponent starts (105), the base changes (133), the
        // first whole halving (105 + 129,600 is past HF16 on mainnet, so through `decayed`),
        // and the last height before the flat requirement.
        for (h, want) in [
            (104, 3_000_000_000_000),
            (105, 3_000_000_000_000),
            (106, 2_999_991_977_484),
            (132, 2_999_783_407_145),
            (133, 149_988_769_289_406),
            (134, 149_988_368_223_703),
            (86_096, 122_350_504_370_230),
        ] {
            assert_eq!(staking_requirement(main, Height(h)), Atomic(want), "at {h}");
        }
        assert_eq!(params_hf(main, 86_096), 15);
        assert_eq!(decayed(75_000 * COIN, 129_600, 129_600), 37_500 * COIN);
        assert_eq!(decayed(75_000 * COIN, 2 * 129_600, 129_600), 18_750 * COIN);
        assert_eq!(decayed(75_000 * COIN, 64 * 129_600, 129_600), 0);
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
