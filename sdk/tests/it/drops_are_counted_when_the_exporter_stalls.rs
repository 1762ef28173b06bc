//! Backpressure: with the sink stalled, requests complete without waiting for it, the queue bounds what is held,
//! and what does not fit is dropped and counted (F6).

use std::time::{Duration, Instant};

use drift_sdk::{CleanSpan, Drift, ExportOutcome, Mode, SpanExporter};

use crate::support::{Server, seed_router};

/// A sink that blocks every export until the test drops the other end of the gate.
#[derive(Debug)]
struct StalledSink {
    gate: crossbeam_channel::Receiver<()>,
}

impl SpanExporter for StalledSink {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        let _ = self.gate.recv(); // returns once the sender is dropped
        ExportOutcome {
            exported: batch.len() as u64,
            failed: 0,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_are_counted_when_the_exporter_stalls() {
    let (closed, gate) = crossbeam_channel::bounded::<()>(0);
    let drift = Drift::builder()
        .mode(Mode::Record)
        .env_vars(Vec::new())
        .exporter(Box::new(StalledSink { gate }))
        .queue_capacity(8)
        .batch_size(4)
        .scheduled_delay(Duration::from_millis(10))
        .init()
        .unwrap();
    let server = Server::start(seed_router().layer(drift.layer())).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for _ in 0..100 {
        let r = client.get(server.url("/api/simple")).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "requests waited for the stalled sink: {elapsed:?}"
    );
    let stats = drift.stats();
    // At most one batch is inside the stalled sink and the queue holds at most 8 records.
    assert!(
        stats.recorded <= 8 + 4,
        "the queue did not bound the records held: {stats:?}"
    );
    assert_eq!(stats.recorded + stats.dropped, 100, "{stats:?}");
    assert!(drift.queued() <= 8);
    drop(closed);
    server.stop().await;
    drift.shutdown();
    let stats = drift.stats();
    assert_eq!(
        stats.exported, stats.recorded,
        "everything accepted is exported once the sink moves: {stats:?}"
    );
}
