//! Hooks for `benches/pipeline.rs`: build the raw records of the seed's three requests and run the export thread's
//! stages on them one at a time. Not part of the supported API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};

use crate::clean_span::CleanSpan;
use crate::ids::{SpanId, TraceId};
use crate::record::{Payload, ServerExchange, SpanRecord};
use crate::to_clean_span::Cleaner;
use crate::transform::{TransformRule, Transforms};

/// The three request shapes of the seed mix (§15.2).
#[derive(Debug, Clone, Copy)]
pub enum SeedShape {
    /// `GET /api/simple`.
    Simple,
    /// `POST /api/echo` with `{"data":"test","iteration":1}`.
    Echo,
    /// `POST /api/auth/login` with the seed's credentials.
    Login,
}

/// A raw record, as the request thread hands it over.
#[derive(Debug)]
pub struct RawRecord(SpanRecord);

impl RawRecord {
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> SpanRecord {
        self.0
    }
}

/// Builds the raw record the layer would produce for one seed request.
pub fn seed_record(shape: SeedShape) -> RawRecord {
    let (method, path, body, response): (Method, &str, &'static [u8], &'static [u8]) = match shape {
        SeedShape::Simple => (Method::GET, "/api/simple", b"", br#"{"message":"Hello World","timestamp":1700000000000}"#),
        SeedShape::Echo => (
            Method::POST,
            "/api/echo",
            br#"{"data":"test","iteration":1}"#,
            br#"{"data":"test","iteration":1}"#,
        ),
        SeedShape::Login => (
            Method::POST,
            "/api/auth/login",
            br#"{"email":"test@example.com","password":"secret123"}"#,
            br#"{"success":true,"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...","user":{"id":123,"email":"test@example.com","role":"user"}}"#,
        ),
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:5000"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    if !body.is_empty() {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("content-length", HeaderValue::from(body.len()));
    }
    let mut response_headers = HeaderMap::new();
    response_headers.insert("content-type", HeaderValue::from_static("application/json"));
    response_headers.insert("content-length", HeaderValue::from(response.len()));
    RawRecord(SpanRecord {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: None,
        is_pre_app_start: false,
        start: SystemTime::now(),
        duration: Duration::from_micros(180),
        payload: Payload::Server(Box::new(ServerExchange {
            method,
            uri: Uri::from_static(path),
            version: Version::HTTP_11,
            headers: crate::record::header_list(&headers),
            remote: Some(SocketAddr::from(([127, 0, 0, 1], 54321))),
            request_body: Bytes::from_static(body),
            request_oversize: false,
            status: StatusCode::OK,
            reason: None,
            response_headers: crate::record::header_list(&response_headers),
            response_body: smallvec::smallvec![Bytes::from_static(response)],
            response_oversize: false,
            error: None,
        })),
    })
}

/// The export thread's `to_clean_span` stage, reusable across records like the real one.
#[derive(Debug)]
pub struct ExportStages(Cleaner);

impl ExportStages {
    /// Stages with these transform rules and the environment `development`.
    pub fn new(rules: Vec<TransformRule>) -> crate::Result<ExportStages> {
        let transforms = Arc::new(Transforms::new(rules)?);
        Ok(ExportStages(Cleaner::new(transforms, crate::DEFAULT_ENVIRONMENT)))
    }

    /// Gates, transforms, values, schemas and hashes of one record; `None` when the record is discarded.
    pub fn to_clean_span(&mut self, record: RawRecord) -> Option<CleanSpan> {
        self.0.clean(record.0).ok()
    }
}
