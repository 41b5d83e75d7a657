//! Security events: what happened to an account, who asked (address, browser family) and in
//! which trace. A closed set with stable dotted names that log pipelines, dashboards and the
//! user's own activity list rely on.

use time::OffsetDateTime;
use uuid::Uuid;

use super::UserId;

/// Every event the service records. Routine successful refreshes are not events (they are
/// counted in `auth_refresh_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    LoginLocked,
    SessionRevoked,
    RefreshReuseDetected,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    EmailVerificationSent,
    EmailVerified,
    SigningKeyRotated,
    SigningKeyRevoked,
    MfaEnabled,
    MfaDisabled,
    MfaVerified,
    MfaFailed,
    RecoveryCodesRenewed,
    PasskeyAdded,
    PasskeyRenamed,
    PasskeyRemoved,
    PasskeyFailed,
    PasskeyCloneDetected,
    UserDisabled,
    UserEnabled,
    UserErased,
    EmailVerificationRequested,
}

impl EventName {
    pub const ALL: [EventName; 27] = [
        Self::UserRegistered,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginLocked,
        Self::SessionRevoked,
        Self::RefreshReuseDetected,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailVerificationSent,
        Self::EmailVerified,
        Self::SigningKeyRotated,
        Self::SigningKeyRevoked,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaVerified,
        Self::MfaFailed,
        Self::RecoveryCodesRenewed,
        Self::PasskeyAdded,
        Self::PasskeyRenamed,
        Self::PasskeyRemoved,
        Self::PasskeyFailed,
        Self::PasskeyCloneDetected,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserErased,
        Self::EmailVerificationRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoginLocked => "login.locked",
            Self::SessionRevoked => "session.revoked",
            Self::RefreshReuseDetected => "refresh.reuse_detected",
            Self::PasswordChanged => "password.changed",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset => "password.reset",
            Self::EmailVerificationSent => "email.verification_sent",
            Self::EmailVerified => "email.verified",
            Self::SigningKeyRotated => "signing_key.rotated",
            Self::SigningKeyRevoked => "signing_key.revoked",
            Self::MfaEnabled => "mfa.enabled",
            Self::MfaDisabled => "mfa.disabled",
            Self::MfaVerified => "mfa.verified",
            Self::MfaFailed => "mfa.failed",
            Self::RecoveryCodesRenewed => "mfa.recovery_codes_renewed",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRenamed => "passkey.renamed",
            Self::PasskeyRemoved => "passkey.removed",
            Self::PasskeyFailed => "passkey.failed",
            Self::PasskeyCloneDetected => "passkey.clone_detected",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserErased => "user.erased",
            Self::EmailVerificationRequested => "email.verification_requested",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

/// Who made the request an event came from, as far as the service can tell.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's address as resolved through the trusted proxies.
    pub ip: Option<String>,
    /// The `User-Agent` text, kept for the session list only; events keep its family.
    pub user_agent: Option<String>,
    /// The request's trace (32 hex digits), as its `traceresponse` names it.
    pub trace_id: Option<String>,
}

/// One event as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// A UUIDv7.
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub name: EventName,
    /// Unknown for a failed login with an unknown address, and for signing-key events.
    pub user_id: Option<UserId>,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    /// A browser and OS family ("Firefox on Linux"), never the `User-Agent` text.
    pub browser: Option<String>,
    /// Why, or by what: `invalid_credentials`, `logout`, `reuse`, `schedule` … (a session's
    /// revocation uses the labels of `auth_sessions_revoked_total`).
    pub reason: Option<&'static str>,
    pub trace_id: Option<String>,
    /// Who did it when an operator did: the admin key's name, or `cli:<login>`.
    pub actor: Option<String>,
}

impl SecurityEvent {
    /// An event `name` at `at`, caused by `client`.
    pub fn new(name: EventName, at: OffsetDateTime, client: &Client) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            name,
            user_id: None,
            session_id: None,
            ip: client.ip.clone(),
            browser: client
                .user_agent
                .is_some()
                .then(|| super::user_agent::describe(client.user_agent.as_deref())),
            reason: None,
            trace_id: client.trace_id.clone(),
            actor: None,
        }
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    pub fn session(mut self, session: Uuid) -> Self {
        self.session_id = Some(session);
        self
    }

    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(actor.to_string());
        self
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// Every reason an event may carry, so the stored text maps back to the same static string.
pub const REASONS: [&str; 30] = [
    "invalid_credentials",
    "unverified",
    "locked",
    "failed_logins",
    "wrong_current_password",
    "logout",
    "user",
    "evicted",
    "password_change",
    "password_reset",
    "reuse",
    "user_gone",
    "schedule",
    "manual",
    "emergency",
    "revoke",
    "mfa_enabled",
    "mfa_disabled",
    "totp",
    "recovery_code",
    "wrong_code",
    "replayed_code",
    "passkey",
    "passkey_invalid",
    "unknown_passkey",
    "counter_regression",
    "passkey_removed",
    "admin",
    "disabled",
    "mfa_reset",
];

/// The static reason `text` names, if it is one.
pub fn reason_of(text: &str) -> Option<&'static str> {
    REASONS.into_iter().find(|r| *r == text)
}
