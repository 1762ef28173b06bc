//! SIGTERM and SIGINT: stop accepting, finish the request in flight, shut the SDK down (every trace written), write
//! `run.json`, print the `stopped` line, exit 0.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Binary, blocking_client, seed_request};

#[test]
fn sigterm_drains_requests_and_exits_cleanly() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        let profile = dir.path().join("profile");
        let app = Binary::start(
            &[
                "--mode",
                "record",
                "--traces-dir",
                traces.to_str().unwrap(),
                "--profile-dir",
                profile.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert_eq!(app.listening["recording"], true);
        let client = blocking_client();
        for i in 0..9 {
            assert_eq!(seed_request(&client, &app.url, i).status(), 200);
        }
        // A slow request in flight when the signal arrives still gets its answer.
        let slow = {
            let (client, url) = (client.clone(), app.url.clone());
            std::thread::spawn(move || client.get(format!("{url}/api/slow")).send().map(|r| r.status()))
        };
        std::thread::sleep(Duration::from_millis(30));
        let started = Instant::now();
        let (status, stopped) = app.stop_with(signal);
        assert!(status.success(), "{signal}: {status}");
        assert_eq!(
            slow.join().unwrap().unwrap(),
            200,
            "{signal}: the in-flight request was answered"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{signal}: no drain timeout"
        );

        assert_eq!(stopped["event"], "stopped");
        assert_eq!(stopped["requests"], 10, "{stopped}");
        assert_eq!(stopped["drained"], true);
        assert_eq!(stopped["sdk"]["exported"], 10, "{stopped}");
        let files: Vec<_> = std::fs::read_dir(&traces).unwrap().collect();
        assert_eq!(files.len(), 10, "one trace file per request");
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(profile.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["requests"], 10);
        assert!(run["cpu_seconds"]["total"].as_f64().unwrap() > 0.0, "{run}");
        assert_eq!(run["profiler"], serde_json::Value::from(demo_app::profiler::BUILT_WITH));
    }
}

#[test]
fn a_second_signal_exits_at_once_with_code_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Binary::start(&["--drain-timeout", "60s", "--profile-dir", "profile"], dir.path());
    let long = {
        let url = app.url.clone();
        std::thread::spawn(move || {
            blocking_client()
                .post(format!("{url}/api/io-bound"))
                .body(r#"{"jobs":100,"delayMs":100}"#)
                .send()
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let pid = nix::unistd::Pid::from_raw(app.child.id() as i32);
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the first signal waits for the 10 s request"
    );
    let started = Instant::now();
    nix::sys::signal::kill(pid, Signal::SIGINT).unwrap();
    let status = crate::support::wait_with_timeout(&mut app.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(long.join().unwrap().is_err(), "the in-flight request was cut");
    assert!(!dir.path().join("profile/run.json").exists());
}

#[cfg(not(any(feature = "pprof", feature = "dhat-heap", feature = "timeline")))]
#[test]
fn a_build_without_a_profiler_writes_nothing_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let app = Binary::start(&[], dir.path());
    assert_eq!(
        app.listening["recording"], false,
        "disabled unless TUSK_DRIFT_MODE or --mode say otherwise"
    );
    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success());
    assert_eq!(stopped["files"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
}

#[test]
fn discard_spans_exports_every_span_and_writes_no_trace_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = Binary::start(&["--mode", "record", "--discard-spans"], dir.path());
    let client = blocking_client();
    for i in 0..12 {
        assert_eq!(seed_request(&client, &app.url, i).status(), 200);
    }
    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success());
    assert_eq!(
        (stopped["sdk"]["recorded"].as_u64(), stopped["sdk"]["exported"].as_u64()),
        (Some(12), Some(12))
    );
    assert!(!dir.path().join(".tusk").exists(), "no trace directory");
}
