//! Refresh sessions: one per login, holding the hash of the current refresh token.
//!
//! Both stores implement the same rules, which the integration suite checks on each:
//! - a session dies at `refresh_ttl` after its last rotation or `lifetime` after creation;
//! - rotation is atomic: the presented token is retired and a successor installed at once;
//! - the token retired last still answers, within `grace`, with the same successor (two tabs
//!   refreshing together); any other retired token revokes the whole session (reuse = theft);
//! - a user keeps at most `max_per_user` sessions, the oldest evicted first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub mod memory;
mod model;
pub mod redis;

use super::StoreError;
use super::recent::Recent;
use crate::auth::refresh_token::TokenHash;
use crate::domain::{Assurance, UserId};
use crate::metrics::Metrics;
use memory::MemorySessionStore;
pub use model::{ClientInfo, CreatedSession, Rotation, SessionInfo, SessionPolicy};
use redis::RedisSessionStore;

#[derive(Clone)]
pub enum SessionBackend {
    Redis(RedisSessionStore),
    Memory(MemorySessionStore),
}

/// The configured session store, timed into `auth_dependency_duration_seconds`.
#[derive(Clone)]
pub struct SessionStore {
    backend: SessionBackend,
    metrics: Arc<Metrics>,
    /// Sessions Redis recently said were live, with their user (see [`Recent`]). The
    /// in-process store answers from memory already and keeps none.
    live: Option<Arc<Recent<Uuid, UserId>>>,
}

/// Most sessions remembered as live by one instance.
const LIVE_CAPACITY: usize = 100_000;

/// Dispatches to whichever store is configured and records how long the call took.
macro_rules! dispatch {
    ($self:ident, $operation:literal, $store:ident => $call:expr) => {{
        let started = Instant::now();
        let result = match &$self.backend {
            SessionBackend::Redis($store) => $call.await,
            SessionBackend::Memory($store) => $call,
        };
        $self
            .metrics
            .observe_dependency($self.system(), $operation, started.elapsed());
        result
    }};
}

impl SessionStore {
    /// `remember`: how long a positive liveness check may be reused (zero: never).
    pub fn new(backend: SessionBackend, metrics: Arc<Metrics>, remember: Duration) -> Self {
        let live = match backend {
            SessionBackend::Redis(_) => {
                Recent::new(remember, LIVE_CAPACITY, &metrics.remembered, "session").map(Arc::new)
            }
            SessionBackend::Memory(_) => None,
        };
        Self { backend, metrics, live }
    }

    fn forget(&self, session: Uuid) {
        if let Some(live) = &self.live {
            live.forget(&session);
        }
    }

    fn forget_user(&self, user: UserId, keep: Option<Uuid>) {
        if let Some(live) = &self.live {
            live.forget_where(|session, owner| *owner == user && Some(*session) != keep);
        }
    }

    /// The Redis pool, for other state that must be shared by replicas (the login throttle).
    pub fn redis_client(&self) -> Option<&crate::store::redis_pool::RedisClient> {
        match &self.backend {
            SessionBackend::Redis(s) => Some(s.client()),
            SessionBackend::Memory(_) => None,
        }
    }

    /// Connections of the Redis pool, (idle, in use); `None` for the in-process store.
    pub fn pool_connections(&self) -> Option<(u32, u32)> {
        match &self.backend {
            SessionBackend::Redis(s) => Some(s.pool_connections()),
            SessionBackend::Memory(_) => None,
        }
    }

    #[tracing::instrument(name = "sessions.create", skip_all, fields(db.system = self.system(), db.operation = "create"))]
    pub async fn create(
        &self,
        user: UserId,
        token: TokenHash,
        client: &ClientInfo,
        assurance: Assurance,
    ) -> Result<CreatedSession, StoreError> {
        let created = dispatch!(self, "sessions.create", s => s.create(user, token, client, assurance))?;
        if created.evicted > 0 {
            self.forget_user(user, Some(created.id));
        }
        Ok(created)
    }

    #[tracing::instrument(name = "sessions.rotate", skip_all, fields(db.system = self.system(), db.operation = "rotate"))]
    pub async fn rotate(
        &self,
        user: UserId,
        presented: TokenHash,
        successor: TokenHash,
        sealed_successor: &str,
        client: &ClientInfo,
    ) -> Result<Rotation, StoreError> {
        let rotation =
            dispatch!(self, "sessions.rotate", s => s.rotate(user, presented, successor, sealed_successor, client))?;
        if let Rotation::Reused { session_id, .. } = rotation {
            self.forget(session_id);
        }
        Ok(rotation)
    }

    /// Revokes the session `token` (of `user`, as the token says) belongs to, current or
    /// retired; its id and user if there was one.
    #[tracing::instrument(name = "sessions.revoke_by_token", skip_all, fields(db.system = self.system(), db.operation = "revoke"))]
    pub async fn revoke_by_token(&self, user: UserId, token: TokenHash) -> Result<Option<(Uuid, UserId)>, StoreError> {
        let revoked = dispatch!(self, "sessions.revoke_by_token", s => s.revoke_by_token(user, token))?;
        if let Some((session, _)) = revoked {
            self.forget(session);
        }
        Ok(revoked)
    }

    /// Raises the assurance `session` of `user` carries into the access tokens it mints; `false`
    /// when it is no live session of `user`.
    #[tracing::instrument(name = "sessions.elevate", skip_all, fields(db.system = self.system(), db.operation = "elevate"))]
    pub async fn elevate(&self, user: UserId, session: Uuid, assurance: Assurance) -> Result<bool, StoreError> {
        dispatch!(self, "sessions.elevate", s => s.elevate(user, session, assurance))
    }

    /// Revokes `session` if it belongs to `user`.
    #[tracing::instrument(name = "sessions.revoke", skip_all, fields(db.system = self.system(), db.operation = "revoke"))]
    pub async fn revoke(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let revoked = dispatch!(self, "sessions.revoke", s => s.revoke(user, session))?;
        self.forget(session);
        Ok(revoked)
    }

    /// Revokes every session of `user` but `keep`, in one atomic step; how many there were.
    #[tracing::instrument(name = "sessions.revoke_all", skip_all, fields(db.system = self.system(), db.operation = "revoke_all"))]
    pub async fn revoke_all(&self, user: UserId, keep: Option<Uuid>) -> Result<u32, StoreError> {
        let revoked = dispatch!(self, "sessions.revoke_all", s => s.revoke_all(user, keep))?;
        self.forget_user(user, keep);
        Ok(revoked)
    }

    /// The live sessions of `user`, oldest first.
    #[tracing::instrument(name = "sessions.list", skip_all, fields(db.system = self.system(), db.operation = "list"))]
    pub async fn list(&self, user: UserId) -> Result<Vec<SessionInfo>, StoreError> {
        dispatch!(self, "sessions.list", s => s.list(user))
    }

    /// Whether `session` of `user` is still live (not revoked, evicted or expired). A session
    /// Redis confirmed within the configured window is answered from memory.
    pub async fn is_active(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let Some(live) = &self.live else {
            return self.check_active(user, session).await;
        };
        let owner = live
            .get_or_read(session, || async {
                Ok(self.check_active(user, session).await?.then_some(user))
            })
            .await?;
        Ok(owner == Some(user))
    }

    #[tracing::instrument(name = "sessions.is_active", skip_all, fields(db.system = self.system(), db.operation = "exists"))]
    async fn check_active(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        dispatch!(self, "sessions.is_active", s => s.is_active(user, session))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            SessionBackend::Redis(s) => s.ping().await,
            SessionBackend::Memory(_) => Ok(()),
        }
    }

    fn system(&self) -> &'static str {
        match self.backend {
            SessionBackend::Redis(_) => "redis",
            SessionBackend::Memory(_) => "memory",
        }
    }
}
