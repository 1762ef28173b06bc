//! Every command line flag of `cargo xtask`, in one place.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The highest CPU sampling frequency `--hz` accepts.
pub const MAX_HZ: u32 = 250;

/// `cargo xtask`: the project's own commands.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the demo app with a profiler, drive it with the workload, and report where the time or memory goes.
    Profile(ProfileArgs),
    /// Compare two saved runs of the same mode: what changed, and whether it is more than noise.
    Compare(CompareArgs),
    /// Measure the SDK's overhead end to end: every configuration (disabled, record, transforms, sampling) on
    /// three workloads, a fresh app process each, interleaved over several rounds.
    Bench(BenchArgs),
    /// Reliability checks too long for CI: the exporter stalled under load, and a graceful shutdown after 100,000
    /// recorded requests. Prints each check with its figure; exits 1 if one fails.
    Faults(FaultsArgs),
}

/// `cargo xtask faults stall|shutdown`.
#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// `stall`: a Tusk API receiver that stops answering for --stall under paced load, against the same load
    /// without a stall. `shutdown`: --requests recorded requests into trace files, then SIGINT.
    #[arg(value_enum)]
    pub check: FaultCheck,
    /// The workload's pace, requests per second.
    #[arg(long, default_value_t = 5000, value_name = "REQ_PER_S", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// The workload's connections (250 req/s or less each).
    #[arg(long, default_value_t = 32, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// stall: load before the receiver stops answering.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub before: Duration,
    /// stall: how long the receiver does not answer.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub stall: Duration,
    /// stall: load after the receiver answers again.
    #[arg(long, default_value = "20s", value_name = "DURATION", value_parser = parse_duration)]
    pub after: Duration,
    /// shutdown: recorded requests before SIGINT.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub requests: u64,
    /// stall: a short form for CI. It checks behaviour (drops counted, warned once, memory bounded, export resumes)
    /// and reports the p99 ratio without judging it: over seconds rather than minutes, the catch-up burst after the
    /// stall is too large a share of the run for a 1.10 × latency limit to be stable.
    #[arg(long)]
    pub smoke: bool,
    /// shutdown: where the trace files go (counted, then deleted) [default: a folder in /dev/shm when it exists, else
    /// the run's folder]. On this ext4 a create costs hundreds of µs after a mass delete, enough to fill the queue.
    #[arg(long, value_name = "DIR")]
    pub traces_dir: Option<PathBuf>,
    /// Save as results/NAME (refused if it exists) [default: faults-CHECK-YYYYmmdd-HHMMSS].
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub save: Option<String>,
}

/// Which `cargo xtask faults` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FaultCheck {
    Stall,
    Shutdown,
}

impl FaultCheck {
    /// `stall` or `shutdown`.
    pub fn name(self) -> &'static str {
        match self {
            FaultCheck::Stall => "stall",
            FaultCheck::Shutdown => "shutdown",
        }
    }
}

/// `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long the workload drives each run.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// Keep-alive connections of the workload (enough to saturate the app on 2 cores).
    #[arg(long, default_value_t = 4, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Pace the workload at this many requests per second (all connections together) instead of saturating the
    /// app: the CPU and p99 figures are then those of a server with room to spare, and the throughput targets are not
    /// measured (the rate fixes the throughput). Give each connection 250 req/s or less (--concurrency ≥ R / 250).
    #[arg(long, value_name = "REQ_PER_S", value_parser = parse_req_per_s)]
    pub rate: Option<f64>,
    /// Rounds: each runs every configuration once, in a rotated order.
    #[arg(long, default_value_t = 3, value_name = "K", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=50))]
    pub runs: usize,
    /// Only these configurations (comma-separated names; `disabled` is always run, as the baseline) [default: all].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub configs: Option<Vec<String>>,
    /// Only these workloads (comma-separated: seed, realistic, outbound) [default: all three].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub workloads: Option<Vec<String>>,
    /// Save as results/NAME (refused if it exists) [default: bench-YYYYmmdd-HHMMSS].
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub save: Option<String>,
    /// Where the recording runs write their trace files (counted and deleted after each run) [default: a folder in
    /// /dev/shm when it exists, else the run's folder]. A tmpfs keeps the disk's state out of the comparison: on
    /// this ext4 (mounted with `discard`) creating a file costs ~20 µs normally and hundreds of µs after the
    /// previous run's mass delete, which would bill one configuration for another's clean-up.
    #[arg(long, value_name = "DIR")]
    pub traces_dir: Option<PathBuf>,
    /// Measure the CPU sampler's own cost instead: the `profile cpu` build of the demo app with its whole-run sampler
    /// on and off (same binary, same seed load), --runs interleaved rounds; the clocked cost (signal handler +
    /// sampler thread), the A/B throughput cost with its 95 % interval, and an A/A (sampler off twice) that must read
    /// as no change; exits 1 when either cost shows more than 3 % or the A/A reads as a change.
    #[arg(long)]
    pub profiler: bool,
}

/// `cargo xtask compare BEFORE AFTER`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs are names under results/ (or a unique prefix of one), or paths to run directories. The \
                        tables also go to results/compare-BEFORE-AFTER/ as compare.json and compare.html."
)]
pub struct CompareArgs {
    /// The run before the change.
    pub before: String,
    /// The run after the change.
    pub after: String,
    /// Also write a differential flame graph (cpu runs): diff.svg and diff.folded.
    #[arg(long)]
    pub flamegraph: bool,
    /// Exit 1 when the SDK's cost per request (cpu: µs, or any function's self µs; mem: bytes or allocations) grew by
    /// more than PCT percent and the change is not noise: a CI regression gate.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_above: Option<f64>,
    /// Rows in the per-function, per-site table.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
}

fn parse_pct(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(pct) if pct >= 0.0 && pct.is_finite() => Ok(pct),
        _ => Err(format!("{text:?} is not a percentage such as 5 or 2.5")),
    }
}

/// `cargo xtask profile <mode>`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every run is saved under results/<NAME or mode-YYYYmmdd-HHMMSS>/ with its raw profiler \
                        files, the SDK's traces, the workload's JSON, summary.json (what `compare` reads) and \
                        report.html. `attach` builds and drives nothing: it profiles a running app's window \
                        through its /debug/pprof/profile endpoint and writes the same report as `cpu`."
)]
pub struct ProfileArgs {
    /// What to profile: `cpu` (pprof samples), `mem` (dhat heap profile), `timeline` (a Chrome trace of the
    /// SDK's stages), or `attach` (a window of a running app's CPU, through its profiling endpoint: see --url).
    #[arg(value_enum)]
    pub mode: ProfileMode,

    /// attach: the running app, `http://127.0.0.1:PORT`, serving `/debug/pprof/profile` (`demo-app
    /// --pprof-endpoint` in a `--features pprof` build, or any app that mounts drift-sdk's `pprof_endpoint`).
    #[arg(
        long,
        value_name = "URL",
        required_if_eq("mode", "attach"),
        conflicts_with_all = [
            "duration", "iterations", "concurrency", "discard_spans", "rate", "mix", "sampling_rate", "transforms", "hz",
            "kernel",
        ]
    )]
    pub url: Option<String>,

    /// attach: how long the window lasts, in seconds (1 to 300) [default: 10].
    #[arg(long, value_name = "N", requires = "url", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub seconds: Option<u64>,

    /// Run the workload this long [default: 10s for cpu; the others run by --iterations].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "iterations")]
    pub duration: Option<Duration>,

    /// Send this many requests [default: 500 for mem (dhat is ~20× slower), 1000 for timeline].
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,

    /// Keep-alive connections the workload drives [default: 4 for cpu (saturate the server), 1 otherwise].
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,

    /// Build every trace line but write no file (the demo app's --discard-spans): profiles the SDK's pipeline without
    /// the file system, whose cost on this ext4 depends on what the disk did before.
    #[arg(long)]
    pub discard_spans: bool,

    /// Pace the workload at this many requests per second (all connections together) instead of as fast as the app
    /// answers, to profile a server with room to spare; give --concurrency ≥ R / 250.
    #[arg(long, value_name = "REQ_PER_S", value_parser = parse_req_per_s)]
    pub rate: Option<f64>,

    /// The request mix: a name (seed, realistic, transforms, outbound, compute, io, calibrate, calibrate-threads), `path=weight` pairs,
    /// or @file.json (see the workload's --help).
    #[arg(long, default_value = "seed")]
    pub mix: String,

    /// The SDK's sampling rate, 0.0 to 1.0.
    #[arg(long, value_name = "RATE", default_value_t = 1.0, value_parser = parse_rate)]
    pub sampling_rate: f64,

    /// A YAML file with a `transforms.http` list for the SDK (as in .tusk/config.yaml).
    #[arg(long, value_name = "FILE")]
    pub transforms: Option<PathBuf>,

    /// CPU sampling frequency (cpu mode), 1 to 250 Hz.
    #[arg(long, default_value_t = 99, value_parser = parse_hz)]
    pub hz: u32,

    /// Rows per table.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// The cumulative table lists every function, not only the workspace's own and the SDK's callees.
    #[arg(long)]
    pub all_functions: bool,

    /// Self time stays on inlined `core`/`alloc`/`std` leaves instead of moving to their caller.
    #[arg(long)]
    pub raw_leaves: bool,

    /// cpu: fail (exit 1) unless `/api/calibrate`'s three functions show their 60/30/10 self-time ratio within
    /// ±3 points: the profiler's truth test. Run it with `--mix calibrate=1`.
    #[arg(long)]
    pub check_calibration: bool,

    /// cpu: record the same run with `perf record -e cpu-clock --call-graph dwarf` too, for kernel frames
    /// (perf.folded, flamegraph-kernel.svg) and an independent check of the sampler: perf's split between threads
    /// and its top self functions (kernel time charged to the first user-space frame) beside the sampler's. Needs
    /// Debian's linux-perf and perf events with kernel access (root, CAP_PERFMON or kernel.perf_event_paranoid ≤ 1).
    #[arg(long)]
    pub kernel: bool,

    /// Save the run as results/NAME (refused if it exists) [default: <mode>-YYYYmmdd-HHMMSS].
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    pub save: Option<String>,
}

/// What `cargo xtask profile` does: one of the three modes, or `attach`, a cpu profile of a running app's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileMode {
    /// CPU samples (drift-sdk's sampler: a CPU-time timer per thread) of the demo app under the workload.
    Cpu,
    /// Heap allocations (dhat).
    Mem,
    /// The SDK's stage spans (tracing-chrome).
    Timeline,
    /// CPU samples of a running app, for a window, through its `/debug/pprof/profile` endpoint (--url).
    Attach,
}

impl ProfileMode {
    /// The mode of the run this writes: `attach` writes a cpu run, so that `compare` takes it with any other.
    pub fn run_mode(self) -> Mode {
        match self {
            ProfileMode::Cpu | ProfileMode::Attach => Mode::Cpu,
            ProfileMode::Mem => Mode::Mem,
            ProfileMode::Timeline => Mode::Timeline,
        }
    }
}

/// A run's mode, in `summary.json`: which profiler feature the demo app is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CPU samples (drift-sdk's sampler, SIGPROF per thread).
    Cpu,
    /// Heap allocations (dhat).
    Mem,
    /// The SDK's stage spans (tracing-chrome).
    Timeline,
}

impl Mode {
    /// The demo app's cargo feature for this mode.
    pub fn feature(self) -> &'static str {
        match self {
            Mode::Cpu => "pprof",
            Mode::Mem => "dhat-heap",
            Mode::Timeline => "timeline",
        }
    }

    /// The mode's name on the command line and in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cpu => "cpu",
            Mode::Mem => "mem",
            Mode::Timeline => "timeline",
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: use ms, s or m")),
    };
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("{text:?} is outside 1ms..=1h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_req_per_s(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("expected requests per second above 0, e.g. 20000".into()),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a rate from 0.0 to 1.0")),
    }
}

fn parse_hz(text: &str) -> Result<u32, String> {
    let hz: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of Hz"))?;
    if hz == 0 || hz > MAX_HZ {
        return Err(format!(
            "{hz} Hz is refused: pprof samples through SIGPROF, which fires at most once per kernel tick (250 Hz \
             here), so above ~100 Hz it drops samples erratically (measured: 199 Hz kept 66 %, 997 Hz 13-25 %). \
             Use 99 Hz and a longer --duration for more samples"
        ));
    }
    Ok(hz)
}

fn parse_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && !text.starts_with('.')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?}: use letters, digits, '-', '_' and '.'"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Xtask::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<ProfileArgs, String> {
        let argv = ["cargo xtask", "profile"].into_iter().chain(args.iter().copied());
        match Xtask::try_parse_from(argv) {
            Ok(Xtask {
                command: Command::Profile(p),
            }) => Ok(p),
            Ok(other) => Err(format!("not a profile command: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn profile_flags() {
        let p = parse(&["cpu", "--duration", "5s", "--concurrency", "8", "--save", "before"]).unwrap();
        assert_eq!(
            (p.mode, p.duration, p.concurrency),
            (ProfileMode::Cpu, Some(Duration::from_secs(5)), Some(8))
        );
        assert_eq!((p.hz, p.top, p.save.as_deref()), (99, 20, Some("before")));
        assert_eq!(
            parse(&["mem", "--duration", "500ms"]).unwrap().duration,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn attach_flags() {
        let p = parse(&[
            "attach",
            "--url",
            "http://127.0.0.1:8080",
            "--seconds",
            "2",
            "--save",
            "a",
        ])
        .unwrap();
        assert_eq!(
            (p.mode, p.url.as_deref(), p.seconds, p.save.as_deref()),
            (ProfileMode::Attach, Some("http://127.0.0.1:8080"), Some(2), Some("a"))
        );
        assert_eq!(p.mode.run_mode(), Mode::Cpu);
        // Options with defaults are not "given": they do not conflict with --url.
        assert_eq!((p.hz, p.mix.as_str(), p.sampling_rate), (99, "seed", 1.0));
    }

    #[test]
    fn refusals_say_why() {
        for (args, needle) in [
            (&["gpu"][..], "invalid value 'gpu'"),
            (&["cpu", "--hz", "1000"][..], "kernel tick"),
            (
                &["cpu", "--duration", "10", "--iterations", "5"][..],
                "cannot be used with",
            ),
            (&["cpu", "--duration", "soon"][..], "not a duration"),
            (&["cpu", "--save", "../x"][..], "letters, digits"),
            (&["cpu", "--sampling-rate", "2"][..], "rate from 0.0 to 1.0"),
            (&["cpu", "--concurrency", "0"][..], "concurrency"),
            (&["attach"][..], "--url <URL>"),
            (
                &["attach", "--url", "http://127.0.0.1:1", "--duration", "5s"][..],
                "cannot be used with",
            ),
            (
                &["attach", "--url", "http://127.0.0.1:1", "--mix", "seed"][..],
                "cannot be used with",
            ),
            (
                &["attach", "--url", "http://127.0.0.1:1", "--hz", "99"][..],
                "cannot be used with",
            ),
            (
                &["attach", "--url", "http://127.0.0.1:1", "--seconds", "301"][..],
                "301",
            ),
            (&["cpu", "--seconds", "5"][..], "--url <URL>"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
