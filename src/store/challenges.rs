//! Pending steps: what a password login that still needs its second factor leaves behind (a
//! challenge), and a passkey ceremony between its start and its finish. In Redis (shared by
//! every replica) or in this process. Stored under the SHA-256 of the token with a TTL, and
//! taken with one atomic get-and-delete (Redis `GETDEL`, a step under the map's lock), so each
//! is answered once however many instances race for it.

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
    Redis {
        client: RedisClient,
        prefix: String,
    },
    /// Values and their expiry (ms), by their Redis key.
    Memory(Arc<Mutex<HashMap<String, (String, i64)>>>),
}

/// Whether a read takes the value or leaves it.
#[derive(Debug, Clone, Copy)]
enum Read {
    Take,
    Keep,
}

/// What a pending step is: each kind has its own keys, so a token of one is never taken as
/// the other.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Challenge,
    Ceremony,
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
        let value = format!("{}|{}|{}", challenge.user, challenge.failures, challenge.expires_at_ms);
        self.put_value(Kind::Challenge, token, value, challenge.expires_at_ms)
            .await
    }

    /// Takes the challenge `token` names: it is gone for every other caller. `None` when it is
    /// unknown, already taken or expired.
    pub async fn take(&self, token: &str) -> Result<Option<Challenge>, StoreError> {
        let value = self.value(Kind::Challenge, token, Read::Take).await?;
        self.live_challenge(value)
    }

    /// The challenge `token` names, left in place (a passkey ceremony is bound to it before
    /// its second step takes it).
    pub async fn peek(&self, token: &str) -> Result<Option<Challenge>, StoreError> {
        let value = self.value(Kind::Challenge, token, Read::Keep).await?;
        self.live_challenge(value)
    }

    /// The challenge a stored value holds, unless it has expired.
    fn live_challenge(&self, value: Option<String>) -> Result<Option<Challenge>, StoreError> {
        let Some(value) = value else { return Ok(None) };
        let challenge = parse(&value)
            .ok_or_else(|| StoreError::Failed(Dependency::SessionStore, anyhow::anyhow!("malformed challenge")))?;
        Ok(Some(challenge).filter(|c| c.expires_at_ms > self.clock.now_ms()))
    }

    /// Stores a passkey ceremony's state (opaque text) under `token` until `expires_at_ms`.
    pub async fn put_ceremony(&self, token: &str, state: String, expires_at_ms: i64) -> Result<(), StoreError> {
        let value = format!("{expires_at_ms}|{state}");
        self.put_value(Kind::Ceremony, token, value, expires_at_ms).await
    }

    /// Takes the ceremony `token` names, once; `None` when it is unknown, taken or expired.
    pub async fn take_ceremony(&self, token: &str) -> Result<Option<String>, StoreError> {
        let Some(value) = self.value(Kind::Ceremony, token, Read::Take).await? else {
            return Ok(None);
        };
        let (expires_at_ms, state) = value
            .split_once('|')
            .and_then(|(at, state)| Some((at.parse::<i64>().ok()?, state)))
            .ok_or_else(|| StoreError::Failed(Dependency::SessionStore, anyhow::anyhow!("malformed ceremony")))?;
        Ok((expires_at_ms > self.clock.now_ms()).then(|| state.to_string()))
    }

    async fn put_value(&self, kind: Kind, token: &str, value: String, expires_at_ms: i64) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let ttl_ms = expires_at_ms - now;
        if ttl_ms <= 0 {
            return Ok(());
        }
        match &self.backend {
            Backend::Redis { client, prefix } => {
                let key = key(prefix, kind, token);
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
                map.retain(|_, (_, expires)| *expires > now);
                map.insert(key("", kind, token), (value, expires_at_ms));
                Ok(())
            }
        }
    }

    /// The value under `token`, taken (`GETDEL`, or removed under the map's lock) or left.
    async fn value(&self, kind: Kind, token: &str, read: Read) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Redis { client, prefix } => {
                let key = key(prefix, kind, token);
                let command = match read {
                    Read::Take => "GETDEL",
                    Read::Keep => "GET",
                };
                client
                    .run(|mut c| async move { redis::cmd(command).arg(key).query_async(&mut c).await })
                    .await
            }
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let key = key("", kind, token);
                Ok(match read {
                    Read::Take => map.remove(&key),
                    Read::Keep => map.get(&key).cloned(),
                }
                .map(|(value, _)| value))
            }
        }
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

/// The key holds the token's hash, never the token.
fn key(prefix: &str, kind: Kind, token: &str) -> String {
    let kind = match kind {
        Kind::Challenge => "mfa_challenge",
        Kind::Ceremony => "passkey_ceremony",
    };
    format!("{prefix}{kind}:{}", TokenHash::of(token).to_hex())
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
        // A ceremony's token is not a challenge's, and the other way round.
        let expiry = store.expiry(Duration::from_secs(120));
        let challenge = Challenge {
            expires_at_ms: expiry,
            ..challenge
        };
        store.put("c", challenge).await.unwrap();
        store.put_ceremony("c", "{\"a\":1}".into(), expiry).await.unwrap();
        assert_eq!(store.take("c").await.unwrap(), Some(challenge));
        assert_eq!(store.take_ceremony("c").await.unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(store.take_ceremony("c").await.unwrap(), None);
    }
}
