//! One JSON object per log line: timestamp, level, target, the event's fields, the fields of
//! every enclosing span, and the OpenTelemetry `trace_id`/`span_id` so a line can be found from
//! a trace and the other way round.
//!
//! A layer of its own rather than a `fmt` formatter: `fmt` serialises every span's fields to a
//! string when the span opens, and its JSON formatter parses that string back on every line.
//! Here each field is serialised to JSON (by serde_json) once, when it is recorded, and a line
//! only copies those bytes: every request logs at least one line.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::request_context;
use super::span_fields::{SpanFields, write_quoted, write_str, write_value};

/// Writes each line, whole, to what `W` makes: stdout through a background writer in the
/// service, a buffer in tests.
pub struct JsonLog<W> {
    make_writer: W,
}

impl<W> JsonLog<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> Layer<S> for JsonLog<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::with_capacity(attrs.fields().len());
        attrs.record(&mut Visitor(&mut NewSpanFields(&mut fields)));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(leaf) = ctx.event_span(event) else {
            // Outside any span: inside a request that is not recorded, or outside requests.
            let written = request_context::with_current(|request| {
                let fields = request.fields();
                self.write_line(event, &[(REQUEST_SPAN, Some(&*fields))], Some(request.ids()));
            });
            if written.is_none() {
                self.write_line(event, &[], None);
            }
            return;
        };
        // Enclosing spans, innermost first.
        let scope: Vec<SpanRef<'_, S>> = leaf.scope().collect();
        let ids = recorded_ids(&leaf);
        let guards: Vec<_> = scope.iter().map(|span| span.extensions()).collect();
        let spans: Vec<(&str, Option<&SpanFields>)> = scope
            .iter()
            .zip(&guards)
            .map(|(span, extensions)| (span.name(), extensions.get::<SpanFields>()))
            .collect();
        self.write_line(event, &spans, ids.as_ref());
    }
}

/// The OpenTelemetry ids of a span the OpenTelemetry layer records.
fn recorded_ids<S>(span: &SpanRef<'_, S>) -> Option<SpanContext>
where
    S: for<'a> LookupSpan<'a>,
{
    let context =
        tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(&span.id(), dispatch))?;
    Some(context.span().span_context().clone())
}

/// The name a request's root span has, under which a request that is not recorded logs its
/// fields too.
pub(super) const REQUEST_SPAN: &str = "HTTP request";

impl<W: for<'w> MakeWriter<'w>> JsonLog<W> {
    /// Writes the line of `event` inside `spans` (innermost first).
    fn write_line(&self, event: &Event<'_>, spans: &[(&str, Option<&SpanFields>)], ids: Option<&SpanContext>) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            let meta = event.metadata();
            line.extend_from_slice(b"{\"timestamp\":\"");
            let _ = time::OffsetDateTime::now_utc().format_into(line, &time::format_description::well_known::Rfc3339);
            line.extend_from_slice(b"\",\"level\":\"");
            line.extend_from_slice(meta.level().as_str().as_bytes());
            line.extend_from_slice(b"\",\"target\":");
            write_str(line, meta.target());
            event.record(&mut Visitor(&mut EventFields(line)));
            if !spans.is_empty() {
                line.extend_from_slice(b",\"span\":{");
                let mut first = true;
                for (depth, (_, fields)) in spans.iter().enumerate() {
                    let Some(fields) = fields else { continue };
                    for (key, range) in &fields.fields {
                        // An inner span's value for a name wins.
                        if spans[..depth].iter().filter_map(|s| s.1).any(|inner| inner.has(key)) {
                            continue;
                        }
                        if !first {
                            line.push(b',');
                        }
                        first = false;
                        line.extend_from_slice(&fields.json[range.clone()]);
                    }
                }
                line.extend_from_slice(b"},\"spans\":[");
                for (i, (name, _)) in spans.iter().rev().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    write_str(line, name);
                }
                line.push(b']');
            }
            if let Some(ids) = ids.filter(|ids| ids.is_valid()) {
                let _ = write!(
                    line,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    ids.trace_id(),
                    ids.span_id()
                );
            }
            line.extend_from_slice(b"}\n");
            // One write per whole line, so lines from several threads never interleave.
            let _ = self.make_writer.make_writer().write_all(line);
        });
    }
}

thread_local! {
    /// The line being written, reused so a log line costs no allocation of its own.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Where a visitor's JSON values go: a span's buffer, or straight into the line.
trait JsonFields {
    /// Writes the value of `field` through `value`.
    fn set(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>));
}

impl JsonFields for SpanFields {
    fn set(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>)) {
        SpanFields::set(self, field.name(), value);
    }
}

/// The fields a span is created with.
struct NewSpanFields<'a>(&'a mut SpanFields);

impl JsonFields for NewSpanFields<'_> {
    fn set(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>)) {
        self.0.push(field.name(), value);
    }
}

/// An event's fields, written straight into its line as `,"key":value`.
struct EventFields<'a>(&'a mut Vec<u8>);

impl JsonFields for EventFields<'_> {
    fn set(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>)) {
        self.0.push(b',');
        write_str(self.0, field.name());
        self.0.push(b':');
        value(self.0);
    }
}

/// Records every field type as JSON into either kind of fields.
struct Visitor<'a, T>(&'a mut T);

impl<T: JsonFields> Visit for Visitor<'_, T> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field, |json| write_value(json, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field, |json| write_value(json, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field, |json| write_value(json, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field, |json| {
            json.extend_from_slice(if value { b"true" } else { b"false" })
        });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field, |json| write_str(json, value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.set(field, |json| write_quoted(json, format_args!("{value}")));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.set(field, |json| write_quoted(json, format_args!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_json_reads_them_back() {
        for s in [
            "plain",
            "quote \" and \\ back",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}",
            "ünï 🦀",
            "",
        ] {
            let json = escaped(s);
            assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s, "{json}");
        }
        let mut out = Vec::new();
        write_quoted(&mut out, format_args!("{:?}", "a \"b\""));
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), r#""a \"b\"""#);
    }

    #[test]
    fn values_are_written_in_their_display_form() {
        let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let id = uuid::Uuid::from_u128(0x0af7651916cd43dd8448eb211c80319c);
        let mut out = Vec::new();
        write_value(&mut out, ip);
        write_value(&mut out, id);
        write_value(&mut out, f64::NAN);
        assert_eq!(String::from_utf8(out).unwrap(), format!("\"{ip}\"\"{id}\"null"));
    }
}
