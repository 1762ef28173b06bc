//! The command line of `workload`, parsed straight into domain values ([`Target`], [`Mix`], [`Stop`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure};
use clap::Parser;
use http::{HeaderValue, Uri};

use crate::mix::Mix;

/// Drives a running demo app with a mix of requests over keep-alive connections and reports throughput, latency
/// percentiles and errors.
#[derive(Debug, Parser)]
#[command(name = "workload", version, after_help = AFTER_HELP)]
pub struct Args {
    /// The demo app's base URL, e.g. http://127.0.0.1:8080 (plain HTTP/1.1).
    #[arg(long, env = "WORKLOAD_URL", value_parser = parse_target)]
    pub url: Target,

    /// What to send: a named mix (seed, realistic, transforms, outbound, compute, io, calibrate, calibrate-threads), a list of
    /// `[METHOD ]/path=weight` pairs ("/api/simple=3,POST /api/echo=1"), or @file.json.
    #[arg(long, default_value = "seed", value_parser = parse_mix)]
    pub mix: Mix,

    /// Measured requests to send [default: 500].
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub iterations: Option<u64>,

    /// Send for this long instead of a number of requests, e.g. 10s or 1m30s.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Workers, each with one keep-alive connection.
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Send at this fixed rate, in requests per second over all connections, instead of as fast as the server
    /// answers (no limit). A request whose connection is still busy at its due time goes out late, is counted as late,
    /// and its latency runs from its due time, so a stalling server shows in the percentiles. The client's timer ticks
    /// once a millisecond: give each connection 250 req/s or less (--concurrency ≥ rate / 250).
    #[arg(long, value_name = "REQ_PER_S", value_parser = parse_req_per_s)]
    pub rate: Option<f64>,

    /// Requests sent before the measured run and left out of the results (0 to skip).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub warmup: u64,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Exit with code 1 when more than this fraction of the measured requests fail.
    #[arg(long, value_name = "RATE", default_value_t = 0.01, value_parser = parse_rate)]
    pub max_error_rate: f64,

    /// Use a multi-thread runtime with this many threads (default: one thread, so the client takes as little CPU
    /// from the server as it can).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Give up on a request (and its connection) after this long; counted as a connection error.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// No progress bar and no summary on stdout (the JSON file and errors are still written).
    #[arg(long, short)]
    pub quiet: bool,
}

const AFTER_HELP: &str = "\
Exit status: 0 on success; 1 if the URL is unreachable or more than --max-error-rate of the requests failed (the \
JSON is written first); 2 for bad arguments.

Mix file: a JSON array of {\"method\":\"POST\",\"path\":\"/api/echo\",\"weight\":1,\
\"body\":\"{\\\"iteration\\\":{i}}\",\"headers\":{\"x\":\"y\"}}; only path is required, {i} is the request index.";

/// Requests sent by [`Stop::Iterations`] when neither `--iterations` nor `--duration` is given: the seed's 500.
pub const DEFAULT_ITERATIONS: u64 = 500;

impl Args {
    /// What ends the measured run.
    pub fn stop(&self) -> Stop {
        match (self.duration, self.iterations) {
            (Some(duration), _) => Stop::Duration(duration),
            (None, n) => Stop::Iterations(n.unwrap_or(DEFAULT_ITERATIONS)),
        }
    }

    /// The run these arguments describe.
    pub fn plan(&self) -> Plan {
        Plan {
            target: self.url.clone(),
            mix: self.mix.clone(),
            stop: self.stop(),
            concurrency: self.concurrency,
            rate: self.rate,
            warmup: self.warmup,
            threads: self.threads,
            timeout: self.timeout,
            progress: !self.quiet,
        }
    }
}

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where to send.
    pub target: Target,
    /// What to send.
    pub mix: Mix,
    /// When the measured run ends.
    pub stop: Stop,
    /// Workers, one connection each.
    pub concurrency: u32,
    /// `Some(r)`: the measured run sends `r` requests per second in all (the warm-up is never paced).
    pub rate: Option<f64>,
    /// Unmeasured requests before the run.
    pub warmup: u64,
    /// `None`: a current-thread runtime; `Some(n)`: a multi-thread runtime with `n` workers.
    pub threads: Option<u32>,
    /// Per-request (and connect) time limit.
    pub timeout: Duration,
    /// Show a progress bar on stderr (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many requests.
    Iterations(u64),
    /// When this much time has passed; requests in flight then are finished and counted.
    Duration(Duration),
}

/// The demo app's address, from `--url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    url: String,
    host: String,
    port: u16,
    authority: HeaderValue,
    base_path: String,
}

impl Target {
    /// Parses `http://host[:port][/base]`.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let url = url.trim();
        let uri: Uri = url.parse().map_err(|err| anyhow!("{url:?} is not a URL ({err})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!("{url:?}: https is not supported, the demo app serves plain HTTP"),
            Some(other) => bail!("{url:?}: unsupported scheme {other:?}, expected http://"),
            None => bail!("{url:?} has no scheme: expected a URL such as http://127.0.0.1:8080"),
        }
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            bail!("{url:?} has no host: expected a URL such as http://127.0.0.1:8080");
        };
        ensure!(
            uri.query().is_none(),
            "{url:?}: the base URL cannot have a query string"
        );
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Target {
            url: url.to_owned(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: uri.port_u16().unwrap_or(80),
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|_| anyhow!("{url:?}: bad host {authority:?}"))?,
            base_path,
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Host name or IP address to connect to (no brackets around IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port (80 if the URL gives none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value.
    pub fn authority(&self) -> &HeaderValue {
        &self.authority
    }

    /// The URL's path without its trailing `/`, prefixed to every request path (usually empty).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).map_err(|err| format!("{err:#}"))
}

fn parse_mix(text: &str) -> Result<Mix, String> {
    Mix::parse(text).map_err(|err| format!("{err:#}"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| format!("{err} (expected e.g. 10s, 500ms, 1m)"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

fn parse_req_per_s(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 => Ok(rate),
        _ => Err("expected requests per second above 0 (at most 10,000,000), e.g. 20000".into()),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err("expected a fraction from 0 to 1, e.g. 0.01 for 1 %".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workload").chain(args.iter().copied()))
    }

    #[test]
    fn verify_cli() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_seed_run() {
        let args = parse(&["--url", "http://127.0.0.1:8080"]).unwrap();
        let plan = args.plan();
        assert_eq!(plan.mix.name(), "seed");
        assert_eq!(plan.stop, Stop::Iterations(500));
        assert_eq!(
            (plan.concurrency, plan.warmup, plan.threads, plan.progress),
            (1, 50, None, true)
        );
        assert_eq!(plan.rate, None, "unpaced unless asked");
        assert_eq!(
            parse(&["--url", "http://h", "--rate", "2500.5"]).unwrap().plan().rate,
            Some(2500.5)
        );
        assert_eq!(args.max_error_rate, 0.01);
        assert_eq!(plan.target.host(), "127.0.0.1");
        assert_eq!(plan.target.port(), 8080);
        assert_eq!(plan.target.authority(), "127.0.0.1:8080");
        assert_eq!(plan.target.base_path(), "");
    }

    #[test]
    fn duration_and_iterations_exclude_each_other() {
        let args = parse(&["--url", "http://h", "--duration", "1m30s"]).unwrap();
        assert_eq!(args.stop(), Stop::Duration(Duration::from_secs(90)));
        let err = parse(&["--url", "http://h", "--duration", "1s", "--iterations", "5"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--url", "127.0.0.1:80"][..],
            &["--url", "https://h"],
            &["--url", "ftp://h"],
            &["--url", "http://h?x=1"],
            &["--url", "http://h", "--mix", "nope"],
            &["--url", "http://h", "--concurrency", "0"],
            &["--url", "http://h", "--duration", "soon"],
            &["--url", "http://h", "--duration", "0s"],
            &["--url", "http://h", "--max-error-rate", "2"],
            &["--url", "http://h", "--threads", "0"],
            &["--url", "http://h", "--rate", "0"],
            &["--url", "http://h", "--rate", "-5"],
            &["--url", "http://h", "--rate", "NaN"],
            &["--url", "http://h", "--rate", "fast"],
            &["--mix", "seed"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let err = parse(&["--url", "http://h", "--mix", "api/echo=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be a path starting with \"/\""), "{err}");
        let err = parse(&["--url", "localhost:8080"]).unwrap_err().to_string();
        assert!(err.contains("expected a URL such as http://127.0.0.1:8080"), "{err}");
    }

    #[test]
    fn targets_keep_a_base_path_and_ipv6_hosts() {
        let t = Target::parse("http://[::1]:9000/prefix/").unwrap();
        assert_eq!((t.host(), t.port(), t.base_path()), ("::1", 9000, "/prefix"));
        assert_eq!(t.authority(), "[::1]:9000");
        assert_eq!(Target::parse("http://example").unwrap().port(), 80);
    }
}
