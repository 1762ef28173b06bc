//! The trace directory goes missing, is read-only, or fills up (issue 7): every request is still answered, the spans
//! that cannot be written count as `failed`, and recording resumes when the directory is usable again.
//!
//! Read-only and full file systems are real tmpfs mounts, which need root (CAP_SYS_ADMIN). As another user those two
//! cases say they are skipped; as root a failed mount fails the test.

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
            other if is_root() => panic!("mount -t tmpfs -o {options} failed as root: {other:?}"),
            _ => {
                eprintln!("skipped: mounting a tmpfs ({options}) needs root");
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

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
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
