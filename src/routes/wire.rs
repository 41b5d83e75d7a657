//! What the routes answer: the wire shapes of the flows' outcomes. The domain and the stores
//! derive no schema; what a client sees is decided here.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::SignedIn;
use crate::domain::SecurityEvent;
use crate::envelope::Envelope;

/// A user as clients see it. The password hash never leaves the store layer in this type.
#[derive(Serialize, ToSchema)]
pub(super) struct User {
    id: Uuid,
    username: String,
    email: String,
    /// Whether the owner of `email` confirmed it by following a verification link.
    email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// False for an account signed up with a passkey alone (the reset mail sets a password).
    has_password: bool,
    mfa: Mfa,
}

/// The user's second factor.
#[derive(Serialize, ToSchema)]
pub(super) struct Mfa {
    /// An authenticator app is confirmed: logins need its code.
    totp: bool,
    /// Unused recovery codes.
    recovery_codes_left: u32,
    /// Registered passkeys (`/auth/passkeys`).
    passkeys: u32,
}

impl From<&crate::domain::User> for User {
    fn from(user: &crate::domain::User) -> Self {
        Self {
            id: user.id.as_uuid(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            created_at: user.created_at,
            has_password: user.has_password,
            mfa: Mfa {
                totp: user.second_factor.totp,
                recovery_codes_left: user.second_factor.recovery_codes_left,
                passkeys: user.second_factor.passkeys,
            },
        }
    }
}

/// The user as a login answers it (the original demo's fields).
#[derive(Serialize, ToSchema)]
pub(super) struct PublicUser {
    id: Uuid,
    username: String,
    email: String,
    email_verified: bool,
}

impl From<&crate::domain::User> for PublicUser {
    fn from(user: &crate::domain::User) -> Self {
        Self {
            id: user.id.as_uuid(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
        }
    }
}

/// `{"user": {...}, "access_token": ...}` as the original demo answered, plus the token's lifetime.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionStarted {
    user: PublicUser,
    /// The access JWT: send it as `Authorization: Bearer …`; keep it in memory only.
    access_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
}

impl From<&SignedIn> for SessionStarted {
    fn from(signed_in: &SignedIn) -> Self {
        Self {
            user: PublicUser::from(&signed_in.user),
            access_token: signed_in.access.token.clone(),
            token_type: "Bearer",
            expires_in: signed_in.access.expires_in,
        }
    }
}

/// Registered under `REQUIRE_VERIFIED_EMAIL=true`: no session until the address is confirmed.
#[derive(Serialize, ToSchema)]
pub(super) struct VerificationPending {
    pub user: PublicUser,
    pub message: &'static str,
}

/// A new access token from the refresh cookie.
#[derive(Serialize, ToSchema)]
pub(super) struct Refreshed {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// A session as its owner sees it in the list.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionInfo {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ListedSession {
    #[serde(flatten)]
    session: SessionInfo,
    /// Whether this is the session of the access token making the request.
    current: bool,
}

impl ListedSession {
    pub fn of(session: crate::store::sessions::SessionInfo, current: Uuid) -> Self {
        Self {
            current: session.id == current,
            session: SessionInfo {
                id: session.id,
                created_at: session.created_at,
                last_used_at: session.last_used_at,
                expires_at: session.expires_at,
                user_agent: session.user_agent,
                ip: session.ip,
            },
        }
    }
}

/// One security event as its user sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct Event {
    id: Uuid,
    /// `user.registered`, `login.succeeded`, `login.failed`, `login.locked`, `session.revoked`,
    /// `password.changed`, `email.verified`, `mfa.enabled`, `passkey.added`, `user.disabled` …
    /// (the README's "Security events" lists them all).
    #[schema(example = "login.succeeded")]
    name: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// Why, or by what: `invalid_credentials`, `locked`, `logout`, `reuse`, `password_reset` …
    reason: Option<&'static str>,
    /// The session it concerns, when one does (as in `GET /auth/sessions`).
    session_id: Option<Uuid>,
    /// The client's address.
    ip: Option<String>,
    /// The client's browser and OS family, e.g. "Firefox on Linux".
    browser: Option<String>,
    /// Set when an operator did it: the admin key's name, or `cli:<login>`.
    actor: Option<String>,
}

impl From<SecurityEvent> for Event {
    fn from(event: SecurityEvent) -> Self {
        Self {
            id: event.id,
            name: event.name.as_str(),
            at: event.at,
            reason: event.reason,
            session_id: event.session_id,
            ip: event.ip,
            browser: event.browser,
            actor: event.actor,
        }
    }
}

/// A page of the caller's events, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// What ending sessions answers: how many ended.
#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    pub revoked: u32,
}

/// 202 with `message`: the work was queued; the answer says nothing about whether it applied.
pub(super) fn accepted(message: &'static str) -> HttpResponse {
    HttpResponse::Accepted().json(Envelope::new(StatusCode::ACCEPTED, message))
}

/// A passkey as its owner (or an operator) sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct ListedPasskey {
    id: Uuid,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<time::OffsetDateTime>,
    /// The authenticator may sync it to the owner's other devices (`amr` says `swk`).
    backup_eligible: bool,
    /// It is synced now.
    backed_up: bool,
}

impl From<crate::accounts::PasskeyView> for ListedPasskey {
    fn from(p: crate::accounts::PasskeyView) -> Self {
        use crate::clock::at_ms;
        Self {
            id: p.id,
            name: p.name,
            created_at: at_ms(p.created_at_ms),
            last_used_at: p.last_used_at_ms.map(at_ms),
            backup_eligible: p.backup_eligible,
            backed_up: p.backed_up,
        }
    }
}
