//! The time every timeline of the service reads: the system's, or one a test moves by hand, so
//! expiry, lockout, grace and rotation are tested without sleeping. Redis and PostgreSQL keep
//! their own clocks for what they expire themselves (session TTLs in Redis).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands still at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: OffsetDateTime) -> Self {
        Self(Some(Arc::new(AtomicI64::new(ms_of(start)))))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(ms) => ms.load(Ordering::Relaxed),
            None => ms_of(OffsetDateTime::now_utc()),
        }
    }

    /// Now, to the microsecond (what both databases keep).
    pub fn now(&self) -> OffsetDateTime {
        let now = match &self.0 {
            Some(ms) => at_ms(ms.load(Ordering::Relaxed)),
            None => OffsetDateTime::now_utc(),
        };
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now)
    }

    /// Seconds since the Unix epoch (JWT `iat` and `exp`).
    pub fn now_secs(&self) -> u64 {
        (self.now_ms() / 1000).max(0) as u64
    }

    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        let ms = self.0.as_ref().expect("only a manual clock can be advanced");
        ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

fn ms_of(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Milliseconds since the epoch as a time (the epoch itself for a value out of range).
pub fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(clock.now_ms(), 100_000);
        clock.advance(Duration::from_millis(1500));
        assert_eq!((clock.now_ms(), clock.now_secs()), (101_500, 101));
        assert_eq!(clock.now().unix_timestamp(), 101);
    }
}
