//! The SDK's counters (§10.3): atomics bumped on the request and export threads, read by [`Drift::stats`].
//!
//! [`Drift::stats`]: crate::Drift::stats

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A snapshot of the SDK's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records accepted into the export queue.
    pub recorded: u64,
    /// Inbound requests not recorded because of the sampling decision.
    pub sampled_out: u64,
    /// Records refused because the queue was full, or offered after shutdown began.
    pub dropped: u64,
    /// Spans discarded by an inbound drop rule, a gate, or a blocked trace.
    pub blocked: u64,
    /// Spans written to their file or accepted by the API.
    pub exported: u64,
    /// Spans whose export failed (write error, API failure after retries, open circuit), or that a stage could not
    /// process.
    pub failed: u64,
    /// CPU time the export thread has used, in nanoseconds, as of its last batch (Linux; 0 elsewhere). This is the
    /// SDK's background cost: divided by `exported`, it is the CPU each span costs after the request has gone.
    pub export_thread_cpu_ns: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub recorded: AtomicU64,
    pub sampled_out: AtomicU64,
    pub dropped: AtomicU64,
    pub blocked: AtomicU64,
    pub exported: AtomicU64,
    pub failed: AtomicU64,
    pub export_thread_cpu_ns: AtomicU64,
    /// Set when the request thread warned that the queue is full; cleared by the export thread when it sees the
    /// queue below 80 %.
    pub queue_full_warned: AtomicBool,
    drop_warned: AtomicBool,
    fail_warned: AtomicBool,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            recorded: self.recorded.load(Relaxed),
            sampled_out: self.sampled_out.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            blocked: self.blocked.load(Relaxed),
            exported: self.exported.load(Relaxed),
            failed: self.failed.load(Relaxed),
            export_thread_cpu_ns: self.export_thread_cpu_ns.load(Relaxed),
        }
    }

    /// Checks the rate warnings of §10.3 (called on the export thread after each batch): each warns once and re-arms
    /// when its condition clears.
    pub(crate) fn check_rates(&self) {
        let s = self.snapshot();
        let seen = s.dropped + s.recorded;
        let dropping = seen >= 100 && s.dropped as f64 / seen as f64 > 0.05;
        warn_once(&self.drop_warned, dropping, || {
            tracing::warn!(
                dropped = s.dropped,
                recorded = s.recorded,
                "drift-sdk is dropping over 5% of its spans: \
                the export queue is full; lower the sampling rate or raise the queue capacity"
            )
        });
        let done = s.failed + s.exported;
        let failing = done >= 100 && s.failed as f64 / done as f64 > 0.10;
        warn_once(&self.fail_warned, failing, || {
            tracing::warn!(
                failed = s.failed,
                exported = s.exported,
                "drift-sdk failed to export over 10% of its spans"
            )
        });
    }
}

/// Logs with `warn` when `condition` becomes true, once, and re-arms when it becomes false.
pub(crate) fn warn_once(flag: &AtomicBool, condition: bool, warn: impl FnOnce()) {
    if condition {
        if !flag.swap(true, Relaxed) {
            warn();
        }
    } else if flag.load(Relaxed) {
        flag.store(false, Relaxed);
    }
}
