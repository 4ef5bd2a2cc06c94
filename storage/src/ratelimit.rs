//! Per-client token buckets (reference `storage-and-onion.md` §7.1): each client IP may make
//! 300 requests a second with bursts of 600; at most 10,000 clients are tracked, and when the
//! table is full the clients whose buckets have refilled are forgotten first. Time comes in as
//! microseconds, so the limiter is deterministic under test.

use std::collections::HashMap;
use std::net::IpAddr;

/// Bucket size.
pub const BURST: u64 = 600;
/// Refill rate per second.
pub const RATE: u64 = 300;
/// Most clients tracked.
pub const MAX_CLIENTS: usize = 10_000;

const MICROS_PER_TOKEN: u64 = 1_000_000 / RATE;

/// The limiter.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Client → (tokens, time of the last refill in µs).
    buckets: HashMap<IpAddr, (u64, u64)>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    fn refill(entry: &mut (u64, u64), now_us: u64) {
        let earned = now_us.saturating_sub(entry.1) / MICROS_PER_TOKEN;
        if earned > 0 {
            entry.0 = entry.0.saturating_add(earned).min(BURST);
            entry.1 = entry
                .1
                .saturating_add(earned.saturating_mul(MICROS_PER_TOKEN));
        }
        if entry.0 == BURST {
            entry.1 = now_us;
        }
    }

    /// Forgets clients whose buckets are full again.
    pub fn purge(&mut self, now_us: u64) {
        self.buckets.retain(|_, e| {
            Self::refill(e, now_us);
            e.0 < BURST
        });
    }

    /// Whether `client` may make a request now (taking a token if so).
    pub fn allow(&mut self, client: IpAddr, now_us: u64) -> bool {
        if !self.buckets.contains_key(&client) && self.buckets.len() >= MAX_CLIENTS {
            self.purge(now_us);
            if self.buckets.len() >= MAX_CLIENTS {
                return false;
            }
        }
        let e = self.buckets.entry(client).or_insert((BURST, now_us));
        Self::refill(e, now_us);
        if e.0 == 0 {
            return false;
        }
        e.0 -= 1;
        true
    }

    /// Clients tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether none are tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i))
    }

    #[test]
    fn burst_then_rate() {
        let mut l = RateLimiter::new();
        let a = ip(1);
        for _ in 0..BURST {
            assert!(l.allow(a, 0));
        }
        assert!(!l.allow(a, 0), "burst spent");
        assert!(l.allow(ip(2), 0), "other clients are not affected");
        // One second later: 300 more, not 301.
        let mut n = 0;
        while l.allow(a, 1_000_000) {
            n += 1;
        }
        assert_eq!(n, RATE);
        assert!(!l.allow(a, 1_000_000), "spent again");
        assert!(l.allow(a, 1_000_000 + MICROS_PER_TOKEN));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = RateLimiter::new();
        for i in 0..MAX_CLIENTS as u32 {
            assert!(l.allow(ip(i), 0));
        }
        assert!(
            !l.allow(ip(u32::MAX >> 8), 0),
            "full of active clients: refused"
        );
        assert_eq!(l.len(), MAX_CLIENTS);
        // Once their buckets refill they can be forgotten to make room.
        assert!(l.allow(ip(u32::MAX >> 8), 10_000));
        assert_eq!(l.len(), 1);
        l.purge(20_000_000);
        assert!(l.len() <= 1);
    }
}
