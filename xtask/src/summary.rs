//! `summary.json`: everything `cargo xtask compare` needs from a run, so that it never rebuilds or re-parses.
//! Field names are a contract between `profile` and `compare`; bump [`SUMMARY_VERSION`] when they change.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::flags::Mode;
use crate::parse::chrome::Timeline;
use crate::parse::dhat::HeapProfile;
use crate::parse::folded::{CpuHeadline, CpuProfile};
use crate::parse::threads::ThreadTable;
use crate::perf::PerfCheck;

/// The version of the `summary.json` layout.
pub const SUMMARY_VERSION: u32 = 1;

/// One run, as `compare` reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub version: u32,
    /// The run's directory name under `results/`.
    pub name: String,
    pub mode: Mode,
    /// When the run started, `YYYY-mm-ddTHH:MM:SSZ`.
    pub started: String,
    pub settings: Settings,
    /// `git rev-parse --short HEAD`, with `+dirty` when the tree had changes.
    pub git_commit: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Requests the app served over the whole run (warm-up and health checks included): the per-request divisor.
    pub requests: u64,
    pub workload: WorkloadFacts,
    pub durations: Durations,
    /// The SDK's counters at the app's exit.
    pub sdk: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<MemSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineSummary>,
}

/// What was asked for: runs that differ here are not like for like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The workload's duration; for an attached run, the window's.
    pub duration_s: Option<f64>,
    pub iterations: Option<u64>,
    /// The workload's connections; 0 for an attached run (the traffic was not ours).
    pub concurrency: u32,
    /// `--discard-spans`: lines built, no trace file written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discard_spans: bool,
    /// `--rate`: the workload's pace in requests per second, when it was paced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The workload's mix; `attached` for an attached run.
    pub mix: String,
    /// The SDK's sampling rate; `null` for an attached run (the app's own setting, not known here).
    #[serde(default)]
    pub sampling_rate: Option<f64>,
    pub transforms: Option<String>,
    /// cpu runs only.
    pub hz: Option<u32>,
    /// The cargo profile the app was built in.
    pub build_profile: String,
    /// The demo app's profiler feature.
    pub feature: String,
    /// `--kernel`: perf recorded the same run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kernel: bool,
    /// `profile attach`: the URL of the running app a window was fetched from (nothing was built or driven).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
}

/// The workload's own report, abridged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFacts {
    pub requests: u64,
    pub failed: u64,
    pub req_per_s: f64,
    pub elapsed_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Wall time of each step, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub build_s: f64,
    pub run_s: f64,
    pub report_s: f64,
}

/// A cpu run's headline and every function's samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuSummary {
    /// Samples, CPU seconds, capture ratio, the SDK's share and µs per request (see `parse::folded`).
    pub headline: CpuHeadline,
    pub profile: CpuProfile,
    /// Each thread group's CPU by its own clocks beside its samples; absent when the app's sampler reported no
    /// clocks (older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<ThreadTable>,
    /// `--kernel`: perf's view of the same run beside the sampler's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perf: Option<PerfCheck>,
}

/// A mem run's totals and sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemSummary {
    pub bytes_per_request: f64,
    pub allocations_per_request: f64,
    pub profile: HeapProfile,
}

/// A timeline run's stages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineSummary {
    pub timeline: Timeline,
}

impl Summary {
    /// Writes `dir/summary.json`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
        let path = dir.join("summary.json");
        let text = serde_json::to_string_pretty(self).context("serialising summary.json")?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Reads `dir/summary.json`, refusing other versions.
    #[allow(dead_code)] // `compare` reads it; this is its test's way in until then.
    pub fn read(dir: &Path) -> anyhow::Result<Summary> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let summary: Summary = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if summary.version != SUMMARY_VERSION {
            anyhow::bail!(
                "{} has layout version {}, this xtask reads {SUMMARY_VERSION}: re-run the profile",
                path.display(),
                summary.version
            );
        }
        Ok(summary)
    }
}

/// A new run's name under `results` and when it started (`YYYY-mm-ddTHH:MM:SSZ`): `save` when given (refused when
/// it exists), else `<prefix>-YYYYmmdd-HHMMSS`, with `-2`, `-3`, … when that exists. Nothing of an earlier run is
/// ever overwritten.
pub fn new_run(results: &Path, save: Option<String>, prefix: &str) -> anyhow::Result<(String, String)> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (stamp, started) = utc_stamps(unix);
    let name = match save {
        Some(name) if results.join(&name).exists() => anyhow::bail!(
            "results/{name} exists: choose another --save name, or remove it first (nothing of an earlier run is \
             overwritten)"
        ),
        Some(name) => name,
        None => {
            let base = format!("{prefix}-{stamp}");
            (1..)
                .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
                .find(|name| !results.join(name).exists())
                .unwrap_or(base)
        }
    };
    Ok((name, started))
}

/// A file of a run, as text, with its path in the error.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A JSON file of a run; a parse error suggests truncation (an app killed mid-write).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    serde_json::from_str(&read_text(path)?).with_context(|| format!("parsing {} (truncated?)", path.display()))
}

/// `YYYYmmdd-HHMMSS` and `YYYY-mm-ddTHH:MM:SSZ` of a UNIX time, in UTC.
pub fn utc_stamps(unix_seconds: u64) -> (String, String) {
    let days = (unix_seconds / 86_400) as i64;
    let rem = unix_seconds % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_of_known_times() {
        assert_eq!(utc_stamps(0), ("19700101-000000".into(), "1970-01-01T00:00:00Z".into()));
        assert_eq!(
            utc_stamps(951_782_400),
            ("20000229-000000".into(), "2000-02-29T00:00:00Z".into())
        );
        // date -u -d @1795517186 → Tue Nov 24 10:46:26 UTC 2026
        assert_eq!(utc_stamps(1_795_517_186).1, "2026-11-24T10:46:26Z");
    }
}
