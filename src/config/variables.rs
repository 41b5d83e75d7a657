//! The one list of settings: `auth-api --help` prints it and the README's table must match it.

/// One environment variable: its name, its default (as text, for the docs) and what it does.
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting the service reads. Keep in step with `Settings::from_lookup` and the README.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "HOST_ADDR",
        default: "127.0.0.1:3001",
        help: "address the API listens on",
    },
    Variable {
        name: "DATABASE_URL",
        default: "(unset: SQLite)",
        help: "postgres://… for PostgreSQL; unset uses the SQLite file SQLITE_PATH",
    },
    Variable {
        name: "SQLITE_PATH",
        default: "./data/auth.db",
        help: "SQLite file of the embedded user store (created if missing)",
    },
    Variable {
        name: "DATABASE_POOL_MAX",
        default: "10",
        help: "most PostgreSQL/SQLite connections",
    },
    Variable {
        name: "RUN_MIGRATIONS",
        default: "true",
        help: "apply pending migrations at start (else run `auth-api migrate`)",
    },
    Variable {
        name: "REDIS_URL",
        default: "(unset: in-process)",
        help: "redis://… for refresh sessions; unset keeps them in this process (one instance only)",
    },
    Variable {
        name: "REDIS_KEY_PREFIX",
        default: "auth:",
        help: "prefix of every Redis key",
    },
    Variable {
        name: "REDIS_POOL_MAX",
        default: "16",
        help: "most Redis connections",
    },
    Variable {
        name: "STORE_TIMEOUT_MS",
        default: "1000",
        help: "bound on acquiring a connection and on one store call; past it the request answers 503",
    },
    Variable {
        name: "ACCESS_TOKEN_SECRET",
        default: "(required; random in embedded mode)",
        help: "HS256 signing key, at least 32 bytes",
    },
    Variable {
        name: "ACCESS_TOKEN_TTL",
        default: "300",
        help: "access token lifetime, seconds",
    },
    Variable {
        name: "REFRESH_TOKEN_TTL",
        default: "172800",
        help: "refresh token lifetime (idle timeout of a session), seconds",
    },
    Variable {
        name: "SESSION_MAX_LIFETIME",
        default: "2592000",
        help: "absolute session lifetime whatever the refreshes, seconds",
    },
    Variable {
        name: "REFRESH_REUSE_GRACE",
        default: "10",
        help: "seconds a just-rotated refresh token still answers with its successor",
    },
    Variable {
        name: "MAX_SESSIONS_PER_USER",
        default: "1",
        help: "sessions kept per user; the oldest is evicted beyond it",
    },
    Variable {
        name: "JWT_ISSUER",
        default: "auth-api",
        help: "`iss` of access tokens, checked on verify",
    },
    Variable {
        name: "JWT_AUDIENCE",
        default: "auth-api",
        help: "`aud` of access tokens, checked on verify",
    },
    Variable {
        name: "JWT_LEEWAY",
        default: "5",
        help: "clock skew allowed on `exp`/`nbf`, seconds (0..=5)",
    },
    Variable {
        name: "COOKIE_SECURE",
        default: "true",
        help: "Secure attribute of the refresh cookie; false only for plain-http local use",
    },
    Variable {
        name: "COOKIE_SAMESITE",
        default: "Lax",
        help: "SameSite of the refresh cookie: Strict, Lax or None",
    },
    Variable {
        name: "HASH_CONCURRENCY",
        default: "(CPU count)",
        help: "argon2 computations at once; more wait in line",
    },
    Variable {
        name: "ARGON2_MEMORY_KIB",
        default: "19456",
        help: "argon2id memory cost (OWASP baseline)",
    },
    Variable {
        name: "ARGON2_ITERATIONS",
        default: "2",
        help: "argon2id time cost",
    },
    Variable {
        name: "ARGON2_PARALLELISM",
        default: "1",
        help: "argon2id lanes",
    },
    Variable {
        name: "BODY_LIMIT_BYTES",
        default: "16384",
        help: "largest accepted request body",
    },
    Variable {
        name: "SHUTDOWN_TIMEOUT",
        default: "30",
        help: "seconds in-flight requests get after SIGTERM/SIGINT",
    },
    Variable {
        name: "CORS_ALLOWED_ORIGINS",
        default: "(none)",
        help: "comma-separated exact origins (https://app.example.com) allowed to call the API with credentials; `*` and `null` are refused",
    },
    Variable {
        name: "TRUSTED_PROXIES",
        default: "(none)",
        help: "comma-separated CIDRs of reverse proxies whose X-Forwarded-For / Forwarded is believed",
    },
    Variable {
        name: "RATE_LIMIT_PER_SECOND",
        default: "20",
        help: "general per-client-IP request rate (GET / and the health routes are exempt)",
    },
    Variable {
        name: "RATE_LIMIT_BURST",
        default: "40",
        help: "burst allowed above RATE_LIMIT_PER_SECOND",
    },
    Variable {
        name: "RATE_LIMIT_AUTH_PER_MINUTE",
        default: "10",
        help: "per-client-IP rate of register, login, POST /auth and refresh (the same number as burst)",
    },
    Variable {
        name: "LOGIN_MAX_FAILURES",
        default: "5",
        help: "failed logins per account (per normalised email) before it is locked",
    },
    Variable {
        name: "LOGIN_LOCKOUT",
        default: "60",
        help: "first lock, seconds; doubles with each further failure",
    },
    Variable {
        name: "LOGIN_LOCKOUT_MAX",
        default: "900",
        help: "longest lock, seconds",
    },
    Variable {
        name: "REQUEST_TIMEOUT",
        default: "30",
        help: "seconds a request may take, body included, before 408",
    },
    Variable {
        name: "CLIENT_HEADER_TIMEOUT",
        default: "5",
        help: "seconds a client has to send its request head (slow-loris bound)",
    },
    Variable {
        name: "HEADER_LIMIT_BYTES",
        default: "16384",
        help: "largest accepted request head (all header names and values), else 431",
    },
    Variable {
        name: "KEEP_ALIVE",
        default: "5",
        help: "seconds an idle keep-alive connection stays open",
    },
    Variable {
        name: "METRICS_ADDR",
        default: "127.0.0.1:9100",
        help: "address of the Prometheus /metrics listener (never the API port); `off` disables metrics",
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "(unset: no export)",
        help: "OTLP collector, e.g. http://collector:4317 (grpc) or http://collector:4318 (http/protobuf); OTEL_EXPORTER_OTLP_TRACES_ENDPOINT also works",
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        default: "grpc",
        help: "grpc or http/protobuf",
    },
    Variable {
        name: "OTEL_SERVICE_NAME",
        default: "auth-api",
        help: "service.name of exported spans",
    },
    Variable {
        name: "OTEL_RESOURCE_ATTRIBUTES",
        default: "(none)",
        help: "extra resource attributes, key=value,… (read by the OpenTelemetry SDK)",
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER",
        default: "parentbased_always_on",
        help: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio; decided per request before its spans exist",
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER_ARG",
        default: "1.0",
        help: "the ratio (0 to 1) of the traceidratio samplers",
    },
    Variable {
        name: "OTEL_BSP_SCHEDULE_DELAY",
        default: "5000",
        help: "batch export delay, ms; the other OTEL_BSP_* variables work too (read by the OpenTelemetry SDK)",
    },
    Variable {
        name: "OTEL_SDK_DISABLED",
        default: "false",
        help: "true turns tracing instrumentation off entirely (no trace ids in logs, no traceresponse)",
    },
    Variable {
        name: "LOG_FORMAT",
        default: "json (pretty on a terminal)",
        help: "json or pretty",
    },
    Variable {
        name: "RUST_LOG",
        default: "info",
        help: "log filter, tracing-subscriber syntax",
    },
];
