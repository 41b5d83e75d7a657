//! Account mails: queued in the outbox by requests (never sent on a request's path), delivered
//! by a background sender on every instance, each mail once.
//!
//! The sender mints the link's token at delivery and keeps only its hash, so the outbox holds
//! no usable token and a link's lifetime starts when its mail leaves, however late that is.

mod sender;
mod templates;
mod transport;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::MailSettings;
use crate::domain::MailKind;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::UserStore;
use crate::store::users::MailRequest;

pub use sender::{Running, Sender};

/// What requests use to queue mail; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    enabled: bool,
    per_address_per_hour: u32,
    require_verified_email: bool,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Mailer {
    pub fn new(settings: &MailSettings, enabled: bool, wake: Arc<Notify>, metrics: Arc<Metrics>) -> Self {
        Self {
            enabled,
            per_address_per_hour: settings.per_address_per_hour,
            require_verified_email: settings.require_verified_email,
            wake,
            metrics,
        }
    }

    /// Whether mails can be sent at all (an SMTP server, or the log in embedded mode).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `REQUIRE_VERIFIED_EMAIL`.
    pub fn require_verified_email(&self) -> bool {
        self.require_verified_email
    }

    /// Queues `request` under the per-address limit; `false` when the address is over it.
    pub async fn queue(&self, users: &UserStore, request: &MailRequest) -> Result<bool, StoreError> {
        let queued = users.queue_mail(request, self.per_address_per_hour).await?;
        self.count(request.kind, if queued { "queued" } else { "throttled" });
        if queued {
            self.wake();
        }
        Ok(queued)
    }

    /// The verification mail registering a user queues with the user row, or `None` when mail
    /// is off.
    pub fn verification(&self, request: MailRequest) -> Option<MailRequest> {
        self.enabled.then_some(request)
    }

    /// Tells this instance's sender that a mail was queued (the others find it by polling).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn count(&self, kind: MailKind, outcome: &str) {
        self.metrics.emails.with_label_values(&[kind.as_str(), outcome]).inc();
    }
}
