use crate::support::{Server, read_json, workload_exits};

#[test]
fn five_percent_of_500s_fail_the_run_after_writing_the_json() {
    let server = Server::start_failing_every(Some(20));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("failing.json");
    let (stdout, stderr) = workload_exits(
        1,
        &[
            "--url",
            &server.url(),
            "--iterations",
            "400",
            "--warmup",
            "0",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("20 of 400 requests failed (5.00 %: HTTP 500 × 20), more than --max-error-rate 1.00 %"),
        "{stderr}"
    );
    assert!(stdout.contains("failed     20 (5.00 %): HTTP 500 × 20"), "{stdout}");
    let report = read_json(&json);
    assert_eq!(report["errors"]["status"]["500"], 20);
    assert_eq!(report["errors"]["connection"], 0);
    assert_eq!(
        (report["failed"].as_u64(), report["ok"].as_u64()),
        (Some(20), Some(380))
    );
    assert_eq!(report["error_rate"], 0.05);
    let failed: u64 = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(failed, 20);
}

#[test]
fn half_a_percent_of_500s_pass_but_are_reported() {
    let server = Server::start_failing_every(Some(200));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("mostly-ok.json");
    let (stdout, stderr) = workload_exits(
        0,
        &[
            "--url",
            &server.url(),
            "--iterations",
            "400",
            "--warmup",
            "0",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(stderr, "");
    assert!(stdout.contains("failed     2 (0.50 %): HTTP 500 × 2"), "{stdout}");
    assert_eq!(read_json(&json)["errors"]["status"]["500"], 2);
}

#[test]
fn the_error_limit_is_a_flag() {
    let server = Server::start_failing_every(Some(200));
    let (_, stderr) = workload_exits(
        1,
        &[
            "--url",
            &server.url(),
            "--iterations",
            "400",
            "--warmup",
            "0",
            "--max-error-rate",
            "0.001",
        ],
    );
    assert!(stderr.contains("more than --max-error-rate 0.10 %"), "{stderr}");
}
