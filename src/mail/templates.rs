//! The text and HTML of account mails, from templates compiled into the binary.

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

/// What a template may name, as `{name}`.
pub struct Values<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub link: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub requested_at: OffsetDateTime,
    pub ttl: Duration,
}

pub fn render(kind: MailKind, values: &Values<'_>) -> Rendered {
    let (subject, text, html) = match kind {
        MailKind::PasswordReset => (
            "Reset your password",
            include_str!("templates/password_reset.txt"),
            include_str!("templates/password_reset.html"),
        ),
        MailKind::EmailVerify => (
            "Confirm your email address",
            include_str!("templates/email_verify.txt"),
            include_str!("templates/email_verify.html"),
        ),
    };
    Rendered {
        subject,
        text: fill(text, values, |v| v.to_string()),
        html: fill(html, values, escape_html),
    }
}

/// `template` with each `{name}` replaced by its value passed through `encode`, in one pass:
/// a value that itself contains `{link}` (a user name is the user's choice) stays as it is.
fn fill(template: &str, values: &Values<'_>, encode: impl Fn(&str) -> String) -> String {
    let t = values.requested_at;
    let requested_at = format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    let ttl = human(values.ttl);
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "username" => values.username.to_string(),
            "email" => values.email.to_string(),
            "link" => values.link.to_string(),
            "ip" => values.ip.unwrap_or("unknown").to_string(),
            "user_agent" => values.user_agent.unwrap_or("unknown browser").to_string(),
            "requested_at" => requested_at.clone(),
            "ttl" => ttl.clone(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| Some((close, value(&after[..close])?))) {
            Some((close, v)) => {
                out.push_str(&encode(&v));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
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

    fn values<'a>(username: &'a str, agent: &'a str) -> Values<'a> {
        Values {
            username,
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
        let mail = render(MailKind::PasswordReset, &values("Ada", "Firefox"));
        assert_eq!(mail.subject, "Reset your password");
        for part in [&mail.text, &mail.html] {
            for needle in [
                "Hello Ada",
                "ada@example.com",
                "203.0.113.7",
                "Firefox",
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
    fn values_are_escaped_in_html_and_never_expanded() {
        let mail = render(MailKind::EmailVerify, &values("{link}<b>", "<script>x</script>"));
        assert!(mail.html.contains("Hello {link}&lt;b&gt;"), "{}", mail.html);
        assert!(mail.html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!mail.html.contains("<script>"));
        assert!(mail.text.contains("Hello {link}<b>"), "text is not HTML: kept verbatim");
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human(Duration::from_secs(86400)), "24 hours");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(120)), "2 minutes");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
    }
}
