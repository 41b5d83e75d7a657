//! The one list of settings: each variable's name, default and help are written here once.
//! The parser reads every variable through its entry here (a default that is a value, not a
//! description in parentheses, is parsed from this text), `auth-api --help` prints the list,
//! and a test holds the README's settings table to it row by row.

/// One environment variable: its name, its default (as text: parsed when it is a value, shown
/// in the docs) and what it does.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// The secrets, which may instead be read from the file that `<NAME>_FILE` names.
pub const FILE_SECRETS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_PASSWORD",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINELS",
    "REDIS_PASSWORD",
    "ACCESS_TOKEN_SECRET",
    "KEYS_ENCRYPTION_KEY",
    "SMTP_URL",
];

macro_rules! variables {
    ($($name:ident = $default:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $name: Variable = Variable { name: stringify!($name), default: $default, help: $help };
        )*
        /// Every setting the service reads, in the order of the README's table.
        pub const VARIABLES: &[Variable] = &[$($name),*];
    };
}

variables! {
    HOST_ADDR = "127.0.0.1:3001",
        "address the API listens on";
    DATABASE_URL = "(unset: SQLite)",
        "postgres://… for PostgreSQL; unset uses the SQLite file SQLITE_PATH";
    DATABASE_PASSWORD = "(none)",
        "the PostgreSQL password, when DATABASE_URL holds none: any characters, no URL encoding (docker-compose.yml passes POSTGRES_PASSWORD here)";
    SQLITE_PATH = "./data/auth.db",
        "SQLite file of the embedded user store (created if missing)";
    DATABASE_POOL_MAX = "10",
        "PostgreSQL/SQLite connections; PostgreSQL keeps all of them open, dialled in the background";
    RUN_MIGRATIONS = "true",
        "apply pending migrations at start (else run `auth-api migrate`)";
    REDIS_URL = "(unset: in-process)",
        "redis://… for refresh sessions; unset keeps them in this process (one instance only)";
    REDIS_CLUSTER_NODES = "(unset)",
        "instead of REDIS_URL: seed nodes of a Redis Cluster, comma-separated redis://host:port (or rediss://)";
    REDIS_SENTINELS = "(unset)",
        "instead of REDIS_URL: Redis Sentinels, comma-separated redis://host:port (or rediss://, and then the primary is reached over TLS too); the primary is the one they name REDIS_SENTINEL_MASTER";
    REDIS_SENTINEL_MASTER = "(unset)",
        "the name the Sentinels monitor the primary under (required with REDIS_SENTINELS)";
    REDIS_PASSWORD = "(none)",
        "the Redis password, when REDIS_URL (or a node's URL) holds none, and the primary's behind Sentinels: any characters, no URL encoding";
    REDIS_KEY_PREFIX = "auth:",
        "prefix of every Redis key (no `{` or `}`: the service sets the hash tags)";
    REDIS_POOL_MAX = "16",
        "most Redis connections";
    STORE_TIMEOUT_MS = "1000",
        "bound on acquiring a connection and on one store call; past it the request answers 503";
    SESSION_CACHE_MS = "1000",
        "how long an instance may reuse a positive session check and the user row for Bearer requests (0: read both on every request); a session revoked or a user changed elsewhere is seen within it";
    ACCESS_TOKEN_ALG = "(HS256 if ACCESS_TOKEN_SECRET is set, else EdDSA)",
        "signing algorithm of access tokens: EdDSA, ES256 (keys in the user store, published at /.well-known/jwks.json) or HS256 (one shared secret)";
    ACCESS_TOKEN_SECRET = "(required with HS256; random in embedded mode)",
        "HS256 signing key, at least 32 bytes";
    ACCESS_TOKEN_TTL = "300",
        "access token lifetime, seconds";
    KEYS_ENCRYPTION_KEY = "(required with EdDSA/ES256 outside embedded mode; generated in embedded mode)",
        "32 bytes, base64 (`openssl rand -base64 32`): seals the private signing keys stored in the database";
    KEYS_CACHE_MAX_AGE = "300",
        "seconds verifiers may cache /.well-known/jwks.json (its Cache-Control max-age)";
    KEYS_RELOAD_INTERVAL = "60",
        "seconds between two reloads of the key set from the database, on every instance";
    KEY_ROTATION_PERIOD = "2592000",
        "seconds between automatic key rotations";
    REFRESH_TOKEN_TTL = "172800",
        "refresh token lifetime (idle timeout of a session), seconds";
    SESSION_MAX_LIFETIME = "2592000",
        "absolute session lifetime whatever the refreshes, seconds";
    REFRESH_REUSE_GRACE = "10",
        "seconds a just-rotated refresh token still answers with its successor";
    MAX_SESSIONS_PER_USER = "1",
        "sessions kept per user; the oldest is evicted beyond it";
    SECURITY_EVENTS_RETENTION_DAYS = "90",
        "days security events (/auth/events, the `security` log target) are kept; one instance at a time deletes older ones, hourly";
    MFA_ISSUER = "(OTEL_SERVICE_NAME)",
        "issuer an authenticator app shows for the TOTP factor (the otpauth:// URI's issuer)";
    WEBAUTHN_RP_ID = "(the host of PUBLIC_APP_URL)",
        "passkeys' relying party id: a domain that every WEBAUTHN_RP_ORIGINS host equals or ends with (`.` + id); the service refuses to start otherwise. Passkeys are off when it is defaulted from an address such as 127.0.0.1 (browsers take domains only)";
    WEBAUTHN_RP_ORIGINS = "(the origin of PUBLIC_APP_URL)",
        "comma-separated origins whose pages may run passkey ceremonies, e.g. `https://app.example.com,https://admin.example.com`";
    JWT_ISSUER = "auth-api",
        "`iss` of access tokens, checked on verify";
    JWT_AUDIENCE = "auth-api",
        "`aud` of access tokens, checked on verify";
    JWT_LEEWAY = "5",
        "clock skew allowed on `exp`/`nbf`, seconds (0..=5)";
    COOKIE_SECURE = "true",
        "Secure attribute of the refresh cookie; false only for plain-http local use";
    COOKIE_SAMESITE = "Lax",
        "SameSite of the refresh cookie: Strict, Lax or None";
    HASH_CONCURRENCY = "(CPU count)",
        "argon2 computations at once; more wait in line";
    ARGON2_MEMORY_KIB = "19456",
        "argon2id memory cost (OWASP baseline)";
    ARGON2_ITERATIONS = "2",
        "argon2id time cost";
    ARGON2_PARALLELISM = "1",
        "argon2id lanes";
    BODY_LIMIT_BYTES = "16384",
        "largest accepted request body";
    SHUTDOWN_DELAY = "0",
        "seconds an instance keeps serving after SIGTERM/SIGINT with /health/ready answering 503, so a load balancer stops sending it requests before it stops accepting them";
    SHUTDOWN_TIMEOUT = "30",
        "seconds in-flight requests get after SIGTERM/SIGINT";
    SMTP_URL = "(unset: mails go to the log in embedded mode; mail flows are off otherwise)",
        "smtp://user:pass@host:587 (STARTTLS, required when credentials are given), smtps://user:pass@host:465 (TLS), or smtp://host:1025 (plain, local catchers); `?tls=required`, `opportunistic` or `none` overrides the rule";
    MAIL_FROM = "auth-api <no-reply@localhost>",
        "From of account mails (a mailbox, `Name <address>` or `address`)";
    PUBLIC_APP_URL = "http://localhost:5173",
        "the SPA that receives the links: {PUBLIC_APP_URL}/reset-password?token=… and /verify-email?token=…";
    PASSWORD_RESET_TTL = "1800",
        "seconds a password-reset link stays valid (from its delivery)";
    EMAIL_VERIFY_TTL = "86400",
        "seconds an email-verification link stays valid (from its delivery)";
    REQUIRE_VERIFIED_EMAIL = "false",
        "true: an unverified account gets no session (login answers 403 EMAIL_NOT_VERIFIED after the password check; register answers 202 without tokens)";
    MAIL_PER_ADDRESS_PER_HOUR = "5",
        "most account mails queued per address per hour (reset and verification together); more are dropped silently";
    MAIL_RETRY_MAX = "60",
        "longest wait between two delivery attempts of a mail, seconds (the backoff doubles from 1 s up to it)";
    MAIL_MAX_ATTEMPTS = "20",
        "delivery attempts before a mail is marked dead";
    SMTP_TIMEOUT = "15",
        "seconds one SMTP delivery may take";
    DOCS_ENABLED = "true",
        "serve the OpenAPI document at /openapi.json and its Swagger UI at /docs (bundled, works offline)";
    CORS_ALLOWED_ORIGINS = "(none)",
        "comma-separated exact origins (https://app.example.com) allowed to call the API with credentials; `*` and `null` are refused";
    TRUSTED_PROXIES = "(none)",
        "comma-separated CIDRs of your reverse proxies: only from these peers are CLIENT_IP_HEADER and X-Forwarded-Host / X-Forwarded-Proto believed (a /0 is refused)";
    CLIENT_IP_HEADER = "x-forwarded-for",
        "the header your proxy writes the client's address into: x-forwarded-for (right-most hop not in TRUSTED_PROXIES), forwarded (RFC 7239 `for=`, likewise), x-real-ip (one value the proxy overwrites) or none (always the TCP peer); other headers are ignored";
    RATE_LIMIT_PER_SECOND = "20",
        "general per-client-IP request rate (GET / and the health routes are exempt)";
    RATE_LIMIT_BURST = "40",
        "burst allowed above RATE_LIMIT_PER_SECOND";
    RATE_LIMIT_IPV6_PREFIX = "64",
        "IPv6 clients share their rate limits per network of this prefix length (a /64 is one subscriber); IPv4-mapped addresses count as IPv4";
    RATE_LIMIT_AUTH_PER_MINUTE = "10",
        "per-client-IP rate of register, login, POST /auth and refresh (the same number as burst)";
    LOGIN_MAX_FAILURES = "5",
        "failed logins per account (per normalised email) before it is locked";
    LOGIN_LOCKOUT = "60",
        "first lock, seconds; doubles with each further failure";
    LOGIN_LOCKOUT_MAX = "900",
        "longest lock, seconds";
    REQUEST_TIMEOUT = "30",
        "seconds a request may take, body included, before 408";
    CLIENT_HEADER_TIMEOUT = "5",
        "seconds a client has to send its request head (slow-loris bound)";
    HEADER_LIMIT_BYTES = "16384",
        "largest accepted request head (all header names and values), else 431";
    KEEP_ALIVE = "5",
        "seconds an idle keep-alive connection stays open";
    METRICS_ADDR = "127.0.0.1:9100",
        "address of the Prometheus /metrics listener (never the API port); `off` disables metrics";
    ADMIN_ADDR = "off",
        "address of the admin API listener (never the API port), answering only with a key from `auth-api admin-keys create`; `off`: no admin listener";
    OTEL_EXPORTER_OTLP_ENDPOINT = "(unset: no export)",
        "OTLP collector, e.g. http://collector:4317 (grpc) or http://collector:4318 (http/protobuf)";
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "(unset: OTEL_EXPORTER_OTLP_ENDPOINT)",
        "OTLP endpoint for traces only, used as it is (the generic endpoint gets /v1/traces appended for http/protobuf)";
    OTEL_EXPORTER_OTLP_PROTOCOL = "grpc",
        "grpc or http/protobuf";
    OTEL_SERVICE_NAME = "auth-api",
        "service.name of exported spans";
    OTEL_RESOURCE_ATTRIBUTES = "(none)",
        "extra resource attributes, key=value,… (read by the OpenTelemetry SDK)";
    OTEL_TRACES_SAMPLER = "parentbased_always_on",
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio; decided per request before its spans exist";
    OTEL_TRACES_SAMPLER_ARG = "1.0",
        "the ratio (0 to 1) of the traceidratio samplers";
    OTEL_BSP_SCHEDULE_DELAY = "5000",
        "batch export delay, ms; the other OTEL_BSP_* variables work too (read by the OpenTelemetry SDK)";
    OTEL_SDK_DISABLED = "false",
        "true turns tracing instrumentation off entirely (no trace ids in logs, no traceresponse)";
    LOG_FORMAT = "(json; pretty on a terminal)",
        "json or pretty";
    RUST_LOG = "info",
        "log filter, tracing-subscriber syntax; filters log lines only, never traces or exported spans";
}
