//! What both session stores take and answer.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Assurance, UserId};

/// How long an expired token is remembered by either store, to answer "expired" rather than
/// "invalid" (and to still recognise a replayed one).
pub(super) const REMEMBER_EXPIRED_MS: u64 = 86_400_000;

/// The lifetimes and limits every store applies.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    pub refresh_ttl: Duration,
    pub lifetime: Duration,
    pub grace: Duration,
    pub max_per_user: u32,
}

/// Who opened or last used a session, for the user's session list.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug)]
pub struct CreatedSession {
    pub id: Uuid,
    /// Sessions of the same user removed to respect `max_per_user`.
    pub evicted: u32,
}

/// What presenting a refresh token led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The current token: retired, and the successor installed.
    Rotated {
        session_id: Uuid,
        user_id: UserId,
        assurance: Assurance,
    },
    /// The token retired last, within the grace window: the successor, sealed under it.
    GraceReplay {
        session_id: Uuid,
        user_id: UserId,
        assurance: Assurance,
        sealed_successor: String,
    },
    /// An older or out-of-grace retired token: the session is now revoked.
    Reused {
        session_id: Uuid,
        user_id: UserId,
    },
    Expired,
    /// Unknown token, or its session was revoked.
    Invalid,
}

/// A session as its owner sees it in the list.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}
