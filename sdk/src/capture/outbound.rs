//! Outbound capture: a `reqwest-middleware` middleware that records CLIENT spans (§5).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Extensions, HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};

use crate::context;
use crate::drift::Core;
use crate::gates;
use crate::ids::{SpanId, TraceId};
use crate::record::{ClientExchange, ClientOutcome, Frames, HeaderList, Payload, SpanRecord, header_get, header_list};

/// The header that makes the middleware pass a request through unrecorded (§5.1).
pub const SKIP_INSTRUMENTATION_HEADER: &str = "x-td-skip-instrumentation";

/// The outbound middleware: add it to a `reqwest_middleware::ClientBuilder` and the calls the app makes while
/// serving a sampled request are recorded as CLIENT spans, children of that request's SERVER span.
#[derive(Clone)]
pub struct DriftMiddleware {
    core: Arc<Core>,
}

impl std::fmt::Debug for DriftMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftMiddleware").finish_non_exhaustive()
    }
}

impl DriftMiddleware {
    pub(crate) fn new(core: Arc<Core>) -> DriftMiddleware {
        DriftMiddleware { core }
    }
}

/// The error the middleware returns for a request refused by an outbound drop rule (§5.5).
#[derive(Debug, thiserror::Error)]
#[error("Outbound request to {url} was dropped by transform rule")]
pub struct DroppedByTransform {
    /// The URL of the refused request.
    pub url: String,
}

#[async_trait::async_trait]
impl Middleware for DriftMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let core = &self.core;
        if !core.is_recording() || skip_requested(req.headers()) {
            return next.run(req, extensions).await;
        }
        let parent = context::current();
        let (trace_id, parent_span_id, is_pre_app_start) = if !core.is_app_ready() {
            match parent {
                Some(p) => (p.trace_id, Some(p.span_id), true),
                None => (TraceId::random(), None, true),
            }
        } else {
            match parent {
                Some(p) if !p.is_pre_app_start => (p.trace_id, Some(p.span_id), false),
                _ => return next.run(req, extensions).await,
            }
        };
        let inflight = ClientInFlight {
            core: core.clone(),
            trace_id,
            span_id: SpanId::random(),
            parent_span_id,
            is_pre_app_start,
            start: Instant::now(),
            start_wall: SystemTime::now(),
        };
        if let Some(metadata) = core.outbound_drop(req.method(), req.url().as_str(), req.headers()) {
            let url = req.url().to_string();
            inflight.finish(Payload::ClientDropped {
                method: req.method().clone(),
                url: req.url().clone(),
                metadata,
            });
            return Err(reqwest_middleware::Error::middleware(DroppedByTransform { url }));
        }
        let (method, url, headers, body, oversize) = {
            let _capture = tracing::trace_span!("capture").entered();
            // No rule changes a client request body (§12.4), so one certain to pass the size gate is not copied.
            let body = req.body().and_then(|b| b.as_bytes());
            let oversize = body.is_some_and(|b| gates::certainly_oversize(b.len() as u64));
            let body = if oversize {
                None
            } else {
                body.map(Bytes::copy_from_slice)
            };
            (
                req.method().clone(),
                req.url().clone(),
                header_list(req.headers()),
                body,
                oversize,
            )
        };
        let exchange = Box::new(ClientExchange {
            method,
            url,
            headers,
            body,
            response_blocked: None,
            oversize,
            outcome: ClientOutcome::Failed {
                name: "RequestError",
                message: String::new(),
            },
        });
        match next.run(req, extensions).await {
            Err(err) => {
                let mut exchange = exchange;
                exchange.outcome = ClientOutcome::Failed {
                    name: error_name(&err),
                    message: err.to_string(),
                };
                inflight.finish(Payload::Client(exchange));
                Err(err)
            }
            Ok(response) => Ok(tap_response(response, inflight, exchange)),
        }
    }
}

fn skip_requested(headers: &HeaderMap) -> bool {
    headers
        .get(SKIP_INSTRUMENTATION_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// `errorName` of a failed call (§5.3).
fn error_name(err: &reqwest_middleware::Error) -> &'static str {
    match err {
        reqwest_middleware::Error::Middleware(_) => "MiddlewareError",
        reqwest_middleware::Error::Reqwest(e) => reqwest_error_name(e),
    }
}

fn reqwest_error_name(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "TimeoutError"
    } else if e.is_connect() {
        "ConnectError"
    } else {
        "RequestError"
    }
}

/// Rebuilds the response around a body tap, keeping status, version, headers, extensions and URL.
fn tap_response(response: Response, inflight: ClientInFlight, mut exchange: Box<ClientExchange>) -> Response {
    let url = response.url().clone();
    let status = response.status();
    let headers = header_list(response.headers());
    let http_response: http::Response<reqwest::Body> = response.into();
    let (parts, body) = http_response.into_parts();
    exchange.response_blocked =
        gates::blocking_content_type(header_get(&headers, &http::header::CONTENT_TYPE).map(|v| v.as_bytes()));
    let keep_body = exchange.response_blocked.is_none();
    let may_stop_early = !inflight.core.has_outbound_body_rules();
    let recording = ClientRecording {
        inflight: Some(inflight),
        exchange: Some(exchange),
        status,
        headers,
        frames: Frames::new(),
        keep_body,
        may_stop_early,
        size: 0,
    };
    let tapped = reqwest::Body::wrap(ClientBodyTap {
        inner: body,
        recording: Some(Box::new(recording)),
    });
    let mut rebuilt = http::Response::builder()
        .url(url)
        .body(tapped)
        .unwrap_or_else(|_| unreachable_builder());
    *rebuilt.status_mut() = parts.status;
    *rebuilt.version_mut() = parts.version;
    *rebuilt.headers_mut() = parts.headers;
    rebuilt.extensions_mut().extend(parts.extensions);
    Response::from(rebuilt)
}

#[cold]
fn unreachable_builder() -> ! {
    // A builder given only an extension and a body has nothing that can fail.
    panic!("http::Response::builder() failed with no status or header set")
}

struct ClientInFlight {
    core: Arc<Core>,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    is_pre_app_start: bool,
    start: Instant,
    start_wall: SystemTime,
}

impl ClientInFlight {
    /// `finalize` + `on_end`.
    fn finish(self, payload: Payload) {
        let _finalize = tracing::trace_span!("finalize").entered();
        let record = SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            is_pre_app_start: self.is_pre_app_start,
            start: self.start_wall,
            duration: self.start.elapsed(),
            payload,
        };
        self.core.on_end(record);
    }
}

struct ClientRecording {
    inflight: Option<ClientInFlight>,
    exchange: Option<Box<ClientExchange>>,
    status: StatusCode,
    headers: HeaderList,
    frames: Frames,
    keep_body: bool,
    /// No outbound body rule exists, so the response may stop being kept once it passes the size gate (§13.1).
    may_stop_early: bool,
    /// Raw response bytes seen.
    size: u64,
}

impl ClientRecording {
    fn finish(&mut self, failure: Option<&reqwest::Error>) {
        let (Some(inflight), Some(mut exchange)) = (self.inflight.take(), self.exchange.take()) else {
            return;
        };
        exchange.outcome = match failure {
            Some(e) => ClientOutcome::Failed {
                name: reqwest_error_name(e),
                message: e.to_string(),
            },
            None => ClientOutcome::Response {
                status: self.status,
                headers: std::mem::take(&mut self.headers),
                body: std::mem::take(&mut self.frames),
            },
        };
        inflight.finish(Payload::Client(exchange));
    }
}

impl ClientRecording {
    fn on_data(&mut self, data: &Bytes) {
        self.size += data.len() as u64;
        if !self.keep_body {
            return;
        }
        if self.may_stop_early && gates::certainly_oversize(self.size) {
            // Certain to pass the size gate: stop keeping frames; the app still gets every byte.
            self.keep_body = false;
            self.frames = Frames::new();
            if let Some(exchange) = self.exchange.as_mut() {
                exchange.oversize = true;
            }
            return;
        }
        self.frames.push(data.clone());
    }
}

impl Drop for ClientRecording {
    fn drop(&mut self) {
        self.finish(None);
    }
}

pin_project! {
    /// The upstream's response body, passed through frame by frame, seen by the recorder.
    struct ClientBodyTap {
        #[pin]
        inner: reqwest::Body,
        recording: Option<Box<ClientRecording>>,
    }
}

impl Body for ClientBodyTap {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.project();
        let polled = ready!(this.inner.poll_frame(cx));
        if let Some(recording) = this.recording.as_mut() {
            match &polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        recording.on_data(data);
                    }
                }
                Some(Err(e)) => {
                    recording.finish(Some(e));
                    *this.recording = None;
                }
                None => {
                    recording.finish(None);
                    *this.recording = None;
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
