use std::time::{Duration, Instant};

use crate::support::{Server, read_json, workload};

#[test]
fn duration_runs_stop_by_themselves() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("timed.json");
    let start = Instant::now();
    let output = workload(
        &[
            "--url",
            &server.url(),
            "--duration",
            "1s",
            "--warmup",
            "5",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    let wall = start.elapsed();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        wall >= Duration::from_secs(1) && wall < Duration::from_secs(4),
        "{wall:?}"
    );

    let report = read_json(&json);
    assert_eq!(report["duration_s"], 1.0);
    assert!(report["iterations"].is_null());
    let elapsed = report["elapsed_s"].as_f64().unwrap();
    assert!((1.0..1.5).contains(&elapsed), "{elapsed}");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 10, "{requests}");
    assert_eq!(server.requests().len() as u64, requests + 5);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("for 1 s (+5 warm-up)"), "{stdout}");
}
