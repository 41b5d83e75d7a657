//! Refresh sessions in this process: the embedded default. Same rules as the Redis store;
//! each operation runs under one short, synchronous lock (never held across an `.await`, the
//! seed's deadlock), which makes it atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use super::model::{ClientInfo, CreatedSession, REMEMBER_EXPIRED_MS, Rotation, SessionInfo, SessionPolicy};
use crate::auth::refresh_token::TokenHash;
use crate::clock::{Clock, at_ms};
use crate::domain::{Assurance, UserId};
use crate::store::StoreError;

struct Session {
    user: UserId,
    current: TokenHash,
    /// The token retired last, its sealed successor, and when it was retired.
    previous: Option<(TokenHash, String, i64)>,
    created_ms: i64,
    last_used_ms: i64,
    idle_exp_ms: i64,
    abs_exp_ms: i64,
    client: ClientInfo,
    assurance: Assurance,
}

impl Session {
    fn expires_ms(&self) -> i64 {
        self.idle_exp_ms.min(self.abs_exp_ms)
    }
}

/// Where a token points, and until when it could be used.
struct TokenEntry {
    session: Uuid,
    exp_ms: i64,
}

#[derive(Default)]
struct State {
    sessions: HashMap<Uuid, Session>,
    /// Current and retired tokens; retired ones are remembered to detect reuse.
    tokens: HashMap<TokenHash, TokenEntry>,
    by_user: HashMap<UserId, Vec<Uuid>>,
}

impl State {
    fn remove_session(&mut self, id: Uuid) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        if let Some(ids) = self.by_user.get_mut(&session.user) {
            ids.retain(|s| *s != id);
            if ids.is_empty() {
                self.by_user.remove(&session.user);
            }
        }
        Some(session)
    }

    fn sweep(&mut self, now: i64) {
        let dead: Vec<Uuid> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expires_ms() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.remove_session(id);
        }
        self.tokens.retain(|_, t| t.exp_ms + REMEMBER_EXPIRED_MS as i64 > now);
    }
}

#[derive(Clone)]
pub struct MemorySessionStore {
    state: Arc<Mutex<State>>,
    policy: SessionPolicy,
    clock: Clock,
}

impl MemorySessionStore {
    /// A store, and a task that drops expired entries every minute while the store lives.
    pub fn new(policy: SessionPolicy, clock: Clock) -> Self {
        let store = Self {
            state: Arc::default(),
            policy,
            clock: clock.clone(),
        };
        let weak = Arc::downgrade(&store.state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { break };
                state.lock().unwrap_or_else(|p| p.into_inner()).sweep(clock.now_ms());
            }
        });
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied operation visible to
        // clients in a way worse than refusing all sessions, so carry on with the data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ms(d: Duration) -> i64 {
        d.as_millis() as i64
    }

    pub fn create(
        &self,
        user: UserId,
        token: TokenHash,
        client: &ClientInfo,
        assurance: Assurance,
    ) -> Result<CreatedSession, StoreError> {
        let now = self.clock.now_ms();
        let id = Uuid::now_v7();
        let idle_exp_ms = now + Self::ms(self.policy.refresh_ttl);
        let abs_exp_ms = now + Self::ms(self.policy.lifetime);
        let mut state = self.lock();
        state.sweep(now);
        state.sessions.insert(
            id,
            Session {
                user,
                current: token,
                previous: None,
                created_ms: now,
                last_used_ms: now,
                idle_exp_ms,
                abs_exp_ms,
                client: client.clone(),
                assurance,
            },
        );
        state.tokens.insert(
            token,
            TokenEntry {
                session: id,
                exp_ms: idle_exp_ms.min(abs_exp_ms),
            },
        );
        let ids = state.by_user.entry(user).or_default();
        ids.push(id);
        let excess = ids.len().saturating_sub(self.policy.max_per_user as usize);
        let evicted: Vec<Uuid> = ids.drain(..excess).collect();
        for old in &evicted {
            state.sessions.remove(old);
        }
        Ok(CreatedSession {
            id,
            evicted: evicted.len() as u32,
        })
    }

    pub fn rotate(
        &self,
        _user: UserId,
        presented: TokenHash,
        successor: TokenHash,
        sealed_successor: &str,
        client: &ClientInfo,
    ) -> Result<Rotation, StoreError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let Some(entry) = state.tokens.get(&presented) else {
            return Ok(Rotation::Invalid);
        };
        let session_id = entry.session;
        if now >= entry.exp_ms {
            return Ok(Rotation::Expired);
        }
        let Some(session) = state.sessions.get_mut(&session_id) else {
            return Ok(Rotation::Invalid);
        };
        let (user_id, assurance) = (session.user, session.assurance);
        if now >= session.expires_ms() {
            state.remove_session(session_id);
            return Ok(Rotation::Expired);
        }
        if session.current == presented {
            session.previous = Some((presented, sealed_successor.to_string(), now));
            session.current = successor;
            session.last_used_ms = now;
            session.idle_exp_ms = now + Self::ms(self.policy.refresh_ttl);
            session.client = client.clone();
            let exp_ms = session.expires_ms();
            state.tokens.insert(
                successor,
                TokenEntry {
                    session: session_id,
                    exp_ms,
                },
            );
            return Ok(Rotation::Rotated {
                session_id,
                user_id,
                assurance,
            });
        }
        if let Some((previous, sealed, retired_ms)) = &session.previous
            && *previous == presented
            && now - retired_ms <= Self::ms(self.policy.grace)
        {
            return Ok(Rotation::GraceReplay {
                session_id,
                user_id,
                assurance,
                sealed_successor: sealed.clone(),
            });
        }
        state.remove_session(session_id);
        Ok(Rotation::Reused { session_id, user_id })
    }

    pub fn revoke_by_token(&self, _user: UserId, token: TokenHash) -> Result<Option<(Uuid, UserId)>, StoreError> {
        let mut state = self.lock();
        let Some(session) = state.tokens.get(&token).map(|t| t.session) else {
            return Ok(None);
        };
        Ok(state.remove_session(session).map(|s| (session, s.user)))
    }

    pub fn elevate(&self, user: UserId, session: Uuid, assurance: Assurance) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.sessions.get_mut(&session).filter(|s| s.user == user) {
            Some(s) => {
                s.assurance = assurance;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn revoke(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.sessions.get(&session).is_some_and(|s| s.user == user) {
            state.remove_session(session);
            return Ok(true);
        }
        Ok(false)
    }

    pub fn revoke_all(&self, user: UserId, keep: Option<Uuid>) -> Result<u32, StoreError> {
        let mut state = self.lock();
        let mut ids = state.by_user.remove(&user).unwrap_or_default();
        if let Some(keep) = keep
            && let Some(at) = ids.iter().position(|id| *id == keep)
        {
            state.by_user.insert(user, vec![ids.swap_remove(at)]);
        }
        let now = self.clock.now_ms();
        let mut live = 0;
        for id in ids {
            if state.sessions.remove(&id).is_some_and(|s| s.expires_ms() > now) {
                live += 1;
            }
        }
        Ok(live)
    }

    pub fn list(&self, user: UserId) -> Result<Vec<SessionInfo>, StoreError> {
        let now = self.clock.now_ms();
        let state = self.lock();
        let ids = state.by_user.get(&user).map(Vec::as_slice).unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|id| state.sessions.get(id).filter(|s| s.expires_ms() > now).map(|s| (id, s)))
            .map(|(id, s)| SessionInfo {
                id: *id,
                created_at: at_ms(s.created_ms),
                last_used_at: at_ms(s.last_used_ms),
                expires_at: at_ms(s.expires_ms()),
                user_agent: s.client.user_agent.clone(),
                ip: s.client.ip.clone(),
            })
            .collect())
    }

    pub fn is_active(&self, user: UserId, session: Uuid) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .lock()
            .sessions
            .get(&session)
            .is_some_and(|s| s.user == user && s.expires_ms() > now))
    }
}
