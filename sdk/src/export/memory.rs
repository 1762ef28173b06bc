//! The in-memory sink, for tests.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{ExportOutcome, SpanExporter};
use crate::clean_span::CleanSpan;

/// A handle to the spans an in-memory sink has received, in arrival order. Clone it freely: clones share the list.
#[derive(Debug, Clone, Default)]
pub struct InMemorySpans {
    spans: Arc<Mutex<Vec<CleanSpan>>>,
}

impl InMemorySpans {
    /// An empty list.
    pub fn new() -> InMemorySpans {
        InMemorySpans::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CleanSpan>> {
        // A panic while holding this lock cannot leave the Vec inconsistent: take the data anyway.
        self.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every span received so far.
    pub fn all(&self) -> Vec<CleanSpan> {
        self.lock().clone()
    }

    /// The spans whose `instrumentation_name` contains `needle`.
    pub fn by_instrumentation(&self, needle: &str) -> Vec<CleanSpan> {
        self.lock()
            .iter()
            .filter(|s| s.instrumentation_name.contains(needle))
            .cloned()
            .collect()
    }

    /// The spans of one kind (see [`kind`](crate::clean_span::kind)).
    pub fn by_kind(&self, kind: i32) -> Vec<CleanSpan> {
        self.lock().iter().filter(|s| s.kind == kind).cloned().collect()
    }

    /// Number of spans received.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no span was received.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every span.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// A sink that appends to an [`InMemorySpans`].
#[derive(Debug)]
pub struct InMemoryExporter {
    spans: InMemorySpans,
}

impl InMemoryExporter {
    /// A sink writing into `spans`.
    pub fn new(spans: InMemorySpans) -> InMemoryExporter {
        InMemoryExporter { spans }
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        let n = batch.len() as u64;
        self.spans.lock().extend(batch);
        ExportOutcome { exported: n, failed: 0 }
    }
}
