//! Where a rendered mail goes: an SMTP server (lettre, async, pooled connections), or the log.

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::templates::Rendered;
use crate::config::{MailSettings, MailTransport};

pub enum Transport {
    Smtp {
        inner: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for spans and logs (never the credentials).
        server: String,
        from: Mailbox,
    },
    /// Embedded mode without `SMTP_URL`: the mail, link included, is logged at `info`.
    Log,
}

impl Transport {
    /// The transport the settings name; `None` when mail is off.
    pub fn new(settings: &MailSettings) -> anyhow::Result<Option<Self>> {
        let url = match &settings.transport {
            MailTransport::Off => return Ok(None),
            MailTransport::Log => return Ok(Some(Self::Log)),
            MailTransport::Smtp(url) => url,
        };
        let (with_tls, server) = transport_url(url.expose()).with_context(|| format!("SMTP_URL {url:?}"))?;
        let inner = AsyncSmtpTransport::<Tokio1Executor>::from_url(&with_tls)
            .with_context(|| format!("SMTP_URL {url:?}"))?
            .timeout(Some(settings.smtp_timeout))
            .build();
        let from = settings.from.parse().context("MAIL_FROM")?;
        Ok(Some(Self::Smtp { inner, server, from }))
    }

    /// `host:port` of the SMTP server, or `log`.
    pub fn server(&self) -> &str {
        match self {
            Self::Smtp { server, .. } => server,
            Self::Log => "log",
        }
    }

    /// Delivers `mail` to `to`. The error is one line fit for logs and the outbox (lettre's
    /// errors carry the server's reply, never our credentials).
    pub async fn send(&self, to: &str, mail: Rendered, link: &str) -> Result<(), String> {
        match self {
            Self::Smtp { inner, from, .. } => {
                let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
                    .map_err(|e| format!("building the message: {e}"))?;
                inner.send(message).await.map(drop).map_err(|e| e.to_string())
            }
            Self::Log => {
                tracing::info!(
                    to,
                    subject = mail.subject,
                    link,
                    "mail not sent (no SMTP_URL in embedded mode): open the link to go on"
                );
                Ok(())
            }
        }
    }
}

/// The URL lettre gets, and `host:port`. Our rule on top of lettre's: credentials never travel
/// in clear, so `smtp://user:pass@…` without `tls=` requires STARTTLS; `tls=none` asks for
/// plain SMTP explicitly.
fn transport_url(raw: &str) -> anyhow::Result<(String, String)> {
    let mut url = url::Url::parse(raw).context("not a URL")?;
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = match (url.scheme(), tls.as_deref()) {
        ("smtp", None) if url.password().is_some() => Some("required"),
        ("smtp", Some("none")) => None,
        (_, Some(other @ ("required" | "opportunistic"))) => Some(other),
        (_, None) => None,
        (_, Some(other)) => anyhow::bail!("tls={other}: expected required, opportunistic or none"),
    };
    url.set_query(None);
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &others {
            query.append_pair(k, v);
        }
        if let Some(tls) = tls {
            query.append_pair("tls", tls);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let host = url.host_str().context("no host")?.to_string();
    let port = url.port().unwrap_or(match (url.scheme(), tls) {
        ("smtps", _) => 465,
        (_, Some(_)) => 587,
        _ => 25,
    });
    Ok((url.to_string(), format!("{host}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::transport_url;

    #[test]
    fn credentials_require_starttls_unless_told_otherwise() {
        let url = |raw| transport_url(raw).unwrap().0;
        assert_eq!(
            url("smtp://u:p@mx.example.com:587"),
            "smtp://u:p@mx.example.com:587?tls=required"
        );
        assert_eq!(
            url("smtp://u:p@mx.example.com:25?tls=none"),
            "smtp://u:p@mx.example.com:25"
        );
        assert_eq!(url("smtp://localhost:1025"), "smtp://localhost:1025");
        assert_eq!(
            url("smtp://mx:587?tls=opportunistic"),
            "smtp://mx:587?tls=opportunistic"
        );
        assert_eq!(url("smtps://u:p@mx.example.com"), "smtps://u:p@mx.example.com");
        assert!(transport_url("smtp://mx?tls=maybe").is_err());
        assert_eq!(
            transport_url("smtps://u:p@mx.example.com").unwrap().1,
            "mx.example.com:465"
        );
        assert_eq!(transport_url("smtp://u:p@mx").unwrap().1, "mx:587");
    }
}
