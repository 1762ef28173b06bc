//! `cargo xtask profile attach --url http://127.0.0.1:PORT [--seconds N] [--save NAME]`: a cpu profile of a running
//! app's window, through its `/debug/pprof/profile` endpoint (drift-sdk's `pprof_endpoint`).
//!
//! Nothing is built or driven: one `GET /debug/pprof/profile?seconds=N&format=folded` (raw HTTP/1.1, see
//! `collect::http_get`) answers a JSON line of facts (frequency, samples, the process's CPU seconds, the requests it
//! served and, when the app gives the endpoint its SDK, the SDK's counters, all over the window) and the folded
//! stacks. They are written as `cpu.folded` and `pprof.json`, the files a
//! `profile cpu` run's app writes, and reported by the same code: tables, headline, flame graph, `summary.json` (mode
//! cpu, so `compare` takes an attached run with any other) and `report.html`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use crate::Failure;
use crate::collect::{HttpResponse, http_get};
use crate::flags::{Mode, ProfileArgs};
use crate::profile::{ProfileRequest, git_commit};
use crate::summary::{Durations, Settings, Summary, WorkloadFacts};

/// The endpoint's path (drift-sdk's `pprof_endpoint::PATH`; xtask depends on no workspace crate).
pub const ENDPOINT: &str = "/debug/pprof/profile";
/// The window when `--seconds` is not given: the same 10 s as `profile cpu`'s workload.
pub const DEFAULT_SECONDS: u64 = 10;
/// How long the app may take after the window to build its report (symbolising a binary with debug info takes a
/// few seconds the first time).
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// The running app to fetch a window from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// `http://HOST:PORT`, as given without a trailing slash or the endpoint's path.
    pub url: String,
    /// `HOST:PORT`.
    pub addr: String,
    pub seconds: u64,
}

impl Attach {
    /// Reads `--url`: `http://HOST:PORT`, with or without a trailing `/` or the endpoint's path.
    pub fn new(url: &str, seconds: u64) -> anyhow::Result<Attach> {
        let usage = || format!("--url {url:?}: give the app's address as http://127.0.0.1:PORT");
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{} (plain http: the endpoint answers loopback clients only)", usage());
        };
        let addr = rest.trim_end_matches('/');
        let addr = addr.strip_suffix(ENDPOINT).unwrap_or(addr);
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok || addr.contains(['/', '?', '#', '@']) {
            bail!("{}", usage());
        }
        Ok(Attach {
            url: format!("http://{addr}"),
            addr: addr.to_owned(),
            seconds,
        })
    }

    /// The request target of the window.
    fn target(&self) -> String {
        format!("{ENDPOINT}?seconds={}&format=folded", self.seconds)
    }
}

/// A fetched window: the endpoint's JSON line and the folded stacks after it.
#[derive(Debug)]
pub struct Window {
    pub facts: Value,
    pub folded: String,
}

impl Window {
    /// Splits the endpoint's `format=folded` answer.
    pub fn parse(body: &[u8]) -> anyhow::Result<Window> {
        let text = std::str::from_utf8(body).context("the folded answer is not UTF-8")?;
        let (line, folded) = text.split_once('\n').unwrap_or((text, ""));
        let facts: Value = serde_json::from_str(line)
            .with_context(|| format!("the answer's first line is not the JSON facts line: {:.200}", line))?;
        for key in ["frequency", "samples"] {
            if facts[key].as_u64().is_none() {
                bail!("the facts line has no {key}: {line}");
            }
        }
        if facts["cpu_seconds"].as_f64().is_none() {
            bail!(
                "the app reports no CPU seconds for the window (its endpoint measures them on Linux only), so the \
                 capture ratio and the time per request cannot be computed: {line}"
            );
        }
        Ok(Window {
            facts,
            folded: folded.to_owned(),
        })
    }

    /// The requests the app served in the window, when it counts them.
    pub fn requests(&self) -> Option<u64> {
        self.facts["requests"].as_u64()
    }

    /// `pprof.json`, as the demo app's whole-run profile writes it (requests 0 when the app does not count them: no
    /// time per request), plus where the window came from.
    pub fn pprof_json(&self, attach: &Attach) -> Value {
        json!({
            "frequency": self.facts["frequency"],
            "samples": self.facts["samples"],
            "cpu_seconds": self.facts["cpu_seconds"],
            "requests": self.requests().unwrap_or(0),
            "seconds": self.facts["seconds"],
            "wall_seconds": self.facts["wall_seconds"],
            "url": attach.url,
            "sdk": self.facts["sdk"],
            "threads": self.facts["threads"],
        })
    }
}

impl ProfileArgs {
    /// `profile attach`: the window and the report's options; the run's name is `attach-YYYYmmdd-HHMMSS` or --save.
    pub(crate) fn into_attach_request(self, root: &Path) -> anyhow::Result<ProfileRequest> {
        let url = self
            .url
            .as_deref()
            .context("profile attach needs --url http://127.0.0.1:PORT")?;
        let attach = Attach::new(url, self.seconds.unwrap_or(DEFAULT_SECONDS))?;
        let settings = Settings {
            duration_s: Some(attach.seconds as f64),
            iterations: None,
            concurrency: 0,
            discard_spans: false,
            rate: None,
            mix: "attached".to_owned(),
            sampling_rate: None,
            transforms: None,
            hz: None,
            build_profile: "unknown (attached)".to_owned(),
            feature: "pprof".to_owned(),
            kernel: false,
            attached: Some(attach.url.clone()),
        };
        self.request(root, "attach", Mode::Cpu, settings, Some(attach))
    }
}

impl ProfileRequest {
    /// Fetches the window, writes `cpu.folded` and `pprof.json`, and reports them as `profile cpu` does.
    pub(crate) fn run_attach(&self, sh: &Shell, root: &Path, attach: &Attach) -> Result<(), Failure> {
        let relative = self.dir.strip_prefix(root).unwrap_or(&self.dir).display().to_string();
        eprintln!(
            "[1/2] profiling {} for {} s through {ENDPOINT}; files go to {relative}",
            attach.url, attach.seconds
        );
        let fetch_started = Instant::now();
        let response = fetch(attach).context("step 1/2 (fetch the window) failed")?;
        let run_s = fetch_started.elapsed().as_secs_f64();
        let window = Window::parse(&response.body).context("step 1/2 (fetch the window) failed")?;

        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let pprof = window.pprof_json(attach);
        write(&self.dir.join("cpu.folded"), window.folded.as_bytes())?;
        let text = serde_json::to_string_pretty(&pprof).context("serialising pprof.json")?;
        write(&self.dir.join("pprof.json"), (text + "\n").as_bytes())?;
        let requests = window.requests();
        let wall_s = window.facts["wall_seconds"].as_f64().unwrap_or(attach.seconds as f64);
        eprintln!(
            "[2/2] reading the window: {} samples at {} Hz, {:.2} CPU seconds, {}",
            window.facts["samples"],
            window.facts["frequency"],
            window.facts["cpu_seconds"].as_f64().unwrap_or(0.0),
            requests.map_or_else(
                || "requests not counted by the app (no time per request)".to_owned(),
                |n| format!("{n} requests")
            ),
        );

        let report_started = Instant::now();
        let mut settings = self.settings.clone();
        settings.hz = window.facts["frequency"].as_u64().map(|hz| hz as u32);
        let summary = Summary {
            version: crate::summary::SUMMARY_VERSION,
            name: self.name.clone(),
            mode: Mode::Cpu,
            started: self.started.clone(),
            settings,
            git_commit: git_commit(sh),
            rustc: cmd!(sh, "rustc --version").quiet().read().unwrap_or_default(),
            requests: requests.unwrap_or(0),
            workload: WorkloadFacts {
                requests: requests.unwrap_or(0),
                failed: 0,
                req_per_s: requests.map_or(0.0, |n| n as f64 / wall_s.max(1e-9)),
                elapsed_s: wall_s,
                p50_us: 0.0,
                p99_us: 0.0,
            },
            durations: Durations {
                build_s: 0.0,
                run_s,
                report_s: 0.0,
            },
            // The SDK's counters over the window, when the app's endpoint reports them.
            sdk: window.facts["sdk"].clone(),
            cpu: None,
            mem: None,
            timeline: None,
        };
        self.report(root, summary, &pprof, report_started)
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// One window, with a progress bar of the seconds left on stderr (when it is a terminal).
fn fetch(attach: &Attach) -> anyhow::Result<HttpResponse> {
    let (addr, target) = (attach.addr.clone(), attach.target());
    let timeout = Duration::from_secs(attach.seconds) + REPORT_TIMEOUT;
    let request = std::thread::spawn(move || http_get(&addr, &target, timeout));
    let bar = ProgressBar::with_draw_target(Some(attach.seconds), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>8} [{bar:25}] {msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix("attach");
    let started = Instant::now();
    while !request.is_finished() {
        let elapsed = started.elapsed().as_secs();
        bar.set_position(elapsed.min(attach.seconds));
        bar.set_message(if elapsed < attach.seconds {
            format!("{} s left", attach.seconds - elapsed)
        } else {
            "window closed; the app is building the report".to_owned()
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
    let response = request
        .join()
        .map_err(|_| anyhow::anyhow!("the request thread panicked"))?
        .with_context(|| format!("GET {}{} (is the app running?)", attach.url, attach.target()))?;
    check_status(&response, attach)?;
    Ok(response)
}

/// A refusal, with the endpoint's reason and what to do.
fn check_status(response: &HttpResponse, attach: &Attach) -> anyhow::Result<()> {
    let reason = String::from_utf8_lossy(&response.body);
    let reason = reason.trim();
    let hint = match response.status {
        200 => return Ok(()),
        404 => {
            "the app does not serve the profiling endpoint: start it with the endpoint on (`demo-app --pprof-endpoint`, \
             built with `--features pprof`; another app mounts drift-sdk's `pprof_endpoint` router, feature \
             `pprof-endpoint`)"
        }
        409 => "one profile at a time: wait for the other window to end",
        403 => "the endpoint answers loopback clients only: attach from the app's machine",
        400 => "this xtask and the app's endpoint disagree on the query",
        _ => "",
    };
    bail!(
        "{}{ENDPOINT} answered {}: {reason}{}{hint}",
        attach.url,
        response.status,
        if hint.is_empty() { "" } else { "; " }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_an_http_address_with_or_without_the_path() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/debug/pprof/profile",
        ] {
            let a = Attach::new(ok, 3).unwrap();
            assert_eq!(
                (a.url.as_str(), a.addr.as_str()),
                ("http://127.0.0.1:8080", "127.0.0.1:8080")
            );
            assert_eq!(a.target(), "/debug/pprof/profile?seconds=3&format=folded");
        }
        assert_eq!(Attach::new("http://[::1]:9/", 1).unwrap().addr, "[::1]:9");
        for bad in [
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:8080/other",
            "http://:8080",
        ] {
            let err = Attach::new(bad, 1).unwrap_err().to_string();
            assert!(err.contains("http://127.0.0.1:PORT"), "{bad}: {err}");
        }
    }

    const ANSWER: &str = "{\"format\":\"folded\",\"frequency\":99,\"seconds\":2,\"wall_seconds\":2.001,\"samples\":3,\
                          \"cpu_seconds\":0.031,\"requests\":500,\"sdk\":{\"recorded\":400,\"dropped\":100}}\ntokio-rt-worker;main;drift_sdk::x 2\nother;main 1\n";

    #[test]
    fn the_answer_becomes_folded_stacks_and_pprof_json() {
        let window = Window::parse(ANSWER.as_bytes()).unwrap();
        assert_eq!(window.folded, "tokio-rt-worker;main;drift_sdk::x 2\nother;main 1\n");
        assert_eq!(window.requests(), Some(500));
        let attach = Attach::new("http://127.0.0.1:8080", 2).unwrap();
        let pprof = window.pprof_json(&attach);
        assert_eq!(
            (&pprof["frequency"], &pprof["samples"], &pprof["requests"]),
            (&json!(99), &json!(3), &json!(500))
        );
        assert_eq!(pprof["url"], "http://127.0.0.1:8080");

        let uncounted = ANSWER.replace("\"requests\":500", "\"requests\":null");
        let window = Window::parse(uncounted.as_bytes()).unwrap();
        assert_eq!(
            (window.requests(), &window.pprof_json(&attach)["requests"]),
            (None, &json!(0))
        );

        for (bad, needle) in [
            ("tokio;main 3\n".to_owned(), "not the JSON facts line"),
            (
                ANSWER.replace("\"cpu_seconds\":0.031", "\"cpu_seconds\":null"),
                "Linux only",
            ),
            (ANSWER.replace("\"samples\":3", "\"samples\":-1"), "no samples"),
        ] {
            let err = format!("{:#}", Window::parse(bad.as_bytes()).unwrap_err());
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn refusals_carry_the_apps_reason_and_what_to_do() {
        let attach = Attach::new("http://127.0.0.1:8080", 2).unwrap();
        let answer = |status, body: &str| HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        assert!(check_status(&answer(200, ""), &attach).is_ok());
        let err = check_status(&answer(409, "another profile is being taken\n"), &attach)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "http://127.0.0.1:8080/debug/pprof/profile answered 409: another profile is being taken; one profile at a \
             time: wait for the other window to end"
        );
        let err = check_status(&answer(404, ""), &attach).unwrap_err().to_string();
        assert!(err.contains("--pprof-endpoint"), "{err}");
    }

    #[test]
    fn an_attached_run_writes_the_cpu_report_files() {
        let root = tempfile::tempdir().unwrap();
        let request = attach_args(&["--url", "http://127.0.0.1:8080", "--seconds", "2", "--save", "a"])
            .into_attach_request(root.path())
            .unwrap();
        assert_eq!(request.name, "a");
        assert_eq!(request.settings.attached.as_deref(), Some("http://127.0.0.1:8080"));
        let window = Window::parse(ANSWER.as_bytes()).unwrap();
        std::fs::create_dir_all(&request.dir).unwrap();
        std::fs::write(request.dir.join("cpu.folded"), &window.folded).unwrap();
        let pprof = window.pprof_json(request.attach.as_ref().unwrap());
        std::fs::write(request.dir.join("pprof.json"), pprof.to_string()).unwrap();
        let summary = Summary {
            version: crate::summary::SUMMARY_VERSION,
            name: request.name.clone(),
            mode: Mode::Cpu,
            started: request.started.clone(),
            settings: request.settings.clone(),
            git_commit: "abc1234".into(),
            rustc: "rustc".into(),
            requests: 500,
            workload: WorkloadFacts {
                requests: 500,
                failed: 0,
                req_per_s: 250.0,
                elapsed_s: 2.0,
                p50_us: 0.0,
                p99_us: 0.0,
            },
            durations: Durations {
                build_s: 0.0,
                run_s: 2.0,
                report_s: 0.0,
            },
            sdk: window.facts["sdk"].clone(),
            cpu: None,
            mem: None,
            timeline: None,
        };
        request.report(root.path(), summary, &pprof, Instant::now()).unwrap();
        for file in [
            "summary.json",
            "report.html",
            "flamegraph.svg",
            "cpu.folded",
            "pprof.json",
        ] {
            assert!(request.dir.join(file).is_file(), "{file}");
        }
        let written = Summary::read(&request.dir).unwrap();
        assert_eq!(written.mode, Mode::Cpu);
        let cpu = written.cpu.unwrap();
        assert_eq!((cpu.headline.samples, cpu.headline.requests), (3, 500));
        assert!(cpu.headline.sdk_us_per_request.is_some());
        let html = std::fs::read_to_string(request.dir.join("report.html")).unwrap();
        assert!(html.contains("attached to"), "the page says where the window came from");
        assert!(
            html.contains("the SDK dropped 100 of 500 spans"),
            "the window's SDK counters warn as a cpu run's do"
        );
    }

    fn attach_args(argv: &[&str]) -> ProfileArgs {
        use clap::Parser;
        let argv = ["cargo xtask", "profile", "attach"]
            .into_iter()
            .chain(argv.iter().copied());
        match crate::flags::Xtask::try_parse_from(argv).unwrap().command {
            crate::flags::Command::Profile(p) => p,
            other => panic!("not a profile command: {other:?}"),
        }
    }
}
