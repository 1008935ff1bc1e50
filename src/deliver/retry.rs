//! The retry schedule: exponential backoff with full jitter, a cap, and a maximum age.
//!
//! Pure: [`RetryPolicy::next`] takes the attempt number, when the delivery was queued, `now`
//! and a random value, and says when to try again or to give up. The policy is checked when
//! it is built ([`RetryPolicy::new`]), so a bad configuration fails at startup, not at the
//! first failure. Each delivery has its own schedule: one recipient's failures never move
//! another's.
//!
//! Attempt `n` (1 for the first failure) waits a uniformly random time in
//! `[0, min(cap, base × 2^(n-1))]` (full jitter: retries of many deliveries that failed
//! together spread out instead of returning together), but at least `floor`. Once the next
//! attempt would fall after `queued + max_age`, the delivery is given up.

use std::time::Duration;

use jiff::Timestamp;

/// When to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time.
    At(Timestamp),
    /// Give up: the delivery is dead.
    GiveUp,
}

/// A schedule that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    /// base must be positive.
    #[error("retry base must be positive")]
    ZeroBase,
    /// cap must be at least base.
    #[error("retry cap ({cap:?}) must be at least the base ({base:?})")]
    CapBelowBase {
        /// The base.
        base: Duration,
        /// The cap.
        cap: Duration,
    },
    /// floor must not exceed base.
    #[error("retry floor ({floor:?}) must not exceed the base ({base:?})")]
    FloorAboveBase {
        /// The floor.
        floor: Duration,
        /// The base.
        base: Duration,
    },
    /// max_age must leave room for one retry.
    #[error("maximum age ({max_age:?}) must be at least the base ({base:?})")]
    AgeBelowBase {
        /// The maximum age.
        max_age: Duration,
        /// The base.
        base: Duration,
    },
}

/// A checked retry schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    base: Duration,
    cap: Duration,
    floor: Duration,
    max_age: Duration,
}

impl Default for RetryPolicy {
    /// Starts at 30 s, caps at 1 h, gives up after 72 h; never sooner than 1 s.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(3600),
            floor: Duration::from_secs(1),
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

impl RetryPolicy {
    /// A schedule: first retry within `base`, doubling up to `cap`, never sooner than `floor`,
    /// given up after `max_age` since the delivery was queued.
    pub fn new(
        base: Duration,
        cap: Duration,
        floor: Duration,
        max_age: Duration,
    ) -> Result<Self, RetryError> {
        if base.is_zero() {
            return Err(RetryError::ZeroBase);
        }
        if cap < base {
            return Err(RetryError::CapBelowBase { base, cap });
        }
        if floor > base {
            return Err(RetryError::FloorAboveBase { floor, base });
        }
        if max_age < base {
            return Err(RetryError::AgeBelowBase { max_age, base });
        }
        Ok(RetryPolicy {
            base,
            cap,
            floor,
            max_age,
        })
    }

    /// The longest wait before attempt `attempt + 1`: `min(cap, base × 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        self.base
            .checked_mul(1u32 << shift.min(31))
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// After failed attempt `attempt` (1-based) of a delivery queued at `queued`: when to
    /// try again, with `random` drawn uniformly from all `u64` values.
    pub fn next(&self, attempt: u32, queued: Timestamp, now: Timestamp, random: u64) -> Decision {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        let wait = if ceiling == 0 {
            0
        } else {
            random % (ceiling + 1)
        };
        let wait = Duration::from_millis(wait).max(self.floor);
        let span =
            |d: Duration| jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
        let Some(at) = now.checked_add(span(wait)).ok() else {
            return Decision::GiveUp;
        };
        let deadline = queued
            .checked_add(span(self.max_age))
            .unwrap_or(Timestamp::MAX);
        if at > deadline {
            Decision::GiveUp
        } else {
            Decision::At(at)
        }
    }

    /// The maximum age.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + s).unwrap()
    }

    #[test]
    fn construction_is_checked() {
        let s = Duration::from_secs;
        assert_eq!(
            RetryPolicy::new(s(0), s(1), s(0), s(9)),
            Err(RetryError::ZeroBase)
        );
        assert!(matches!(
            RetryPolicy::new(s(10), s(5), s(1), s(99)),
            Err(RetryError::CapBelowBase { .. })
        ));
        assert!(matches!(
            RetryPolicy::new(s(10), s(50), s(11), s(99)),
            Err(RetryError::FloorAboveBase { .. })
        ));
        assert!(matches!(
            RetryPolicy::new(s(10), s(50), s(1), s(9)),
            Err(RetryError::AgeBelowBase { .. })
        ));
        assert!(RetryPolicy::new(s(10), s(50), s(1), s(99)).is_ok());
    }

    #[test]
    fn the_default_schedule_doubles_to_an_hour_and_stops_at_72_hours() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_secs(30));
        assert_eq!(p.ceiling(2), Duration::from_secs(60));
        assert_eq!(p.ceiling(8), Duration::from_secs(3600));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(3600));
        // The largest random value waits the whole ceiling.
        assert_eq!(p.next(1, t(0), t(0), 30_000), Decision::At(t(30)));
        assert_eq!(p.next(1, t(0), t(0), 0), Decision::At(t(1)), "floor");
        let late = t(72 * 3600 - 10);
        assert_eq!(p.next(50, t(0), late, u64::MAX), Decision::GiveUp);
    }

    proptest! {
        #[test]
        fn waits_stay_within_floor_and_ceiling(
            attempt in 1u32..200,
            random in any::<u64>(),
            age in 0i64..300_000,
            // (ages up to 83 h: past the 72 h limit too)
            base in 1u64..600,
            cap_extra in 0u64..7200,
        ) {
            let p = RetryPolicy::new(
                Duration::from_secs(base),
                Duration::from_secs(base + cap_extra),
                Duration::from_millis(500).min(Duration::from_secs(base)),
                Duration::from_secs(72 * 3600),
            ).unwrap();
            let queued = t(0);
            let now = t(age);
            let deadline = queued + jiff::SignedDuration::from_hours(72);
            let longest = p.ceiling(attempt).max(Duration::from_millis(500));
            let longest = jiff::SignedDuration::try_from(longest).unwrap();
            match p.next(attempt, queued, now, random) {
                Decision::At(at) => {
                    let wait = at.duration_since(now).as_millis();
                    prop_assert!(wait >= 500.min(base as i128 * 1000));
                    prop_assert!(wait <= longest.as_millis());
                    prop_assert!(at <= deadline);
                }
                // Giving up only happens when a wait allowed by the schedule passes the
                // deadline.
                Decision::GiveUp => prop_assert!(now + longest > deadline),
            }
            // Past the point where even the floor overshoots, it always gives up.
            if now + jiff::SignedDuration::from_millis(500) > deadline {
                prop_assert_eq!(p.next(attempt, queued, now, random), Decision::GiveUp);
            }
            // The ceiling never decreases with the attempt number and never passes the cap.
            prop_assert!(p.ceiling(attempt) <= p.ceiling(attempt + 1));
            prop_assert!(p.ceiling(attempt) <= Duration::from_secs(base + cap_extra));
        }
    }
}
