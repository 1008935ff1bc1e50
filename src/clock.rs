//! Time. The only module that reads the system clock; everything else takes `now` as an
//! argument, so tests pin it.

use std::sync::Mutex;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the system clock
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The monotonic clock, for measuring how long a stage took (metrics); never for what the
/// hub decides, which goes by [`Clock`].
#[allow(clippy::disallowed_methods)] // the one sanctioned read of the monotonic clock
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// A clock that says what it is told, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0: Timestamp = "2025-03-14T02:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        let t1 = t0 + jiff::SignedDuration::from_secs(60);
        clock.set(t1);
        assert_eq!(clock.now(), t1);
    }
}
