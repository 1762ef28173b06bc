use std::time::{Duration, Instant};

use crate::support::workload_exits;

#[test]
fn bad_flags_exit_2_with_clap_s_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--url", "http://127.0.0.1:1", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (&["--iterations", "5"], "--url <URL>"),
        (
            &["--url", "http://127.0.0.1:1", "--mix", "nope"],
            "unknown mix \"nope\"",
        ),
        (
            &["--url", "http://127.0.0.1:1", "--mix", "api/echo=1"],
            "must be a path starting with \"/\"",
        ),
        (
            &["--url", "http://127.0.0.1:1", "--mix", "@/nonexistent/mix.json"],
            "reading mix file /nonexistent/mix.json",
        ),
        (
            &["--url", "http://127.0.0.1:1", "--iterations", "5", "--duration", "1s"],
            "cannot be used with",
        ),
        (
            &["--url", "http://127.0.0.1:1", "--duration", "soon"],
            "expected e.g. 10s",
        ),
        (&["--url", "https://127.0.0.1:1"], "https is not supported"),
    ];
    for (args, message) in cases {
        let (_, stderr) = workload_exits(2, args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_url_fails_quickly() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let (stdout, stderr) = workload_exits(1, &["--url", &url]);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert!(
        stderr.starts_with(&format!("workload: error: cannot connect to {url}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(stdout, "");
}
