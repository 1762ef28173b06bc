//! `cargo xtask bench --profiler`: what the CPU sampler itself costs the app it profiles.
//!
//! One binary, the demo app's `pprof` build in the `profiling` profile (what `profile cpu` runs), two ways, same
//! load: `sampler-on` samples the whole run (as `profile cpu` does); `sampler-off` serves the profiling endpoint
//! instead and nobody asks for a window, so nothing samples. `sampler-off-again` runs it once more: the A/A, whose
//! interval must hold 0, or the machine's runs are too unsteady to compare and the run fails. K rounds, each
//! running the three in a rotated order, a fresh process each time, traces on a tmpfs when there is one. Per round,
//! sampler-on ÷ sampler-off of the workload's req/s and of the app's CPU µs per request (its own getrusage).
//!
//! The target: the sampler costs at most [`MAX_THROUGHPUT_COST`] of the throughput. Two instruments, both printed:
//!
//! - **the clocked cost**: the time spent in the signal handler (it times itself) plus the `drift-sampler` thread's
//!   CPU by its own clock, as a share of the app's CPU, from the sampled runs' `pprof.json`. Exact, but blind to
//!   indirect costs (caches, interrupted system calls);
//! - **the A/B**: per round, 1 − on ÷ off of the workload's req/s; their mean (the order alternates, so the mean
//!   cancels a first-or-second position effect, which on this machine is several percent) with a 95 % interval
//!   from the rounds' spread (Student's t). On a noisy machine the interval is wide: it says how small an effect
//!   the run could have seen.
//!
//! The target holds when the clocked cost is within it and the A/B's interval does not lie wholly above it.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xshell::Shell;

use crate::Failure;
use crate::collect::{self, App};
use crate::flags::{BenchArgs, Mode};
use crate::render::tables::{fixed, percent, table, thousands};

/// The most throughput the sampler may cost, as a fraction.
pub const MAX_THROUGHPUT_COST: f64 = 0.03;

/// One run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverheadSample {
    pub round: usize,
    /// `sampler-on`, `sampler-off` or `sampler-off-again` (the A/A).
    pub config: String,
    pub req_per_s: f64,
    pub requests: u64,
    pub cpu_seconds: f64,
    /// The sampler thread's CPU seconds by its own clock (sampled runs).
    pub sampler_thread_seconds: Option<f64>,
    /// Samples the sampler took (sampled runs).
    pub samples: Option<u64>,
    /// Seconds spent in the signal handler, summed (sampled runs).
    #[serde(default)]
    pub handler_seconds: Option<f64>,
}

impl OverheadSample {
    fn cpu_us_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.cpu_seconds / self.requests as f64 * 1e6
        }
    }
}

/// What `profiler-overhead.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct OverheadReport {
    pub name: String,
    pub started: String,
    pub git_commit: String,
    pub duration_s: f64,
    pub concurrency: u32,
    pub rounds: usize,
    /// Per round, 1 − on ÷ off of req/s: the throughput the sampler cost.
    pub throughput_cost: Vec<f64>,
    /// Per round, on ÷ off − 1 of CPU µs per request.
    pub cpu_per_request_cost: Vec<f64>,
    /// The sampler thread's share of the sampled runs' CPU, per sampled run.
    pub sampler_thread_share: Vec<f64>,
    /// The signal handler's time as a share of the sampled runs' CPU, per sampled run.
    #[serde(default)]
    pub handler_share: Vec<f64>,
    pub median_throughput_cost: f64,
    /// The mean of [`throughput_cost`](Self::throughput_cost) and its 95 % interval.
    pub mean_throughput_cost: f64,
    pub throughput_cost_ci95: (f64, f64),
    /// Per round, 1 − off-again ÷ off of req/s: the A/A, which must read as no change; its mean and 95 % interval.
    pub aa_cost: Vec<f64>,
    pub aa_mean: f64,
    pub aa_ci95: (f64, f64),
    /// Per sampled run, (handler + sampler thread) ÷ the app's CPU; and their median.
    pub clocked_cost: Vec<f64>,
    pub median_clocked_cost: f64,
    pub holds: bool,
    pub samples: Vec<OverheadSample>,
}

/// The two ways, and the A/A: a second run of `sampler-off` in each round, which must read as no change.
const CONFIGS: [&str; 3] = ["sampler-off", "sampler-on", "sampler-off-again"];

pub fn run(args: &BenchArgs, sh: &Shell, root: &Path) -> Result<(), Failure> {
    if args.configs.is_some() || args.workloads.is_some() || args.rate.is_some() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--profiler compares the sampler on and off on the seed mix at saturation: it takes --runs, --duration, \
             --concurrency, --traces-dir and --save, not --configs, --workloads or --rate"
        )));
    }
    let results = root.join("results");
    let (name, started) =
        crate::summary::new_run(&results, args.save.clone(), "profiler-overhead").map_err(Failure::Usage)?;
    let dir = results.join(&name);
    let traces_root = collect::traces_dir(args.traces_dir.as_deref(), &name, &dir).map_err(Failure::Usage)?;
    eprintln!("[build] demo-app (profiling, feature pprof: what `profile cpu` runs) and the workload");
    let binaries = collect::build(sh, root, Mode::Cpu).context("building for the profiler's overhead")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let total = args.runs * CONFIGS.len();
    let mut samples = Vec::with_capacity(total);
    for round in 0..args.runs {
        for k in 0..CONFIGS.len() {
            let config = CONFIGS[(k + round) % CONFIGS.len()];
            let run_dir = dir.join("runs").join(format!("{config}-{round}"));
            let traces = traces_root.join(format!("{config}-{round}"));
            let sample = run_one(args, sh, &binaries, config, round, &run_dir, &traces)
                .with_context(|| format!("run {}/{total}: {config} · round {}", samples.len() + 1, round + 1))?;
            eprintln!(
                "[{}/{total}] {config} · round {}: {} req/s, {} µs CPU per request",
                samples.len() + 1,
                round + 1,
                fixed(sample.req_per_s, 0),
                fixed(sample.cpu_us_per_request(), 2)
            );
            samples.push(sample);
        }
    }
    let _ = std::fs::remove_dir(&traces_root);
    let report = summarise(name, started, crate::profile::git_commit(sh), args, samples);
    let path = dir.join("profiler-overhead.json");
    let text = serde_json::to_string_pretty(&report).context("serialising profiler-overhead.json")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    println!("{}", render(&report));
    println!(
        "files in {}: profiler-overhead.json, runs/",
        dir.strip_prefix(root).unwrap_or(&dir).display()
    );
    if report.holds {
        Ok(())
    } else {
        Err(Failure::Run(anyhow::anyhow!(
            "the sampler's cost is above {}: clocked {}, A/B {} [{}, {}] over {} rounds",
            percent(MAX_THROUGHPUT_COST),
            signed_percent(report.median_clocked_cost),
            signed_percent(report.mean_throughput_cost),
            signed_percent(report.throughput_cost_ci95.0),
            signed_percent(report.throughput_cost_ci95.1),
            report.rounds
        )))
    }
}

fn run_one(
    args: &BenchArgs,
    sh: &Shell,
    binaries: &collect::Binaries,
    config: &str,
    round: usize,
    run_dir: &Path,
    traces: &Path,
) -> anyhow::Result<OverheadSample> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut app_args: Vec<String> = [
        "--mode",
        "record",
        "--listen",
        "127.0.0.1:0",
        "--traces-dir",
        &traces.display().to_string(),
        "--profile-dir",
        &run_dir.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    if config.starts_with("sampler-off") {
        app_args.push("--pprof-endpoint".to_owned());
    }
    let mut app = App::start(sh, &binaries.demo_app, &app_args, &run_dir.join("demo-app.log"))?;
    let workload_args = [
        "--concurrency".to_owned(),
        args.concurrency.to_string(),
        "--mix".to_owned(),
        "seed".to_owned(),
        "--duration".to_owned(),
        format!("{}ms", args.duration.as_millis()),
    ];
    let result = collect::run_workload(
        sh,
        &binaries.workload,
        &app.url,
        &workload_args,
        &run_dir.join("workload.json"),
        &run_dir.join("workload.txt"),
    );
    app.check_alive()?;
    let (status, workload) = result?;
    app.stop(sh)?;
    let _ = std::fs::remove_dir_all(traces);
    if !status.success() {
        bail!("the workload failed ({status})");
    }
    let run: Value = crate::summary::read_json(&run_dir.join("run.json"))?;
    let pprof = &run["profiler_output"]["pprof"];
    let sampler_thread_seconds = pprof["threads"].as_array().map(|threads| {
        threads
            .iter()
            .filter(|t| t["name"] == "drift-sampler")
            .filter_map(|t| t["cpu_seconds"].as_f64())
            .sum()
    });
    Ok(OverheadSample {
        round,
        config: config.to_owned(),
        req_per_s: workload["req_per_s"]
            .as_f64()
            .context("workload.json has no req_per_s")?,
        requests: run["requests"].as_u64().context("run.json has no requests")?,
        cpu_seconds: run["cpu_seconds"]["total"]
            .as_f64()
            .context("run.json has no cpu_seconds.total")?,
        sampler_thread_seconds,
        samples: pprof["samples"].as_u64(),
        handler_seconds: pprof["handler_seconds"].as_f64(),
    })
}

fn summarise(
    name: String,
    started: String,
    git_commit: String,
    args: &BenchArgs,
    samples: Vec<OverheadSample>,
) -> OverheadReport {
    let (mut throughput_cost, mut cpu_per_request_cost) = (Vec::new(), Vec::new());
    let (mut sampler_thread_share, mut handler_share, mut aa_cost) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.runs {
        let find = |config: &str| samples.iter().find(|s| s.round == round && s.config == config);
        if let (Some(off), Some(again)) = (find("sampler-off"), find("sampler-off-again"))
            && off.req_per_s > 0.0
        {
            aa_cost.push(1.0 - again.req_per_s / off.req_per_s);
        }
        if let (Some(off), Some(on)) = (find("sampler-off"), find("sampler-on")) {
            if off.req_per_s > 0.0 {
                throughput_cost.push(1.0 - on.req_per_s / off.req_per_s);
            }
            if off.cpu_us_per_request() > 0.0 {
                cpu_per_request_cost.push(on.cpu_us_per_request() / off.cpu_us_per_request() - 1.0);
            }
            if let Some(seconds) = on.sampler_thread_seconds.filter(|_| on.cpu_seconds > 0.0) {
                sampler_thread_share.push(seconds / on.cpu_seconds);
            }
            if let Some(seconds) = on.handler_seconds.filter(|_| on.cpu_seconds > 0.0) {
                handler_share.push(seconds / on.cpu_seconds);
            }
        }
    }
    let median_throughput_cost = median(&throughput_cost);
    let (mean_throughput_cost, throughput_cost_ci95) = mean_and_ci95(&throughput_cost);
    let clocked_cost: Vec<f64> = samples
        .iter()
        .filter(|s| s.config == "sampler-on" && s.cpu_seconds > 0.0)
        .filter_map(|s| Some((s.handler_seconds? + s.sampler_thread_seconds?) / s.cpu_seconds))
        .collect();
    let median_clocked_cost = median(&clocked_cost);
    let (aa_mean, aa_ci95) = mean_and_ci95(&aa_cost);
    let aa_reads_no_change = aa_ci95.0 <= 0.0 && 0.0 <= aa_ci95.1;
    let holds = aa_reads_no_change
        && !clocked_cost.is_empty()
        && median_clocked_cost <= MAX_THROUGHPUT_COST
        && !throughput_cost.is_empty()
        && throughput_cost_ci95.0 <= MAX_THROUGHPUT_COST;
    OverheadReport {
        name,
        started,
        git_commit,
        duration_s: args.duration.as_secs_f64(),
        concurrency: args.concurrency,
        rounds: args.runs,
        holds,
        median_throughput_cost,
        mean_throughput_cost,
        throughput_cost_ci95,
        aa_cost,
        aa_mean,
        aa_ci95,
        clocked_cost,
        median_clocked_cost,
        throughput_cost,
        cpu_per_request_cost,
        sampler_thread_share,
        handler_share,
        samples,
    }
}

fn median(values: &[f64]) -> f64 {
    crate::bench::median(values.to_vec())
}

/// The mean of `values` and its two-sided 95 % interval (Student's t, n − 1 degrees of freedom); the interval is
/// infinite with fewer than two values.
fn mean_and_ci95(values: &[f64]) -> (f64, (f64, f64)) {
    let n = values.len();
    if n == 0 {
        return (0.0, (f64::NEG_INFINITY, f64::INFINITY));
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, (f64::NEG_INFINITY, f64::INFINITY));
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t95(n - 1) * (variance / n as f64).sqrt();
    (mean, (mean - half, mean + half))
}

/// Student's t for a two-sided 95 % interval with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        11..=15 => 2.131,
        16..=20 => 2.086,
        21..=30 => 2.042,
        _ => 1.96,
    }
}

fn range(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        "-".into()
    } else {
        format!("{} to {}", signed_percent(lo), signed_percent(hi))
    }
}

fn signed_percent(fraction: f64) -> String {
    format!("{:+.2}%", fraction * 100.0)
}

fn render(r: &OverheadReport) -> String {
    let mut t = table(
        &["measure", "median", "range over rounds", "mean [95 % interval]"],
        &[1],
    );
    t.add_row(vec![
        "the clocked cost: (signal handler + drift-sampler thread) ÷ the app's CPU".to_owned(),
        signed_percent(r.median_clocked_cost),
        range(&r.clocked_cost),
        "-".to_owned(),
    ]);
    t.add_row(vec![
        "the A/B: throughput lost to the sampler (1 − on ÷ off req/s)".to_owned(),
        signed_percent(r.median_throughput_cost),
        range(&r.throughput_cost),
        format!(
            "{} [{}, {}]",
            signed_percent(r.mean_throughput_cost),
            signed_percent(r.throughput_cost_ci95.0),
            signed_percent(r.throughput_cost_ci95.1)
        ),
    ]);
    t.add_row(vec![
        "the A/A: throughput lost between two sampler-off runs (must read as no change)".to_owned(),
        signed_percent(median(&r.aa_cost)),
        range(&r.aa_cost),
        format!(
            "{} [{}, {}]",
            signed_percent(r.aa_mean),
            signed_percent(r.aa_ci95.0),
            signed_percent(r.aa_ci95.1)
        ),
    ]);
    t.add_row(vec![
        "app CPU per request (on ÷ off − 1)".to_owned(),
        signed_percent(median(&r.cpu_per_request_cost)),
        range(&r.cpu_per_request_cost),
        "-".to_owned(),
    ]);
    t.add_row(vec![
        "time in the signal handler ÷ the app's CPU".to_owned(),
        signed_percent(median(&r.handler_share)),
        range(&r.handler_share),
        "-".to_owned(),
    ]);
    t.add_row(vec![
        "drift-sampler thread's own clock ÷ the app's CPU".to_owned(),
        signed_percent(median(&r.sampler_thread_share)),
        range(&r.sampler_thread_share),
        "-".to_owned(),
    ]);
    let mut runs = table(&["round", "config", "req/s", "CPU µs/req", "samples"], &[0, 2, 3, 4]);
    for s in &r.samples {
        runs.add_row(vec![
            (s.round + 1).to_string(),
            s.config.clone(),
            fixed(s.req_per_s, 0),
            fixed(s.cpu_us_per_request(), 2),
            s.samples.map_or_else(|| "-".into(), thousands),
        ]);
    }
    let aa = if r.aa_ci95.0 <= 0.0 && 0.0 <= r.aa_ci95.1 {
        "the A/A reads as no change"
    } else {
        "the A/A does NOT read as no change, so this machine's runs cannot be compared"
    };
    let verdict = format!(
        "target: the sampler costs ≤ {} of the throughput: {} ({aa}; the clocked cost {}, and the A/B's interval {} \
         it)",
        percent(MAX_THROUGHPUT_COST),
        if r.holds { "holds" } else { "NO" },
        if r.median_clocked_cost <= MAX_THROUGHPUT_COST {
            "is within"
        } else {
            "is NOT within"
        },
        if r.throughput_cost_ci95.0 <= MAX_THROUGHPUT_COST {
            "does not lie wholly above"
        } else {
            "lies wholly ABOVE"
        }
    );
    format!(
        "the CPU sampler's own cost — {} ({} rounds × {} s, seed mix, {} connections, {})\n{t}\n{verdict}\n\n{runs}",
        r.name, r.rounds, r.duration_s, r.concurrency, r.git_commit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(round: usize, config: &str, req_per_s: f64, cpu_seconds: f64) -> OverheadSample {
        OverheadSample {
            round,
            config: config.into(),
            req_per_s,
            requests: (req_per_s * 5.0) as u64,
            cpu_seconds,
            sampler_thread_seconds: (config == "sampler-on").then_some(0.05),
            samples: None,
            handler_seconds: (config == "sampler-on").then_some(0.02),
        }
    }

    #[test]
    fn each_round_is_compared_with_itself_and_the_median_is_judged() {
        let args = BenchArgs {
            duration: std::time::Duration::from_secs(5),
            concurrency: 4,
            rate: None,
            runs: 3,
            configs: None,
            workloads: None,
            save: None,
            traces_dir: None,
            profiler: true,
        };
        let samples = vec![
            sample(0, "sampler-off", 30000.0, 10.0),
            sample(0, "sampler-on", 29700.0, 10.0),
            sample(1, "sampler-on", 25000.0, 10.0),
            sample(1, "sampler-off", 25500.0, 10.0),
            sample(2, "sampler-off", 28000.0, 10.0),
            sample(2, "sampler-on", 28280.0, 10.0),
        ];
        let r = summarise("t".into(), "now".into(), "abc".into(), &args, samples);
        assert_eq!(r.throughput_cost.len(), 3);
        assert!(
            (r.median_throughput_cost - 0.01).abs() < 1e-9,
            "{:?}",
            r.throughput_cost
        );
        assert!(r.holds);
        assert!((r.sampler_thread_share[0] - 0.005).abs() < 1e-9);
        assert!((r.handler_share[0] - 0.002).abs() < 1e-9);
        assert!((r.median_clocked_cost - 0.007).abs() < 1e-9, "handler + sampler thread");
        assert!((r.mean_throughput_cost - (0.01 + 0.0196078 - 0.01) / 3.0).abs() < 1e-6);
        let (lo, hi) = r.throughput_cost_ci95;
        assert!(lo < r.mean_throughput_cost && r.mean_throughput_cost < hi);
        let text = render(&r);
        assert!(text.contains("+1.00%") && text.contains(": holds"), "{text}");
        assert!(
            text.contains("the A/A reads as no change"),
            "no A/A runs: an unbounded interval"
        );
    }

    #[test]
    fn an_a_a_that_reads_as_a_change_fails_the_run() {
        let args = BenchArgs {
            duration: std::time::Duration::from_secs(5),
            concurrency: 4,
            rate: None,
            runs: 3,
            configs: None,
            workloads: None,
            save: None,
            traces_dir: None,
            profiler: true,
        };
        let mut samples = Vec::new();
        for round in 0..3 {
            samples.push(sample(round, "sampler-off", 30000.0, 10.0));
            samples.push(sample(round, "sampler-on", 29900.0, 10.0));
            // The second sampler-off run is 10 % slower every round: the runs drift, the A/B means nothing.
            samples.push(sample(round, "sampler-off-again", 27000.0 + round as f64 * 10.0, 10.0));
        }
        let r = summarise("t".into(), "now".into(), "abc".into(), &args, samples);
        assert_eq!(r.aa_cost.len(), 3);
        assert!(r.aa_ci95.0 > 0.0, "{:?}", r.aa_ci95);
        assert!(!r.holds);
        assert!(render(&r).contains("does NOT read as no change"));
    }

    #[test]
    fn the_interval_widens_with_the_spread_and_few_rounds() {
        let (mean, (lo, hi)) = mean_and_ci95(&[0.01, 0.03]);
        assert!((mean - 0.02).abs() < 1e-12);
        // sd 0.01414, se 0.01, t(1) = 12.706
        assert!((hi - 0.02 - 0.12706).abs() < 1e-4 && (0.02 - lo - 0.12706).abs() < 1e-4);
        let (_, (lo, _)) = mean_and_ci95(&[0.05; 8]);
        assert!((lo - 0.05).abs() < 1e-12, "no spread, no width");
        assert_eq!(mean_and_ci95(&[0.1]).1, (f64::NEG_INFINITY, f64::INFINITY));
    }
}
