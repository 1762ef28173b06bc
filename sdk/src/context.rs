//! The current inbound span, carried as a tokio task-local so that outbound calls made while serving a request
//! become its children (§5.1). It is set only for sampled requests; an unsampled request installs nothing.

use crate::ids::{SpanId, TraceId};

/// The parent an outbound call attaches to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub is_pre_app_start: bool,
}

tokio::task_local! {
    static CURRENT: SpanContext;
}

/// `fut` with `ctx` as the current span while it runs; a nameable future, so the layer needs no box.
pub(crate) fn scope<F: std::future::Future>(
    ctx: SpanContext,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<SpanContext, F> {
    CURRENT.scope(ctx, fut)
}

/// The current span, if the calling task runs inside a sampled request.
pub(crate) fn current() -> Option<SpanContext> {
    CURRENT.try_with(|c| *c).ok()
}
