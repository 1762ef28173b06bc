//! The results of a run: the JSON document (`--json`, read by `cargo xtask`) and the human summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The version of the JSON document's shape; bump it when a field changes meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

/// The JSON document of one run. Field names are a contract with `cargo xtask`.
///
/// `requests` = `ok` + `failed`; a request fails when its answer is not 2xx or its connection breaks (or it times
/// out). Latencies cover every request that got a whole answer, whatever its status, from sending to the last byte of
/// the body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// `--url` as given.
    pub url: String,
    /// `--mix` as given (`seed`, a pair list, or `@file`).
    pub mix: String,
    /// Connections.
    pub concurrency: u32,
    /// `--rate`: requests per second asked for, when the run was paced (absent in reports from before it existed).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Paced requests sent after their due time because every connection was busy; their latency runs from the due
    /// time. Always 0 when unpaced.
    #[serde(default)]
    pub late: u64,
    /// Unmeasured warm-up requests sent first.
    pub warmup: u64,
    /// The requested number of requests, for an iteration run.
    pub iterations: Option<u64>,
    /// The requested length in seconds, for a duration run.
    pub duration_s: Option<f64>,
    /// Measured requests sent.
    pub requests: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests answered otherwise or lost with their connection.
    pub failed: u64,
    /// `failed / requests` (0 when nothing was sent).
    pub error_rate: f64,
    /// Failures by cause.
    pub errors: Errors,
    /// Wall time of the measured run.
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub req_per_s: f64,
    /// All answered requests.
    pub latency_us: Latency,
    /// One row per mix entry, in the mix's order.
    pub endpoints: Vec<EndpointReport>,
    /// When the measured run started.
    pub started_at_unix_ms: u64,
}

/// Failures by cause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Non-2xx answers by status code (`"500": 3`).
    pub status: BTreeMap<String, u64>,
    /// Requests lost to a broken or refused connection, or a timeout.
    pub connection: u64,
}

/// Latency statistics in microseconds (HDR histogram, 3 significant digits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// The statistics of `histogram`; all zero if it is empty.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            min: histogram.min(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// One mix entry's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// Request method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Answered requests.
    pub latency_us: Latency,
}

/// What the human summary adds to the JSON document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// Connections opened, including reconnections.
    pub connections_opened: u64,
    /// Warm-up requests that failed.
    pub warmup_failed: u64,
    /// The last connection error's message, if any.
    pub last_connection_error: Option<String>,
}

impl Report {
    /// Writes the pretty-printed JSON document to `path`, creating its folder.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self).context("encoding the report")?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Why the run failed, if more than `max_rate` of its requests failed.
    pub fn check_error_rate(&self, max_rate: f64) -> Result<(), String> {
        if self.error_rate <= max_rate {
            return Ok(());
        }
        Err(format!(
            "{} of {} requests failed ({}: {}), more than --max-error-rate {}",
            self.failed,
            self.requests,
            percent(self.error_rate),
            self.error_causes(),
            percent(max_rate)
        ))
    }

    /// "HTTP 500 × 3, connection × 1", or "none".
    fn error_causes(&self) -> String {
        let mut causes: Vec<String> = self
            .errors
            .status
            .iter()
            .map(|(code, n)| format!("HTTP {code} × {n}"))
            .collect();
        if self.errors.connection > 0 {
            causes.push(format!("connection × {}", self.errors.connection));
        }
        if causes.is_empty() {
            "none".into()
        } else {
            causes.join(", ")
        }
    }

    /// The summary printed to stdout.
    pub fn render(&self, notes: &Notes) -> String {
        let mut out = String::new();
        let what = match (self.iterations, self.duration_s) {
            (_, Some(seconds)) => format!("for {seconds} s"),
            (Some(n), None) => format!("{n} requests"),
            (None, None) => String::new(),
        };
        let plural = if self.concurrency == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "workload: {} mix → {}, {} connection{plural}, {what} (+{} warm-up)",
            self.mix, self.url, self.concurrency, self.warmup
        );
        let _ = writeln!(
            out,
            "requests   {} in {:.2} s = {:.1} req/s",
            self.requests, self.elapsed_s, self.req_per_s
        );
        if let Some(rate) = self.rate {
            let late_share = if self.requests == 0 {
                0.0
            } else {
                self.late as f64 / self.requests as f64
            };
            let _ = writeln!(
                out,
                "paced      {rate:.1} req/s asked; {} late ({}), timed from when they were due{}",
                self.late,
                percent(late_share),
                if late_share > 0.01 {
                    ": the server (or --concurrency) did not keep up"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            out,
            "failed     {} ({}): {}",
            self.failed,
            percent(self.error_rate),
            self.error_causes()
        );
        if let Some(error) = &notes.last_connection_error {
            let _ = writeln!(out, "           last connection error: {error}");
        }
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "latency    min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            micros(l.min),
            micros(l.p50),
            micros(l.p90),
            micros(l.p99),
            micros(l.p999),
            micros(l.max),
            micros(l.mean.round() as u64)
        );
        let reconnects = notes.connections_opened.saturating_sub(u64::from(self.concurrency));
        let _ = write!(
            out,
            "connections {} opened ({reconnects} reconnections)",
            notes.connections_opened
        );
        if notes.warmup_failed > 0 {
            let _ = write!(out, "; {} warm-up requests failed", notes.warmup_failed);
        }
        out.push('\n');

        let width = self
            .endpoints
            .iter()
            .map(|e| e.method.len() + 1 + e.path.len())
            .max()
            .unwrap_or(0)
            .max(8);
        let _ = writeln!(
            out,
            "\n{:width$}  {:>8}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}",
            "endpoint", "requests", "failed", "p50", "p90", "p99", "max"
        );
        for e in &self.endpoints {
            let l = &e.latency_us;
            let _ = writeln!(
                out,
                "{:width$}  {:>8}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}",
                format!("{} {}", e.method, e.path),
                e.requests,
                e.failed,
                micros(l.p50),
                micros(l.p90),
                micros(l.p99),
                micros(l.max)
            );
        }
        out
    }
}

/// A latency in µs as people read it: `850 µs`, `1.25 ms`, `12.5 ms`, `250 ms`, `1.50 s`.
pub fn micros(us: u64) -> String {
    let three_digits = |value: f64, unit: &str| match value {
        v if v < 10.0 => format!("{v:.2} {unit}"),
        v if v < 100.0 => format!("{v:.1} {unit}"),
        v => format!("{v:.0} {unit}"),
    };
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => three_digits(us as f64 / 1e3, "ms"),
        _ => three_digits(us as f64 / 1e6, "s"),
    }
}

fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(actual: &str, expected: &str) {
        let expected = expected.strip_prefix('\n').unwrap_or(expected);
        assert!(
            actual == expected,
            "\n--- actual ---\n{actual}\n--- expected ---\n{expected}"
        );
    }

    fn latency(base: u64) -> Latency {
        Latency {
            min: base,
            mean: base as f64 * 1.5,
            p50: base * 2,
            p90: base * 3,
            p99: base * 4,
            p999: base * 5,
            max: base * 20,
        }
    }

    fn sample() -> Report {
        Report {
            version: REPORT_VERSION,
            url: "http://127.0.0.1:8080".into(),
            mix: "seed".into(),
            concurrency: 4,
            rate: None,
            late: 0,
            warmup: 50,
            iterations: Some(500),
            duration_s: None,
            requests: 500,
            ok: 497,
            failed: 3,
            error_rate: 0.006,
            errors: Errors {
                status: BTreeMap::from([("500".into(), 2)]),
                connection: 1,
            },
            elapsed_s: 0.25,
            req_per_s: 2000.0,
            latency_us: latency(150),
            endpoints: vec![
                EndpointReport {
                    method: "GET".into(),
                    path: "/api/simple".into(),
                    requests: 167,
                    failed: 0,
                    latency_us: latency(100),
                },
                EndpointReport {
                    method: "POST".into(),
                    path: "/api/auth/login".into(),
                    requests: 166,
                    failed: 3,
                    latency_us: latency(600),
                },
            ],
            started_at_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn the_json_document_has_the_agreed_shape() {
        let json = serde_json::to_value(sample()).unwrap();
        // Sorted: the workspace's serde_json may keep insertion order (demo-app enables `preserve_order`).
        let keys = |v: &serde_json::Value| {
            let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys.join(",")
        };
        check(
            &keys(&json),
            "concurrency,duration_s,elapsed_s,endpoints,error_rate,errors,failed,iterations,late,latency_us,mix,ok,\
             rate,req_per_s,requests,started_at_unix_ms,url,version,warmup",
        );
        check(&keys(&json["errors"]), "connection,status");
        check(&keys(&json["latency_us"]), "max,mean,min,p50,p90,p99,p999");
        check(&keys(&json["endpoints"][0]), "failed,latency_us,method,path,requests");
        assert_eq!(
            json["errors"],
            serde_json::json!({"connection": 1, "status": {"500": 2}})
        );
        assert_eq!(json["duration_s"], serde_json::Value::Null);
        assert_eq!(json["iterations"], 500);
        assert_eq!(json["version"], 1);
        let mut older = json.clone();
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
        // A report written before `rate` and `late` existed still reads.
        older.as_object_mut().unwrap().retain(|k, _| k != "rate" && k != "late");
        assert_eq!(serde_json::from_value::<Report>(older).unwrap(), sample());
    }

    #[test]
    fn the_summary_reads_well() {
        let notes = Notes {
            connections_opened: 5,
            warmup_failed: 0,
            last_connection_error: Some("reset".into()),
        };
        check(
            &sample().render(&notes),
            "
workload: seed mix → http://127.0.0.1:8080, 4 connections, 500 requests (+50 warm-up)
requests   500 in 0.25 s = 2000.0 req/s
failed     3 (0.60 %): HTTP 500 × 2, connection × 1
           last connection error: reset
latency    min 150 µs  p50 300 µs  p90 450 µs  p99 600 µs  p99.9 750 µs  max 3.00 ms  (mean 225 µs)
connections 5 opened (1 reconnections)

endpoint              requests  failed        p50        p90        p99        max
GET /api/simple            167       0     200 µs     300 µs     400 µs    2.00 ms
POST /api/auth/login       166       3    1.20 ms    1.80 ms    2.40 ms    12.0 ms
",
        );
        let mut duration = sample();
        (duration.iterations, duration.duration_s, duration.concurrency) = (None, Some(1.5), 1);
        let first = duration.render(&Notes::default()).lines().next().unwrap().to_owned();
        check(
            &first,
            "workload: seed mix → http://127.0.0.1:8080, 1 connection, for 1.5 s (+50 warm-up)",
        );
        let mut paced = sample();
        (paced.rate, paced.late) = (Some(2000.0), 25);
        let line = paced.render(&Notes::default()).lines().nth(2).unwrap().to_owned();
        check(
            &line,
            "paced      2000.0 req/s asked; 25 late (5.00 %), timed from when they were due: the server (or --concurrency) did not keep up",
        );
    }

    #[test]
    fn error_rate_above_the_limit_says_why() {
        let report = sample();
        assert_eq!(report.check_error_rate(0.01), Ok(()));
        assert_eq!(report.check_error_rate(0.006), Ok(()));
        check(
            &report.check_error_rate(0.005).unwrap_err(),
            "3 of 500 requests failed (0.60 %: HTTP 500 × 2, connection × 1), more than --max-error-rate 0.50 %",
        );
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        h.record(250_000).unwrap();
        let l = Latency::from_histogram(&h);
        assert_eq!((l.min, l.p50, l.p90, l.p99, l.p999), (1, 501, 901, 991, 1000));
        assert!((l.max as f64 - 250_000.0).abs() / 250_000.0 < 0.001, "{}", l.max);
        assert!((l.mean - (500_500.0 + 250_000.0) / 1001.0).abs() < 1.0, "{}", l.mean);
        assert_eq!(Latency::from_histogram(&Histogram::new(3).unwrap()), Latency::default());
    }

    #[test]
    fn micros_are_readable() {
        let cases = [
            (0, "0 µs"),
            (999, "999 µs"),
            (1_000, "1.00 ms"),
            (12_345, "12.3 ms"),
            (250_000, "250 ms"),
        ];
        for (us, text) in cases {
            assert_eq!(micros(us), text);
        }
        assert_eq!(micros(1_500_000), "1.50 s");
    }

    #[test]
    fn the_json_file_is_written_with_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/result.json");
        sample().write_json(&path).unwrap();
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, sample());
    }
}
