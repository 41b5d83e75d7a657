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
}

impl Assurance {
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Self::Password => &["pwd"],
            Self::PasswordAndOtp => &["pwd", "otp"],
        }
    }

    pub fn acr(self) -> &'static str {
        match self {
            Self::Password => "aal1",
            Self::PasswordAndOtp => "aal2",
        }
    }
}
