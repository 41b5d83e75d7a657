//! Head sampling, decided once per request before any of its spans exists.
//!
//! The SDK's tracer samples a span when it starts it, after tracing-opentelemetry has turned
//! every field into attributes: asked there, a request that is not recorded would pay for span
//! builders it then drops. So the request asks the SDK's own sampler first (`ShouldSample`,
//! the same `Sampler` the tracer provider holds) with the caller's `traceparent` and the trace id
//! it will carry. A request that is not recorded then gets no span at all: its children are not
//! created (`SkipUnrecordedChildren`) and it keeps its trace id for its log lines and its
//! `traceresponse` header. A recorded request's root span is started at once with that same trace
//! id (`DecidedTraceIds`), so the tracer's own decision, a function of parent and trace id, is the
//! one already taken.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample as _};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

/// The tracer provider's sampler; `None` when nothing is ever recorded (no exporter, or the SDK
/// disabled).
static SAMPLER: OnceLock<Option<Sampler>> = OnceLock::new();

pub(super) fn install(sampler: Option<Sampler>) {
    let _ = SAMPLER.set(sampler);
}

/// A request's place in a trace, decided once before any of its spans exists.
pub struct RequestTrace {
    /// The caller's context, from its `traceparent` (empty when it sent none).
    pub remote_parent: Context,
    /// The caller's trace id, or a new one: the one its spans, log lines and `traceresponse`
    /// carry, and the one the sampler decided on.
    pub trace_id: TraceId,
    pub recorded: bool,
}

impl RequestTrace {
    /// Asks the installed sampler about a server span under `remote_parent`.
    pub fn decide(remote_parent: Context, name: &str) -> Self {
        let parent = remote_parent.span().span_context().clone();
        let trace_id = if parent.is_valid() {
            parent.trace_id()
        } else {
            RandomIdGenerator::default().new_trace_id()
        };
        let recorded = match SAMPLER.get() {
            Some(Some(sampler)) => {
                let result = sampler.should_sample(Some(&remote_parent), trace_id, name, &SpanKind::Server, &[], &[]);
                result.decision == SamplingDecision::RecordAndSample
            }
            Some(None) => false,
            // Not installed (unit tests of the HTTP layer): record, as the SDK's default would.
            None => true,
        };
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
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        )
    }

    /// Runs `start`, which starts the request's root span, so that a new trace gets the trace id
    /// decided on here.
    pub fn start_root<R>(&self, start: impl FnOnce() -> R) -> R {
        NEXT_TRACE_ID.set(Some(self.trace_id));
        let started = start();
        NEXT_TRACE_ID.set(None);
        started
    }
}

thread_local! {
    /// The trace id of the root span being started on this thread, if one is.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// The tracer provider's id generator: the SDK's random ids, except that the root span of a
/// request started through [`RequestTrace::start_root`] gets the trace id sampled on.
#[derive(Debug, Default)]
pub(super) struct DecidedTraceIds(RandomIdGenerator);

impl IdGenerator for DecidedTraceIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID.take().unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// A global filter: inside a request that is not recorded, spans are not created at all. Their
/// consumers would be the OpenTelemetry layer, which must not record them, and the `span`
/// fields of log lines written inside them; such lines keep the request's fields (route, request
/// id, trace id) from its `RequestContext`. Every event stays.
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

    fn enabled(&self, metadata: &Metadata<'_>, _: LayerContext<'_, S>) -> bool {
        // Only requests that are not recorded have a context.
        !metadata.is_span() || super::request_context::with_current(|_| ()).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let span = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(span)
    }

    #[test]
    fn a_started_root_gets_the_decided_trace_id_once() {
        let ids = DecidedTraceIds::default();
        let trace = RequestTrace {
            remote_parent: Context::new(),
            trace_id: TraceId::from(42u128),
            recorded: true,
        };
        assert_eq!(trace.start_root(|| ids.new_trace_id()), TraceId::from(42u128));
        assert_ne!(
            trace.start_root(|| (ids.new_trace_id(), ids.new_trace_id())).1,
            TraceId::from(42u128)
        );
        assert_ne!(ids.new_trace_id(), TraceId::from(42u128), "only inside start_root");
    }

    #[test]
    fn the_decision_follows_the_caller_and_keeps_its_trace_id() {
        // Sampler::decide reads the installed sampler; the SDK's sampler is asked the same way.
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.0)));
        for (sampled, expected) in [
            (true, SamplingDecision::RecordAndSample),
            (false, SamplingDecision::Drop),
        ] {
            let cx = remote(sampled);
            let result = sampler.should_sample(Some(&cx), TraceId::from(7u128), "GET /", &SpanKind::Server, &[], &[]);
            assert_eq!(result.decision, expected);
        }
        let trace = RequestTrace::decide(remote(true), "GET /");
        assert_eq!(trace.trace_id, TraceId::from(7u128));
        assert_eq!(trace.unrecorded_ids().trace_id(), TraceId::from(7u128));
    }
}
