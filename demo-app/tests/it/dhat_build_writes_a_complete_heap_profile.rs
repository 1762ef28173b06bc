//! The `dhat-heap` build writes `dhat-heap.json` on a clean exit: version 2, program points whose frames reach the
//! SDK's and the app's code, and the totals dh_view shows.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::recording_binary_after_seed_mix;

#[test]
fn dhat_build_writes_a_complete_heap_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (app, profile) = recording_binary_after_seed_mix(dir.path(), 30);
    let (status, stopped) = app.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert_eq!(stopped["sdk"]["exported"], 30, "{stopped}");

    let heap: Value = serde_json::from_str(&std::fs::read_to_string(profile.join("dhat-heap.json")).unwrap()).unwrap();
    assert_eq!(heap["dhatFileVersion"], 2, "dh_view only opens version 2");
    assert_eq!(heap["mode"], "rust-heap");
    let frames: Vec<&str> = heap["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(frames[0], "[root]");
    assert!(
        frames.iter().any(|f| f.contains("drift_sdk::")),
        "the SDK's allocation sites are named"
    );
    assert!(
        frames.iter().any(|f| f.contains("demo_app::")),
        "the app's allocation sites are named"
    );
    let points = heap["pps"].as_array().unwrap();
    let total_bytes: u64 = points.iter().map(|p| p["tb"].as_u64().unwrap()).sum();
    let total_blocks: u64 = points.iter().map(|p| p["tbk"].as_u64().unwrap()).sum();
    assert!(
        total_bytes > 100_000 && total_blocks > 1_000,
        "{total_bytes} B in {total_blocks} blocks"
    );
    for point in points {
        for index in point["fs"].as_array().unwrap() {
            assert!(
                (index.as_u64().unwrap() as usize) < frames.len(),
                "frame index out of the table"
            );
        }
    }
}
