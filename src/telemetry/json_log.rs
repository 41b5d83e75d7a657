//! One JSON object per log line: timestamp, level, target, the event's fields, the fields of
//! every enclosing span, and the OpenTelemetry `trace_id`/`span_id` so a line can be found from
//! a trace and the other way round.
//!
//! A layer of its own rather than a `fmt` formatter: `fmt` serialises every span's fields to a
//! string when the span opens, which a JSON line would then have to parse back. Here each field
//! is serialised to JSON once, when it is recorded, and a line only copies those bytes: every
//! request logs one line, so its cost is paid on every request (bench/tracing_overhead.rs).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use opentelemetry::trace::SpanContext;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::{log_writer, request_context, span_export};

pub struct JsonLog;

/// A span's fields, each value serialised to JSON when recorded.
#[derive(Debug, PartialEq)]
pub(super) struct SpanFields {
    /// `"name":value` for each field, back to back: a line copies them as they are.
    json: Vec<u8>,
    /// Each field's name and where its latest `"name":value` is in `json`.
    fields: Vec<(&'static str, Range<usize>)>,
}

impl<S> Layer<S> for JsonLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
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
                write_line(event, &[(REQUEST_SPAN, Some(&*fields))], Some(request.ids()));
            });
            if written.is_none() {
                write_line(event, &[], None);
            }
            return;
        };
        // Enclosing spans, innermost first.
        let scope: Vec<SpanRef<'_, S>> = leaf.scope().collect();
        let ids = span_export::recorded_ids(&leaf);
        let guards: Vec<_> = scope.iter().map(|span| span.extensions()).collect();
        let spans: Vec<(&str, Option<&SpanFields>)> = scope
            .iter()
            .zip(&guards)
            .map(|(span, extensions)| (span.name(), extensions.get::<SpanFields>()))
            .collect();
        write_line(event, &spans, ids.as_ref());
    }
}

/// The name a request's root span has, under which a request that is not recorded logs its
/// fields too.
pub(super) const REQUEST_SPAN: &str = "HTTP request";

/// Writes the line of `event` inside `spans` (innermost first) to stdout.
fn write_line(event: &Event<'_>, spans: &[(&str, Option<&SpanFields>)], ids: Option<&SpanContext>) {
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
            line.extend_from_slice(b",\"trace_id\":\"");
            write_hex(line, &ids.trace_id().to_bytes());
            line.extend_from_slice(b"\",\"span_id\":\"");
            write_hex(line, &ids.span_id().to_bytes());
            line.push(b'"');
        }
        line.extend_from_slice(b"}\n");
        // Whole lines, so lines from several threads never interleave.
        log_writer::write_line(line);
    });
}

thread_local! {
    /// The line being written, reused so a log line costs no allocation of its own.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

impl SpanFields {
    pub(super) fn with_capacity(fields: usize) -> Self {
        Self {
            json: Vec::with_capacity(fields * 40),
            fields: Vec::with_capacity(fields),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| *k == key)
    }

    /// Sets the field to the JSON `value` writes; a field recorded again points at its new value.
    pub(super) fn set(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        match self.fields.iter().position(|(k, _)| *k == name) {
            Some(i) => self.fields[i].1 = self.append(name, value),
            None => self.push(name, value),
        }
    }

    /// Adds a field the span does not have yet (the fields of one callsite are distinct).
    pub(super) fn push(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        // `otel.name`, `otel.kind`, `otel.status_code` tell the OpenTelemetry layer how to
        // build the span; the line already has the route, method and status they come from.
        if name.starts_with("otel.") {
            return;
        }
        let range = self.append(name, value);
        self.fields.push((name, range));
    }

    fn append(&mut self, name: &str, value: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
        let start = self.json.len();
        write_str(&mut self.json, name);
        self.json.push(b':');
        value(&mut self.json);
        start..self.json.len()
    }
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
        self.0.set(field, |json| write_number(json, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field, |json| write_number(json, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field, |json| write_number(json, value));
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

pub(super) fn write_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let _ = Escaped(out).write_str(value);
    out.push(b'"');
}

/// Formatted text as a JSON string, escaped as it is formatted (no intermediate `String`).
pub(super) fn write_quoted(out: &mut Vec<u8>, text: fmt::Arguments<'_>) {
    out.push(b'"');
    let _ = Escaped(out).write_fmt(text);
    out.push(b'"');
}

/// Lower-case hex, as W3C trace context spells ids (`fmt` took a tenth of a line's cost).
pub(super) fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

/// JSON has no NaN or infinities: those become `null`, as serde_json writes them.
pub(super) fn write_number(out: &mut Vec<u8>, value: impl serde::Serialize) {
    let _ = serde_json::to_writer(out, &value);
}

/// An IP address as a JSON string. IPv4 without `fmt`, whose `Display` for it (padding
/// support, a byte at a time) cost a request more than the rest of its log fields together.
pub(super) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(b'"');
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            out.push(b'"');
        }
        IpAddr::V6(v6) => write_quoted(out, format_args!("{v6}")),
    }
}

/// A UUID as a JSON string in its hyphenated lower-case form, without `fmt`.
pub(super) fn write_uuid(out: &mut Vec<u8>, id: &uuid::Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// Whether any byte of `bytes` is one JSON escapes: a control character, `"` or a backslash. Eight
/// bytes at a time, with the usual "has a zero byte" trick on each test.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` is below `n` (n <= 0x80) iff this sets its high bit.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let any =
        |x: u64| below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(|chunk| any(u64::from_ne_bytes(chunk.try_into().expect("8 bytes"))) != 0) {
        return true;
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Text written through it lands in the buffer as the inside of a JSON string.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Most values need no escaping: copied as they are.
        if !needs_escape(bytes) {
            self.0.extend_from_slice(bytes);
            return Ok(());
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            self.0.extend_from_slice(&bytes[start..i]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{b:04x}");
            } else {
                self.0.extend_from_slice(escape);
            }
            start = i + 1;
        }
        self.0.extend_from_slice(&bytes[start..]);
        Ok(())
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
        assert_eq!(escaped("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn escaping_is_found_at_every_position() {
        // Every length up to past two words, with the byte to escape at each position.
        for len in 0..20 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                    let s: String = (0..len).map(|i| if i == at { special } else { 'a' }).collect();
                    assert!(needs_escape(s.as_bytes()), "{s:?}");
                    assert_eq!(serde_json::from_str::<String>(&escaped(&s)).unwrap(), s);
                }
            }
            let plain: String = (0..len).map(|i| ['a', ' ', '~', 'é', '\u{7f}'][i % 5]).collect();
            assert!(!needs_escape(plain.as_bytes()), "{plain:?}");
        }
    }

    #[test]
    fn addresses_and_uuids_are_written_as_their_display_form() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "203.0.113.7",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{ip}\""));
        }
        let id = uuid::Uuid::from_u128(0x0af7651916cd43dd8448eb211c80319c);
        let mut out = Vec::new();
        write_uuid(&mut out, &id);
        assert_eq!(String::from_utf8(out).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn ids_are_written_as_their_display_form() {
        let id = opentelemetry::trace::TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128);
        let mut out = Vec::new();
        write_hex(&mut out, &id.to_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), id.to_string());
    }

    #[test]
    fn floats_outside_json_become_null() {
        let mut out = Vec::new();
        write_number(&mut out, f64::NAN);
        out.push(b' ');
        write_number(&mut out, 1.5);
        assert_eq!(out, b"null 1.5");
    }
}
