//! The background sender: claims due mails from the outbox, mints each link's token, delivers,
//! and retries with exponential backoff until the mail is sent or out of attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::Instrument;

use super::Mailer;
use super::templates::{self, Values};
use super::transport::Transport;
use crate::audit::Audit;
use crate::auth::refresh_token::{TokenHash, random_token};
use crate::config::MailSettings;
use crate::domain::{Client, Email, EventName, MailKind, SecurityEvent, User};
use crate::metrics::Metrics;
use crate::store::UserStore;
use crate::store::users::ClaimedMail;

/// How long an idle sender waits before looking for mail queued by another instance.
const POLL: Duration = Duration::from_secs(1);
/// Mails claimed at once.
const BATCH: u32 = 16;
/// How often expired tokens and old finished mails are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// Finished mails are kept this long: the per-address limit counts the last hour of them.
const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Sender {
    users: UserStore,
    transport: Transport,
    settings: MailSettings,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mailer: Mailer,
    audit: Audit,
}

impl Sender {
    /// The sender and the `Mailer` requests queue through; no sender when mail is off.
    pub fn new(
        settings: &MailSettings,
        users: UserStore,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> anyhow::Result<(Mailer, Option<Sender>)> {
        let wake = Arc::new(Notify::new());
        let transport = Transport::new(settings)?;
        let mailer = Mailer::new(settings, transport.is_some(), wake.clone(), metrics.clone());
        let sender = transport.map(|transport| Sender {
            users,
            transport,
            settings: settings.clone(),
            metrics,
            wake,
            mailer: mailer.clone(),
            audit,
        });
        Ok((mailer, sender))
    }

    /// Starts the sender on the current runtime.
    pub fn spawn(self) -> Running {
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(self.run(stopping.clone(), stop.clone()));
        Running { stopping, stop, task }
    }

    async fn run(self, stopping: Arc<AtomicBool>, stop: Arc<Notify>) {
        tracing::info!(server = self.transport.server(), "mail sender started");
        // A claim outlives one delivery attempt by far: another instance retries a mail only
        // when this one died holding it.
        let lease = (self.settings.smtp_timeout * 4).max(Duration::from_secs(60));
        let mut last_purge: Option<Instant> = None;
        while !stopping.load(Ordering::Acquire) {
            let claimed = match self.users.claim_mail(lease, BATCH).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "cannot read the mail outbox");
                    Vec::new()
                }
            };
            let busy = !claimed.is_empty();
            for mail in claimed {
                if stopping.load(Ordering::Acquire) {
                    // Not attempted: free for another instance (or the next start) at once.
                    if let Err(e) = self.users.release_mail(mail.id).await {
                        tracing::warn!(error = format!("{e:#}"), "cannot release a mail");
                    }
                    continue;
                }
                self.deliver(mail).await;
            }
            if let Ok((pending, waited)) = self.users.pending_mail().await {
                self.metrics.outbox_pending.set(pending);
                self.metrics.outbox_oldest_age.set(waited.as_secs() as i64);
            }
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                if let Err(e) = self.users.purge_mail(KEEP_FINISHED).await {
                    tracing::warn!(error = format!("{e:#}"), "cannot purge the mail outbox");
                }
                last_purge = Some(Instant::now());
            }
            if !busy {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
        tracing::info!("mail sender stopped");
    }

    /// One attempt at one mail, in its own span (`smtp.send`).
    async fn deliver(&self, mail: ClaimedMail) {
        let span = tracing::info_span!(
            "smtp.send",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            mail.kind = mail.kind.as_str(),
            mail.attempt = mail.attempts,
            server.address = self.transport.server(),
            outcome = tracing::field::Empty,
        );
        let outcome = self.attempt(&mail).instrument(span.clone()).await;
        span.record("outcome", outcome);
        if matches!(outcome, "failed" | "dead") {
            span.record("otel.status_code", "ERROR");
        }
        self.mailer.count(mail.kind, outcome);
    }

    /// Delivers `mail`; the outcome is its metric label.
    async fn attempt(&self, mail: &ClaimedMail) -> &'static str {
        let user = match self.recipient(mail).await {
            Ok(Some(user)) => user,
            Ok(None) => return self.finish(mail, "skipped", None).await,
            // The claim lapses and the mail is tried again once the store answers.
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "cannot prepare a mail");
                return "failed";
            }
        };
        let token = random_token();
        let (ttl, page) = match mail.kind {
            MailKind::PasswordReset => (self.settings.reset_ttl, "reset-password"),
            MailKind::EmailVerify => (self.settings.verify_ttl, "verify-email"),
            _ => (Duration::ZERO, ""),
        };
        if mail.kind.has_link()
            && let Err(e) = self
                .users
                .mint_token(mail, user.id, TokenHash::of(&token).as_bytes(), ttl)
                .await
        {
            tracing::warn!(error = format!("{e:#}"), "cannot store a mail's token");
            return "failed";
        }
        let link = match mail.kind.has_link() {
            true => format!("{}/{page}?token={token}", self.settings.public_app_url),
            false => self.settings.public_app_url.clone(),
        };
        let rendered = templates::render(
            mail.kind,
            &Values {
                email: &user.email,
                link: &link,
                ip: mail.ip.as_deref(),
                user_agent: mail.user_agent.as_deref(),
                requested_at: mail.requested_at,
                ttl,
            },
        );
        match self.transport.send(&user.email, rendered, &link).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "mail sent");
                let event = match mail.kind {
                    MailKind::PasswordReset => Some(EventName::PasswordResetRequested),
                    MailKind::EmailVerify => Some(EventName::EmailVerificationSent),
                    // A notice of a change, which the change itself recorded.
                    _ => None,
                };
                let requester = Client {
                    ip: mail.ip.clone(),
                    user_agent: mail.user_agent.clone(),
                    trace_id: mail.trace_id.clone(),
                };
                let events: Vec<_> = event
                    .map(|name| self.audit.event(name, &requester).user(user.id))
                    .into_iter()
                    .collect();
                if self.finish_with(mail, "sent", None, &events).await {
                    self.audit.announce(&events);
                }
                "sent"
            }
            Err(error) if mail.attempts >= self.settings.max_attempts => {
                tracing::error!(error, attempts = mail.attempts, "mail undeliverable, marked dead");
                self.finish(mail, "dead", Some(&error)).await
            }
            Err(error) => {
                let retry_in = backoff(mail.attempts, self.settings.retry_max);
                tracing::warn!(
                    error,
                    attempts = mail.attempts,
                    retry_in_ms = retry_in.as_millis() as u64,
                    "mail delivery failed, will retry"
                );
                if let Err(e) = self.users.retry_mail(mail.id, retry_in, &error).await {
                    tracing::warn!(error = format!("{e:#}"), "cannot reschedule a mail");
                }
                "failed"
            }
        }
    }

    /// The account the mail is for, or `None` when there is nothing to send: no such account
    /// (a reset asked for an unknown address), an address already verified, or a link for a
    /// disabled account.
    async fn recipient(&self, mail: &ClaimedMail) -> Result<Option<User>, crate::store::StoreError> {
        let user = match mail.user_id {
            Some(id) => self.users.find_by_id(id).await?,
            None => match Email::parse(&mail.email) {
                Ok(email) => self.users.find_by_email(&email).await?.map(|c| c.user),
                Err(_) => None,
            },
        };
        let now = self.users.clock().now_ms();
        Ok(user.filter(|user| match mail.kind {
            MailKind::EmailVerify => !user.email_verified && !user.is_disabled(now),
            // A disabled account gets no link it could not use; notices still reach it.
            MailKind::PasswordReset => !user.is_disabled(now),
            _ => true,
        }))
    }

    async fn finish(&self, mail: &ClaimedMail, state: &'static str, error: Option<&str>) -> &'static str {
        self.finish_with(mail, state, error, &[]).await;
        state
    }

    /// Marks the mail, recording `events` with it; `false` when the store failed.
    async fn finish_with(
        &self,
        mail: &ClaimedMail,
        state: &'static str,
        error: Option<&str>,
        events: &[SecurityEvent],
    ) -> bool {
        let marked = self.users.finish_mail(mail.id, state, error, events).await;
        if let Err(e) = &marked {
            // Sent but not marked: after the claim lapses it may go out a second time.
            tracing::warn!(error = format!("{e:#}"), state, "cannot mark a mail");
        }
        marked.is_ok()
    }
}

/// A running sender, stopped with the server.
pub struct Running {
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Lets the delivery in progress finish (within `SMTP_TIMEOUT`) and releases the mails
    /// claimed but not yet attempted, so that none waits for its claim to lapse.
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// 1 s, 2 s, 4 s, … after the 1st, 2nd, 3rd failed attempt, never more than `max`.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    Duration::from_secs(1u64 << exp).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(1000, max), max);
    }
}
