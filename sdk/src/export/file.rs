//! The filesystem sink: one JSONL file per trace in the Tusk layout (§8).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lru::LruCache;

use super::{ExportOutcome, SpanExporter};
use crate::clean_span::CleanSpan;
use crate::ids::TraceId;

/// Open file handles kept between batches. Most traces are written by one batch (the CLIENT spans of a request end
/// just before its SERVER span), so a small cache keeps the number of open descriptors low.
const OPEN_HANDLES: usize = 64;

/// Writes each span as one line of `<timestamp>_trace_<traceId>.jsonl`, appending, one `write` per line.
///
/// Nothing here allocates per span once the caches are warm: a trace's file is remembered by the time of its first
/// write (the name is rebuilt from it in a reused buffer), the LRU reuses its evicted entries, and the open handles
/// live in a small vector.
#[derive(Debug)]
pub struct FileExporter {
    dir: PathBuf,
    /// Trace → when its file was first written, which names it (§8.1: an evicted trace seen again gets a new file).
    first_write: LruCache<TraceId, SystemTime>,
    /// Open files, least recently used first; at most [`OPEN_HANDLES`].
    handles: Vec<(TraceId, File)>,
    max_handles: usize,
    line: Vec<u8>,
    /// The path of the file being opened, rebuilt in place.
    path: PathBuf,
    name: String,
    write_error_logged: bool,
}

impl FileExporter {
    /// A sink writing into `dir`, which must exist, remembering `lru_capacity` traces (§8.1 says 1000).
    pub fn new(dir: impl Into<PathBuf>, lru_capacity: usize) -> FileExporter {
        let cap = NonZeroUsize::new(lru_capacity).unwrap_or(NonZeroUsize::MIN);
        let max_handles = OPEN_HANDLES.min(lru_capacity).max(1);
        FileExporter {
            dir: dir.into(),
            first_write: LruCache::new(cap),
            handles: Vec::with_capacity(max_handles),
            max_handles,
            line: Vec::with_capacity(4096),
            path: PathBuf::new(),
            name: String::with_capacity(96),
            write_error_logged: false,
        }
    }

    /// The directory the sink writes to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open file of `trace`, moved to the most recently used end.
    fn handle(&mut self, trace: TraceId) -> Option<&mut File> {
        let at = self.handles.iter().position(|(t, _)| *t == trace)?;
        let entry = self.handles.remove(at);
        self.handles.push(entry);
        self.handles.last_mut().map(|(_, file)| file)
    }

    fn forget_handle(&mut self, trace: TraceId) {
        self.handles.retain(|(t, _)| *t != trace);
    }

    fn write_span(&mut self, span: &CleanSpan) -> std::io::Result<()> {
        self.line.clear();
        {
            let _stage = tracing::trace_span!("write_line").entered();
            span.write_json_line(&mut self.line);
            self.line.push(b'\n');
        }
        let trace = span.trace_id;
        // Touch the trace in the LRU of files on every span, or it would age by first write only.
        let first_write = match self.first_write.get(&trace) {
            Some(&t) => t,
            None => {
                let now = SystemTime::now();
                if let Some((evicted, _)) = self.first_write.push(trace, now) {
                    // An evicted trace seen again gets a new file (§8.1): forget its open handle too.
                    self.forget_handle(evicted);
                }
                now
            }
        };
        if self.handle(trace).is_none() {
            let _stage = tracing::trace_span!("open_trace_file").entered();
            self.name.clear();
            write_file_name(&mut self.name, first_write, trace);
            self.path.clear();
            self.path.push(&self.dir);
            self.path.push(&self.name);
            let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            if self.handles.len() >= self.max_handles {
                self.handles.remove(0);
            }
            self.handles.push((trace, file));
        }
        let _stage = tracing::trace_span!("write_file").entered();
        let Some((_, file)) = self.handles.last_mut() else {
            unreachable_handle()
        };
        // One write call for the whole line (write_all loops only on a short write) on an O_APPEND file: a crash
        // can tear only the last line.
        if let Err(e) = file.write_all(&self.line) {
            // Do not append later lines after a possibly torn one on a cached handle.
            self.handles.pop();
            return Err(e);
        }
        if span.is_root_span {
            // The root ends its trace's request: nothing more is expected for it, so release the descriptor now.
            self.handles.pop();
        }
        Ok(())
    }
}

#[cold]
fn unreachable_handle() -> ! {
    // The handle was found or pushed just above; reaching here would mean the vector lost it.
    panic!("trace file handle missing right after it was opened")
}

impl FileExporter {
    /// Spans per export call (see [`SpanExporter::max_spans_per_call`]): a chunk of converted spans, about
    /// 16 × 2 KiB with their values, stays in the L1/L2 cache until its lines are written.
    pub const SPANS_PER_CALL: usize = 16;
}

impl SpanExporter for FileExporter {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        let mut outcome = ExportOutcome::default();
        for span in &batch {
            match self.write_span(span) {
                Ok(()) => outcome.exported += 1,
                Err(e) => {
                    outcome.failed += 1;
                    if !self.write_error_logged {
                        self.write_error_logged = true;
                        tracing::error!(dir = %self.dir.display(), error = %e, "drift-sdk cannot write a trace file; \
                            the span is counted as failed (logged once)");
                    }
                }
            }
        }
        outcome
    }

    fn shutdown(&mut self) {
        self.handles.clear();
        self.first_write.clear();
    }

    fn max_spans_per_call(&self) -> usize {
        FileExporter::SPANS_PER_CALL
    }
}

/// `<YYYY-MM-DDTHH-MM-SS-ffffff+00-00>_trace_<traceId>.jsonl` (§8.1).
#[cfg(test)]
pub(crate) fn file_name(now: SystemTime, trace: TraceId) -> String {
    let mut name = String::new();
    write_file_name(&mut name, now, trace);
    name
}

/// Appends the file name of `trace` first written at `now` to `out` (see [`file_name`]).
fn write_file_name(out: &mut String, now: SystemTime, trace: TraceId) {
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}-{:06}+00-00_trace_{trace}.jsonl",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    );
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_support::{ExportStages, SeedShape, seed_record};
    use std::time::Duration;

    /// A non-root span of `trace` (non-root so the sink keeps its file open, as for a CLIENT span).
    fn span_of(trace: u128) -> CleanSpan {
        let mut stages = ExportStages::new(Vec::new()).unwrap();
        let mut span = stages.to_clean_span(seed_record(SeedShape::Simple)).unwrap();
        span.trace_id = TraceId(trace);
        span.is_root_span = false;
        span
    }

    fn files_of(dir: &Path, trace: u128) -> Vec<String> {
        let id = TraceId(trace).to_string();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&id))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_evicted_trace_seen_again_gets_a_new_file() {
        // F3 (LRU capacity 2: A, B, touch A, C evicts B, then B again) and F2 (two spans of A share one file).
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileExporter::new(dir.path(), 2);
        let (a, b, c) = (0xa, 0xb, 0xc);
        for trace in [a, b, a, c] {
            assert_eq!(sink.export(vec![span_of(trace)]).exported, 1);
            std::thread::sleep(Duration::from_millis(2)); // distinct microsecond timestamps in the names
        }
        assert_eq!(sink.export(vec![span_of(b)]).exported, 1);
        assert_eq!(files_of(dir.path(), a).len(), 1);
        let a_lines = std::fs::read_to_string(dir.path().join(&files_of(dir.path(), a)[0])).unwrap();
        assert_eq!(a_lines.lines().count(), 2, "F2: the spans of one trace share its file");
        assert_eq!(
            files_of(dir.path(), b).len(),
            2,
            "B was evicted, so its second span went to a new file"
        );
        assert_eq!(files_of(dir.path(), c).len(), 1);
    }

    #[test]
    fn at_most_64_files_stay_open_and_a_closed_one_is_reopened_for_append() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileExporter::new(dir.path(), 1000);
        for trace in 1..=100 {
            assert_eq!(sink.export(vec![span_of(trace)]).exported, 1);
        }
        assert_eq!(sink.handles.len(), OPEN_HANDLES);
        // Trace 1's handle was closed long ago; its next span still goes to its one file.
        assert_eq!(sink.export(vec![span_of(1)]).exported, 1);
        assert_eq!(files_of(dir.path(), 1).len(), 1);
        let text = std::fs::read_to_string(dir.path().join(&files_of(dir.path(), 1)[0])).unwrap();
        assert_eq!(text.lines().count(), 2);
        // A root span releases its trace's handle.
        let mut root = span_of(2);
        root.is_root_span = true;
        let open = sink.handles.len();
        assert_eq!(sink.export(vec![root]).exported, 1);
        assert_eq!(sink.handles.len(), open - 1);
    }

    #[test]
    fn a_failed_write_counts_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileExporter::new(dir.path().join("missing"), 10);
        let outcome = sink.export(vec![span_of(1), span_of(2)]);
        assert_eq!((outcome.exported, outcome.failed), (0, 2));
    }

    #[test]
    fn file_names_follow_the_tusk_layout() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_776_766_530_123_456);
        assert_eq!(
            file_name(t, TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736)),
            "2026-04-21T10-15-30-123456+00-00_trace_4bf92f3577b34da6a3ce929d0e0e4736.jsonl"
        );
        // Six fraction digits even when the microseconds are 0, unlike the Python SDK.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(
            file_name(t, TraceId(1)),
            format!("2000-02-29T00-00-00-000000+00-00_trace_{}1.jsonl", "0".repeat(31))
        );
    }
}
