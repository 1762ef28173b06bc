use crate::support::{SLOW_BODY_PAUSE, Server, read_json, workload_exits};

#[test]
fn latency_runs_from_sending_to_the_last_byte() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("slow.json");
    let args = [
        "--url",
        &server.url(),
        "--mix",
        "/test/slow-body=1",
        "--iterations",
        "5",
        "--warmup",
        "0",
    ];
    let (stdout, _) = workload_exits(0, &[&args[..], &["--json", json.to_str().unwrap()]].concat());
    let latency = &read_json(&json)["latency_us"];
    let pause = SLOW_BODY_PAUSE.as_micros() as u64;
    for key in ["min", "p50", "p99", "max"] {
        let us = latency[key].as_u64().unwrap();
        assert!(
            (pause..pause * 20).contains(&us),
            "{key} = {us} µs, the body's last byte comes after {pause} µs"
        );
    }
    assert!(stdout.contains("GET /test/slow-body"), "{stdout}");
}
