//! The batch processor: `on_end` on the request thread, one `drift-exporter` thread for everything else (§10).
//!
//! The request thread's only cross-thread step is one `try_send` into a bounded queue. The export thread is never
//! woken per span: it sleeps until a batch's worth of records is queued (the request thread that fills the batch
//! unparks it), its timer fires, or a flush or shutdown asks for it. Waking a parked thread costs ~14 µs here, more
//! than the whole pipeline's work for one span.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::clean_span::CleanSpan;
use crate::export::SpanExporter;
use crate::record::SpanRecord;
use crate::sampling::{self, AdaptiveController, HealthSnapshot, SharedRate};
use crate::stats::{Counters, warn_once};
use crate::to_clean_span::Cleaner;

/// A request to the export thread.
enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Sets the calling thread's nice value (Linux: `setpriority` on the thread's id affects that thread only). A
/// failure is logged and ignored: priority is an optimisation, never a reason not to export.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0
        && let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
    {
        tracing::debug!(nice, error = %e, "drift-sdk could not set the export thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// CPU time the calling thread has used, in nanoseconds (Linux; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// The request-thread side of the pipeline. Shared by every layer and middleware clone through the SDK handle.
#[derive(Debug)]
pub(crate) struct BatchProcessor {
    queue: Sender<SpanRecord>,
    /// A receiver clone, used only after shutdown to count what arrived too late to be exported.
    leftovers: Receiver<SpanRecord>,
    control: Sender<Control>,
    exporter_thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
    accepting: AtomicBool,
    shutdown_lock: Mutex<()>,
    wake_pending: Arc<AtomicBool>,
    batch_size: usize,
    flush_timeout: Duration,
    counters: Arc<Counters>,
}

/// What the export thread needs.
pub(crate) struct ExportThreadConfig {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub scheduled_delay: Duration,
    pub flush_timeout: Duration,
    /// The export thread's nice value (Linux).
    pub nice: i32,
}

impl BatchProcessor {
    /// Starts the `drift-exporter` thread.
    pub(crate) fn start(
        cfg: ExportThreadConfig,
        adaptive: Option<(AdaptiveController, Arc<SharedRate>)>,
        cleaner: Cleaner,
        exporter: Box<dyn SpanExporter>,
        counters: Arc<Counters>,
    ) -> std::io::Result<BatchProcessor> {
        let (queue, rx) = crossbeam_channel::bounded(cfg.queue_capacity);
        let (control, control_rx) = crossbeam_channel::unbounded();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let mut worker = ExportWorker {
            rx: rx.clone(),
            control: control_rx,
            wake_pending: wake_pending.clone(),
            batch_size: cfg.batch_size,
            scheduled_delay: cfg.scheduled_delay,
            queue_capacity: cfg.queue_capacity,
            cleaner,
            exporter,
            counters: counters.clone(),
            panic_logged: false,
            queue_warned: AtomicBool::new(false),
            adaptive: adaptive.map(|(controller, shared)| Adaptive {
                controller,
                shared,
                last_update: None,
            }),
        };
        let join = thread::Builder::new().name("drift-exporter".into()).spawn(move || {
            lower_priority(cfg.nice);
            worker.run()
        })?;
        Ok(BatchProcessor {
            queue,
            leftovers: rx,
            control,
            exporter_thread: join.thread().clone(),
            join: Mutex::new(Some(join)),
            accepting: AtomicBool::new(true),
            shutdown_lock: Mutex::new(()),
            wake_pending,
            batch_size: cfg.batch_size,
            flush_timeout: cfg.flush_timeout,
            counters,
        })
    }

    /// Hands a finished record to the export thread. Called on the request thread; never blocks: when the queue is
    /// full the record is dropped and counted.
    pub(crate) fn on_end(&self, record: SpanRecord) {
        let _span = tracing::trace_span!("on_end").entered();
        if !self.accepting.load(Relaxed) {
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        match self.queue.try_send(record) {
            Ok(()) => {
                self.counters.recorded.fetch_add(1, Relaxed);
                if self.queue.len() >= self.batch_size && !self.wake_pending.swap(true, SeqCst) {
                    self.exporter_thread.unpark();
                }
            }
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Relaxed);
                // Re-armed by the export thread once the queue has drained below 80 %: under sustained overload
                // the queue refills between batches, and one warning is enough.
                warn_once(&self.counters.queue_full_warned, true, || {
                    tracing::warn!("drift-sdk export queue is full: dropping spans (counted in stats().dropped)")
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Blocks until every record queued before the call has been handed to the sink, or the flush timeout passes.
    /// Returns whether it completed in time.
    pub(crate) fn flush(&self) -> bool {
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.control.send(Control::Flush(ack)).is_err() {
            return true; // the export thread has finished: nothing is pending
        }
        self.exporter_thread.unpark();
        match done.recv_timeout(self.flush_timeout) {
            // Disconnected: a shutdown queued before this flush drained everything and ended the thread.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Stops accepting records, drains the queue, shuts the sink down and joins the export thread. Idempotent.
    pub(crate) fn shutdown(&self) {
        // A second caller waits here until the first has finished, so no `shutdown()` returns before the lines
        // are written.
        let _one_at_a_time = self
            .shutdown_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.accepting.swap(false, Relaxed) {
            return;
        }
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.control.send(Control::Shutdown(ack)).is_ok() {
            self.exporter_thread.unpark();
            if done.recv_timeout(self.flush_timeout).is_err() {
                tracing::error!(timeout = ?self.flush_timeout, "drift-exporter did not finish in time; spans may be lost");
                return;
            }
        }
        if let Some(join) = self.join.lock().ok().and_then(|mut j| j.take()) {
            let _ = join.join();
        }
        // Records that raced with shutdown (accepted after the final drain) can no longer be exported.
        let late = self.leftovers.try_iter().count() as u64;
        if late > 0 {
            self.counters.dropped.fetch_add(late, Relaxed);
        }
        let s = self.counters.snapshot();
        tracing::info!(
            recorded = s.recorded,
            exported = s.exported,
            dropped = s.dropped,
            blocked = s.blocked,
            failed = s.failed,
            "drift-sdk shut down"
        );
    }

    /// Records in the queue now.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// The export thread's state. Everything heavy lives here.
struct ExportWorker {
    rx: Receiver<SpanRecord>,
    control: Receiver<Control>,
    wake_pending: Arc<AtomicBool>,
    batch_size: usize,
    scheduled_delay: Duration,
    queue_capacity: usize,
    cleaner: Cleaner,
    exporter: Box<dyn SpanExporter>,
    counters: Arc<Counters>,
    panic_logged: bool,
    queue_warned: AtomicBool,
    adaptive: Option<Adaptive>,
}

/// The adaptive sampler's updater (§11.3). It runs on the export thread, which wakes at least every scheduled delay
/// anyway, so it needs no thread of its own; it publishes the effective rate the request thread reads lock-free.
struct Adaptive {
    controller: AdaptiveController,
    shared: Arc<SharedRate>,
    last_update: Option<Instant>,
}

impl ExportWorker {
    /// Feeds the adaptive controller a health snapshot, at most every [`sampling::UPDATE_INTERVAL`].
    fn update_sampling(&mut self) {
        let circuit_open = self.exporter.circuit_open();
        let Some(adaptive) = self.adaptive.as_mut() else { return };
        let now = Instant::now();
        if adaptive
            .last_update
            .is_some_and(|t| now.duration_since(t) < sampling::UPDATE_INTERVAL)
        {
            return;
        }
        adaptive.last_update = Some(now);
        let snapshot = HealthSnapshot {
            queue_fill: self.rx.len() as f64 / self.queue_capacity as f64,
            dropped: self.counters.dropped.load(Relaxed),
            failures: self.counters.failed.load(Relaxed),
            circuit_open,
            memory_ratio: sampling::memory_ratio(),
        };
        adaptive.controller.update(&snapshot, now);
        adaptive.controller.publish(&adaptive.shared);
    }

    fn run(&mut self) {
        let mut last_export = Instant::now();
        loop {
            // Sleep until a batch is ready, the timer fires, or someone asks.
            let control = loop {
                if let Ok(c) = self.control.try_recv() {
                    break Some(c);
                }
                // Clear the wake-up flag before looking at the queue: a producer that fills a batch after this
                // sees it clear and unparks us; one that filled it before is seen by the length check.
                self.wake_pending.store(false, SeqCst);
                let now = Instant::now();
                let mut deadline = last_export + self.scheduled_delay;
                if self.adaptive.is_some() {
                    deadline = deadline.min(last_export + sampling::UPDATE_INTERVAL);
                }
                if self.rx.len() >= self.batch_size || now >= deadline {
                    break None;
                }
                thread::park_timeout(deadline - now);
            };
            let fill = self.rx.len() as f64 / self.queue_capacity as f64;
            warn_once(
                &self.queue_warned,
                fill > 0.8,
                || tracing::warn!(fill = %format!("{:.0}%", fill * 100.0), "drift-sdk export queue is over 80% full"),
            );
            if fill <= 0.8 {
                warn_once(&self.counters.queue_full_warned, false, || {}); // re-arm the queue-full warning
            }
            self.update_sampling();
            self.drain();
            self.counters.export_thread_cpu_ns.store(thread_cpu_ns(), Relaxed);
            last_export = Instant::now();
            match control {
                None => {}
                Some(Control::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Some(Control::Shutdown(ack)) => {
                    self.drain();
                    self.exporter.shutdown();
                    self.counters.export_thread_cpu_ns.store(thread_cpu_ns(), Relaxed);
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }

    /// Exports everything queued now, in FIFO batches of at most `batch_size`, back to back.
    fn drain(&mut self) {
        loop {
            let batch: Vec<SpanRecord> = self.rx.try_iter().take(self.batch_size).collect();
            if batch.is_empty() {
                return;
            }
            let full = batch.len() == self.batch_size;
            self.export_batch(batch);
            self.counters.check_rates();
            // A long backlog (or a slow sink) must not freeze adaptive sampling until it is drained.
            self.update_sampling();
            if !full {
                return;
            }
        }
    }

    /// Converts the batch's records and exports them, in chunks of the sink's
    /// [`max_spans_per_call`](SpanExporter::max_spans_per_call).
    fn export_batch(&mut self, batch: Vec<SpanRecord>) {
        let _span = tracing::trace_span!("export_batch", records = batch.len()).entered();
        let per_call = self.exporter.max_spans_per_call().max(1);
        let mut records = batch.into_iter();
        while records.len() > 0 {
            let mut clean = Vec::with_capacity(records.len().min(per_call));
            let now = Instant::now();
            for record in records.by_ref() {
                match catch_unwind(AssertUnwindSafe(|| self.cleaner.clean_at(record, now))) {
                    Ok(Ok(span)) => clean.push(span),
                    Ok(Err(_discarded)) => {
                        self.counters.blocked.fetch_add(1, Relaxed);
                    }
                    Err(_) => {
                        self.counters.failed.fetch_add(1, Relaxed);
                        self.log_panic("to_clean_span");
                    }
                }
                if clean.len() == per_call {
                    break;
                }
            }
            self.export_spans(clean);
        }
    }

    fn export_spans(&mut self, clean: Vec<CleanSpan>) {
        if clean.is_empty() {
            return;
        }
        let n = clean.len() as u64;
        let outcome = {
            let _span = tracing::trace_span!("export", spans = n).entered();
            catch_unwind(AssertUnwindSafe(|| self.exporter.export(clean)))
        };
        match outcome {
            Ok(o) => {
                self.counters.exported.fetch_add(o.exported, Relaxed);
                self.counters.failed.fetch_add(o.failed, Relaxed);
            }
            Err(_) => {
                self.counters.failed.fetch_add(n, Relaxed);
                self.log_panic("export");
            }
        }
    }

    fn log_panic(&mut self, stage: &str) {
        if !self.panic_logged {
            self.panic_logged = true;
            tracing::error!(%stage, "a drift-sdk stage panicked; the span was dropped and counted as failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::bench_support::{SeedShape, seed_record};
    use crate::clean_span::CleanSpan;
    use crate::export::ExportOutcome;
    use crate::transform::Transforms;

    /// Counts export calls and spans.
    #[derive(Debug, Clone, Default)]
    struct Counting {
        calls: Arc<AtomicUsize>,
    }

    impl SpanExporter for Counting {
        fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
            self.calls.fetch_add(1, Relaxed);
            all_exported(&batch)
        }
    }

    /// A processor whose export thread wakes only for a full batch, a flush or shutdown.
    fn start(capacity: usize, batch: usize, sink: impl SpanExporter + 'static) -> (BatchProcessor, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let cleaner = Cleaner::new(Arc::new(Transforms::default()), "development");
        let cfg = ExportThreadConfig {
            queue_capacity: capacity,
            batch_size: batch,
            scheduled_delay: Duration::from_secs(3600),
            flush_timeout: Duration::from_secs(10),
            nice: 0,
        };
        let p = BatchProcessor::start(cfg, None, cleaner, Box::new(sink), counters.clone()).unwrap();
        (p, counters)
    }

    /// Every span of `batch` exported.
    fn all_exported(batch: &[CleanSpan]) -> ExportOutcome {
        ExportOutcome {
            exported: batch.len() as u64,
            failed: 0,
        }
    }

    fn record() -> SpanRecord {
        seed_record(SeedShape::Echo).into_inner()
    }

    #[test]
    fn batch_size_one_exports_each_record_in_its_own_call() {
        // F5
        let sink = Counting::default();
        let (p, counters) = start(16, 1, sink.clone());
        p.on_end(record());
        p.on_end(record());
        assert!(p.flush());
        assert!(sink.calls.load(Relaxed) >= 2);
        assert_eq!(counters.snapshot().exported, 2);
        p.shutdown();
    }

    /// Records the span ids of each export call; takes at most `per_call` spans a call.
    #[derive(Debug, Clone)]
    struct Chunked {
        per_call: usize,
        calls: Arc<Mutex<Vec<Vec<crate::ids::SpanId>>>>,
    }

    impl SpanExporter for Chunked {
        fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
            self.calls
                .lock()
                .expect("calls")
                .push(batch.iter().map(|s| s.span_id).collect());
            all_exported(&batch)
        }

        fn max_spans_per_call(&self) -> usize {
            self.per_call
        }
    }

    /// A processor with batches of 8 and a sink taking 3 spans a call.
    fn start_chunked() -> (BatchProcessor, Arc<Counters>, Chunked) {
        let sink = Chunked {
            per_call: 3,
            calls: Arc::default(),
        };
        let (p, counters) = start(64, 8, sink.clone());
        (p, counters, sink)
    }

    #[test]
    fn a_batch_is_exported_in_chunks_of_the_sinks_size_in_order() {
        let (p, counters, sink) = start_chunked();
        let records: Vec<SpanRecord> = (0..8).map(|_| record()).collect();
        let ids: Vec<_> = records.iter().map(|r| r.span_id).collect();
        for r in records {
            p.on_end(r);
        }
        assert!(p.flush());
        let calls = sink.calls.lock().expect("calls").clone();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
        assert_eq!(calls.concat(), ids);
        assert_eq!(counters.snapshot().exported, 8);
        p.shutdown();
    }

    #[test]
    fn a_chunk_whose_records_are_all_blocked_loses_nothing_after_it() {
        let (p, counters, sink) = start_chunked();
        let mut ids = Vec::new();
        for i in 0..8 {
            let mut r = record();
            if i < 3 {
                // A server error blocks its span (and its trace, which no other record shares).
                if let crate::record::Payload::Server(x) = &mut r.payload {
                    x.status = http::StatusCode::INTERNAL_SERVER_ERROR;
                }
            } else {
                ids.push(r.span_id);
            }
            p.on_end(r);
        }
        assert!(p.flush());
        let calls = sink.calls.lock().expect("calls").clone();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(calls.concat(), ids);
        let stats = counters.snapshot();
        assert_eq!((stats.blocked, stats.exported), (3, 5));
        p.shutdown();
    }

    #[test]
    fn the_file_sink_takes_chunks_of_sixteen() {
        let dir = tempfile::tempdir().expect("dir");
        let sink = crate::export::FileExporter::new(dir.path(), 8);
        assert_eq!(sink.max_spans_per_call(), crate::export::FileExporter::SPANS_PER_CALL);
        assert_eq!(crate::export::FileExporter::SPANS_PER_CALL, 16);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_export_threads_cpu_time_is_counted() {
        let (p, counters) = start(4096, 512, Counting::default());
        assert_eq!(counters.snapshot().export_thread_cpu_ns, 0, "nothing exported yet");
        for _ in 0..2000 {
            p.on_end(record());
        }
        assert!(p.flush());
        let after_flush = counters.snapshot().export_thread_cpu_ns;
        // 2,000 spans through to_clean_span take well over a microsecond each, even in a release build.
        assert!(after_flush > 2_000_000, "{after_flush} ns");
        p.shutdown();
        assert!(counters.snapshot().export_thread_cpu_ns >= after_flush);
    }

    /// Blocks each export until the test drops the sending end of `gate`.
    #[derive(Debug)]
    struct Gated {
        gate: Receiver<()>,
    }

    impl SpanExporter for Gated {
        fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
            let _ = self.gate.recv();
            all_exported(&batch)
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_export_thread_runs_at_the_configured_nice() {
        let cleaner = Cleaner::new(Arc::new(Transforms::default()), "development");
        let cfg = ExportThreadConfig {
            queue_capacity: 4,
            batch_size: 4,
            scheduled_delay: Duration::from_secs(3600),
            flush_timeout: Duration::from_secs(10),
            nice: 7,
        };
        let p = BatchProcessor::start(cfg, None, cleaner, Box::new(Counting::default()), Arc::default()).unwrap();
        assert!(p.flush(), "the thread is running");
        // Other tests' export threads run at 0; this one is the only one at 7. Field 19 of stat is the nice value
        // (the name field before it has no spaces: "drift-exporter").
        let nices: Vec<i64> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter(|stat| stat.contains("(drift-exporter)"))
            .filter_map(|stat| stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok())
            .collect();
        assert!(nices.contains(&7), "{nices:?}");
        p.shutdown();
    }

    /// Waits (at most 10 s) until the export thread has taken everything queued.
    fn wait_until_taken(p: &BatchProcessor) {
        let waited = Instant::now();
        while p.queued() > 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "the export thread never took the batch"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_full_queue_refuses_the_new_record_without_blocking_and_counts_it() {
        // F6, scaled down to a queue of 4.
        let (release, gate) = crossbeam_channel::bounded::<()>(0);
        let (p, counters) = start(4, 4, Gated { gate });
        for _ in 0..4 {
            p.on_end(record()); // the fourth fills a batch and wakes the thread, which blocks in the sink
        }
        wait_until_taken(&p);
        for _ in 0..4 {
            p.on_end(record());
        }
        let refused_at = Instant::now();
        p.on_end(record());
        assert!(refused_at.elapsed() < Duration::from_secs(1), "try_send never blocks");
        let stats = counters.snapshot();
        assert_eq!((stats.recorded, stats.dropped), (8, 1), "{stats:?}");
        drop(release);
        p.shutdown();
        assert_eq!(
            counters.snapshot().exported,
            8,
            "F4: shutdown exports everything accepted"
        );
    }

    #[test]
    fn the_queue_full_warning_stays_quiet_until_the_queue_drains() {
        let (release, gate) = crossbeam_channel::bounded::<()>(0);
        let (p, counters) = start(4, 4, Gated { gate });
        for _ in 0..4 {
            p.on_end(record());
        }
        wait_until_taken(&p);
        for _ in 0..5 {
            p.on_end(record()); // four accepted, the fifth refused: the warning fires
        }
        assert!(counters.queue_full_warned.load(Relaxed));
        // Overload goes on: a record accepted in between must not re-arm it (it used to, and the warning repeated
        // ten times a second).
        assert!(release.send(()).is_ok(), "the export thread takes the next batch");
        wait_until_taken(&p);
        p.on_end(record());
        assert!(
            counters.queue_full_warned.load(Relaxed),
            "re-armed by an accepted record"
        );
        drop(release);
        assert!(p.flush());
        assert!(p.flush(), "a wake-up with the queue below 80 % re-arms it");
        assert!(!counters.queue_full_warned.load(Relaxed));
        p.shutdown();
    }

    /// Takes a while per batch, like a slow disk or API.
    #[derive(Debug)]
    struct Slow;

    impl SpanExporter for Slow {
        fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
            thread::sleep(Duration::from_millis(150));
            all_exported(&batch)
        }
    }

    fn slow_processor() -> (Arc<BatchProcessor>, Arc<Counters>) {
        let (p, counters) = start(16, 2, Slow);
        let p = Arc::new(p);
        for _ in 0..6 {
            p.on_end(record());
        }
        (p, counters)
    }

    fn shutdown_in_background(p: &Arc<BatchProcessor>) -> thread::JoinHandle<()> {
        let p = p.clone();
        let handle = thread::spawn(move || p.shutdown());
        thread::sleep(Duration::from_millis(30)); // let it start draining
        handle
    }

    #[test]
    fn a_second_shutdown_returns_only_when_everything_is_exported() {
        let (p, counters) = slow_processor();
        let first = shutdown_in_background(&p);
        p.shutdown();
        assert_eq!(
            counters.snapshot().exported,
            6,
            "the second shutdown returned before the lines were written"
        );
        first.join().unwrap();
    }

    #[test]
    fn a_flush_racing_shutdown_reports_success() {
        let (p, counters) = slow_processor();
        let first = shutdown_in_background(&p);
        assert!(
            p.flush(),
            "everything queued before the flush was exported by the shutdown"
        );
        assert_eq!(counters.snapshot().exported, 6);
        first.join().unwrap();
    }

    #[test]
    fn records_after_shutdown_are_dropped_and_counted() {
        let (p, counters) = start(16, 4, Counting::default());
        p.on_end(record());
        p.shutdown();
        p.shutdown(); // F12: idempotent
        p.on_end(record());
        let stats = counters.snapshot();
        assert_eq!((stats.recorded, stats.exported, stats.dropped), (1, 1, 1));
        assert!(p.flush(), "F12: flush after shutdown returns at once");
    }
}
