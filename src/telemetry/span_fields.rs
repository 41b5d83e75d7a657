//! A span's fields as JSON text, written once when recorded and copied into every log line of
//! the span; and the writers of JSON values both the log layer and the request context use.

use std::fmt;
use std::ops::Range;

use serde::Serializer as _;

/// A span's fields, each value serialised to JSON when recorded.
#[derive(Debug, PartialEq)]
pub(super) struct SpanFields {
    /// `"name":value` for each field, back to back: a line copies them as they are.
    pub(super) json: Vec<u8>,
    /// Each field's name and where its latest `"name":value` is in `json`.
    pub(super) fields: Vec<(&'static str, Range<usize>)>,
}

impl SpanFields {
    pub(super) fn with_capacity(fields: usize) -> Self {
        Self {
            json: Vec::with_capacity(fields * 40),
            fields: Vec::with_capacity(fields),
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
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

pub(super) fn write_str(out: &mut Vec<u8>, value: &str) {
    let _ = serde_json::to_writer(out, value);
}

/// Formatted text as a JSON string, escaped by serde_json as it is formatted (no intermediate
/// `String`).
pub(super) fn write_quoted(out: &mut Vec<u8>, text: fmt::Arguments<'_>) {
    let _ = serde_json::Serializer::new(out).collect_str(&text);
}

/// Numbers, addresses, UUIDs: their serde form (JSON has no NaN or infinities: those become
/// `null`).
pub(super) fn write_value(out: &mut Vec<u8>, value: impl serde::Serialize) {
    let _ = serde_json::to_writer(out, &value);
}
