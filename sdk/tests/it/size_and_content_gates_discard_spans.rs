//! The gates of §13 through a real app: a ~1 MiB response (L6), an HTML response (L7), a 500 (L2) and an upstream
//! PNG inside a sampled request (L8) record nothing and count as `blocked`, while the client and the app still get
//! every byte; an unmapped content type passes (L9); a 15 000-byte request body is stored whole (S4) and a ~1 MiB one
//! reaches the handler whole but records nothing.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use base64::Engine as _;
use drift_sdk::{Drift, InMemorySpans, Mode, Stats};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

use crate::support::{Server, span_json};

/// A JSON body of a little over 1 MiB.
fn medium_json() -> String {
    format!(r#"{{"data":"{}"}}"#, "x".repeat(1 << 20))
}

const HTML: &str = "<!doctype html><html><body><h1>Hello</h1></body></html>";

/// An 8-byte PNG signature followed by bytes that are not UTF-8.
fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend((0..2000u32).map(|i| (i % 256) as u8));
    bytes
}

/// `len` bytes that are not all the same and not UTF-8.
fn request_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ 0x80).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The app: one route per gate. `/api/proxy-image` fetches `png_url` through the instrumented client and answers
/// the bytes under a content type that passes the gate, so only the trace block can discard its SERVER span.
fn app(drift: &Drift, png_url: String) -> Router {
    let http: ClientWithMiddleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(drift.client_middleware())
        .build();
    Router::new()
        .route(
            "/api/medium",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], medium_json()) }),
        )
        .route(
            "/page",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], HTML) }),
        )
        .route(
            "/api/error",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "Internal Server Error"})),
                )
            }),
        )
        .route(
            "/api/custom",
            get(|| async { ([(header::CONTENT_TYPE, "application/x-custom")], "custom payload") }),
        )
        .route(
            "/api/upload",
            post(|body: axum::body::Bytes| async move {
                axum::Json(json!({"len": body.len(), "sha256": sha_of(&body)}))
            }),
        )
        .route(
            "/api/proxy-image",
            get(|State((http, url)): State<(ClientWithMiddleware, String)>| async move {
                let r = http.get(url).send().await.unwrap();
                let bytes = r.bytes().await.unwrap();
                ([(header::CONTENT_TYPE, "application/x-custom")], bytes)
            }),
        )
        .with_state((http, png_url))
        .layer(drift.layer())
}

/// An upstream without the SDK, answering a PNG.
async fn png_upstream() -> Server {
    Server::start(Router::new().route(
        "/logo.png",
        get(|| async { ([(header::CONTENT_TYPE, "image/png")], png()) }),
    ))
    .await
}

/// Starts the SDK (in-memory sink), the upstream and the app; runs `requests` against the app; stops everything and
/// returns the spans, as file lines, and the final counters.
async fn run<F, Fut>(requests: F) -> (Vec<Value>, Stats)
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = Server>,
{
    let spans = InMemorySpans::new();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let upstream = png_upstream().await;
    let server = Server::start(app(&drift, upstream.url("/logo.png"))).await;
    let server = requests(server).await;
    server.stop().await;
    upstream.stop().await;
    drift.shutdown();
    (spans.all().iter().map(span_json).collect(), drift.stats())
}

fn targets(spans: &[Value]) -> Vec<&str> {
    spans
        .iter()
        .map(|s| s["inputValue"]["target"].as_str().unwrap_or("<client>"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_response_records_nothing_and_reaches_the_client_whole() {
    let (spans, stats) = run(|server| async move {
        let r = reqwest::get(server.url("/api/medium")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), medium_json().len(), "L6: the client gets every byte");
        assert!(
            body == medium_json().as_bytes(),
            "L6: the client gets the body unchanged"
        );
        server
    })
    .await;
    assert!(spans.is_empty(), "L6: no span: {:?}", targets(&spans));
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_response_records_nothing_and_reaches_the_client() {
    let (spans, stats) = run(|server| async move {
        let r = reqwest::get(server.url("/page")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), HTML, "L7: the client gets the page");
        server
    })
    .await;
    assert!(spans.is_empty(), "L7: no span: {:?}", targets(&spans));
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_records_nothing() {
    let (spans, stats) = run(|server| async move {
        let r = reqwest::get(server.url("/api/error")).await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
            json!({"error": "Internal Server Error"}),
            "L2: the client gets the error body"
        );
        server
    })
    .await;
    assert!(spans.is_empty(), "L2: no span: {:?}", targets(&spans));
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_png_discards_the_client_and_the_server_span() {
    let (spans, stats) = run(|server| async move {
        let r = reqwest::get(server.url("/api/proxy-image")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            png().as_slice(),
            "L8: the app gets the PNG unchanged"
        );
        server
    })
    .await;
    assert!(
        spans.is_empty(),
        "L8: neither the CLIENT nor the SERVER span is exported: {:?}",
        spans
            .iter()
            .map(|s| (s["kind"].clone(), s["name"].clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (stats.recorded, stats.blocked, stats.exported),
        (2, 2, 0),
        "L8: both spans were recorded and both discarded: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_content_type_passes() {
    let (spans, stats) = run(|server| async move {
        let r = reqwest::get(server.url("/api/custom")).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "custom payload");
        server
    })
    .await;
    assert_eq!(spans.len(), 1, "L9: the span is exported");
    let span = &spans[0];
    assert_eq!(span["kind"], 2);
    assert_eq!(span["name"], "GET /api/custom");
    assert_eq!(span["status"], json!({"code": 1, "message": ""}));
    let output = &span["outputValue"];
    assert_eq!(output["headers"]["content-type"], "application/x-custom");
    assert_eq!(output["body"], b64(b"custom payload"));
    assert_eq!(output["bodySize"], 14);
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_15000_byte_request_body_is_stored_whole() {
    let sent = request_bytes(15_000);
    let body = sent.clone();
    let (spans, stats) = run(|server| async move {
        let r = reqwest::Client::new()
            .post(server.url("/api/upload"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
            json!({"len": 15_000, "sha256": sha_of(&body)}),
            "S4: the handler got all 15 000 bytes"
        );
        server
    })
    .await;
    assert_eq!(spans.len(), 1, "{stats:?}");
    let input = &spans[0]["inputValue"];
    assert_eq!(input["bodySize"], 15_000, "S4");
    let stored = input["body"].as_str().unwrap();
    assert_eq!(
        stored.len(),
        20_000,
        "S4: the base64 of 15 000 bytes is 20 000 characters, no truncation"
    );
    assert!(
        stored == b64(&sent),
        "S4: the stored body is the base64 of every byte sent"
    );
    assert_eq!(input["headers"]["content-length"], "15000");
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_request_body_reaches_the_handler_and_records_nothing() {
    let sent = request_bytes(1 << 20);
    let expected = json!({"len": sent.len(), "sha256": sha_of(&sent)});
    let (spans, stats) = run(|server| async move {
        let r = reqwest::Client::new()
            .post(server.url("/api/upload"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(sent) // a buffered body: reqwest sends its content-length
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
            expected,
            "the handler got every byte of the oversized body"
        );
        server
    })
    .await;
    assert!(
        spans.is_empty(),
        "§13.1: the oversized span is discarded: {:?}",
        targets(&spans)
    );
    assert_eq!((stats.recorded, stats.blocked, stats.exported), (1, 1, 0), "{stats:?}");
}
