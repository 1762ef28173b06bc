//! Outbound calls through the middleware: CLIENT spans that are children of the request's SERVER span, in the same
//! file, before it (§5, §8.2); pre-app-start calls as their own roots (S9); nothing outside a request once the app
//! is ready (S8); failures and 4xx recorded (S11, S12).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use drift_sdk::{Drift, Mode};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

use crate::support::{Server, read_trace_files};

async fn upstream() -> Server {
    let app = Router::new()
        .route(
            "/upstream/items",
            post(|| async { axum::Json(json!({"id": 7, "ok": true})) }),
        )
        .route("/upstream/empty", get(|| async { "" }))
        .route(
            "/upstream/missing",
            get(|| async { (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({"error": "nope"}))) }),
        );
    Server::start(app).await
}

/// An SDK recording every request into `dir`, with no environment snapshot span.
fn recording(dir: &std::path::Path) -> Drift {
    Drift::builder()
        .mode(Mode::Record)
        .traces_dir(dir)
        .env_vars(Vec::new())
        .init()
        .unwrap()
}

fn client(drift: &Drift) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(drift.client_middleware())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_become_client_spans() {
    let dir = tempfile::tempdir().unwrap();
    let drift = recording(dir.path());
    let upstream = upstream().await;
    let upstream_url = upstream.url("/upstream/items?page=2&tag=a&tag=b");
    let http = client(&drift);
    let app = Router::new()
        .route(
            "/api/proxy",
            get(|State((http, url)): State<(ClientWithMiddleware, String)>| async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(r#"{"name":"item-7"}"#)
                    .send()
                    .await
                    .unwrap();
                let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                axum::Json(v)
            }),
        )
        .with_state((http, upstream_url.clone()))
        .layer(drift.layer());
    let server = Server::start(app).await;
    drift.mark_app_ready();
    let r = reqwest::get(server.url("/api/proxy")).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
        json!({"id": 7, "ok": true}),
        "the app sees the upstream's body"
    );
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();

    let files = read_trace_files(dir.path());
    assert_eq!(files.len(), 1);
    let lines = &files[0].1;
    assert_eq!(lines.len(), 2);
    let (client_span, server_span) = (&lines[0], &lines[1]);
    assert_eq!(client_span["kind"], 3, "the CLIENT span ends, and is written, first");
    assert_eq!(server_span["kind"], 2);
    assert_eq!(client_span["traceId"], server_span["traceId"]);
    assert_eq!(client_span["parentSpanId"], server_span["spanId"]);
    assert_eq!(client_span["isRootSpan"], false);
    assert_eq!(client_span["isPreAppStart"], false);
    assert_eq!(client_span["packageName"], "http");
    assert_eq!(client_span["instrumentationName"], "ReqwestInstrumentation");
    assert_eq!(client_span["name"], "POST /upstream/items");
    let input = &client_span["inputValue"];
    assert_eq!(input["url"], upstream_url);
    assert_eq!(input["protocol"], "http");
    assert_eq!(input["hostname"], "127.0.0.1");
    assert_eq!(input["path"], "/upstream/items");
    assert_eq!(input["query"], json!({"page": "2", "tag": ["a", "b"]}));
    assert_eq!(input["headers"], json!({"content-type": "application/json"}));
    assert_eq!(input["body"], "eyJuYW1lIjoiaXRlbS03In0=");
    assert_eq!(input["bodySize"], 17);
    let output = &client_span["outputValue"];
    assert_eq!(output["statusCode"], 200);
    assert_eq!(output["body"], "eyJpZCI6Nywib2siOnRydWV9");
    assert_eq!(output["bodySize"], 18);
    let body_schema = &client_span["outputSchema"]["properties"]["body"];
    assert_eq!(
        body_schema["type"], 6,
        "a JSON body's schema is inferred from the parsed body"
    );
    assert_eq!(body_schema["decodedType"], 1);
    assert_eq!(body_schema["encoding"], 1);
    assert_eq!(client_span["status"], json!({"code": 1, "message": ""}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_requests_are_pre_app_start_roots_or_not_recorded() {
    let (drift, spans) = crate::support::record_in_memory();
    let upstream = upstream().await;
    let http = client(&drift);
    // S9: before readiness, with no inbound span.
    http.post(upstream.url("/upstream/items"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // S11: a 404 is recorded in full with status ERROR.
    http.get(upstream.url("/upstream/missing"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // S12: a connect failure.
    let err = http.get("http://127.0.0.1:9/nothing").send().await.unwrap_err();
    assert!(err.is_connect());
    // S13: an empty response body.
    http.get(upstream.url("/upstream/empty"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    drift.mark_app_ready();
    // S8: after readiness, outside any request: passes through unrecorded.
    http.post(upstream.url("/upstream/items"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    upstream.stop().await;
    drift.shutdown();

    let all = spans.all();
    assert_eq!(all.len(), 4, "{all:#?}");
    for s in &all {
        assert!(s.is_pre_app_start);
        assert!(!s.is_root_span, "a parentless pre-app-start call is not a root span");
        assert!(s.parent_span_id.is_none());
    }
    assert_ne!(
        all[0].trace_id, all[1].trace_id,
        "each parentless call is a trace of its own"
    );
    assert_eq!(all[1].status_code, 2);
    assert_eq!(all[1].status_message, "HTTP 404");
    assert_eq!(all[2].status_code, 2);
    let out = all[2].output_value.as_object().unwrap();
    assert_eq!(out.get("errorName").and_then(|v| v.as_str()), Some("ConnectError"));
    // S10: `query` is `{}` without a query; a request with no body has no `body` key.
    let input = all[0].input_value.as_object().unwrap();
    assert_eq!(
        input.get("query"),
        Some(&drift_sdk::json::Value::Object(Default::default()))
    );
    assert!(input.get("body").is_none());
    // S13: an empty response body is recorded as "" with size 0.
    let out = all[3].output_value.as_object().unwrap();
    assert_eq!(out.get("body").and_then(|v| v.as_str()), Some(""));
    assert_eq!(out.get("bodySize"), Some(&drift_sdk::json::Value::Int(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upstream_response_reaches_the_app_and_blocks_the_trace() {
    // §13.1 / §5.4: the CLIENT span passes the size gate, so its trace is blocked and the SERVER span that ends
    // later is discarded too; the app still gets every byte.
    const SIZE: usize = 1 << 20;
    let upstream = Server::start(Router::new().route(
        "/big",
        get(|| async { ([("content-type", "application/json")], vec![b'7'; SIZE]) }),
    ))
    .await;
    let (drift, spans) = crate::support::record_in_memory();
    let app = Router::new()
        .route(
            "/api/proxy",
            get(|State((http, url)): State<(ClientWithMiddleware, String)>| async move {
                let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
                assert!(body.iter().all(|&b| b == b'7'));
                body.len().to_string()
            }),
        )
        .with_state((client(&drift), upstream.url("/big")))
        .layer(drift.layer());
    let server = Server::start(app).await;
    let answer = reqwest::get(server.url("/api/proxy"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, SIZE.to_string());
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();
    assert!(
        spans.is_empty(),
        "{:?}",
        spans.all().iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let stats = drift.stats();
    assert_eq!((stats.recorded, stats.blocked), (2, 2), "{stats:?}");
}

/// The SDK's own export traffic carries `x-td-skip-instrumentation: true` (§9.1); a call with that header through an
/// instrumented client is never recorded, so export traffic cannot become spans even if it passes the middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_marked_skip_instrumentation_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let drift = recording(dir.path());
    let upstream = upstream().await;
    let http = client(&drift);
    let app = Router::new()
        .route(
            "/api/export-like",
            get(|State((http, url)): State<(ClientWithMiddleware, String)>| async move {
                let r = http
                    .post(url)
                    .header(drift_sdk::SKIP_INSTRUMENTATION_HEADER, "true")
                    .body("x")
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16().to_string()
            }),
        )
        .with_state((http, upstream.url("/upstream/items")))
        .layer(drift.layer());
    drift.mark_app_ready();
    let server = Server::start(app).await;
    let answer = reqwest::get(server.url("/api/export-like")).await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "200");
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();
    let files = read_trace_files(dir.path());
    let spans: Vec<&Value> = files.iter().flat_map(|(_, spans)| spans).collect();
    assert_eq!(spans.len(), 1, "only the SERVER span: {spans:#?}");
    assert_eq!(spans[0]["kind"], 2);
    assert_eq!(drift.stats().recorded, 1);
}
