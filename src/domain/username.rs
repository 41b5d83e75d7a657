use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use super::ValidationError;

/// A display name: 1..=64 characters after trimming, no control or format (Cf) characters. Stored verbatim
/// otherwise (quotes, SQL-looking text and emoji included); it is data, never markup or SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MAX_CHARS: usize = 64;
    /// The rule as a regular expression for the OpenAPI document (with `maxLength` 64): no
    /// control character, no format character of the Basic Multilingual Plane (the few
    /// astral ones are refused too, but a pattern both ECMA and Python read cannot name them),
    /// and something besides whitespace.
    pub const PATTERN: &str = concat!(
        r"^[^\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*",
        r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]",
        r"[^\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]*$"
    );

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
        // Bidirectional overrides and invisible marks make a name read as something else.
        if name.chars().any(|c| c.general_category() == GeneralCategory::Format) {
            return Err(ValidationError::new(
                "username",
                "username contains invisible formatting characters",
            ));
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
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

    /// The pattern's excluded BMP format characters are exactly category Cf of the BMP.
    #[test]
    fn the_documented_pattern_names_every_bmp_format_character() {
        let class = Username::PATTERN.split(']').next().unwrap();
        let mut listed = Vec::new();
        let mut rest = class;
        while let Some(at) = rest.find("\\u") {
            let from = u32::from_str_radix(&rest[at + 2..at + 6], 16).unwrap();
            rest = &rest[at + 6..];
            let to = match rest.strip_prefix("-\\u") {
                Some(tail) => {
                    rest = &tail[4..];
                    u32::from_str_radix(&tail[..4], 16).unwrap()
                }
                None => from,
            };
            listed.extend(from..=to);
        }
        let format: Vec<u32> = (0..=0xffff_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.general_category() == GeneralCategory::Format)
            .map(u32::from)
            .collect();
        assert_eq!(listed, format);
    }

    #[test]
    fn bounds_are_in_characters_not_bytes() {
        assert!(Username::parse(&"é".repeat(64)).is_ok(), "64 two-byte characters fit");
        assert!(Username::parse(&"a".repeat(65)).is_err(), "65 characters do not");
        assert!(Username::parse("  ").is_err(), "blank after trimming");
        assert!(Username::parse("tab\there").is_err(), "control character");
        assert_eq!(Username::parse("  John Doe ").unwrap().as_str(), "John Doe");
        for (name, why) in [
            ("admin\u{202e}txt.exe", "right-to-left override"),
            ("a\u{2066}b", "bidi isolate"),
            ("zero\u{200b}width", "zero-width space"),
            ("\u{feff}bom", "byte order mark"),
            ("soft\u{ad}hyphen", "soft hyphen"),
            ("tag\u{e0041}", "tag character"),
        ] {
            assert!(Username::parse(name).is_err(), "{why}");
        }
        assert!(
            Username::parse("Zoë 😀 O'Brien").is_ok(),
            "letters, emoji, quotes stay welcome"
        );
    }
}
