//! The `timeline` build writes a complete Chrome trace on a clean exit: a closed JSON array of B/E events, one
//! `request` span per request (one slice per poll, told apart by their `seq` argument), and the SDK's stages on the request and export threads.

use std::collections::{BTreeMap, HashMap};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{blocking_client, recording_binary_after_seed_mix};

#[test]
fn timeline_build_writes_a_complete_chrome_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (app, profile) = recording_binary_after_seed_mix(dir.path(), 30);
    let client = blocking_client();
    let response = client
        .post(format!("{}/api/outbound", app.url))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = app.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");

    let text = std::fs::read_to_string(profile.join("timeline.json")).unwrap();
    let events: Vec<Value> = serde_json::from_str(&text).expect("a closed JSON array");
    let mut begins: BTreeMap<String, usize> = BTreeMap::new();
    let mut requests = std::collections::BTreeSet::new();
    let mut open: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for event in &events {
        let key = (event["pid"].as_u64().unwrap_or(0), event["tid"].as_u64().unwrap_or(0));
        let name = event["name"].as_str().unwrap_or("").to_owned();
        match event["ph"].as_str() {
            Some("B") => {
                assert!(event["ts"].as_f64().is_some(), "{event}");
                *begins.entry(name.clone()).or_default() += 1;
                if name == "request" {
                    let seq = event["args"]["seq"].as_str().and_then(|s| s.parse::<u64>().ok());
                    requests.insert(seq.expect("request slices carry their seq"));
                }
                open.entry(key).or_default().push(name);
            }
            Some("E") => {
                let top = open.get_mut(&key).and_then(Vec::pop);
                assert_eq!(top.as_deref(), Some(name.as_str()), "E without its B on thread {key:?}");
            }
            _ => {}
        }
    }
    assert!(open.values().all(Vec::is_empty), "unclosed spans: {open:?}");
    assert_eq!(requests, (0..31).collect(), "{begins:?}");
    // Per span: 31 SERVER and 2 CLIENT spans.
    for stage in ["capture", "finalize", "on_end", "to_clean_span", "write_line"] {
        assert_eq!(begins.get(stage), Some(&33), "stage {stage}: {begins:?}");
    }
    // Per batch, on the export thread.
    assert!(begins.get("export").is_some_and(|&n| n >= 1), "{begins:?}");
}
