//! Head sampling, decided once per request before any of its spans exists.
//!
//! The OpenTelemetry SDK's tracer, which this service used to build spans with, samples when it
//! builds a span, after every field of every span has been turned into attributes: an unsampled
//! request paid nearly the whole price of a sampled one (bench/instrumentation.sh). Here the root
//! span's decision comes from the standard `OTEL_TRACES_SAMPLER`/`_ARG` and the caller's
//! `traceparent`; the spans of a request that is not recorded are not created
//! (`SkipUnrecordedChildren`) or not recorded (span_export.rs), and the request keeps a trace id
//! of its own (the caller's, or a random one) for its log lines and its `traceresponse` header.

use std::cell::RefCell;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The samplers of the OpenTelemetry specification (`OTEL_TRACES_SAMPLER`).
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// Records this share of traces, by trace id, as the specification's `TraceIdRatioBased`.
    TraceIdRatio(f64),
    /// The parent's decision when there is a parent, else the inner sampler's.
    ParentBased(Box<Sampler>),
}

impl Sampler {
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` as the specification defines them;
    /// an unknown name is the default, `parentbased_always_on`, and a ratio outside 0..=1 is 1.
    pub fn from_variables(name: Option<&str>, arg: Option<&str>) -> Self {
        let ratio = || {
            let ratio = arg.and_then(|a| a.trim().parse::<f64>().ok());
            Sampler::TraceIdRatio(ratio.filter(|r| (0.0..=1.0).contains(r)).unwrap_or(1.0))
        };
        match name.map(str::trim) {
            Some("always_on") => Sampler::AlwaysOn,
            Some("always_off") => Sampler::AlwaysOff,
            Some("traceidratio") => ratio(),
            Some("parentbased_always_off") => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Some("parentbased_traceidratio") => Sampler::ParentBased(Box::new(ratio())),
            _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        }
    }

    /// Whether a trace with this id, under this parent (if any), is recorded.
    pub fn should_record(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            // The specification's rule: the trace id's low 63 bits against the ratio of 2^63,
            // so every service with the same ratio agrees on the same trace.
            Sampler::TraceIdRatio(ratio) => {
                let bytes = trace_id.to_bytes();
                let low = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")) >> 1;
                (low as f64) < ratio * (1u64 << 63) as f64
            }
            Sampler::ParentBased(root) => match parent {
                Some(parent) => parent.is_sampled(),
                None => root.should_record(None, trace_id),
            },
        }
    }
}

/// `None` when no span is ever recorded (no exporter, or the SDK disabled).
static SAMPLER: OnceLock<Option<Sampler>> = OnceLock::new();

pub(super) fn install(sampler: Option<Sampler>) {
    let _ = SAMPLER.set(sampler);
}

/// A request's place in a trace, decided once before any of its spans exists.
pub struct RequestTrace {
    /// The caller's span, from its `traceparent`.
    pub remote_parent: Option<SpanContext>,
    /// The caller's trace id, or a new one: the one its spans, log lines and `traceresponse`
    /// carry, and the one a ratio sampler decided on.
    pub trace_id: TraceId,
    pub recorded: bool,
}

impl RequestTrace {
    /// Decides for a request with this remote parent (invalid when the caller sent none).
    pub fn decide(remote: &SpanContext) -> Self {
        let remote_parent = remote.is_valid().then(|| remote.clone());
        let trace_id = remote_parent
            .as_ref()
            .map_or_else(random_trace_id, SpanContext::trace_id);
        let recorded = decide(remote_parent.as_ref(), trace_id);
        Self {
            remote_parent,
            trace_id,
            recorded,
        }
    }

    /// The ids a request that is not recorded reports in its log lines and `traceresponse`: its
    /// trace id, a span id of its own, not sampled.
    pub fn unrecorded_ids(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            random_span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        )
    }
}

thread_local! {
    /// The request whose root span is being created right now on this thread, if any, so the
    /// filter below and the span export layer apply its decision instead of deciding again.
    static CREATING_ROOT: RefCell<Option<RequestTrace>> = const { RefCell::new(None) };
}

/// Creates a request's root span with `make`, recorded or not as `trace` says.
pub fn root_span(trace: RequestTrace, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    CREATING_ROOT.set(Some(trace));
    let span = make();
    CREATING_ROOT.set(None);
    span
}

/// `f` of the request whose root span is being created on this thread, if one is.
pub(super) fn with_creating_root<R>(f: impl FnOnce(Option<&RequestTrace>) -> R) -> R {
    CREATING_ROOT.with_borrow(|root| f(root.as_ref()))
}

/// A new trace id for a span outside any request, if the sampler records it.
pub(super) fn decide_new_trace() -> Option<TraceId> {
    let trace_id = random_trace_id();
    decide(None, trace_id).then_some(trace_id)
}

/// The installed sampler's decision.
fn decide(parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
    match SAMPLER.get() {
        Some(Some(sampler)) => sampler.should_record(parent, trace_id),
        Some(None) => false,
        // Not installed (unit tests of the HTTP layer): record, as the SDK would.
        None => true,
    }
}

/// A global filter: inside a request that is not recorded, spans are not created at all. Their
/// consumers would be the span export layer, which would not record them, and the `span` fields of
/// log lines written inside them; such lines keep the request's fields (route, request id,
/// trace id) from its `RequestContext`. Every event stays. Creating, entering and closing a span
/// costs more than the rest of a log line (bench/README.md).
pub struct SkipUnrecordedChildren;

impl<S> Layer<S> for SkipUnrecordedChildren
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Spans are decided one by one (the same callsite is recorded in one request and not
        // in the next); events always pass.
        if metadata.is_span() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        if !metadata.is_span() || with_creating_root(|root| root.is_some()) {
            return true;
        }
        // Only requests that are not recorded have a context.
        super::request_context::with_current(|_| ()).is_none()
    }
}

/// The SDK's generator (a thread-local userspace RNG, no system call per id).
fn random_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

pub(super) fn random_span_id() -> SpanId {
    RandomIdGenerator::default().new_span_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn variables_name_the_specifications_samplers() {
        use Sampler::*;
        let parse = Sampler::from_variables;
        assert_eq!(parse(None, None), ParentBased(Box::new(AlwaysOn)));
        assert_eq!(parse(Some("always_off"), None), AlwaysOff);
        assert_eq!(parse(Some("traceidratio"), Some("0.25")), TraceIdRatio(0.25));
        assert_eq!(
            parse(Some("parentbased_traceidratio"), Some("0.1")),
            ParentBased(Box::new(TraceIdRatio(0.1)))
        );
        assert_eq!(parse(Some("traceidratio"), Some("7")), TraceIdRatio(1.0));
        assert_eq!(parse(Some("jaeger_remote"), None), ParentBased(Box::new(AlwaysOn)));
    }

    #[test]
    fn parent_based_follows_the_caller() {
        let sampler = Sampler::from_variables(Some("parentbased_traceidratio"), Some("0"));
        assert!(sampler.should_record(Some(&remote(true)), TraceId::from(1u128)));
        assert!(!sampler.should_record(Some(&remote(false)), TraceId::from(1u128)));
        assert!(!sampler.should_record(None, TraceId::from(1u128)));
    }

    #[test]
    fn ratio_records_about_its_share_by_trace_id() {
        let sampler = Sampler::TraceIdRatio(0.1);
        let recorded = (0..20_000)
            .filter(|_| sampler.should_record(None, random_trace_id()))
            .count();
        assert!((1_600..2_400).contains(&recorded), "{recorded} of 20000 at 10 %");
        // The decision is a function of the trace id alone.
        let id = random_trace_id();
        assert_eq!(sampler.should_record(None, id), sampler.should_record(None, id));
    }
}
