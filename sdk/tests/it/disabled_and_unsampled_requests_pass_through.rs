//! Mode DISABLED records nothing and writes nothing (F11); an unsampled request gets no span, its outbound calls
//! are not recorded, and its response is unchanged (R2, S14).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use drift_sdk::{Drift, InMemorySpans, Mode};
use reqwest_middleware::ClientWithMiddleware;

use crate::support::{Server, seed_router, send_seed_mix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_mode_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let drift = Drift::builder()
        .traces_dir(&traces)
        .env_vars(Vec::new())
        .init()
        .unwrap(); // default mode
    assert!(!drift.is_recording());
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 6).await;
    server.stop().await;
    drift.shutdown();
    assert!(!traces.exists(), "DISABLED creates no directory and writes no file");
    assert_eq!(drift.stats(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_and_their_calls_are_not_recorded() {
    let spans = InMemorySpans::new();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(0.0)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let upstream = Server::start(seed_router()).await;
    let http: ClientWithMiddleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(drift.client_middleware())
        .build();
    let app = Router::new()
        .route(
            "/api/proxy",
            get(|State((http, url)): State<(ClientWithMiddleware, String)>| async move {
                http.get(url).send().await.unwrap().text().await.unwrap()
            }),
        )
        .with_state((http, upstream.url("/api/simple")))
        .layer(drift.layer());
    let server = Server::start(app).await;
    for _ in 0..5 {
        let body = reqwest::get(server.url("/api/proxy"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("Hello World"), "the response is unchanged: {body}");
    }
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();
    assert!(spans.is_empty());
    let stats = drift.stats();
    assert_eq!((stats.sampled_out, stats.recorded), (5, 0));
}
