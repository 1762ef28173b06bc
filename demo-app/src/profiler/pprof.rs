//! The `pprof` build: drift-sdk's `CpuSampler` (one CPU-time timer per thread, backtrace-rs's unwinder) samples the
//! whole run, or `/debug/pprof/profile?seconds=N` (drift-sdk's `pprof_endpoint`) samples windows on demand. Both
//! write the same files: folded stacks, the pprof protobuf, and each thread's CPU time by its own clock.

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use drift_sdk::pprof_endpoint::{CpuSampler, ProfileEndpoint, threads_json};
use serde_json::{Value, json};

use super::{RunFacts, cpu_seconds, write_json};
use crate::state::RequestCounter;

/// Folded stacks of the whole run, in the profile directory.
pub const FOLDED_FILE: &str = "cpu.folded";
/// The pprof protobuf of the whole run (uncompressed; `go tool pprof` reads it as it is).
pub const PROTOBUF_FILE: &str = "cpu.pb";
/// Frequency, samples, CPU seconds and requests of the whole run.
pub const SUMMARY_FILE: &str = "pprof.json";

/// The whole-run profiler: drift-sdk's sampler, one CPU-time timer per thread.
pub(super) struct WholeRun {
    sampler: CpuSampler,
}

/// What [`WholeRun::finish`] wrote.
pub(super) struct Written {
    pub files: Vec<PathBuf>,
    pub summary: Value,
}

impl WholeRun {
    pub(super) fn start(hz: i32) -> anyhow::Result<WholeRun> {
        let sampler = CpuSampler::start(hz).context("starting the CPU profiler")?;
        Ok(WholeRun { sampler })
    }

    /// Stops sampling and writes the folded stacks, the protobuf and `pprof.json`.
    pub(super) fn finish(self, dir: &Path, facts: &RunFacts) -> anyhow::Result<Written> {
        // CPU time of the sampled run, before building the report (symbolisation is the profiler's own cost).
        let cpu_seconds = cpu_seconds();
        let hz = self.sampler.hz();
        let profile = self.sampler.finish().context("building the CPU profile")?;
        let folded_path = dir.join(FOLDED_FILE);
        std::fs::write(&folded_path, profile.folded()).with_context(|| format!("writing {}", folded_path.display()))?;
        let pb_path = dir.join(PROTOBUF_FILE);
        std::fs::write(&pb_path, profile.protobuf()).with_context(|| format!("writing {}", pb_path.display()))?;
        let summary = json!({
            "frequency": hz,
            "samples": profile.samples(),
            "signals": profile.signals,
            "overrun_periods": profile.overrun_periods,
            "dropped_samples": profile.dropped_samples,
            "handler_seconds": profile.handler_seconds,
            "leaf_only_samples": profile.leaf_only_samples,
            "cpu_seconds": cpu_seconds,
            "requests": facts.requests,
            "sampler": "per-thread CPU-time timers",
            "monotonic_window_s": [profile.monotonic_window.0, profile.monotonic_window.1],
            // The endpoint's own writer: the array a window's facts line carries, in the same form.
            "threads": serde_json::from_str::<Value>(&threads_json(&profile.threads))
                .context("reading back the threads' JSON")?,
        });
        let summary_path = dir.join(SUMMARY_FILE);
        write_json(&summary_path, &summary)?;
        Ok(Written {
            files: vec![folded_path, pb_path, summary_path],
            summary,
        })
    }
}

/// drift-sdk's `/debug/pprof/profile` router at `hz`, counting the instrumented routes' requests and reporting
/// `drift`'s counters over each window: the same endpoint any app using the SDK can mount.
pub fn endpoint_routes<S>(hz: i32, requests: RequestCounter, drift: &drift_sdk::Drift) -> anyhow::Result<Router<S>> {
    let endpoint = ProfileEndpoint::builder()
        .hz(hz)
        .requests(move || requests.get())
        .drift(drift)
        .build()
        .context("configuring the profiling endpoint")?;
    Ok(endpoint.router())
}
