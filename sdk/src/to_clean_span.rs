//! `to_clean_span`: on the export thread, a raw record becomes a span ready for a sink — gates (§13), transforms
//! (§12), stored values (§4, §5), schemas and hashes (§6, §7).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

use crate::clean_span::{CleanSpan, SecondsNanos, kind, status};
use crate::gates::{self, BlockedTraces, SIZE_LIMIT, SIZE_OVERHEAD};
use crate::json::{Object, Value, python_dumps_len, python_dumps_len_upper_bound};
use crate::record::{ClientExchange, ClientOutcome, HeaderList, Payload, ServerExchange, SpanRecord, header_get};
use crate::schema::{Merge, PayloadHasher};
use crate::transform::query::form_decode;
use crate::transform::{TransformMetadata, Transforms};

/// Why a record produced no span. Every discard counts toward `blocked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Discard {
    /// Its trace was blocked earlier.
    TraceBlocked,
    /// It blocked its trace now, for this reason (logged).
    Blocked(String),
}

/// The export thread's per-span state: the blocked-trace registry, the transforms and reusable buffers.
#[derive(Debug)]
pub(crate) struct Cleaner {
    transforms: Arc<Transforms>,
    environment: Arc<str>,
    blocked: BlockedTraces,
    hasher: PayloadHasher,
    scratch: Vec<u8>,
}

struct Built {
    name: String,
    package_name: Cow<'static, str>,
    instrumentation_name: &'static str,
    submodule_name: Cow<'static, str>,
    package_type: i32,
    kind: i32,
    input: Value,
    output: Value,
    input_merges: Merges,
    output_merges: Merges,
    status_code: i32,
    status_message: String,
    is_root_span: bool,
    transform_metadata: Option<TransformMetadata>,
    /// Capture stopped at the size gate: the span is certain to be discarded.
    oversize: bool,
    /// The raw bytes the input's `body` string is the base64 of, when known (untouched by transforms).
    input_body: Option<Bytes>,
    /// The raw bytes the output's `body` string is the base64 of, when known.
    output_body: Option<Bytes>,
}

/// A payload's merges: at most two, `headers` and `body`. A fixed array rather than a `Vec`, which cost two
/// allocations per payload (four per span).
#[derive(Clone, Copy, Debug, Default)]
struct Merges {
    items: [(&'static str, Merge); 2],
    len: usize,
}

impl Merges {
    fn push(&mut self, key: &'static str, merge: Merge) {
        debug_assert!(self.len < self.items.len(), "a payload has two merges at most");
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = (key, merge);
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[(&'static str, Merge)] {
        &self.items[..self.len]
    }
}

const HEADERS_MERGE: Merge = Merge::HEADERS;

/// A method's name, without allocating for the standard ones.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|m| **m == method.as_str()) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.as_str().to_owned()),
    }
}

/// A URL scheme, without allocating for `http` and `https`.
fn scheme_name(scheme: &str) -> Cow<'static, str> {
    match scheme {
        "http" => Cow::Borrowed("http"),
        "https" => Cow::Borrowed("https"),
        other => Cow::Owned(other.to_owned()),
    }
}

impl Cleaner {
    pub(crate) fn new(transforms: Arc<Transforms>, environment: &str) -> Cleaner {
        Cleaner {
            transforms,
            environment: environment.into(),
            blocked: BlockedTraces::new(Instant::now()),
            hasher: PayloadHasher::new(),
            scratch: Vec::new(),
        }
    }

    /// Turns one record into a span, or says why there is none.
    pub(crate) fn clean(&mut self, record: SpanRecord) -> Result<CleanSpan, Discard> {
        self.clean_at(record, Instant::now())
    }

    /// [`clean`](Self::clean) with the time the blocked-trace registry goes by read once for many records (a
    /// clock read per span cost ~1 % of the export thread).
    pub(crate) fn clean_at(&mut self, record: SpanRecord, now: Instant) -> Result<CleanSpan, Discard> {
        let _stage = tracing::trace_span!("to_clean_span").entered();
        let trace = record.trace_id;
        if self.blocked.is_blocked(trace, now) {
            return Err(Discard::TraceBlocked);
        }
        let built = match &record.payload {
            Payload::Server(exchange) => {
                if exchange.status.as_u16() >= 400 || exchange.error.is_some() {
                    return Err(self.block(record.trace_id, "server_error".to_owned(), now));
                }
                let content_type =
                    header_get(&exchange.response_headers, &http::header::CONTENT_TYPE).map(|v| v.as_bytes());
                if let Some(name) = gates::blocking_content_type(content_type) {
                    return Err(self.block(trace, format!("binary_content:{name}"), now));
                }
                self.build_server(exchange)
            }
            Payload::Client(exchange) => {
                // Gated whether the body then arrived in full or failed (§5.4, §13.3).
                if let Some(name) = exchange.response_blocked {
                    return Err(self.block(trace, format!("outbound_binary:{name}"), now));
                }
                self.build_client(exchange)
            }
            Payload::ClientDropped { method, url, metadata } => build_client_dropped(method, url, metadata),
            Payload::EnvSnapshot(vars) => build_env_snapshot(vars),
        };
        if let Some(estimate) = size_over_limit(&built) {
            let mb = estimate.max(SIZE_LIMIT + 1) as f64 / 1_048_576.0;
            return Err(self.block(trace, format!("size_limit:{mb:.2}MB"), now));
        }
        Ok(self.finish(record, built))
    }

    fn block(&mut self, trace: crate::ids::TraceId, reason: String, now: Instant) -> Discard {
        self.blocked.block(trace, reason.clone(), now);
        Discard::Blocked(reason)
    }

    fn build_server(&mut self, x: &ServerExchange) -> Built {
        let mut input = Object::with_capacity(9);
        let target = match x.uri.query() {
            Some(q) if !q.is_empty() => concat(&[x.uri.path(), "?", q]),
            _ => x.uri.path().to_owned(),
        };
        let scheme = x.uri.scheme_str().unwrap_or("http");
        let host = match header_get(&x.headers, &http::header::HOST) {
            Some(h) => header_text_cow(h.as_bytes()),
            None => Cow::Borrowed(x.uri.authority().map_or("localhost", |a| a.as_str())),
        };
        input.push_unique("method", x.method.as_str());
        input.push_unique("url", concat(&[scheme, "://", &host, &target]));
        input.push_unique("target", target);
        input.push_unique("headers", headers_object(&x.headers));
        input.push_unique("httpVersion", http_version(x.version));
        if let Some(remote) = x.remote {
            input.push_unique("remoteAddress", ip_text(remote.ip()));
            input.push_unique("remotePort", i64::from(remote.port()));
        }
        if !x.request_body.is_empty() {
            input.push_unique("body", BASE64.encode(&x.request_body));
            input.push_unique("bodySize", x.request_body.len() as i64);
        }
        let transform_metadata = self.transforms.apply_server(&mut input);

        let mut output = Object::with_capacity(6);
        output.push_unique("statusCode", i64::from(x.status.as_u16()));
        output.push_unique("statusMessage", status_message(x.status, x.reason.as_ref()));
        output.push_unique("headers", headers_object(&x.response_headers));
        let body_len: usize = x.response_body.iter().map(Bytes::len).sum();
        if body_len > 0 {
            output.push_unique("body", self.base64_frames(&x.response_body));
            output.push_unique("bodySize", body_len as i64);
        }
        if let Some(e) = &x.error {
            output.push_unique("errorMessage", e.as_str());
        }
        let (status_code, status_message) = match &x.error {
            Some(e) => (status::ERROR, e.clone()),
            None => (status::OK, String::new()),
        };
        let input_merges = server_merges(&input);
        let output_merges = server_merges(&output);
        Built {
            name: concat(&[x.method.as_str(), " ", x.uri.path()]),
            package_name: Cow::Borrowed("axum"),
            instrumentation_name: "AxumInstrumentation",
            submodule_name: method_name(&x.method),
            package_type: 1,
            kind: kind::SERVER,
            input: Value::Object(input),
            output: Value::Object(output),
            input_merges,
            output_merges,
            status_code,
            status_message,
            is_root_span: true,
            oversize: x.request_oversize || x.response_oversize,
            // Inbound rules edit only the input; one that applied may have re-encoded the body.
            input_body: (transform_metadata.is_none() && !x.request_body.is_empty()).then(|| x.request_body.clone()),
            output_body: match x.response_body.as_slice() {
                [one] if !one.is_empty() => Some(one.clone()),
                _ => None,
            },
            transform_metadata,
        }
    }

    fn build_client(&mut self, x: &ClientExchange) -> Built {
        let url = &x.url;
        let path = if url.path().is_empty() { "/" } else { url.path() };
        let mut input = Object::with_capacity(10);
        input.push_unique("method", x.method.as_str());
        input.push_unique("url", url.as_str());
        input.push_unique("protocol", url.scheme());
        if let Some(host) = url.host_str() {
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            input.push_unique("hostname", host.to_ascii_lowercase());
        }
        if let Some(port) = url.port() {
            input.push_unique("port", i64::from(port));
        }
        input.push_unique("path", path);
        input.push_unique("headers", headers_object(&x.headers));
        input.push_unique("query", query_object(url.query().unwrap_or("")));
        if let Some(body) = &x.body {
            input.push_unique("body", BASE64.encode(body));
            input.push_unique("bodySize", body.len() as i64);
        }
        let request_type =
            gates::client_decoded_type(header_get(&x.headers, &http::header::CONTENT_TYPE).map(|v| v.as_bytes()));
        let mut output = Object::with_capacity(5);
        let (status_code, status_message, response_type) = match &x.outcome {
            ClientOutcome::Response {
                status: code,
                headers,
                body,
            } => {
                output.push_unique("statusCode", i64::from(code.as_u16()));
                output.push_unique("statusMessage", code.canonical_reason().unwrap_or(""));
                output.push_unique("headers", headers_object(headers));
                let len: usize = body.iter().map(Bytes::len).sum();
                output.push_unique("body", self.base64_frames(body));
                output.push_unique("bodySize", len as i64);
                let response_type =
                    gates::client_decoded_type(header_get(headers, &http::header::CONTENT_TYPE).map(|v| v.as_bytes()));
                if code.as_u16() >= 400 {
                    (status::ERROR, format!("HTTP {}", code.as_u16()), response_type)
                } else {
                    (status::OK, String::new(), response_type)
                }
            }
            ClientOutcome::Failed { name, message } => {
                output.push_unique("errorName", *name);
                output.push_unique("errorMessage", message.as_str());
                (status::ERROR, message.clone(), None)
            }
        };
        let transform_metadata = self.transforms.apply_client(&mut input, &mut output);
        let input_merges = client_merges(&input, request_type);
        let output_merges = client_merges(&output, response_type);
        Built {
            name: concat(&[x.method.as_str(), " ", path]),
            package_name: scheme_name(url.scheme()),
            instrumentation_name: "ReqwestInstrumentation",
            submodule_name: method_name(&x.method),
            package_type: 1,
            kind: kind::CLIENT,
            input: Value::Object(input),
            output: Value::Object(output),
            input_merges,
            output_merges,
            status_code,
            status_message,
            is_root_span: false,
            transform_metadata,
            oversize: x.oversize,
            input_body: None,
            output_body: None,
        }
    }

    /// Base64 of the concatenated frames, without joining them first when there is only one.
    fn base64_frames(&mut self, frames: &[Bytes]) -> String {
        match frames {
            [] => String::new(),
            [one] => BASE64.encode(one),
            many => {
                self.scratch.clear();
                for f in many {
                    self.scratch.extend_from_slice(f);
                }
                BASE64.encode(&self.scratch)
            }
        }
    }

    /// Schemas, hashes and the span itself.
    fn finish(&mut self, record: SpanRecord, built: Built) -> CleanSpan {
        let input = built.input;
        let output = built.output;
        let (input_schema, input_hashes) =
            self.hasher
                .hash_payload_with_body(&input, built.input_merges.as_slice(), built.input_body.as_deref());
        let (output_schema, output_hashes) =
            self.hasher
                .hash_payload_with_body(&output, built.output_merges.as_slice(), built.output_body.as_deref());
        let start_ns = record
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        CleanSpan {
            trace_id: record.trace_id,
            span_id: record.span_id,
            parent_span_id: record.parent_span_id,
            name: built.name,
            package_name: built.package_name,
            instrumentation_name: built.instrumentation_name,
            submodule_name: built.submodule_name,
            package_type: built.package_type,
            kind: built.kind,
            input_value: input,
            output_value: output,
            input_schema,
            output_schema,
            input_schema_hash: input_hashes.schema_hash,
            output_schema_hash: output_hashes.schema_hash,
            input_value_hash: input_hashes.value_hash,
            output_value_hash: output_hashes.value_hash,
            status_code: built.status_code,
            status_message: built.status_message,
            is_pre_app_start: record.is_pre_app_start,
            is_root_span: built.is_root_span,
            timestamp: SecondsNanos::from_nanos(start_ns),
            duration: SecondsNanos::from_nanos(record.duration.as_nanos()),
            environment: self.environment.clone(),
            transform_metadata: built.transform_metadata,
        }
    }
}

fn build_client_dropped(method: &http::Method, url: &reqwest::Url, metadata: &TransformMetadata) -> Built {
    let path = if url.path().is_empty() { "/" } else { url.path() };
    let mut output = Object::with_capacity(1);
    output.push_unique("bodyProcessingError", "dropped");
    Built {
        name: format!("{} {path}", method.as_str()),
        package_name: scheme_name(url.scheme()),
        instrumentation_name: "ReqwestInstrumentation",
        submodule_name: method_name(method),
        package_type: 1,
        kind: kind::CLIENT,
        input: Value::Object(Object::new()),
        output: Value::Object(output),
        input_merges: Merges::default(),
        output_merges: Merges::default(),
        status_code: status::ERROR,
        status_message: "Dropped by transform".to_owned(),
        is_root_span: false,
        transform_metadata: Some(metadata.clone()),
        oversize: false,
        input_body: None,
        output_body: None,
    }
}

fn build_env_snapshot(vars: &[(String, String)]) -> Built {
    let mut env = Object::with_capacity(vars.len());
    for (k, v) in vars {
        env.insert(k.clone(), v.as_str());
    }
    let mut output = Object::with_capacity(1);
    output.push_unique("ENV_VARS", env);
    Built {
        name: "ENV_VARS_SNAPSHOT".to_owned(),
        package_name: Cow::Borrowed("os.environ"),
        instrumentation_name: "",
        submodule_name: Cow::Borrowed(""),
        package_type: 0,
        kind: kind::INTERNAL,
        input: Value::Object(Object::new()),
        output: Value::Object(output),
        input_merges: Merges::default(),
        output_merges: Merges::default(),
        status_code: status::UNSET,
        status_message: String::new(),
        is_root_span: false,
        transform_metadata: None,
        oversize: false,
        input_body: None,
        output_body: None,
    }
}

/// The size gate (§13.1): `Some(estimate)` when `L(input) + L(output) + 51200` passes the limit (or capture already
/// knew it would). The exact count walks every string's bytes, so a cheap upper bound rules out the usual small span
/// first.
fn size_over_limit(built: &Built) -> Option<usize> {
    if !built.oversize
        && python_dumps_len_upper_bound(&built.input) + python_dumps_len_upper_bound(&built.output) + SIZE_OVERHEAD
            <= SIZE_LIMIT
    {
        return None;
    }
    let estimate = python_dumps_len(&built.input) + python_dumps_len(&built.output) + SIZE_OVERHEAD;
    (built.oversize || estimate > SIZE_LIMIT).then_some(estimate)
}

fn server_merges(value: &Object) -> Merges {
    let mut m = Merges::default();
    m.push("headers", HEADERS_MERGE);
    if value.contains_key("body") {
        m.push(
            "body",
            Merge {
                encoding: Some(1),
                decoded_type: None,
                match_importance: None,
            },
        );
    }
    m
}

fn client_merges(value: &Object, decoded_type: Option<i32>) -> Merges {
    let mut m = Merges::default();
    if !value.contains_key("headers") {
        return m;
    }
    m.push("headers", HEADERS_MERGE);
    if value.contains_key("body") {
        m.push(
            "body",
            Merge {
                encoding: Some(1),
                decoded_type,
                match_importance: None,
            },
        );
    }
    m
}

/// A header value as text: UTF-8 when valid, else each byte as the code point of the same number (§4.2).
pub(crate) fn header_text(bytes: &[u8]) -> String {
    header_text_cow(bytes).into_owned()
}

/// [`header_text`], borrowing `bytes` when they are valid UTF-8.
fn header_text_cow(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// The pieces joined, in one allocation of the exact size (`format!` costs more per span: it goes through
/// `fmt::Write` and grows its buffer).
fn concat(pieces: &[&str]) -> String {
    let mut s = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for p in pieces {
        s.push_str(p);
    }
    s
}

/// An IP address as `Display` writes it; IPv4 (the usual peer) without the formatting machinery.
fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if octet >= 100 {
                    s.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    s.push(char::from(b'0' + octet / 10 % 10));
                }
                s.push(char::from(b'0' + octet % 10));
            }
            s
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

/// Every header, names as hyper gives them, repeated names joined with `", "`.
fn headers_object(headers: &HeaderList) -> Object {
    let mut o = Object::with_capacity(headers.len());
    let mut rest = headers.as_slice();
    while let [(name, first), ..] = rest {
        // A name's values are consecutive in a `HeaderList` (it is built from `HeaderMap::iter`).
        let same = rest.iter().take_while(|(n, _)| n == name).count();
        let mut text = header_text(first.as_bytes());
        for (_, v) in &rest[1..same] {
            text.push_str(", ");
            text.push_str(&header_text(v.as_bytes()));
        }
        o.push_unique(header_key(name), text);
        rest = &rest[same..];
    }
    o
}

/// A header name as an object key: common names are `'static` (no allocation), others owned.
fn header_key(name: &http::HeaderName) -> crate::json::Key {
    use std::borrow::Cow;
    const COMMON: &[&str] = &[
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "date",
        "host",
        "origin",
        "referer",
        "server",
        "set-cookie",
        "transfer-encoding",
        "user-agent",
        "vary",
        "x-forwarded-for",
        "x-request-id",
    ];
    let name = name.as_str();
    match COMMON.iter().find(|c| **c == name) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(name.to_owned()),
    }
}

fn http_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `statusMessage`: the custom reason phrase, else the canonical one, else `""` (§4.3).
fn status_message(code: http::StatusCode, reason: Option<&Bytes>) -> String {
    match reason {
        Some(r) => header_text(r),
        None => code.canonical_reason().unwrap_or("").to_owned(),
    }
}

/// The client `query` object (§5.2): pairs with `=` and a non-empty value; a repeated key becomes an array.
fn query_object(query: &str) -> Object {
    let mut o = Object::new();
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        if v.is_empty() {
            continue;
        }
        let key = form_decode(k);
        let value = Value::String(form_decode(v));
        match o.get_mut(&key) {
            None => o.push_unique(key, value),
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = std::mem::replace(existing, Value::Null);
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_writes_what_display_writes() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let mut ips: Vec<IpAddr> = [0u8, 1, 9, 10, 99, 100, 101, 199, 200, 255]
            .iter()
            .flat_map(|&a| [Ipv4Addr::new(a, 0, 100, a), Ipv4Addr::new(127, a, a, 1)])
            .map(IpAddr::V4)
            .collect();
        ips.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        ips.push(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        for ip in ips {
            assert_eq!(ip_text(ip), ip.to_string());
        }
        assert_eq!(concat(&["GET", " ", "/a"]), "GET /a");
        assert_eq!(concat(&[]), "");
    }

    /// The example line of §8.4, byte for byte, from the raw record that produces it.
    #[test]
    fn the_contract_example_line_is_reproduced_exactly() {
        use std::net::SocketAddr;
        use std::time::{Duration, SystemTime};

        use http::{HeaderValue, Method, StatusCode, Uri, Version};

        use crate::ids::{SpanId, TraceId};
        use crate::record::{ServerExchange, header_list};

        let mut headers = http::HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:5000"));
        headers.insert("user-agent", HeaderValue::from_static("drift-bench/0.1"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        let mut response_headers = http::HeaderMap::new();
        response_headers.insert("content-type", HeaderValue::from_static("application/json"));
        let record = SpanRecord {
            trace_id: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736),
            span_id: SpanId(0x00f067aa0ba902b7),
            parent_span_id: None,
            is_pre_app_start: false,
            start: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            duration: Duration::from_nanos(183_400),
            payload: Payload::Server(Box::new(ServerExchange {
                method: Method::GET,
                uri: Uri::from_static("/api/simple"),
                version: Version::HTTP_11,
                headers: header_list(&headers),
                remote: Some(SocketAddr::from(([127, 0, 0, 1], 54321))),
                request_body: Bytes::new(),
                request_oversize: false,
                status: StatusCode::OK,
                reason: None,
                response_headers: header_list(&response_headers),
                response_body: smallvec::smallvec![Bytes::from_static(
                    br#"{"message":"Hello World","timestamp":1700000000000}"#,
                )],
                response_oversize: false,
                error: None,
            })),
        };
        let mut cleaner = Cleaner::new(Arc::new(Transforms::default()), "development");
        let span = cleaner.clean(record).unwrap();
        let mut line = Vec::new();
        span.write_json_line(&mut line);
        assert_eq!(String::from_utf8(line).unwrap(), EXAMPLE_8_4);
    }

    const EXAMPLE_8_4: &str = r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"","name":"GET /api/simple","packageName":"axum","instrumentationName":"AxumInstrumentation","submoduleName":"GET","inputValue":{"method":"GET","url":"http://127.0.0.1:5000/api/simple","target":"/api/simple","headers":{"host":"127.0.0.1:5000","user-agent":"drift-bench/0.1","accept":"*/*"},"httpVersion":"1.1","remoteAddress":"127.0.0.1","remotePort":54321},"outputValue":{"statusCode":200,"statusMessage":"OK","headers":{"content-type":"application/json"},"body":"eyJtZXNzYWdlIjoiSGVsbG8gV29ybGQiLCJ0aW1lc3RhbXAiOjE3MDAwMDAwMDAwMDB9","bodySize":51},"inputSchema":{"type":6,"properties":{"method":{"type":2,"properties":{}},"url":{"type":2,"properties":{}},"target":{"type":2,"properties":{}},"headers":{"type":6,"properties":{"host":{"type":2,"properties":{}},"user-agent":{"type":2,"properties":{}},"accept":{"type":2,"properties":{}}},"matchImportance":0.0},"httpVersion":{"type":2,"properties":{}},"remoteAddress":{"type":2,"properties":{}},"remotePort":{"type":1,"properties":{}}}},"outputSchema":{"type":6,"properties":{"statusCode":{"type":1,"properties":{}},"statusMessage":{"type":2,"properties":{}},"headers":{"type":6,"properties":{"content-type":{"type":2,"properties":{}}},"matchImportance":0.0},"body":{"type":2,"properties":{},"encoding":1},"bodySize":{"type":1,"properties":{}}}},"inputSchemaHash":"4380527cd78ea8e920017ec22596e39dda3d9cc23b9758d0dd9d93793a782ccc","outputSchemaHash":"fd75f20ce5f9a73714c5d8f9b38c9b2b17df44429f04562b20e66f2750b05489","inputValueHash":"9336334e1160b5974b1e1d6251b4195d24ba859d350e7c2d05c5b74e0d3df456","outputValueHash":"ba57da513cea26d9118cbf34094ba28d545657c0f61e60d4d73947bdaece1e88","kind":2,"status":{"code":1,"message":""},"isPreAppStart":false,"timestamp":{"seconds":1700000000,"nanos":123456789},"duration":{"seconds":0,"nanos":183400},"isRootSpan":true,"packageType":1,"environment":"development","isUsed":true,"stackTrace":""}"#;

    #[test]
    fn query_object_follows_the_contract() {
        // §5.6 and S10
        let q = query_object("page=2&tag=a&tag=b&empty=&novalue&sp=a+b%20c&bad=%ff");
        let mut out = Vec::new();
        crate::json::write_compact(&Value::Object(q), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"page":"2","tag":["a","b"],"sp":"a b c","bad":"�"}"#
        );
        assert!(query_object("").is_empty());
    }

    #[test]
    fn repeated_header_names_are_joined_in_arrival_order() {
        let mut map = http::HeaderMap::new();
        map.append("accept", http::HeaderValue::from_static("a"));
        map.append("x-one", http::HeaderValue::from_static("1"));
        map.append("accept", http::HeaderValue::from_static("b"));
        map.append("x-two", http::HeaderValue::from_bytes(&[0xe9]).unwrap());
        let mut out = Vec::new();
        crate::json::write_compact(
            &Value::Object(headers_object(&crate::record::header_list(&map))),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"accept":"a, b","x-one":"1","x-two":"é"}"#
        );
    }

    #[test]
    fn http_versions_are_written_as_the_contract_lists_them() {
        // §4.2: "0.9", "1.0", "1.1", "2" or "3".
        let got: Vec<&str> = [http::Version::HTTP_09, http::Version::HTTP_10, http::Version::HTTP_11]
            .into_iter()
            .chain([http::Version::HTTP_2, http::Version::HTTP_3])
            .map(http_version)
            .collect();
        assert_eq!(got, ["0.9", "1.0", "1.1", "2", "3"]);
    }

    #[test]
    fn header_values_fall_back_to_latin1() {
        // S7
        assert_eq!(header_text(&[0xc3, 0xa9]), "é");
        assert_eq!(header_text(&[0xe9]), "é");
    }

    #[test]
    fn status_messages() {
        // S6
        assert_eq!(status_message(http::StatusCode::OK, None), "OK");
        assert_eq!(status_message(http::StatusCode::CREATED, None), "Created");
        assert_eq!(status_message(http::StatusCode::from_u16(299).unwrap(), None), "");
        assert_eq!(
            status_message(http::StatusCode::OK, Some(&Bytes::from_static(b"Fine"))),
            "Fine"
        );
    }
}

/// Fuzzing `to_clean_span` (issue 7): arbitrary bodies, headers, statuses and transform rules never panic, and every
/// span that comes out writes one line of valid JSON.
#[cfg(test)]
mod proptests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
    use proptest::prelude::*;

    use super::Cleaner;
    use crate::ids::{SpanId, TraceId};
    use crate::record::{ClientExchange, ClientOutcome, HeaderList, Payload, ServerExchange, SpanRecord};
    use crate::transform::{Action, TransformRule, Transforms};

    /// Bodies: raw bytes, or JSON-ish text built from pieces that stress the parser, the decoder and the writers.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"password\"".to_owned()),
            Just("\"ssn\"".to_owned()),
            Just("\"\\u0000\\ud800\\\"\"".to_owned()),
            Just("NaN".to_owned()),
            Just("-0".to_owned()),
            Just("1e400".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            "[a-zA-Z0-9 ._-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
        ];
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat().into_bytes()),
            // Valid JSON objects with odd keys and values.
            proptest::collection::btree_map(any::<String>(), any::<i32>(), 0..6)
                .prop_map(|m| serde_json::to_vec(&m).unwrap_or_default()),
        ]
    }

    fn header_value() -> impl Strategy<Value = HeaderValue> {
        // Any bytes HeaderValue accepts: visible ASCII, space, tab and obs-text (0x80–0xFF), which is not UTF-8.
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff], 0..40)
            .prop_filter_map("a valid header value", |b| HeaderValue::from_bytes(&b).ok())
    }

    fn headers() -> impl Strategy<Value = HeaderList> {
        let name = prop_oneof![
            Just("content-type".to_owned()),
            Just("authorization".to_owned()),
            Just("cookie".to_owned()),
            Just("content-encoding".to_owned()),
            Just("host".to_owned()),
            "x-[a-z0-9-]{1,12}",
        ];
        let content_type = prop_oneof![
            Just("application/json"),
            Just("application/json; charset=utf-8"),
            Just("text/plain"),
            Just("application/x-www-form-urlencoded"),
            Just("image/png"),
            Just("application/octet-stream"),
        ];
        (
            proptest::collection::vec((name, header_value()), 0..8),
            proptest::option::of(content_type),
        )
            .prop_map(|(pairs, content_type)| {
                let mut list: HeaderList = pairs
                    .into_iter()
                    .filter_map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, v)))
                    .collect();
                if let Some(ct) = content_type {
                    list.push((http::header::CONTENT_TYPE, HeaderValue::from_static(ct)));
                }
                list
            })
    }

    fn uri() -> impl Strategy<Value = Uri> {
        (
            "/[a-zA-Z0-9/%._~-]{0,30}",
            proptest::option::of("[a-zA-Z0-9=&%+._-]{0,30}"),
        )
            .prop_filter_map("a valid URI", |(path, query)| {
                let text = match query {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                text.parse().ok()
            })
    }

    fn rule() -> impl Strategy<Value = TransformRule> {
        let action = prop_oneof![
            Just(Action::redact()),
            Just(Action::mask()),
            Just(Action::replace("[gone]")),
        ];
        let json_path = prop_oneof![
            Just("$.password"),
            Just("$.ssn"),
            Just("$..x"),
            Just("$[0]"),
            Just("$.a.b[2].c"),
            Just("$['we ird']"),
            Just("$.*"),
        ];
        (any::<bool>(), 0..5u8, json_path, action).prop_map(|(inbound, target, path, action)| {
            let m = if inbound {
                TransformRule::inbound()
            } else {
                TransformRule::outbound()
            };
            let m = match target {
                0 => m.json_path(path),
                1 => m.header("authorization"),
                2 => m.query_param("token"),
                3 => m.url_path(),
                _ => m.full_body(),
            };
            m.action(action)
        })
    }

    fn record(payload: Payload) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(7),
            span_id: SpanId(9),
            parent_span_id: None,
            is_pre_app_start: false,
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_micros(250),
            payload,
        }
    }

    fn status() -> impl Strategy<Value = StatusCode> {
        prop_oneof![
            Just(200u16),
            Just(201),
            Just(204),
            Just(304),
            Just(404),
            Just(500),
            100u16..600
        ]
        .prop_filter_map("a valid status", |s| StatusCode::from_u16(s).ok())
    }

    #[derive(Debug, Clone)]
    struct Exchange {
        server: bool,
        method: Method,
        uri: Uri,
        request_headers: HeaderList,
        request_body: Vec<u8>,
        status: StatusCode,
        response_headers: HeaderList,
        response_chunks: Vec<Vec<u8>>,
    }

    fn exchange() -> impl Strategy<Value = Exchange> {
        (
            any::<bool>(),
            prop_oneof![
                Just(Method::GET),
                Just(Method::POST),
                Just(Method::PUT),
                Just(Method::DELETE)
            ],
            uri(),
            headers(),
            body(),
            status(),
            headers(),
            proptest::collection::vec(body(), 0..3),
        )
            .prop_map(
                |(server, method, uri, request_headers, request_body, status, response_headers, response_chunks)| {
                    Exchange {
                        server,
                        method,
                        uri,
                        request_headers,
                        request_body,
                        status,
                        response_headers,
                        response_chunks,
                    }
                },
            )
    }

    fn payload(x: Exchange) -> Payload {
        let chunks: crate::record::Frames = x.response_chunks.into_iter().map(Bytes::from).collect();
        if x.server {
            return Payload::Server(Box::new(ServerExchange {
                method: x.method,
                uri: x.uri,
                version: Version::HTTP_11,
                headers: x.request_headers,
                remote: Some(SocketAddr::from(([127, 0, 0, 1], 40000))),
                request_body: Bytes::from(x.request_body),
                request_oversize: false,
                status: x.status,
                reason: None,
                response_headers: x.response_headers,
                response_body: chunks,
                response_oversize: false,
                error: None,
            }));
        }
        let url = reqwest::Url::parse(&format!("http://upstream.test{}", x.uri))
            .unwrap_or_else(|_| reqwest::Url::parse("http://upstream.test/").expect("a valid URL"));
        Payload::Client(Box::new(ClientExchange {
            method: x.method,
            url,
            headers: x.request_headers,
            body: (!x.request_body.is_empty()).then(|| Bytes::from(x.request_body)),
            response_blocked: None,
            oversize: false,
            outcome: ClientOutcome::Response {
                status: x.status,
                headers: x.response_headers,
                body: chunks,
            },
        }))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn to_clean_span_never_panics_and_writes_valid_json(
            rules in proptest::collection::vec(rule(), 0..4),
            exchanges in proptest::collection::vec(exchange(), 1..4),
        ) {
            let transforms = Arc::new(Transforms::new(rules).expect("the generated rules are valid"));
            let mut cleaner = Cleaner::new(transforms, "fuzz");
            let mut line = Vec::new();
            for x in exchanges {
                if let Ok(span) = cleaner.clean(record(payload(x))) {
                    line.clear();
                    span.write_json_line(&mut line);
                    let text = std::str::from_utf8(&line).expect("a line is UTF-8");
                    let value: serde_json::Value = serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("{e}: {text}"));
                    prop_assert!(value["traceId"].is_string());
                    prop_assert!(!text.contains('\n'), "one line: {text}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// The export thread's caches (schemas by shape, recycled buffers, known bodies) change nothing: a cleaner
        /// that has seen other spans, and the same spans before, writes byte for byte the line a fresh one writes.
        #[test]
        fn a_warm_cleaner_writes_what_a_fresh_one_writes(
            rules in proptest::collection::vec(rule(), 0..3),
            exchanges in proptest::collection::vec(exchange(), 1..4),
        ) {
            let transforms = Arc::new(Transforms::new(rules).expect("the generated rules are valid"));
            let mut warm = Cleaner::new(Arc::clone(&transforms), "fuzz");
            let (mut warm_line, mut fresh_line) = (Vec::new(), Vec::new());
            for pass in 0..2u128 {
                for (i, x) in exchanges.iter().enumerate() {
                    // A trace of its own, so that one blocked span blocks nothing else.
                    let traced = |x: &Exchange| SpanRecord {
                        trace_id: TraceId(pass * 100 + i as u128 + 1),
                        ..record(payload(x.clone()))
                    };
                    let fresh = Cleaner::new(Arc::clone(&transforms), "fuzz").clean(traced(x));
                    match (warm.clean(traced(x)), fresh) {
                        (Ok(w), Ok(f)) => {
                            warm_line.clear();
                            fresh_line.clear();
                            w.write_json_line(&mut warm_line);
                            f.write_json_line(&mut fresh_line);
                            prop_assert_eq!(
                                String::from_utf8_lossy(&warm_line),
                                String::from_utf8_lossy(&fresh_line)
                            );
                        }
                        (Err(w), Err(f)) => prop_assert_eq!(w, f),
                        (w, f) => prop_assert!(false, "warm {:?}, fresh {:?}", w.map(|_| ()), f.map(|_| ())),
                    }
                }
            }
        }
    }
}
