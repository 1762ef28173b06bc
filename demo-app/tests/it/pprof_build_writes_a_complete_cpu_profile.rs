//! The `pprof` build samples the whole run: on SIGTERM it writes folded stacks, the pprof protobuf and
//! `pprof.json`, which agree with each other, capture the CPU the process used, and see `/api/calibrate`'s three
//! functions in their 60 / 30 / 10 ratio. With `--pprof-endpoint` it profiles windows on demand instead.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pprof::protos::Message;
use serde_json::Value;

use crate::support::{Binary, blocking_client, recording_binary_after_seed_mix};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pprof_build_writes_a_complete_cpu_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (app, profile) = recording_binary_after_seed_mix(dir.path(), 30);
    let client = blocking_client();
    // A fixed amount of work, not of time (a busy machine gives the app less CPU per second): about 2 s of CPU in a
    // debug build, ~200 samples at 99 Hz.
    for _ in 0..60 {
        let response = client
            .get(format!("{}/api/calibrate?units=200", app.url))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert_eq!(stopped["files"].as_array().unwrap().len(), 4, "{stopped}");

    let summary = read_json(&profile.join("pprof.json"));
    assert_eq!(summary["frequency"], 99);
    let samples = summary["samples"].as_i64().unwrap();
    let cpu_seconds = summary["cpu_seconds"].as_f64().unwrap();
    let capture = samples as f64 / (cpu_seconds * 99.0);
    assert!(samples > 100, "{summary}");
    assert!((0.7..=1.2).contains(&capture), "capture ratio {capture:.2}: {summary}");
    assert!(summary["requests"].as_u64().unwrap() > 30, "{summary}");

    // Folded stacks: `thread;root;…;leaf COUNT`, summing to the samples.
    let folded = std::fs::read_to_string(profile.join("cpu.folded")).unwrap();
    let mut total = 0;
    let with = |needle: &str| -> i64 {
        folded
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
            .sum()
    };
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        assert!(!stack.is_empty() && !stack.contains('\n'), "{line}");
        total += count.parse::<i64>().unwrap();
    }
    assert_eq!(total, samples);
    let (sixty, thirty, ten) = (
        with("demo_app::calibrate::calibrate_sixty"),
        with("demo_app::calibrate::calibrate_thirty"),
        with("demo_app::calibrate::calibrate_ten"),
    );
    let all = (sixty + thirty + ten) as f64;
    let shares = [sixty as f64 / all, thirty as f64 / all, ten as f64 / all];
    assert!(all > 100.0, "calibration samples: {sixty} {thirty} {ten}");
    for (share, expected) in shares.iter().zip([0.6, 0.3, 0.1]) {
        assert!(
            (share - expected).abs() < 0.1,
            "calibration shares {shares:?}, expected 60/30/10"
        );
    }
    assert!(with("drift_sdk::") > 0, "the SDK's frames are named");

    // The protobuf decodes and holds the same samples.
    let pb = std::fs::read(profile.join("cpu.pb")).unwrap();
    let decoded = pprof::protos::Profile::decode(pb.as_slice()).unwrap();
    let pb_samples: i64 = decoded.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(pb_samples, samples);
    assert!(!decoded.function.is_empty());

    let run = read_json(&profile.join("run.json"));
    assert_eq!(run["profiler_output"]["pprof"]["samples"], samples);
}

#[test]
fn the_profiling_endpoint_serves_windows_on_demand_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let app = Binary::start(
        &["--pprof-endpoint", "--profile-dir", profile.to_str().unwrap()],
        dir.path(),
    );
    let client = blocking_client();
    let endpoint = format!("{}/debug/pprof/profile", app.url);
    for bad in ["seconds=0", "seconds=301", "seconds=abc", "hz=1000"] {
        let response = client.get(format!("{endpoint}?{bad}")).send().unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert!(
            response.text().unwrap().contains("seconds"),
            "{bad}: the reason is given"
        );
    }

    let window = {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        std::thread::spawn(move || client.get(format!("{endpoint}?seconds=2")).send().unwrap())
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = client.get(format!("{endpoint}?seconds=1")).send().unwrap();
    assert_eq!(second.status(), 409, "one profile at a time");
    // Load until the window answers: under a busy test machine its profiler may start a little after the request.
    let started = Instant::now();
    while !window.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the 2 s window never ended"
        );
        client
            .get(format!("{}/api/calibrate?units=100", app.url))
            .send()
            .unwrap();
    }
    let response = window.join().unwrap();
    assert_eq!(response.status(), 200);
    let samples: i64 = response.headers()["x-profile-samples"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let requests: u64 = response.headers()["x-profile-requests"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let decoded = pprof::protos::Profile::decode(response.bytes().unwrap().as_ref()).unwrap();
    assert_eq!(decoded.sample.iter().map(|s| s.value[0]).sum::<i64>(), samples);
    assert!(samples > 10 && requests > 0, "samples {samples}, requests {requests}");

    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success());
    assert!(
        !profile.join("cpu.folded").exists(),
        "no whole-run profile when the endpoint owns the profiler"
    );
    assert_eq!(
        stopped["files"].as_array().unwrap().len(),
        1,
        "run.json only: {stopped}"
    );
}
