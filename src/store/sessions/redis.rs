//! Refresh sessions in Redis, shared by all replicas. Every state change is one Lua script, so
//! it is atomic across instances (the seed's GET-then-SET let two refreshes fork a session).
//!
//! Keys, all under the configured prefix, then the user's hash tag `{u:<user id>}:`, and all
//! with a TTL:
//! - `session:<id>`: hash of the session (user, current/previous token hashes, times, client);
//!   expires when the session does.
//! - `token:<sha256>`: `"<session id>|<expiry ms>"` for current and retired tokens, kept a day
//!   past expiry so a late token answers "expired" and a replayed one is recognised as reuse.
//! - `sessions`: sorted set of the user's session ids by creation time.
//!
//! Every key of one user hashes to one slot, so each script (declared `#!lua`) touches one
//! slot, as Redis Cluster requires; the scripts build the session keys they derive from values
//! under the tag they are given. A refresh token carries its user's id, which names the tag.

use std::sync::LazyLock;

use bb8_redis::redis::{self, Script};
use uuid::Uuid;

use super::model::{ClientInfo, CreatedSession, REMEMBER_EXPIRED_MS, Rotation, SessionInfo, SessionPolicy};
use crate::auth::refresh_token::TokenHash;
use crate::clock::at_ms;
use crate::domain::{Assurance, UserId};
use crate::store::redis_pool::RedisClient;
use crate::store::{Dependency, StoreError};

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/create.lua")));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/rotate.lua")));
static ELEVATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/elevate.lua")));
static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/revoke.lua")));
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/revoke_all.lua")));
static REVOKE_BY_TOKEN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/revoke_by_token.lua")));

/// The session keys under one prefix.
#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    /// The start of every key of `user`: `<prefix>{u:<id>}:`, whose hash tag puts all of them
    /// in one slot of a cluster. The scripts build the session keys they derive from values
    /// as this followed by `session:<id>`.
    fn tag(&self, user: UserId) -> String {
        format!("{}{{u:{user}}}:", self.prefix)
    }
    fn session(&self, user: UserId, id: Uuid) -> String {
        format!("{}session:{id}", self.tag(user))
    }
    fn token(&self, user: UserId, token: TokenHash) -> String {
        format!("{}token:{}", self.tag(user), token.to_hex())
    }
    fn sessions(&self, user: UserId) -> String {
        format!("{}sessions", self.tag(user))
    }
}

#[derive(Clone)]
pub struct RedisSessionStore {
    client: RedisClient,
    keys: Keys,
    policy: SessionPolicy,
}

impl RedisSessionStore {
    /// A lazily connecting pool: the service starts even while Redis is down, and answers 503
    /// for session calls until it is back.
    pub fn new(client: RedisClient, prefix: String, policy: SessionPolicy) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            keys: Keys { prefix },
            policy,
        })
    }

    pub async fn create(
        &self,
        user: UserId,
        token: TokenHash,
        client: &ClientInfo,
        assurance: Assurance,
    ) -> Result<CreatedSession, StoreError> {
        let id = Uuid::now_v7();
        let mut invocation = CREATE.prepare_invoke();
        invocation
            .key(self.keys.session(user, id))
            .key(self.keys.token(user, token))
            .key(self.keys.sessions(user))
            .arg(id.to_string())
            .arg(user.to_string())
            .arg(self.policy.refresh_ttl.as_millis() as u64)
            .arg(self.policy.lifetime.as_millis() as u64)
            .arg(self.policy.max_per_user)
            .arg(client.user_agent.as_deref().unwrap_or(""))
            .arg(client.ip.as_deref().unwrap_or(""))
            .arg(self.keys.tag(user))
            .arg(REMEMBER_EXPIRED_MS)
            .arg(assurance.code());
        let evicted: u32 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(CreatedSession { id, evicted })
    }

    pub async fn rotate(
        &self,
        user: UserId,
        presented: TokenHash,
        successor: TokenHash,
        sealed_successor: &str,
        client: &ClientInfo,
    ) -> Result<Rotation, StoreError> {
        let mut invocation = ROTATE.prepare_invoke();
        invocation
            .key(self.keys.token(user, presented))
            .key(self.keys.token(user, successor))
            .arg(sealed_successor)
            .arg(self.policy.refresh_ttl.as_millis() as u64)
            .arg(self.policy.grace.as_millis() as u64)
            .arg(client.user_agent.as_deref().unwrap_or(""))
            .arg(client.ip.as_deref().unwrap_or(""))
            .arg(self.keys.tag(user))
            .arg(REMEMBER_EXPIRED_MS);
        let reply: Vec<String> = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        let ids = || -> Result<(Uuid, UserId), StoreError> {
            let parse = |i: usize| reply.get(i).and_then(|v| Uuid::parse_str(v).ok());
            match (parse(1), parse(2)) {
                (Some(sid), Some(uid)) => Ok((sid, UserId::from_uuid(uid))),
                _ => Err(StoreError::Failed(
                    Dependency::SessionStore,
                    anyhow::anyhow!("malformed rotate reply"),
                )),
            }
        };
        let assurance = Assurance::from_code(reply.get(4).map(String::as_str));
        Ok(match reply.first().map(String::as_str) {
            Some("rotated") => {
                let (session_id, user_id) = ids()?;
                Rotation::Rotated {
                    session_id,
                    user_id,
                    assurance,
                }
            }
            Some("grace") => {
                let (session_id, user_id) = ids()?;
                let sealed_successor = reply.get(3).cloned().unwrap_or_default();
                Rotation::GraceReplay {
                    session_id,
                    user_id,
                    assurance,
                    sealed_successor,
                }
            }
            Some("reused") => {
                let (session_id, user_id) = ids()?;
                Rotation::Reused { session_id, user_id }
            }
            Some("expired") => Rotation::Expired,
            _ => Rotation::Invalid,
        })
    }

    pub async fn revoke_by_token(&self, user: UserId, token: TokenHash) -> Result<Option<(Uuid, UserId)>, StoreError> {
        let mut invocation = REVOKE_BY_TOKEN.prepare_invoke();
        invocation
            .key(self.keys.token(user, token))
            .key(self.keys.sessions(user))
            .arg(self.keys.tag(user));
        let ids: Option<String> = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(ids.and_then(|ids| {
            let (sid, uid) = ids.split_once('|')?;
            Some((
                Uuid::parse_str(sid).ok()?,
                UserId::from_uuid(Uuid::parse_str(uid).ok()?),
            ))
        }))
    }

    pub async fn elevate(&self, user: UserId, session: Uuid, assurance: Assurance) -> Result<bool, StoreError> {
        let mut invocation = ELEVATE.prepare_invoke();
        invocation
            .key(self.keys.session(user, session))
            .arg(user.to_string())
            .arg(assurance.code());
        let updated: u32 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(updated == 1)
    }

    pub async fn revoke(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let mut invocation = REVOKE.prepare_invoke();
        invocation
            .key(self.keys.session(user, session))
            .key(self.keys.sessions(user))
            .arg(user.to_string())
            .arg(session.to_string());
        let revoked: u32 = self
            .client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(revoked == 1)
    }

    pub async fn revoke_all(&self, user: UserId, keep: Option<Uuid>) -> Result<u32, StoreError> {
        let mut invocation = REVOKE_ALL.prepare_invoke();
        let keep = keep.map(|id| id.to_string()).unwrap_or_default();
        invocation
            .key(self.keys.sessions(user))
            .arg(self.keys.tag(user))
            .arg(keep);
        self.client
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    pub async fn list(&self, user: UserId) -> Result<Vec<SessionInfo>, StoreError> {
        let user_key = self.keys.sessions(user);
        let ids: Vec<String> = self
            .client
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(user_key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let ids: Vec<Uuid> = ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.keys.session(user, *id))
                .arg(&["created", "used", "idle_exp", "abs_exp", "ua", "ip"]);
        }
        let rows: Vec<Vec<Option<String>>> = self
            .client
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        let ms = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<i64>().ok());
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, row)| {
                // A session that expired or was revoked since ZRANGE has no fields left.
                let (created, used, idle, abs) = (ms(&row[0])?, ms(&row[1])?, ms(&row[2])?, ms(&row[3])?);
                Some(SessionInfo {
                    id,
                    created_at: at_ms(created),
                    last_used_at: at_ms(used),
                    expires_at: at_ms(idle.min(abs)),
                    user_agent: text(&row[4]),
                    ip: text(&row[5]),
                })
            })
            .collect())
    }

    pub async fn is_active(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let key = self.keys.session(user, session);
        let exists: bool = self
            .client
            .run(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await?;
        Ok(exists)
    }

    pub fn pool_connections(&self) -> (u32, u32) {
        self.client.pool_connections()
    }

    /// The pool, shared with the login throttle.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cluster slot of `key`, as Redis computes it: CRC16 (XMODEM) of the hash tag (the
    /// text between the first `{` and the next `}`, when not empty) or of the whole key, mod
    /// 16384.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
                _ => bytes,
            },
            None => bytes,
        };
        crc16::State::<crc16::XMODEM>::calculate(hashed) % 16384
    }

    #[test]
    fn the_slot_is_redis_clusters() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31C3, "CRC16-XMODEM of the check string");
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_ne!(
            slot("foo{}{bar}"),
            slot("{bar}"),
            "an empty tag: the whole key is hashed"
        );
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    /// Every key each operation touches, the declared ones and those its script derives (the
    /// tag it is given + `session:<id>` / `sessions`), lies in one slot.
    #[test]
    fn every_session_operation_touches_one_slot() {
        for prefix in ["auth:", "", "tenant-a:auth:"] {
            let keys = Keys { prefix: prefix.into() };
            for _ in 0..50 {
                let user = UserId::new();
                let (sid, other) = (Uuid::now_v7(), Uuid::now_v7());
                let (token, successor) = (TokenHash::of("a"), TokenHash::of("b"));
                let derived = |id: Uuid| format!("{}session:{id}", keys.tag(user));
                let operations: [(&str, Vec<String>); 8] = [
                    // create.lua evicts and sweeps other sessions of the user.
                    (
                        "create",
                        vec![
                            keys.session(user, sid),
                            keys.token(user, token),
                            keys.sessions(user),
                            derived(other),
                        ],
                    ),
                    // rotate.lua reads the session its token names, and the user's index.
                    (
                        "rotate",
                        vec![
                            keys.token(user, token),
                            keys.token(user, successor),
                            derived(sid),
                            format!("{}sessions", keys.tag(user)),
                        ],
                    ),
                    (
                        "revoke_by_token",
                        vec![keys.token(user, token), keys.sessions(user), derived(sid)],
                    ),
                    ("elevate", vec![keys.session(user, sid)]),
                    ("revoke", vec![keys.session(user, sid), keys.sessions(user)]),
                    ("revoke_all", vec![keys.sessions(user), derived(sid), derived(other)]),
                    (
                        "list",
                        vec![keys.sessions(user), keys.session(user, sid), keys.session(user, other)],
                    ),
                    ("is_active", vec![keys.session(user, sid)]),
                ];
                for (operation, touched) in operations {
                    let slots: std::collections::BTreeSet<u16> = touched.iter().map(|k| slot(k)).collect();
                    assert_eq!(slots.len(), 1, "{operation} touches {touched:?} in slots {slots:?}");
                }
            }
        }
    }

    #[test]
    fn a_brace_in_the_prefix_would_break_the_tags() {
        let keys = Keys {
            prefix: "{auth}:".into(),
        };
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(
            slot(&keys.sessions(a)),
            slot(&keys.sessions(b)),
            "every user in one slot: why REDIS_KEY_PREFIX refuses braces"
        );
    }
}
