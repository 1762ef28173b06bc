//! Starting the app in this process or as the real binary, and stopping it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use demo_app::{DemoApp, ServeOptions, Served};
use drift_sdk::{Drift, InMemorySpans, Mode};
use serde_json::Value;

/// An SDK in record mode with an in-memory sink and no environment, and the sink's span list.
pub fn record_in_memory() -> (Drift, InMemorySpans) {
    let spans = InMemorySpans::new();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    (drift, spans)
}

/// The app served by a task of the test's runtime.
pub struct InProcess {
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Served>>,
}

impl InProcess {
    pub async fn start(drift: &Drift) -> InProcess {
        let app = DemoApp::bind("127.0.0.1:0".parse().unwrap(), drift, &ServeOptions::default())
            .await
            .unwrap();
        let url = format!("http://{}", app.local_addr().unwrap());
        drift.mark_app_ready();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        InProcess { url, stop, task }
    }

    pub async fn stop(self) -> Served {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap()
    }
}

/// The real binary, started with `args`, once it has printed its `listening` line.
pub struct Binary {
    pub child: Child,
    pub url: String,
    pub listening: Value,
    lines: mpsc::Receiver<String>,
}

impl Binary {
    pub fn start(args: &[&str], cwd: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .args(args)
            .current_dir(cwd)
            .env_remove("TUSK_DRIFT_MODE")
            .env_remove("TUSK_SAMPLING_RATE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = read_lines(child.stdout.take().unwrap());
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the app printed no listening line within 30 s");
        let listening: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(listening["event"], "listening", "{first}");
        let url = listening["url"].as_str().unwrap().to_owned();
        Binary {
            child,
            url,
            listening,
            lines,
        }
    }

    /// Sends `signal`, waits (at most 60 s) for the exit, and returns the status and the `stopped` line.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> (ExitStatus, Value) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(60));
        let stopped = self
            .lines
            .recv_timeout(Duration::from_secs(5))
            .expect("the app printed no stopped line");
        (status, serde_json::from_str(&stopped).unwrap())
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
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

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking client that ignores proxies (the tests talk to 127.0.0.1).
pub fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().no_proxy().build().unwrap()
}

/// The seed mix's request i (drift-format.md §15.2).
pub fn seed_request(client: &reqwest::blocking::Client, url: &str, i: usize) -> reqwest::blocking::Response {
    try_seed_request(client, url, i).unwrap()
}

/// [`seed_request`], with the connection error returned rather than a panic (for a server that may go away).
pub fn try_seed_request(
    client: &reqwest::blocking::Client,
    url: &str,
    i: usize,
) -> reqwest::Result<reqwest::blocking::Response> {
    match i % 3 {
        0 => client.get(format!("{url}/api/simple")).send(),
        1 => client
            .post(format!("{url}/api/echo"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"data":"test","iteration":{i}}}"#))
            .send(),
        _ => client
            .post(format!("{url}/api/auth/login"))
            .header("content-type", "application/json")
            .body(r#"{"email":"test@example.com","password":"secret123"}"#)
            .send(),
    }
}

/// Starts the binary recording into `dir/traces` with its profiler files in `dir/profile`, sends `requests` of the
/// seed mix, and returns it still running with the profile directory.
#[cfg(any(feature = "pprof", feature = "dhat-heap", feature = "timeline"))]
pub fn recording_binary_after_seed_mix(dir: &Path, requests: usize) -> (Binary, std::path::PathBuf) {
    let profile = dir.join("profile");
    let app = Binary::start(
        &[
            "--mode",
            "record",
            "--traces-dir",
            "traces",
            "--profile-dir",
            profile.to_str().unwrap(),
        ],
        dir,
    );
    assert_eq!(
        app.listening["profiler"],
        serde_json::Value::from(demo_app::profiler::BUILT_WITH)
    );
    let client = blocking_client();
    for i in 0..requests {
        assert_eq!(seed_request(&client, &app.url, i).status(), 200);
    }
    (app, profile)
}
