//! The in-process profiler of this build: pprof (CPU), dhat (heap) or tracing-chrome (timeline), one per cargo
//! feature, and `run.json`, the run's facts that every build writes at exit.
//!
//! The three features are mutually exclusive: together they deadlock at start-up (dhat's lock against
//! backtrace-rs's lock inside pprof's signal handler, and the timeline's subscriber allocating under both).

#[cfg(all(feature = "pprof", feature = "dhat-heap"))]
compile_error!(
    "features `pprof` and `dhat-heap` are mutually exclusive: together they deadlock at start-up (dhat's allocator \
     lock against backtrace-rs's lock in pprof's signal handler). Build one profiler at a time."
);
#[cfg(all(feature = "pprof", feature = "timeline"))]
compile_error!(
    "features `pprof` and `timeline` are mutually exclusive: two profilers in one process distort each other and \
     can deadlock at start-up. Build one profiler at a time."
);
#[cfg(all(feature = "dhat-heap", feature = "timeline"))]
compile_error!(
    "features `dhat-heap` and `timeline` are mutually exclusive: two profilers in one process distort each other \
     and can deadlock at start-up. Build one profiler at a time."
);

#[cfg(feature = "dhat-heap")]
mod heap;
#[cfg(feature = "pprof")]
pub mod pprof;
#[cfg(feature = "timeline")]
mod timeline;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The profiler this binary was built with: `"pprof"`, `"dhat-heap"`, `"timeline"`, or `None`.
pub const BUILT_WITH: Option<&str> = if cfg!(feature = "pprof") {
    Some("pprof")
} else if cfg!(feature = "dhat-heap") {
    Some("dhat-heap")
} else if cfg!(feature = "timeline") {
    Some("timeline")
} else {
    None
};

/// What to profile and where to write.
#[derive(Clone, Debug)]
pub struct ProfilerOptions {
    /// Where the files go; created if missing. `None`: the current directory in a profiler build, else no files.
    pub dir: Option<PathBuf>,
    /// pprof's sampling frequency.
    pub hz: i32,
    /// Whether pprof samples the whole run (off when the on-demand endpoint owns the profiler).
    pub whole_run: bool,
    /// Level of the log lines on stderr.
    pub log_level: LevelFilter,
}

/// The running profiler; [`Profiler::finish`] writes its files.
pub struct Profiler {
    /// `None`: a build without a profiler and no `--profile-dir`, which writes nothing.
    dir: Option<PathBuf>,
    started: Instant,
    #[cfg(feature = "pprof")]
    cpu: Option<pprof::WholeRun>,
    #[cfg(feature = "dhat-heap")]
    heap: heap::Heap,
    #[cfg(feature = "timeline")]
    timeline: timeline::Timeline,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("built_with", &BUILT_WITH)
            .field("dir", &self.dir)
            .finish()
    }
}

/// What the app reports about its run, for `run.json`.
#[derive(Debug)]
pub struct RunFacts {
    /// Requests the instrumented routes received.
    pub requests: u64,
    /// The SDK's counters at exit.
    pub sdk: drift_sdk::Stats,
    /// Whether in-flight requests finished before the drain timeout.
    pub drained: bool,
    /// The calibration functions that ran, with their CPU seconds by their threads' own clocks.
    pub calibration: Vec<crate::CalibrationTime>,
}

impl Profiler {
    /// Creates the output directory, installs the log subscriber (with the timeline layer in a `timeline` build)
    /// and starts the build's profiler. Installs process-wide state: call once, from `main`.
    pub fn start(options: &ProfilerOptions) -> anyhow::Result<Profiler> {
        let dir = options.dir.clone().or_else(|| BUILT_WITH.map(|_| PathBuf::from(".")));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the profile directory {}", dir.display()))?;
        }
        #[cfg(any(feature = "dhat-heap", feature = "timeline"))]
        let out = dir.clone().unwrap_or_default();
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(options.log_level);
        #[cfg(feature = "timeline")]
        let (timeline, timeline_layer) = timeline::Timeline::start(&out);
        #[cfg(not(feature = "timeline"))]
        let timeline_layer: Option<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> = None;
        tracing_subscriber::registry()
            .with(timeline_layer)
            .with(logs)
            .try_init()
            .context("installing the log subscriber")?;
        Ok(Profiler {
            dir,
            started: Instant::now(),
            #[cfg(feature = "pprof")]
            cpu: if options.whole_run {
                Some(pprof::WholeRun::start(options.hz)?)
            } else {
                None
            },
            #[cfg(feature = "dhat-heap")]
            heap: heap::Heap::start(&out),
            #[cfg(feature = "timeline")]
            timeline,
        })
    }

    /// Stops the profiler and writes its files, then `run.json`. Returns every path written.
    pub fn finish(self, facts: &RunFacts) -> anyhow::Result<Vec<PathBuf>> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let wall_seconds = self.started.elapsed().as_secs_f64();
        #[allow(unused_mut)]
        let mut files = Vec::new();
        #[allow(unused_mut)]
        let mut extra = serde_json::Map::new();
        // The app's CPU time, before the profilers build their reports: that work is theirs, not the app's.
        let usage = process_usage();
        #[cfg(feature = "pprof")]
        if let Some(cpu) = self.cpu {
            let written = cpu.finish(dir, facts)?;
            extra.insert("pprof".into(), written.summary);
            files.extend(written.files);
        }
        #[cfg(feature = "dhat-heap")]
        files.push(self.heap.finish());
        #[cfg(feature = "timeline")]
        files.push(self.timeline.finish());
        let run = json!({
            "profiler": BUILT_WITH,
            "requests": facts.requests,
            "drained": facts.drained,
            "wall_seconds": wall_seconds,
            "cpu_seconds": usage,
            "sdk": sdk_json(&facts.sdk),
            "calibration": facts
                .calibration
                .iter()
                .map(|t| (
                    t.function.to_owned(),
                    json!({"cpu_seconds": t.cpu_seconds, "exact": t.exact})
                ))
                .collect::<serde_json::Map<String, Value>>(),
            "profiler_output": Value::Object(extra),
        });
        let path = dir.join("run.json");
        write_json(&path, &run)?;
        files.push(path);
        Ok(files)
    }
}

/// The SDK's counters as JSON.
pub fn sdk_json(s: &drift_sdk::Stats) -> Value {
    json!({
        "recorded": s.recorded,
        "sampled_out": s.sampled_out,
        "dropped": s.dropped,
        "blocked": s.blocked,
        "exported": s.exported,
        "failed": s.failed,
        "export_thread_cpu_s": s.export_thread_cpu_ns as f64 / 1e9,
    })
}

/// This process's CPU time so far (getrusage) and its peak resident set.
pub fn process_usage() -> Value {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            let (user, system) = (secs(u.user_time()), secs(u.system_time()));
            json!({"user": user, "system": system, "total": user + system, "max_rss_kib": u.max_rss()})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Process CPU seconds (user + system) so far, for windows.
pub fn cpu_seconds() -> f64 {
    process_usage()["total"].as_f64().unwrap_or(0.0)
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising run facts")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
