//! Typed settings, read once from the environment (and an optional `.env`) and validated at
//! start. Every bad value yields its own message; all of them are reported together.
//!
//! [`VARIABLES`] is the one list of settings: the parser reads every variable through it,
//! `auth-api --help` prints it, and tests hold the README's table to it. Secrets
//! ([`FILE_SECRETS`]) may instead be given as a file path in `<NAME>_FILE`, the usual way
//! container orchestrators mount them.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use reader::{Reader, parse_origin, sampler};

mod cidr;
mod reader;
mod sections;
mod variables;

pub use cidr::{Cidr, network_of};
pub use sections::*;

pub use variables::{FILE_SECRETS, VARIABLES, Variable};

/// Everything the service needs to start. Fields are public so tests can adjust a parsed value.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host_addr: SocketAddr,
    pub database: DatabaseSettings,
    pub database_pool_max: u32,
    pub run_migrations: bool,
    pub sessions: SessionSettings,
    pub store_timeout: Duration,
    /// `SESSION_CACHE_MS`: how long a Bearer request's session check and user read are reused.
    pub session_cache: Duration,
    /// `SECURITY_EVENTS_RETENTION_DAYS`.
    pub security_events_retention: Duration,
    /// `MFA_ISSUER`.
    pub mfa_issuer: String,
    /// `None` when passkeys are off: the relying party defaulted to an address.
    pub passkeys: Option<PasskeySettings>,
    pub tokens: TokenSettings,
    pub keys: KeySettings,
    pub max_sessions_per_user: u32,
    pub cookie: CookieSettings,
    pub hashing: HashSettings,
    pub body_limit: usize,
    /// `SHUTDOWN_DELAY`: serving on, not ready, between the signal and closing the listener.
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`, the log filter in tracing-subscriber's syntax (`info` when unset).
    pub log_filter: Option<String>,
    /// `None` when metrics are off.
    pub metrics_addr: Option<SocketAddr>,
    /// `ADMIN_ADDR`; `None` when there is no admin listener.
    pub admin_addr: Option<SocketAddr>,
    pub telemetry: TelemetrySettings,
    pub cors_origins: Vec<String>,
    pub proxies: ProxySettings,
    pub rate_limits: RateLimitSettings,
    pub lockout: LockoutSettings,
    pub mail: MailSettings,
    /// `DOCS_ENABLED`: /openapi.json and /docs.
    pub docs: bool,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub keep_alive: Duration,
    pub header_limit: usize,
}

fn is_32_bytes_base64(text: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// The mail settings. Without `SMTP_URL`, embedded mode logs each mail with its link (a
/// newcomer can still click through) and any other mode turns the mail flows off, which
/// `REQUIRE_VERIFIED_EMAIL=true` cannot do without (nobody could ever log in).
fn read_mail(r: &mut Reader<'_>, embedded: bool) -> MailSettings {
    use variables::*;
    let transport = match r.secret(&SMTP_URL) {
        Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
            MailTransport::Smtp(DatabaseUrl::new(url))
        }
        Some(_) => {
            r.errors.push("SMTP_URL: expected an smtp:// or smtps:// URL".into());
            MailTransport::Off
        }
        None if embedded => MailTransport::Log,
        None => MailTransport::Off,
    };
    let from: String = r.parse(&MAIL_FROM);
    if from.parse::<lettre::message::Mailbox>().is_err() {
        r.errors.push(format!(
            "MAIL_FROM: `{from}` is not a mailbox like `Name <no-reply@example.com>`"
        ));
    }
    let public_app_url: String = r.parse(&PUBLIC_APP_URL);
    let public_app_url = public_app_url.trim_end_matches('/').to_string();
    if !(public_app_url.starts_with("https://") || public_app_url.starts_with("http://")) {
        r.errors
            .push("PUBLIC_APP_URL: expected an http:// or https:// URL".into());
    }
    let require_verified_email = r.parse(&REQUIRE_VERIFIED_EMAIL);
    if require_verified_email && matches!(transport, MailTransport::Off) {
        r.errors.push(
            "REQUIRE_VERIFIED_EMAIL: true needs SMTP_URL when DATABASE_URL or REDIS_URL is set (verification links could not be sent)"
                .into(),
        );
    }
    MailSettings {
        transport,
        from,
        public_app_url,
        reset_ttl: r.seconds(&PASSWORD_RESET_TTL),
        verify_ttl: r.seconds(&EMAIL_VERIFY_TTL),
        require_verified_email,
        per_address_per_hour: r.positive(&MAIL_PER_ADDRESS_PER_HOUR),
        retry_max: r.seconds(&MAIL_RETRY_MAX),
        max_attempts: r.positive(&MAIL_MAX_ATTEMPTS),
        smtp_timeout: r.seconds(&SMTP_TIMEOUT),
    }
}

/// The passkeys' relying party: an id every origin's host equals or ends under, since a
/// browser refuses a ceremony whose RP id is not a registrable suffix of the page's host.
/// Defaulted from `PUBLIC_APP_URL`; passkeys are off when that names an address (a browser
/// takes domains only) and neither setting is given.
fn read_passkeys(r: &mut Reader<'_>, public_app_url: &str) -> Option<PasskeySettings> {
    use variables::*;
    let explicit = r.raw(&WEBAUTHN_RP_ID).is_some() || r.raw(&WEBAUTHN_RP_ORIGINS).is_some();
    let app = url::Url::parse(public_app_url).ok()?;
    let origins = match r.raw(&WEBAUTHN_RP_ORIGINS) {
        Some(_) => r.list(&WEBAUTHN_RP_ORIGINS, parse_origin),
        None => vec![app.origin().ascii_serialization()],
    };
    let rp_id = match r.raw(&WEBAUTHN_RP_ID) {
        Some(id) => id.trim().trim_end_matches('.').to_ascii_lowercase(),
        None => app.host_str()?.to_ascii_lowercase(),
    };
    let is_address = rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[');
    if is_address || rp_id.is_empty() {
        if explicit {
            r.errors.push(format!(
                "WEBAUTHN_RP_ID: `{rp_id}` is not a domain (browsers refuse addresses as a relying party)"
            ));
        }
        return None;
    }
    for origin in &origins {
        let host = url::Url::parse(origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
            r.errors.push(format!(
                "WEBAUTHN_RP_ID: `{rp_id}` is not a registrable suffix of the origin `{origin}` (set WEBAUTHN_RP_ID and WEBAUTHN_RP_ORIGINS together)"
            ));
        }
    }
    if origins.is_empty() {
        r.errors.push("WEBAUTHN_RP_ORIGINS: name at least one origin".into());
    }
    Some(PasskeySettings { rp_id, origins })
}

/// The URL in `var`, checked here so that a bad one is reported with the others (status 2)
/// rather than when the first connection is made, with the password of `password_var` put in
/// (percent-encoded) when that is given: a generated password may hold `/`, `+` or `=`, which
/// cannot be pasted into a URL as they are.
fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// `list`, comma-separated redis:// or rediss:// URLs; `None`, and an error naming `var`, when
/// it is empty or one is not such a URL.
fn redis_urls(r: &mut Reader<'_>, var: &Variable, list: &str) -> Option<Vec<String>> {
    let urls: Vec<String> = list
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if urls.is_empty() || !urls.iter().all(|n| is_redis(n)) {
        r.errors.push(format!(
            "{}: expected comma-separated redis:// or rediss:// URLs",
            var.name
        ));
        return None;
    }
    Some(urls)
}

fn store_url(r: &mut Reader<'_>, var: &Variable, url: String, password_var: &Variable) -> DatabaseUrl {
    let password = r.secret(password_var);
    let mut parsed = match url::Url::parse(&url) {
        Ok(parsed) if parsed.has_host() => parsed,
        Ok(_) => {
            r.errors.push(format!("{}: the URL names no host", var.name));
            return DatabaseUrl::new(url);
        }
        // The parser's message names the part (port, host), never the value.
        Err(e) => {
            r.errors.push(format!(
                "{}: not a valid URL ({e}); a password with reserved characters (/ ? # @ :) must be percent-encoded, or given in {} instead",
                var.name, password_var.name
            ));
            return DatabaseUrl::new(url);
        }
    };
    let Some(password) = password else {
        return DatabaseUrl::new(url);
    };
    if parsed.password().is_some() {
        r.errors
            .push(format!("{}: {} holds a password already", password_var.name, var.name));
    } else if parsed.set_password(Some(&password)).is_err() {
        r.errors
            .push(format!("{}: {} cannot take a password", password_var.name, var.name));
    }
    DatabaseUrl::new(String::from(parsed))
}

/// A trusted proxy block. A /0 is refused: it would believe every client's forwarding headers,
/// so anyone could choose the address their rate limits and session list see.
fn parse_proxy(raw: &str) -> Result<Cidr, String> {
    let cidr: Cidr = raw.parse()?;
    if cidr.prefix() == 0 {
        return Err(format!(
            "`{raw}` trusts every address: list the proxies' own blocks (e.g. 10.0.0.0/8)"
        ));
    }
    Ok(cidr)
}

/// All the problems found in the environment, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(lookup).0
    }

    /// The settings, and the name of every variable read on the way.
    fn read(lookup: impl Fn(&str) -> Option<String>) -> (Result<Self, ConfigError>, Vec<&'static str>) {
        use variables::*;
        let mut r = Reader {
            lookup: &lookup,
            errors: Vec::new(),
            read: Vec::new(),
        };

        let database = match r.secret(&DATABASE_URL) {
            None => DatabaseSettings::Sqlite {
                path: r.parse(&SQLITE_PATH),
            },
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseSettings::Postgres {
                    url: store_url(&mut r, &DATABASE_URL, url, &DATABASE_PASSWORD),
                }
            }
            Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
                Some(path) => DatabaseSettings::Sqlite {
                    path: PathBuf::from(path),
                },
                None => {
                    r.errors
                        .push("DATABASE_URL: expected a postgres:// or sqlite: URL".into());
                    DatabaseSettings::Sqlite { path: PathBuf::new() }
                }
            },
        };
        let redis_url = r.secret(&REDIS_URL);
        let cluster_nodes = r.secret(&REDIS_CLUSTER_NODES);
        let sentinels = r.secret(&REDIS_SENTINELS);
        let sentinel_master = r.raw(&REDIS_SENTINEL_MASTER);
        let embedded = redis_url.is_none()
            && cluster_nodes.is_none()
            && sentinels.is_none()
            && matches!(database, DatabaseSettings::Sqlite { .. });
        let several = [redis_url.is_some(), cluster_nodes.is_some(), sentinels.is_some()]
            .iter()
            .filter(|given| **given)
            .count()
            > 1;
        if several {
            r.errors
                .push("REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS: set one of them, not several".into());
        }
        if sentinels.is_some() != sentinel_master.is_some() {
            r.errors
                .push("REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS, and only with it".into());
        }
        let target = match (redis_url, cluster_nodes, sentinels) {
            _ if several => None,
            (Some(url), _, _) if is_redis(&url) => {
                Some(RedisTarget::Single(store_url(&mut r, &REDIS_URL, url, &REDIS_PASSWORD)))
            }
            (Some(_), _, _) => {
                r.errors.push("REDIS_URL: expected a redis:// or rediss:// URL".into());
                None
            }
            (_, Some(nodes), _) => redis_urls(&mut r, &REDIS_CLUSTER_NODES, &nodes).map(|nodes| {
                let nodes = nodes
                    .into_iter()
                    .map(|node| store_url(&mut r, &REDIS_CLUSTER_NODES, node, &REDIS_PASSWORD))
                    .collect();
                RedisTarget::Cluster(nodes)
            }),
            // The password is the primary's; a Sentinel's own is in its URL.
            (_, _, Some(list)) => redis_urls(&mut r, &REDIS_SENTINELS, &list).map(|list| RedisTarget::Sentinel {
                sentinels: list.into_iter().map(DatabaseUrl::new).collect(),
                master: sentinel_master.unwrap_or_default(),
                password: r.secret(&REDIS_PASSWORD).map(DatabaseUrl::new),
            }),
            (None, None, None) => None,
        };
        let sessions = match target {
            Some(target) => {
                let key_prefix: String = r.parse(&REDIS_KEY_PREFIX);
                // The service puts a hash tag of its own in each key; a brace in the prefix would
                // become the tag and put every key of every user in one slot of a cluster.
                if key_prefix.contains(['{', '}']) {
                    r.errors.push(
                        "REDIS_KEY_PREFIX: must not contain `{` or `}` (the service sets the keys' hash tags)".into(),
                    );
                }
                SessionSettings::Redis {
                    target,
                    key_prefix,
                    pool_max: r.positive(&REDIS_POOL_MAX),
                }
            }
            None => SessionSettings::Memory,
        };

        let secret = match r.secret(&ACCESS_TOKEN_SECRET) {
            Some(s) if s.len() >= 32 => Some(SecretString::from(s)),
            Some(_) => {
                r.errors
                    .push("ACCESS_TOKEN_SECRET: must be at least 32 bytes (e.g. `openssl rand -base64 48`)".into());
                None
            }
            None => None,
        };
        let algorithm = r.parse_or(
            &ACCESS_TOKEN_ALG,
            if r.secret_was_given(&ACCESS_TOKEN_SECRET) {
                SigningAlgorithm::Hs256
            } else {
                SigningAlgorithm::EdDsa
            },
        );
        if algorithm == SigningAlgorithm::Hs256 && secret.is_none() && !embedded && r.errors.is_empty() {
            r.errors.push("ACCESS_TOKEN_SECRET: required with ACCESS_TOKEN_ALG=HS256 when DATABASE_URL or REDIS_URL is set (tokens would not survive a restart or be shared between replicas)".into());
        }
        let encryption_key = match r.secret(&KEYS_ENCRYPTION_KEY) {
            Some(key) if is_32_bytes_base64(&key) => Some(SecretString::from(key)),
            Some(_) => {
                r.errors
                    .push("KEYS_ENCRYPTION_KEY: must be 32 bytes in base64 (`openssl rand -base64 32`)".into());
                None
            }
            None if algorithm != SigningAlgorithm::Hs256 && !embedded => {
                r.errors.push("KEYS_ENCRYPTION_KEY: required with EdDSA or ES256 tokens when DATABASE_URL or REDIS_URL is set (it seals the signing keys in the database; set ACCESS_TOKEN_ALG=HS256 with ACCESS_TOKEN_SECRET to keep shared-secret tokens)".into());
                None
            }
            None => None,
        };
        let keys = KeySettings {
            encryption_key,
            cache_max_age: r.seconds(&KEYS_CACHE_MAX_AGE),
            reload_interval: r.seconds(&KEYS_RELOAD_INTERVAL),
            rotation_period: r.seconds(&KEY_ROTATION_PERIOD),
        };
        let refresh_ttl = r.seconds(&REFRESH_TOKEN_TTL);
        let session_lifetime = r.seconds(&SESSION_MAX_LIFETIME);
        if session_lifetime < refresh_ttl {
            r.errors
                .push("SESSION_MAX_LIFETIME: must not be shorter than REFRESH_TOKEN_TTL".into());
        }
        let leeway: u64 = r.parse(&JWT_LEEWAY);
        if leeway > 5 {
            r.errors.push("JWT_LEEWAY: at most 5 seconds".into());
        }
        let tokens = TokenSettings {
            secret,
            algorithm,
            access_ttl: r.seconds(&ACCESS_TOKEN_TTL),
            refresh_ttl,
            session_lifetime,
            reuse_grace: Duration::from_secs(r.parse(&REFRESH_REUSE_GRACE)),
            issuer: r.parse(&JWT_ISSUER),
            audience: r.parse(&JWT_AUDIENCE),
            leeway: Duration::from_secs(leeway),
        };

        let mail = read_mail(&mut r, embedded);
        let passkeys = read_passkeys(&mut r, &mail.public_app_url);

        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let terminal_format = if std::io::stdout().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        };
        let settings = Settings {
            host_addr: r.parse(&HOST_ADDR),
            database,
            database_pool_max: r.positive(&DATABASE_POOL_MAX),
            run_migrations: r.parse(&RUN_MIGRATIONS),
            sessions,
            store_timeout: Duration::from_millis(r.positive(&STORE_TIMEOUT_MS)),
            session_cache: Duration::from_millis(r.parse(&SESSION_CACHE_MS)),
            tokens,
            keys,
            max_sessions_per_user: r.positive(&MAX_SESSIONS_PER_USER),
            security_events_retention: Duration::from_secs(86_400 * r.positive::<u64>(&SECURITY_EVENTS_RETENTION_DAYS)),
            mfa_issuer: r.raw(&MFA_ISSUER).unwrap_or_else(|| r.parse(&OTEL_SERVICE_NAME)),
            passkeys,
            cookie: CookieSettings {
                secure: r.parse(&COOKIE_SECURE),
                same_site: r.parse(&COOKIE_SAMESITE),
            },
            hashing: HashSettings {
                concurrency: r.positive_or(&HASH_CONCURRENCY, cpus),
                memory_kib: r.positive(&ARGON2_MEMORY_KIB),
                iterations: r.positive(&ARGON2_ITERATIONS),
                parallelism: r.positive(&ARGON2_PARALLELISM),
            },
            body_limit: r.positive(&BODY_LIMIT_BYTES),
            shutdown_delay: Duration::from_secs(r.parse(&SHUTDOWN_DELAY)),
            shutdown_timeout: Duration::from_secs(r.parse(&SHUTDOWN_TIMEOUT)),
            log_format: r.parse_or(&LOG_FORMAT, terminal_format),
            log_filter: r.raw(&RUST_LOG),
            metrics_addr: match r.raw(&METRICS_ADDR).as_deref() {
                Some("off") => None,
                _ => Some(r.parse(&METRICS_ADDR)),
            },
            admin_addr: match r.raw(&ADMIN_ADDR).as_deref() {
                None | Some("off") => None,
                // On a bad value the error is reported and this placeholder never serves.
                _ => Some(r.parse_or(&ADMIN_ADDR, SocketAddr::from(([127, 0, 0, 1], 0)))),
            },
            telemetry: TelemetrySettings {
                export: r.raw(&OTEL_EXPORTER_OTLP_ENDPOINT).is_some()
                    || r.raw(&OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some(),
                protocol: r.parse(&OTEL_EXPORTER_OTLP_PROTOCOL),
                service_name: r.parse(&OTEL_SERVICE_NAME),
                sdk_disabled: r.parse(&OTEL_SDK_DISABLED),
                sampler: sampler(
                    r.raw(&OTEL_TRACES_SAMPLER).as_deref(),
                    r.raw(&OTEL_TRACES_SAMPLER_ARG).as_deref(),
                ),
            },
            cors_origins: r.list(&CORS_ALLOWED_ORIGINS, parse_origin),
            proxies: ProxySettings {
                trusted: r.list(&TRUSTED_PROXIES, parse_proxy),
                client_ip_header: r.parse(&CLIENT_IP_HEADER),
            },
            rate_limits: RateLimitSettings {
                ipv6_prefix: r.parse(&RATE_LIMIT_IPV6_PREFIX),
                per_second: r.positive(&RATE_LIMIT_PER_SECOND),
                burst: r.positive(&RATE_LIMIT_BURST),
                auth_per_minute: r.positive(&RATE_LIMIT_AUTH_PER_MINUTE),
            },
            lockout: LockoutSettings {
                max_failures: r.positive(&LOGIN_MAX_FAILURES),
                base: r.seconds(&LOGIN_LOCKOUT),
                max: r.seconds(&LOGIN_LOCKOUT_MAX),
            },
            mail,
            docs: r.parse(&DOCS_ENABLED),
            request_timeout: r.seconds(&REQUEST_TIMEOUT),
            header_timeout: r.seconds(&CLIENT_HEADER_TIMEOUT),
            keep_alive: r.seconds(&KEEP_ALIVE),
            header_limit: r.positive(&HEADER_LIMIT_BYTES),
        };
        // Read by the OpenTelemetry SDK itself; listed so that they are documented.
        r.read
            .extend([OTEL_RESOURCE_ATTRIBUTES.name, OTEL_BSP_SCHEDULE_DELAY.name]);
        if !(1..=128).contains(&settings.rate_limits.ipv6_prefix) {
            r.errors
                .push("RATE_LIMIT_IPV6_PREFIX: a prefix length from 1 to 128".into());
        }
        if let Some(admin) = settings.admin_addr
            && admin.port() != 0
            && admin.port() == settings.host_addr.port()
        {
            r.errors
                .push("ADMIN_ADDR: the admin listener never shares the API's port".into());
        }
        if settings.cookie.same_site == SameSite::None && !settings.cookie.secure {
            r.errors
                .push("COOKIE_SAMESITE: None requires COOKIE_SECURE=true (browsers drop such cookies)".into());
        }
        let result = if r.errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(r.errors))
        };
        (result, r.read)
    }

    /// True when both stores are the embedded ones (one process owns all state).
    pub fn is_embedded(&self) -> bool {
        matches!(self.database, DatabaseSettings::Sqlite { .. }) && matches!(self.sessions, SessionSettings::Memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::Sampler;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn one_redis_target_at_a_time_and_sentinels_name_their_primary() {
        let base = [
            ("DATABASE_URL", "postgres://u@db/auth"),
            ("KEYS_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ];
        let with = |vars: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(vars);
            settings(&all)
        };
        let target = |vars| match with(vars).unwrap().sessions {
            SessionSettings::Redis { target, .. } => target,
            SessionSettings::Memory => panic!("redis"),
        };
        assert!(matches!(
            target(&[("REDIS_CLUSTER_NODES", "redis://a:7000, redis://b:7001")]),
            RedisTarget::Cluster(nodes) if nodes.len() == 2
        ));
        assert!(matches!(
            target(&[("REDIS_SENTINELS", "redis://s1:26379,redis://s2:26379"), ("REDIS_SENTINEL_MASTER", "auth")]),
            RedisTarget::Sentinel { sentinels, master, .. } if sentinels.len() == 2 && master == "auth"
        ));
        let refused = |vars, expected: &str| {
            let err = with(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{vars:?}: {err}");
        };
        refused(
            &[("REDIS_URL", "redis://a"), ("REDIS_CLUSTER_NODES", "redis://b:7000")],
            "set one of them",
        );
        refused(
            &[
                ("REDIS_URL", "redis://a"),
                ("REDIS_SENTINELS", "redis://s:26379"),
                ("REDIS_SENTINEL_MASTER", "m"),
            ],
            "set one of them",
        );
        refused(
            &[("REDIS_SENTINELS", "redis://s:26379")],
            "REDIS_SENTINEL_MASTER: required",
        );
        refused(&[("REDIS_SENTINEL_MASTER", "auth")], "REDIS_SENTINEL_MASTER: required");
        refused(
            &[("REDIS_CLUSTER_NODES", "http://a:7000")],
            "REDIS_CLUSTER_NODES: expected",
        );
    }

    #[test]
    fn a_redis_key_prefix_with_a_brace_is_refused() {
        let redis = [
            ("DATABASE_URL", "postgres://u@db/auth"),
            ("REDIS_URL", "redis://cache"),
            ("KEYS_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ];
        let with = |prefix| {
            let mut vars = redis.to_vec();
            vars.push(("REDIS_KEY_PREFIX", prefix));
            settings(&vars)
        };
        assert!(with("tenant-a:").is_ok(), "{:?}", with("tenant-a:").err());
        for bad in ["{auth}:", "auth:}", "a{b"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("REDIS_KEY_PREFIX: must not contain"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_admin_listener_is_off_by_default_and_never_on_the_api_port() {
        assert_eq!(settings(&[]).unwrap().admin_addr, None);
        let on = settings(&[("ADMIN_ADDR", "127.0.0.1:9200")]).unwrap();
        assert_eq!(on.admin_addr.map(|a| a.port()), Some(9200));
        let err = settings(&[("ADMIN_ADDR", "127.0.0.1:3001")]).unwrap_err().to_string();
        assert!(
            err.contains("ADMIN_ADDR: the admin listener never shares the API's port"),
            "{err}"
        );
    }

    #[test]
    fn the_passkey_relying_party_is_a_suffix_of_every_origin() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.passkeys,
            Some(PasskeySettings {
                rp_id: "localhost".into(),
                origins: vec!["http://localhost:5173".into()]
            })
        );
        let s = settings(&[
            ("WEBAUTHN_RP_ID", "example.com"),
            ("WEBAUTHN_RP_ORIGINS", "https://app.example.com, https://example.com"),
        ])
        .unwrap();
        assert_eq!(s.passkeys.unwrap().origins.len(), 2);
        // An address as PUBLIC_APP_URL turns passkeys off, unless they were asked for.
        let s = settings(&[("PUBLIC_APP_URL", "http://127.0.0.1:8080")]).unwrap();
        assert_eq!(s.passkeys, None);
        let refused = [
            vec![
                ("WEBAUTHN_RP_ID", "example.com"),
                ("WEBAUTHN_RP_ORIGINS", "https://myexample.com"),
            ],
            vec![
                ("WEBAUTHN_RP_ID", "app.example.com"),
                ("WEBAUTHN_RP_ORIGINS", "https://example.com"),
            ],
            vec![
                ("PUBLIC_APP_URL", "https://evil.test"),
                ("WEBAUTHN_RP_ID", "example.com"),
            ],
            vec![("WEBAUTHN_RP_ID", "127.0.0.1")],
        ];
        for vars in refused {
            let err = settings(&vars).unwrap_err().to_string();
            assert!(err.contains("WEBAUTHN_RP_ID"), "{vars:?}: {err}");
        }
    }

    #[test]
    fn bare_environment_is_embedded_without_a_secret() {
        let s = settings(&[]).expect("defaults are valid");
        assert!(s.is_embedded());
        assert!(s.tokens.secret.is_none(), "drawn at start-up, not by the settings");
        assert_eq!(s.host_addr.to_string(), "127.0.0.1:3001");
        assert_eq!(s.tokens.access_ttl, Duration::from_secs(300));
        assert_eq!(s.max_sessions_per_user, 1);
    }

    #[test]
    fn mail_goes_to_the_log_in_embedded_mode_and_is_off_elsewhere_without_smtp() {
        let embedded = settings(&[]).unwrap();
        assert!(matches!(embedded.mail.transport, MailTransport::Log));
        assert_eq!(embedded.mail.reset_ttl, Duration::from_secs(1800));
        assert_eq!(embedded.mail.verify_ttl, Duration::from_secs(86400));
        assert!(!embedded.mail.require_verified_email);
        let postgres = [
            ("DATABASE_URL", "postgres://db/auth"),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        assert!(matches!(
            settings(&postgres).unwrap().mail.transport,
            MailTransport::Off
        ));
        let mut required = postgres.to_vec();
        required.push(("REQUIRE_VERIFIED_EMAIL", "true"));
        let err = settings(&required).unwrap_err().to_string();
        assert!(err.contains("REQUIRE_VERIFIED_EMAIL: true needs SMTP_URL"), "{err}");
        required.push(("SMTP_URL", "smtp://relay:s3cret-relay-pass@mx.example.com:587"));
        let s = settings(&required).unwrap();
        let MailTransport::Smtp(url) = &s.mail.transport else {
            panic!("SMTP")
        };
        assert_eq!(format!("{url:?}"), "smtp://relay:***@mx.example.com:587");
        assert!(
            !format!("{s:?}").contains("s3cret-relay-pass"),
            "the password never prints"
        );
    }

    #[test]
    fn bad_mail_settings_are_refused() {
        let err = settings(&[
            ("SMTP_URL", "http://mx.example.com"),
            ("MAIL_FROM", "not a mailbox"),
            ("PUBLIC_APP_URL", "app.example.com"),
            ("MAIL_MAX_ATTEMPTS", "0"),
        ])
        .unwrap_err()
        .to_string();
        for expected in [
            "SMTP_URL: expected an smtp:// or smtps:// URL",
            "MAIL_FROM: `not a mailbox`",
            "PUBLIC_APP_URL: expected an http",
            "MAIL_MAX_ATTEMPTS: must be greater than zero",
        ] {
            assert!(err.contains(expected), "{expected} missing from {err}");
        }
        let s = settings(&[("PUBLIC_APP_URL", "https://app.example.com/")]).unwrap();
        assert_eq!(s.mail.public_app_url, "https://app.example.com");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let err = settings(&[
            ("HOST_ADDR", "nowhere"),
            ("ACCESS_TOKEN_SECRET", "short"),
            ("COOKIE_SAMESITE", "sometimes"),
            ("ACCESS_TOKEN_TTL", "0"),
            ("JWT_LEEWAY", "60"),
        ])
        .expect_err("five bad values");
        let mut names: Vec<&str> = err.0.iter().map(|e| e.split(':').next().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "ACCESS_TOKEN_SECRET",
                "ACCESS_TOKEN_TTL",
                "COOKIE_SAMESITE",
                "HOST_ADDR",
                "JWT_LEEWAY"
            ]
        );
    }

    #[test]
    fn production_backends_require_their_secrets() {
        let pg = ("DATABASE_URL", "postgres://u:p@db/auth");
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[pg], "KEYS_ENCRYPTION_KEY: required"),
            (
                &[pg, ("KEYS_ENCRYPTION_KEY", "c2hvcnQ=")],
                "KEYS_ENCRYPTION_KEY: must be 32 bytes",
            ),
            (&[pg, ("ACCESS_TOKEN_ALG", "HS256")], "ACCESS_TOKEN_SECRET: required"),
            (&[pg, ("ACCESS_TOKEN_ALG", "RS256")], "ACCESS_TOKEN_ALG: cannot use"),
        ];
        for (vars, expected) in cases {
            let err = settings(vars).expect_err(expected);
            assert!(err.0.iter().any(|e| e.starts_with(expected)), "{expected}: {err}");
        }
        // A deployment that had only ACCESS_TOKEN_SECRET keeps HS256, and so its users' tokens.
        let kept = settings(&[pg, ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
        assert_eq!(kept.tokens.algorithm, SigningAlgorithm::Hs256);
        let new = settings(&[
            pg,
            ("KEYS_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ])
        .unwrap();
        assert_eq!(new.tokens.algorithm, SigningAlgorithm::EdDsa);
        assert_eq!(
            settings(&[]).unwrap().tokens.algorithm,
            SigningAlgorithm::EdDsa,
            "embedded default"
        );
    }

    #[test]
    fn database_url_debug_masks_the_password() {
        let url = DatabaseUrl::new("postgres://app:hunter2hunter2@db:5432/auth");
        let shown = format!("{url:?}");
        assert_eq!(shown, "postgres://app:***@db:5432/auth");
        let s = settings(&[
            ("DATABASE_URL", "postgres://app:hunter2hunter2@db:5432/auth"),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn unsafe_browser_settings_refuse_to_start() {
        let cases = [
            (
                vec![("CORS_ALLOWED_ORIGINS", "https://app.example.com, *")],
                "CORS_ALLOWED_ORIGINS",
                "wildcard origin",
            ),
            (
                vec![("CORS_ALLOWED_ORIGINS", "null")],
                "CORS_ALLOWED_ORIGINS",
                "null origin",
            ),
            (
                vec![("CORS_ALLOWED_ORIGINS", "app.example.com")],
                "CORS_ALLOWED_ORIGINS",
                "no scheme",
            ),
            (
                vec![("COOKIE_SAMESITE", "None"), ("COOKIE_SECURE", "false")],
                "COOKIE_SAMESITE",
                "None without Secure",
            ),
            (vec![("TRUSTED_PROXIES", "10.0.0.0/99")], "TRUSTED_PROXIES", "bad CIDR"),
            (
                vec![("TRUSTED_PROXIES", "10.0.0.0/8, 0.0.0.0/0")],
                "TRUSTED_PROXIES",
                "every IPv4 client trusted",
            ),
            (
                vec![("TRUSTED_PROXIES", "::/0")],
                "TRUSTED_PROXIES",
                "every IPv6 client trusted",
            ),
            (
                vec![("CLIENT_IP_HEADER", "x-client-ip")],
                "CLIENT_IP_HEADER",
                "a header we do not read",
            ),
            (
                vec![("RATE_LIMIT_IPV6_PREFIX", "0")],
                "RATE_LIMIT_IPV6_PREFIX",
                "one quota for all of IPv6",
            ),
            (
                vec![("RATE_LIMIT_IPV6_PREFIX", "129")],
                "RATE_LIMIT_IPV6_PREFIX",
                "longer than an address",
            ),
        ];
        for (vars, name, why) in cases {
            let err = settings(&vars).expect_err(why);
            assert!(err.0.iter().any(|e| e.starts_with(name)), "{why}: {err}");
        }
        let ok = settings(&[
            (
                "CORS_ALLOWED_ORIGINS",
                "https://App.example.com/, http://localhost:5173",
            ),
            ("COOKIE_SAMESITE", "None"),
        ])
        .unwrap();
        assert_eq!(ok.cors_origins, ["https://app.example.com", "http://localhost:5173"]);
    }

    /// The parser reads exactly the variables of the table, and every value default parses.
    #[test]
    fn the_parser_reads_every_listed_variable() {
        let all_branches: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:p@db/auth"),
            ("REDIS_URL", "redis://cache"),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
            ("KEYS_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (settings, mut read) = Settings::read(|k| all_branches.get(k).cloned());
        settings.expect("the documented defaults are valid");
        let (_, embedded) = Settings::read(|_| None);
        read.extend(embedded);
        read.sort_unstable();
        read.dedup();
        let mut listed: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        listed.sort_unstable();
        assert_eq!(read, listed);
    }

    /// Exactly the listed secrets are read from `<NAME>_FILE` (what `--help` and the README say).
    #[test]
    fn the_file_secrets_are_the_listed_ones() {
        let base = [
            ("DATABASE_URL", "postgres://u@db/auth"),
            ("REDIS_URL", "redis://cache"),
            ("SMTP_URL", "smtp://mail:25"),
        ];
        let mut from_files: Vec<&str> = VARIABLES
            .iter()
            .map(|v| v.name)
            .filter(|name| {
                let file = format!("{name}_FILE");
                let mut vars: Vec<(&str, &str)> = base.iter().filter(|(k, _)| k != name).copied().collect();
                vars.push((&file, "/nonexistent/secret"));
                settings(&vars).is_err_and(|e| e.0.iter().any(|line| line.starts_with(&file)))
            })
            .collect();
        from_files.sort_unstable();
        let mut listed = FILE_SECRETS.to_vec();
        listed.sort_unstable();
        assert_eq!(from_files, listed);
    }

    #[test]
    fn urls_are_checked_at_start_and_passwords_need_no_encoding() {
        let password = "a/b+c=d?e#f@g:h";
        let s = settings(&[
            ("DATABASE_URL", "postgres://auth@db:5432/auth"),
            ("DATABASE_PASSWORD", password),
            ("REDIS_URL", "redis://cache:6379"),
            ("REDIS_PASSWORD", password),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        let DatabaseSettings::Postgres { url } = &s.database else {
            panic!("postgres")
        };
        let parsed = url::Url::parse(url.expose()).unwrap();
        assert_eq!(parsed.host_str(), Some("db"));
        let decoded = percent_encoding::percent_decode_str(parsed.password().unwrap())
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, password);
        let SessionSettings::Redis {
            target: RedisTarget::Single(url),
            ..
        } = &s.sessions
        else {
            panic!("redis")
        };
        assert_eq!(url::Url::parse(url.expose()).unwrap().host_str(), Some("cache"));

        // The compose recipe of old: a generated password pasted into the URL.
        let err = settings(&[
            ("DATABASE_URL", "postgres://auth:ab/cd+ef=@db:5432/auth"),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap_err();
        let line = err.0.iter().find(|l| l.starts_with("DATABASE_URL")).expect("reported");
        assert!(line.contains("DATABASE_PASSWORD") && !line.contains("ab/cd"), "{line}");
        let err = settings(&[
            ("DATABASE_URL", "postgres://auth:x@db/auth"),
            ("DATABASE_PASSWORD", "y"),
            ("ACCESS_TOKEN_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap_err();
        assert!(err.0.iter().any(|l| l.starts_with("DATABASE_PASSWORD")), "{err}");
    }

    #[test]
    fn sampler_variables_name_the_specifications_samplers() {
        use Sampler::*;
        let parent_based = |root| ParentBased(Box::new(root));
        let cases = [
            (None, None, parent_based(AlwaysOn)),
            (Some("always_off"), None, AlwaysOff),
            (Some("traceidratio"), Some("0.25"), TraceIdRatioBased(0.25)),
            (
                Some("parentbased_traceidratio"),
                Some("0.1"),
                parent_based(TraceIdRatioBased(0.1)),
            ),
            (Some("traceidratio"), Some("7"), TraceIdRatioBased(1.0)),
            (Some("jaeger_remote"), None, parent_based(AlwaysOn)),
        ];
        for (name, arg, expected) in cases {
            // The SDK's sampler has no `PartialEq`; its `Debug` names the variant and ratio.
            assert_eq!(
                format!("{:?}", sampler(name, arg)),
                format!("{expected:?}"),
                "{name:?} {arg:?}"
            );
        }
    }

    #[test]
    fn secret_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("auth-api-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "a-secret-that-is-long-enough-for-hs256\n").unwrap();
        let s = settings(&[("ACCESS_TOKEN_SECRET_FILE", path.to_str().unwrap())]).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            s.tokens.secret.as_ref().map(|s| s.expose_secret()),
            Some("a-secret-that-is-long-enough-for-hs256")
        );
    }
}
