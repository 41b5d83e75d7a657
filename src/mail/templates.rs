//! The text and HTML of account mails, from askama templates compiled into the binary.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::MailKind;

/// One mail, ready for a transport.
#[derive(Debug)]
pub struct Rendered {
    pub subject: &'static str,
    pub text: String,
    pub html: String,
}

/// What a template may name. Nothing a requester wrote is quoted: not the account's username
/// (whoever registered chose it, and may not own the address), not the `User-Agent` text (a
/// browser and OS family derived from it instead).
pub struct Values<'a> {
    pub email: &'a str,
    pub link: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub requested_at: OffsetDateTime,
    pub ttl: Duration,
}

/// What the templates see: every value as text.
struct Fields<'a> {
    email: &'a str,
    link: &'a str,
    ip: &'a str,
    browser: String,
    requested_at: String,
    ttl: String,
}

/// One template of `src/mail/templates` per kind and part; `.html` ones are HTML-escaped.
macro_rules! templates {
    ($($name:ident = $path:literal;)*) => {$(
        #[derive(askama::Template)]
        #[template(path = $path)]
        struct $name<'a> {
            f: &'a Fields<'a>,
        }
    )*};
}

templates! {
    ResetText = "password_reset.txt";
    ResetHtml = "password_reset.html";
    VerifyText = "email_verify.txt";
    VerifyHtml = "email_verify.html";
    ChangedText = "password_changed.txt";
    ChangedHtml = "password_changed.html";
    MfaOnText = "mfa_enabled.txt";
    MfaOnHtml = "mfa_enabled.html";
    MfaOffText = "mfa_disabled.txt";
    MfaOffHtml = "mfa_disabled.html";
    MfaResetText = "mfa_reset.txt";
    MfaResetHtml = "mfa_reset.html";
    CodesText = "recovery_codes_changed.txt";
    CodesHtml = "recovery_codes_changed.html";
    PasskeyAddedText = "passkey_added.txt";
    PasskeyAddedHtml = "passkey_added.html";
    PasskeyRenamedText = "passkey_renamed.txt";
    PasskeyRenamedHtml = "passkey_renamed.html";
    PasskeyRemovedText = "passkey_removed.txt";
    PasskeyRemovedHtml = "passkey_removed.html";
}

pub fn render(kind: MailKind, values: &Values<'_>) -> Rendered {
    use askama::Template as _;
    let t = values.requested_at;
    let f = Fields {
        email: values.email,
        link: values.link,
        ip: values.ip.unwrap_or("unknown"),
        browser: crate::domain::user_agent::describe(values.user_agent),
        requested_at: format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        ttl: human(values.ttl),
    };
    let f = &f;
    // Rendering only writes strings into a String: it cannot fail.
    let (subject, text, html) = match kind {
        MailKind::PasswordReset => (
            "Reset your password",
            ResetText { f }.render(),
            ResetHtml { f }.render(),
        ),
        MailKind::EmailVerify => (
            "Confirm your email address",
            VerifyText { f }.render(),
            VerifyHtml { f }.render(),
        ),
        MailKind::PasswordChanged => (
            "Your password was changed",
            ChangedText { f }.render(),
            ChangedHtml { f }.render(),
        ),
        MailKind::MfaEnabled => (
            "Two-step sign-in was turned on",
            MfaOnText { f }.render(),
            MfaOnHtml { f }.render(),
        ),
        MailKind::MfaDisabled => (
            "Two-step sign-in was turned off",
            MfaOffText { f }.render(),
            MfaOffHtml { f }.render(),
        ),
        MailKind::MfaReset => (
            "Two-step sign-in was reset for your account",
            MfaResetText { f }.render(),
            MfaResetHtml { f }.render(),
        ),
        MailKind::RecoveryCodesChanged => (
            "Your recovery codes changed",
            CodesText { f }.render(),
            CodesHtml { f }.render(),
        ),
        MailKind::PasskeyAdded => (
            "A passkey was added to your account",
            PasskeyAddedText { f }.render(),
            PasskeyAddedHtml { f }.render(),
        ),
        MailKind::PasskeyRenamed => (
            "A passkey of your account was renamed",
            PasskeyRenamedText { f }.render(),
            PasskeyRenamedHtml { f }.render(),
        ),
        MailKind::PasskeyRemoved => (
            "A passkey was removed from your account",
            PasskeyRemovedText { f }.render(),
            PasskeyRemovedHtml { f }.render(),
        ),
    };
    Rendered {
        subject,
        text: text.expect("a template renders"),
        html: html.expect("a template renders"),
    }
}

/// "30 minutes", "24 hours", "90 seconds".
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(agent: &str) -> Values<'_> {
        Values {
            email: "ada@example.com",
            link: "https://app.example.com/reset-password?token=abc",
            ip: Some("203.0.113.7"),
            user_agent: Some(agent),
            requested_at: OffsetDateTime::UNIX_EPOCH,
            ttl: Duration::from_secs(1800),
        }
    }

    #[test]
    fn says_what_was_asked_from_where_and_for_how_long() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let mail = render(MailKind::PasswordReset, &values(firefox));
        assert_eq!(mail.subject, "Reset your password");
        for part in [&mail.text, &mail.html] {
            for needle in [
                "Hello,",
                "ada@example.com",
                "203.0.113.7",
                "Firefox on Linux",
                "1970-01-01 00:00 UTC",
                "30 minutes",
                "https://app.example.com/reset-password?token=abc",
                "not you",
            ] {
                assert!(part.contains(needle), "{needle} missing from {part}");
            }
        }
    }

    #[test]
    fn a_requesters_text_never_reaches_the_mail() {
        let lure = "Your account was hacked, call +1-555-0100 or visit https://evil.example/secure";
        for kind in MailKind::ALL {
            let mail = render(kind, &values(lure));
            for part in [&mail.text, &mail.html] {
                assert!(!part.contains("555") && !part.contains("evil.example"), "{part}");
                assert_eq!(
                    part.contains("an unknown browser"),
                    kind.names_the_requester(),
                    "{part}"
                );
            }
        }
    }

    #[test]
    fn the_reset_notice_says_an_operator_acted_and_names_no_address() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let mail = render(MailKind::MfaReset, &values(firefox));
        assert_eq!(mail.subject, "Two-step sign-in was reset for your account");
        for part in [&mail.text, &mail.html] {
            for needle in [
                "ada@example.com",
                "1970-01-01 00:00 UTC",
                "administrator",
                "recovery codes",
            ] {
                assert!(part.contains(needle), "{needle} missing from {part}");
            }
            for absent in ["203.0.113.7", "Firefox", "signed out"] {
                assert!(!part.contains(absent), "{absent} in {part}");
            }
        }
    }

    #[test]
    fn the_password_changed_notice_says_when_and_from_which_browser() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let mail = render(MailKind::PasswordChanged, &values(firefox));
        assert_eq!(mail.subject, "Your password was changed");
        for part in [&mail.text, &mail.html] {
            for needle in [
                "ada@example.com",
                "1970-01-01 00:00 UTC",
                "Firefox on Linux",
                "203.0.113.7",
            ] {
                assert!(part.contains(needle), "{needle} missing from {part}");
            }
            assert!(!part.contains("token="), "a notice carries no link: {part}");
        }
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human(Duration::from_secs(86400)), "24 hours");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(120)), "2 minutes");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
    }
}
