//! One JSON object per log line: timestamp, level, target, the event's fields, the fields of
//! every enclosing span, and the OpenTelemetry `trace_id`/`span_id` so a line can be found from
//! a trace and the other way round.
//!
//! A layer of its own rather than a `fmt` formatter: `fmt` serialises every span's fields to a
//! string when the span opens, which a JSON line would then have to parse back. Here fields are
//! kept as values and serialised once, only when an event is written (measured in bench/).

use std::fmt;
use std::io::Write as _;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

pub struct JsonLog;

/// A span's recorded fields, in recording order.
struct SpanFields(Vec<(&'static str, Value)>);

impl<S> Layer<S> for JsonLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields(Vec::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        let mut fields = SpanFields(Vec::new());
        event.record(&mut fields);
        line.extend(fields.0.into_iter().map(|(k, v)| (k.to_string(), v)));

        if let Some(scope) = ctx.event_scope(event) {
            let mut span_fields = Map::new();
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(Value::String(span.name().to_string()));
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    span_fields.extend(fields.0.iter().map(|(k, v)| (k.to_string(), v.clone())));
                }
            }
            line.insert("span".into(), Value::Object(span_fields));
            line.insert("spans".into(), Value::Array(names));
        }

        // Read after the span extensions above are released: this takes them mutably.
        let context = tracing::Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            line.insert("trace_id".into(), Value::String(span_context.trace_id().to_string()));
            line.insert("span_id".into(), Value::String(span_context.span_id().to_string()));
        }
        if let Ok(mut bytes) = serde_json::to_vec(&line) {
            bytes.push(b'\n');
            // One write per line, so lines from several threads never interleave.
            let _ = std::io::stdout().lock().write_all(&bytes);
        }
    }
}

impl Visit for SpanFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, serde_json::json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}").into());
    }
}

impl SpanFields {
    /// Later values of a field replace earlier ones (`Span::record` after creation).
    fn set(&mut self, field: &Field, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == field.name()) {
            Some(slot) => slot.1 = value,
            None => self.0.push((field.name(), value)),
        }
    }
}
