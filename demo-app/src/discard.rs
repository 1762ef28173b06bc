//! `--discard-spans`: a sink that builds every span's trace-file line, exactly as the file sink would, and throws it
//! away. The benchmark runs it to measure the SDK without file I/O: record − record without files = the cost of one
//! file per trace.

use drift_sdk::{CleanSpan, ExportOutcome, SpanExporter};

/// Encodes each span's JSON line into one reused buffer, then forgets it.
#[derive(Debug, Default)]
pub struct DiscardLines {
    line: Vec<u8>,
}

impl SpanExporter for DiscardLines {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        for span in &batch {
            self.line.clear();
            span.write_json_line(&mut self.line);
            std::hint::black_box(&self.line);
        }
        ExportOutcome {
            exported: batch.len() as u64,
            failed: 0,
        }
    }

    /// In the file sink's chunks, so that only the file I/O differs.
    fn max_spans_per_call(&self) -> usize {
        drift_sdk::FileExporter::SPANS_PER_CALL
    }
}
