//! `recording.enable_env_var_recording: true` makes `init()` record one `ENV_VARS_SNAPSHOT` span, in a trace (and so
//! a file) of its own, with the variables the SDK resolved against (§14.4); without the key there is none.

use drift_sdk::{Drift, Mode};
use serde_json::json;

use crate::support::{Server, read_trace_files, seed_router, send_seed_mix};

/// Records one seed request with `config` as the config file; returns the trace files.
async fn record_with_config(config: &str) -> Vec<(String, Vec<serde_json::Value>)> {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let traces = dir.path().join("traces");
    let drift = Drift::builder()
        .mode(Mode::Record)
        .config_file(&config_path)
        .traces_dir(&traces)
        .env_vars(vec![("A".into(), "1".into())])
        .init()
        .unwrap();
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 1).await;
    server.stop().await;
    drift.shutdown();
    let files = read_trace_files(&traces);
    let stats = drift.stats();
    let lines: usize = files.iter().map(|(_, l)| l.len()).sum();
    assert_eq!(
        (stats.recorded, stats.exported, stats.blocked),
        (lines as u64, lines as u64, 0),
        "{stats:?}"
    );
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_vars_snapshot_is_recorded_at_init() {
    let files = record_with_config("recording:\n  enable_env_var_recording: true\n").await;
    assert_eq!(
        files.len(),
        2,
        "the snapshot and the request are two traces: {files:#?}"
    );
    let snapshots: Vec<_> = files
        .iter()
        .filter(|(_, lines)| lines.iter().any(|l| l["name"] == "ENV_VARS_SNAPSHOT"))
        .collect();
    assert_eq!(snapshots.len(), 1, "{files:#?}");
    let (name, lines) = snapshots[0];
    assert_eq!(lines.len(), 1, "{name}: the snapshot is alone in its file");
    let span = &lines[0];
    assert!(name.ends_with(&format!("_trace_{}.jsonl", span["traceId"].as_str().unwrap())));
    assert_eq!(span["kind"], 1, "INTERNAL");
    assert_eq!(span["name"], "ENV_VARS_SNAPSHOT");
    assert_eq!(span["packageName"], "os.environ");
    assert_eq!(span["instrumentationName"], "");
    assert_eq!(span["submoduleName"], "");
    assert_eq!(span["packageType"], 0);
    assert_eq!(span["isPreAppStart"], true);
    assert_eq!(span["isRootSpan"], false);
    assert_eq!(span["parentSpanId"], "");
    assert_eq!(span["status"], json!({"code": 0, "message": ""}));
    assert_eq!(span["inputValue"], json!({}));
    assert_eq!(span["outputValue"], json!({"ENV_VARS": {"A": "1"}}));
    assert_eq!(span["environment"], "development");
    assert!(
        span["outputSchema"]["properties"]["ENV_VARS"].get("encoding").is_none(),
        "no merges"
    );

    let request = files.iter().find(|(n, _)| n != name).unwrap();
    assert_eq!(request.1.len(), 1);
    assert_eq!(request.1[0]["kind"], 2);
    assert_ne!(request.1[0]["traceId"], span["traceId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_there_is_no_snapshot() {
    let files = record_with_config("recording:\n  enable_env_var_recording: false\n").await;
    assert_eq!(files.len(), 1, "{files:#?}");
    assert_eq!(files[0].1.len(), 1);
    assert_eq!(files[0].1[0]["name"], "GET /api/simple");
}
