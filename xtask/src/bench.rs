//! `cargo xtask bench`: the SDK's overhead, measured end to end, and the targets it must meet.
//!
//! The demo app (release, no profiler) runs once per configuration and workload, each time a fresh process. The
//! order is interleaved (every configuration once per round, K rounds), so the machine's drift hits every
//! configuration alike. For each run: the workload's req/s and latency percentiles, the app's own CPU seconds and
//! peak RSS (its `run.json`, from getrusage), its resident set sampled every 100 ms from `/proc`, and the SDK's
//! counters.
//!
//! Derived, within a round against that round's `disabled` run, then the median over rounds:
//! - throughput ratio and p99 ratio to disabled;
//! - **SDK CPU µs per request** = CPU µs per request of the configuration − CPU µs per request of disabled. That is
//!   the (server CPU − disabled server CPU) ÷ requests, per request on each side, because two runs of the
//!   same duration serve different numbers of requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xshell::Shell;

use crate::Failure;
use crate::collect::{self, App};
use crate::flags::BenchArgs;
use crate::render::tables::{bytes, fixed, table, thousands};

/// A configuration of the SDK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub name: &'static str,
    /// What it means, for the table's legend.
    pub meaning: &'static str,
}

/// Every configuration, in table order. `disabled` is the baseline of the others.
pub const CONFIGS: [Config; 9] = [
    Config {
        name: "disabled",
        meaning: "SDK mode DISABLED (the baseline)",
    },
    Config {
        name: "record",
        meaning: "RECORD, sampling 1.0, one trace file per trace",
    },
    Config {
        name: "record-no-files",
        meaning: "RECORD 1.0, every line built, no file written (--discard-spans)",
    },
    Config {
        name: "record-nice-10",
        meaning: "RECORD 1.0, the SDK's export thread at nice 10 (--export-thread-nice)",
    },
    Config {
        name: "record-batch-64",
        meaning: "RECORD 1.0, export batches of 64 records instead of 512 (--batch-size)",
    },
    Config {
        name: "record+transforms",
        meaning: "RECORD 1.0 with the redact/mask rules of benchmarks/transforms.yaml",
    },
    Config {
        name: "sampling-0.5",
        meaning: "RECORD at 0.5",
    },
    Config {
        name: "sampling-0.1",
        meaning: "RECORD at 0.1",
    },
    Config {
        name: "sampling-0.01",
        meaning: "RECORD at 0.01",
    },
];

/// The workloads: (name, `--mix`).
pub const WORKLOADS: [(&str, &str); 3] = [("seed", "seed"), ("realistic", "realistic"), ("outbound", "outbound")];

impl Config {
    fn app_args(&self, root: &Path, run_dir: &Path, traces: &Path) -> Vec<String> {
        let traces = traces.display().to_string();
        let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
        let record = |rate: &str| -> Vec<String> {
            vec!["--mode".into(), "record".into(), "--sampling-rate".into(), rate.into()]
        };
        match self.name {
            "disabled" => args.extend(["--mode".into(), "disabled".into()]),
            "record-no-files" => {
                args.extend(record("1.0"));
                args.push("--discard-spans".into());
            }
            "record-nice-10" => {
                args.extend(record("1.0"));
                args.extend(["--export-thread-nice".into(), "10".into()]);
            }
            "record-batch-64" => {
                args.extend(record("1.0"));
                args.extend(["--batch-size".into(), "64".into()]);
            }
            "record+transforms" => {
                args.extend(record("1.0"));
                args.extend([
                    "--transforms".into(),
                    root.join("benchmarks/transforms.yaml").display().to_string(),
                ]);
            }
            name => args.extend(record(name.strip_prefix("sampling-").unwrap_or("1.0"))),
        }
        if self.name != "record-no-files" {
            args.extend(["--traces-dir".into(), traces]);
        }
        args.extend(["--profile-dir".into(), run_dir.display().to_string()]);
        args
    }
}

/// One run of one configuration on one workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub workload: String,
    pub config: String,
    pub round: usize,
    pub req_per_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub failed: u64,
    /// Paced runs: requests sent after their due time because every connection was busy (see the workload's --rate).
    #[serde(default)]
    pub late: u64,
    /// Requests the app served (warm-up included), the per-request divisor.
    pub requests: u64,
    /// The app's CPU seconds, user + system.
    pub cpu_seconds: f64,
    /// CPU seconds of the SDK's export thread alone, as the SDK measured it (`stats().export_thread_cpu_ns`).
    #[serde(default)]
    pub export_cpu_seconds: f64,
    pub peak_rss_kib: u64,
    /// Mean RSS over the last tenth of the run minus the mean over its second tenth.
    pub rss_growth_kib: f64,
    /// How many RSS readings the growth is computed from.
    #[serde(default)]
    pub rss_readings: usize,
    pub recorded: u64,
    pub exported: u64,
    pub dropped: u64,
    /// Trace files on disk after the run.
    pub trace_files: u64,
}

impl Sample {
    fn cpu_us_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.cpu_seconds * 1e6 / self.requests as f64
        }
    }
}

/// The medians of one (workload, configuration) over its rounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    pub config: String,
    pub runs: usize,
    pub req_per_s: f64,
    pub req_per_s_spread: (f64, f64),
    pub throughput_ratio: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p99_ratio: f64,
    pub cpu_us_per_request: f64,
    pub sdk_us_per_request: f64,
    pub sdk_us_spread: (f64, f64),
    /// SDK CPU µs per exported span (the SDK's extra CPU divided by the spans it wrote).
    pub sdk_us_per_span: f64,
    /// The export thread's CPU µs per request: exact, and a floor under the SDK's cost, which also has a request-path
    /// part. Under saturation the subtraction above can fall below it: the baseline's idle wake-ups shrink when the
    /// SDK keeps the cores busy.
    #[serde(default)]
    pub export_us_per_request: f64,
    /// The export thread's CPU µs per exported span.
    #[serde(default)]
    pub export_us_per_span: f64,
    pub peak_rss_kib: f64,
    pub rss_growth_kib: f64,
    #[serde(default)]
    pub rss_readings: usize,
    pub requests: f64,
    pub exported: f64,
    pub dropped: f64,
}

/// What `bench.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub version: u32,
    pub name: String,
    pub started: String,
    pub duration_s: f64,
    pub concurrency: u32,
    /// `--rate`: the workload's pace in requests per second, when it did not saturate the app.
    #[serde(default)]
    pub rate: Option<f64>,
    pub rounds: usize,
    pub git_commit: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub samples: Vec<Sample>,
}

/// One target of the issue, with its measured figure.
#[derive(Debug, Serialize, Deserialize)]
pub struct Target {
    pub what: String,
    pub limit: String,
    pub measured: String,
    pub holds: bool,
}

impl BenchArgs {
    pub fn run(self, sh: &Shell, root: &Path) -> Result<(), Failure> {
        if self.profiler {
            return crate::overhead::run(&self, sh, root);
        }
        let workloads: Vec<(&str, &str)> = match &self.workloads {
            None => WORKLOADS.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| {
                    WORKLOADS.iter().find(|(w, _)| w == n).copied().ok_or_else(|| {
                        Failure::Usage(anyhow::anyhow!(
                            "unknown workload {n:?}: use {}",
                            WORKLOADS.map(|(w, _)| w).join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let configs: Vec<Config> = match &self.configs {
            None => CONFIGS.to_vec(),
            Some(names) => {
                for n in names {
                    if !CONFIGS.iter().any(|c| c.name == n) {
                        return Err(Failure::Usage(anyhow::anyhow!(
                            "unknown configuration {n:?}: use {}",
                            CONFIGS.map(|c| c.name).join(", ")
                        )));
                    }
                }
                CONFIGS
                    .into_iter()
                    .filter(|c| c.name == "disabled" || names.iter().any(|n| n == c.name))
                    .collect()
            }
        };
        let results = root.join("results");
        let (name, started) = crate::summary::new_run(&results, self.save.clone(), "bench").map_err(Failure::Usage)?;
        let dir = results.join(&name);
        let traces_root = collect::traces_dir(self.traces_dir.as_deref(), &name, &dir).map_err(Failure::Usage)?;
        eprintln!(
            "[build] demo-app (release, no profiler) and the workload; traces go to {}",
            traces_root.display()
        );
        let binaries = collect::build_with(sh, root, "release", None).context("building for the benchmark")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        let total = self.runs * workloads.len() * configs.len();
        let mut samples = Vec::with_capacity(total);
        let mut n = 0;
        for round in 0..self.runs {
            for (workload, mix) in &workloads {
                // Rotate the order each round so no configuration always runs first (or right after a clean-up).
                for k in 0..configs.len() {
                    let config = configs[(k + round) % configs.len()];
                    n += 1;
                    let run_name = format!("{workload}-{}-{round}", config.name);
                    let run_dir = dir.join("runs").join(&run_name);
                    let traces = traces_root.join(&run_name);
                    let sample = self
                        .run_one(sh, root, &binaries, &config, workload, mix, round, &run_dir, &traces)
                        .with_context(|| {
                            format!("run {n}/{total}: {workload} · {} · round {}", config.name, round + 1)
                        })?;
                    eprintln!(
                        "[{n}/{total}] {workload} · {} · round {}: {} req/s, p99 {} µs, CPU {} s, {} spans written, {} dropped",
                        config.name,
                        round + 1,
                        fixed(sample.req_per_s, 0),
                        fixed(sample.p99_us, 0),
                        fixed(sample.cpu_seconds, 2),
                        thousands(sample.exported),
                        thousands(sample.dropped)
                    );
                    // Each sample is kept as it completes: a later failure loses nothing measured.
                    let line = serde_json::to_string(&sample).context("serialising a sample")?;
                    append_line(&dir.join("samples.jsonl"), &line)?;
                    samples.push(sample);
                }
            }
        }
        let _ = std::fs::remove_dir(&traces_root);
        let rows = rows(&samples);
        let targets = targets(&rows, self.rate.is_some());
        let report = BenchReport {
            version: 1,
            name: name.clone(),
            started,
            duration_s: self.duration.as_secs_f64(),
            concurrency: self.concurrency,
            rate: self.rate,
            rounds: self.runs,
            git_commit: crate::profile::git_commit(sh),
            rows,
            targets,
            samples,
        };
        let json = dir.join("bench.json");
        let text = serde_json::to_string_pretty(&report).context("serialising bench.json")?;
        std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
        let rendered = render(&report);
        std::fs::write(dir.join("bench.txt"), &rendered).context("writing bench.txt")?;
        println!("{rendered}");
        println!(
            "files in {}: bench.json, bench.txt, runs/",
            dir.strip_prefix(root).unwrap_or(&dir).display()
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_one(
        &self,
        sh: &Shell,
        root: &Path,
        binaries: &collect::Binaries,
        config: &Config,
        workload: &str,
        mix: &str,
        round: usize,
        run_dir: &Path,
        traces: &Path,
    ) -> anyhow::Result<Sample> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        // Removes the run's trace files however the run ends: on a tmpfs they hold RAM.
        let _cleanup = RemoveOnDrop(traces.to_path_buf());
        let mut app = App::start(
            sh,
            &binaries.demo_app,
            &config.app_args(root, run_dir, traces),
            &run_dir.join("demo-app.log"),
        )?;
        let sampler = RssSampler::start(app.pid());
        let mut args = vec![
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--mix".to_owned(),
            mix.to_owned(),
            "--duration".to_owned(),
            format!("{}ms", self.duration.as_millis()),
        ];
        if let Some(rate) = self.rate {
            args.extend(["--rate".to_owned(), rate.to_string()]);
        }
        let workload_json = run_dir.join("workload.json");
        let result = collect::run_workload(
            sh,
            &binaries.workload,
            &app.url,
            &args,
            &workload_json,
            &run_dir.join("workload.txt"),
        );
        let rss = sampler.stop();
        app.check_alive()?;
        let (status, report) = result?;
        let stopped = app.stop(sh)?;
        if !status.success() {
            bail!(
                "the workload failed ({status}): {} of {} requests failed",
                report["failed"],
                report["requests"]
            );
        }
        let run: Value = crate::summary::read_json(&run_dir.join("run.json"))?;
        let trace_files = count_and_remove(traces)?;
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        Ok(Sample {
            workload: workload.to_owned(),
            config: config.name.to_owned(),
            round,
            req_per_s: f(&report["req_per_s"]),
            p50_us: f(&report["latency_us"]["p50"]),
            p90_us: f(&report["latency_us"]["p90"]),
            p99_us: f(&report["latency_us"]["p99"]),
            failed: u(&report["failed"]),
            late: u(&report["late"]),
            requests: u(&run["requests"]),
            cpu_seconds: f(&run["cpu_seconds"]["total"]),
            export_cpu_seconds: f(&stopped["sdk"]["export_thread_cpu_s"]),
            peak_rss_kib: u(&run["cpu_seconds"]["max_rss_kib"]),
            rss_growth_kib: growth(&rss),
            rss_readings: rss.len(),
            recorded: u(&stopped["sdk"]["recorded"]),
            exported: u(&stopped["sdk"]["exported"]),
            dropped: u(&stopped["sdk"]["dropped"]),
            trace_files,
        })
    }
}

/// Deletes a directory when dropped (errors ignored: it is a clean-up).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))
}

/// Requests a run must serve before its peak RSS is checked against the target (the "after 100,000").
pub const MEMORY_TARGET_REQUESTS: f64 = 100_000.0;
/// RSS readings (every 100 ms) a run needs before its growth between tenths means anything: a 30 s run.
pub const GROWTH_TARGET_READINGS: usize = 300;

/// Counts the trace files of a run, then deletes them: a recorded run at full speed writes hundreds of thousands.
fn count_and_remove(traces: &Path) -> anyhow::Result<u64> {
    if !traces.exists() {
        return Ok(0);
    }
    let count = std::fs::read_dir(traces)
        .with_context(|| format!("reading {}", traces.display()))?
        .count() as u64;
    std::fs::remove_dir_all(traces).with_context(|| format!("removing {}", traces.display()))?;
    Ok(count)
}

/// Polls `/proc/PID/status` for VmRSS every 100 ms on its own thread.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let path = PathBuf::from(format!("/proc/{pid}/status"));
            let mut kib = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = std::fs::read_to_string(&path).ok().and_then(|s| vm_rss_kib(&s)) {
                    kib.push(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            kib
        });
        RssSampler { stop, thread }
    }

    /// The readings, in KiB, one per 100 ms.
    pub(crate) fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Mean of the last tenth of `kib` minus the mean of its second tenth; 0 with fewer than 20 readings.
pub fn growth(kib: &[u64]) -> f64 {
    if kib.len() < 20 {
        return 0.0;
    }
    let tenth = kib.len() / 10;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
    mean(&kib[kib.len() - tenth..]) - mean(&kib[tenth..2 * tenth])
}

/// The distinct names, in the order they first appear.
fn in_first_seen_order<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() { (0.0, 0.0) } else { (min, max) }
}

/// Medians per (workload, configuration); ratios and SDK cost against the same round's disabled run.
pub fn rows(samples: &[Sample]) -> Vec<Row> {
    let mut out = Vec::new();
    let workloads = in_first_seen_order(samples.iter().map(|s| s.workload.as_str()));
    for workload in workloads {
        let baseline = |round: usize| {
            samples
                .iter()
                .find(|s| s.workload == workload && s.config == "disabled" && s.round == round)
        };
        for config in CONFIGS {
            let runs: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.workload == workload && s.config == config.name)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&Sample) -> f64| median(runs.iter().map(|s| f(s)).collect());
            let paired = |f: &dyn Fn(&Sample, &Sample) -> f64| -> Vec<f64> {
                runs.iter().filter_map(|s| baseline(s.round).map(|b| f(s, b))).collect()
            };
            let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
            let per = ratio;
            let sdk_us = paired(&|s, b| s.cpu_us_per_request() - b.cpu_us_per_request());
            let sdk_per_span = paired(&|s, b| {
                let extra_us = (s.cpu_us_per_request() - b.cpu_us_per_request()) * s.requests as f64;
                if s.exported == 0 {
                    0.0
                } else {
                    extra_us / s.exported as f64
                }
            });
            let req: Vec<f64> = runs.iter().map(|s| s.req_per_s).collect();
            out.push(Row {
                workload: workload.to_owned(),
                config: config.name.to_owned(),
                runs: runs.len(),
                req_per_s: median(req.clone()),
                req_per_s_spread: spread(&req),
                throughput_ratio: median(paired(&|s, b| ratio(s.req_per_s, b.req_per_s))),
                p50_us: col(&|s| s.p50_us),
                p90_us: col(&|s| s.p90_us),
                p99_us: col(&|s| s.p99_us),
                p99_ratio: median(paired(&|s, b| ratio(s.p99_us, b.p99_us))),
                cpu_us_per_request: col(&|s| s.cpu_us_per_request()),
                sdk_us_per_request: median(sdk_us.clone()),
                sdk_us_spread: spread(&sdk_us),
                sdk_us_per_span: median(sdk_per_span),
                export_us_per_request: col(&|s| per(s.export_cpu_seconds * 1e6, s.requests as f64)),
                export_us_per_span: col(&|s| per(s.export_cpu_seconds * 1e6, s.exported as f64)),
                peak_rss_kib: col(&|s| s.peak_rss_kib as f64),
                rss_growth_kib: col(&|s| s.rss_growth_kib),
                rss_readings: runs.iter().map(|s| s.rss_readings).min().unwrap_or(0),
                requests: col(&|s| s.requests as f64),
                exported: col(&|s| s.exported as f64),
                dropped: col(&|s| s.dropped as f64),
            });
        }
    }
    out
}

/// The targets against `rows`, each with its measured figure; targets whose runs are missing are left out.
/// `paced` runs (`--rate`) do not measure throughput.
pub fn targets(rows: &[Row], paced: bool) -> Vec<Target> {
    let find = |w: &str, c: &str| rows.iter().find(|r| r.workload == w && r.config == c);
    let mut out = Vec::new();
    let mut push = |what: String, limit: &str, measured: String, holds: bool| {
        out.push(Target {
            what,
            limit: limit.to_owned(),
            measured,
            holds,
        });
    };
    for (config, what, limit) in [
        ("record", "one file per trace", 13.0),
        ("record-no-files", "everything but the file", 5.0),
    ] {
        if let Some(r) = find("seed", config) {
            let (measured, cost) = sdk_cost(r);
            push(
                format!("SDK CPU per request, seed mix, {what}"),
                &format!("≤ {limit} µs"),
                measured,
                cost <= limit,
            );
        }
    }
    let throughput = |r: &Row, limit: f64| match paced {
        false => (format!("{:.3} ×", r.throughput_ratio), r.throughput_ratio >= limit),
        true => (
            "not measured: a paced run (--rate fixes the throughput)".to_owned(),
            false,
        ),
    };
    for (workload, limit) in [("seed", 0.90), ("realistic", 0.98)] {
        if let Some(r) = find(workload, "record") {
            let (measured, holds) = throughput(r, limit);
            push(
                format!("throughput, recording 1.0, {workload}"),
                &format!("≥ {limit:.2} × disabled"),
                measured,
                holds,
            );
        }
    }
    for r in rows.iter().filter(|r| r.config == "sampling-0.1") {
        let (measured, holds) = throughput(r, 0.98);
        push(
            format!("throughput, sampling 0.1, {}", r.workload),
            "≥ 0.98 × disabled",
            measured,
            holds,
        );
    }
    for r in rows.iter().filter(|r| r.config == "record") {
        push(
            format!("p99 latency, recording 1.0, {}", r.workload),
            "≤ 1.10 × disabled",
            format!("{:.3} ×", r.p99_ratio),
            r.p99_ratio <= 1.10,
        );
    }
    for r in rows.iter().filter(|r| r.config == "record") {
        if let Some(d) = find(&r.workload, "disabled") {
            let extra_mib = (r.peak_rss_kib - d.peak_rss_kib) / 1024.0;
            let what = format!(
                "peak RSS, recording, {} ({} requests)",
                r.workload,
                thousands(r.requests as u64)
            );
            if r.requests >= MEMORY_TARGET_REQUESTS {
                push(
                    what,
                    "≤ disabled + 50 MiB",
                    format!("{} (+{} MiB)", bytes(r.peak_rss_kib * 1024.0), fixed(extra_mib, 1)),
                    extra_mib <= 50.0,
                );
            } else {
                push(
                    what,
                    "≤ disabled + 50 MiB after 100,000 requests",
                    "not measured: too few requests".into(),
                    false,
                );
            }
            let what = format!("RSS growth, second → last tenth, recording, {}", r.workload);
            if r.rss_readings >= GROWTH_TARGET_READINGS {
                push(
                    what,
                    "none (≤ 1 MiB)",
                    format!("{} MiB", fixed(r.rss_growth_kib / 1024.0, 2)),
                    r.rss_growth_kib <= 1024.0,
                );
            } else {
                push(
                    what,
                    "none, over a long run",
                    "not measured: run ≥ 30 s (--duration)".into(),
                    false,
                );
            }
        }
    }
    out
}

/// The SDK's CPU per request as judged against a target, and how it was found: the difference against disabled, or
/// the export thread's own CPU when that is larger (it is exact and a floor, so the cost is never reported below it).
fn sdk_cost(r: &Row) -> (String, f64) {
    let cost = r.sdk_us_per_request.max(r.export_us_per_request);
    let how = if r.export_us_per_request > r.sdk_us_per_request {
        "the export thread alone; the difference against disabled is"
    } else {
        "the difference against disabled; the export thread alone is"
    };
    let other = r.sdk_us_per_request.min(r.export_us_per_request);
    (format!("{} µs ({how} {} µs)", fixed(cost, 2), fixed(other, 2)), cost)
}

/// The tables, the legend and the targets, as printed.
pub fn render(report: &BenchReport) -> String {
    let pace = match report.rate {
        Some(rate) => format!(" paced at {} req/s,", thousands(rate.round() as u64)),
        None => String::new(),
    };
    let mut out = format!(
        "cargo xtask bench — {}: {} s per run, {} connections,{pace} {} rounds, {} (medians over the rounds; ratios \
         and SDK cost against the same round's disabled run)\n\n",
        report.name, report.duration_s, report.concurrency, report.rounds, report.git_commit
    );
    for workload in in_first_seen_order(report.rows.iter().map(|r| r.workload.as_str())) {
        let mut t = table(
            &[
                "config",
                "req/s",
                "× disabled",
                "p50 µs",
                "p90 µs",
                "p99 µs",
                "p99 ×",
                "CPU µs/req",
                "SDK µs/req",
                "SDK µs/span",
                "export µs/span",
                "peak RSS",
                "spans written",
                "dropped",
            ],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
        );
        for r in report.rows.iter().filter(|r| r.workload == workload) {
            let baseline = r.config == "disabled";
            t.add_row(vec![
                r.config.clone(),
                format!(
                    "{} ({}–{})",
                    fixed(r.req_per_s, 0),
                    fixed(r.req_per_s_spread.0, 0),
                    fixed(r.req_per_s_spread.1, 0)
                ),
                if baseline {
                    "1".into()
                } else {
                    format!("{:.3}", r.throughput_ratio)
                },
                fixed(r.p50_us, 0),
                fixed(r.p90_us, 0),
                fixed(r.p99_us, 0),
                if baseline {
                    "1".into()
                } else {
                    format!("{:.3}", r.p99_ratio)
                },
                fixed(r.cpu_us_per_request, 2),
                if baseline {
                    "-".into()
                } else {
                    format!(
                        "{} ({}–{})",
                        fixed(r.sdk_us_per_request, 2),
                        fixed(r.sdk_us_spread.0, 2),
                        fixed(r.sdk_us_spread.1, 2)
                    )
                },
                if baseline || r.exported == 0.0 {
                    "-".into()
                } else {
                    fixed(r.sdk_us_per_span, 2)
                },
                if r.exported == 0.0 {
                    "-".into()
                } else {
                    fixed(r.export_us_per_span, 2)
                },
                bytes(r.peak_rss_kib * 1024.0),
                thousands(r.exported as u64),
                thousands(r.dropped as u64),
            ]);
        }
        out.push_str(&format!("workload: {workload}\n{t}\n\n"));
    }
    out.push_str("configurations:\n");
    for c in CONFIGS {
        out.push_str(&format!("  {:<18} {}\n", c.name, c.meaning));
    }
    let mut t = table(&["target", "limit", "measured", "holds"], &[]);
    for target in &report.targets {
        t.add_row(vec![
            target.what.clone(),
            target.limit.clone(),
            target.measured.clone(),
            if target.holds { "yes".into() } else { "NO".into() },
        ]);
    }
    out.push_str(&format!("\ntargets:\n{t}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(workload: &str, config: &str, round: usize, req_per_s: f64, cpu_seconds: f64, requests: u64) -> Sample {
        Sample {
            workload: workload.into(),
            config: config.into(),
            round,
            req_per_s,
            p50_us: 100.0,
            p90_us: 150.0,
            p99_us: if config == "disabled" { 200.0 } else { 210.0 },
            failed: 0,
            late: 0,
            requests,
            cpu_seconds,
            export_cpu_seconds: 0.0,
            peak_rss_kib: if config == "disabled" { 20_000 } else { 30_000 },
            rss_growth_kib: 0.0,
            rss_readings: 500,
            recorded: requests,
            exported: if config == "disabled" { 0 } else { requests / 2 },
            dropped: 0,
            trace_files: 0,
        }
    }

    #[test]
    fn sdk_cost_is_per_request_against_the_same_rounds_baseline() {
        // Round 0: disabled 10 µs/request, record 25 µs/request → 15. Round 1: 12 and 24 → 12. Median 13.5.
        let samples = vec![
            sample("seed", "disabled", 0, 1000.0, 1.0, 100_000),
            sample("seed", "record", 0, 900.0, 2.0, 80_000),
            sample("seed", "disabled", 1, 1000.0, 1.2, 100_000),
            sample("seed", "record", 1, 950.0, 2.4, 100_000),
        ];
        let mut rows = rows(&samples);
        let record = rows.iter().find(|r| r.config == "record").unwrap();
        assert!(
            (record.sdk_us_per_request - 13.5).abs() < 1e-9,
            "{}",
            record.sdk_us_per_request
        );
        assert_eq!(record.sdk_us_spread, (12.0, 15.0));
        assert!((record.throughput_ratio - 0.925).abs() < 1e-9);
        assert!((record.p99_ratio - 1.05).abs() < 1e-9);
        // Round 0: 15 µs × 80,000 requests over 40,000 spans = 30; round 1: 12 × 100,000 / 50,000 = 24.
        assert!((record.sdk_us_per_span - 27.0).abs() < 1e-9);
        let few = targets(&rows, false);
        let rss = few.iter().find(|t| t.what.starts_with("peak RSS")).unwrap();
        assert_eq!(
            rss.measured, "not measured: too few requests",
            "90,000 requests is under 100,000"
        );
        for r in rows.iter_mut() {
            r.requests = 150_000.0;
        }
        let targets = targets(&rows, false);
        let cpu = targets
            .iter()
            .find(|t| t.what.starts_with("SDK CPU per request, seed mix, one file"))
            .unwrap();
        assert!(cpu.holds == (13.5 <= 13.0) && cpu.measured.starts_with("13.50 µs"));
        // The export thread's own CPU is a floor: a smaller difference against disabled does not hide it.
        let mut saturated = rows.clone();
        for r in saturated.iter_mut() {
            r.export_us_per_request = 14.0;
        }
        let cpu = super::targets(&saturated, false)
            .into_iter()
            .find(|t| t.what.starts_with("SDK CPU per request, seed mix, one file"))
            .unwrap();
        assert!(!cpu.holds, "{}", cpu.measured);
        assert_eq!(
            cpu.measured,
            "14.00 µs (the export thread alone; the difference against disabled is 13.50 µs)"
        );
        let throughput = targets
            .iter()
            .find(|t| t.what == "throughput, recording 1.0, seed")
            .unwrap();
        assert!(throughput.holds);
        let paced = super::targets(&rows, true);
        let throughput = paced
            .iter()
            .find(|t| t.what == "throughput, recording 1.0, seed")
            .unwrap();
        assert!(!throughput.holds && throughput.measured.starts_with("not measured: a paced run"));
        let rss = targets.iter().find(|t| t.what.starts_with("peak RSS")).unwrap();
        assert!(rss.holds && rss.measured.contains("+9.8 MiB"), "{}", rss.measured);
        assert!(
            render(&BenchReport {
                version: 1,
                name: "t".into(),
                started: String::new(),
                duration_s: 5.0,
                concurrency: 4,
                rate: None,
                rounds: 2,
                git_commit: "abc".into(),
                rows,
                targets,
                samples,
            })
            .contains("13.50 (12.00–15.00)")
        );
    }

    #[test]
    fn growth_compares_the_last_tenth_with_the_second() {
        let flat: Vec<u64> = vec![100; 50];
        assert_eq!(growth(&flat), 0.0);
        let rising: Vec<u64> = (0..100).collect();
        assert!((growth(&rising) - 80.0).abs() < 1e-9, "{}", growth(&rising));
        assert_eq!(growth(&[1, 2, 3]), 0.0, "too few readings");
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t   12345 kB\nVmHWM: 1 kB\n"), Some(12345));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert!(vm_rss_kib(&std::fs::read_to_string("/proc/self/status").unwrap()).is_some());
    }

    #[test]
    fn every_config_starts_the_app_as_it_says() {
        let (root, dir) = (Path::new("/repo"), Path::new("/repo/results/b/runs/x"));
        let traces = Path::new("/dev/shm/b/x");
        let args = |name: &str| {
            CONFIGS
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .app_args(root, dir, traces)
                .join(" ")
        };
        assert!(args("disabled").contains("--mode disabled"));
        assert!(
            args("record").contains("--mode record --sampling-rate 1.0")
                && args("record").contains("--traces-dir /dev/shm/b/x")
        );
        assert!(
            args("record-no-files").contains("--discard-spans") && !args("record-no-files").contains("--traces-dir")
        );
        assert!(args("record+transforms").contains("--transforms /repo/benchmarks/transforms.yaml"));
        assert!(args("sampling-0.01").contains("--sampling-rate 0.01"));
    }
}
