//! The gates of §13: content types that block a trace, the size limit, and the blocked-trace registry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::TraceId;

/// The span size limit in bytes of the estimate (§13.1).
pub(crate) const SIZE_LIMIT: usize = 1_048_576;
/// What every span's estimate starts with (§13.1).
pub(crate) const SIZE_OVERHEAD: usize = 51_200;
/// Capture may stop once the base64 length of what it holds passes this (§13.1).
pub(crate) const CAPTURE_LIMIT: usize = SIZE_LIMIT - SIZE_OVERHEAD;

/// Longer media types than this map to nothing (the longest in the tables has 73 bytes).
const MEDIA_TYPE_MAX: usize = 96;

/// The length of the standard base64 of `n` raw bytes. `n` can come from a client's Content-Length: it saturates
/// rather than overflows.
pub(crate) fn base64_len(n: u64) -> u64 {
    n.div_ceil(3).saturating_mul(4)
}

/// Whether `n` raw bytes are certain to pass the size gate once stored as base64 (§13.1).
pub(crate) fn certainly_oversize(n: u64) -> bool {
    base64_len(n) > CAPTURE_LIMIT as u64
}

/// The media type of a `content-type` value: cut at the first `;`, trimmed, lower-cased into `buf` — no allocation,
/// since the request thread checks it for every sampled response. `None` when it is not ASCII or too long to be
/// in a table.
fn media_type<'b>(content_type: &[u8], buf: &'b mut [u8; MEDIA_TYPE_MAX]) -> Option<&'b str> {
    let cut = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let dst = buf.get_mut(..cut.len())?;
    for (d, s) in dst.iter_mut().zip(cut) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(dst).ok()
}

/// The decoded type the gate table maps a media type to, as (name, proto number) (§13.3).
pub(crate) fn gate_decoded_type(media: &str) -> Option<(&'static str, i32)> {
    Some(match media {
        "application/json" | "application/ld+json" | "application/vnd.api+json" => ("JSON", 1),
        "text/plain" => ("PLAIN_TEXT", 11),
        "text/html" | "application/xhtml+xml" => ("HTML", 2),
        "text/css" => ("CSS", 3),
        "text/javascript"
        | "application/javascript"
        | "application/x-javascript"
        | "text/ecmascript"
        | "application/ecmascript" => ("JAVASCRIPT", 4),
        "text/xml" | "application/xml" | "application/rss+xml" | "application/atom+xml" => ("XML", 5),
        "image/svg+xml" => ("SVG", 23),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml" => ("YAML", 6),
        "text/markdown" | "text/x-markdown" => ("MARKDOWN", 7),
        "text/csv" | "text/tab-separated-values" => ("CSV", 8),
        "application/sql" => ("SQL", 9),
        "application/graphql" => ("GRAPHQL", 10),
        "application/x-www-form-urlencoded" => ("FORM_DATA", 12),
        "multipart/form-data" => ("MULTIPART_FORM", 13),
        "application/pdf" => ("PDF", 14),
        "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => ("BINARY", 18),
        "application/zip" | "application/x-zip-compressed" => ("ZIP", 24),
        "application/gzip" | "application/x-gzip" => ("GZIP", 17),
        "application/x-tar" | "application/x-7z-compressed" | "application/x-rar-compressed" => ("BINARY", 18),
        "image/jpeg"
        | "image/jpg"
        | "image/bmp"
        | "image/x-icon"
        | "image/vnd.microsoft.icon"
        | "image/tiff"
        | "image/x-tiff" => ("JPEG", 19),
        "image/png" => ("PNG", 20),
        "image/gif" => ("GIF", 21),
        "image/webp" => ("WEBP", 22),
        "audio/mpeg" | "audio/mp3" | "audio/mp4" | "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/aac"
        | "audio/ogg" | "audio/webm" | "audio/flac" => ("AUDIO", 15),
        "video/mp4" | "video/mpeg" | "video/webm" | "video/ogg" | "video/quicktime" | "video/x-msvideo"
        | "video/x-flv" | "video/3gpp" | "video/3gpp2" => ("VIDEO", 16),
        "font/woff"
        | "font/woff2"
        | "font/ttf"
        | "font/otf"
        | "application/font-woff"
        | "application/font-woff2"
        | "application/x-font-ttf"
        | "application/x-font-otf" => ("BINARY", 18),
        "application/octet-stream" | "application/binary" => ("BINARY", 18),
        _ => return None,
    })
}

/// The name of the decoded type that blocks a trace for this `content-type`, if it does (§13.3): every mapped type
/// but JSON and PLAIN_TEXT.
pub(crate) fn blocking_content_type(content_type: Option<&[u8]>) -> Option<&'static str> {
    let mut buf = [0; MEDIA_TYPE_MAX];
    let media = media_type(content_type?, &mut buf)?;
    match gate_decoded_type(media)? {
        (_, 1) | (_, 11) => None,
        (name, _) => Some(name),
    }
}

/// The `decoded_type` merge of a client body for this `content-type` (§5.4's smaller table).
pub(crate) fn client_decoded_type(content_type: Option<&[u8]>) -> Option<i32> {
    let mut buf = [0; MEDIA_TYPE_MAX];
    Some(match media_type(content_type?, &mut buf)? {
        "application/json" => 1,
        "text/plain" => 11,
        "text/html" => 2,
        "application/x-www-form-urlencoded" => 12,
        "multipart/form-data" => 13,
        "application/xml" | "text/xml" => 5,
        _ => return None,
    })
}

/// How long a blocked trace stays blocked (§13.4).
const BLOCK_TTL: Duration = Duration::from_secs(600);
/// How often expired entries are swept (§13.4).
const SWEEP_EVERY: Duration = Duration::from_secs(120);

/// Trace id → (first reason, time blocked). Owned by the export thread; no locking.
#[derive(Debug)]
pub(crate) struct BlockedTraces {
    entries: HashMap<TraceId, (String, Instant)>,
    last_sweep: Instant,
}

impl BlockedTraces {
    pub(crate) fn new(now: Instant) -> BlockedTraces {
        BlockedTraces {
            entries: HashMap::new(),
            last_sweep: now,
        }
    }

    /// Blocks `trace`; the first reason wins (L5). Returns whether this call blocked it.
    pub(crate) fn block(&mut self, trace: TraceId, reason: String, now: Instant) -> bool {
        self.sweep(now);
        match self.entries.get(&trace) {
            Some((_, at)) if now.duration_since(*at) < BLOCK_TTL => false,
            _ => {
                tracing::debug!(trace_id = %trace, %reason, "trace blocked");
                self.entries.insert(trace, (reason, now));
                true
            }
        }
    }

    /// Whether `trace` is blocked now.
    pub(crate) fn is_blocked(&mut self, trace: TraceId, now: Instant) -> bool {
        self.sweep(now);
        self.entries
            .get(&trace)
            .is_some_and(|(_, at)| now.duration_since(*at) < BLOCK_TTL)
    }

    /// The reason `trace` was blocked, if it is.
    #[cfg(test)]
    pub(crate) fn reason(&self, trace: TraceId) -> Option<&str> {
        self.entries.get(&trace).map(|(r, _)| r.as_str())
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.entries.retain(|_, (_, at)| now.duration_since(*at) < BLOCK_TTL);
            self.last_sweep = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_gate() {
        // L7, L9 and the pass-through types.
        assert_eq!(blocking_content_type(Some(b"text/html; charset=utf-8")), Some("HTML"));
        assert_eq!(blocking_content_type(Some(b"image/png")), Some("PNG"));
        assert_eq!(blocking_content_type(Some(b" Application/JSON ; charset=utf-8")), None);
        assert_eq!(blocking_content_type(Some(b"text/plain")), None);
        assert_eq!(blocking_content_type(Some(b"application/x-custom")), None);
        assert_eq!(blocking_content_type(None), None);
    }

    #[test]
    fn client_merge_table_is_smaller_than_the_gate_table() {
        assert_eq!(client_decoded_type(Some(b"application/json; charset=utf-8")), Some(1));
        assert_eq!(client_decoded_type(Some(b"text/xml")), Some(5));
        assert_eq!(client_decoded_type(Some(b"application/ld+json")), None);
        assert_eq!(client_decoded_type(None), None);
    }

    #[test]
    fn first_block_reason_wins_and_entries_expire() {
        // L5
        let t0 = Instant::now();
        let mut blocked = BlockedTraces::new(t0);
        let trace = TraceId(7);
        assert!(blocked.block(trace, "server_error".into(), t0));
        assert!(!blocked.block(trace, "size_limit:2.00MB".into(), t0));
        assert_eq!(blocked.reason(trace), Some("server_error"));
        assert!(blocked.is_blocked(trace, t0 + Duration::from_secs(599)));
        assert!(!blocked.is_blocked(trace, t0 + Duration::from_secs(601)));
    }
}
