//! Collecting a run: build the demo app with the mode's profiler feature (in the `profiling` profile) and the
//! workload; start the app and wait until it answers `/health`; run the workload; stop the app with SIGINT and wait
//! until it has written its files.
//!
//! `http_get` is the little HTTP this needs (the health check, and `profile attach`'s window) over a raw TCP stream.
//!
//! Every subprocess goes through xshell's `cmd!`. The two long-lived ones (the app, and the workload whose stderr
//! carries its progress bar) are turned into `std::process::Command`s to be spawned with their own pipes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::flags::Mode;

/// How long the app may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the app may take to drain, flush the SDK and write its profiler files after SIGINT (dhat's JSON of a
/// long run takes a while).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// The two binaries of a run.
#[derive(Debug)]
pub struct Binaries {
    pub demo_app: PathBuf,
    pub workload: PathBuf,
}

/// Builds the demo app with `mode`'s feature and the workload, both in the `profiling` profile (release with debug
/// info). Cargo's own progress shows on stderr.
pub fn build(sh: &Shell, root: &Path, mode: Mode) -> anyhow::Result<Binaries> {
    build_with(sh, root, "profiling", Some(mode.feature()))
}

/// Builds the demo app (with `feature`, if any) and the workload in cargo profile `profile`.
pub fn build_with(sh: &Shell, root: &Path, profile: &str, feature: Option<&str>) -> anyhow::Result<Binaries> {
    let features: Vec<String> = feature
        .map(|f| vec!["--features".to_owned(), format!("demo-app/{f}")])
        .unwrap_or_default();
    cmd!(sh, "cargo build --profile {profile} --package demo-app --package benchmarks --bin demo-app --bin workload {features...}")
        .run()
        .with_context(|| format!("building demo-app ({}) and the workload, profile {profile}", feature.unwrap_or("no profiler")))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let dir = if target.is_absolute() {
        target
    } else {
        root.join(target)
    }
    .join(if profile == "dev" { "debug" } else { profile });
    Ok(Binaries {
        demo_app: dir.join("demo-app"),
        workload: dir.join("workload"),
    })
}

/// The running demo app.
pub struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    /// The `listening` line.
    pub listening: Value,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl App {
    /// Starts the app with `args`, its stderr going to `log`, and waits for its listening line and a 200 from
    /// `/health`.
    pub fn start(sh: &Shell, binary: &Path, args: &[String], log: &Path) -> anyhow::Result<App> {
        let stderr = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command: Command = cmd!(sh, "{binary} {args...}").into();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the app's stdout")?;
        let lines = read_lines(stdout);
        let mut app = App {
            child,
            lines,
            log: log.to_path_buf(),
            listening: Value::Null,
            url: String::new(),
        };
        let first = app
            .next_line(START_TIMEOUT)
            .context("waiting for the app's listening line")?;
        app.listening =
            serde_json::from_str(&first).with_context(|| format!("the app's first line is not JSON: {first}"))?;
        app.url = app.listening["url"]
            .as_str()
            .with_context(|| format!("the listening line has no url: {first}"))?
            .to_owned();
        wait_for_health(&app.url, START_TIMEOUT)?;
        Ok(app)
    }

    fn next_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed: the app is exiting. Wait for its status rather than racing it.
                let status = wait(&mut self.child, Duration::from_secs(5))
                    .map_or_else(|_| "still running".to_owned(), |s| s.to_string());
                bail!(
                    "the app closed its output and exited ({status}); the end of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 15)
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let status = self.child.try_wait().ok().flatten();
                bail!(
                    "the app printed nothing in {timeout:?} (status: {}); the end of {}:\n{}",
                    status.map_or("running".to_owned(), |s| s.to_string()),
                    self.log.display(),
                    tail(&self.log, 15)
                )
            }
        }
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the app has exited by itself.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("polling the app")? {
            bail!(
                "the app exited by itself ({status}); the end of {}:\n{}",
                self.log.display(),
                tail(&self.log, 15)
            );
        }
        Ok(())
    }

    /// Sends SIGINT and waits for a clean exit and the `stopped` line.
    pub fn stop(mut self, sh: &Shell) -> anyhow::Result<Value> {
        self.check_alive()?;
        let pid = self.child.id().to_string();
        cmd!(sh, "kill -INT {pid}")
            .quiet()
            .run()
            .context("sending SIGINT to the app")?;
        let status = wait(&mut self.child, STOP_TIMEOUT).with_context(|| {
            format!(
                "the app did not exit within {STOP_TIMEOUT:?} of SIGINT; the end of {}:\n{}",
                self.log.display(),
                tail(&self.log, 15)
            )
        })?;
        if !status.success() {
            bail!(
                "the app exited with {status} after SIGINT; the end of {}:\n{}",
                self.log.display(),
                tail(&self.log, 15)
            );
        }
        let line = self
            .next_line(Duration::from_secs(5))
            .context("reading the app's stopped line")?;
        serde_json::from_str(&line).with_context(|| format!("the app's last line is not JSON: {line}"))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Only reached on a failed run: do not leave the app behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where a run named `name` writes its trace files: under `--traces-dir` if given (made absolute: the app runs in
/// the workspace root, not in the caller's folder), else in a folder of /dev/shm when it exists (a tmpfs keeps the
/// disk's state out of the measurement: on this ext4 a create costs hundreds of µs after a mass delete), else in the
/// run's own folder.
pub fn traces_dir(given: Option<&Path>, name: &str, run_dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(dir) => std::path::absolute(dir).context("resolving --traces-dir")?.join(name),
        None if Path::new("/dev/shm").is_dir() => Path::new("/dev/shm").join(format!("drift-{name}")),
        None => run_dir.join("traces"),
    })
}

/// Runs the workload against `url`, its report to `json`, its summary to `summary_txt`, its progress on our
/// stderr. Returns whether it succeeded (it fails when too many requests fail) and its report.
pub fn run_workload(
    sh: &Shell,
    binary: &Path,
    url: &str,
    args: &[String],
    json: &Path,
    summary_txt: &Path,
) -> anyhow::Result<(ExitStatus, Value)> {
    let summary = File::create(summary_txt).with_context(|| format!("creating {}", summary_txt.display()))?;
    let mut command: Command = cmd!(sh, "{binary} --url {url} {args...} --json {json}").into();
    let status = command
        .stdin(Stdio::null())
        .stdout(summary)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    let report = std::fs::read_to_string(json)
        .with_context(|| format!("the workload wrote no report ({status}); its reason is on stderr above"))?;
    let report = serde_json::from_str(&report).with_context(|| format!("parsing {}", json.display()))?;
    Ok((status, report))
}

fn read_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `GET /health` until it answers 200.
fn wait_for_health(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let addr = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http:// URL"))?;
    let deadline = Instant::now() + timeout;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        match health(addr) {
            Ok(200) => return Ok(()),
            Ok(status) => last_error = format!("answered {status}"),
            Err(e) => last_error = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url}/health did not answer 200 within {timeout:?}: {last_error}")
}

/// One `GET /health` over a fresh connection: the status code.
fn health(addr: &str) -> std::io::Result<u16> {
    http_get(addr, "/health", Duration::from_secs(2)).map(|r| r.status)
}

/// An HTTP answer: status, headers (names lower-cased) and the whole body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 `GET target` to `addr` (`host:port`) over a fresh connection, read to the end: enough HTTP for a
/// health check and the profiling endpoint, without an HTTP client in xtask. Reads a `Content-Length` body, a
/// chunked one, or one that ends when the server closes. `read_timeout` bounds each read.
pub fn http_get(addr: &str, target: &str, read_timeout: Duration) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(read_timeout))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    read_response(BufReader::new(stream))
}

fn read_response(mut reader: impl BufRead) -> std::io::Result<HttpResponse> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP answer: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the answer ended inside its headers".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header line: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let hex = size_line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(hex.trim(), 16)
                .map_err(|_| invalid(format!("not a chunk size: {size_line:?}")))?;
            if size == 0 {
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader.read_exact(&mut response.body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("not a content length: {length:?}")))?;
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whole_whatever_their_framing() {
        let fixed =
            read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Profile-Samples: 7\r\n\r\nhello"[..]).unwrap();
        assert_eq!((fixed.status, fixed.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(fixed.header("x-profile-samples"), Some("7"));
        let chunked = read_response(
            &b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbus\r\n2;x=y\r\ny!\r\n0\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_slice()), (409, &b"busy!"[..]));
        let closed = read_response(&b"HTTP/1.0 404 Not Found\r\n\r\nno such path"[..]).unwrap();
        assert_eq!((closed.status, closed.body.as_slice()), (404, &b"no such path"[..]));
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(read_response(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
