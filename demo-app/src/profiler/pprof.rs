//! The `pprof` build: pprof-rs samples the whole run, or `/debug/pprof/profile?seconds=N` (drift-sdk's
//! `pprof_endpoint`) samples windows on demand.
//!
//! pprof's default unwinder and no blocklist: a blocklist drops the samples it matches rather than re-attributing
//! them, and the other unwinders deadlock or lose the leaf frame (profiling-notes.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use drift_sdk::pprof_endpoint::{ProfileEndpoint, folded, samples};
use pprof::protos::Message;
use pprof::{ProfilerGuard, ProfilerGuardBuilder, Report};
use serde_json::{Value, json};

use super::{RunFacts, cpu_seconds, write_json};
use crate::state::RequestCounter;

/// Folded stacks of the whole run, in the profile directory.
pub const FOLDED_FILE: &str = "cpu.folded";
/// The pprof protobuf of the whole run (uncompressed; `go tool pprof` reads it as it is).
pub const PROTOBUF_FILE: &str = "cpu.pb";
/// Frequency, samples, CPU seconds and requests of the whole run.
pub const SUMMARY_FILE: &str = "pprof.json";

/// The whole-run profiler.
pub(super) struct WholeRun {
    guard: ProfilerGuard<'static>,
    hz: i32,
}

/// What [`WholeRun::finish`] wrote.
pub(super) struct Written {
    pub files: Vec<PathBuf>,
    pub summary: Value,
}

impl WholeRun {
    pub(super) fn start(hz: i32) -> anyhow::Result<WholeRun> {
        let guard = ProfilerGuardBuilder::default()
            .frequency(hz)
            .build()
            .context("starting the CPU profiler")?;
        Ok(WholeRun { guard, hz })
    }

    /// Stops sampling and writes the folded stacks, the protobuf and `pprof.json`.
    pub(super) fn finish(self, dir: &Path, facts: &RunFacts) -> anyhow::Result<Written> {
        // CPU time of the sampled run, before building the report (symbolisation is the profiler's own cost).
        let cpu_seconds = cpu_seconds();
        let report = self.guard.report().build().context("building the CPU profile")?;
        drop(self.guard);
        let folded_path = dir.join(FOLDED_FILE);
        std::fs::write(&folded_path, folded(&report)).with_context(|| format!("writing {}", folded_path.display()))?;
        let pb_path = dir.join(PROTOBUF_FILE);
        std::fs::write(&pb_path, protobuf(&report)?).with_context(|| format!("writing {}", pb_path.display()))?;
        let summary = json!({
            "frequency": self.hz,
            "samples": samples(&report),
            "cpu_seconds": cpu_seconds,
            "requests": facts.requests,
        });
        let summary_path = dir.join(SUMMARY_FILE);
        write_json(&summary_path, &summary)?;
        Ok(Written {
            files: vec![folded_path, pb_path, summary_path],
            summary,
        })
    }
}

fn protobuf(report: &Report) -> anyhow::Result<Vec<u8>> {
    let profile = report.pprof().context("converting the CPU profile to pprof")?;
    let mut buf = Vec::with_capacity(profile.encoded_len());
    profile.encode(&mut buf).context("encoding the pprof protobuf")?;
    Ok(buf)
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
