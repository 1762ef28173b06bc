//! Capture on the request thread: the inbound tower layer and the outbound reqwest middleware.
//!
//! Both do the minimum there — the sampling decision, drop rules, the task-local context, body taps that clone
//! `Bytes` — and build a raw [`SpanRecord`](crate::record::SpanRecord) in `finalize`, which `on_end` hands to the
//! export thread.

pub(crate) mod inbound;
pub(crate) mod outbound;
