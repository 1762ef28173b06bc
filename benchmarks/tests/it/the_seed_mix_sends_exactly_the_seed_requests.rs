use crate::support::{Server, read_json, workload_exits};

#[test]
fn the_seed_mix_sends_exactly_the_seed_requests() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("seed.json");
    let json_arg = json.to_str().unwrap();
    let (stdout, _) = workload_exits(
        0,
        &[
            "--url",
            &server.url(),
            "--iterations",
            "30",
            "--warmup",
            "0",
            "--json",
            json_arg,
        ],
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 30);
    for (i, seen) in requests.iter().enumerate() {
        // One connection: arrival order is request order.
        let expected = match i % 3 {
            0 => ("GET", "/api/simple", String::new()),
            1 => ("POST", "/api/echo", format!(r#"{{"data":"test","iteration":{i}}}"#)),
            _ => (
                "POST",
                "/api/auth/login",
                r#"{"email":"test@example.com","password":"secret123"}"#.to_owned(),
            ),
        };
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str(), seen.body.clone()),
            expected,
            "request {i}"
        );
        let content_type = if i % 3 == 0 { None } else { Some("application/json") };
        assert_eq!(seen.content_type.as_deref(), content_type, "request {i}");
        assert_eq!(seen.host.as_deref(), Some(server.addr.to_string().as_str()));
    }

    let report = read_json(&json);
    assert_eq!(
        (
            report["requests"].as_u64(),
            report["ok"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(30), Some(30), Some(0))
    );
    assert_eq!(report["mix"], "seed");
    assert_eq!(report["iterations"], 30);
    assert!(report["duration_s"].is_null());
    let rows: Vec<_> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["requests"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        ["GET /api/simple 10", "POST /api/echo 10", "POST /api/auth/login 10"]
    );
    assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
    assert!(stdout.contains("requests   30 in "), "{stdout}");
    assert!(stdout.contains("POST /api/auth/login"), "{stdout}");
}

#[test]
fn warm_up_requests_come_first_with_their_own_counter_and_are_not_reported() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("warm.json");
    workload_exits(
        0,
        &[
            "--url",
            &server.url(),
            "--iterations",
            "9",
            "--warmup",
            "6",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(server.requests().len(), 15);
    assert_eq!(server.echo_iterations(), [1, 4, 1, 4, 7]);
    let report = read_json(&json);
    assert_eq!(
        (report["requests"].as_u64(), report["warmup"].as_u64()),
        (Some(9), Some(6))
    );
}

#[test]
fn a_weighted_pair_list_is_sent_in_its_proportions() {
    let server = Server::start();
    let (stdout, _) = workload_exits(
        0,
        &[
            "--url",
            &server.url(),
            "--mix",
            "/api/simple=2,POST /api/echo=1",
            "--iterations",
            "30",
            "--warmup",
            "0",
        ],
    );
    let counts = server.counts();
    assert_eq!(counts.get("GET /api/simple"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("POST /api/echo"), Some(&10), "{counts:?}");
    assert!(stdout.contains("/api/simple=2,POST /api/echo=1 mix"), "{stdout}");
}

#[test]
fn a_quiet_run_prints_nothing_on_success() {
    let server = Server::start();
    let (stdout, stderr) = workload_exits(0, &["--url", &server.url(), "--iterations", "3", "--warmup", "0", "-q"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));
}
