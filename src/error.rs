//! One error type for every flow and handler, with its stable code, fixed text and HTTP status;
//! `envelope` renders it as the seed's
//! `{"success":false,"status":N,"content":{"error_code","message","error_type"}}`.
//!
//! Client-facing text is fixed per variant. The cause of a 5xx (driver errors, SQL text) goes
//! to the log with its whole chain and never into the body.

use crate::auth::access_token::TokenError;
use crate::domain::ValidationError;
use crate::store::users::InsertError;
use crate::store::{Dependency, StoreError};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no Authorization header")]
    ProtectedRoute,
    #[error("Authorization header is not a Bearer token")]
    InvalidAuthHeader,
    #[error("access token expired")]
    ExpiredAccessToken,
    #[error("access token invalid")]
    InvalidAccessToken,
    #[error("no jwt cookie")]
    NoRefreshCookie,
    #[error("empty jwt cookie")]
    NoRefreshToken,
    #[error("refresh token expired")]
    ExpiredRefreshToken,
    #[error("refresh token unknown or retired")]
    InvalidRefreshToken,
    #[error("retired refresh token presented again")]
    RefreshTokenReused,
    #[error("bad credentials")]
    UserNotFound,
    #[error("current password wrong")]
    InvalidCurrentPassword,
    #[error("email taken")]
    EmailTaken,
    #[error("reset token unknown or used")]
    InvalidResetToken,
    #[error("reset token expired")]
    ExpiredResetToken,
    #[error("verification token unknown or used")]
    InvalidVerifyToken,
    #[error("verification token expired")]
    ExpiredVerifyToken,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("email already verified")]
    EmailAlreadyVerified,
    #[error("mail is not configured")]
    MailDisabled,
    #[error("invalid field {field}: {message}")]
    Validation { field: String, message: String },
    #[error("session not found")]
    SessionNotFound,
    /// The password was right; the login goes on at `/auth/mfa/verify` with this challenge.
    #[error("second factor required")]
    MfaRequired {
        challenge: secrecy::SecretString,
        expires_in_secs: u64,
        /// The user has a passkey, which may answer the challenge too.
        passkey: bool,
    },
    #[error("second-factor challenge unknown, used or expired")]
    MfaChallengeInvalid,
    #[error("second-factor code wrong or already used")]
    MfaCodeInvalid,
    #[error("second factor required for this change")]
    MfaCodeRequired,
    #[error("a second factor is already active")]
    MfaAlreadyEnabled,
    #[error("no second factor to confirm or remove")]
    MfaNotEnabled,
    #[error("second factors are not configured")]
    MfaUnavailable,
    #[error("invalid admin key")]
    InvalidAdminKey,
    #[error("no such user")]
    NoSuchUser,
    #[error("account disabled")]
    AccountDisabled,
    #[error("passkeys are not configured")]
    PasskeysUnavailable,
    #[error("passkey ceremony unknown, used, expired or another user's")]
    PasskeyCeremonyInvalid,
    #[error("the authenticator's answer does not verify")]
    PasskeyInvalid,
    #[error("passkey sign-in refused")]
    PasskeyRefused,
    #[error("this passkey is already registered")]
    PasskeyTaken,
    #[error("no such passkey")]
    PasskeyNotFound,
    #[error("the last way into the account")]
    PasskeyLastWayIn,
    #[error("body too large")]
    PayloadTooLarge,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("route not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("account locked")]
    AccountLocked { retry_after_secs: u64 },
    #[error("cross-site request refused")]
    CsrfRejected,
    #[error("CORS request from an origin that is not allowed")]
    CorsRejected,
    #[error("request took too long")]
    RequestTimeout,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("{} unavailable", .dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        #[source]
        source: anyhow::Error,
    },
    /// This instance got SIGTERM and is waiting out `SHUTDOWN_DELAY` (readiness only).
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Stable code, the seed's error type, and the fixed message clients see.
    pub fn describe(&self) -> (&'static str, &'static str, &str) {
        use ApiError::*;
        match self {
            ProtectedRoute => (
                "PROTECTED_ROUTE",
                "AuthError",
                "this route needs `Authorization: Bearer <access_token>`",
            ),
            InvalidAuthHeader => (
                "INVALID_AUTH_HEADER",
                "AuthError",
                "the Authorization header must be `Bearer <access_token>`",
            ),
            ExpiredAccessToken => (
                "EXPIRED_ACCESS_TOKEN",
                "AuthError",
                "your access token has expired, please refresh at /auth/refreshAccessToken",
            ),
            InvalidAccessToken => ("INVALID_ACCESS_TOKEN", "AuthError", "your access token is invalid"),
            NoRefreshCookie => (
                "NO_JWT_REFTOKEN_COOKIE",
                "AuthError",
                "no `jwt` refresh token cookie was sent",
            ),
            NoRefreshToken => (
                "NO_REFRESH_TOKEN",
                "AuthError",
                "the `jwt` cookie holds no refresh token",
            ),
            ExpiredRefreshToken => (
                "EXPIRED_REFRESH_TOKEN",
                "AuthError",
                "your refresh token has expired, please log in again",
            ),
            InvalidRefreshToken => (
                "INVALID_REFRESH_TOKEN",
                "AuthError",
                // Never-issued, rotated away or ended: the answer cannot tell which, so it names none.
                "this refresh token is not valid (unknown, replaced or its session ended): please log in again",
            ),
            RefreshTokenReused => (
                "REFRESH_TOKEN_REUSED",
                "AuthError",
                "this refresh token was already used; the session has been revoked, please log in again",
            ),
            UserNotFound => ("USER_NOT_FOUND", "DbError", "no user with this email and password"),
            InvalidCurrentPassword => (
                "INVALID_CURRENT_PASSWORD",
                "AuthError",
                "the current password is not correct",
            ),
            EmailTaken => ("EMAIL_TAKEN", "UserError", "an account with this email already exists"),
            InvalidResetToken => (
                "INVALID_RESET_TOKEN",
                "UserError",
                "this password-reset link is not valid or was already used; ask for a new one",
            ),
            ExpiredResetToken => (
                "EXPIRED_RESET_TOKEN",
                "UserError",
                "this password-reset link has expired; ask for a new one",
            ),
            InvalidVerifyToken => (
                "INVALID_VERIFY_TOKEN",
                "UserError",
                "this verification link is not valid or was already used",
            ),
            ExpiredVerifyToken => (
                "EXPIRED_VERIFY_TOKEN",
                "UserError",
                "this verification link has expired; ask for a new one",
            ),
            EmailNotVerified => (
                "EMAIL_NOT_VERIFIED",
                "AuthError",
                "confirm your email address first: follow the link we mailed you",
            ),
            EmailAlreadyVerified => (
                "EMAIL_ALREADY_VERIFIED",
                "UserError",
                "this email address is already verified",
            ),
            MailDisabled => (
                "MAIL_DISABLED",
                "HostError",
                "this server sends no mail (SMTP_URL is not set)",
            ),
            Validation { message, .. } => ("VALIDATION_ERROR", "UserError", message),
            SessionNotFound => ("SESSION_NOT_FOUND", "UserError", "no such session"),
            MfaRequired { .. } => (
                "MFA_REQUIRED",
                "AuthError",
                "the password is right; send a code of the second factor to /auth/mfa/verify with this challenge",
            ),
            MfaChallengeInvalid => (
                "MFA_CHALLENGE_INVALID",
                "AuthError",
                "this sign-in attempt is unknown, used or expired: log in again",
            ),
            MfaCodeInvalid => (
                "MFA_CODE_INVALID",
                "AuthError",
                "this code is wrong, or was already used: wait for the next one",
            ),
            MfaCodeRequired => (
                "MFA_CODE_REQUIRED",
                "AuthError",
                "this change needs a code of your second factor (`code`) or a recovery code (`recovery_code`)",
            ),
            MfaAlreadyEnabled => (
                "MFA_ALREADY_ENABLED",
                "UserError",
                "an authenticator is already active: remove it first",
            ),
            MfaNotEnabled => (
                "MFA_NOT_ENABLED",
                "UserError",
                "there is no authenticator to confirm or remove: enrol one first",
            ),
            MfaUnavailable => (
                "MFA_UNAVAILABLE",
                "HostError",
                "second factors need KEYS_ENCRYPTION_KEY on this server",
            ),
            InvalidAdminKey => ("INVALID_ADMIN_KEY", "AuthError", "this admin key is unknown or revoked"),
            NoSuchUser => ("NO_SUCH_USER", "UserError", "no user has this id"),
            AccountDisabled => (
                "ACCOUNT_DISABLED",
                "AuthError",
                "this account is disabled: contact support",
            ),
            PasskeysUnavailable => (
                "PASSKEYS_UNAVAILABLE",
                "HostError",
                "passkeys are off on this server (WEBAUTHN_RP_ID names no domain)",
            ),
            PasskeyCeremonyInvalid => (
                "PASSKEY_CEREMONY_INVALID",
                "UserError",
                "this passkey ceremony is unknown, used, expired or not yours: start again",
            ),
            PasskeyInvalid => (
                "PASSKEY_INVALID",
                "UserError",
                "the authenticator's answer does not verify for this site",
            ),
            PasskeyRefused => ("PASSKEY_REFUSED", "AuthError", "this passkey cannot sign in"),
            PasskeyTaken => (
                "PASSKEY_TAKEN",
                "UserError",
                "this authenticator's passkey is already registered",
            ),
            PasskeyNotFound => ("PASSKEY_NOT_FOUND", "UserError", "no such passkey"),
            PasskeyLastWayIn => (
                "PASSKEY_LAST_WAY_IN",
                "UserError",
                "this passkey is the only way into the account: set a password or add another passkey first",
            ),
            PayloadTooLarge => ("PAYLOAD_TOO_LARGE", "UserError", "the request body is too large"),
            UnsupportedMediaType => (
                "UNSUPPORTED_MEDIA_TYPE",
                "UserError",
                "send the body as application/json",
            ),
            NotFound => ("NOT_FOUND", "HostError", "no such route"),
            RateLimited { .. } => (
                "RATE_LIMITED",
                "UserError",
                "too many requests, retry after the Retry-After delay",
            ),
            AccountLocked { .. } => (
                "ACCOUNT_LOCKED",
                "AuthError",
                "too many failed logins for this account, retry after the Retry-After delay",
            ),
            CsrfRejected => (
                "CSRF_REJECTED",
                "AuthError",
                "this request did not come from an allowed origin",
            ),
            CorsRejected => (
                "CORS_REJECTED",
                "AuthError",
                "this origin, method or header is not allowed to call the API (CORS_ALLOWED_ORIGINS)",
            ),
            RequestTimeout => ("REQUEST_TIMEOUT", "UserError", "the request took too long"),
            HeadersTooLarge => ("HEADERS_TOO_LARGE", "UserError", "the request headers are too large"),
            MethodNotAllowed { .. } => (
                "METHOD_NOT_ALLOWED",
                "HostError",
                "this route does not accept that method",
            ),
            Unavailable { .. } => (
                "SERVICE_UNAVAILABLE",
                "CritError",
                "a backing service is unavailable, retry shortly",
            ),
            ShuttingDown => (
                "SHUTTING_DOWN",
                "HostError",
                "this instance is shutting down; send new requests elsewhere",
            ),
            Internal(_) => ("INTERNAL_ERROR", "CritError", "internal server error"),
        }
    }

    pub fn code(&self) -> &'static str {
        self.describe().0
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            ProtectedRoute | InvalidAuthHeader | ExpiredAccessToken | InvalidAccessToken | NoRefreshCookie
            | NoRefreshToken | ExpiredRefreshToken | InvalidRefreshToken | RefreshTokenReused | UserNotFound => 401,
            MfaRequired { .. } | MfaChallengeInvalid | MfaCodeInvalid => 401,
            MfaCodeRequired => 403,
            MfaAlreadyEnabled | MfaNotEnabled => 409,
            MfaUnavailable => 404,
            PasskeysUnavailable | PasskeyNotFound | NoSuchUser => 404,
            InvalidAdminKey => 401,
            PasskeyCeremonyInvalid | PasskeyInvalid => 400,
            PasskeyRefused => 401,
            PasskeyTaken | PasskeyLastWayIn => 409,
            EmailTaken | EmailAlreadyVerified => 409,
            InvalidResetToken | ExpiredResetToken | InvalidVerifyToken | ExpiredVerifyToken => 400,
            EmailNotVerified | AccountDisabled => 403,
            // Switched off by configuration: not offered here, and no server fault to alert on.
            MailDisabled => 404,
            Validation { .. } => 400,
            SessionNotFound | NotFound => 404,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            MethodNotAllowed { .. } => 405,
            RateLimited { .. } | AccountLocked { .. } => 429,
            CsrfRejected | CorsRejected | InvalidCurrentPassword => 403,
            RequestTimeout => 408,
            HeadersTooLarge => 431,
            Unavailable { .. } | ShuttingDown => 503,
            Internal(_) => 500,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(dependency, source) => ApiError::Unavailable { dependency, source },
            StoreError::Failed(_, source) => ApiError::Internal(source),
        }
    }
}

impl From<InsertError> for ApiError {
    fn from(e: InsertError) -> Self {
        match e {
            InsertError::EmailTaken => ApiError::EmailTaken,
            InsertError::PasskeyTaken => ApiError::PasskeyTaken,
            InsertError::Store(e) => e.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::validation(e.field, e.message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => ApiError::ExpiredAccessToken,
            TokenError::Invalid => ApiError::InvalidAccessToken,
        }
    }
}
