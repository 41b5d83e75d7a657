//! The security trail: each event is stored (in the change's own transaction where the change
//! is SQL), logged as one JSON line under the `security` target, and counted in
//! `auth_security_events_total{name}`. Old events are deleted after the retention period, by
//! one instance at a time.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{Client, EventName, SecurityEvent};
use crate::metrics::Metrics;
use crate::store::{StoreError, UserStore};

/// The log target of security events, so a pipeline can route them.
pub const TARGET: &str = "security";

/// How often the retention cleanup runs.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Audit {
    users: UserStore,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Audit {
    pub fn new(users: UserStore, metrics: Arc<Metrics>, clock: Clock) -> Self {
        Self { users, metrics, clock }
    }

    /// An event `name` now, caused by `client`.
    pub fn event(&self, name: EventName, client: &Client) -> SecurityEvent {
        SecurityEvent::new(name, self.clock.now(), client)
    }

    /// Stores `events` on their own (what they record is not in SQL), then logs and counts them.
    pub async fn record(&self, events: &[SecurityEvent]) -> Result<(), StoreError> {
        self.users.record_events(events).await?;
        self.announce(events);
        Ok(())
    }

    /// Logs and counts events a store call has just written.
    pub fn announce(&self, events: &[SecurityEvent]) {
        for e in events {
            self.metrics.security_events.with_label_values(&[e.name.as_str()]).inc();
            let user = e.user_id.map(|id| id.to_string());
            let session = e.session_id.map(|id| id.to_string());
            tracing::info!(
                target: TARGET,
                // A plain first field: tracing's macro cannot tell a dotted first name after
                // `target:` from its other forms.
                security = true,
                event.name = e.name.as_str(),
                event.id = %e.id,
                event.reason = e.reason,
                event.trace_id = e.trace_id.as_deref(),
                event.actor = e.actor.as_deref(),
                user.id = user.as_deref(),
                session.id = session.as_deref(),
                client.address = e.ip.as_deref(),
                user_agent.family = e.browser.as_deref(),
                "security event"
            );
        }
    }

    /// Deletes events older than `retention` every hour while the process runs; with several
    /// instances, one at a time does it.
    pub fn spawn_cleanup(&self, retention: Duration) {
        let audit = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CLEANUP_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = audit.purge(retention).await {
                    tracing::warn!(error = format!("{e:#}"), "cannot delete old security events");
                }
            }
        });
    }

    /// Deletes events older than `retention`; how many (`None`: another instance is at it).
    pub async fn purge(&self, retention: Duration) -> Result<Option<u64>, StoreError> {
        let before = self.clock.now_ms() - retention.as_millis() as i64;
        let deleted = self.users.purge_events(before).await?;
        if let Some(deleted) = deleted.filter(|n| *n > 0) {
            tracing::info!(deleted, "old security events deleted");
        }
        Ok(deleted)
    }
}
