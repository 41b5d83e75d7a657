//! Request and error schemas the handlers' documentation shares: the string rules the domain
//! applies, the error envelope, and the answers every route may give.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::domain::{Email, Username};

/// Strings with the rules the handlers apply, so that the document describes exactly what is
/// accepted (request fields name them with `value_type`).
macro_rules! string_schema {
    ($(#[doc = $doc:literal])* $name:ident: $build:expr) => {
        $(#[doc = $doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let build: fn(ObjectBuilder) -> ObjectBuilder = $build;
                build(ObjectBuilder::new().schema_type(Type::String).description(Some(concat!($($doc),*).trim())))
                    .build()
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

string_schema! {
    /// An email address, ASCII (an IDN domain in its punycode form); surrounding spaces are trimmed and letters lower-cased.
    EmailAddress: |s| s.pattern(Some(Email::PATTERN)).max_length(Some(254)).examples(["ada@example.com"])
}
string_schema! {
    /// A display name: no control characters, not only spaces (trimmed).
    DisplayName: |s| s.pattern(Some(Username::PATTERN)).max_length(Some(Username::MAX_CHARS)).examples(["Ada"])
}
string_schema! {
    /// A new password: 8 to 128 characters, not one of the 10,000 most common passwords.
    NewPasswordText: |s| s
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .examples(["analytical engine"])
}
string_schema! {
    /// A password offered to be checked: 1 to 128 characters.
    PasswordText: |s| s
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(1))
        .max_length(Some(128))
        // The registration example's password, so that "Try it out" logs in after it.
        .examples(["analytical engine"])
}
string_schema! {
    /// The token of a mailed link: 256 random bits in base64url.
    LinkToken: |s| s.pattern(Some("^[A-Za-z0-9_-]{43}$"))
}

string_schema! {
    /// A passkey ceremony's id, as its start answered it: opaque, single use, valid 2 minutes.
    CeremonyId: |s| s.pattern(Some("^[A-Za-z0-9_-]{43}$"))
}
string_schema! {
    /// A passkey's name: up to 64 characters, no control characters; "Passkey" when empty.
    PasskeyName: |s| s.max_length(Some(64)).examples(["Laptop"])
}

string_schema! {
    /// A 6-digit code of the authenticator app (RFC 6238, 30-second steps); each step's code is accepted once.
    TotpCode: |s| s.pattern(Some("^[0-9]{6}$")).examples(["123456"])
}
string_schema! {
    /// A recovery code as shown at confirmation, `xxxx-xxxx-xxxx-xxxx` (letter case, dashes and spaces do not matter); each works once.
    RecoveryCodeText: |s| s.max_length(Some(64)).examples(["ABCD-EFGH-IJKL-MNOP"])
}

/// The envelope of every error.
#[derive(ToSchema)]
// A schema only: `envelope` renders the errors themselves.
#[allow(dead_code)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// The HTTP status again.
    pub status: u16,
    pub content: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable: clients branch on it (README "Error codes").
    #[schema(example = "USER_NOT_FOUND")]
    pub error_code: String,
    /// Fixed text per code, for people.
    pub message: String,
    /// The error family (as the original demo named them): UserError, AuthError, DbError, HostError, CritError.
    pub error_type: String,
    /// The offending field of a `VALIDATION_ERROR`.
    pub field: Option<String>,
    /// The backing service of a 503: `database` or `session_store`.
    pub dependency: Option<String>,
    /// `MFA_REQUIRED` only: the password was right, and the login goes on at `/auth/mfa/verify`.
    pub mfa: Option<MfaStep>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MfaStep {
    /// Opaque and single use: send it to `/auth/mfa/verify` with a code.
    pub challenge: String,
    /// `totp` and `recovery_code`, and `passkey` when the user has one
    /// (`/auth/passkeys/login/start` with this challenge).
    pub methods: Vec<String>,
    /// Seconds the challenge lives.
    pub expires_in: u64,
}

/// What any route may answer besides its own outcomes.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Common {
    /// `RATE_LIMITED` (per-IP limit) or `ACCOUNT_LOCKED` (login lockout).
    #[response(
        status = 429,
        headers(
            ("Retry-After" = u64, description = "Seconds to wait"),
            ("RateLimit-Limit" = u64, description = "The limit that was hit (rate limits only)"),
            ("RateLimit-Remaining" = u64, description = "Requests left in the window"),
            ("RateLimit-Reset" = u64, description = "Seconds until the window resets"),
        )
    )]
    TooMany(ErrorEnvelope),
    /// `INTERNAL_ERROR`: a bug; the cause is logged, never returned.
    #[response(status = 500)]
    Internal(ErrorEnvelope),
    /// `SERVICE_UNAVAILABLE`: PostgreSQL/SQLite or Redis did not answer in time; `dependency`
    /// names it.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Always 1")))]
    Unavailable(ErrorEnvelope),
}

/// What a route with a JSON body answers to a bad one.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BadBody {
    /// `VALIDATION_ERROR`: malformed JSON, a missing or wrong-typed field, a value outside the
    /// rules; `field` names it.
    #[response(status = 400)]
    Invalid(ErrorEnvelope),
    /// `PAYLOAD_TOO_LARGE`: over `BODY_LIMIT_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorEnvelope),
    /// `UNSUPPORTED_MEDIA_TYPE`: not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorEnvelope),
}

/// What a route behind the Bearer token answers without a valid one.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NeedsBearer {
    /// `PROTECTED_ROUTE` (no Authorization header), `INVALID_AUTH_HEADER`,
    /// `EXPIRED_ACCESS_TOKEN` (refresh, then retry) or `INVALID_ACCESS_TOKEN` (bad signature,
    /// claims, or a revoked session).
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
}
