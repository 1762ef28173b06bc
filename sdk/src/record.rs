//! The raw record the request thread hands to the export thread (DESIGN.md's `SpanRecord`).
//!
//! Building one is cheap on purpose: ids, timing, the request and response parts as hyper and reqwest give them,
//! and body bytes as `Bytes` clones. No JSON, no base64, no hashing happens before the export thread.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use smallvec::SmallVec;

use crate::ids::{SpanId, TraceId};

/// One finished span, raw.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub is_pre_app_start: bool,
    /// Wall-clock start.
    pub start: SystemTime,
    /// Monotonic duration.
    pub duration: Duration,
    pub payload: Payload,
}

/// What kind of span the record becomes, with its captured parts.
#[derive(Debug)]
pub(crate) enum Payload {
    /// An inbound request (SERVER span, §4).
    Server(Box<ServerExchange>),
    /// An outbound call (CLIENT span, §5).
    Client(Box<ClientExchange>),
    /// An outbound call refused by a drop rule (§5.5).
    ClientDropped {
        method: Method,
        url: reqwest::Url,
        metadata: crate::transform::TransformMetadata,
    },
    /// The `ENV_VARS_SNAPSHOT` span (§14.4).
    EnvSnapshot(Vec<(String, String)>),
}

/// An inbound exchange as the layer saw it.
#[derive(Debug)]
pub(crate) struct ServerExchange {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderList,
    pub remote: Option<SocketAddr>,
    /// The whole request body (empty when there was none).
    pub request_body: Bytes,
    /// The request body passed the size gate during capture (§13.1 shortcut); `request_body` is then empty.
    pub request_oversize: bool,
    pub status: StatusCode,
    /// A custom reason phrase, when the response carried one.
    pub reason: Option<Bytes>,
    pub response_headers: HeaderList,
    /// The response data frames in order.
    pub response_body: Frames,
    /// The response passed the size gate during capture; `response_body` is then incomplete.
    pub response_oversize: bool,
    /// The inner service failed, or the response body stream yielded an error.
    pub error: Option<String>,
}

/// An outbound call as the middleware saw it.
#[derive(Debug)]
pub(crate) struct ClientExchange {
    pub method: Method,
    pub url: reqwest::Url,
    pub headers: HeaderList,
    /// The buffered request body; `None` for a streaming body.
    pub body: Option<Bytes>,
    /// The response's content type blocks the trace (§13.3): the decoded type's name. Kept apart from the
    /// outcome so that a response whose body then fails is still gated.
    pub response_blocked: Option<&'static str>,
    /// A body passed the size gate during capture (§13.1 shortcut) and was not kept: the span is discarded.
    pub oversize: bool,
    pub outcome: ClientOutcome,
}

/// How an outbound call ended.
#[derive(Debug)]
pub(crate) enum ClientOutcome {
    /// A response arrived and its body was read in full.
    Response {
        status: StatusCode,
        headers: HeaderList,
        body: Frames,
    },
    /// The call failed (before or during the response body).
    Failed { name: &'static str, message: String },
}

/// Headers as captured: every `(name, value)` pair in the order `HeaderMap::iter` yields them, so the values of one
/// name are consecutive. Copying a map this way is one allocation and no hashing, where cloning the `HeaderMap`
/// costs two or three allocations on the request thread. (Holding the pairs inline instead, 72 bytes each, made the
/// request thread slower: the record is moved several times before it is boxed.)
pub(crate) type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// Body frames in the order they came. The usual body is one frame, held without allocating: the export thread
/// drops the record, and freeing another thread's allocation is the slow path of glibc's allocator.
pub(crate) type Frames = SmallVec<[Bytes; 1]>;

/// Copies `map` into a [`HeaderList`]. Names and values are `Bytes`-backed, so this clones no header bytes.
pub(crate) fn header_list(map: &HeaderMap) -> HeaderList {
    let mut list = Vec::with_capacity(map.len());
    list.extend(map.iter().map(|(n, v)| (n.clone(), v.clone())));
    list
}

/// The first value of `name`.
pub(crate) fn header_get<'a>(list: &'a HeaderList, name: &HeaderName) -> Option<&'a HeaderValue> {
    list.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}
