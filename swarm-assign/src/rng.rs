//! The randomness primitives of consensus selection: C++ `std::mt19937_64` and the portable
//! uniform draw and shuffle built on it (reference `service-nodes.md` §3.3).

const NN: usize = 312;
const MM: usize = 156;
const MATRIX_A: u64 = 0xB502_6F5A_A966_19E9;
const UPPER_MASK: u64 = 0xFFFF_FFFF_8000_0000;
const LOWER_MASK: u64 = 0x7FFF_FFFF;

/// The 64-bit Mersenne Twister with the standard MT19937-64 parameters, bit-identical to
/// C++ `std::mt19937_64` seeded with a single integer.
#[derive(Clone)]
pub struct Mt19937_64 {
    state: [u64; NN],
    index: usize,
}

impl std::fmt::Debug for Mt19937_64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937_64")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Mt19937_64 {
    /// The C++ default seed.
    pub const DEFAULT_SEED: u64 = 5489;

    /// Seeds the generator the way `std::mt19937_64(seed)` does.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u64; NN];
        state[0] = seed;
        for i in 1..NN {
            let prev = state[i - 1];
            state[i] = 6_364_136_223_846_793_005u64
                .wrapping_mul(prev ^ (prev >> 62))
                .wrapping_add(i as u64);
        }
        Self { state, index: NN }
    }

    /// Seeds the generator the way `std::mt19937_64(std::seed_seq{words...})` does: the
    /// C++11 `seed_seq::generate` mixing into 624 32-bit words, paired into 312 state words,
    /// with the standard all-zero fix-up.
    pub fn from_seed_seq(words: &[u32]) -> Self {
        let a = seed_seq_generate(words, 2 * NN);
        let mut state = [0u64; NN];
        for (i, s) in state.iter_mut().enumerate() {
            *s = u64::from(a[2 * i]) | (u64::from(a[2 * i + 1]) << 32);
        }
        if state[0] & UPPER_MASK == 0 && state[1..].iter().all(|&w| w == 0) {
            state[0] = 1 << 63;
        }
        Self { state, index: NN }
    }

    fn twist(&mut self) {
        for i in 0..NN {
            let x = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % NN] & LOWER_MASK);
            let mut x_a = x >> 1;
            if x & 1 != 0 {
                x_a ^= MATRIX_A;
            }
            self.state[i] = self.state[(i + MM) % NN] ^ x_a;
        }
        self.index = 0;
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        if self.index >= NN {
            self.twist();
        }
        let mut x = self.state[self.index];
        self.index += 1;
        x ^= (x >> 29) & 0x5555_5555_5555_5555;
        x ^= (x << 17) & 0x71D6_7FFF_EDA6_0000;
        x ^= (x << 37) & 0xFFF7_EEE0_0000_0000;
        x ^= x >> 43;
        x
    }
}

/// C++11 `std::seed_seq::generate` into `n` 32-bit words ([rand.util.seedseq]).
fn seed_seq_generate(v: &[u32], n: usize) -> Vec<u32> {
    let mut b = vec![0x8b8b_8b8bu32; n];
    if n == 0 {
        return b;
    }
    let s = v.len();
    let t = if n >= 623 {
        11
    } else if n >= 68 {
        7
    } else if n >= 39 {
        5
    } else if n >= 7 {
        3
    } else {
        (n - 1) / 2
    };
    let p = (n - t) / 2;
    let q = p + t;
    let m = (s + 1).max(n);
    let tf = |x: u32| x ^ (x >> 27);
    for k in 0..m {
        let r1 = 1_664_525u32.wrapping_mul(tf(b[k % n] ^ b[(k + p) % n] ^ b[(k + n - 1) % n]));
        let add = if k == 0 {
            s as u32
        } else if k <= s {
            ((k % n) as u32).wrapping_add(v[k - 1])
        } else {
            (k % n) as u32
        };
        let r2 = r1.wrapping_add(add);
        b[(k + p) % n] = b[(k + p) % n].wrapping_add(r1);
        b[(k + q) % n] = b[(k + q) % n].wrapping_add(r2);
        b[k % n] = r2;
    }
    for k in m..m + n {
        let r3 = 1_566_083_941u32.wrapping_mul(tf(b[k % n]
            .wrapping_add(b[(k + p) % n])
            .wrapping_add(b[(k + n - 1) % n])));
        let r4 = r3.wrapping_sub((k % n) as u32);
        b[(k + p) % n] ^= r3;
        b[(k + q) % n] ^= r4;
        b[k % n] = r4;
    }
    b
}

/// A uniform draw in `0..n` that gives the same answer on every platform: rejection sampling
/// below the largest multiple of `n`, then **division** (not modulo) by the bucket width.
///
/// `n == 0` returns 0 without drawing, as the original does.
pub fn uniform_portable(rng: &mut Mt19937_64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let secure_max = u64::MAX - u64::MAX % n;
    loop {
        let x = rng.next_u64();
        if x < secure_max {
            return x / (secure_max / n);
        }
    }
}

/// The portable forward Fisher–Yates shuffle: for `i` in `1..len`, swap `i` with
/// `uniform_portable(i + 1)`.
pub fn shuffle_portable<T>(items: &mut [T], rng: &mut Mt19937_64) {
    for i in 1..items.len() {
        let j = uniform_portable(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousandth_output_of_default_seed() {
        let mut rng = Mt19937_64::new(Mt19937_64::DEFAULT_SEED);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u64();
        }
        assert_eq!(last, 9_981_545_732_273_789_042);
    }

    #[test]
    fn seed_zero_first_outputs() {
        let mut rng = Mt19937_64::new(0);
        assert_eq!(rng.next_u64(), 2_947_667_278_772_165_694);
        assert_eq!(rng.next_u64(), 18_301_848_765_998_365_067);
    }

    #[test]
    fn uniform_vector() {
        let mut rng = Mt19937_64::new(42);
        assert_eq!(uniform_portable(&mut rng, 10), 7);
        assert_eq!(uniform_portable(&mut rng, 7), 4);
        assert_eq!(uniform_portable(&mut rng, 1000), 752);
    }

    #[test]
    fn shuffle_vectors_with_legacy_quorum_seed() {
        // Pre-HF16 quorum seed from hash 00..1f: LE u64 of the first 8 bytes, plus the type.
        let base = 0x0706_0504_0302_0100u64;
        assert_eq!(base, 506_097_522_914_230_528);
        let expect: [[u32; 10]; 3] = [
            [1, 5, 0, 8, 2, 4, 3, 9, 7, 6],
            [4, 3, 7, 5, 9, 6, 2, 0, 1, 8],
            [6, 7, 8, 0, 5, 1, 4, 2, 9, 3],
        ];
        for (ty, want) in expect.iter().enumerate() {
            let mut rng = Mt19937_64::new(base + ty as u64);
            let mut v: Vec<u32> = (0..10).collect();
            shuffle_portable(&mut v, &mut rng);
            assert_eq!(&v[..], &want[..], "type {ty}");
        }
    }

    #[test]
    fn shuffle_of_short_ranges_draws_nothing() {
        let mut a = Mt19937_64::new(1);
        let mut b = Mt19937_64::new(1);
        let mut one = [9u8];
        shuffle_portable(&mut one, &mut a);
        let mut none: [u8; 0] = [];
        shuffle_portable(&mut none, &mut a);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
