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
use crate::gates::{self, CAPTURE_LIMIT, base64_len};
use crate::ids::{SpanId, TraceId};
use crate::record::{Frames, HeaderList, Payload, ServerExchange, SpanRecord, header_list};

/// The remote address of an inbound connection, for services that are not served by axum with connect info:
/// insert it as a request extension and the layer records `remoteAddress` / `remotePort` from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The inbound layer. Put it outermost, so it sees the URI as received: `router.layer(drift.layer())`, or
/// `ServiceBuilder::new().layer(drift.layer()).service(svc)` for any tower or hyper service whose request body is
/// `Unpin` (axum's `Body`, hyper's `Incoming`, `Full<Bytes>`). The app then receives a [`RequestBody`] wrapping it.
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
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone,
    S::Error: Display,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
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
            return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::passthrough)));
        }
        core.mark_app_ready();
        if core.inbound_drop_matches(req.method(), req.uri(), req.headers()) {
            core.count_blocked();
            return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::passthrough)));
        }
        if !core.sample_root() {
            return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::passthrough)));
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
            request_error: None,
            shortcut_allowed,
        };
        if shortcut_allowed && declared_len.is_some_and(|n| base64_len(n) > CAPTURE_LIMIT as u64) {
            // Certain to pass the size gate (§13.1): hand the body on untouched and record nothing of it.
            let mut pending = pending;
            pending.request_oversize = true;
            let request = Request::from_parts(parts, RequestBody::passthrough(body));
            let fut = context::scope(pending.inflight.ctx, inner.call(request));
            return ResponseFuture::calling(fut, pending);
        }
        ResponseFuture {
            state: State::Collecting {
                body: Some(body),
                inner: Some(inner),
                parts: Some(parts),
                pending: Some(pending),
                chunks: Chunks::default(),
                trailers: None,
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
    /// The request body failed while it was collected: the span ends as an error (and is not exported).
    request_error: Option<String>,
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

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.rest.as_ref().map_or(0, BytesMut::len)
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
            exchange.response_body = Frames::new();
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
            body: Option<B>,
            trailers: Option<http::HeaderMap>,
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
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    S::Error: Display,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
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
                    body,
                    trailers,
                    inner,
                    parts,
                    pending,
                    chunks,
                } => {
                    let Some(shortcut_allowed) = pending.as_ref().map(|p| p.shortcut_allowed) else {
                        invalid_state()
                    };
                    let Some(source) = body.as_mut() else { invalid_state() };
                    let ended = loop {
                        match ready!(Pin::new(&mut *source).poll_frame(cx)) {
                            None => break Collected::Whole,
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    chunks.push(data);
                                    if shortcut_allowed && base64_len(chunks.len() as u64) > CAPTURE_LIMIT as u64 {
                                        // Certain to pass the size gate (§13.1): stop buffering; the app gets
                                        // what was read, then the rest of the body as it arrives.
                                        break Collected::Oversize;
                                    }
                                }
                                Err(frame) => {
                                    if let Ok(t) = frame.into_trailers() {
                                        *trailers = Some(t);
                                    }
                                }
                            },
                            Some(Err(e)) => break Collected::Failed(e.into()),
                        }
                    };
                    let (Some(mut inner), Some(parts), Some(mut pending), Some(source)) =
                        (inner.take(), parts.take(), pending.take(), body.take())
                    else {
                        invalid_state()
                    };
                    let bytes = chunks.take();
                    let app_body = match ended {
                        Collected::Whole => {
                            pending.request_body = bytes.clone();
                            RequestBody::replay(bytes, trailers.take(), None)
                        }
                        Collected::Failed(error) => {
                            pending.request_error = Some(error.to_string());
                            pending.request_body = bytes.clone();
                            RequestBody::replay(bytes, None, Some(error))
                        }
                        Collected::Oversize => {
                            pending.request_oversize = true;
                            RequestBody::chain(bytes, source)
                        }
                    };
                    let fut = context::scope(pending.inflight.ctx, inner.call(Request::from_parts(parts, app_body)));
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
        request_error,
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
        response_headers: HeaderList::new(),
        response_body: Frames::new(),
        response_oversize: false,
        error: request_error,
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

/// How collecting a request body ended.
enum Collected {
    Whole,
    Oversize,
    Failed(BoxError),
}

/// The error type of [`RequestBody`]: boxed, as hyper and axum box body errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body the app receives through the layer.
///
/// For a request that is not recorded, the original body, frame for frame. For a recorded one, the bytes the layer
/// collected before the handler ran, then the original's trailers or the error it failed with; or, when capture
/// stopped at the size gate, the bytes read so far followed by the rest of the original body.
#[derive(Debug)]
pub struct RequestBody<B> {
    state: Replay<B>,
}

#[derive(Debug)]
enum Replay<B> {
    Passthrough(B),
    Collected {
        data: Option<Bytes>,
        trailers: Option<http::HeaderMap>,
        error: Option<BoxError>,
    },
    Chain {
        prefix: Option<Bytes>,
        rest: B,
    },
}

impl<B> RequestBody<B> {
    fn passthrough(body: B) -> Self {
        RequestBody {
            state: Replay::Passthrough(body),
        }
    }

    fn replay(data: Bytes, trailers: Option<http::HeaderMap>, error: Option<BoxError>) -> Self {
        RequestBody {
            state: Replay::Collected {
                data: (!data.is_empty()).then_some(data),
                trailers,
                error,
            },
        }
    }

    fn chain(prefix: Bytes, rest: B) -> Self {
        RequestBody {
            state: Replay::Chain {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().state {
            Replay::Passthrough(body) => Pin::new(body).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into))),
            Replay::Collected { data, trailers, error } => Poll::Ready(if let Some(d) = data.take() {
                Some(Ok(Frame::data(d)))
            } else if let Some(e) = error.take() {
                Some(Err(e))
            } else {
                trailers.take().map(|t| Ok(Frame::trailers(t)))
            }),
            Replay::Chain { prefix, rest } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Pin::new(rest).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            Replay::Passthrough(body) => body.is_end_stream(),
            Replay::Collected { data, trailers, error } => data.is_none() && trailers.is_none() && error.is_none(),
            Replay::Chain { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            Replay::Passthrough(body) => body.size_hint(),
            Replay::Collected { data, error: None, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Replay::Collected { .. } => SizeHint::default(),
            Replay::Chain { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(extra));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}
