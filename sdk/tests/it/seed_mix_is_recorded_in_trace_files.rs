//! The seed mix through an axum app wrapped in the layer: one file per trace, every line as the contract says, and
//! every hash equal to one recomputed here independently.

use base64::Engine as _;
use drift_sdk::{Drift, Mode};
use serde_json::Value;

use crate::support::{Server, read_trace_files, seed_router, send_seed_mix, server_payload_hashes};

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_mix_is_recorded_in_trace_files() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("nested/.tusk/traces"); // F1: created at init
    let drift = Drift::builder()
        .mode(Mode::Record)
        .traces_dir(&traces)
        .env_vars(Vec::new())
        .current_dir(dir.path())
        .init()
        .unwrap();
    assert!(traces.is_dir());
    let server = Server::start(seed_router().layer(drift.layer())).await;
    let sent = send_seed_mix(&server, 30).await;
    server.stop().await;
    drift.shutdown();

    let stats = drift.stats();
    assert_eq!(
        (stats.recorded, stats.exported, stats.dropped, stats.failed),
        (30, 30, 0, 0),
        "{stats:?}"
    );
    let files = read_trace_files(&traces);
    assert_eq!(files.len(), 30, "one file per trace");

    let mut bodies_seen: Vec<Option<String>> = Vec::new();
    for (name, lines) in &files {
        assert_eq!(lines.len(), 1, "{name}: one SERVER span per seed trace");
        let span = &lines[0];
        let trace_id = span["traceId"].as_str().unwrap();
        assert!(is_lower_hex(trace_id, 32), "{trace_id}");
        assert!(name.ends_with(&format!("_trace_{trace_id}.jsonl")), "{name}");
        assert!(is_lower_hex(span["spanId"].as_str().unwrap(), 16));
        assert_eq!(span["parentSpanId"], "");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["packageType"], 1);
        assert_eq!(span["packageName"], "axum");
        assert_eq!(span["instrumentationName"], "AxumInstrumentation");
        assert_eq!(span["status"], serde_json::json!({"code": 1, "message": ""}));
        assert_eq!(span["isRootSpan"], true);
        assert_eq!(span["isPreAppStart"], false);
        assert_eq!(span["isUsed"], true);
        assert_eq!(span["stackTrace"], "");
        assert_eq!(span["environment"], "development");
        assert!(span.get("metadata").is_none());
        assert!(span["timestamp"]["seconds"].as_i64().unwrap() > 1_700_000_000);
        assert!(span["duration"]["nanos"].as_i64().unwrap() < 1_000_000_000);

        let input = &span["inputValue"];
        let method = input["method"].as_str().unwrap();
        let target = input["target"].as_str().unwrap();
        assert_eq!(span["name"], format!("{method} {target}"));
        assert_eq!(span["submoduleName"], method);
        assert_eq!(
            input["url"],
            format!("http://{}{target}", input["headers"]["host"].as_str().unwrap())
        );
        assert_eq!(input["httpVersion"], "1.1");
        assert_eq!(input["remoteAddress"], "127.0.0.1");
        assert!(input["remotePort"].as_u64().unwrap() > 0);
        let body = input.get("body").map(|b| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_str().unwrap())
                .unwrap();
            assert_eq!(input["bodySize"], bytes.len());
            String::from_utf8(bytes).unwrap()
        });
        if method == "GET" {
            assert!(body.is_none(), "S3: a GET records no body");
        }
        bodies_seen.push(body);

        let output = &span["outputValue"];
        assert_eq!(output["statusCode"], 200);
        assert_eq!(output["statusMessage"], "OK");
        assert_eq!(output["headers"]["content-type"], "application/json");
        let response = base64::engine::general_purpose::STANDARD
            .decode(output["body"].as_str().unwrap())
            .unwrap();
        let response: Value = serde_json::from_slice(&response).unwrap();
        match target {
            "/api/simple" => assert_eq!(response["message"], "Hello World"),
            "/api/echo" => assert_eq!(response["data"], "test"),
            "/api/auth/login" => assert_eq!(response["user"]["email"], "test@example.com"),
            other => panic!("unexpected target {other}"),
        }

        // Merges as §4.4 says, in file form.
        assert_eq!(span["inputSchema"]["properties"]["headers"]["matchImportance"], 0.0);
        assert_eq!(span["outputSchema"]["properties"]["body"]["encoding"], 1);
        assert!(span["outputSchema"]["properties"]["body"].get("decodedType").is_none());

        let (value_hash, schema_hash) = server_payload_hashes(input);
        assert_eq!(span["inputValueHash"], value_hash, "{name}: input value hash");
        assert_eq!(span["inputSchemaHash"], schema_hash, "{name}: input schema hash");
        let (value_hash, schema_hash) = server_payload_hashes(output);
        assert_eq!(span["outputValueHash"], value_hash, "{name}: output value hash");
        assert_eq!(span["outputSchemaHash"], schema_hash, "{name}: output schema hash");
    }
    let mut expected: Vec<Option<String>> = sent;
    expected.sort();
    bodies_seen.sort();
    assert_eq!(bodies_seen, expected, "every request body is recorded as sent");
}
