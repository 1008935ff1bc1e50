//! The per-agency rate limit: one token bucket per authenticated agency.
//!
//! Pure: [`RateLimiter::check`] takes the current monotonic time as an argument and never
//! reads a clock, so it is tested without sleeping. Each agency's bucket holds up to `burst`
//! tokens and refills at `per_second` tokens a second; a request takes one token, or is
//! refused with the time until one is available (sent as `Retry-After`). A bucket that would
//! be full is indistinguishable from a missing one, so buckets are created on first use and
//! the map never holds more entries than there are agencies that made requests (the keys are
//! authenticated agency identifiers, never client input).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Token buckets, one per key (agency identifier).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Tokens added per second; `0` disables the limit.
    per_second: f64,
    /// Most tokens a bucket holds: how many requests may arrive at once after a quiet spell.
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter of `per_second` requests a second with bursts of `burst` (at least 1).
    /// `per_second` of 0 (or not a positive finite number) disables it.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            0.0
        };
        RateLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether the limit is in force.
    pub fn is_enabled(&self) -> bool {
        self.per_second > 0.0
    }

    /// Takes a token from `key`'s bucket at `now`, or says how long until one is available.
    /// A `now` earlier than the bucket's last update (not monotonic) adds nothing.
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.is_enabled() {
            return Ok(());
        }
        let (rate, burst) = (self.per_second, self.burst);
        let bucket = match self.buckets.get_mut(key) {
            Some(b) => b,
            None => self.buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // a base instant; every later time is derived from it
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_then_requests_are_refused_until_a_token_refills() {
        let mut l = RateLimiter::new(2.0, 3);
        let t = t0();
        for _ in 0..3 {
            assert!(l.check("a", t).is_ok());
        }
        let wait = l.check("a", t).unwrap_err();
        assert_eq!(wait, ms(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Half a token after 250 ms: still refused, 250 ms to go.
        let wait = l.check("a", t + ms(250)).unwrap_err();
        assert!(wait.abs_diff(ms(250)) < ms(1), "{wait:?}");
        assert!(l.check("a", t + ms(500)).is_ok());
        assert!(l.check("a", t + ms(500)).is_err());
    }

    #[test]
    fn buckets_are_per_key_and_refill_to_the_burst_only() {
        let mut l = RateLimiter::new(1.0, 2);
        let t = t0();
        assert!(l.check("a", t).is_ok());
        assert!(l.check("a", t).is_ok());
        assert!(l.check("a", t).is_err());
        assert!(l.check("b", t).is_ok(), "another agency has its own bucket");
        // An hour of quiet refills to 2 tokens, not 3600.
        let later = t + Duration::from_secs(3600);
        assert!(l.check("a", later).is_ok());
        assert!(l.check("a", later).is_ok());
        assert!(l.check("a", later).is_err());
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut l = RateLimiter::new(1.0, 1);
        let t = t0() + Duration::from_secs(10);
        assert!(l.check("a", t).is_ok());
        assert!(l.check("a", t - Duration::from_secs(5)).is_err());
        assert!(l.check("a", t + ms(999)).is_err());
        assert!(l.check("a", t + ms(1000)).is_ok());
    }

    #[test]
    fn a_zero_rate_disables_the_limit() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut l = RateLimiter::new(rate, 1);
            assert!(!l.is_enabled());
            let t = t0();
            for _ in 0..1000 {
                assert!(l.check("a", t).is_ok());
            }
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }
}
