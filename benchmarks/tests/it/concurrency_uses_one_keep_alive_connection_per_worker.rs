use crate::support::{Server, read_json, workload_exits};

#[test]
fn concurrency_uses_one_keep_alive_connection_per_worker() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("c4.json");
    let args = [
        "--url",
        &server.url(),
        "--concurrency",
        "4",
        "--iterations",
        "300",
        "--warmup",
        "20",
        "--json",
        json.to_str().unwrap(),
    ];
    workload_exits(0, &args);
    assert_eq!(
        server.connections(),
        4,
        "one connection per worker, kept alive across warm-up and run"
    );
    assert_eq!(server.requests().len(), 320);

    // The index is global across workers: each measured echo iteration arrives exactly once.
    let mut iterations = server.echo_iterations();
    iterations.sort_unstable();
    let mut expected: Vec<u64> = (0..20)
        .filter(|i| i % 3 == 1)
        .chain((0..300).filter(|i| i % 3 == 1))
        .collect();
    expected.sort_unstable();
    assert_eq!(iterations, expected);

    let report = read_json(&json);
    assert_eq!(
        (report["requests"].as_u64(), report["concurrency"].as_u64()),
        (Some(300), Some(4))
    );
}

#[test]
fn a_multi_thread_runtime_sends_the_same_requests() {
    let server = Server::start();
    workload_exits(
        0,
        &[
            "--url",
            &server.url(),
            "--concurrency",
            "3",
            "--threads",
            "2",
            "--iterations",
            "99",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(server.connections(), 3);
    let counts = server.counts();
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [33, 33, 33], "{counts:?}");
}
