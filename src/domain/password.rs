use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::ValidationError;

/// The 10,000 most common passwords: SecLists' `10-million-password-list-top-10000` (MIT,
/// Daniel Miessler and Jason Haddix, from Mark Burnett's data set), lower-cased so the check
/// is case-insensitive.
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_lowercase)
        .collect()
});

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

/// A password chosen at registration: 8..=128 characters and not a common one.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: SecretString) -> Result<Self, ValidationError> {
        let chars = raw.expose_secret().chars().count();
        if chars < MIN_CHARS {
            return Err(ValidationError::new(
                "password",
                "password must have at least 8 characters",
            ));
        }
        if chars > MAX_CHARS {
            return Err(ValidationError::new(
                "password",
                "password must have at most 128 characters",
            ));
        }
        if COMMON.contains(raw.expose_secret().to_lowercase().as_str()) {
            return Err(ValidationError::new(
                "password",
                "password is too common, choose another",
            ));
        }
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A password offered at login. Only bounded (so nobody makes us hash a megabyte); the policy
/// of [`NewPassword`] is not re-applied, as that would tell which rule an old password broke.
pub struct LoginPassword(SecretString);

impl LoginPassword {
    pub fn parse(raw: SecretString) -> Result<Self, ValidationError> {
        let chars = raw.expose_secret().chars().count();
        if chars == 0 {
            return Err(ValidationError::new("password", "password is required"));
        }
        if chars > MAX_CHARS {
            return Err(ValidationError::new(
                "password",
                "password must have at most 128 characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(p: &str) -> Result<NewPassword, ValidationError> {
        NewPassword::parse(SecretString::from(p))
    }

    #[test]
    fn policy_table() {
        let cases = [
            (
                "fishcake",
                true,
                "the seed's Thunder collection password must keep working",
            ),
            ("correct horse battery staple", true, "a passphrase"),
            ("short", false, "under 8 characters"),
            ("password", false, "the most common password"),
            ("PassWord", false, "common list is case-insensitive"),
            ("12345678", false, "common digits"),
            ("qwertyuiop", false, "keyboard walk on the list"),
        ];
        for (password, ok, why) in cases {
            assert_eq!(new(password).is_ok(), ok, "{why}: {password}");
        }
        assert!(new(&"x".repeat(128)).is_ok(), "128 characters is the maximum");
        assert!(new(&"x".repeat(129)).is_err(), "129 characters is too long");
        assert!(new(&"ü".repeat(8)).is_ok(), "length counts characters, not bytes");
    }

    #[test]
    fn list_is_loaded() {
        // 10,000 lines; a few differ only in letter case.
        assert!(COMMON.len() > 9_900, "{}", COMMON.len());
    }

    #[test]
    fn login_password_is_only_bounded() {
        assert!(LoginPassword::parse(SecretString::from("")).is_err());
        assert!(LoginPassword::parse(SecretString::from("password")).is_ok());
        assert!(LoginPassword::parse(SecretString::from("x".repeat(129))).is_err());
    }
}
