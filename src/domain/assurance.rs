//! How strongly a session's user proved who they are: what access tokens say in `amr` (RFC
//! 8176 method names) and `acr` (the NIST SP 800-63B authenticator assurance level), so that a
//! resource server can require a second factor for what it guards.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assurance {
    /// A password alone: `amr ["pwd"]`, `acr "aal1"`.
    #[default]
    Password,
    /// A password and a one-time code: `amr ["pwd", "otp"]`, `acr "aal2"`.
    PasswordAndOtp,
    /// A passkey with user verification: something held and something known or biometric,
    /// so multi-factor by itself. `amr ["hwk", "user"]` or `["swk", "user"]`, `acr "aal2"`.
    Passkey(KeyKind),
    /// A password, then a passkey as the second step: `amr ["pwd", "hwk" | "swk", "user"]`.
    PasswordAndPasskey(KeyKind),
}

/// Where a passkey's private key lives, as its flags tell: a key that may be synced to other
/// devices (backup eligible) is software-held (`swk`), one bound to its device hardware-held
/// (`hwk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Hardware,
    Software,
}

impl KeyKind {
    pub fn of(backup_eligible: bool) -> Self {
        if backup_eligible {
            Self::Software
        } else {
            Self::Hardware
        }
    }
}

impl Assurance {
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Self::Password => &["pwd"],
            Self::PasswordAndOtp => &["pwd", "otp"],
            Self::Passkey(KeyKind::Hardware) => &["hwk", "user"],
            Self::Passkey(KeyKind::Software) => &["swk", "user"],
            Self::PasswordAndPasskey(KeyKind::Hardware) => &["pwd", "hwk", "user"],
            Self::PasswordAndPasskey(KeyKind::Software) => &["pwd", "swk", "user"],
        }
    }

    pub fn acr(self) -> &'static str {
        match self {
            Self::Password => "aal1",
            _ => "aal2",
        }
    }

    /// How a session stores it; sessions written before passkeys hold `aal1` or `aal2`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Password => "aal1",
            Self::PasswordAndOtp => "aal2",
            Self::Passkey(KeyKind::Hardware) => "hwk",
            Self::Passkey(KeyKind::Software) => "swk",
            Self::PasswordAndPasskey(KeyKind::Hardware) => "pwd+hwk",
            Self::PasswordAndPasskey(KeyKind::Software) => "pwd+swk",
        }
    }

    /// The inverse of [`Self::code`]; anything unknown is the weakest.
    pub fn from_code(code: Option<&str>) -> Self {
        match code {
            Some("aal2") => Self::PasswordAndOtp,
            Some("hwk") => Self::Passkey(KeyKind::Hardware),
            Some("swk") => Self::Passkey(KeyKind::Software),
            Some("pwd+hwk") => Self::PasswordAndPasskey(KeyKind::Hardware),
            Some("pwd+swk") => Self::PasswordAndPasskey(KeyKind::Software),
            _ => Self::Password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assurance_survives_its_stored_code() {
        for kind in [KeyKind::Hardware, KeyKind::Software] {
            for a in [
                Assurance::Password,
                Assurance::PasswordAndOtp,
                Assurance::Passkey(kind),
                Assurance::PasswordAndPasskey(kind),
            ] {
                assert_eq!(Assurance::from_code(Some(a.code())), a);
            }
        }
        assert_eq!(Assurance::from_code(None), Assurance::Password);
    }
}
