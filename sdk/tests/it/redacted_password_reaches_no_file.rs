//! A redact rule on `$.password`: the password appears in no file the SDK writes; the span is kept, carries
//! `transformMetadata`, and its hashes cover the redacted body (T2, §12.6).

use base64::Engine as _;
use drift_sdk::{Drift, Mode};

use crate::support::{Server, read_trace_files, seed_router, send_seed_mix, server_payload_hashes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_password_reaches_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "transforms:\n  http:\n    - matcher: { direction: inbound, pathPattern: \"/api/auth/*\", jsonPath: \"$.password\" }\n      action: { type: redact }\n",
    )
    .unwrap();
    let traces = dir.path().join("traces");
    let drift = Drift::builder()
        .mode(Mode::Record)
        .config_file(&config)
        .traces_dir(&traces)
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 9).await;
    server.stop().await;
    drift.shutdown();

    let mut logins = 0;
    for entry in std::fs::read_dir(&traces).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("secret123"), "the password reached a trace file");
    }
    for (_, lines) in read_trace_files(&traces) {
        let span = &lines[0];
        if span["inputValue"]["target"] != "/api/auth/login" {
            assert!(span.get("transformMetadata").is_none());
            continue;
        }
        logins += 1;
        let body = span["inputValue"]["body"].as_str().unwrap();
        let body = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"email":"test@example.com","password":"REDACTED_fcf730b6d95236ecd3c9fc2d92d7b6b2bb061514961aec041d6c7a7192f592e4"}"#
        );
        assert_eq!(span["inputValue"]["bodySize"], body.len());
        assert_eq!(
            span["transformMetadata"],
            serde_json::json!({"transformed": true, "actions": [{"type": "redact", "field": "jsonPath:$.password", "reason": "transforms"}]})
        );
        assert_eq!(span["status"]["code"], 1);
        let (value_hash, schema_hash) = server_payload_hashes(&span["inputValue"]);
        assert_eq!(span["inputValueHash"], value_hash);
        assert_eq!(span["inputSchemaHash"], schema_hash);
    }
    assert_eq!(logins, 3);
}
