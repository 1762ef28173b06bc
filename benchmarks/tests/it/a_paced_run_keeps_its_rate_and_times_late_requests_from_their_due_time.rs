use crate::support::{SLOW_BODY_PAUSE, Server, read_json, workload_exits};

#[test]
fn a_paced_run_sends_at_its_rate() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("paced.json");
    let args = [
        "--url",
        &server.url(),
        "--rate",
        "100",
        "--iterations",
        "50",
        "--concurrency",
        "2",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ];
    let (stdout, _) = workload_exits(0, &args);
    let report = read_json(&json);
    assert_eq!(report["requests"], 50);
    assert_eq!(report["rate"], 100.0);
    // The 50th request is due 490 ms after the first: an unpaced run takes a few ms.
    let elapsed = report["elapsed_s"].as_f64().unwrap();
    assert!((0.45..1.5).contains(&elapsed), "{elapsed}");
    let late = report["late"].as_u64().unwrap();
    assert!(
        late <= 5,
        "a fast server on two connections keeps up with 100 req/s, yet {late} were late"
    );
    assert!(stdout.contains("paced      100.0 req/s asked"), "{stdout}");
}

#[test]
fn a_server_slower_than_the_rate_shows_in_the_latency() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("late.json");
    // One connection, a request due every 10 ms, each taking 30 ms: request k (from 0) goes out at about 30·k ms but
    // was due at 10·k ms, so its latency is about 20·k + 30 ms, not 30 ms.
    let args = [
        "--url",
        &server.url(),
        "--mix",
        "/test/slow-body=1",
        "--rate",
        "100",
        "--iterations",
        "10",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ];
    let (stdout, _) = workload_exits(0, &args);
    let report = read_json(&json);
    assert!(report["late"].as_u64().unwrap() >= 8, "{report}");
    let pause = SLOW_BODY_PAUSE.as_micros() as u64;
    let max = report["latency_us"]["max"].as_u64().unwrap();
    assert!(
        max >= 5 * pause,
        "the last request waited ~180 ms for its turn, yet max = {max} µs"
    );
    assert!(stdout.contains("did not keep up"), "{stdout}");
}
