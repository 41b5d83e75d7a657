use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's id: a UUIDv7, so ids sort by creation time and index well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A user account. The password hash never leaves the store layer in this type.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    /// Whether the owner of `email` confirmed it by following a verification link.
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
    /// False for an account signed up with a passkey alone, until the reset mail sets one.
    pub has_password: bool,
    pub second_factor: super::SecondFactor,
    /// Set by an operator: the account signs in nowhere while it holds.
    pub disabled: Option<Disabled>,
}

/// An operator's disabling of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// ms since the Unix epoch.
    pub since_ms: i64,
    /// When it ends by itself (ms); `None`: when an operator enables the account.
    pub until_ms: Option<i64>,
    pub reason: Option<String>,
}

impl User {
    /// Whether the account is disabled at `now_ms`.
    pub fn is_disabled(&self, now_ms: i64) -> bool {
        self.disabled
            .as_ref()
            .is_some_and(|d| d.until_ms.is_none_or(|until| now_ms < until))
    }
}
