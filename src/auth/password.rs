use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::HashSettings;
use crate::metrics::Metrics;

/// argon2id on tokio's blocking threads, at most `concurrency` at once.
///
/// Hashing costs ~26 ms of CPU and 19 MiB of memory, so it must never run on an async worker
/// (it would stall every request on that worker), and an unbounded number at once would let
/// a burst of logins exhaust memory. Callers wait for a permit instead.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the email is unknown, so an unknown
    /// account costs the same time as a wrong password.
    dummy_hash: Arc<str>,
    metrics: Arc<Metrics>,
}

impl PasswordHasher {
    pub fn new(settings: &HashSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let dummy = crate::auth::refresh_token::random_token();
        let dummy_hash = argon2(&params)
            .hash_password(dummy.as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2 self-test failed: {e}"))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            dummy_hash: dummy_hash.into(),
            metrics,
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.run("password.hash", move |argon| {
            argon
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it checks the
    /// dummy hash and answers false, spending the same time.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let password = password.clone();
        let (hash, known): (Arc<str>, bool) = match stored {
            Some(h) => (h.into(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let matches = self
            .run("password.verify", move |argon| {
                argon
                    .verify_password(password.expose_secret().as_bytes(), &*hash)
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let span = tracing::info_span!("argon2", otel.name = name, queue_wait_ms = tracing::field::Empty);
        async {
            let queued = Instant::now();
            let _permit = self.permits.acquire().await.context("hashing pool closed")?;
            let waited = queued.elapsed();
            self.metrics.hash_wait.observe(waited.as_secs_f64());
            tracing::Span::current().record("queue_wait_ms", waited.as_secs_f64() * 1000.0);
            let params = self.params.clone();
            let span = tracing::Span::current();
            let metrics = self.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let _in_flight = InFlight::start(&metrics);
                let started = Instant::now();
                let result = span.in_scope(|| work(&argon2(&params)));
                metrics.hash_duration.observe(started.elapsed().as_secs_f64());
                result
            })
            .await
            .context("hashing task panicked")
        }
        .instrument(span)
        .await
    }
}

/// Counts a running computation in `auth_password_hash_in_flight`, even if it panics.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn start(metrics: &'a Metrics) -> Self {
        metrics.hash_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.hash_in_flight.dec();
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        let settings = HashSettings {
            concurrency: 2,
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&settings, Arc::new(Metrics::new())).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hasher();
        let pw = SecretString::from("fishcake");
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{stored}");
        assert!(h.verify(&pw, Some(stored.clone())).await.unwrap());
        assert!(!h.verify(&SecretString::from("fishcakes"), Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        assert!(!hasher().verify(&SecretString::from("anything"), None).await.unwrap());
    }
}
