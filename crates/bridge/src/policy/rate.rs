//! Token buckets on what a port sends: one in bytes, one in frames, each with its sustained
//! rate per second and its size (the burst). A bucket starts full; it refills by
//! `elapsed_ns × rate / 10⁹` tokens, never beyond its size; a frame passes only if both
//! buckets hold its cost (its length, and 1), and then takes it from both.
//!
//! Arithmetic is exact: tokens are kept in units of 10⁻⁹ of a byte (or frame), so a refill is
//! `elapsed_ns × rate` with no division and no rounding, in `u128`, which cannot overflow for
//! any `u64` rate and size. Over any interval the tokens granted are exactly
//! `elapsed × rate` (less what a full bucket could not hold): no drift however often it is
//! asked. Time comes in as `now_ns`; a time earlier than the last one is taken as the last
//! one (no refill, no harm).

use super::config::RateLimit;

const NS_PER_S: u128 = 1_000_000_000;

/// One token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens per second.
    rate: u64,
    /// Size, in nano-tokens.
    capacity: u128,
    /// Held, in nano-tokens; never above `capacity`.
    tokens: u128,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        let capacity = u128::from(burst) * NS_PER_S;
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last_ns: 0,
        }
    }

    fn refill(&mut self, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        if self.tokens < self.capacity {
            let added = u128::from(elapsed) * u128::from(self.rate);
            self.tokens = self.capacity.min(self.tokens + added);
        }
    }

    fn holds(&self, cost: u64) -> bool {
        self.tokens >= u128::from(cost) * NS_PER_S
    }

    fn take(&mut self, cost: u64) {
        self.tokens = self.tokens.saturating_sub(u128::from(cost) * NS_PER_S);
    }

    /// Refills to `now_ns`, then takes `cost` tokens if the bucket holds them.
    pub fn admit(&mut self, cost: u64, now_ns: u64) -> bool {
        self.refill(now_ns);
        let fits = self.holds(cost);
        if fits {
            self.take(cost);
        }
        fits
    }

    /// Whole tokens held at the last refill.
    pub fn tokens(&self) -> u64 {
        u64::try_from(self.tokens / NS_PER_S).unwrap_or(u64::MAX)
    }

    /// Back to full (the port's frontend reconnected).
    pub fn fill(&mut self) {
        self.tokens = self.capacity;
    }
}

/// The byte and frame buckets of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiter {
    bytes: Option<TokenBucket>,
    frames: Option<TokenBucket>,
}

impl RateLimiter {
    pub fn new(limit: &RateLimit) -> RateLimiter {
        RateLimiter {
            bytes: limit
                .bytes_per_s
                .map(|rate| TokenBucket::new(rate, limit.burst_bytes)),
            frames: limit
                .packets_per_s
                .map(|rate| TokenBucket::new(rate, limit.burst_packets)),
        }
    }

    /// Whether a frame of `len` bytes may pass at `now_ns`; if so its cost is taken.
    pub fn admit(&mut self, len: usize, now_ns: u64) -> bool {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let mut fits = true;
        if let Some(bucket) = &mut self.bytes {
            bucket.refill(now_ns);
            fits &= bucket.holds(len);
        }
        if let Some(bucket) = &mut self.frames {
            bucket.refill(now_ns);
            fits &= bucket.holds(1);
        }
        if fits {
            if let Some(bucket) = &mut self.bytes {
                bucket.take(len);
            }
            if let Some(bucket) = &mut self.frames {
                bucket.take(1);
            }
        }
        fits
    }

    /// Both buckets back to full.
    pub fn fill(&mut self) {
        for bucket in [&mut self.bytes, &mut self.frames].into_iter().flatten() {
            bucket.fill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Offers `len`-byte frames every `interval_ns` for `duration_ns`; returns the bytes and
    /// frames that passed.
    fn offer(
        limiter: &mut RateLimiter,
        len: usize,
        interval_ns: u64,
        duration_ns: u64,
    ) -> (u64, u64) {
        let passed = (0..duration_ns / interval_ns)
            .map(|i| limiter.admit(len, i * interval_ns))
            .filter(|&passed| passed)
            .count() as u64;
        (passed * len as u64, passed)
    }

    fn bytes_only(rate: u64, burst: u64) -> RateLimiter {
        RateLimiter::new(&RateLimit {
            bytes_per_s: Some(rate),
            burst_bytes: burst,
            packets_per_s: None,
            burst_packets: 1,
        })
    }

    #[test]
    fn over_five_seconds_bytes_passed_are_within_one_percent_of_rate_times_time_plus_burst() {
        let mut limiter = bytes_only(1_000_000, 64_000);

        let (bytes, _) = offer(&mut limiter, 1500, 100_000, 5_000 * MS);

        let expected = 1_000_000.0 * 5.0 + 64_000.0;
        let error = (bytes as f64 - expected).abs() / expected;
        assert!(
            error < 0.01,
            "passed {bytes} bytes, expected {expected}: {error:.4}"
        );
    }

    #[test]
    fn over_five_seconds_frames_passed_are_within_one_percent_of_rate_times_time_plus_burst() {
        let mut limiter = RateLimiter::new(&RateLimit {
            bytes_per_s: None,
            burst_bytes: 0,
            packets_per_s: Some(2_000),
            burst_packets: 100,
        });

        let (_, frames) = offer(&mut limiter, 64, 50_000, 5_000 * MS);

        let expected = 2_000.0 * 5.0 + 100.0;
        let error = (frames as f64 - expected).abs() / expected;
        assert!(
            error < 0.01,
            "passed {frames} frames, expected {expected}: {error:.4}"
        );
    }

    #[test]
    fn full_bucket_lets_the_burst_through_at_once_and_no_more() {
        let mut limiter = bytes_only(1_000, 10_000);

        let passed = (0..20).filter(|_| limiter.admit(1_000, 5 * MS)).count();

        assert_eq!(passed, 10);
    }

    #[test]
    fn refill_is_exact_for_rates_that_do_not_divide_a_second() {
        let mut bucket = TokenBucket::new(3, 3);
        bucket.admit(3, 1);

        let refilled = (1..=1_000_000u64)
            .filter(|i| bucket.admit(1, 1 + i * 1_000))
            .count();

        assert_eq!(refilled, 3);
    }

    #[test]
    fn frame_larger_than_the_byte_bucket_never_passes() {
        let mut limiter = bytes_only(1_000_000, 1_000);

        let passed = limiter.admit(1_001, 10_000 * MS);

        assert!(!passed);
    }

    #[test]
    fn frame_refused_by_one_bucket_takes_nothing_from_the_other() {
        let mut limiter = RateLimiter::new(&RateLimit {
            bytes_per_s: Some(1),
            burst_bytes: 100,
            packets_per_s: Some(1),
            burst_packets: 2,
        });

        let results = [
            limiter.admit(200, 0),
            limiter.admit(50, 0),
            limiter.admit(50, 0),
        ];

        assert_eq!(results, [false, true, true]);
    }

    #[test]
    fn time_going_backwards_neither_refills_nor_panics() {
        let mut bucket = TokenBucket::new(1_000, 1);
        bucket.admit(1, 10_000 * MS);

        let passed = bucket.admit(1, 0);

        assert!(!passed);
    }

    #[test]
    fn refilling_after_an_enormous_gap_stops_at_the_bucket_size() {
        let mut bucket = TokenBucket::new(u64::MAX, 5);
        bucket.admit(5, 0);

        bucket.admit(0, u64::MAX);

        assert_eq!(bucket.tokens(), 5);
    }
}
