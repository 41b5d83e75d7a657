//! Prometheus metrics: the HTTP RED metrics (actix-web-prom) and the auth domain metrics, in
//! one registry per application, served on their own listener (`METRICS_ADDR`), never on the
//! public port. The names are a contract with deploy/grafana and deploy/prometheus.

use std::time::Duration;

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets for an auth API: from a cached lookup (~1 ms) to a queued argon2 (~2.5 s).
pub const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Store calls are faster: 50 µs to 1 s (the default store timeout).
const DEPENDENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];
/// argon2 takes tens of milliseconds; waiting for the pool can take seconds under load.
const HASH_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Label value of HTTP metrics for paths no route matched: scanners cannot grow cardinality.
pub const UNMATCHED: &str = "UNMATCHED";

/// The domain metrics, `auth_*`.
pub struct Metrics {
    registry: Registry,
    pub logins: IntCounterVec,
    pub registrations: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub sessions_revoked: IntCounterVec,
    pub token_validations: IntCounterVec,
    pub hash_duration: Histogram,
    pub hash_wait: Histogram,
    pub hash_in_flight: IntGauge,
    pub rate_limited: IntCounterVec,
    pub db_pool: IntGaugeVec,
    pub redis_pool: IntGaugeVec,
    pub dependency_duration: HistogramVec,
    /// Published signing keys by state (next, active, retired).
    pub signing_keys: IntGaugeVec,
    /// New signing keys by trigger: schedule, manual, emergency, revoke.
    pub key_rotations: IntCounterVec,
    /// Unix time the active signing key was created (0 with HS256).
    pub signing_key_created: IntGauge,
    /// `KEY_ROTATION_PERIOD` in seconds (0 with HS256), for the rotation-stuck alert.
    pub key_rotation_period: IntGauge,
    /// Account mails by kind and outcome: queued, throttled, sent, failed (an attempt, to be
    /// retried), dead, skipped (no such account, or nothing left to verify).
    pub emails: IntCounterVec,
    /// Mails in the outbox waiting for delivery (the same value on every instance).
    pub outbox_pending: IntGauge,
    /// Seconds the oldest of them has waited (0 when none waits).
    pub outbox_oldest_age: IntGauge,
    /// Password resets: requested, throttled, completed, invalid_token, expired_token.
    pub password_resets: IntCounterVec,
    /// Security events recorded, by `name` (`user.registered`, `login.failed` …).
    pub security_events: IntCounterVec,
    /// Lookups of the recent-answer caches of Bearer requests: session or user, hit or miss.
    pub remembered: IntCounterVec,
    pub mfa_verifications: IntCounterVec,
    /// Passkey ceremonies by ceremony and outcome.
    pub passkey_ceremonies: IntCounterVec,
    /// Operators' actions on accounts, by action and outcome.
    pub admin_actions: IntCounterVec,
    /// Each Redis node the service uses, by address and role: 1 when it answered the probe
    /// made at this scrape.
    pub redis_node_up: IntGaugeVec,
    /// Probes of a Redis node that found it down.
    pub redis_node_probe_failures: IntCounterVec,
}

/// What became of a presented second factor (its method is one of `Proof::METHODS`).
pub const MFA_OUTCOMES: &[&str] = &["success", "invalid", "replayed", "error"];

/// What an operator can do to an account (the admin listener and `auth-api users`).
pub const ADMIN_ACTIONS: &[&str] = &[
    "disable",
    "enable",
    "sign_out",
    "erase",
    "reset_mfa",
    "send_verification",
    "mark_verified",
];
/// What became of an operator's action: done, no such user or session, refused (a bad value,
/// or nothing to do), or a failure.
pub const ADMIN_OUTCOMES: &[&str] = &["success", "not_found", "refused", "error"];

/// Passkey ceremonies: registering one, signing up with one (no password), signing in with
/// one alone, or as a login's second step.
pub const PASSKEY_CEREMONIES: &[&str] = &["registration", "sign_up", "sign_in", "second_factor"];
/// `started`; then `success`, `invalid` (the authenticator's answer did not verify),
/// `ceremony_invalid` (unknown, expired, replayed or another user's ceremony), `taken` (a
/// credential already registered), `cloned` (a counter that went back) or `error`.
pub const PASSKEY_OUTCOMES: &[&str] = &[
    "started",
    "success",
    "invalid",
    "ceremony_invalid",
    "taken",
    "cloned",
    "error",
];

/// Label values that exist from the start, so every series is 0 rather than absent.
const LOGIN_OUTCOMES: &[&str] = &[
    "success",
    "invalid_credentials",
    "invalid_request",
    "locked",
    "unverified",
    "disabled",
    "mfa_required",
    "rate_limited",
    "error",
];
const REGISTRATION_OUTCOMES: &[&str] = &["success", "email_taken", "invalid", "error"];
const REFRESH_OUTCOMES: &[&str] = &["success", "grace_replay", "expired", "invalid", "reused", "error"];
const REVOKE_REASONS: &[&str] = &[
    "logout",
    "reuse",
    "evicted",
    "user",
    "password_change",
    "password_reset",
    "user_gone",
    "mfa_enabled",
    "mfa_disabled",
    "admin",
    "disabled",
];
const VALIDATION_OUTCOMES: &[&str] = &["valid", "expired", "invalid"];
const POOL_STATES: &[&str] = &["idle", "in_use"];
const KEY_STATES: &[&str] = &["next", "active", "retired"];
const KEY_TRIGGERS: &[&str] = &["schedule", "manual", "emergency", "revoke"];
const MAIL_KINDS: &[&str] = &[
    "password_reset",
    "email_verify",
    "password_changed",
    "mfa_enabled",
    "mfa_disabled",
    "mfa_reset",
    "recovery_codes_changed",
    "passkey_added",
    "passkey_renamed",
    "passkey_removed",
];
const MAIL_OUTCOMES: &[&str] = &["queued", "throttled", "sent", "failed", "dead", "skipped"];
const RESET_OUTCOMES: &[&str] = &["requested", "throttled", "completed", "invalid_token", "expired_token"];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, label: &str, values: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            for v in values {
                c.with_label_values(&[v]);
            }
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        // Two labels, every pair of the given values pre-created.
        let counter_pairs = |name: &str, help: &str, labels: [&str; 2], first: &[&str], second: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), &labels).expect("valid metric");
            for a in first {
                for b in second {
                    c.with_label_values(&[a, b]);
                }
            }
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h =
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let state_gauge = |name: &str, help: &str, states: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["state"]).expect("valid metric");
            for s in states {
                g.with_label_values(&[s]);
            }
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let metrics = Self {
            logins: counter(
                "auth_logins_total",
                "Login attempts by outcome",
                "outcome",
                LOGIN_OUTCOMES,
            ),
            registrations: counter(
                "auth_registrations_total",
                "Registrations by outcome",
                "outcome",
                REGISTRATION_OUTCOMES,
            ),
            refreshes: counter(
                "auth_refresh_total",
                "Refresh-token presentations by outcome",
                "outcome",
                REFRESH_OUTCOMES,
            ),
            sessions_revoked: counter(
                "auth_sessions_revoked_total",
                "Sessions ended before expiry, by reason",
                "reason",
                REVOKE_REASONS,
            ),
            token_validations: counter(
                "auth_token_validations_total",
                "Access-token checks by outcome",
                "outcome",
                VALIDATION_OUTCOMES,
            ),
            rate_limited: counter(
                "auth_rate_limited_total",
                "Requests refused by a rate limiter",
                "limiter",
                &["general", "auth"],
            ),
            hash_duration: histogram(
                "auth_password_hash_duration_seconds",
                "argon2 hash or verify time",
                HASH_BUCKETS,
            ),
            hash_wait: histogram(
                "auth_password_hash_wait_seconds",
                "Time queued for the hashing pool",
                HASH_BUCKETS,
            ),
            hash_in_flight: gauge("auth_password_hash_in_flight", "argon2 computations running"),
            db_pool: state_gauge(
                "auth_db_pool_connections",
                "User-store pool connections by state",
                POOL_STATES,
            ),
            redis_pool: state_gauge(
                "auth_redis_pool_connections",
                "Redis pool connections by state",
                POOL_STATES,
            ),
            dependency_duration: {
                let h = HistogramVec::new(
                    HistogramOpts::new("auth_dependency_duration_seconds", "Store call latency")
                        .buckets(DEPENDENCY_BUCKETS.to_vec()),
                    &["dependency", "operation"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            signing_keys: state_gauge("auth_signing_keys", "Published signing keys by state", KEY_STATES),
            key_rotations: counter(
                "auth_key_rotations_total",
                "New signing keys by trigger",
                "trigger",
                KEY_TRIGGERS,
            ),
            signing_key_created: gauge(
                "auth_signing_key_active_created_timestamp_seconds",
                "Creation time of the signing key in use",
            ),
            key_rotation_period: gauge(
                "auth_signing_key_rotation_period_seconds",
                "KEY_ROTATION_PERIOD (0 with HS256)",
            ),
            emails: counter_pairs(
                "auth_emails_total",
                "Account mails by kind and outcome",
                ["kind", "outcome"],
                MAIL_KINDS,
                MAIL_OUTCOMES,
            ),
            remembered: counter_pairs(
                "auth_cache_lookups_total",
                "Bearer-request reads of a recent store answer (SESSION_CACHE_MS), by cache and outcome",
                ["cache", "outcome"],
                &["session", "user"],
                &["hit", "miss"],
            ),
            outbox_pending: gauge("auth_outbox_pending", "Account mails waiting for delivery"),
            outbox_oldest_age: gauge(
                "auth_outbox_oldest_pending_age_seconds",
                "Seconds the oldest undelivered account mail has waited",
            ),
            password_resets: counter(
                "auth_password_resets_total",
                "Password-reset requests and completions by outcome",
                "outcome",
                RESET_OUTCOMES,
            ),
            security_events: counter(
                "auth_security_events_total",
                "Security events recorded (the trail users read at /auth/events), by name",
                "name",
                &crate::domain::EventName::ALL.map(|n| n.as_str()),
            ),
            mfa_verifications: counter_pairs(
                "auth_mfa_verifications_total",
                "Second factors presented (login, step-up, enrolment), by method and outcome",
                ["method", "outcome"],
                &crate::domain::Proof::METHODS,
                MFA_OUTCOMES,
            ),
            passkey_ceremonies: counter_pairs(
                "auth_passkey_ceremonies_total",
                "Passkey ceremonies (registration, sign_up, sign_in, second_factor), by outcome",
                ["ceremony", "outcome"],
                PASSKEY_CEREMONIES,
                PASSKEY_OUTCOMES,
            ),
            admin_actions: counter_pairs(
                "auth_admin_actions_total",
                "Operators' actions on accounts (disable, enable, sign_out, erase, reset_mfa, send_verification, mark_verified), by outcome",
                ["action", "outcome"],
                ADMIN_ACTIONS,
                ADMIN_OUTCOMES,
            ),
            redis_node_up: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "auth_redis_node_up",
                        "Redis nodes the service uses, by address and role: 1 when it answered the probe at this scrape",
                    ),
                    &["node", "role"],
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            redis_node_probe_failures: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "auth_redis_node_probe_failures_total",
                        "Probes of a Redis node (one per scrape) that found it down",
                    ),
                    &["node"],
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("auth_build_info", "Version of the running binary"),
            &["version", "git_sha"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("AUTH_API_GIT_SHA")])
            .set(1);
        metrics.registry.register(Box::new(build_info)).expect("unique metric");
        #[cfg(target_os = "linux")]
        metrics
            .registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("unique metric");
        metrics
    }

    /// The actix middleware that records `http_requests_total` and
    /// `http_requests_duration_seconds` into this registry.
    pub fn http_middleware(&self) -> PrometheusMetrics {
        PrometheusMetricsBuilder::new("")
            .registry(self.registry.clone())
            .buckets(HTTP_BUCKETS)
            .mask_unmatched_patterns(UNMATCHED)
            .build()
            .expect("HTTP metrics register once per registry")
    }

    pub fn observe_dependency(&self, dependency: &str, operation: &str, took: Duration) {
        self.dependency_duration
            .with_label_values(&[dependency, operation])
            .observe(took.as_secs_f64());
    }

    /// Records a probe of the Redis nodes, each (address, role, up): nodes no longer listed
    /// drop out of the gauge, and a node's failure counter starts at zero when it is first seen.
    pub fn record_redis_nodes<'a>(&self, nodes: impl IntoIterator<Item = (&'a str, &'a str, bool)>) {
        self.redis_node_up.reset();
        for (node, role, up) in nodes {
            self.redis_node_up.with_label_values(&[node, role]).set(i64::from(up));
            self.redis_node_probe_failures
                .with_label_values(&[node])
                .inc_by(u64::from(!up));
        }
    }

    /// The exposition text of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
