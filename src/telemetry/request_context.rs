//! What a request that is not recorded has instead of a root span: its trace ids and its log
//! fields, held by the request and, while the request is handled, by its task.
//!
//! A `tracing` span costs a registry slot, reference counting and a thread-local stack push at
//! every poll of the request's future and body, and every lookup of it goes through the layers;
//! for a request that ends up as one access line that is more than the line itself
//! (bench/tracing_overhead.rs). So with JSON logs, only recorded requests get a span; the others
//! get this context, which the JSON log layer writes into each line as it would a span's fields.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use opentelemetry::trace::SpanContext;

use super::span_fields::{self, SpanFields};

/// The request's ids and fields, as its root span would have them.
pub struct RequestContext {
    ids: SpanContext,
    fields: RefCell<SpanFields>,
}

tokio::task_local! {
    /// The context of the request whose future is being polled.
    static CURRENT: Rc<RequestContext>;
}

impl RequestContext {
    pub(super) fn new(ids: SpanContext, fields: SpanFields) -> Rc<Self> {
        Rc::new(Self {
            ids,
            fields: RefCell::new(fields),
        })
    }

    /// The trace id the request carries (the caller's, or its own) and its would-be span id.
    pub fn ids(&self) -> &SpanContext {
        &self.ids
    }

    pub(super) fn fields(&self) -> std::cell::Ref<'_, SpanFields> {
        self.fields.borrow()
    }

    pub fn record_u64(&self, name: &'static str, value: u64) {
        self.fields
            .borrow_mut()
            .set(name, |json| span_fields::write_value(json, value));
    }

    pub fn record_str(&self, name: &'static str, value: &str) {
        self.fields
            .borrow_mut()
            .set(name, |json| span_fields::write_str(json, value));
    }
}

/// Runs `future` with `context` as the current request's.
pub async fn scope<F: Future>(context: Rc<RequestContext>, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// `f` of the current request's context, if code of a request that is not recorded is running.
pub(super) fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(|context| f(context)).ok()
}
