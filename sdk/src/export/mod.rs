//! Sinks for processed spans: trace files (§8), the Tusk API (§9), and memory (tests); and reading a trace file back.

pub mod api;
mod api_exporter;
mod file;
mod memory;
mod read;

pub(crate) use api_exporter::ApiExporter;
pub use file::FileExporter;
pub use memory::{InMemoryExporter, InMemorySpans};
pub use read::{ReadTraceError, TraceFile, read_trace_file};

use crate::clean_span::CleanSpan;

/// What one export call achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Spans written or accepted.
    pub exported: u64,
    /// Spans whose export failed; they are not retried.
    pub failed: u64,
}

/// A sink for batches of spans.
///
/// Every method is called on the `drift-exporter` thread only, and never concurrently, so implementations may keep
/// mutable state without locks and may block (file I/O, HTTP with retries).
pub trait SpanExporter: Send + std::fmt::Debug {
    /// Exports one batch, in span-end order. May block.
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome;

    /// Called once after the last batch, at shutdown: close files, release connections. May block.
    fn shutdown(&mut self) {}

    /// The most spans one [`export`](Self::export) call should carry: the export thread converts a larger batch of
    /// records and hands it over in chunks of this size. A sink that writes span by span (files) gains from small
    /// chunks: each chunk's spans are still in the CPU cache when written, and their allocations are freed while
    /// the allocator's per-thread cache can take them back for the next chunk. Default: no limit, one call per
    /// batch (the API sink sends one request per call).
    fn max_spans_per_call(&self) -> usize {
        usize::MAX
    }

    /// Whether the sink's circuit breaker is open now (only the API sink has one). Feeds adaptive sampling.
    fn circuit_open(&self) -> bool {
        false
    }
}
