//! `cargo xtask compare BEFORE AFTER`: did a change make the SDK cheaper? Reads only the two runs' saved files
//! (`summary.json`, and `cpu.folded` for the differential flame graph); never rebuilds or re-runs anything.
//!
//! - cpu: per function, self and cumulative time before → after, as shares of all samples and as µs per request,
//!   sorted by the size of the change in self µs per request; the headline side by side.
//! - mem: per allocation site, bytes and blocks per request and bytes at the peak; the totals side by side.
//! - timeline: per stage, calls, mean and p99.
//!
//! **Noise.** CPU samples are binomial draws: a function's share of samples is compared with a two-proportion z-test
//! (pooled), and a change is called real when |z| ≥ [`NOISE_Z`] (3.0: a false alarm about 3 times in 1,000 rows of
//! two equal runs). dhat's counts and the timeline's call counts are deterministic and need no test; the timeline's
//! durations are wall times, shown without a verdict.
//!
//! **The gate.** `--fail-above PCT` exits 1 when, for cpu runs, the SDK's µs per request or any function's self µs
//! per request grew by more than PCT % and the change is real; for mem runs, when the SDK's bytes or allocations
//! per request grew by more than PCT %.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use comfy_table::Table;
use serde::Serialize;

use crate::Failure;
use crate::flags::{CompareArgs, Mode};
use crate::parse::chrome::StageStats;
use crate::parse::dhat::HeapSite;
use crate::parse::folded::{CpuProfile, CpuScale};
use crate::parse::names::normalise;
use crate::render::html::Section;
use crate::render::tables::{bytes, fixed, percent, shorten_name, table, thousands};
use crate::summary::{CpuSummary, MemSummary, Summary};

/// |z| at or above which a change in a share of samples is called real.
pub const NOISE_Z: f64 = 3.0;

/// A function gates `--fail-above` only with at least this many self samples after the change: hundreds of rows are
/// tested, and at |z| ≥ 3 a handful of small ones cross the line by chance (a 9 → 0 sample row did, between two
/// runs of the same code).
pub const MIN_GATE_SAMPLES: u64 = 20;

/// Benches need this many rounds a side before a change in SDK µs per request can be called real.
pub const MIN_BENCH_ROUNDS: usize = 3;

impl CompareArgs {
    pub fn run(self, root: &Path) -> Result<(), Failure> {
        let results = root.join("results");
        let before_dir = find_run(&results, &self.before).map_err(Failure::Usage)?;
        let after_dir = find_run(&results, &self.after).map_err(Failure::Usage)?;
        match (
            before_dir.join("bench.json").is_file(),
            after_dir.join("bench.json").is_file(),
        ) {
            (true, true) => return self.run_bench(root, &before_dir, &after_dir),
            (false, false) => {}
            _ => {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "one of {} and {} is a bench and the other a profile: compare runs of the same kind",
                    before_dir.display(),
                    after_dir.display()
                )));
            }
        }
        let before = Summary::read(&before_dir).map_err(Failure::Usage)?;
        let after = Summary::read(&after_dir).map_err(Failure::Usage)?;
        if before.mode != after.mode {
            return Err(Failure::Usage(anyhow::anyhow!(
                "{} is a {} run and {} a {} run: compare runs of the same mode",
                before.name,
                before.mode.name(),
                after.name,
                after.mode.name()
            )));
        }
        if self.fail_above.is_some() && before.mode == Mode::Timeline {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--fail-above gates cpu and mem runs; a timeline's durations are wall times with no noise test"
            )));
        }
        if self.flamegraph && before.mode != Mode::Cpu {
            return Err(Failure::Usage(anyhow::anyhow!("--flamegraph needs two cpu runs")));
        }
        let comparison = Comparison::new(&before, &after, self.top).map_err(Failure::Usage)?;
        let out = results.join(format!("compare-{}-{}", before.name, after.name));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut files = Vec::new();
        if self.flamegraph {
            files.push(differential_flamegraph(&before_dir, &after_dir, &before, &after, &out)?);
            files.push(out.join("diff.folded"));
        }
        let sections = comparison.sections();
        let json = out.join("compare.json");
        let text = serde_json::to_string_pretty(&comparison.data).context("serialising the comparison")?;
        std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
        let html = out.join("compare.html");
        let facts = vec![
            (
                "before".to_owned(),
                format!("{} ({}, {})", before.name, before.git_commit, before.started),
            ),
            (
                "after".to_owned(),
                format!("{} ({}, {})", after.name, after.git_commit, after.started),
            ),
        ];
        let page = crate::render::html::page(
            &format!("cargo xtask compare {} {}", before.name, after.name),
            &facts,
            &sections,
            None,
        );
        std::fs::write(&html, page).with_context(|| format!("writing {}", html.display()))?;
        files.extend([json, html]);

        println!("{} → {} ({} runs)\n", before.name, after.name, before.mode.name());
        for section in &sections {
            println!("{}\n{}\n", section.heading, section.text);
        }
        println!("files:");
        for file in &files {
            println!("  {}", file.strip_prefix(root).unwrap_or(file).display());
        }
        match self.fail_above.map(|pct| comparison.regressions(pct)) {
            Some(regressions) if !regressions.is_empty() => Err(Failure::Run(anyhow::anyhow!(
                "regression above {}%:\n  {}",
                self.fail_above.unwrap_or_default(),
                regressions.join("\n  ")
            ))),
            _ => Ok(()),
        }
    }
}

impl CompareArgs {
    /// Two saved benches: per workload and configuration, req/s and SDK µs per request before → after, with the
    /// spread of each side's rounds. A change is called real when the two spreads do not overlap (with 3 rounds a
    /// side, the chance that two equal configurations fail to overlap is 1 in 10); `--fail-above` gates on the SDK
    /// µs per request of every configuration.
    fn run_bench(&self, root: &Path, before_dir: &Path, after_dir: &Path) -> Result<(), Failure> {
        let read = |dir: &Path| -> anyhow::Result<crate::bench::BenchReport> {
            crate::summary::read_json(&dir.join("bench.json"))
        };
        let before = read(before_dir).map_err(Failure::Usage)?;
        let after = read(after_dir).map_err(Failure::Usage)?;
        if self.flamegraph {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--flamegraph needs two cpu runs, not benches"
            )));
        }
        let rows = bench_deltas(&before, &after);
        let mut notes = Vec::new();
        let shape = |b: &crate::bench::BenchReport| {
            let pace = b
                .rate
                .map_or_else(|| "unpaced".to_owned(), |r| format!("paced at {r} req/s"));
            format!("{} s × {} connections, {pace}", b.duration_s, b.concurrency)
        };
        if shape(&before) != shape(&after) {
            notes.push(format!(
                "warning: the benches differ: {} → {}\n",
                shape(&before),
                shape(&after)
            ));
        }
        let mut t = table(
            &[
                "workload",
                "config",
                "req/s",
                "× disabled",
                "SDK µs/req",
                "change",
                "verdict",
                "export µs/span",
            ],
            &[2, 3, 4, 5, 7],
        );
        for r in &rows {
            t.add_row(vec![
                r.workload.clone(),
                r.config.clone(),
                format!("{} → {}", fixed(r.req_per_s.0, 0), fixed(r.req_per_s.1, 0)),
                format!("{:.3} → {:.3}", r.throughput_ratio.0, r.throughput_ratio.1),
                format!(
                    "{} ({}–{}) → {} ({}–{})",
                    fixed(r.sdk_us.0, 2),
                    fixed(r.sdk_spread.0.0, 2),
                    fixed(r.sdk_spread.0.1, 2),
                    fixed(r.sdk_us.1, 2),
                    fixed(r.sdk_spread.1.0, 2),
                    fixed(r.sdk_spread.1.1, 2)
                ),
                signed_pct(change_pct(r.sdk_us.0, r.sdk_us.1)),
                verdict_text(Some(r.verdict)).to_owned(),
                match r.export_us_per_span {
                    (b, a) if b > 0.0 && a > 0.0 => {
                        format!("{} → {} ({})", fixed(b, 2), fixed(a, 2), signed_pct(change_pct(b, a)))
                    }
                    _ => "-".to_owned(),
                },
            ]);
        }
        println!(
            "{} → {} (benches: medians, spreads over the rounds)\n",
            before.name, after.name
        );
        for n in &notes {
            println!("{n}");
        }
        println!("{t}");
        let out = root
            .join("results")
            .join(format!("compare-{}-{}", before.name, after.name));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let json = out.join("compare.json");
        let text = serde_json::to_string_pretty(&rows).context("serialising the comparison")?;
        std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
        println!("\nfiles:\n  {}", json.strip_prefix(root).unwrap_or(&json).display());
        let regressions: Vec<String> = match self.fail_above {
            None => Vec::new(),
            Some(pct) => rows
                .iter()
                // A cost at or below zero is within noise of the baseline: a percentage of it means nothing.
                .filter(|r| {
                    r.verdict == Verdict::Real
                        && r.sdk_us.0 > 0.0
                        && change_pct(r.sdk_us.0, r.sdk_us.1).is_some_and(|c| c > pct)
                })
                .map(|r| {
                    format!(
                        "{} · {}: SDK {} → {} µs/request",
                        r.workload,
                        r.config,
                        fixed(r.sdk_us.0, 2),
                        fixed(r.sdk_us.1, 2)
                    )
                })
                .collect(),
        };
        if regressions.is_empty() {
            Ok(())
        } else {
            Err(Failure::Run(anyhow::anyhow!(
                "regression above {}%:\n  {}",
                self.fail_above.unwrap_or_default(),
                regressions.join("\n  ")
            )))
        }
    }
}

/// One (workload, configuration) of two benches.
#[derive(Debug, Serialize)]
pub struct BenchDelta {
    pub workload: String,
    pub config: String,
    pub req_per_s: (f64, f64),
    pub throughput_ratio: (f64, f64),
    pub sdk_us: (f64, f64),
    pub sdk_spread: ((f64, f64), (f64, f64)),
    /// The export thread's own CPU µs per span (exact, from the SDK; 0 in benches from before it was measured).
    pub export_us_per_span: (f64, f64),
    /// Real when the two sides' SDK µs spreads do not overlap.
    pub verdict: Verdict,
}

fn bench_deltas(before: &crate::bench::BenchReport, after: &crate::bench::BenchReport) -> Vec<BenchDelta> {
    after
        .rows
        .iter()
        .filter(|a| a.config != "disabled")
        .filter_map(|a| {
            let b = before
                .rows
                .iter()
                .find(|b| b.workload == a.workload && b.config == a.config)?;
            let overlap = b.sdk_us_spread.0 <= a.sdk_us_spread.1 && a.sdk_us_spread.0 <= b.sdk_us_spread.1;
            // One or two rounds a side say nothing about spread: never call that real.
            let enough = b.runs >= MIN_BENCH_ROUNDS && a.runs >= MIN_BENCH_ROUNDS;
            Some(BenchDelta {
                workload: a.workload.clone(),
                config: a.config.clone(),
                req_per_s: (b.req_per_s, a.req_per_s),
                throughput_ratio: (b.throughput_ratio, a.throughput_ratio),
                sdk_us: (b.sdk_us_per_request, a.sdk_us_per_request),
                sdk_spread: (b.sdk_us_spread, a.sdk_us_spread),
                export_us_per_span: (b.export_us_per_span, a.export_us_per_span),
                verdict: if overlap || !enough {
                    Verdict::Noise
                } else {
                    Verdict::Real
                },
            })
        })
        .collect()
}

/// A run named on the command line: a path to a run directory, a run name under `results/`, or a unique prefix of
/// one. A missing or ambiguous name lists the runs that exist.
pub fn find_run(results: &Path, arg: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(arg);
    if is_run(path) {
        return Ok(path.to_path_buf());
    }
    let runs = saved_runs(results);
    if let Some(dir) = runs.iter().find(|dir| dir.file_name().is_some_and(|n| n == arg)) {
        return Ok(dir.clone());
    }
    let matching: Vec<&PathBuf> = runs
        .iter()
        .filter(|dir| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(arg))
        })
        .collect();
    let names = |dirs: &mut dyn Iterator<Item = &PathBuf>| -> String {
        dirs.filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] if runs.is_empty() => bail!(
            "no run named {arg:?}: results/ holds no saved runs yet (make one with `cargo xtask profile cpu --save NAME`)"
        ),
        [] => bail!("no run named {arg:?}; saved runs: {}", names(&mut runs.iter())),
        many => bail!("{arg:?} is ambiguous: it starts {}", names(&mut many.iter().copied())),
    }
}

/// A saved profile (`summary.json`) or bench (`bench.json`).
fn is_run(dir: &Path) -> bool {
    dir.join("summary.json").is_file() || dir.join("bench.json").is_file()
}

/// Directories under `results/` (two levels deep at most) that hold a `summary.json`, sorted.
fn saved_runs(results: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = walkdir::WalkDir::new(results)
        .min_depth(1)
        .max_depth(2)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir() && is_run(e.path()))
        .map(|e| e.into_path())
        .collect();
    runs.sort();
    runs
}

/// Whether a change in a share of samples is real.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Real,
    Noise,
}

/// The pooled two-proportion z statistic of `x1` of `n1` against `x2` of `n2` (positive when the second share is
/// larger); 0 when either run has no samples or both shares are 0 or 1.
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 0.0;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 { 0.0 } else { (x2 / n2 - x1 / n1) / se }
}

fn verdict(z: f64) -> Verdict {
    if z.abs() >= NOISE_Z {
        Verdict::Real
    } else {
        Verdict::Noise
    }
}

/// The relative change from `before` to `after` in percent; `None` when `before` is 0.
fn change_pct(before: f64, after: f64) -> Option<f64> {
    (before != 0.0).then(|| (after - before) / before * 100.0)
}

/// Everything a comparison found, as `compare.json` holds it.
#[derive(Debug, Serialize)]
pub struct ComparisonData {
    pub mode: Mode,
    pub before: String,
    pub after: String,
    /// Settings that differ: the runs are not like for like.
    pub setting_differences: Vec<String>,
    pub headline: Vec<HeadlineRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionDelta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteDelta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageDelta>,
}

/// One line of the side-by-side headline.
#[derive(Debug, Serialize)]
pub struct HeadlineRow {
    pub name: String,
    pub before: f64,
    pub after: f64,
    /// Relative change in percent (`None` from 0).
    pub change_pct: Option<f64>,
    /// For sampled figures: whether the change is real.
    pub verdict: Option<Verdict>,
    /// Whether `--fail-above` watches this row.
    #[serde(skip)]
    gated: bool,
}

/// One function, before → after.
#[derive(Debug, Serialize)]
pub struct FunctionDelta {
    pub name: String,
    pub self_samples: (u64, u64),
    pub cum_samples: (u64, u64),
    pub self_share: (f64, f64),
    pub cum_share: (f64, f64),
    /// Self µs per request (0 without requests).
    pub self_us: (f64, f64),
    pub cum_us: (f64, f64),
    /// z of the self share.
    pub z: f64,
    pub verdict: Verdict,
}

/// One allocation site, before → after (per request: the runs may serve different numbers of requests).
#[derive(Debug, Serialize)]
pub struct SiteDelta {
    pub function: String,
    pub location: String,
    pub bytes_per_request: (f64, f64),
    pub blocks_per_request: (f64, f64),
    pub peak_bytes: (u64, u64),
}

/// One stage of the timeline, before → after.
#[derive(Debug, Serialize)]
pub struct StageDelta {
    pub name: String,
    pub category: String,
    pub calls: (u64, u64),
    pub mean_us: (f64, f64),
    pub p99_us: (f64, f64),
}

/// A comparison, ready to render.
pub struct Comparison {
    pub data: ComparisonData,
    top: usize,
}

impl Comparison {
    pub fn new(before: &Summary, after: &Summary, top: usize) -> anyhow::Result<Comparison> {
        let mut data = ComparisonData {
            mode: before.mode,
            before: before.name.clone(),
            after: after.name.clone(),
            setting_differences: setting_differences(before, after),
            headline: Vec::new(),
            functions: Vec::new(),
            sites: Vec::new(),
            stages: Vec::new(),
        };
        let missing = |which: &str, name: &str| anyhow::anyhow!("{name}'s summary.json has no {which} section");
        match before.mode {
            Mode::Cpu => {
                let b = before.cpu.as_ref().ok_or_else(|| missing("cpu", &before.name))?;
                let a = after.cpu.as_ref().ok_or_else(|| missing("cpu", &after.name))?;
                data.headline = cpu_headline(b, a, before, after);
                data.functions = function_deltas(b, a);
            }
            Mode::Mem => {
                let b = before.mem.as_ref().ok_or_else(|| missing("mem", &before.name))?;
                let a = after.mem.as_ref().ok_or_else(|| missing("mem", &after.name))?;
                data.headline = mem_headline(b, a, before.requests, after.requests);
                data.sites = site_deltas(b, a, before.requests, after.requests);
            }
            Mode::Timeline => {
                let b = before
                    .timeline
                    .as_ref()
                    .ok_or_else(|| missing("timeline", &before.name))?;
                let a = after
                    .timeline
                    .as_ref()
                    .ok_or_else(|| missing("timeline", &after.name))?;
                data.stages = stage_deltas(&b.timeline.stages, &a.timeline.stages);
                data.headline = vec![row("requests served", before.requests as f64, after.requests as f64)];
            }
        }
        Ok(Comparison { data, top })
    }

    /// What `--fail-above pct` objects to, one line each.
    pub fn regressions(&self, pct: f64) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.data.headline.iter().filter(|r| r.gated) {
            if r.change_pct.is_some_and(|c| c > pct) && r.verdict != Some(Verdict::Noise) {
                out.push(format!(
                    "{}: {} → {} ({:+.1}%)",
                    r.name,
                    fixed(r.before, 2),
                    fixed(r.after, 2),
                    r.change_pct.unwrap_or(0.0)
                ));
            }
        }
        for f in &self.data.functions {
            let grew = match change_pct(f.self_us.0, f.self_us.1) {
                Some(c) => c > pct,
                None => f.self_us.1 > 0.0,
            };
            if grew && f.verdict == Verdict::Real && f.z > 0.0 && f.self_samples.1 >= MIN_GATE_SAMPLES {
                out.push(format!(
                    "{}: self {} → {} µs/request",
                    f.name,
                    fixed(f.self_us.0, 2),
                    fixed(f.self_us.1, 2)
                ));
            }
        }
        out
    }

    /// The rendered sections: settings warning, headline, then the mode's table.
    pub fn sections(&self) -> Vec<Section> {
        let d = &self.data;
        let mut sections = Vec::new();
        if !d.setting_differences.is_empty() {
            sections.push(Section {
                heading: "warning: the runs differ in their settings, so they are not like for like".into(),
                text: d.setting_differences.iter().map(|s| format!("  {s}\n")).collect(),
            });
        }
        sections.push(Section {
            heading: "Headline".into(),
            text: headline_table(&d.headline).to_string(),
        });
        match d.mode {
            Mode::Cpu => sections.push(Section {
                heading: format!(
                    "Top {} functions by change in self µs per request (verdict: two-proportion z-test on the self \
                     share, real when |z| ≥ {NOISE_Z})",
                    self.top
                ),
                text: functions_table(&d.functions, self.top).to_string(),
            }),
            Mode::Mem => sections.push(Section {
                heading: format!(
                    "Top {} allocation sites by change in bytes per request (dhat counts are exact)",
                    self.top
                ),
                text: sites_table(&d.sites, self.top).to_string(),
            }),
            Mode::Timeline => sections.push(Section {
                heading: "Stages (call counts are exact; durations are wall times, shown without a verdict)".into(),
                text: stages_table(&d.stages).to_string(),
            }),
        }
        sections
    }
}

fn row(name: &str, before: f64, after: f64) -> HeadlineRow {
    HeadlineRow {
        name: name.to_owned(),
        before,
        after,
        change_pct: change_pct(before, after),
        verdict: None,
        gated: false,
    }
}

fn setting_differences(before: &Summary, after: &Summary) -> Vec<String> {
    let (b, a) = (
        serde_json::to_value(&before.settings).unwrap_or_default(),
        serde_json::to_value(&after.settings).unwrap_or_default(),
    );
    let mut out = Vec::new();
    if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
        let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for key in keys {
            let (vb, va) = (b.get(key), a.get(key));
            if vb != va {
                let show = |v: Option<&serde_json::Value>| v.map_or("-".to_owned(), |v| v.to_string());
                out.push(format!("{key}: {} → {}", show(vb), show(va)));
            }
        }
    }
    if let (Some(b), Some(a)) = (&before.cpu, &after.cpu)
        && b.profile.options != a.profile.options
    {
        out.push(format!(
            "self-time attribution: fold_library_leaves {} → {} (--raw-leaves)",
            b.profile.options.fold_library_leaves, a.profile.options.fold_library_leaves
        ));
    }
    if before.rustc != after.rustc {
        out.push(format!("rustc: {} → {}", before.rustc, after.rustc));
    }
    out
}

fn cpu_headline(b: &CpuSummary, a: &CpuSummary, before: &Summary, after: &Summary) -> Vec<HeadlineRow> {
    let (hb, ha) = (&b.headline, &a.headline);
    let sdk_z = two_proportion_z(b.profile.sdk_samples, hb.samples, a.profile.sdk_samples, ha.samples);
    let mut sdk_us = row(
        "SDK CPU µs per request",
        hb.sdk_us_per_request.unwrap_or(0.0),
        ha.sdk_us_per_request.unwrap_or(0.0),
    );
    sdk_us.verdict = Some(verdict(sdk_z));
    sdk_us.gated = true;
    let mut sdk_share = row("SDK share of CPU (%)", hb.sdk_share * 100.0, ha.sdk_share * 100.0);
    sdk_share.verdict = Some(verdict(sdk_z));
    let mut rows = vec![
        sdk_us,
        sdk_share,
        row("samples", hb.samples as f64, ha.samples as f64),
        row("CPU seconds", hb.cpu_seconds, ha.cpu_seconds),
        row(
            "capture ratio (%)",
            hb.capture_ratio.unwrap_or(0.0) * 100.0,
            ha.capture_ratio.unwrap_or(0.0) * 100.0,
        ),
        row("requests served", hb.requests as f64, ha.requests as f64),
        row("workload req/s", before.workload.req_per_s, after.workload.req_per_s),
    ];
    // An attached run whose app does not report the SDK's counters has none: no row rather than a false 0.
    if let (Some(b), Some(a)) = (before.sdk["dropped"].as_f64(), after.sdk["dropped"].as_f64()) {
        rows.push(row("spans dropped", b, a));
    }
    rows
}

fn function_deltas(b: &CpuSummary, a: &CpuSummary) -> Vec<FunctionDelta> {
    let index = |p: &CpuProfile| -> BTreeMap<String, (u64, u64)> {
        let mut map: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for f in &p.functions {
            // Summaries hold normalised names already; normalising again matches runs whose names differ only by
            // a symbol hash (a rebuild renames `f::h0123…` to `f::h4567…`).
            let e = map.entry(normalise(&f.name)).or_default();
            e.0 += f.self_samples;
            e.1 += f.cum_samples;
        }
        map
    };
    let (ib, ia) = (index(&b.profile), index(&a.profile));
    let scale = |s: &CpuSummary| CpuScale::new(s.headline.cpu_seconds, s.profile.total_samples, s.headline.requests);
    let (sb, sa) = (scale(b), scale(a));
    let (nb, na) = (b.profile.total_samples, a.profile.total_samples);
    let names: BTreeSet<&String> = ib.keys().chain(ia.keys()).collect();
    let mut rows: Vec<FunctionDelta> = names
        .into_iter()
        .map(|name| {
            let (bs, bc) = ib.get(name).copied().unwrap_or_default();
            let (as_, ac) = ia.get(name).copied().unwrap_or_default();
            let z = two_proportion_z(bs, nb, as_, na);
            FunctionDelta {
                name: name.clone(),
                self_samples: (bs, as_),
                cum_samples: (bc, ac),
                self_share: (share(bs, nb), share(as_, na)),
                cum_share: (share(bc, nb), share(ac, na)),
                self_us: (
                    sb.us_per_request(bs).unwrap_or(0.0),
                    sa.us_per_request(as_).unwrap_or(0.0),
                ),
                cum_us: (
                    sb.us_per_request(bc).unwrap_or(0.0),
                    sa.us_per_request(ac).unwrap_or(0.0),
                ),
                z,
                verdict: verdict(z),
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let d = |f: &FunctionDelta| (f.self_us.1 - f.self_us.0).abs();
        d(y).total_cmp(&d(x)).then_with(|| x.name.cmp(&y.name))
    });
    rows
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn mem_headline(b: &MemSummary, a: &MemSummary, rb: u64, ra: u64) -> Vec<HeadlineRow> {
    let per = |n: u64, r: u64| if r == 0 { 0.0 } else { n as f64 / r as f64 };
    let (pb, pa) = (&b.profile, &a.profile);
    let mut sdk_bytes = row("SDK bytes per request", per(pb.sdk_bytes, rb), per(pa.sdk_bytes, ra));
    sdk_bytes.gated = true;
    let mut sdk_blocks = row(
        "SDK allocations per request",
        per(pb.sdk_blocks, rb),
        per(pa.sdk_blocks, ra),
    );
    sdk_blocks.gated = true;
    vec![
        sdk_bytes,
        sdk_blocks,
        row("bytes per request", b.bytes_per_request, a.bytes_per_request),
        row(
            "allocations per request",
            b.allocations_per_request,
            a.allocations_per_request,
        ),
        row(
            "bytes at the global peak",
            pb.totals.peak_bytes as f64,
            pa.totals.peak_bytes as f64,
        ),
        row(
            "SDK bytes at the global peak",
            pb.sdk_peak_bytes as f64,
            pa.sdk_peak_bytes as f64,
        ),
        row("requests served", rb as f64, ra as f64),
    ]
}

/// Sites are matched by function, not by `file:line`: a change moves lines, and a site at `f.rs:130` before and
/// `f.rs:149` after is the same site. A function's sites are summed; the location shown is the after run's first (or
/// the before run's), with the number of sites when there are several.
fn site_deltas(b: &MemSummary, a: &MemSummary, rb: u64, ra: u64) -> Vec<SiteDelta> {
    #[derive(Default)]
    struct Sum {
        bytes: u64,
        blocks: u64,
        peak: u64,
        locations: BTreeSet<String>,
    }
    let index = |sites: &[HeapSite]| -> BTreeMap<String, Sum> {
        let mut map: BTreeMap<String, Sum> = BTreeMap::new();
        for s in sites {
            let e = map.entry(normalise(&s.function)).or_default();
            e.bytes += s.bytes;
            e.blocks += s.blocks;
            e.peak += s.peak_bytes;
            e.locations.insert(s.location.clone());
        }
        map
    };
    let (ib, ia) = (index(&b.profile.sites), index(&a.profile.sites));
    let per = |n: u64, r: u64| if r == 0 { 0.0 } else { n as f64 / r as f64 };
    let empty = Sum::default();
    let keys: BTreeSet<&String> = ib.keys().chain(ia.keys()).collect();
    let mut rows: Vec<SiteDelta> = keys
        .into_iter()
        .map(|function| {
            let vb = ib.get(function).unwrap_or(&empty);
            let va = ia.get(function).unwrap_or(&empty);
            let locations = if va.locations.is_empty() {
                &vb.locations
            } else {
                &va.locations
            };
            let mut location = locations.iter().next().cloned().unwrap_or_default();
            if locations.len() > 1 {
                location.push_str(&format!(" (+{} more)", locations.len() - 1));
            }
            SiteDelta {
                function: function.clone(),
                location,
                bytes_per_request: (per(vb.bytes, rb), per(va.bytes, ra)),
                blocks_per_request: (per(vb.blocks, rb), per(va.blocks, ra)),
                peak_bytes: (vb.peak, va.peak),
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let d = |s: &SiteDelta| (s.bytes_per_request.1 - s.bytes_per_request.0).abs();
        d(y).total_cmp(&d(x))
            .then_with(|| (&x.function, &x.location).cmp(&(&y.function, &y.location)))
    });
    rows
}

fn stage_deltas(b: &[StageStats], a: &[StageStats]) -> Vec<StageDelta> {
    let index = |stages: &[StageStats]| -> BTreeMap<(String, String), (u64, f64, f64)> {
        stages
            .iter()
            .map(|s| ((s.name.clone(), s.category.clone()), (s.calls, s.mean_us, s.p99_us)))
            .collect()
    };
    let (ib, ia) = (index(b), index(a));
    let keys: BTreeSet<&(String, String)> = ib.keys().chain(ia.keys()).collect();
    let mut rows: Vec<StageDelta> = keys
        .into_iter()
        .map(|key| {
            let vb = ib.get(key).copied().unwrap_or((0, 0.0, 0.0));
            let va = ia.get(key).copied().unwrap_or((0, 0.0, 0.0));
            StageDelta {
                name: key.0.clone(),
                category: key.1.clone(),
                calls: (vb.0, va.0),
                mean_us: (vb.1, va.1),
                p99_us: (vb.2, va.2),
            }
        })
        .collect();
    rows.sort_by(|x, y| {
        let d = |s: &StageDelta| (s.mean_us.1 - s.mean_us.0).abs();
        d(y).total_cmp(&d(x)).then_with(|| x.name.cmp(&y.name))
    });
    rows
}

fn signed_pct(change: Option<f64>) -> String {
    change.map_or_else(|| "new".into(), |c| format!("{c:+.1}%"))
}

fn verdict_text(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Real) => "real",
        Some(Verdict::Noise) => "noise",
        None => "",
    }
}

fn headline_table(rows: &[HeadlineRow]) -> Table {
    let mut t = table(&["", "before", "after", "change", "verdict"], &[1, 2, 3]);
    for r in rows {
        let decimals = if r.before.fract() == 0.0 && r.after.fract() == 0.0 {
            0
        } else {
            2
        };
        t.add_row(vec![
            r.name.clone(),
            fixed(r.before, decimals),
            fixed(r.after, decimals),
            signed_pct(r.change_pct),
            verdict_text(r.verdict).to_owned(),
        ]);
    }
    t
}

fn functions_table(rows: &[FunctionDelta], top: usize) -> Table {
    let mut t = table(
        &[
            "self µs/req",
            "Δ",
            "self %",
            "cum µs/req",
            "samples",
            "z",
            "verdict",
            "function",
        ],
        &[0, 1, 2, 3, 4, 5],
    );
    for f in rows.iter().take(top) {
        t.add_row(vec![
            format!("{} → {}", fixed(f.self_us.0, 2), fixed(f.self_us.1, 2)),
            format!("{:+.2}", f.self_us.1 - f.self_us.0),
            format!("{} → {}", percent(f.self_share.0), percent(f.self_share.1)),
            format!("{} → {}", fixed(f.cum_us.0, 2), fixed(f.cum_us.1, 2)),
            format!("{} → {}", thousands(f.self_samples.0), thousands(f.self_samples.1)),
            format!("{:+.1}", f.z),
            verdict_text(Some(f.verdict)).to_owned(),
            shorten_name(&f.name, 80),
        ]);
    }
    t
}

fn sites_table(rows: &[SiteDelta], top: usize) -> Table {
    let mut t = table(
        &[
            "bytes/req",
            "Δ bytes/req",
            "allocs/req",
            "at peak",
            "function",
            "location",
        ],
        &[0, 1, 2, 3],
    );
    for s in rows.iter().take(top) {
        t.add_row(vec![
            format!("{} → {}", bytes(s.bytes_per_request.0), bytes(s.bytes_per_request.1)),
            format!("{:+.1}", s.bytes_per_request.1 - s.bytes_per_request.0),
            format!("{:.2} → {:.2}", s.blocks_per_request.0, s.blocks_per_request.1),
            format!("{} → {}", bytes(s.peak_bytes.0 as f64), bytes(s.peak_bytes.1 as f64)),
            shorten_name(&s.function, 70),
            s.location.clone(),
        ]);
    }
    t
}

fn stages_table(rows: &[StageDelta]) -> Table {
    let mut t = table(&["stage", "category", "calls", "mean µs", "p99 µs"], &[2, 3, 4]);
    for s in rows {
        t.add_row(vec![
            s.name.clone(),
            s.category.clone(),
            format!("{} → {}", thousands(s.calls.0), thousands(s.calls.1)),
            format!("{} → {}", fixed(s.mean_us.0, 2), fixed(s.mean_us.1, 2)),
            format!("{} → {}", fixed(s.p99_us.0, 2), fixed(s.p99_us.1, 2)),
        ]);
    }
    t
}

/// inferno's differential flame graph of the two runs' folded stacks, normalised when their totals differ: widths
/// follow the after run; red grew, blue shrank. Writes `diff.folded` beside `diff.svg`.
fn differential_flamegraph(
    before_dir: &Path,
    after_dir: &Path,
    before: &Summary,
    after: &Summary,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    // Frames normalised as the tables are (hashes, `{closure#N}`), so a renamed frame is not "removed + added".
    let open = |dir: &Path| -> anyhow::Result<std::io::Cursor<Vec<u8>>> {
        let path = dir.join("cpu.folded");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (needed for --flamegraph)", path.display()))?;
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let Some((stack, count)) = line.rsplit_once(' ') else {
                continue;
            };
            let frames: Vec<String> = stack.split(';').map(normalise).collect();
            out.push_str(&frames.join(";"));
            out.push(' ');
            out.push_str(count);
            out.push('\n');
        }
        Ok(std::io::Cursor::new(out.into_bytes()))
    };
    let options = inferno::differential::Options {
        normalize: true,
        strip_hex: true,
    };
    let mut diff = Vec::new();
    inferno::differential::from_readers(options, open(before_dir)?, open(after_dir)?, &mut diff)
        .context("folding the differential stacks")?;
    let folded_path = out.join("diff.folded");
    std::fs::write(&folded_path, &diff).with_context(|| format!("writing {}", folded_path.display()))?;
    let text = String::from_utf8_lossy(&diff);
    let mut flame = inferno::flamegraph::Options::default();
    flame.title = format!("cpu: {} → {}", before.name, after.name);
    flame.subtitle = Some("widths: after; red grew, blue shrank (normalised to equal totals)".into());
    flame.count_name = "samples".into();
    let svg = out.join("diff.svg");
    let file = std::fs::File::create(&svg).with_context(|| format!("creating {}", svg.display()))?;
    inferno::flamegraph::from_lines(&mut flame, text.lines(), std::io::BufWriter::new(file))
        .context("rendering the differential flame graph")?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::chrome::Timeline;
    use crate::parse::dhat::HeapProfile;
    use crate::parse::folded::{CpuHeadline, CpuOptions, CpuRun};
    use crate::summary::{Durations, Settings, TimelineSummary, WorkloadFacts};

    fn summary(name: &str, mode: Mode, requests: u64) -> Summary {
        Summary {
            version: crate::summary::SUMMARY_VERSION,
            name: name.into(),
            mode,
            started: "2026-11-24T12:00:00Z".into(),
            settings: Settings {
                rate: None,
                discard_spans: false,
                duration_s: Some(10.0),
                iterations: None,
                concurrency: 4,
                mix: "seed".into(),
                sampling_rate: Some(1.0),
                transforms: None,
                hz: Some(99),
                build_profile: "profiling".into(),
                feature: mode.feature().into(),
                kernel: false,
                attached: None,
            },
            git_commit: "abc1234".into(),
            rustc: "rustc 1.95.0".into(),
            requests,
            workload: WorkloadFacts {
                requests,
                failed: 0,
                req_per_s: 1000.0,
                elapsed_s: 10.0,
                p50_us: 100.0,
                p99_us: 300.0,
            },
            durations: Durations {
                build_s: 1.0,
                run_s: 10.0,
                report_s: 1.0,
            },
            sdk: serde_json::json!({"recorded": requests, "dropped": 0}),
            cpu: None,
            mem: None,
            timeline: None,
        }
    }

    /// A cpu run of `folded` over `cpu_seconds` and `requests`.
    fn cpu_run(name: &str, folded: &str, cpu_seconds: f64, requests: u64) -> Summary {
        let profile = CpuProfile::from_folded(folded, CpuOptions::default()).unwrap();
        let headline = CpuHeadline::new(
            &profile,
            &CpuRun {
                cpu_seconds,
                hz: 99,
                requests,
            },
        );
        let mut s = summary(name, Mode::Cpu, requests);
        s.cpu = Some(CpuSummary {
            headline,
            profile,
            threads: None,
            perf: None,
        });
        s
    }

    const BEFORE: &str = "w;demo_app::handler 700\n\
                          w;drift_sdk::capture::inbound::finalize 100\n\
                          w;drift_sdk::schema::infer 100\n\
                          w;drift_sdk::schema::old_helper 100\n";
    const AFTER: &str = "w;demo_app::handler 700\n\
                         w;drift_sdk::capture::inbound::finalize 100\n\
                         w;drift_sdk::schema::infer 10\n\
                         w;drift_sdk::schema::new_helper 190\n";

    fn delta<'a>(c: &'a Comparison, name: &str) -> &'a FunctionDelta {
        c.data
            .functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no row {name}"))
    }

    #[test]
    fn known_deltas_sorted_by_size_with_one_sided_functions() {
        // 1,000 samples over 10 CPU seconds and 10,000 requests: one sample is 1 µs per request.
        let c = Comparison::new(
            &cpu_run("b", BEFORE, 10.0, 10_000),
            &cpu_run("a", AFTER, 10.0, 10_000),
            20,
        )
        .unwrap();
        let names: Vec<&str> = c.data.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "drift_sdk::schema::new_helper",
                "drift_sdk::schema::old_helper",
                "drift_sdk::schema::infer",
                "demo_app::handler",
                "drift_sdk::capture::inbound::finalize",
            ]
        );
        let new = delta(&c, "drift_sdk::schema::new_helper");
        assert_eq!(
            (new.self_samples, new.self_us, new.verdict),
            ((0, 190), (0.0, 190.0), Verdict::Real)
        );
        let old = delta(&c, "drift_sdk::schema::old_helper");
        assert_eq!(
            (old.self_samples, old.self_us.1, old.verdict),
            ((100, 0), 0.0, Verdict::Real)
        );
        assert!(old.z < -NOISE_Z);
        let infer = delta(&c, "drift_sdk::schema::infer");
        assert_eq!((infer.self_share, infer.self_us), ((0.1, 0.01), (100.0, 10.0)));
        let same = delta(&c, "demo_app::handler");
        assert_eq!((same.z, same.verdict), (0.0, Verdict::Noise));
        let sdk = &c.data.headline[0];
        assert_eq!(
            (sdk.before, sdk.after, sdk.verdict),
            (300.0, 300.0, Some(Verdict::Noise))
        );
        assert!(c.data.setting_differences.is_empty());
    }

    #[test]
    fn a_function_renamed_by_its_symbol_hash_is_one_row() {
        let mut before = cpu_run("b", BEFORE, 10.0, 10_000);
        let mut after = cpu_run("a", BEFORE, 10.0, 10_000);
        for (s, hash) in [(&mut before, "h0123456789abcdef"), (&mut after, "hfedcba9876543210")] {
            let cpu = s.cpu.as_mut().unwrap();
            for f in &mut cpu.profile.functions {
                if f.name == "drift_sdk::schema::infer" {
                    f.name = format!("drift_sdk::schema::infer::{hash}");
                }
            }
        }
        let c = Comparison::new(&before, &after, 20).unwrap();
        let rows: Vec<&FunctionDelta> = c.data.functions.iter().filter(|f| f.name.contains("infer")).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].self_samples),
            ("drift_sdk::schema::infer", (100, 100))
        );
    }

    #[test]
    fn equal_runs_are_noise_and_pass_any_gate() {
        let c = Comparison::new(
            &cpu_run("b", BEFORE, 10.0, 10_000),
            &cpu_run("a", BEFORE, 10.0, 10_000),
            20,
        )
        .unwrap();
        assert!(
            c.data
                .functions
                .iter()
                .all(|f| f.verdict == Verdict::Noise && f.z == 0.0)
        );
        assert!(c.regressions(0.0).is_empty());
    }

    #[test]
    fn the_z_test_matches_a_hand_computation() {
        // 120 of 1,000 against 100 of 1,000: pooled p = 0.11, se = sqrt(0.11 × 0.89 × 0.002) = 0.013993.
        assert!((two_proportion_z(100, 1000, 120, 1000) - 1.4293).abs() < 1e-3);
        assert_eq!(two_proportion_z(0, 0, 5, 10), 0.0);
        assert_eq!(two_proportion_z(0, 10, 0, 10), 0.0);
    }

    #[test]
    fn the_gate_fails_on_a_real_growth_above_the_threshold_only() {
        let before = cpu_run("b", BEFORE, 10.0, 10_000);
        let worse = cpu_run(
            "a",
            "w;demo_app::handler 500\nw;drift_sdk::capture::inbound::finalize 300\nw;drift_sdk::schema::infer 100\nw;drift_sdk::schema::old_helper 100\n",
            10.0,
            10_000,
        );
        let c = Comparison::new(&before, &worse, 20).unwrap();
        let regressions = c.regressions(10.0);
        assert!(
            regressions.iter().any(|r| r.starts_with("SDK CPU µs per request")),
            "{regressions:?}"
        );
        assert!(
            regressions
                .iter()
                .any(|r| r.starts_with("drift_sdk::capture::inbound::finalize")),
            "{regressions:?}"
        );
        assert!(
            c.regressions(1000.0).iter().all(|r| !r.starts_with("SDK")),
            "below the threshold passes"
        );
        // A small change is noise, whatever the threshold.
        let slightly = cpu_run(
            "a",
            "w;demo_app::handler 695\nw;drift_sdk::capture::inbound::finalize 105\nw;drift_sdk::schema::infer 100\nw;drift_sdk::schema::old_helper 100\n",
            10.0,
            10_000,
        );
        assert!(
            Comparison::new(&before, &slightly, 20)
                .unwrap()
                .regressions(1.0)
                .is_empty()
        );
    }

    #[test]
    fn differing_settings_are_listed() {
        let before = cpu_run("b", BEFORE, 10.0, 10_000);
        let mut after = cpu_run("a", BEFORE, 10.0, 10_000);
        after.settings.sampling_rate = Some(0.5);
        after.settings.mix = "realistic".into();
        let c = Comparison::new(&before, &after, 20).unwrap();
        assert_eq!(
            c.data.setting_differences,
            ["mix: \"seed\" → \"realistic\"", "sampling_rate: 1.0 → 0.5"]
        );
        assert!(c.sections()[0].heading.contains("not like for like"));
    }

    fn mem_run(name: &str, requests: u64, sdk_bytes: u64, site_bytes: u64) -> Summary {
        let mut s = summary(name, Mode::Mem, requests);
        let mut profile: HeapProfile = HeapProfile::from_json(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/dhat-small.json")).unwrap(),
        )
        .unwrap();
        profile.sdk_bytes = sdk_bytes;
        profile.sites[0].bytes = site_bytes;
        s.mem = Some(MemSummary {
            bytes_per_request: 0.0,
            allocations_per_request: 0.0,
            profile,
        });
        s
    }

    #[test]
    fn mem_runs_compare_per_request_and_gate_on_the_sdks_bytes() {
        let c = Comparison::new(&mem_run("b", 100, 10_000, 5_000), &mem_run("a", 200, 30_000, 5_000), 20).unwrap();
        let sdk = &c.data.headline[0];
        assert_eq!(
            (sdk.name.as_str(), sdk.before, sdk.after),
            ("SDK bytes per request", 100.0, 150.0)
        );
        let site = &c.data.sites[0];
        assert_eq!(
            site.bytes_per_request,
            (50.0, 25.0),
            "the same bytes over twice the requests"
        );
        assert_eq!(c.regressions(40.0).len(), 1);
        assert!(c.regressions(60.0).is_empty());
    }

    #[test]
    fn a_site_whose_line_moved_is_one_row() {
        let before = mem_run("b", 100, 1, 5_000);
        let mut after = mem_run("a", 100, 1, 5_000);
        let site = &mut after.mem.as_mut().unwrap().profile.sites[0];
        site.location = format!("{}0", site.location);
        let function = site.function.clone();
        let c = Comparison::new(&before, &after, 20).unwrap();
        let rows: Vec<&SiteDelta> = c.data.sites.iter().filter(|s| s.function == function).collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].bytes_per_request.0, rows[0].bytes_per_request.1);
    }

    #[test]
    fn timeline_runs_compare_stages() {
        let timeline = Timeline::from_json(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/timeline-small.json")).unwrap(),
        )
        .unwrap();
        let mut before = summary("b", Mode::Timeline, 10);
        before.timeline = Some(TimelineSummary {
            timeline: timeline.clone(),
        });
        let mut after = before.clone();
        after.name = "a".into();
        let stage = &mut after.timeline.as_mut().unwrap().timeline.stages[0];
        stage.mean_us *= 2.0;
        let name = stage.name.clone();
        let c = Comparison::new(&before, &after, 20).unwrap();
        assert_eq!(c.data.stages[0].name, name, "the changed stage comes first");
        assert_eq!(c.data.stages[0].mean_us.1, c.data.stages[0].mean_us.0 * 2.0);
    }

    fn save(results: &Path, s: &Summary) -> PathBuf {
        let dir = results.join(&s.name);
        std::fs::create_dir_all(&dir).unwrap();
        s.write(&dir).unwrap();
        dir
    }

    fn run(root: &Path, argv: &[&str]) -> Result<(), Failure> {
        use clap::Parser;
        let argv = ["cargo xtask", "compare"].into_iter().chain(argv.iter().copied());
        match crate::flags::Xtask::try_parse_from(argv).unwrap().command {
            crate::flags::Command::Compare(args) => args.run(root),
            other => panic!("not compare: {other:?}"),
        }
    }

    #[test]
    fn the_command_refuses_what_it_cannot_compare_and_gates_with_exit_1() {
        let root = tempfile::tempdir().unwrap();
        let results = root.path().join("results");
        save(&results, &cpu_run("before", BEFORE, 10.0, 10_000));
        save(&results, &cpu_run("after", AFTER, 10.0, 10_000));
        save(&results, &mem_run("heap", 100, 1, 1));
        let corrupt = results.join("corrupt");
        std::fs::create_dir_all(&corrupt).unwrap();
        std::fs::write(corrupt.join("summary.json"), "{\"version\": 1, \"name\":").unwrap();

        assert!(run(root.path(), &["before", "after"]).is_ok());
        assert!(results.join("compare-before-after/compare.json").is_file());
        match run(root.path(), &["before", "after", "--fail-above", "5"]) {
            Err(Failure::Run(e)) => assert!(e.to_string().contains("new_helper"), "{e}"),
            other => panic!("the gate should fail with exit 1: {other:?}"),
        }
        for (argv, needle) in [
            (&["before", "heap"][..], "same mode"),
            (&["before", "missing"][..], "saved runs: after, before, corrupt, heap"),
            (&["before", "corrupt"][..], "parsing"),
            (&["before", "nowhere/at/all"][..], "no run named"),
            (&["heap", "heap", "--flamegraph"][..], "two cpu runs"),
        ] {
            match run(root.path(), argv) {
                Err(Failure::Usage(e)) => assert!(format!("{e:#}").contains(needle), "{argv:?}: {e:#}"),
                other => panic!("{argv:?}: expected a usage error, got {other:?}"),
            }
        }
    }

    fn bench(name: &str, samples: &[(f64, f64)]) -> crate::bench::BenchReport {
        // Each (disabled CPU s, record CPU s) pair is one round of 100,000 requests a side.
        let mut all = Vec::new();
        for (round, (disabled, record)) in samples.iter().enumerate() {
            for (config, cpu_seconds) in [("disabled", disabled), ("record", record)] {
                all.push(crate::bench::Sample {
                    workload: "seed".into(),
                    config: config.into(),
                    round,
                    req_per_s: 1000.0,
                    p50_us: 1.0,
                    p90_us: 1.0,
                    p99_us: 1.0,
                    failed: 0,
                    late: 0,
                    requests: 100_000,
                    cpu_seconds: *cpu_seconds,
                    export_cpu_seconds: 0.0,
                    peak_rss_kib: 1,
                    rss_growth_kib: 0.0,
                    rss_readings: 500,
                    recorded: 0,
                    exported: 100_000,
                    dropped: 0,
                    trace_files: 0,
                });
            }
        }
        let rows = crate::bench::rows(&all);
        crate::bench::BenchReport {
            version: 1,
            name: name.into(),
            started: String::new(),
            duration_s: 5.0,
            concurrency: 4,
            rate: None,
            rounds: samples.len(),
            git_commit: "abc".into(),
            targets: crate::bench::targets(&rows, false),
            rows,
            samples: all,
        }
    }

    #[test]
    fn benches_compare_sdk_cost_with_their_spreads_and_gate() {
        let root = tempfile::tempdir().unwrap();
        let results = root.path().join("results");
        // SDK µs per request: 10, 11, 12 before; 20, 21, 22 after (no overlap); 10.5, 11, 11.5 (overlap).
        let before = bench("b", &[(1.0, 2.0), (1.0, 2.1), (1.0, 2.2)]);
        let worse = bench("w", &[(1.0, 3.0), (1.0, 3.1), (1.0, 3.2)]);
        let same = bench("s", &[(1.0, 2.05), (1.0, 2.1), (1.0, 2.15)]);
        let deltas = bench_deltas(&before, &worse);
        assert_eq!(deltas.len(), 1, "disabled is the baseline, not a row");
        assert_eq!(
            (deltas[0].config.as_str(), deltas[0].verdict),
            ("record", Verdict::Real)
        );
        assert!((deltas[0].sdk_us.0 - 11.0).abs() < 1e-9 && (deltas[0].sdk_us.1 - 21.0).abs() < 1e-9);
        assert_eq!(bench_deltas(&before, &same)[0].verdict, Verdict::Noise);
        for report in [&before, &worse, &same] {
            let dir = results.join(&report.name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("bench.json"), serde_json::to_string(report).unwrap()).unwrap();
        }
        assert!(
            run(root.path(), &["b", "s", "--fail-above", "1"]).is_ok(),
            "overlapping spreads are noise"
        );
        assert!(matches!(
            run(root.path(), &["b", "w", "--fail-above", "50"]),
            Err(Failure::Run(_))
        ));
        assert!(
            run(root.path(), &["b", "w", "--fail-above", "100"]).is_ok(),
            "+91 % is under 100 %"
        );
        save(&results, &cpu_run("profile", BEFORE, 10.0, 10_000));
        match run(root.path(), &["b", "profile"]) {
            Err(Failure::Usage(e)) => assert!(e.to_string().contains("same kind"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ambiguous_and_path_arguments() {
        let root = tempfile::tempdir().unwrap();
        let results = root.path().join("results");
        let dir = save(&results, &cpu_run("cpu-1", BEFORE, 10.0, 10_000));
        save(&results, &cpu_run("cpu-2", BEFORE, 10.0, 10_000));
        assert_eq!(find_run(&results, dir.to_str().unwrap()).unwrap(), dir);
        assert_eq!(find_run(&results, "cpu-1").unwrap(), dir);
        let err = find_run(&results, "cpu").unwrap_err().to_string();
        assert!(err.contains("ambiguous") && err.contains("cpu-1, cpu-2"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            find_run(empty.path(), "x")
                .unwrap_err()
                .to_string()
                .contains("no saved runs yet")
        );
    }
}
