//! N requests recorded → exactly N spans on disk when `shutdown()` returns, even with a long scheduled delay (F4),
//! and `shutdown()` / `flush()` are safe to repeat (F12).

use std::time::Duration;

use drift_sdk::{Drift, Mode};

use crate::support::{Server, read_trace_files, seed_router, send_seed_mix};

/// An SDK writing trace files into `dir` only when a batch fills, on flush, or at shutdown.
fn recording_to(dir: &std::path::Path) -> Drift {
    Drift::builder()
        .mode(Mode::Record)
        .traces_dir(dir)
        .env_vars(Vec::new())
        .scheduled_delay(Duration::from_secs(3600))
        .init()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_every_accepted_span() {
    let dir = tempfile::tempdir().unwrap();
    let drift = recording_to(dir.path());
    assert!(drift.flush(), "F12: flush before any span returns at once");
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 45).await;
    server.stop().await;
    assert_eq!(
        read_trace_files(dir.path()).len(),
        0,
        "nothing is written before the timer, a full batch or shutdown"
    );
    drift.shutdown();
    let files = read_trace_files(dir.path());
    assert_eq!(files.len(), 45);
    assert_eq!(files.iter().map(|(_, lines)| lines.len()).sum::<usize>(), 45);
    assert_eq!(drift.stats().exported, 45);
    drift.shutdown(); // idempotent
    assert!(drift.flush());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_writes_what_was_recorded_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let drift = recording_to(dir.path());
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 6).await;
    assert!(drift.flush());
    assert_eq!(read_trace_files(dir.path()).len(), 6);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_shuts_down_and_writes_everything() {
    // §10.4: dropping the last SDK handle performs shutdown().
    let dir = tempfile::tempdir().unwrap();
    let drift = recording_to(dir.path());
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 5).await;
    server.stop().await; // drops the router, and with it the layer's handle
    assert_eq!(read_trace_files(dir.path()).len(), 0);
    drop(drift);
    // A connection task of the stopped server may still hold a clone of the layer for a moment; whichever handle
    // goes last shuts the SDK down and writes the spans.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_trace_files(dir.path()).len() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(read_trace_files(dir.path()).len(), 5);
}
