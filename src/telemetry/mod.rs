//! Logs and traces. One `tracing` subscriber feeds both: JSON (or pretty) lines on stdout with
//! the current trace and span ids, and OpenTelemetry spans exported over OTLP when an endpoint
//! is configured. W3C `traceparent` joins incoming requests to the caller's trace.

pub mod http;
mod json_log;
mod log_writer;
mod request_context;
mod sampling;
mod span_fields;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::{Filter, Layer as _, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, OtlpProtocol, Settings};

/// Keeps the tracer provider so that its batch of spans can be flushed at shutdown.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still batched and writes out buffered log lines. Call after the
    /// server stopped and its last line was logged, outside any async context (the HTTP
    /// exporter's blocking client must not be dropped in one).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("auth-api: flushing spans at shutdown failed: {e}");
        }
        log_writer::flush();
    }
}

/// `RUST_LOG` (default `info`) as a plain per-target filter when it only names targets and
/// levels, the usual case, else as an `EnvFilter` (span and field directives). `EnvFilter`
/// looks the span up on every enter and exit in case a directive names it, a cost each request
/// pays several times (bench/tracing_overhead.rs). Unreadable directives fall back to `info`.
fn log_filter<S>(spec: Option<&str>) -> Box<dyn Filter<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let spec = spec.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("info");
    match spec.parse::<Targets>() {
        Ok(targets) => FilterExt::boxed(targets),
        Err(_) => FilterExt::boxed(EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"))),
    }
}

/// What the log layer sees: the events `RUST_LOG` lets through, and every span the export path
/// sees too, so that a warning logged inside a request still carries the request's fields and
/// trace id however quiet `RUST_LOG` is.
fn log_layer_filter<S>(spec: Option<&str>) -> Box<dyn Filter<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let spans = filter_fn(|meta| meta.is_span() && *meta.level() <= EXPORT_LEVEL);
    FilterExt::boxed(log_filter(spec).or(spans))
}

/// Spans at this level and above are exported and carried into `traceresponse`, whatever
/// `RUST_LOG` says: the log filter filters logs only.
const EXPORT_LEVEL: Level = Level::INFO;

/// Installs the global subscriber. Must run inside a tokio runtime context
/// (`Runtime::enter`): the gRPC exporter binds its channel to that runtime.
/// For a command that prints a table (`keys`, `admin-keys`, `users`): warnings and errors as
/// plain lines on stderr, so that stdout holds the table alone; nothing is exported.
pub fn init_for_command() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(Level::WARN)
        .without_time()
        .with_target(false)
        .try_init();
}

pub fn init(all: &Settings) -> anyhow::Result<Telemetry> {
    let (format, settings) = (all.log_format, &all.telemetry);
    // Spans are only built when something receives them; without an exporter a request still
    // gets a trace id (for its log lines and `traceresponse`), at no span cost.
    let provider = if settings.sdk_disabled || !settings.export {
        sampling::install(None);
        None
    } else {
        sampling::install(Some(settings.sampler.clone()));
        // Endpoints, headers, timeouts and OTEL_BSP_* come from the standard variables, which
        // the exporter and the batch processor read themselves.
        let exporter = match settings.protocol {
            OtlpProtocol::Grpc => SpanExporter::builder().with_tonic().build()?,
            OtlpProtocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()?,
        };
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        // Batching keeps export off the request path: a slow or absent collector only fills
        // (then drops from) a bounded queue.
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(settings.sampler.clone())
                .with_id_generator(sampling::DecidedTraceIds::default())
                .with_resource(resource)
                .build(),
        )
    };
    // Without `busy_ns`/`idle_ns`: attributes outside the semantic conventions that cost two clock
    // reads at every poll of every recorded request; the span's duration is kept.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("auth-api"))
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_default(EXPORT_LEVEL))
    });
    let registry = tracing_subscriber::registry()
        .with(sampling::SkipUnrecordedChildren)
        .with(otel);
    http::set_span_for_unrecorded(format == LogFormat::Pretty && provider.is_none());
    let spec = all.log_filter.as_deref();
    match format {
        LogFormat::Json => {
            log_writer::install()?;
            registry
                .with(json_log::JsonLog::new(|| log_writer::BufferedStdout).with_filter(log_layer_filter(spec)))
                .try_init()?
        }
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_filter(log_layer_filter(spec)))
            .try_init()?,
    }
    // A panic is logged like any error, once, in the configured format.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
        log_writer::flush();
    }));
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    fn enabled(spec: Option<&str>, target_level: fn() -> bool) -> bool {
        use tracing_subscriber::Layer as _;
        let layer = tracing_subscriber::layer::Identity::new().with_filter(log_filter(spec));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, target_level)
    }

    #[test]
    fn rust_log_directives_keep_their_meaning() {
        let debug_here = || tracing::enabled!(target: "auth_api::store", Level::DEBUG);
        let info_sqlx = || tracing::enabled!(target: "sqlx::query", Level::INFO);
        assert!(enabled(Some("warn,auth_api=debug"), debug_here));
        assert!(!enabled(Some("warn,auth_api=debug"), info_sqlx));
        // Unset, empty or unreadable: info.
        for spec in [None, Some(""), Some("auth_api=loud")] {
            assert!(enabled(spec, info_sqlx), "{spec:?}");
            assert!(!enabled(spec, debug_here), "{spec:?}");
        }
        // A span directive is EnvFilter's: events inside a matching span only.
        assert!(!enabled(Some("[login]=debug"), debug_here));
    }
}
