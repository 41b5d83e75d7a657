//! One JSON object per log line: timestamp, level, target, the event's fields, the fields of
//! every enclosing span, and the OpenTelemetry `trace_id`/`span_id` so a line can be found from
//! a trace and the other way round.
//!
//! A layer of its own rather than a `fmt` formatter: `fmt` serialises every span's fields to a
//! string when the span opens, which a JSON line would then have to parse back. Here fields are
//! kept as values and serialised once, only when an event is written (measured in bench/).

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::sampling::Unrecorded;

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
        // Read first: this takes the current span's extensions mutably, which the guards below
        // must not be holding.
        let context = tracing::Span::current().context();
        let mut span_context = context.span().span_context().clone();

        let mut fields = SpanFields(Vec::new());
        event.record(&mut fields);
        let scope: Vec<_> = ctx
            .event_scope(event)
            .map(|s| s.from_root().collect())
            .unwrap_or_default();
        let guards: Vec<_> = scope.iter().map(|span| span.extensions()).collect();
        if !span_context.is_valid()
            && let Some(Unrecorded(ids)) = guards.first().and_then(|root| root.get::<Unrecorded>())
        {
            span_context = ids.clone();
        }
        // Fields of enclosing spans, root first; an inner span's value for a name wins.
        let mut span_fields: Vec<(&str, &Value)> = Vec::new();
        for fields in guards.iter().filter_map(|g| g.get::<SpanFields>()) {
            for (key, value) in &fields.0 {
                match span_fields.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => span_fields.push((key, value)),
                }
            }
        }

        LINE.with_borrow_mut(|line| {
            line.clear();
            let meta = event.metadata();
            line.extend_from_slice(b"{\"timestamp\":\"");
            let _ = time::OffsetDateTime::now_utc().format_into(line, &time::format_description::well_known::Rfc3339);
            line.extend_from_slice(b"\",\"level\":\"");
            line.extend_from_slice(meta.level().as_str().as_bytes());
            line.push(b'"');
            write_field(line, "target", &meta.target());
            for (key, value) in &fields.0 {
                write_field(line, key, value);
            }
            if !scope.is_empty() {
                line.extend_from_slice(b",\"span\":{");
                for (i, (key, value)) in span_fields.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *line, key);
                    line.push(b':');
                    let _ = serde_json::to_writer(&mut *line, value);
                }
                line.extend_from_slice(b"},\"spans\":");
                let names: Vec<&str> = scope.iter().map(|span| span.name()).collect();
                let _ = serde_json::to_writer(&mut *line, &names);
            }
            if span_context.is_valid() {
                write!(
                    line,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    span_context.trace_id(),
                    span_context.span_id()
                )
                .ok();
            }
            line.extend_from_slice(b"}\n");
            // One write per line, so lines from several threads never interleave.
            let _ = std::io::stdout().lock().write_all(line);
        });
    }
}

thread_local! {
    /// The line being written, reused so a log line costs no allocation of its own.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// `,"key":value`, the value as JSON.
fn write_field(line: &mut Vec<u8>, key: &str, value: &impl serde::Serialize) {
    line.push(b',');
    let _ = serde_json::to_writer(&mut *line, key);
    line.push(b':');
    let _ = serde_json::to_writer(&mut *line, value);
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
