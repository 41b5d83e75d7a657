//! A user's second factor as the account shows it, and a second factor as a client presents it.

use secrecy::SecretString;

/// The user's second factor, as `/auth/me` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondFactor {
    /// A confirmed TOTP factor.
    pub totp: bool,
    pub recovery_codes_left: u32,
    /// Registered passkeys.
    pub passkeys: u32,
}

/// A second factor as the client presented it: a code of the authenticator app, or a
/// recovery code.
pub enum Proof {
    Totp(String),
    RecoveryCode(SecretString),
}

impl Proof {
    /// Every method, as a login's challenge offers them.
    pub const METHODS: [&'static str; 2] = ["totp", "recovery_code"];
    /// Every method when the user also has a passkey (`/auth/passkeys/login/start`).
    pub const METHODS_WITH_PASSKEY: [&'static str; 3] = ["totp", "recovery_code", "passkey"];

    /// The `method` label of `auth_mfa_verifications_total`, and the event's reason.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
        }
    }
}
