//! Drop rules (§12.5): an inbound rule lets the request through unrecorded and counts it as `blocked` (T1, from the
//! builder and from the config file); an outbound rule refuses the call before it is sent, the app gets the
//! contract's error, and a CLIENT span records the drop (T7, §5.5).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use drift_sdk::{Drift, DriftBuilder, InMemorySpans, Mode, TransformRule};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

use crate::support::{Server, seed_router, span_json};

fn private_app(drift: &Drift) -> Router {
    seed_router()
        .route(
            "/private/{id}",
            get(|Path(id): Path<String>| async move { axum::Json(json!({"id": id, "private": true})) }),
        )
        .layer(drift.layer())
}

/// GET /private/123 (and with a query) answers normally and records nothing; GET /api/simple still records.
async fn check_inbound_drop(builder: DriftBuilder) {
    let spans = InMemorySpans::new();
    let drift = builder
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let server = Server::start(private_app(&drift)).await;
    let r = reqwest::get(server.url("/private/123")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
        json!({"id": "123", "private": true}),
        "T1: the app responds normally"
    );
    // The pattern is matched against the path alone (§12.2): a query does not defeat it.
    let r = reqwest::get(server.url("/private/456?token=abc")).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
        json!({"id": "456", "private": true})
    );
    let r = reqwest::get(server.url("/api/simple")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    server.stop().await;
    drift.shutdown();

    let names: Vec<String> = spans.all().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["GET /api/simple"], "T1: no span for the dropped request");
    let stats = drift.stats();
    assert_eq!(
        (stats.recorded, stats.blocked, stats.sampled_out, stats.exported),
        (1, 2, 0, 1),
        "T1: the drop counts as blocked, not as sampled out: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_drop_rule_from_the_builder_skips_the_request() {
    check_inbound_drop(Drift::builder().transforms(vec![TransformRule::inbound().path("/private/*").drop()])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_drop_rule_from_the_config_file_skips_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "transforms:\n  http:\n    - matcher: { direction: inbound, pathPattern: \"/private/*\" }\n      action: { type: drop }\n",
    )
    .unwrap();
    check_inbound_drop(Drift::builder().config_file(&config)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_drop_rule_refuses_the_call_and_records_it() {
    let secret_hits = Arc::new(AtomicUsize::new(0));
    let open_hits = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let (secret_hits, open_hits) = (secret_hits.clone(), open_hits.clone());
        Server::start(
            Router::new()
                .route(
                    "/upstream/secret",
                    get(move || async move {
                        secret_hits.fetch_add(1, Ordering::SeqCst);
                        "secret"
                    }),
                )
                .route(
                    "/upstream/open",
                    get(move || async move {
                        open_hits.fetch_add(1, Ordering::SeqCst);
                        "open"
                    }),
                ),
        )
        .await
    };
    let secret_url = upstream.url("/upstream/secret");
    let open_url = upstream.url("/upstream/open");

    let spans = InMemorySpans::new();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .transforms(vec![TransformRule::outbound().path("/upstream/secret*").drop()])
        .init()
        .unwrap();
    let http: ClientWithMiddleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(drift.client_middleware())
        .build();
    let app = Router::new()
        .route(
            "/api/call",
            get(
                |State((http, secret, open)): State<(ClientWithMiddleware, String, String)>| async move {
                    let secret = match http.get(secret).send().await {
                        Ok(r) => json!({"ok": r.text().await.unwrap()}),
                        Err(e) => json!({"error": e.to_string()}),
                    };
                    let open = http.get(open).send().await.unwrap().text().await.unwrap();
                    axum::Json(json!({"secret": secret, "open": open}))
                },
            ),
        )
        .with_state((http, secret_url.clone(), open_url.clone()))
        .layer(drift.layer());
    let server = Server::start(app).await;
    let r = reqwest::get(server.url("/api/call")).await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();

    assert_eq!(
        answer["secret"],
        json!({"error": format!("Outbound request to {secret_url} was dropped by transform rule")}),
        "T7: the app receives the contract's error"
    );
    assert_eq!(answer["open"], "open", "a call the rule does not match is sent");
    assert_eq!(
        secret_hits.load(Ordering::SeqCst),
        0,
        "T7: the dropped request is not sent"
    );
    assert_eq!(open_hits.load(Ordering::SeqCst), 1);

    let all: Vec<Value> = spans.all().iter().map(span_json).collect();
    assert_eq!(all.len(), 3, "dropped CLIENT, open CLIENT, SERVER: {all:#?}");
    let server_span = all.iter().find(|s| s["kind"] == 2).expect("the SERVER span");
    let dropped: Vec<&Value> = all
        .iter()
        .filter(|s| s["kind"] == 3 && s["outputValue"].get("bodyProcessingError").is_some())
        .collect();
    assert_eq!(dropped.len(), 1, "T7: one CLIENT span records the drop: {all:#?}");
    let dropped = dropped[0];
    assert_eq!(dropped["inputValue"], json!({}), "T7: input {{}}");
    assert_eq!(dropped["outputValue"], json!({"bodyProcessingError": "dropped"}));
    assert_eq!(dropped["status"], json!({"code": 2, "message": "Dropped by transform"}));
    assert_eq!(
        dropped["transformMetadata"],
        json!({"transformed": true, "actions": [
            {"type": "drop", "field": "entire_span", "reason": "transforms", "description": "unknown"}
        ]}),
        "§12.6: a span a drop action applied to carries its metadata; a rule without a target is `unknown`"
    );
    assert_eq!(dropped["name"], "GET /upstream/secret");
    assert_eq!(dropped["traceId"], server_span["traceId"]);
    assert_eq!(dropped["parentSpanId"], server_span["spanId"]);
    assert_eq!(dropped["isRootSpan"], false);
    assert_eq!(dropped["isPreAppStart"], false);
    assert_eq!(
        dropped["inputSchema"]["properties"],
        json!({}),
        "§5.5: the input carries no merges"
    );
    assert!(
        dropped["outputSchema"]["properties"]["bodyProcessingError"]
            .get("encoding")
            .is_none(),
        "§5.5: the output carries no merges"
    );
    let open = all
        .iter()
        .find(|s| s["kind"] == 3 && s["inputValue"]["url"] == open_url)
        .expect("the open call's CLIENT span");
    assert_eq!(open["status"], json!({"code": 1, "message": ""}));
    assert_eq!(server_span["status"], json!({"code": 1, "message": ""}));
    let stats = drift.stats();
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (3, 0, 3), "{stats:?}");
}
