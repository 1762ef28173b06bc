//! The layer changes nothing the app or the client sees: a request body in several frames reaches the handler
//! whole, response frames and trailers reach the client in order, a body error reaches the client as an error
//! (and its span is discarded), and a response dropped early still ends its span (§3.2, §4.1, §4.3). Also S1 and
//! S2, which need a request no HTTP client sends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body as AxumBody;
use base64::Engine as _;
use bytes::Bytes;
use drift_sdk::{Drift, DriftService, InMemorySpans, RequestBody};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tower_service::Service;

/// The request body bytes the handler read.
type SeenBytes = Arc<Mutex<Vec<u8>>>;
/// How the handler's request body ended: its trailers or its error.
type SeenEnd = Arc<Mutex<Option<String>>>;

/// A body that yields the frames it was given, then ends.
struct Frames(VecDeque<Result<Frame<Bytes>, std::io::Error>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front())
    }
}

fn data(s: &'static str) -> Result<Frame<Bytes>, std::io::Error> {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

fn trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("x-checksum", HeaderValue::from_static("abc123"));
    t
}

/// Reads the whole request body, then answers with the frames the test chose.
#[derive(Clone)]
struct App {
    seen: Arc<Mutex<Vec<u8>>>,
    /// What else the handler saw at the end of the request body: its trailers, or its error.
    seen_end: Arc<Mutex<Option<String>>>,
    answer: fn() -> Vec<Result<Frame<Bytes>, std::io::Error>>,
}

impl Service<Request<RequestBody<AxumBody>>> for App {
    type Response = Response<Frames>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Frames>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<AxumBody>>) -> Self::Future {
        let seen = self.seen.clone();
        let seen_end = self.seen_end.clone();
        let frames = (self.answer)();
        Box::pin(async move {
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) if f.is_data() => seen.lock().unwrap().extend_from_slice(&f.into_data().unwrap()),
                    Ok(f) => *seen_end.lock().unwrap() = Some(format!("trailers {:?}", f.into_trailers().unwrap())),
                    Err(e) => {
                        *seen_end.lock().unwrap() = Some(format!("error {e}"));
                        break;
                    }
                }
            }
            Ok(Response::builder()
                .header("content-type", "application/json")
                .body(Frames(frames.into()))
                .unwrap())
        })
    }
}

fn setup(
    answer: fn() -> Vec<Result<Frame<Bytes>, std::io::Error>>,
) -> (Drift, InMemorySpans, DriftService<App>, SeenBytes, SeenEnd) {
    let (drift, spans) = crate::support::record_in_memory();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_end = Arc::new(Mutex::new(None));
    let app = App {
        seen: seen.clone(),
        seen_end: seen_end.clone(),
        answer,
    };
    let svc = tower_layer::Layer::layer(&drift.layer(), app);
    (drift, spans, svc, seen, seen_end)
}

fn request(uri: &str, host: Option<&str>, body: Vec<Result<Frame<Bytes>, std::io::Error>>) -> Request<AxumBody> {
    let mut b = Request::builder().method("POST").uri(uri);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    b.body(AxumBody::new(Frames(body.into()))).unwrap()
}

fn b64(v: &drift_sdk::json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn frames_and_trailers_pass_through_and_are_recorded() {
    let (drift, spans, mut svc, seen, _) = setup(|| vec![data("{\"a\":"), data("1}"), Ok(Frame::trailers(trailers()))]);
    let req = request(
        "/api/echo?x=1",
        Some("example.test:8080"),
        vec![data("x"), data("y"), data("z")],
    );
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let resp = svc.call(req).await.unwrap();
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.unwrap());
    }
    assert_eq!(frames.len(), 3, "every frame reaches the client, none merged");
    assert_eq!(frames[0].data_ref().unwrap(), &Bytes::from_static(b"{\"a\":"));
    assert_eq!(frames[1].data_ref().unwrap(), &Bytes::from_static(b"1}"));
    assert_eq!(frames[2].trailers_ref().unwrap(), &trailers(), "trailers pass through");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        b"xyz",
        "the handler gets the whole request body"
    );
    drift.shutdown();

    let all = spans.all();
    assert_eq!(all.len(), 1);
    let span = &all[0];
    let input = span.input_value.as_object().unwrap();
    let output = span.output_value.as_object().unwrap();
    assert_eq!(b64(input.get("body").unwrap()), b"xyz");
    assert_eq!(b64(output.get("body").unwrap()), b"{\"a\":1}");
    // S1: the query stays in `url` and `target`, not in the name.
    assert_eq!(
        input.get("url").unwrap().as_str(),
        Some("http://example.test:8080/api/echo?x=1")
    );
    assert_eq!(input.get("target").unwrap().as_str(), Some("/api/echo?x=1"));
    assert_eq!(span.name, "POST /api/echo");
}

#[tokio::test]
async fn no_host_header_and_no_authority_means_localhost() {
    // S2
    let (drift, spans, mut svc, _, _) = setup(|| vec![data("{}")]);
    let resp = svc.call(request("/p", None, vec![])).await.unwrap();
    resp.into_body().collect().await.unwrap();
    drift.shutdown();
    let all = spans.all();
    let input = all[0].input_value.as_object().unwrap();
    assert_eq!(input.get("url").unwrap().as_str(), Some("http://localhost/p"));
    assert!(input.get("body").is_none(), "S3: an empty body records no body key");
}

#[tokio::test]
async fn a_body_error_reaches_the_client_and_discards_the_span() {
    let (drift, spans, mut svc, _, _) =
        setup(|| vec![data("{\"partial\":"), Err(std::io::Error::other("upstream reset"))]);
    let resp = svc.call(request("/api/stream", Some("h"), vec![])).await.unwrap();
    let mut body = resp.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream reset",
        "the app's error reaches the client unchanged"
    );
    drop(body);
    drift.shutdown();
    assert!(
        spans.is_empty(),
        "a SERVER span with status ERROR is never exported (§4.4)"
    );
    assert_eq!(drift.stats().blocked, 1);
}

#[tokio::test]
async fn a_response_dropped_early_still_ends_its_span() {
    let (drift, spans, mut svc, _, _) = setup(|| vec![data("{\"first\":"), data("\"frame\"}")]);
    let resp = svc.call(request("/api/stream", Some("h"), vec![])).await.unwrap();
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body); // the client went away after one frame
    drift.shutdown();
    let all = spans.all();
    assert_eq!(all.len(), 1, "the span ends when the body is dropped");
    let output = all[0].output_value.as_object().unwrap();
    assert_eq!(
        b64(output.get("body").unwrap()),
        b"{\"first\":",
        "with the bytes seen so far"
    );
}

#[tokio::test]
async fn request_trailers_reach_the_handler() {
    let (drift, spans, mut svc, seen, seen_end) = setup(|| vec![data("{}")]);
    let req = request(
        "/api/upload",
        Some("h"),
        vec![data("ab"), Ok(Frame::trailers(trailers()))],
    );
    svc.call(req).await.unwrap().into_body().collect().await.unwrap();
    drift.shutdown();
    assert_eq!(seen.lock().unwrap().as_slice(), b"ab");
    let end = seen_end.lock().unwrap().clone().unwrap_or_default();
    assert!(end.starts_with("trailers") && end.contains("abc123"), "{end}");
    assert_eq!(spans.len(), 1);
}

#[tokio::test]
async fn a_request_body_error_reaches_the_handler_and_discards_the_span() {
    let (drift, spans, mut svc, seen, seen_end) = setup(|| vec![data("{}")]);
    let req = request(
        "/api/upload",
        Some("h"),
        vec![data("par"), Err(std::io::Error::other("client reset"))],
    );
    svc.call(req).await.unwrap().into_body().collect().await.unwrap();
    drift.shutdown();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        b"par",
        "the handler gets the bytes that arrived"
    );
    assert_eq!(
        seen_end.lock().unwrap().as_deref(),
        Some("error client reset"),
        "then the same error"
    );
    assert!(spans.is_empty(), "a request whose body failed is not a test case");
    assert_eq!(drift.stats().blocked, 1);
}

#[tokio::test]
async fn a_large_body_without_content_length_is_not_buffered_and_not_recorded() {
    // §13.1: collection stops once the gate is certain; the handler still gets every byte, in order.
    const CHUNK: usize = 64 * 1024;
    let (drift, spans, mut svc, seen, _) = setup(|| vec![data("{}")]);
    let frames: Vec<_> = (0..16u8)
        .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + i; CHUNK]))))
        .collect();
    svc.call(request("/api/upload", Some("h"), frames))
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    drift.shutdown();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 16 * CHUNK);
    assert!(
        seen.chunks(CHUNK)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == b'a' + i as u8))
    );
    assert!(spans.is_empty());
    assert_eq!(drift.stats().blocked, 1);
}
