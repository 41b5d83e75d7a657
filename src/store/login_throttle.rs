//! Per-account brute-force protection, shared by every replica through Redis (in this process
//! in embedded mode): after `max_failures` failed logins for one normalised email, the account
//! is locked for `base`, doubling with each further failure up to `max`. Keyed by the email's
//! SHA-256 whether or not the account exists, so an unknown email is throttled the same way.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bb8_redis::redis::Script;
use sha2::{Digest, Sha256};

use super::StoreError;
use super::redis_pool::RedisClient;
use crate::clock::Clock;
use crate::config::LockoutSettings;
use crate::domain::Email;

static FAILED: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/login_failed.lua")));
static LOCKED: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/login_locked.lua")));

/// Failures are forgotten an hour after the last one: with the defaults that caps an
/// attacker at well under ASVS 2.2.1's 100 failed attempts per hour per account.
const WINDOW: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct LoginThrottle {
    backend: Backend,
    settings: LockoutSettings,
    clock: Clock,
}

#[derive(Clone)]
enum Backend {
    Redis { client: RedisClient, prefix: String },
    Memory(Arc<Mutex<HashMap<[u8; 32], Account>>>),
}

#[derive(Clone, Copy)]
struct Account {
    failures: u32,
    locked_until_ms: i64,
    forget_at_ms: i64,
}

impl LoginThrottle {
    pub fn redis(client: RedisClient, prefix: String, settings: LockoutSettings) -> Self {
        Self {
            backend: Backend::Redis { client, prefix },
            settings,
            clock: Clock::system(),
        }
    }

    pub fn memory(settings: LockoutSettings, clock: Clock) -> Self {
        Self {
            backend: Backend::Memory(Arc::default()),
            settings,
            clock,
        }
    }

    /// How much longer the account stays locked, if it is.
    pub async fn locked_for(&self, email: &Email) -> Result<Option<Duration>, StoreError> {
        let ms: u64 = match &self.backend {
            Backend::Redis { client, prefix } => {
                let mut invocation = LOCKED.prepare_invoke();
                invocation.key(key(prefix, email));
                client
                    .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                    .await?
            }
            Backend::Memory(accounts) => {
                let now = self.clock.now_ms();
                let accounts = accounts.lock().unwrap_or_else(|p| p.into_inner());
                accounts
                    .get(&digest(email))
                    .map_or(0, |a| (a.locked_until_ms - now).max(0) as u64)
            }
        };
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }

    /// Records a failed login; the lock it started, if it did.
    pub async fn failed(&self, email: &Email) -> Result<Option<Duration>, StoreError> {
        let s = &self.settings;
        let ms: u64 = match &self.backend {
            Backend::Redis { client, prefix } => {
                let mut invocation = FAILED.prepare_invoke();
                invocation
                    .key(key(prefix, email))
                    .arg(s.max_failures)
                    .arg(s.base.as_millis() as u64)
                    .arg(s.max.as_millis() as u64)
                    .arg(WINDOW.as_millis() as u64);
                client
                    .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                    .await?
            }
            Backend::Memory(accounts) => {
                let now = self.clock.now_ms();
                let mut accounts = accounts.lock().unwrap_or_else(|p| p.into_inner());
                accounts.retain(|_, a| a.forget_at_ms > now);
                let account = accounts.entry(digest(email)).or_insert(Account {
                    failures: 0,
                    locked_until_ms: 0,
                    forget_at_ms: 0,
                });
                account.failures += 1;
                let lock = lock_ms(account.failures, s);
                if lock > 0 {
                    account.locked_until_ms = now + lock as i64;
                }
                account.forget_at_ms = now + (WINDOW.as_millis() as u64).max(lock) as i64;
                lock
            }
        };
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }

    /// A successful login clears the account's failures.
    pub async fn succeeded(&self, email: &Email) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redis { client, prefix } => {
                let key = key(prefix, email);
                client
                    .run(|mut c| async move { bb8_redis::redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await })
                    .await
            }
            Backend::Memory(accounts) => {
                accounts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&digest(email));
                Ok(())
            }
        }
    }
}

/// The lock after `failures` failures: none below the limit, then base × 2^(excess), capped.
fn lock_ms(failures: u32, s: &LockoutSettings) -> u64 {
    if failures < s.max_failures {
        return 0;
    }
    let doublings = (failures - s.max_failures).min(32);
    (s.base.as_millis() as u64)
        .saturating_mul(1 << doublings)
        .min(s.max.as_millis() as u64)
}

fn digest(email: &Email) -> [u8; 32] {
    Sha256::digest(email.as_str().as_bytes()).into()
}

/// The Redis key never holds the email itself.
fn key(prefix: &str, email: &Email) -> String {
    let hex: String = digest(email).iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}login:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_doubles_up_to_the_cap() {
        let s = LockoutSettings {
            max_failures: 5,
            base: Duration::from_secs(60),
            max: Duration::from_secs(900),
        };
        let locks: Vec<u64> = (1..=10).map(|f| lock_ms(f, &s) / 1000).collect();
        assert_eq!(locks, [0, 0, 0, 0, 60, 120, 240, 480, 900, 900]);
    }
}
