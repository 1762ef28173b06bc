//! The trace directory goes missing, is read-only, or fills up (issue 7): every request is still answered, the spans
//! that cannot be written count as `failed`, and recording resumes when the directory is usable again.
//!
//! Read-only and full file systems are real tmpfs mounts, which need CAP_SYS_ADMIN (root in CI). Without it those two
//! cases say they are skipped; with it a failed mount fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use drift_sdk::{Drift, Mode, Stats};

use crate::support::InProcess;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Mount(path.to_owned())),
            other if can_mount() => panic!("mount -t tmpfs -o {options} failed with CAP_SYS_ADMIN: {other:?}"),
            _ => {
                eprintln!("skipped: mounting a tmpfs ({options}) needs CAP_SYS_ADMIN, which this process lacks");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Whether this process may mount file systems (CAP_SYS_ADMIN, bit 21 of the effective capabilities).
fn can_mount() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

fn recording_into(dir: &Path) -> Drift {
    Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .traces_dir(dir)
        .env_vars(Vec::new())
        .init()
        .unwrap()
}

/// Sends `n` requests that each record one span; every one must be answered 200. Then flushes and returns the stats.
async fn serve(app: &InProcess, drift: &Drift, n: usize) -> Stats {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..n {
        let response = client
            .post(format!("{}/api/echo", app.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"data":"test","iteration":{i}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(drift.flush());
    drift.stats()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_directory_that_vanishes_fails_spans_until_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("traces");
    let drift = recording_into(&traces);
    let app = InProcess::start(&drift).await;

    let s = serve(&app, &drift, 5).await;
    assert_eq!((s.exported, s.failed), (5, 0));
    std::fs::remove_dir_all(&traces).unwrap();
    let s = serve(&app, &drift, 10).await;
    assert_eq!((s.exported, s.failed), (5, 10), "{s:?}");
    std::fs::create_dir_all(&traces).unwrap();
    let s = serve(&app, &drift, 3).await;
    assert_eq!((s.exported, s.failed), (8, 10), "{s:?}");
    assert_eq!(files_in(&traces), 3);
    app.stop().await;
    drift.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_directory_that_is_a_file_fails_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = tmp.path().join("traces");
    let drift = recording_into(&traces);
    let app = InProcess::start(&drift).await;
    std::fs::remove_dir_all(&traces).unwrap();
    std::fs::write(&traces, b"not a directory").unwrap();
    let s = serve(&app, &drift, 4).await;
    assert_eq!((s.exported, s.failed), (0, 4), "{s:?}");
    app.stop().await;
    drift.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_trace_directory_fails_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(&tmp.path().join("ro"), "ro,size=1m") else {
        return;
    };
    let drift = recording_into(&tmp.path().join("ro"));
    let app = InProcess::start(&drift).await;
    let s = serve(&app, &drift, 4).await;
    assert_eq!((s.exported, s.failed), (0, 4), "{s:?}");
    app.stop().await;
    drift.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_trace_directory_fails_spans_until_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    // 64 KiB: each trace file takes at least one 4 KiB page, so a few dozen spans fill it.
    let Some(_mount) = Mount::tmpfs(&full, "size=64k") else {
        return;
    };
    let drift = recording_into(&full);
    let app = InProcess::start(&drift).await;
    let s = serve(&app, &drift, 60).await;
    assert_eq!(s.exported + s.failed, 60, "{s:?}");
    assert!(s.exported > 0 && s.failed > 0, "the disk should fill part way: {s:?}");
    let before = s;
    for entry in std::fs::read_dir(&full).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let s = serve(&app, &drift, 3).await;
    assert_eq!((s.exported, s.failed), (before.exported + 3, before.failed), "{s:?}");
    app.stop().await;
    drift.shutdown();
}

/// The real binary, whose trace directory is removed under it: one clear log line names the directory and the error,
/// however many spans fail, and the `stopped` line counts them.
#[test]
fn a_write_failure_is_logged_once_with_the_directory_and_the_reason() {
    use std::process::Stdio;
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("demo-app.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(["--mode", "record", "--traces-dir", "traces"])
        .current_dir(tmp.path())
        .env_remove("TUSK_DRIFT_MODE")
        .env_remove("TUSK_SAMPLING_RATE")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = listening["url"].as_str().unwrap().to_owned();
    std::fs::remove_dir_all(tmp.path().join("traces")).unwrap();
    let client = crate::support::blocking_client();
    for _ in 0..5 {
        assert_eq!(client.get(format!("{url}/api/simple")).send().unwrap().status(), 200);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = crate::support::wait_with_timeout(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let stopped: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(stopped["sdk"]["failed"], 5, "{stopped}");
    assert_eq!(stopped["sdk"]["exported"], 0, "{stopped}");
    let text = std::fs::read_to_string(&log).unwrap();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cannot write a trace file"))
        .collect();
    assert_eq!(failures.len(), 1, "one line, not one per span:\n{text}");
    assert!(
        failures[0].contains("traces") && failures[0].contains("No such file or directory"),
        "the line names the directory and the reason: {}",
        failures[0]
    );
}
