use super::ValidationError;

/// A trimmed, lower-cased email address with a plausible shape. Lower-casing makes lookups and
/// the unique index case-insensitive, so `Bob@X.io` and `bob@x.io` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = |why: &str| ValidationError::new("email", format!("email {why}"));
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(invalid("is required"));
        }
        if email.len() > 254 {
            return Err(invalid("is longer than 254 bytes"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("needs an @"));
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok || !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(invalid("is not a valid address"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse("  JohnDoe@Gmail.COM ").unwrap().as_str(),
            "johndoe@gmail.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        let cases = [
            ("", "empty"),
            ("   ", "only spaces"),
            ("plainaddress", "no @"),
            ("@example.com", "no local part"),
            ("a@", "no domain"),
            ("a@localhost", "domain without a dot"),
            ("a b@example.com", "space in local part"),
            ("a@exa mple.com", "space in domain"),
            ("a..b@example.com", "double dot"),
            ("a@-example.com", "label starts with hyphen"),
            ("a@example..com", "empty label"),
            ("a@b@example.com", "two @"),
            ("a\u{0}@example.com", "control character"),
        ];
        for (raw, why) in cases {
            assert!(Email::parse(raw).is_err(), "{why}: {raw:?} should be rejected");
        }
    }

    #[test]
    fn accepts_unicode_and_plus_addressing() {
        for raw in ["a+tag@example.com", "josé@exämple.org", "o'neil@example.co.uk"] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
    }
}
