//! The spans of recorded requests as OpenTelemetry spans, handed to the SDK's batch processor.
//!
//! In place of tracing-opentelemetry, which builds a `SpanBuilder` per span behind a mutex and,
//! when the span closes, has the SDK tracer build a span of its own from it (sampler, limits,
//! processor hooks), copying every attribute on the way: a recorded `/auth/me` (four spans) cost
//! 15k to 19k more instructions that way than this way (bench/README.md). Here a span's data is
//! gathered once, in the form the exporter takes (`SpanData`), and handed to the batch processor
//! (`OTEL_BSP_*`) when the span closes. The sampling decision is sampling.rs's, taken before a
//! request's first span exists; what the SDK tracer added besides is kept: ids from the SDK's
//! generator, the parent from the enclosing span or the caller's `traceparent`, its `tracestate`,
//! and the SDK's default limit of 128 attributes and 128 events per span.
//!
//! The fields tracing-opentelemetry gave a meaning keep it: `otel.name` names the span,
//! `otel.kind` is its kind, `otel.status_code` (`OK`/`ERROR`) and `otel.status_description` its
//! status. An event inside a recorded span becomes a span event (named by its message, with its
//! level, target and fields), and an `ERROR` event marks the span as failed.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{Event as SpanEvent, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::{Layer, Registry};

use super::sampling;

/// The SDK's default span limits (`SpanLimits::default`).
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;

/// The layer: records the spans of recorded requests and exports each when it closes.
pub struct SpanExport {
    processor: Arc<BatchSpanProcessor>,
    scope: InstrumentationScope,
}

impl SpanExport {
    pub fn new(processor: Arc<BatchSpanProcessor>) -> Self {
        Self {
            processor,
            scope: InstrumentationScope::builder("auth-api").build(),
        }
    }
}

/// A recorded span while it is open, in its `tracing` span's extensions.
struct OpenSpan {
    context: SpanContext,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    name: Cow<'static, str>,
    kind: SpanKind,
    start_time: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: SpanEvents,
    status: Status,
}

/// The ids of a recorded span: its trace id, its own span id, sampled.
pub(super) fn recorded_ids<S>(span: &SpanRef<'_, S>) -> Option<SpanContext>
where
    S: for<'a> LookupSpan<'a>,
{
    span.extensions().get::<OpenSpan>().map(|open| open.context.clone())
}

/// `recorded_ids` of a `tracing::Span` handle, through the global subscriber's registry.
pub(super) fn recorded_ids_of(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        recorded_ids(&registry.span(id)?)
    })
    .flatten()
}

impl<S> Layer<S> for SpanExport
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else { return };
        let Some(Placement {
            trace_id,
            parent,
            parent_is_remote,
        }) = placement(attrs, &cx)
        else {
            return;
        };
        let (parent_span_id, trace_state) = match parent {
            Some(parent) => (parent.span_id(), parent.trace_state().clone()),
            None => (SpanId::INVALID, Default::default()),
        };
        let mut open = OpenSpan {
            context: SpanContext::new(
                trace_id,
                sampling::random_span_id(),
                TraceFlags::SAMPLED,
                false,
                trace_state,
            ),
            parent_span_id,
            parent_is_remote,
            name: Cow::Borrowed(attrs.metadata().name()),
            kind: SpanKind::Internal,
            start_time: SystemTime::now(),
            attributes: Vec::with_capacity(attrs.fields().len()),
            dropped_attributes: 0,
            events: SpanEvents::default(),
            status: Status::Unset,
        };
        attrs.record(&mut Fields(&mut SpanFields {
            span: &mut open,
            new: true,
        }));
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        if let Some(span) = cx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<OpenSpan>()
        {
            values.record(&mut Fields(&mut SpanFields { span: open, new: false }));
        }
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let meta = event.metadata();
        // The access line would only repeat the root span's status and duration.
        if meta.target() == super::http::ACCESS_TARGET {
            return;
        }
        let Some(span) = cx.event_span(event) else { return };
        let mut extensions = span.extensions_mut();
        let Some(open) = extensions.get_mut::<OpenSpan>() else {
            return;
        };
        if *meta.level() == Level::ERROR && open.status == Status::Unset {
            open.status = Status::error("");
        }
        if open.events.len() >= MAX_EVENTS {
            open.events.dropped_count += 1;
            return;
        }
        let mut fields = EventFields {
            message: None,
            attributes: Vec::with_capacity(2 + meta.fields().len()),
            dropped_attributes: 0,
        };
        fields.attributes.push(KeyValue::new("level", meta.level().as_str()));
        fields.attributes.push(KeyValue::new("target", meta.target()));
        event.record(&mut Fields(&mut fields));
        let name = fields.message.map_or(Cow::Borrowed(meta.name()), Cow::Owned);
        open.events.events.push(SpanEvent::new(
            name,
            SystemTime::now(),
            fields.attributes,
            fields.dropped_attributes,
        ));
    }

    // Enter and exit are ignored: a span ends when it closes, for a child span right after its
    // last poll, for the request's root span once the response has been sent, which is what an
    // HTTP server span should cover.

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        let Some(open) = cx.span(&id).and_then(|span| span.extensions_mut().remove::<OpenSpan>()) else {
            return;
        };
        self.processor.on_end(SpanData {
            span_context: open.context,
            parent_span_id: open.parent_span_id,
            parent_span_is_remote: open.parent_is_remote,
            span_kind: open.kind,
            name: open.name,
            start_time: open.start_time,
            end_time: SystemTime::now(),
            attributes: open.attributes,
            dropped_attributes_count: open.dropped_attributes,
            events: open.events,
            links: SpanLinks::default(),
            status: open.status,
            instrumentation_scope: self.scope.clone(),
        });
    }
}

/// Where a recorded span goes in its trace.
struct Placement {
    trace_id: TraceId,
    parent: Option<SpanContext>,
    /// The parent is the caller's span, from its `traceparent`.
    parent_is_remote: bool,
}

/// Where a new span goes, or `None` when it is not recorded: a request's root span as the
/// request was decided (sampling.rs), under the caller's span if there is one; any other span
/// in its parent's trace when its parent is recorded; a span outside any request (start-up,
/// shutdown) as the sampler decides for a new trace.
fn placement<S>(attrs: &Attributes<'_>, cx: &Context<'_, S>) -> Option<Placement>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let root = sampling::with_creating_root(|root| {
        root.map(|root| {
            root.recorded.then(|| Placement {
                trace_id: root.trace_id,
                parent: root.remote_parent.clone(),
                parent_is_remote: true,
            })
        })
    });
    if let Some(root) = root {
        return root;
    }
    let parent = match attrs.parent() {
        Some(parent) => cx.span(parent),
        None if attrs.is_contextual() => cx.lookup_current(),
        None => None,
    };
    match parent {
        Some(parent) => recorded_ids(&parent).map(|parent| Placement {
            trace_id: parent.trace_id(),
            parent: Some(parent),
            parent_is_remote: false,
        }),
        None => sampling::decide_new_trace().map(|trace_id| Placement {
            trace_id,
            parent: None,
            parent_is_remote: false,
        }),
    }
}

/// A field's value as `tracing` records it.
enum FieldValue<'a> {
    Str(&'a str),
    /// A `Debug` value, formatted.
    Owned(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl FieldValue<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            FieldValue::Str(text) => Some(text),
            FieldValue::Owned(text) => Some(text),
            _ => None,
        }
    }

    /// As an attribute value, as tracing-opentelemetry converts them.
    fn into_attribute(self) -> Value {
        match self {
            FieldValue::Str(text) => Value::String(text.to_string().into()),
            FieldValue::Owned(text) => Value::String(text.into()),
            FieldValue::I64(n) => Value::I64(n),
            // Beyond i64 an integer is kept exactly, as text.
            FieldValue::U64(n) => i64::try_from(n).map_or_else(|_| Value::String(n.to_string().into()), Value::I64),
            FieldValue::F64(x) => Value::F64(x),
            FieldValue::Bool(b) => Value::Bool(b),
        }
    }
}

/// Where the fields a `Fields` visitor reads go: a span's data, or a span event's.
trait FieldSink {
    fn set(&mut self, field: &Field, value: FieldValue<'_>);
}

/// Reads a span's or an event's fields into a `FieldSink`.
struct Fields<'a, S>(&'a mut S);

impl<S: FieldSink> Visit for Fields<'_, S> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field, FieldValue::Str(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field, FieldValue::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field, FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field, FieldValue::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.set(field, FieldValue::Owned(format!("{value:?}")));
    }
}

/// A span's fields: the `otel.*` ones into its name, kind and status, the others as attributes.
struct SpanFields<'a> {
    span: &'a mut OpenSpan,
    /// At creation the fields of one callsite are distinct; recorded later, a field may replace
    /// its earlier value.
    new: bool,
}

impl SpanFields<'_> {
    /// Applies an `otel.*` field; false for any other.
    fn special(&mut self, name: &str, text: &str) -> bool {
        let span = &mut *self.span;
        match name {
            "otel.name" => span.name = Cow::Owned(text.to_string()),
            "otel.kind" => span.kind = span_kind(text).unwrap_or(SpanKind::Internal),
            "otel.status_code" => span.status = status(text),
            "otel.status_description" => span.status = Status::error(text.to_string()),
            _ => return false,
        }
        true
    }
}

impl FieldSink for SpanFields<'_> {
    fn set(&mut self, field: &Field, value: FieldValue<'_>) {
        let name = field.name();
        if let Some(text) = value.text()
            && self.special(name, text)
        {
            return;
        }
        let value = value.into_attribute();
        let attributes = &mut self.span.attributes;
        if !self.new
            && let Some(existing) = attributes.iter_mut().find(|kv| kv.key.as_str() == name)
        {
            existing.value = value;
        } else if attributes.len() < MAX_ATTRIBUTES {
            attributes.push(KeyValue::new(Key::from_static_str(name), value));
        } else {
            self.span.dropped_attributes += 1;
        }
    }
}

/// An event's message (its span event's name) and its other fields as attributes.
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
}

impl FieldSink for EventFields {
    fn set(&mut self, field: &Field, value: FieldValue<'_>) {
        // `info!("text {x}")` records its message as `fmt::Arguments`, a `Debug` value.
        let value = match (field.name(), value) {
            ("message", FieldValue::Str(text)) => {
                self.message = Some(text.to_string());
                return;
            }
            ("message", FieldValue::Owned(text)) => {
                self.message = Some(text);
                return;
            }
            (_, value) => value,
        };
        if self.attributes.len() < MAX_ATTRIBUTES {
            let value = value.into_attribute();
            self.attributes
                .push(KeyValue::new(Key::from_static_str(field.name()), value));
        } else {
            self.dropped_attributes += 1;
        }
    }
}

fn span_kind(text: &str) -> Option<SpanKind> {
    let kinds = [
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
    ];
    kinds
        .into_iter()
        .find_map(|(name, kind)| name.eq_ignore_ascii_case(text).then_some(kind))
}

fn status(text: &str) -> Status {
    if text.eq_ignore_ascii_case("ok") {
        Status::Ok
    } else if text.eq_ignore_ascii_case("error") {
        Status::error("")
    } else {
        Status::Unset
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::TraceState;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::SpanExporter;
    use tracing::field::Empty;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::telemetry::sampling::RequestTrace;

    /// Keeps what the batch processor exports.
    #[derive(Clone, Debug, Default)]
    struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// The spans `f` records, as the real batch processor hands them to an exporter.
    fn export(f: impl FnOnce()) -> Vec<SpanData> {
        let collected = Collected::default();
        let processor = Arc::new(BatchSpanProcessor::builder(collected.clone()).build());
        let subscriber = tracing_subscriber::registry().with(SpanExport::new(processor.clone()));
        tracing::subscriber::with_default(subscriber, f);
        processor.force_flush().unwrap();
        collected.0.lock().unwrap().clone()
    }

    fn attribute(span: &SpanData, key: &str) -> Option<Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    #[test]
    fn fields_give_name_kind_status_and_attributes() {
        let spans = export(|| {
            let root = tracing::info_span!(
                "HTTP request",
                otel.name = "GET /auth/me",
                otel.kind = "server",
                otel.status_code = Empty,
                http.response.status_code = Empty,
                big = u64::MAX,
                route = "/auth/me",
            );
            root.in_scope(|| {
                let child = tracing::info_span!("db.users.find_by_id", db.operation = "SELECT");
                child.in_scope(|| tracing::error!(detail = 7, "lookup failed for {}", "reasons"));
                tracing::info!(target: super::super::http::ACCESS_TARGET, status = 500, "request completed");
            });
            root.record("http.response.status_code", 503u64);
            root.record("http.response.status_code", 500u64);
            root.record("otel.status_code", "ERROR");
        });
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (child, root) = (&spans[0], &spans[1]);

        assert_eq!(root.name, "GET /auth/me");
        assert_eq!(root.span_kind, SpanKind::Server);
        assert_eq!(root.status, Status::error(""));
        assert_eq!(attribute(root, "http.response.status_code"), Some(Value::I64(500)));
        let recorded = root
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == "http.response.status_code");
        assert_eq!(recorded.count(), 1, "a field recorded again replaces its value");
        assert_eq!(attribute(root, "big"), Some(Value::from(u64::MAX.to_string())));
        assert_eq!(attribute(root, "route"), Some(Value::from("/auth/me")));
        assert!(
            attribute(root, "otel.name").is_none(),
            "otel.* fields are not attributes"
        );
        assert!(root.events.is_empty(), "the access line is not a span event");
        assert_eq!(root.parent_span_id, SpanId::INVALID);

        assert_eq!(child.name, "db.users.find_by_id");
        assert_eq!(child.span_kind, SpanKind::Internal);
        assert_eq!(child.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(child.parent_span_id, root.span_context.span_id());
        assert!(!child.parent_span_is_remote);
        assert!(child.span_context.is_sampled());
        assert_eq!(child.status, Status::error(""), "an error event marks its span");
        let event = &child.events[0];
        assert_eq!(event.name, "lookup failed for reasons");
        let event_attributes: Vec<_> = event
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone()))
            .collect();
        assert!(
            event_attributes.contains(&("level", Value::from("ERROR"))),
            "{event_attributes:?}"
        );
        assert!(
            event_attributes.contains(&("detail", Value::I64(7))),
            "{event_attributes:?}"
        );
        assert!(child.start_time <= child.end_time && root.start_time <= child.start_time);
        assert!(child.end_time <= root.end_time);
    }

    #[test]
    fn a_span_keeps_the_sdks_event_limit_and_counts_what_it_drops() {
        let spans = export(|| {
            let span = tracing::info_span!("loop");
            span.in_scope(|| (0..MAX_EVENTS + 3).for_each(|i| tracing::info!(i, "step")));
        });
        assert_eq!(spans[0].events.len(), MAX_EVENTS);
        assert_eq!(spans[0].events.dropped_count, 3);
    }

    #[test]
    fn a_request_root_follows_its_decision_and_its_caller() {
        let caller = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        let spans = export(|| {
            let unrecorded = RequestTrace {
                remote_parent: None,
                trace_id: TraceId::from(1u128),
                recorded: false,
            };
            let span = sampling::root_span(unrecorded, || tracing::info_span!("HTTP request"));
            span.in_scope(|| drop(tracing::info_span!("inside an unrecorded request")));
            drop(span);
            let recorded = RequestTrace::decide(&caller);
            assert!(recorded.recorded, "no sampler installed: recorded");
            drop(sampling::root_span(recorded, || tracing::info_span!("HTTP request")));
        });
        assert_eq!(spans.len(), 1, "{spans:#?}");
        let root = &spans[0];
        assert_eq!(root.span_context.trace_id(), caller.trace_id());
        assert_eq!(root.parent_span_id, caller.span_id());
        assert!(root.parent_span_is_remote);
        assert_eq!(root.span_context.trace_state().header(), "vendor=value");
    }
}
