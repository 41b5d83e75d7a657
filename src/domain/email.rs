use super::ValidationError;

/// A trimmed, lower-cased email address with a plausible shape. Lower-casing makes lookups and
/// the unique index case-insensitive, so `Bob@X.io` and `bob@x.io` are one account.
///
/// ASCII only: the address must be deliverable through any SMTP relay (an internationalised
/// local part needs SMTPUTF8), and browsers' email inputs already give an IDN domain in its
/// punycode form (`xn--…`). [`Email::PATTERN`] is the same rule as a regular expression, for the
/// OpenAPI document (the schemathesis run in CI checks that the two agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// What is trimmed around an address (only these, as the pattern says).
const SPACE: [char; 4] = [' ', '\t', '\n', '\r'];
const MAX_CHARS: usize = 254;

impl Email {
    /// [`Email::parse`]'s rule as an ECMA-262 / Python regular expression (with `maxLength` 254).
    pub const PATTERN: &str = r"^[ \t\n\r]*(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?[ \t\n\r]*$";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = |why: &str| ValidationError::new("email", format!("email {why}"));
        if raw.chars().count() > MAX_CHARS {
            return Err(invalid("is longer than 254 characters"));
        }
        let email = raw.trim_matches(SPACE);
        if email.is_empty() {
            return Err(invalid("is required"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("needs an @"));
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok || !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(invalid("is not a valid address"));
        }
        // Lower-cased only once known to be ASCII: some non-ASCII letters lower-case to ASCII.
        Ok(Self(email.to_ascii_lowercase()))
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
    fn accepts_plus_addressing_and_punycode_but_not_other_unicode() {
        for raw in [
            "a+tag@example.com",
            "jose@xn--exmple-cua.org",
            "o'neil@example.co.uk",
            " A@B.io\n",
        ] {
            assert!(Email::parse(raw).is_ok(), "{raw}");
        }
        for raw in [
            "josé@example.org",
            "jose@exämple.org",
            "\u{212a}@example.org",
            "\u{3000}a@example.org",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw}");
        }
        assert_eq!(Email::parse(" Bob@X.io ").unwrap().as_str(), "bob@x.io");
    }
}
