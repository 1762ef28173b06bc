//! Inbound capture: a `tower::Layer` that records SERVER spans (§4).
//!
//! An unsampled request costs the sampling draw and passes through: the app's own future and body, wrapped in
//! variants that only forward. A sampled one runs a small state machine — collect the request body, call the app
//! inside the span's task-local context, tap the response body — with no boxed future and no copy of body bytes.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{self, SpanContext};
use crate::drift::Core;
use crate::gates::{self, CAPTURE_LIMIT};
use crate::ids::{SpanId, TraceId};
use crate::record::{HeaderList, Payload, ServerExchange, SpanRecord, header_list};

/// The remote address of an inbound connection, for services that are not served by axum with connect info:
/// insert it as a request extension and the layer records `remoteAddress` / `remotePort` from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The inbound layer. Put it outermost, so it sees the URI as received: `router.layer(drift.layer())`, or
/// `ServiceBuilder::new().layer(drift.layer()).service(svc)` for any tower service whose request body type can be
/// rebuilt from `Bytes` (axum's `Body`, `http_body_util::Full<Bytes>`).
#[derive(Clone)]
pub struct DriftLayer {
    core: Arc<Core>,
}

impl std::fmt::Debug for DriftLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftLayer").finish_non_exhaustive()
    }
}

impl DriftLayer {
    pub(crate) fn new(core: Arc<Core>) -> DriftLayer {
        DriftLayer { core }
    }
}

impl<S> Layer<S> for DriftLayer {
    type Service = DriftService<S>;

    fn layer(&self, inner: S) -> DriftService<S> {
        DriftService {
            inner,
            core: self.core.clone(),
        }
    }
}

/// The service [`DriftLayer`] wraps around the app.
#[derive(Clone)]
pub struct DriftService<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S> std::fmt::Debug for DriftService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftService").finish_non_exhaustive()
    }
}

impl<S, B, ResB> Service<Request<B>> for DriftService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Display,
    B: Body<Data = Bytes> + From<Bytes>,
    B::Error: Display,
    ResB: Body<Data = Bytes>,
    ResB::Error: Display,
{
    type Response = Response<CaptureBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let core = &self.core;
        if !core.is_recording() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        core.mark_app_ready();
        if core.inbound_drop_matches(req.method(), req.uri(), req.headers()) {
            core.count_blocked();
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        if !core.sample_root() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let _capture = tracing::trace_span!("capture").entered();
        let inflight = ServerInFlight {
            core: self.core.clone(),
            ctx: SpanContext {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                is_pre_app_start: false,
            },
            start: Instant::now(),
            start_wall: SystemTime::now(),
        };
        // The clone is ready-polled by the caller's `poll_ready` on `self`; swap so the ready one is used.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let request = RequestParts {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: header_list(&parts.headers),
            remote: remote_addr(&parts.extensions),
        };
        let shortcut_allowed = !core.has_inbound_body_rules();
        let declared_len = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let pending = Pending {
            inflight,
            request,
            request_body: Bytes::new(),
            request_oversize: false,
            shortcut_allowed,
        };
        if shortcut_allowed && declared_len.is_some_and(|n| base64_len(n) > CAPTURE_LIMIT as u64) {
            // Certain to pass the size gate (§13.1): hand the body on untouched and record nothing of it.
            let mut pending = pending;
            pending.request_oversize = true;
            let fut = context::scope(pending.inflight.ctx, inner.call(Request::from_parts(parts, body)));
            return ResponseFuture::calling(fut, pending);
        }
        ResponseFuture {
            state: State::Collecting {
                body,
                inner: Some(inner),
                parts: Some(parts),
                pending: Some(pending),
                chunks: Chunks::default(),
            },
        }
    }
}

/// What a sampled request carries from `call` to the response.
struct Pending {
    inflight: ServerInFlight,
    request: RequestParts,
    request_body: Bytes,
    request_oversize: bool,
    shortcut_allowed: bool,
}

struct RequestParts {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderList,
    remote: Option<SocketAddr>,
}

/// Request body data frames collected so far. One frame (the usual case for small bodies) is kept without a copy.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl Chunks {
    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match (&mut self.first, &mut self.rest) {
            (None, None) => self.first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                self.first = None;
                self.rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }

    fn take(&mut self) -> Bytes {
        match (self.first.take(), self.rest.take()) {
            (_, Some(buf)) => buf.freeze(),
            (Some(f), None) => f,
            (None, None) => Bytes::new(),
        }
    }
}

fn remote_addr(ext: &http::Extensions) -> Option<SocketAddr> {
    if let Some(RemoteAddr(a)) = ext.get::<RemoteAddr>() {
        return Some(*a);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(*a);
    }
    None
}

fn reason_phrase(ext: &http::Extensions) -> Option<Bytes> {
    ext.get::<hyper::ext::ReasonPhrase>()
        .map(|r| Bytes::copy_from_slice(r.as_bytes()))
}

/// The length of the standard base64 of `n` bytes.
fn base64_len(n: u64) -> u64 {
    // `n` can come from a client's Content-Length: saturate rather than overflow.
    n.div_ceil(3).saturating_mul(4)
}

/// A sampled request between `call` and the end of its response.
struct ServerInFlight {
    core: Arc<Core>,
    ctx: SpanContext,
    start: Instant,
    start_wall: SystemTime,
}

impl ServerInFlight {
    /// `finalize` + `on_end`: builds the raw record and hands it over.
    fn finish(self, exchange: Box<ServerExchange>) {
        let _finalize = tracing::trace_span!("finalize").entered();
        let record = SpanRecord {
            trace_id: self.ctx.trace_id,
            span_id: self.ctx.span_id,
            parent_span_id: None,
            is_pre_app_start: false,
            start: self.start_wall,
            duration: self.start.elapsed(),
            payload: Payload::Server(exchange),
        };
        self.core.on_end(record);
    }
}

/// The response side of a sampled request: frames seen so far; finishes the span at end of stream, on a body
/// error, or when dropped early (client gone).
struct ResponseRecording {
    inflight: Option<ServerInFlight>,
    exchange: Option<Box<ServerExchange>>,
    keep_body: bool,
    /// Raw bytes seen.
    size: u64,
}

impl ResponseRecording {
    fn on_data(&mut self, data: &Bytes) {
        let Some(exchange) = self.exchange.as_mut() else {
            return;
        };
        self.size += data.len() as u64;
        if !self.keep_body || exchange.response_oversize {
            return;
        }
        if base64_len(self.size) > CAPTURE_LIMIT as u64 {
            // No rule can shrink a server response (§12.4), so the size gate is certain: stop buffering.
            exchange.response_oversize = true;
            exchange.response_body = Vec::new();
            return;
        }
        exchange.response_body.push(data.clone());
    }

    fn on_error(&mut self, error: String) {
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.error = Some(error);
        }
    }
}

impl Drop for ResponseRecording {
    fn drop(&mut self) {
        if let (Some(inflight), Some(exchange)) = (self.inflight.take(), self.exchange.take()) {
            inflight.finish(exchange);
        }
    }
}

pin_project! {
    /// The response body as the layer returns it: the app's body, its frames passed through unchanged, seen by the
    /// recorder when the request is sampled.
    pub struct CaptureBody<B> {
        #[pin]
        inner: B,
        recording: Option<ResponseRecording>,
    }
}

impl<B> std::fmt::Debug for CaptureBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureBody")
            .field("recording", &self.recording.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> CaptureBody<B> {
    fn passthrough(inner: B) -> CaptureBody<B> {
        CaptureBody { inner, recording: None }
    }
}

impl<B> Body for CaptureBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
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
                    recording.on_error(e.to_string());
                    *this.recording = None;
                }
                None => *this.recording = None,
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

pin_project! {
    /// The future of [`DriftService`]: the app's own future when the request is not recorded; for a sampled
    /// request, body collection, then the app's future inside the span's context.
    pub struct ResponseFuture<S, B, F> {
        #[pin]
        state: State<S, B, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        Passthrough { #[pin] fut: F },
        Collecting {
            #[pin]
            body: B,
            inner: Option<S>,
            parts: Option<http::request::Parts>,
            pending: Option<Pending>,
            chunks: Chunks,
        },
        Calling {
            #[pin]
            fut: TaskLocalFuture<SpanContext, F>,
            pending: Option<Pending>,
        },
        Done,
    }
}

impl<S, B, F> ResponseFuture<S, B, F> {
    fn passthrough(fut: F) -> Self {
        ResponseFuture {
            state: State::Passthrough { fut },
        }
    }

    fn calling(fut: TaskLocalFuture<SpanContext, F>, pending: Pending) -> Self {
        ResponseFuture {
            state: State::Calling {
                fut,
                pending: Some(pending),
            },
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B, S::Future>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Display,
    B: Body<Data = Bytes> + From<Bytes>,
    B::Error: Display,
    ResB: Body<Data = Bytes>,
{
    type Output = Result<Response<CaptureBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Passthrough { fut } => {
                    return fut.poll(cx).map(|r| r.map(|resp| resp.map(CaptureBody::passthrough)));
                }
                StateProj::Collecting {
                    mut body,
                    inner,
                    parts,
                    pending,
                    chunks,
                } => {
                    loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break,
                            Some(Ok(frame)) => {
                                // Request trailers are not recorded (and not rebuilt for the app).
                                if let Ok(data) = frame.into_data() {
                                    chunks.push(data);
                                }
                            }
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "inbound request body failed while it was collected");
                                break;
                            }
                        }
                    }
                    let (Some(mut inner), Some(parts), Some(mut pending)) =
                        (inner.take(), parts.take(), pending.take())
                    else {
                        invalid_state()
                    };
                    let bytes = chunks.take();
                    let oversize = pending.shortcut_allowed && base64_len(bytes.len() as u64) > CAPTURE_LIMIT as u64;
                    pending.request_oversize = oversize;
                    pending.request_body = if oversize { Bytes::new() } else { bytes.clone() };
                    let fut = context::scope(
                        pending.inflight.ctx,
                        inner.call(Request::from_parts(parts, B::from(bytes))),
                    );
                    self.as_mut().project().state.set(State::Calling {
                        fut,
                        pending: Some(pending),
                    });
                }
                StateProj::Calling { fut, pending } => {
                    let result = ready!(fut.poll(cx));
                    let Some(pending) = pending.take() else { invalid_state() };
                    self.as_mut().project().state.set(State::Done);
                    return Poll::Ready(respond(result, pending));
                }
                StateProj::Done => invalid_state(),
            }
        }
    }
}

#[cold]
fn invalid_state() -> ! {
    // Reachable only by polling the future again after it completed, which `Future` forbids.
    panic!("drift-sdk ResponseFuture polled after completion")
}

/// The app answered (or failed): record what the span needs and wrap the response body in the tap.
fn respond<ResB, E: Display>(
    result: Result<Response<ResB>, E>,
    pending: Pending,
) -> Result<Response<CaptureBody<ResB>>, E> {
    let Pending {
        inflight,
        request,
        request_body,
        request_oversize,
        ..
    } = pending;
    let mut exchange = Box::new(ServerExchange {
        method: request.method,
        uri: request.uri,
        version: request.version,
        headers: request.headers,
        remote: request.remote,
        request_body,
        request_oversize,
        status: StatusCode::INTERNAL_SERVER_ERROR,
        reason: None,
        response_headers: Vec::new(),
        response_body: Vec::new(),
        response_oversize: false,
        error: None,
    });
    match result {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            exchange.status = parts.status;
            exchange.reason = reason_phrase(&parts.extensions);
            exchange.response_headers = header_list(&parts.headers);
            // Cheap gates (§10.1): a response certain to be discarded keeps no body bytes; the export thread still
            // sees its status and content type and blocks the trace.
            let keep_body = parts.status.as_u16() < 400
                && gates::blocking_content_type(parts.headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()))
                    .is_none();
            let recording = ResponseRecording {
                inflight: Some(inflight),
                exchange: Some(exchange),
                keep_body,
                size: 0,
            };
            Ok(Response::from_parts(
                parts,
                CaptureBody {
                    inner: body,
                    recording: Some(recording),
                },
            ))
        }
        Err(err) => {
            exchange.error = Some(err.to_string());
            inflight.finish(exchange);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_content_length_does_not_overflow() {
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        assert_eq!(base64_len(u64::MAX - 2), u64::MAX);
    }
}
