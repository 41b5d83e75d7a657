//! The request's root span, named `{METHOD} {route}` with OpenTelemetry HTTP semantic-convention
//! attributes, joined to the caller's trace through W3C `traceparent`; one access-log line per
//! request; and the `traceresponse` header that hands the trace id back to the client.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::json_log::REQUEST_SPAN;
use super::request_context::{self, RequestContext};
use super::sampling::RequestTrace;
use super::span_fields::{self, SpanFields};

use crate::domain::UserId;
use crate::error::ApiError;

/// Target of the access-log line, one per request.
pub const ACCESS_TARGET: &str = "access";

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Whether requests that are not recorded get a root span anyway: the `fmt` layer of pretty
/// logs only knows spans' fields. JSON logs read the request's `RequestContext` instead. Never
/// with an exporter: the OpenTelemetry layer would record the span.
static SPAN_FOR_UNRECORDED: AtomicBool = AtomicBool::new(false);

pub(super) fn set_span_for_unrecorded(on: bool) {
    SPAN_FOR_UNRECORDED.store(on, Ordering::Relaxed);
}

/// Builds the root span of each request for `TracingLogger`: a span when the request is
/// recorded, else a `RequestContext` in the request's extensions (see request_context.rs).
pub struct RootSpan;

/// What a request's root span and each of its log lines say about it.
struct RequestFields<'a> {
    method: &'a str,
    route: &'a str,
    scheme: &'a str,
    path: &'a str,
    client: Option<IpAddr>,
    user_agent: &'a str,
    protocol: &'static str,
    request_id: Option<RequestId>,
}

impl RequestFields<'_> {
    /// The root span, named `{METHOD} {route}`. Plain `&str` values, not `%`/`?` formatting:
    /// every field is stored for the log lines, and `fmt` for each one would be paid on every
    /// recorded request.
    fn span(&self, matched: bool) -> Span {
        let name = if matched {
            format!("{} {}", self.method, self.route)
        } else {
            self.method.to_string()
        };
        let client = self.client.map(|ip| ip.to_string()).unwrap_or_default();
        let mut id_buffer = uuid::Uuid::encode_buffer();
        let request_id = match &self.request_id {
            Some(id) => id.hyphenated().encode_lower(&mut id_buffer),
            None => "",
        };
        tracing::info_span!(
            REQUEST_SPAN,
            otel.name = name.as_str(),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = self.method,
            http.route = self.route,
            http.response.status_code = Empty,
            url.scheme = self.scheme,
            url.path = self.path,
            client.address = client.as_str(),
            user_agent.original = self.user_agent,
            network.protocol.version = self.protocol,
            error.type = Empty,
            enduser.id = Empty,
            request_id = request_id,
        )
    }

    /// The same fields as the span's, for the log lines of a request that has no span.
    fn log_fields(&self) -> SpanFields {
        let mut fields = SpanFields::with_capacity(12);
        fields.push("http.request.method", text(self.method));
        fields.push("http.route", text(self.route));
        fields.push("url.scheme", text(self.scheme));
        fields.push("url.path", text(self.path));
        // Written straight into the fields: no `String` of their own.
        fields.push("client.address", |json| match self.client {
            Some(ip) => span_fields::write_value(json, ip),
            None => span_fields::write_str(json, ""),
        });
        fields.push("user_agent.original", text(self.user_agent));
        fields.push("network.protocol.version", text(self.protocol));
        fields.push("request_id", |json| match &self.request_id {
            Some(id) => span_fields::write_value(json, **id),
            None => span_fields::write_str(json, ""),
        });
        fields
    }
}

/// Writes `value` as a JSON string.
fn text(value: &str) -> impl FnOnce(&mut Vec<u8>) + '_ {
    move |json| span_fields::write_str(json, value)
}

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // Decided whatever RUST_LOG says: it filters log lines, never the trace (its id in
        // `traceresponse`, its exported spans).
        // The W3C propagator, built here rather than read from OpenTelemetry's global (a lock
        // shared by every worker), and only when there is a `traceparent`.
        let remote = if request.headers().contains_key(&TRACEPARENT) {
            TraceContextPropagator::new().extract(&Headers(request.headers()))
        } else {
            Context::new()
        };
        let trace = RequestTrace::decide(remote, request.method().as_str());
        let unrecorded = (!trace.recorded).then(|| trace.unrecorded_ids());
        let with_span = trace.recorded || SPAN_FOR_UNRECORDED.load(Ordering::Relaxed);

        let route = request.match_pattern();
        let request_id = request.extensions().get::<RequestId>().copied();
        let (span, log_fields) = {
            let fields = RequestFields {
                method: request.method().as_str(),
                route: route.as_deref().unwrap_or(crate::metrics::UNMATCHED),
                scheme: crate::client_ip::scheme(request.request()),
                path: request.path(),
                client: crate::client_ip::of(request.request()),
                user_agent: request
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                protocol: protocol_version(request.version()),
                request_id,
            };
            let span = with_span.then(|| fields.span(route.is_some()));
            if let Some(span) = span.as_ref().filter(|_| trace.recorded) {
                // Joins the caller's trace, and starts the span now, on this thread, so that a new
                // trace gets the trace id the sampler decided on.
                let _ = span.set_parent(trace.remote_parent.clone());
                trace.start_root(|| span.context());
            }
            // With a span as well (pretty logs) the context only carries the ids: its fields
            // would never be written.
            let log_fields = unrecorded.is_some().then(|| {
                if with_span {
                    SpanFields::with_capacity(0)
                } else {
                    fields.log_fields()
                }
            });
            (span, log_fields)
        };
        if let (Some(ids), Some(log_fields)) = (unrecorded, log_fields) {
            request.extensions_mut().insert(RequestContext::new(ids, log_fields));
        }
        span.unwrap_or_else(Span::none)
    }

    /// Nothing left to do: `request_scope`, just inside, recorded the outcome and wrote the
    /// access line, holding the request's context even when the request failed (an `Err`
    /// outcome has no request to find it in).
    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, Error>) {}
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

/// Runs the rest of the request inside its `RequestContext` when it has one (it is not
/// recorded), then records the outcome, writes the access line, and adds `traceresponse: 00-{trace
/// id}-{span id}-{flags}` (W3C Trace Context Level 2) so a frontend can quote the trace in a bug
/// report. Goes just inside `TracingLogger`, whose root span is then the current one.
pub async fn request_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let context = req.extensions().get::<Rc<RequestContext>>().cloned();
    let root = req
        .extensions()
        .get::<tracing_actix_web::RootSpan>()
        .map(|root| Span::clone(root));
    let handle = async {
        let started = Instant::now();
        let outcome = next.call(req).await;
        record_outcome(&outcome, started, root.as_ref(), context.as_deref());
        outcome
    };
    let mut outcome = match &context {
        Some(context) => request_context::scope(context.clone(), handle).await,
        None => handle.await,
    };
    let ids = match (&context, &root) {
        (Some(context), _) => Some(context.ids().clone()),
        (None, Some(root)) => Some(root.context().span().span_context().clone()),
        (None, None) => None,
    };
    if let (Ok(response), Some(ids)) = (&mut outcome, ids.filter(|ids| ids.is_valid())) {
        let value = format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(TRACERESPONSE, value);
        }
    }
    outcome
}

/// Status and error type on the root span or context, and the access line.
fn record_outcome<B>(
    outcome: &Result<ServiceResponse<B>, Error>,
    started: Instant,
    root: Option<&Span>,
    context: Option<&RequestContext>,
) {
    let (status, error) = match outcome {
        Ok(response) => (response.status(), response.response().error().map(error_type)),
        Err(error) => (error.as_response_error().status_code(), Some(error_type(error))),
    };
    let error = status
        .is_server_error()
        .then(|| error.unwrap_or_else(|| status.as_str().to_string()));
    let status = status.as_u16();
    if let Some(root) = root {
        root.record("http.response.status_code", status);
        if let Some(error) = &error {
            root.record("otel.status_code", "ERROR");
            root.record("error.type", error.as_str());
        }
    }
    if let Some(context) = context {
        context.record_u64("http.response.status_code", status.into());
        if let Some(error) = &error {
            context.record_str("error.type", error);
        }
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Inside the root span or the request's context, whichever it has. The message as a plain
    // `&str` field: a format string would go through `fmt` on every request.
    tracing::info!(target: ACCESS_TARGET, message = "request completed", status, latency_ms);
}

/// The request's trace id (the one its `traceresponse` names), in lowercase hex.
pub fn trace_id(req: &HttpRequest) -> Option<String> {
    let extensions = req.extensions();
    let ids = match extensions.get::<Rc<RequestContext>>() {
        Some(context) => context.ids().clone(),
        None => extensions
            .get::<tracing_actix_web::RootSpan>()
            .map(|root| root.context().span().span_context().clone())?,
    };
    ids.is_valid().then(|| ids.trace_id().to_string())
}

/// Records the authenticated user on the request's root span or context (`enduser.id`).
pub fn record_user(req: &HttpRequest, user: UserId) {
    let extensions = req.extensions();
    let mut buffer = uuid::Uuid::encode_buffer();
    let user = &*user.as_uuid().hyphenated().encode_lower(&mut buffer);
    if let Some(context) = extensions.get::<Rc<RequestContext>>() {
        context.record_str("enduser.id", user);
    }
    if let Some(root) = extensions.get::<tracing_actix_web::RootSpan>() {
        root.record("enduser.id", user);
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::registry::LookupSpan as _;

    use super::*;
    use crate::telemetry::json_log::JsonLog;

    /// A request's log lines say the same about it whether it has a root span or a context.
    #[test]
    fn span_and_context_give_the_same_log_fields() {
        let fields = RequestFields {
            method: "GET",
            route: "/auth/me",
            scheme: "https",
            path: "/auth/me",
            client: Some("203.0.113.7".parse().unwrap()),
            user_agent: "agent \"quoted\"",
            protocol: "1.1",
            request_id: None,
        };
        let subscriber = tracing_subscriber::registry().with(JsonLog::new(std::io::sink));
        tracing::subscriber::with_default(subscriber, || {
            let span = fields.span(true);
            let checked = span.with_subscriber(|(id, dispatch)| {
                let registry = dispatch.downcast_ref::<Registry>().expect("a registry");
                let span = registry.span(id).expect("the span");
                let extensions = span.extensions();
                assert_eq!(extensions.get::<SpanFields>(), Some(&fields.log_fields()));
            });
            assert!(checked.is_some(), "the span was created");
        });
    }
}
