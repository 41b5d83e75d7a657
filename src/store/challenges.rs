//! Login challenges: what a password login that still needs its second factor leaves behind,
//! in Redis (shared by every replica) or in this process. Stored under the SHA-256 of the
//! challenge with a TTL, and taken with one atomic get-and-delete (Redis `GETDEL`, a step
//! under the map's lock), so a challenge is answered once however many instances race for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_redis::redis;
use uuid::Uuid;

use super::redis_pool::RedisClient;
use super::{Dependency, StoreError};
use crate::auth::refresh_token::TokenHash;
use crate::clock::Clock;
use crate::domain::UserId;

/// A pending second-factor step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub user: UserId,
    /// Wrong codes presented so far.
    pub failures: u32,
    pub expires_at_ms: i64,
}

#[derive(Clone)]
pub struct ChallengeStore {
    backend: Backend,
    clock: Clock,
}

#[derive(Clone)]
enum Backend {
    Redis { client: RedisClient, prefix: String },
    Memory(Arc<Mutex<HashMap<TokenHash, Challenge>>>),
}

impl ChallengeStore {
    pub fn redis(client: RedisClient, prefix: String, clock: Clock) -> Self {
        Self {
            backend: Backend::Redis { client, prefix },
            clock,
        }
    }

    pub fn memory(clock: Clock) -> Self {
        Self {
            backend: Backend::Memory(Arc::default()),
            clock,
        }
    }

    /// Stores `challenge` under `token` until its expiry.
    pub async fn put(&self, token: &str, challenge: Challenge) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let ttl_ms = challenge.expires_at_ms - now;
        if ttl_ms <= 0 {
            return Ok(());
        }
        match &self.backend {
            Backend::Redis { client, prefix } => {
                let key = key(prefix, token);
                let value = format!("{}|{}|{}", challenge.user, challenge.failures, challenge.expires_at_ms);
                client
                    .run(|mut c| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await
            }
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, c| c.expires_at_ms > now);
                map.insert(TokenHash::of(token), challenge);
                Ok(())
            }
        }
    }

    /// Takes the challenge `token` names: it is gone for every other caller. `None` when it is
    /// unknown, already taken or expired.
    pub async fn take(&self, token: &str) -> Result<Option<Challenge>, StoreError> {
        let challenge = match &self.backend {
            Backend::Redis { client, prefix } => {
                let key = key(prefix, token);
                let value: Option<String> = client
                    .run(|mut c| async move { redis::cmd("GETDEL").arg(key).query_async(&mut c).await })
                    .await?;
                match value {
                    None => None,
                    Some(value) => Some(parse(&value).ok_or_else(|| {
                        StoreError::Failed(Dependency::SessionStore, anyhow::anyhow!("malformed challenge"))
                    })?),
                }
            }
            Backend::Memory(map) => map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&TokenHash::of(token)),
        };
        Ok(challenge.filter(|c| c.expires_at_ms > self.clock.now_ms()))
    }

    /// How long a new challenge lives.
    pub fn expiry(&self, ttl: Duration) -> i64 {
        self.clock.now_ms() + ttl.as_millis() as i64
    }
}

fn parse(value: &str) -> Option<Challenge> {
    let mut parts = value.split('|');
    let user = UserId::from_uuid(Uuid::parse_str(parts.next()?).ok()?);
    let failures = parts.next()?.parse().ok()?;
    let expires_at_ms = parts.next()?.parse().ok()?;
    Some(Challenge {
        user,
        failures,
        expires_at_ms,
    })
}

/// The key holds the challenge's hash, never the challenge.
fn key(prefix: &str, token: &str) -> String {
    format!("{prefix}mfa_challenge:{}", TokenHash::of(token).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_challenge_is_taken_once_and_not_after_it_expires() {
        let clock = Clock::manual(time::OffsetDateTime::now_utc());
        let store = ChallengeStore::memory(clock.clone());
        let challenge = Challenge {
            user: UserId::new(),
            failures: 0,
            expires_at_ms: store.expiry(Duration::from_secs(300)),
        };
        store.put("a", challenge).await.unwrap();
        store.put("b", challenge).await.unwrap();
        assert_eq!(store.take("a").await.unwrap(), Some(challenge));
        assert_eq!(store.take("a").await.unwrap(), None);
        clock.advance(Duration::from_secs(300));
        assert_eq!(store.take("b").await.unwrap(), None);
        assert_eq!(parse(&format!("{}|3|99", challenge.user)).map(|c| c.failures), Some(3));
    }
}
