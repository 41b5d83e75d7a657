//! The signing keys of EdDSA/ES256 tokens on this instance: loaded before the server starts,
//! reloaded every `KEYS_RELOAD_INTERVAL`, rotated every `KEY_ROTATION_PERIOD`. The database is
//! the only channel between replicas: each derives the same key states from the same rows and
//! clock, and the unique `generation` column lets exactly one of several racing instances add
//! the next key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::audit::Audit;
use crate::auth::keys::{KeyAlgorithm, KeyRing, KeySet, KeyState, Schedule, SealingKey, StoredKey, material, states};
use crate::config::{DatabaseSettings, Settings, SigningAlgorithm};
use crate::domain::{Client, EventName};
use crate::metrics::Metrics;
use crate::store::keys::SigningKeyStore;
use crate::store::now_ms;
use crate::store::users::UserStore;

/// Why a key was created, as `auth_key_rotations_total{trigger}` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Manual,
    Emergency,
    Revoke,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
            Self::Emergency => "emergency",
            Self::Revoke => "revoke",
        }
    }
}

pub struct KeyManager {
    store: SigningKeyStore,
    /// Also seals the TOTP secrets (see [`Self::sealing`]).
    sealing: Arc<SealingKey>,
    alg: KeyAlgorithm,
    schedule: Schedule,
    reload_interval: Duration,
    metrics: Arc<Metrics>,
    audit: Audit,
    pub ring: Arc<KeyRing>,
}

impl KeyManager {
    /// The key manager of an EdDSA/ES256 deployment (`None` with HS256), its key set loaded:
    /// a store without keys gets its first one, and a `KEYS_ENCRYPTION_KEY` that does not open
    /// the stored keys stops the start.
    pub async fn start(
        settings: &Settings,
        users: &UserStore,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        let alg = match settings.tokens.algorithm {
            SigningAlgorithm::Hs256 => return Ok(None),
            SigningAlgorithm::EdDsa => KeyAlgorithm::EdDsa,
            SigningAlgorithm::Es256 => KeyAlgorithm::Es256,
        };
        let keys = &settings.keys;
        let manager = Arc::new(Self {
            store: SigningKeyStore::new(users.backend().clone(), settings.store_timeout),
            sealing: Arc::new(sealing_key(settings)?.context("KEYS_ENCRYPTION_KEY is required outside embedded mode")?),
            alg,
            schedule: Schedule {
                rotation_period: keys.rotation_period,
                activation_delay: keys.cache_max_age + keys.reload_interval,
                retire_after: settings.tokens.access_ttl + settings.tokens.leeway,
            },
            reload_interval: keys.reload_interval,
            metrics,
            audit,
            ring: Arc::default(),
        });
        manager
            .metrics
            .key_rotation_period
            .set(keys.rotation_period.as_secs() as i64);
        manager.refresh().await.context("loading the signing keys")?;
        Ok(Some(manager))
    }

    /// The key that seals the private signing keys, read once at start.
    pub fn sealing(&self) -> Arc<SealingKey> {
        self.sealing.clone()
    }

    /// Reloads the key set every `KEYS_RELOAD_INTERVAL`, for as long as the runtime runs; a
    /// failed reload keeps the last set.
    pub fn spawn_reloads(self: &Arc<Self>) {
        let manager = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(manager.reload_interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = manager.refresh().await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "reloading the signing keys failed; keeping the last set"
                    );
                }
            }
        });
    }

    /// Rotates when due, deletes keys whose tokens have all expired, and replaces the ring.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let mut keys = self.store.all().await?;
        let newest = keys
            .iter()
            .filter(|k| k.revoked_at_ms.is_none())
            .max_by_key(|k| k.generation);
        let period = self.schedule.rotation_period.as_millis() as i64;
        let due = match newest {
            // No usable key: one that signs at once (nothing it must be announced to yet).
            None => Some(now),
            Some(key) if key.created_at_ms + period <= now => {
                Some(now + self.schedule.activation_delay.as_millis() as i64)
            }
            Some(_) => None,
        };
        if let Some(activates_at_ms) = due {
            self.create(&keys, activates_at_ms, Trigger::Schedule).await?;
            keys = self.store.all().await?;
        }
        let states = states(&keys, now, &self.schedule);
        for (key, state) in keys.iter().zip(&states) {
            if *state == KeyState::Expired {
                self.store.delete(&key.kid).await?;
            }
        }
        let set = KeySet::build(&keys, now, &self.schedule, &self.sealing)?;
        for state in [KeyState::Next, KeyState::Active, KeyState::Retired] {
            let count = states.iter().filter(|s| **s == state).count();
            self.metrics
                .signing_keys
                .with_label_values(&[state.as_str()])
                .set(count as i64);
        }
        if let Some(active) = keys.iter().zip(&states).find(|(_, s)| **s == KeyState::Active) {
            self.metrics.signing_key_created.set(active.0.created_at_ms / 1000);
        }
        self.ring.replace(set);
        Ok(())
    }

    /// Adds the next generation's key, signing from `activates_at_ms`. `false` when another
    /// instance added that generation first (then its key is the one).
    async fn create(&self, keys: &[StoredKey], activates_at_ms: i64, trigger: Trigger) -> anyhow::Result<bool> {
        let generated = material::generate(self.alg)?;
        let key = StoredKey {
            private_key: self
                .sealing
                .seal(&generated.kid, generated.private_der.expose_secret())?,
            kid: generated.kid,
            alg: self.alg.as_str().to_string(),
            generation: keys.iter().map(|k| k.generation).max().unwrap_or(0) + 1,
            public_jwk: generated.public_jwk,
            created_at_ms: now_ms(),
            activates_at_ms,
            revoked_at_ms: None,
        };
        let created = self.store.insert(&key).await?;
        if created {
            self.metrics.key_rotations.with_label_values(&[trigger.as_str()]).inc();
            tracing::info!(
                kid = key.kid,
                generation = key.generation,
                trigger = trigger.as_str(),
                "signing key created"
            );
            let rotated = self
                .audit
                .event(EventName::SigningKeyRotated, &Client::default())
                .reason(trigger.as_str());
            self.audit.record(&[rotated]).await?;
        }
        Ok(created)
    }

    /// Publishes a new key now; it signs after the safe delay, or at once with `now`.
    pub async fn rotate(&self, now: bool) -> anyhow::Result<()> {
        let keys = self.store.all().await?;
        let (activates_at_ms, trigger) = if now {
            (now_ms(), Trigger::Emergency)
        } else {
            (
                now_ms() + self.schedule.activation_delay.as_millis() as i64,
                Trigger::Manual,
            )
        };
        anyhow::ensure!(
            self.create(&keys, activates_at_ms, trigger).await?,
            "another instance rotated at the same moment: retry"
        );
        self.refresh().await
    }

    /// Unpublishes `kid` at once (instances follow within `KEYS_RELOAD_INTERVAL`); when it was
    /// the key that signs, a new one signs from now. `false` when no such live key exists.
    pub async fn revoke(&self, kid: &str) -> anyhow::Result<bool> {
        let keys = self.store.all().await?;
        let was_active = states(&keys, now_ms(), &self.schedule)
            .iter()
            .zip(&keys)
            .any(|(state, key)| *state == KeyState::Active && key.kid == kid);
        if !self.store.revoke(kid, now_ms()).await? {
            return Ok(false);
        }
        tracing::info!(kid, "signing key revoked");
        let revoked = self.audit.event(EventName::SigningKeyRevoked, &Client::default());
        self.audit.record(&[revoked]).await?;
        if was_active {
            let keys = self.store.all().await?;
            self.create(&keys, now_ms(), Trigger::Revoke).await?;
        }
        self.refresh().await?;
        Ok(true)
    }

    /// Every stored key with its state now.
    pub async fn list(&self) -> anyhow::Result<Vec<(StoredKey, KeyState)>> {
        let keys = self.store.all().await?;
        let states = states(&keys, now_ms(), &self.schedule);
        Ok(keys.into_iter().zip(states).collect())
    }
}

/// `KEYS_ENCRYPTION_KEY`, or in embedded mode the key kept beside the SQLite database (made on
/// first start, readable by this user only); `None` outside embedded mode without the setting
/// (HS256 deployments need it only for second factors).
pub fn sealing_key(settings: &Settings) -> anyhow::Result<Option<SealingKey>> {
    if let Some(key) = &settings.keys.encryption_key {
        return SealingKey::from_base64(key.expose_secret())
            .context("KEYS_ENCRYPTION_KEY must be 32 bytes in base64")
            .map(Some);
    }
    let DatabaseSettings::Sqlite { path } = &settings.database else {
        return Ok(None);
    };
    let file = path.parent().unwrap_or(Path::new(".")).join("keys-encryption.key");
    match write_private(&file, &SealingKey::generate_base64()?) {
        // Another process made it first: that one is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        result => result.with_context(|| format!("cannot create {}", file.display()))?,
    }
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    SealingKey::from_base64(&text)
        .with_context(|| format!("{} does not hold 32 bytes in base64", file.display()))
        .map(Some)
}

fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)?.write_all(text.as_bytes())
}
