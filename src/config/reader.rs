//! Reading variables: each through its entry in the table, every bad value reported.

use std::str::FromStr;
use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

use super::Variable;

/// The SDK's sampler named by `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, as the
/// specification defines them: an unknown name is the default, `parentbased_always_on`; a ratio
/// that is missing or outside 0..=1 is 1.
pub(super) fn sampler(name: Option<&str>, arg: Option<&str>) -> Sampler {
    let ratio = || {
        let ratio = arg.and_then(|a| a.trim().parse::<f64>().ok());
        Sampler::TraceIdRatioBased(ratio.filter(|r| (0.0..=1.0).contains(r)).unwrap_or(1.0))
    };
    let parent_based = |root| Sampler::ParentBased(Box::new(root));
    match name.map(str::trim) {
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => ratio(),
        Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent_based(ratio()),
        _ => parent_based(Sampler::AlwaysOn),
    }
}

/// An exact origin, `scheme://host[:port]`, lower-cased. `*` and `null` are refused: with
/// credentials allowed, either would let any website act as the user.
pub(super) fn parse_origin(raw: &str) -> Result<String, String> {
    if raw == "*" || raw.eq_ignore_ascii_case("null") {
        return Err(format!(
            "`{raw}` is not allowed: list exact origins (credentials are allowed, so a wildcard would let any site act as the user)"
        ));
    }
    let origin = raw.trim_end_matches('/').to_ascii_lowercase();
    let valid = origin.split_once("://").is_some_and(|(scheme, host)| {
        matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains(['/', '?', '#', '*', ' '])
    });
    if !valid {
        return Err(format!("`{raw}` is not an origin like https://app.example.com"));
    }
    Ok(origin)
}

/// The documented default of `var`, which is a value wherever the parser relies on it.
fn default_of<T: FromStr>(var: &Variable) -> T
where
    T::Err: std::fmt::Display,
{
    var.default.parse().unwrap_or_else(|e| {
        panic!(
            "the default of {} (`{}`) must be a valid value: {e}",
            var.name, var.default
        )
    })
}

/// Collects one error per bad variable instead of stopping at the first, and the name of every
/// variable read.
pub(super) struct Reader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) errors: Vec<String>,
    pub(super) read: Vec<&'static str>,
}

impl Reader<'_> {
    pub(super) fn raw(&mut self, var: &Variable) -> Option<String> {
        self.read.push(var.name);
        (self.lookup)(var.name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A secret from `NAME`, or from the file named by `NAME_FILE`.
    pub(super) fn secret(&mut self, var: &Variable) -> Option<String> {
        if let Some(value) = self.raw(var) {
            return Some(value);
        }
        let name = var.name;
        let path = (self.lookup)(&format!("{name}_FILE")).filter(|p| !p.trim().is_empty())?;
        match std::fs::read_to_string(path.trim()) {
            Ok(value) => Some(value.trim().to_string()).filter(|v| !v.is_empty()),
            Err(e) => {
                self.errors.push(format!("{name}_FILE: cannot read {path}: {e}"));
                None
            }
        }
    }

    /// Whether `NAME` or `NAME_FILE` is set (without reading the file again).
    pub(super) fn secret_was_given(&self, var: &Variable) -> bool {
        let set = |name: &str| (self.lookup)(name).is_some_and(|v| !v.trim().is_empty());
        set(var.name) || set(&format!("{}_FILE", var.name))
    }

    /// The variable's value, or its documented default.
    pub(super) fn parse<T: FromStr>(&mut self, var: &Variable) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.parse_or(var, default_of(var))
    }

    /// The variable's value, or `default` where the documented one is a description.
    pub(super) fn parse_or<T: FromStr>(&mut self, var: &Variable, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        let Some(raw) = self.raw(var) else {
            return default;
        };
        raw.parse().unwrap_or_else(|e| {
            self.errors.push(format!("{}: cannot use `{raw}`: {e}", var.name));
            default
        })
    }

    pub(super) fn positive<T: FromStr + PartialOrd + Default + Copy>(&mut self, var: &Variable) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.positive_or(var, default_of(var))
    }

    pub(super) fn positive_or<T: FromStr + PartialOrd + Default + Copy>(&mut self, var: &Variable, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(var, default);
        if value <= T::default() {
            self.errors.push(format!("{}: must be greater than zero", var.name));
            return default;
        }
        value
    }

    /// A comma-separated list, each item parsed by `parse`; empty when unset.
    pub(super) fn list<T>(&mut self, var: &Variable, parse: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
        let Some(raw) = self.raw(var) else { return Vec::new() };
        let mut items = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match parse(item) {
                Ok(value) => items.push(value),
                Err(e) => self.errors.push(format!("{}: {e}", var.name)),
            }
        }
        items
    }

    pub(super) fn seconds(&mut self, var: &Variable) -> Duration {
        Duration::from_secs(self.positive(var))
    }
}
