//! A bounded, short-lived memory of positive store answers, for the two reads every Bearer
//! request makes (is the session live, what is the user).
//!
//! An entry is trusted for at most `ttl`, counted from the moment its store read *started*, so
//! whatever changes in the store is seen by every instance within `ttl` of the change: a
//! revocation made on another instance, or a row edited by hand in the database. Changes made
//! through this instance drop the entries they affect at once. A change that races a read in
//! flight (the read started before it, the answer arrives after it) cannot leave its answer
//! behind: every drop advances an epoch, and an answer is kept only if the epoch did not move
//! while it was being read.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec};
use quick_cache::sync::Cache;

pub struct Recent<K, V> {
    entries: Cache<K, (Instant, V)>,
    ttl: Duration,
    epoch: AtomicU64,
    /// This cache's series of `auth_cache_lookups_total`, resolved once.
    hits: IntCounter,
    misses: IntCounter,
}

/// A read in progress: when it started, and the epoch it started in.
#[derive(Clone, Copy)]
pub struct Read {
    started: Instant,
    epoch: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    /// `None` when `ttl` is zero: every request then reads the store. Lookups are counted in
    /// `lookups` under the label `name`.
    pub fn new(ttl: Duration, capacity: usize, lookups: &IntCounterVec, name: &str) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: Cache::new(capacity),
            ttl,
            epoch: AtomicU64::new(0),
            hits: lookups.with_label_values(&[name, "hit"]),
            misses: lookups.with_label_values(&[name, "miss"]),
        })
    }

    /// The answer for `key`: the remembered one if it is younger than the ttl, else what `read`
    /// gets from the store, remembered when it is `Some` (a negative answer is never reused).
    pub async fn get_or_read<E, Fut>(&self, key: K, read: impl FnOnce() -> Fut) -> Result<Option<V>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(value) = self.get(&key) {
            self.hits.inc();
            return Ok(Some(value));
        }
        self.misses.inc();
        let started = self.begin();
        let value = read().await?;
        if let Some(value) = &value {
            self.keep(started, key, value.clone());
        }
        Ok(value)
    }

    /// The remembered answer for `key`, if it is younger than the ttl.
    fn get(&self, key: &K) -> Option<V> {
        let (read_at, value) = self.entries.get(key)?;
        (read_at.elapsed() < self.ttl).then_some(value)
    }

    /// Call before reading the store; hand the result to [`Recent::keep`].
    fn begin(&self) -> Read {
        Read {
            epoch: self.epoch.load(Ordering::Acquire),
            started: Instant::now(),
        }
    }

    /// Remembers what the read begun at `read` returned, unless something was dropped since.
    fn keep(&self, read: Read, key: K, value: V) {
        if self.epoch.load(Ordering::Acquire) != read.epoch {
            return;
        }
        self.entries.insert(key.clone(), (read.started, value));
        // A drop between the check and the insert: take the answer back out.
        if self.epoch.load(Ordering::Acquire) != read.epoch {
            self.entries.remove(&key);
        }
    }

    /// Forgets `key` (it changed through this instance).
    pub fn forget(&self, key: &K) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(key);
    }

    /// Forgets every entry `matches` selects.
    pub fn forget_where(&self, matches: impl Fn(&K, &V) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|key, (_, value)| !matches(key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recent(ttl: Duration) -> Option<Recent<u32, &'static str>> {
        let lookups = IntCounterVec::new(prometheus::Opts::new("lookups", "test"), &["cache", "outcome"]).unwrap();
        Recent::new(ttl, 8, &lookups, "test")
    }

    #[test]
    fn zero_ttl_turns_it_off() {
        assert!(recent(Duration::ZERO).is_none());
    }

    #[test]
    fn answers_until_the_ttl_counted_from_the_read() {
        let recent = recent(Duration::from_millis(50)).unwrap();
        let read = recent.begin();
        std::thread::sleep(Duration::from_millis(30));
        recent.keep(read, 1, "a");
        assert_eq!(recent.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(recent.get(&1), None, "50 ms after the read began, not after the insert");
    }

    #[test]
    fn a_drop_during_a_read_discards_its_answer() {
        let recent = recent(Duration::from_secs(60)).unwrap();
        let read = recent.begin();
        recent.forget(&1);
        recent.keep(read, 1, "stale");
        assert_eq!(recent.get(&1), None);

        let read = recent.begin();
        recent.forget_where(|_, v: &&str| *v == "other");
        recent.keep(read, 1, "stale");
        assert_eq!(recent.get(&1), None);

        let read = recent.begin();
        recent.keep(read, 1, "fresh");
        assert_eq!(recent.get(&1), Some("fresh"));
        recent.keep(recent.begin(), 2, "other");
        recent.forget_where(|_, v| *v == "other");
        assert_eq!((recent.get(&1), recent.get(&2)), (Some("fresh"), None));
    }
}
