//! `--pprof-endpoint` serves drift-sdk's `/debug/pprof/profile`: under load, a `format=folded` window answers the
//! facts line `cargo xtask profile attach` reads (frequency, samples, the window's CPU seconds and requests) and
//! folded stacks holding those samples, with the SDK's frames in them. Without the flag the path does not exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{Binary, blocking_client, seed_request};

#[test]
fn a_folded_window_under_load_holds_its_samples_cpu_seconds_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let app = Binary::start(
        &[
            "--pprof-endpoint",
            "--mode",
            "record",
            "--traces-dir",
            "traces",
            "--profile-dir",
            profile.to_str().unwrap(),
        ],
        dir.path(),
    );
    // Load on two connections until the window has been answered.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|worker| {
            let (url, stop) = (app.url.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = blocking_client();
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(seed_request(&client, &url, i).status(), 200);
                    i += 2;
                }
                i / 2
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let response = blocking_client()
        .get(format!("{}/debug/pprof/profile?seconds=2&format=folded", app.url))
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent: usize = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    let header_samples: u64 = response.headers()["x-profile-samples"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.text().unwrap();
    let (line, stacks) = body.split_once('\n').unwrap();
    let facts: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        (&facts["format"], &facts["frequency"], &facts["seconds"]),
        (&Value::from("folded"), &Value::from(99), &Value::from(2)),
        "{line}"
    );
    let samples = facts["samples"].as_u64().unwrap();
    let cpu_seconds = facts["cpu_seconds"].as_f64().unwrap();
    let requests = facts["requests"].as_u64().unwrap();
    let wall_seconds = facts["wall_seconds"].as_f64().unwrap();
    assert_eq!(samples, header_samples);
    let recorded = facts["sdk"]["recorded"].as_u64().unwrap();
    assert!(
        recorded > 0 && facts["sdk"]["dropped"].is_u64(),
        "the SDK's counters over the window: {line}"
    );
    assert!((2.0..3.0).contains(&wall_seconds), "{line}");
    assert!(
        requests > 0 && requests as usize <= sent,
        "{line}: {sent} requests sent in all"
    );
    // A debug build under load: well over 10 samples; the capture ratio as `profile cpu` computes it.
    let capture = samples as f64 / (cpu_seconds * 99.0);
    assert!(samples > 10, "{line}");
    assert!((0.6..=1.2).contains(&capture), "capture ratio {capture:.2}: {line}");
    let mut total = 0;
    for stack in stacks.lines() {
        let (frames, count) = stack.rsplit_once(' ').unwrap();
        assert!(frames.contains(';'), "thread;root;…;leaf: {stack}");
        total += count.parse::<u64>().unwrap();
    }
    assert_eq!(total, samples, "the stacks hold the window's samples");
    assert!(stacks.contains("drift_sdk::"), "the SDK's frames are named");

    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(stopped["requests"].as_u64().unwrap() >= requests, "{stopped}");
}

#[test]
fn without_the_flag_there_is_no_profiling_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let app = Binary::start(&["--profile-dir", profile.to_str().unwrap()], dir.path());
    let response = blocking_client()
        .get(format!("{}/debug/pprof/profile?seconds=1", app.url))
        .send()
        .unwrap();
    assert_eq!(response.status(), 404, "the endpoint is opt-in");
    let (status, _) = app.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");
}
