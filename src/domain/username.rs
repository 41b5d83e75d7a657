use super::ValidationError;

/// A display name: 1..=64 characters after trimming, no control characters. Stored verbatim
/// otherwise (quotes, SQL-looking text and emoji included); it is data, never markup or SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MAX_CHARS: usize = 64;
    /// The rule as a regular expression for the OpenAPI document (with `maxLength` 64): no
    /// control character, and something besides whitespace.
    pub const PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ValidationError::new("username", "username is required"));
        }
        // Counted before trimming, as the document's `maxLength` is.
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "username",
                "username is longer than 64 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ValidationError::new("username", "username contains control characters"));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Username;

    #[test]
    fn bounds_are_in_characters_not_bytes() {
        assert!(Username::parse(&"é".repeat(64)).is_ok(), "64 two-byte characters fit");
        assert!(Username::parse(&"a".repeat(65)).is_err(), "65 characters do not");
        assert!(Username::parse("  ").is_err(), "blank after trimming");
        assert!(Username::parse("tab\there").is_err(), "control character");
        assert_eq!(Username::parse("  John Doe ").unwrap().as_str(), "John Doe");
    }
}
