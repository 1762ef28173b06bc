use std::io::Read;

use crate::support::{read_json, workload_exits};

#[test]
fn a_server_that_hangs_up_gives_connection_errors_not_a_hang() {
    // Accepts, reads the request, closes without answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0; 4096];
            let _ = stream.read(&mut buf);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("hangup.json");
    let (stdout, stderr) = workload_exits(
        1,
        &[
            "--url",
            &url,
            "--iterations",
            "6",
            "--warmup",
            "0",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("6 of 6 requests failed (100.00 %: connection × 6)"),
        "{stderr}"
    );
    assert!(stdout.contains("last connection error: "), "{stdout}");
    let report = read_json(&json);
    assert_eq!(report["errors"]["connection"], 6);
    assert_eq!(report["errors"]["status"], serde_json::json!({}));
    assert_eq!(report["latency_us"]["p50"], 0);
}
