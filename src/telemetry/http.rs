//! The request's root span, named `{METHOD} {route}` with OpenTelemetry HTTP semantic-convention
//! attributes, joined to the caller's trace through W3C `traceparent`; one access-log line per
//! request; and the `traceresponse` header that hands the trace id back to the client.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::{ExtensionsMut, LookupSpan as _};

use super::sampling::{self, Unrecorded};

use crate::error::ApiError;

/// Target of the access-log line, one per request.
pub const ACCESS_TARGET: &str = "access";

/// Builds the root span of each request for `TracingLogger`.
pub struct RootSpan;

/// When the request started, for the access log's latency.
#[derive(Clone, Copy)]
struct Started(Instant);

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let method = request.method().as_str();
        let route = request.match_pattern();
        let name = match &route {
            Some(route) => format!("{method} {route}"),
            None => method.to_string(),
        };
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let client = crate::client_ip::of(request.request())
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(request.headers())));
        let remote = parent.span().span_context().clone();
        // Plain `&str` values, not `%`/`?` formatting: every field is stored for the log lines,
        // and going through `fmt` for each one was a measurable share of a request's cost.
        let (span, unrecorded) = sampling::root_span(&remote, || {
            tracing::info_span!(
                "HTTP request",
                otel.name = name.as_str(),
                otel.kind = "server",
                otel.status_code = Empty,
                http.request.method = method,
                http.route = route.as_deref().unwrap_or(crate::metrics::UNMATCHED),
                http.response.status_code = Empty,
                url.scheme = request.connection_info().scheme(),
                url.path = request.path(),
                client.address = client.as_str(),
                user_agent.original = user_agent,
                network.protocol.version = protocol_version(request.version()),
                error.type = Empty,
                enduser.id = Empty,
                request_id = request_id.as_str(),
            )
        });
        match unrecorded {
            None => {
                let _ = span.set_parent(parent);
            }
            Some(ids) => with_root_extensions(&span, |extensions| extensions.insert(ids)),
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error, started) = match outcome {
            Ok(response) => (
                response.status(),
                response.response().error().map(error_type),
                response.request().extensions().get::<Started>().copied(),
            ),
            Err(error) => (error.as_response_error().status_code(), Some(error_type(error)), None),
        };
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error.unwrap_or_else(|| status.as_str().to_string()));
        }
        let latency_ms = started.map(|s| s.0.elapsed().as_secs_f64() * 1000.0);
        // An explicit parent rather than entering the span: entering runs every layer twice.
        tracing::info!(target: ACCESS_TARGET, parent: &span, status = status.as_u16(), latency_ms, "request completed");
    }
}

/// `network.protocol.version` as the semantic conventions spell it.
fn protocol_version(version: actix_web::http::Version) -> &'static str {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "",
    }
}

/// Our stable error code when the error is ours, else the error's type.
fn error_type(error: &Error) -> String {
    match error.as_error::<ApiError>() {
        Some(api) => api.code().to_string(),
        None => "_OTHER".to_string(),
    }
}

/// Adds `traceresponse: 00-{trace id}-{span id}-{flags}` (W3C Trace Context Level 2), so a
/// frontend can quote the trace in a bug report.
pub async fn trace_response_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let root = req.extensions().get::<tracing_actix_web::RootSpan>().cloned();
    let mut response = next.call(req).await?;
    if let Some(root) = root {
        // Most requests are not recorded: their ids are the cheaper lookup.
        let mut unrecorded = None;
        with_root_extensions(&root, |extensions| {
            unrecorded = extensions.get_mut::<Unrecorded>().map(|Unrecorded(ids)| ids.clone());
        });
        let sc = unrecorded.unwrap_or_else(|| root.context().span().span_context().clone());
        if sc.is_valid() {
            let value = format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8());
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static("traceresponse"), value);
            }
        }
    }
    Ok(response)
}

/// Runs `f` on the registry's extensions of `span`, if it is enabled.
fn with_root_extensions(span: &Span, f: impl FnOnce(&mut ExtensionsMut<'_>)) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>()
            && let Some(span) = registry.span(id)
        {
            f(&mut span.extensions_mut());
        }
    });
}

/// Records the authenticated user on the request's root span (`enduser.id`).
pub fn record_user(req: &HttpRequest, user: impl std::fmt::Display) {
    if let Some(root) = req.extensions().get::<tracing_actix_web::RootSpan>() {
        root.record("enduser.id", tracing::field::display(user));
    }
}

/// Request headers as a propagation carrier.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
