//! The command line: every flag, its environment variable and its default, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tracing_subscriber::filter::LevelFilter;

/// The highest sampling frequency `--hz` accepts.
pub const MAX_HZ: i32 = 250;

/// The demo app's flags.
#[derive(Debug, Parser)]
#[command(
    name = "demo-app",
    version,
    about = "The seed test server's endpoints behind drift-sdk, with an optional in-process profiler.",
    after_help = "On start it prints one JSON line on stdout with the bound address (\"event\":\"listening\"); on \
                  SIGINT or SIGTERM it stops accepting, finishes in-flight requests, shuts the SDK down, writes the \
                  profiler's files and prints a JSON line with \"event\":\"stopped\"."
)]
pub struct Flags {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "DEMO_APP_LISTEN", default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// SDK mode [default: TUSK_DRIFT_MODE, then .tusk/config.yaml, then disabled].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,

    /// Fraction of inbound requests to record, 0.0 to 1.0 [default: TUSK_SAMPLING_RATE, then the config file, then
    /// 1.0].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub sampling_rate: Option<f64>,

    /// A YAML file with a `transforms.http` list (the shape of `.tusk/config.yaml`); replaces the config file's rules.
    #[arg(long, value_name = "FILE")]
    pub transforms: Option<PathBuf>,

    /// Where the SDK writes trace files [default: the config file's, then .tusk/traces].
    #[arg(long, value_name = "DIR")]
    pub traces_dir: Option<PathBuf>,

    /// Build each span's trace-file line and throw it away instead of writing trace files: the SDK's cost without
    /// file I/O (for the benchmark).
    #[arg(long, conflicts_with = "traces_dir")]
    pub discard_spans: bool,

    /// Records per export batch: the export thread wakes when this many are queued [default: the SDK's, 512].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: Option<u32>,

    /// The SDK export thread's nice value (Linux), -20 to 19 [default: the SDK's, 0].
    #[arg(long, value_name = "NICE", allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub export_thread_nice: Option<i32>,

    /// Where the profiler's files and run.json (requests, CPU seconds, SDK counters) are written; created if
    /// missing [default: the current directory in a profiler build, else nothing is written].
    #[arg(long, env = "DEMO_APP_PROFILE_DIR", value_name = "DIR")]
    pub profile_dir: Option<PathBuf>,

    /// CPU sampling frequency of the pprof build, per second of each thread's CPU, 1 to 250 Hz. A thread's CPU-time
    /// timer fires at most once per kernel tick (250 Hz here): near that rate samples merge into overruns.
    #[arg(long, default_value_t = 99, value_name = "HZ", value_parser = parse_hz)]
    pub hz: i32,

    /// Serve `/debug/pprof/profile?seconds=N` to loopback clients (pprof build only). The whole-run profile is then
    /// off: a process holds one CPU profiler at a time.
    #[arg(long)]
    pub pprof_endpoint: bool,

    /// How long shutdown waits for in-flight requests before it closes them.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Lowest level of log lines on stderr (off, error, warn, info, debug, trace).
    #[arg(long, env = "DEMO_APP_LOG", default_value = "warn", value_name = "LEVEL")]
    pub log_level: LevelFilter,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Record inbound and outbound HTTP spans.
    Record,
    /// Pass everything through.
    Disabled,
}

impl From<ModeArg> for drift_sdk::Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Record => drift_sdk::Mode::Record,
            ModeArg::Disabled => drift_sdk::Mode::Disabled,
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a rate from 0.0 to 1.0")),
    }
}

fn parse_hz(text: &str) -> Result<i32, String> {
    let hz: i32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of Hz"))?;
    if !(1..=MAX_HZ).contains(&hz) {
        return Err(format!(
            "{hz} Hz is outside 1..={MAX_HZ}: SIGPROF fires at most once per kernel tick, so higher rates drop \
             samples erratically; use 99 Hz and a longer run for more samples"
        ));
    }
    Ok(hz)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Flags::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let flags = Flags::try_parse_from(["demo-app"]).unwrap();
        assert_eq!(flags.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(flags.hz, 99);
        assert_eq!(flags.mode, None);
        assert_eq!(flags.drain_timeout, Duration::from_secs(10));
        assert!(!flags.pprof_endpoint);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (args, needle) in [
            (&["--hz", "1000"][..], "kernel tick"),
            (&["--hz", "0"][..], "outside"),
            (&["--sampling-rate", "1.5"][..], "rate from 0.0 to 1.0"),
            (&["--listen", "nowhere"][..], "invalid socket address"),
            (&["--mode", "replay"][..], "record"),
        ] {
            let err = Flags::try_parse_from(std::iter::once("demo-app").chain(args.iter().copied())).unwrap_err();
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }
}
