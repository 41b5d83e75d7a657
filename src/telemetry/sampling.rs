//! Head sampling, decided once per request before any of its spans exists.
//!
//! The OpenTelemetry SDK samples when tracing-opentelemetry builds a span, after it has already
//! turned every field of every span into attributes: an unsampled request paid nearly the whole
//! price of a sampled one (bench/instrumentation.sh). Here the root span's decision comes from
//! the standard `OTEL_TRACES_SAMPLER`/`_ARG` and the caller's `traceparent`; the spans of a
//! request that is not recorded never reach the OpenTelemetry layer (`RecordedOnly`), and
//! the request keeps a trace id of its own (the caller's, or a random one) for its log lines and
//! its `traceresponse` header. The SDK itself then samples always on.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

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

thread_local! {
    /// The decision for the root span being created right now on this thread, if any, so the
    /// filter below applies it instead of deciding again.
    static CREATING_ROOT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Decides for a request with this remote parent (invalid when the caller sent none). `None`
/// when it is recorded (the OpenTelemetry layer gives its root span ids), else the ids it
/// reports in its log lines and `traceresponse`: the caller's trace id, or a new one.
pub fn unrecorded_ids(remote: &SpanContext) -> Option<SpanContext> {
    let parent = remote.is_valid().then_some(remote);
    let trace_id = parent.map_or_else(random_trace_id, |p| p.trace_id());
    if decide(parent, trace_id) {
        return None;
    }
    Some(SpanContext::new(
        trace_id,
        random_span_id(),
        TraceFlags::default(),
        false,
        TraceState::default(),
    ))
}

/// Creates a request's root span with `make`, recorded or not as decided by `unrecorded_ids`.
pub fn root_span(recorded: bool, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    CREATING_ROOT.set(Some(recorded));
    let span = make();
    CREATING_ROOT.set(None);
    span
}

/// Wraps the OpenTelemetry layer so it only sees the spans and events of recorded requests.
/// Outside any request (start-up, shutdown) the sampler decides as for a root; a child follows
/// its parent.
///
/// Not a per-layer filter: `Filtered` looks the span up and updates thread-local filter state on
/// every enter, exit, record and close of every span, which cost an unrecorded request more
/// than its log line (bench/tracing_overhead.rs). Here only creation, records and events are
/// checked; close is passed through (the OpenTelemetry layer treats a span it never saw as
/// nothing to do: no data in its extensions), and enter and exit are not passed on (see below).
pub struct RecordedOnly<L>(pub L);

/// In the extensions of a span the wrapped layer has seen.
struct Recorded;

impl<S, L> Layer<S> for RecordedOnly<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let record = match CREATING_ROOT.get() {
            Some(record) => record,
            None => {
                let parent = match attrs.parent() {
                    Some(parent) => cx.span(parent),
                    None if attrs.is_contextual() => cx.lookup_current(),
                    None => None,
                };
                match parent {
                    Some(parent) => parent.extensions().get::<Recorded>().is_some(),
                    None => decide(None, random_trace_id()),
                }
            }
        };
        if record {
            if let Some(span) = cx.span(id) {
                span.extensions_mut().insert(Recorded);
            }
            self.0.on_new_span(attrs, id, cx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        if is_recorded(cx.span(id)) {
            self.0.on_record(id, values, cx);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, cx: Context<'_, S>) {
        if is_recorded(cx.span(id)) {
            self.0.on_follows_from(id, follows, cx);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, cx: Context<'_, S>) {
        // The access line would only repeat the root span's status and duration as a span event.
        if event.metadata().target() == super::http::ACCESS_TARGET {
            return;
        }
        if is_recorded(cx.event_span(event)) {
            self.0.on_event(event, cx);
        }
    }

    // Enter and exit are not passed on. Without context activation and inactivity tracking
    // (telemetry::init) the OpenTelemetry layer does nothing on enter, and on exit only looks
    // the span up, locks it and stamps an end time, at every poll of every instrumented future.
    // Unstamped, a span ends when it closes: for a child span right after its last poll, for
    // the request's root span once the response has been sent, which is what an HTTP server
    // span should cover.

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.0.on_close(id, cx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, cx: Context<'_, S>) {
        self.0.on_id_change(old, new, cx);
    }

    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        // tracing-opentelemetry finds its span context through this (`OpenTelemetrySpanExt`).
        if id == std::any::TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded unchanged to the wrapped layer, which upholds the contract.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}

fn is_recorded<S>(span: Option<SpanRef<'_, S>>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.is_some_and(|span| span.extensions().get::<Recorded>().is_some())
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
/// consumers would be the OpenTelemetry layer, which never sees them, and the `span` fields of
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
        if !metadata.is_span() || CREATING_ROOT.get().is_some() {
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

fn random_span_id() -> SpanId {
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
