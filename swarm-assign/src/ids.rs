//! New swarm ids: bisect the largest gap on the id ring (reference §3.4).

use crate::{SwarmId, MAX_ID};

/// The id for a new swarm, given the existing ids in **ascending** order.
///
/// The ring runs from 0 to [`MAX_ID`], which are adjacent. The first largest gap wins; the
/// wrap-around gap only wins when strictly larger.
pub fn new_swarm_id<I>(sorted_ids: I) -> SwarmId
where
    I: IntoIterator<Item = SwarmId>,
{
    let mut iter = sorted_ids.into_iter();
    let Some(first) = iter.next() else {
        return 0;
    };
    let mut best_gap = 0u64;
    let mut best_left = first;
    let mut prev = first;
    for id in iter {
        let gap = id.wrapping_sub(prev);
        if gap > best_gap {
            best_gap = gap;
            best_left = prev;
        }
        prev = id;
    }
    let last = prev;
    let wrap_gap = MAX_ID
        .wrapping_sub(last)
        .wrapping_add(first)
        .wrapping_add(1);
    if wrap_gap > best_gap {
        best_gap = wrap_gap;
        best_left = last;
    }
    let diff = best_gap / 2;
    let to_max = MAX_ID.wrapping_sub(best_left);
    if diff > to_max {
        diff - to_max - 1
    } else {
        best_left + diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mt19937_64;

    const HALF: u64 = MAX_ID / 2;

    fn next(ids: &[u64]) -> u64 {
        let mut v = ids.to_vec();
        v.sort_unstable();
        new_swarm_id(v)
    }

    #[test]
    fn sequence_from_empty() {
        let mut ids = Vec::new();
        let want = [
            0,
            9_223_372_036_854_775_807,
            13_835_058_055_282_163_711,
            4_611_686_018_427_387_903,
        ];
        for w in want {
            let id = next(&ids);
            assert_eq!(id, w);
            ids.push(id);
        }
        assert_eq!(want[1], MAX_ID / 2);
        assert_eq!(want[2], MAX_ID / 2 + MAX_ID / 4 + 1);
        assert_eq!(want[3], MAX_ID / 4);
    }

    #[test]
    fn single_swarm_cases() {
        assert_eq!(next(&[HALF]), MAX_ID);
        assert_eq!(next(&[MAX_ID / 4]), 13_835_058_055_282_163_710);
        assert_eq!(
            next(&[12_345_678_901_234_567_890]),
            3_122_306_864_379_792_082
        );
    }

    #[test]
    fn wrap_ties() {
        assert_eq!(next(&[HALF - 100, HALF + 100]), MAX_ID);
        assert_eq!(next(&[HALF - 100, HALF + 101]), 0);
        assert_eq!(next(&[HALF - 101, HALF + 101]), MAX_ID);
        assert_eq!(next(&[HALF - 101, HALF + 102]), 0);
    }

    #[test]
    fn stress_10000_steps() {
        let mut rng = Mt19937_64::new(12345);
        let mut ids: Vec<u64> = Vec::new();
        for _ in 0..10_000 {
            let n = rng.next_u64();
            if n < (1u64 << 62) && !ids.is_empty() {
                let pos = (n % ids.len() as u64) as usize;
                ids.remove(pos);
            } else if n >= (1u64 << 62) {
                let id = new_swarm_id(ids.iter().copied());
                let at = ids.partition_point(|&x| x < id);
                ids.insert(at, id);
            }
        }
        assert_eq!(ids.len(), 5048);
        let want: [(usize, u64); 20] = [
            (0, 1_548_112_371_908_607),
            (1, 4_398_046_511_103_999),
            (2, 7_247_980_650_299_391),
            (3, 10_097_914_789_494_783),
            (4, 12_947_848_928_690_175),
            (25, 72_796_465_851_793_407),
            (29, 84_196_202_408_574_975),
            (42, 121_245_346_218_115_071),
            (99, 283_691_592_152_252_415),
            (404, 1_203_745_330_089_164_798),
            (888, 2_829_738_309_616_402_430),
            (999, 3_243_154_681_660_178_430),
            (2000, 6_581_905_302_285_713_406),
            (3000, 10_403_878_089_179_267_070),
            (3333, 11_669_248_846_982_021_118),
            (4567, 16_860_997_617_805_426_686),
            (5000, 18_311_495_347_400_081_406),
            (5045, 18_439_742_383_663_874_046),
            (5046, 18_442_592_317_803_069_438),
            (5047, 18_445_442_251_942_264_830),
        ];
        for (i, v) in want {
            assert_eq!(ids[i], v, "ids[{i}]");
        }
    }
}
