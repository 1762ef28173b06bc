//! The thread table: each thread's CPU time by its own clock beside its share of the samples — the check that the
//! sampler's split between threads is true.
//!
//! The demo app's sampler (drift-sdk's `pprof_endpoint::CpuSampler`) reads every thread's `CLOCK_THREAD_CPUTIME_ID`
//! over the profile and writes them into `pprof.json` as `threads` (the attach endpoint's facts line carries the
//! same array). Threads are grouped by name, as the samples are (tokio's workers share theirs):
//!
//! - **CPU share** = the group's clock seconds ÷ every thread's clock seconds;
//! - **sample share** = the group's samples ÷ all samples;
//! - **capture** = samples ÷ ((clock seconds − seconds before its timer was armed) × Hz): 100 % when every sample
//!   the thread's timer fired was kept.
//!
//! A gap of more than [`THREAD_SHARE_TOLERANCE_POINTS`] between the two shares of any group is a warning: the
//! profile misattributes CPU between threads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::folded::CpuProfile;

/// How far a thread group's share of samples may be from its share of CPU by its clocks, in percentage points.
pub const THREAD_SHARE_TOLERANCE_POINTS: f64 = 3.0;

/// How far Σ of the thread clocks may be from the process's own CPU time (getrusage), as a fraction. The two are
/// the same kernel accounting read two ways; a larger gap means a thread was missed or a clock misread, and then
/// the shares above are of the wrong whole.
pub const CLOCK_COVERAGE_TOLERANCE: f64 = 0.05;

/// One thread's CPU time over the profile, as `pprof.json`'s `threads` gives it. Every field is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadClock {
    /// The kernel's thread id.
    pub tid: i64,
    /// The thread's name (`comm`: what its samples carry).
    pub name: String,
    /// CPU seconds by the thread's own clock during the profile.
    pub cpu_seconds: f64,
    /// Of those, seconds before the sampler armed its timer.
    pub unarmed_seconds: f64,
}

/// One row of the thread table: the threads of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRow {
    /// The threads' name.
    pub name: String,
    /// How many threads had it.
    pub threads: u64,
    /// Their CPU seconds by their own clocks.
    pub cpu_seconds: f64,
    /// `cpu_seconds` ÷ every thread's, 0 to 1.
    pub cpu_share: f64,
    /// Their samples.
    pub samples: u64,
    /// `samples` ÷ all samples, 0 to 1.
    pub sample_share: f64,
    /// samples ÷ (armed CPU seconds × Hz); `None` when the clocks show no armed CPU time.
    pub capture: Option<f64>,
}

impl ThreadRow {
    /// sample share − CPU share, in percentage points.
    pub fn gap_points(&self) -> f64 {
        (self.sample_share - self.cpu_share) * 100.0
    }
}

/// Every thread group, most CPU first (then most samples, then by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadTable {
    pub rows: Vec<ThreadRow>,
    /// Σ of every thread's clock, in seconds.
    pub cpu_seconds: f64,
}

impl ThreadTable {
    /// Lines up `clocks` with the samples per thread of `profile`, sampled at `hz` per CPU second.
    pub fn new(clocks: &[ThreadClock], profile: &CpuProfile, hz: u32) -> ThreadTable {
        #[derive(Default)]
        struct Group {
            threads: u64,
            cpu: f64,
            armed: f64,
            samples: u64,
        }
        let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
        for clock in clocks {
            let group = groups.entry(&clock.name).or_default();
            group.threads += 1;
            group.cpu += clock.cpu_seconds.max(0.0);
            group.armed += (clock.cpu_seconds - clock.unarmed_seconds).max(0.0);
        }
        for thread in &profile.threads {
            groups.entry(&thread.name).or_default().samples += thread.samples;
        }
        let cpu_seconds: f64 = groups.values().map(|g| g.cpu).sum();
        let share = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
        let mut rows: Vec<ThreadRow> = groups
            .into_iter()
            .map(|(name, g)| ThreadRow {
                name: name.to_owned(),
                threads: g.threads,
                cpu_seconds: g.cpu,
                cpu_share: share(g.cpu, cpu_seconds),
                samples: g.samples,
                sample_share: profile.share(g.samples),
                capture: (g.armed * f64::from(hz) >= 1.0).then(|| g.samples as f64 / (g.armed * f64::from(hz))),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.cpu_seconds
                .total_cmp(&a.cpu_seconds)
                .then(b.samples.cmp(&a.samples))
                .then_with(|| a.name.cmp(&b.name))
        });
        ThreadTable { rows, cpu_seconds }
    }

    /// The row of threads named `name`.
    pub fn row(&self, name: &str) -> Option<&ThreadRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Σ of the thread clocks ÷ the process's CPU seconds by another instrument (`None` without one).
    pub fn coverage(&self, process_cpu_seconds: f64) -> Option<f64> {
        (process_cpu_seconds > 0.0).then(|| self.cpu_seconds / process_cpu_seconds)
    }

    /// Whether [`coverage`](Self::coverage) is within [`CLOCK_COVERAGE_TOLERANCE`] of 1.
    pub fn covers(&self, process_cpu_seconds: f64) -> bool {
        self.coverage(process_cpu_seconds)
            .is_some_and(|c| (c - 1.0).abs() <= CLOCK_COVERAGE_TOLERANCE)
    }

    /// The rows whose shares differ by more than [`THREAD_SHARE_TOLERANCE_POINTS`].
    pub fn off(&self) -> Vec<&ThreadRow> {
        self.rows
            .iter()
            .filter(|r| r.gap_points().abs() > THREAD_SHARE_TOLERANCE_POINTS)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::folded::CpuOptions;

    fn clock(tid: i64, name: &str, cpu_seconds: f64) -> ThreadClock {
        ThreadClock {
            tid,
            name: name.into(),
            cpu_seconds,
            unarmed_seconds: 0.0,
        }
    }

    #[test]
    fn threads_of_one_name_are_one_row_and_shares_are_compared() {
        let profile = CpuProfile::from_folded(
            "drift-exporter;run;open 450\ntokio-runtime-worker;poll 500\ndrift-sampler;scan 2\nmain;x 48\n",
            CpuOptions::default(),
        )
        .unwrap();
        let clocks = [
            clock(10, "tokio-runtime-worker", 2.5),
            clock(11, "tokio-runtime-worker", 2.5),
            clock(12, "drift-exporter", 6.0),
            clock(13, "drift-sampler", 0.02),
            clock(14, "idle", 0.0),
        ];
        let table = ThreadTable::new(&clocks, &profile, 99);
        let names: Vec<&str> = table.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "drift-exporter",
                "tokio-runtime-worker",
                "drift-sampler",
                "main",
                "idle"
            ],
            "most CPU first, then most samples; a name with samples and no clock (main) still has a row"
        );
        let exporter = table.row("drift-exporter").unwrap();
        assert!((exporter.cpu_share - 6.0 / 11.02).abs() < 1e-9);
        assert!((exporter.sample_share - 0.45).abs() < 1e-9);
        assert!((exporter.gap_points() - (45.0 - 6.0 / 11.02 * 100.0)).abs() < 1e-9);
        assert!((exporter.capture.unwrap() - 450.0 / (6.0 * 99.0)).abs() < 1e-9);
        let workers = table.row("tokio-runtime-worker").unwrap();
        assert_eq!((workers.threads, workers.samples), (2, 500));
        assert_eq!(table.row("idle").unwrap().capture, None, "no CPU, no capture ratio");
        let off: Vec<&str> = table.off().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(off, ["drift-exporter", "tokio-runtime-worker", "main"]);
        assert!((table.coverage(11.02).unwrap() - 1.0).abs() < 1e-9);
        assert!(table.covers(11.3) && table.covers(10.6));
        assert!(
            !table.covers(12.0),
            "a thread the clocks missed: 8 % of the process's CPU"
        );
        assert!(!table.covers(0.0) && table.coverage(0.0).is_none());
    }

    #[test]
    fn a_thread_clock_with_a_missing_field_is_an_error() {
        let err = serde_json::from_str::<ThreadClock>(r#"{"tid":1,"name":"a","cpu_seconds":1.0}"#).unwrap_err();
        assert!(err.to_string().contains("unarmed_seconds"), "{err}");
    }
}
