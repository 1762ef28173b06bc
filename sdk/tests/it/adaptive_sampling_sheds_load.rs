//! Adaptive sampling (§11.3) end to end: while the sink is stuck, the small queue fills and records are dropped;
//! the next update of the sampler (at most every 2 s, on the export thread) sees the new drops and pauses sampling,
//! so later requests are shed (`sampled_out`) and still answered (R8).

use std::time::{Duration, Instant};

use drift_sdk::{CleanSpan, Drift, ExportOutcome, InMemorySpans, Mode, SamplingMode, SpanExporter, Stats};

use crate::support::{Server, seed_router};

/// A sink whose first export blocks until the test drops the other end of the gate; later exports go to `spans`.
#[derive(Debug)]
struct GatedSink {
    gate: crossbeam_channel::Receiver<()>,
    spans: InMemorySpans,
}

impl SpanExporter for GatedSink {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        let _ = self.gate.recv(); // blocks until the sender is dropped, then returns at once
        drift_sdk::InMemoryExporter::new(self.spans.clone()).export(batch)
    }
}

async fn get_simple(client: &reqwest::Client, server: &Server) {
    let r = client.get(server.url("/api/simple")).send().await.unwrap();
    assert!(r.status().is_success(), "the app answers whatever the sampler decides");
    r.bytes().await.unwrap();
}

/// Polls `drift.stats()` until `done` holds, for at most `limit`.
async fn wait_for(drift: &Drift, limit: Duration, done: impl Fn(&Stats) -> bool) -> Stats {
    let started = Instant::now();
    loop {
        let stats = drift.stats();
        if done(&stats) || started.elapsed() > limit {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_sampling_sheds_load() {
    let (release, gate) = crossbeam_channel::bounded::<()>(0);
    let spans = InMemorySpans::new();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .env_vars(Vec::new())
        .sampling_mode(SamplingMode::Adaptive)
        .sampling_rate(1.0)
        .min_sampling_rate(0.001)
        .log_sampling_transitions(false)
        .exporter(Box::new(GatedSink {
            gate,
            spans: spans.clone(),
        }))
        .queue_capacity(4)
        .batch_size(4)
        .scheduled_delay(Duration::from_millis(10))
        .init()
        .unwrap();
    let started = Instant::now();
    let server = Server::start(seed_router().layer(drift.layer())).await;
    let client = reqwest::Client::new();

    // 1. One record; the export thread takes it (after the sampler's first update, which sees no drops) and
    //    blocks in the sink.
    get_simple(&client, &server).await;
    let stats = wait_for(&drift, Duration::from_secs(2), |s| s.recorded == 1).await;
    assert_eq!(stats.recorded, 1, "{stats:?}");
    let t = Instant::now();
    while drift.queued() > 0 && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(drift.queued(), 0, "the export thread took the first record");

    // 2. With the sink stuck, 4 records fit in the queue and the rest are dropped. No sampler update can run
    //    while the export thread is blocked, so nothing is shed yet.
    for _ in 0..12 {
        get_simple(&client, &server).await;
    }
    let stats = wait_for(&drift, Duration::from_secs(2), |s| s.recorded + s.dropped == 13).await;
    assert_eq!(
        (stats.recorded, stats.dropped, stats.sampled_out),
        (5, 8, 0),
        "the queue holds 4 records; the rest are dropped: {stats:?}"
    );

    // 3. Unstick the sink. The sampler's next update (2 s after its first) sees 8 new drops: hard brake, a 15 s
    //    pause. Requests sent meanwhile are recorded until then.
    drop(release);
    let stats = wait_for(&drift, Duration::from_secs(2), |s| s.exported == 5).await;
    assert_eq!(stats.exported, 5, "the unstuck sink exports what was queued: {stats:?}");
    let deadline = Instant::now() + Duration::from_secs(4);
    while drift.stats().sampled_out == 0 && Instant::now() < deadline {
        get_simple(&client, &server).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = drift.stats();
    assert_eq!(paused.sampled_out, 1, "the sampler never shed a request: {paused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the pause came too late: {:?}",
        started.elapsed()
    );

    // 4. During the pause every request is shed, and nothing more is recorded or dropped.
    for _ in 0..10 {
        get_simple(&client, &server).await;
    }
    server.stop().await;
    drift.shutdown();
    let end = drift.stats();
    assert_eq!(end.sampled_out, 11, "every request during the pause is shed: {end:?}");
    assert_eq!(
        (end.recorded, end.dropped),
        (paused.recorded, paused.dropped),
        "a shed request makes no record: {end:?}"
    );
    assert_eq!(end.exported, end.recorded, "{end:?}");
    assert_eq!(spans.len() as u64, end.recorded);
}
