//! Decoy selection: Monero's gamma picker. Ring members are chosen with an age distribution that
//! matches how real spends age (log of the age in seconds ~ Gamma(19.28, 1/1.61)), so the
//! real input does not stand out as the newest or the oldest. Ages are turned into output
//! indexes through the chain's recent output rate.

use rand::Rng;
use rand_distr::{Distribution, Gamma};

/// Shape of the log-age distribution.
pub const GAMMA_SHAPE: f64 = 19.28;
/// Scale of the log-age distribution.
pub const GAMMA_SCALE: f64 = 1.0 / 1.61;
/// Blocks of recent history used to estimate the output rate.
pub const RATE_WINDOW_BLOCKS: usize = 720;
/// Draws before giving up on the gamma distribution (a young chain is shorter than most ages).
pub const MAX_GAMMA_DRAWS: usize = 100;

/// Picks decoy output indexes from a chain's cumulative RingCT output counts.
#[derive(Clone, Debug)]
pub struct DecoyPicker {
    /// `cumulative[h]` = outputs created up to and including block `h`, spendable blocks only.
    cumulative: Vec<u64>,
    block_time: f64,
    lock_secs: f64,
    avg_output_time: f64,
}

impl DecoyPicker {
    /// From the cumulative output distribution, the block time and the number of recent blocks
    /// whose outputs are not yet spendable (they are never picked).
    pub fn new(
        mut cumulative: Vec<u64>,
        block_time_secs: u64,
        spendable_age: u64,
    ) -> Option<DecoyPicker> {
        let usable = cumulative.len().saturating_sub(spendable_age as usize);
        cumulative.truncate(usable);
        // The daemon's distribution is cumulative: one that ever decreases is refused, not
        // trusted with the arithmetic below.
        if cumulative.windows(2).any(|w| w[1] < w[0]) {
            return None;
        }
        let total = *cumulative.last()?;
        if total == 0 {
            return None;
        }
        let window = usable.min(RATE_WINDOW_BLOCKS);
        let before = if usable > window {
            cumulative[usable - window - 1]
        } else {
            0
        };
        let recent = (total - before).max(1);
        let block_time = block_time_secs.max(1) as f64;
        Some(DecoyPicker {
            cumulative,
            block_time,
            lock_secs: spendable_age as f64 * block_time,
            avg_output_time: block_time * window as f64 / recent as f64,
        })
    }

    /// Spendable outputs known to the picker.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// One candidate index: gamma-distributed by age, uniform within the chosen block. Falls
    /// back to a uniform pick when the gamma draws keep landing beyond the chain's age.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> u64 {
        let total = self.total();
        let gamma = Gamma::new(GAMMA_SHAPE, GAMMA_SCALE).ok();
        for _ in 0..MAX_GAMMA_DRAWS {
            let Some(g) = &gamma else { break };
            let mut age = g.sample(rng).exp();
            if age > self.lock_secs {
                age -= self.lock_secs;
            } else {
                age = rng.gen_range(0.0..(15.0 * self.block_time));
            }
            let back = (age / self.avg_output_time) as u64;
            if back >= total {
                continue;
            }
            let target = total - 1 - back;
            let block = self.cumulative.partition_point(|&c| c <= target);
            let start = if block == 0 {
                0
            } else {
                self.cumulative[block - 1]
            };
            let end = self.cumulative[block];
            return start + rng.gen_range(0..(end - start).max(1));
        }
        rng.gen_range(0..total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn picks_follow_recent_spends_on_a_long_chain() {
        // 200,000 blocks of 120 s with 2 outputs each.
        let cumulative: Vec<u64> = (1..=200_000u64).map(|h| 2 * h).collect();
        let p = DecoyPicker::new(cumulative, 120, 10).expect("picker");
        let total = p.total();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ages: Vec<u64> = (0..5000).map(|_| total - 1 - p.pick(&mut rng)).collect();
        ages.sort_unstable();
        assert!(ages.iter().all(|a| *a < total));
        // Median spend age a few days: 1.5 days ~ 1,080 blocks ~ 2,160 outputs; allow a wide band.
        let median = ages[ages.len() / 2];
        assert!(
            (200..20_000).contains(&median),
            "median age {median} outputs"
        );
        // Not uniform: far more picks in the newest tenth than in the oldest tenth.
        let newest = ages.iter().filter(|a| **a < total / 10).count();
        assert!(newest > 4000, "{newest}");
    }

    #[test]
    fn young_chains_fall_back_to_uniform_within_range() {
        let cumulative: Vec<u64> = (1..=50u64).collect();
        let p = DecoyPicker::new(cumulative, 2, 2).expect("picker");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            assert!(p.pick(&mut rng) < p.total());
        }
        assert!(DecoyPicker::new(vec![0, 0, 0], 2, 2).is_none());
        // A daemon's distribution that goes down is refused (it would underflow).
        assert!(DecoyPicker::new(vec![5, 9, 3, 10, 10, 10], 2, 2).is_none());
        assert!(
            DecoyPicker::new(vec![5], 2, 2).is_none(),
            "nothing spendable yet"
        );
    }
}
