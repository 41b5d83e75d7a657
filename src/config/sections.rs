//! The typed sections of the settings, each a value the rest of the service can rely on.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use secrecy::{ExposeSecret, SecretString};

/// Where users live.
#[derive(Clone, Debug)]
pub enum DatabaseSettings {
    Postgres { url: DatabaseUrl },
    Sqlite { path: PathBuf },
}

/// Where refresh sessions live.
#[derive(Clone, Debug)]
pub enum SessionSettings {
    Redis {
        target: RedisTarget,
        key_prefix: String,
        pool_max: u32,
    },
    Memory,
}

/// One Redis (a primary, with or without replicas), or the seed nodes of a Redis Cluster.
#[derive(Clone, Debug)]
pub enum RedisTarget {
    Single(DatabaseUrl),
    Cluster(Vec<DatabaseUrl>),
    /// The primary the Sentinels name `master`; `password` is the primary's.
    Sentinel {
        sentinels: Vec<DatabaseUrl>,
        master: String,
        password: Option<DatabaseUrl>,
    },
}

/// A connection URL whose `Debug` hides the password, so it can sit in a logged struct.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        let url = self.expose();
        let Some((scheme, rest)) = url.split_once("://") else {
            return "***".into();
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://{userinfo}@{host}"),
            },
            None => url.to_string(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Token lifetimes and JWT identity.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `None` only in embedded mode without a configured secret: the service then draws one
    /// at start-up, and access tokens die with the process.
    pub secret: Option<SecretString>,
    pub algorithm: SigningAlgorithm,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_lifetime: Duration,
    pub reuse_grace: Duration,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
}

/// How access tokens are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// One shared secret (`ACCESS_TOKEN_SECRET`).
    Hs256,
    EdDsa,
    Es256,
}

impl FromStr for SigningAlgorithm {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HS256" => Ok(Self::Hs256),
            "EdDSA" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            _ => Err("expected EdDSA, ES256 or HS256"),
        }
    }
}

/// The signing keys of EdDSA/ES256 tokens.
#[derive(Clone, Debug)]
pub struct KeySettings {
    /// `KEYS_ENCRYPTION_KEY` in base64, checked to be 32 bytes; `None` in embedded mode, where
    /// it is kept in a file beside the SQLite database.
    pub encryption_key: Option<SecretString>,
    pub cache_max_age: Duration,
    pub reload_interval: Duration,
    pub rotation_period: Duration,
}

/// SameSite attribute of the refresh cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl FromStr for SameSite {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err("expected Strict, Lax or None"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CookieSettings {
    pub secure: bool,
    pub same_site: SameSite,
}

/// argon2id cost and the size of the hashing pool.
#[derive(Clone, Debug)]
pub struct HashSettings {
    pub concurrency: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl FromStr for OtlpProtocol {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err("expected grpc or http/protobuf"),
        }
    }
}

/// Tracing export. Only what we decide on is here; the SDK reads the other `OTEL_*` itself.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// Whether any OTLP endpoint is configured (export is off otherwise).
    pub export: bool,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    pub sdk_disabled: bool,
    /// `OTEL_TRACES_SAMPLER`/`_ARG`: the tracer provider's sampler, also asked once per request
    /// before any of its spans exists.
    pub sampler: Sampler,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err("expected json or pretty"),
        }
    }
}

/// The header a trusted reverse proxy writes the client's address into (`CLIENT_IP_HEADER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, appended to by each proxy (nginx `$proxy_add_x_forwarded_for`).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`, appended to by each proxy.
    Forwarded,
    /// `X-Real-IP`, one address that the proxy overwrites.
    XRealIp,
    /// No header: the TCP peer is the client.
    None,
}

impl FromStr for ClientIpHeader {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "x-real-ip" => Ok(Self::XRealIp),
            "none" => Ok(Self::None),
            _ => Err("expected x-forwarded-for, forwarded, x-real-ip or none"),
        }
    }
}

/// Which peers are reverse proxies, and what of theirs is believed.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// `TRUSTED_PROXIES`; never a /0 (that would believe any client's headers).
    pub trusted: Vec<super::Cidr>,
    pub client_ip_header: ClientIpHeader,
}

#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_IPV6_PREFIX`: IPv6 clients share a quota per network of this length.
    pub ipv6_prefix: u8,
    pub per_second: u32,
    pub burst: u32,
    pub auth_per_minute: u32,
}

/// Per-account brute-force protection.
#[derive(Clone, Debug)]
pub struct LockoutSettings {
    pub max_failures: u32,
    pub base: Duration,
    pub max: Duration,
}

/// Where account mails go.
#[derive(Clone, Debug)]
pub enum MailTransport {
    /// An SMTP server (`SMTP_URL`, password masked in `Debug`).
    Smtp(DatabaseUrl),
    /// Embedded mode without `SMTP_URL`: each mail is logged with its link.
    Log,
    /// No `SMTP_URL` outside embedded mode: reset and verification are off.
    Off,
}

/// Passkeys' relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_ORIGINS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeySettings {
    pub rp_id: String,
    /// Origins like `https://app.example.com`, without a trailing slash.
    pub origins: Vec<String>,
}

/// Account mails: transport, links, lifetimes of their tokens, limits and retries.
#[derive(Clone, Debug)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub from: String,
    /// Without a trailing slash.
    pub public_app_url: String,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    pub require_verified_email: bool,
    pub per_address_per_hour: u32,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub smtp_timeout: Duration,
}
