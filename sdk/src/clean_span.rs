//! The processed span: stored values, schemas and hashes, ready for a sink. Built by
//! [`to_clean_span`](crate::to_clean_span) on the export thread; the file sink writes its JSON line straight from it
//! (§8.3), the API sink converts it with [`clean_span_to_proto`](crate::clean_span_to_proto).

use std::borrow::Cow;
use std::sync::Arc;

use crate::ids::{SpanId, TraceId};
use crate::json::{HexDigest, Value, write_compact};
use crate::schema::SharedSchema;
use crate::transform::TransformMetadata;

/// Span kinds in proto numbering (§2).
pub mod kind {
    /// `SPAN_KIND_INTERNAL`.
    pub const INTERNAL: i32 = 1;
    /// `SPAN_KIND_SERVER`.
    pub const SERVER: i32 = 2;
    /// `SPAN_KIND_CLIENT`.
    pub const CLIENT: i32 = 3;
}

/// Status codes in proto numbering (§2).
pub mod status {
    /// `STATUS_CODE_UNSPECIFIED`.
    pub const UNSET: i32 = 0;
    /// `STATUS_CODE_OK`.
    pub const OK: i32 = 1;
    /// `STATUS_CODE_ERROR`.
    pub const ERROR: i32 = 2;
}

/// Seconds and nanoseconds, as `timestamp` and `duration` are written (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondsNanos {
    /// Whole seconds.
    pub seconds: i64,
    /// Nanoseconds, 0 ≤ nanos < 10⁹.
    pub nanos: i32,
}

impl SecondsNanos {
    /// Splits a nanosecond count (P5).
    pub fn from_nanos(ns: u128) -> SecondsNanos {
        SecondsNanos {
            seconds: (ns / 1_000_000_000) as i64,
            nanos: (ns % 1_000_000_000) as i32,
        }
    }
}

/// A span ready for export.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanSpan {
    /// The trace id.
    pub trace_id: TraceId,
    /// The span id.
    pub span_id: SpanId,
    /// The parent span, `None` for roots and parentless pre-app-start calls.
    pub parent_span_id: Option<SpanId>,
    /// `"<METHOD> <path>"`.
    pub name: String,
    /// `axum`, the URL scheme of a client call, or `os.environ`.
    pub package_name: Cow<'static, str>,
    /// `AxumInstrumentation` or `ReqwestInstrumentation` (empty for the env-var snapshot).
    pub instrumentation_name: &'static str,
    /// The method (empty for the env-var snapshot).
    pub submodule_name: Cow<'static, str>,
    /// `PackageType` number: 1 HTTP, 0 for the env-var snapshot.
    pub package_type: i32,
    /// `SpanKind` number (see [`kind`]).
    pub kind: i32,
    /// The stored input value (an object).
    pub input_value: Value,
    /// The stored output value (an object).
    pub output_value: Value,
    /// The input schema (shared by the spans of the same payload shape).
    pub input_schema: Arc<SharedSchema>,
    /// The output schema (shared by the spans of the same payload shape).
    pub output_schema: Arc<SharedSchema>,
    /// SHA-256 of the input schema's hash form, hex.
    pub input_schema_hash: HexDigest,
    /// SHA-256 of the output schema's hash form, hex.
    pub output_schema_hash: HexDigest,
    /// SHA-256 of the decoded input value's canonical text, hex.
    pub input_value_hash: HexDigest,
    /// SHA-256 of the decoded output value's canonical text, hex.
    pub output_value_hash: HexDigest,
    /// `StatusCode` number (see [`status`]).
    pub status_code: i32,
    /// The status message.
    pub status_message: String,
    /// Recorded before the app was marked ready.
    pub is_pre_app_start: bool,
    /// The root of its trace (SERVER spans).
    pub is_root_span: bool,
    /// Wall-clock start since the UNIX epoch.
    pub timestamp: SecondsNanos,
    /// End minus start, monotonic.
    pub duration: SecondsNanos,
    /// The environment name.
    pub environment: Arc<str>,
    /// What the transforms did, when any applied.
    pub transform_metadata: Option<TransformMetadata>,
}

impl CleanSpan {
    /// Appends the span's trace-file line (§8.3), without the trailing newline.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"traceId\":\"");
        push_hex(out, self.trace_id.0, 32);
        out.extend_from_slice(b"\",\"spanId\":\"");
        push_hex(out, u128::from(self.span_id.0), 16);
        out.extend_from_slice(b"\",\"parentSpanId\":\"");
        if let Some(parent) = self.parent_span_id {
            push_hex(out, u128::from(parent.0), 16);
        }
        out.extend_from_slice(b"\",\"name\":");
        write_str(out, &self.name);
        out.extend_from_slice(b",\"packageName\":");
        write_str(out, &self.package_name);
        out.extend_from_slice(b",\"instrumentationName\":");
        write_str(out, self.instrumentation_name);
        out.extend_from_slice(b",\"submoduleName\":");
        write_str(out, &self.submodule_name);
        out.extend_from_slice(b",\"inputValue\":");
        write_compact(&self.input_value, out);
        out.extend_from_slice(b",\"outputValue\":");
        write_compact(&self.output_value, out);
        out.extend_from_slice(b",\"inputSchema\":");
        out.extend_from_slice(self.input_schema.file_form());
        out.extend_from_slice(b",\"outputSchema\":");
        out.extend_from_slice(self.output_schema.file_form());
        for (key, hash) in [
            ("inputSchemaHash", self.input_schema_hash.as_str()),
            ("outputSchemaHash", self.output_schema_hash.as_str()),
            ("inputValueHash", self.input_value_hash.as_str()),
            ("outputValueHash", self.output_value_hash.as_str()),
        ] {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(hash.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"kind\":");
        push_int(out, i64::from(self.kind));
        out.extend_from_slice(b",\"status\":{\"code\":");
        push_int(out, i64::from(self.status_code));
        out.extend_from_slice(b",\"message\":");
        write_str(out, &self.status_message);
        out.extend_from_slice(b"},\"isPreAppStart\":");
        out.extend_from_slice(if self.is_pre_app_start { b"true" } else { b"false" });
        out.extend_from_slice(b",\"timestamp\":");
        write_seconds_nanos(out, self.timestamp);
        out.extend_from_slice(b",\"duration\":");
        write_seconds_nanos(out, self.duration);
        out.extend_from_slice(b",\"isRootSpan\":");
        out.extend_from_slice(if self.is_root_span { b"true" } else { b"false" });
        out.extend_from_slice(b",\"packageType\":");
        push_int(out, i64::from(self.package_type));
        out.extend_from_slice(b",\"environment\":");
        write_str(out, &self.environment);
        if let Some(meta) = &self.transform_metadata {
            out.extend_from_slice(b",\"transformMetadata\":");
            meta.write_json(out);
        }
        out.extend_from_slice(b",\"isUsed\":true,\"stackTrace\":\"\"}");
    }
}

/// Lower-case hex of the low `digits` nibbles of `v`, zero-padded (ids, §3.2), without `core::fmt`.
fn push_hex(out: &mut Vec<u8>, v: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    crate::json::write_int(v, out);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    crate::json::write_string(s, out);
}

fn write_seconds_nanos(out: &mut Vec<u8>, t: SecondsNanos) {
    out.extend_from_slice(b"{\"seconds\":");
    push_int(out, t.seconds);
    out.extend_from_slice(b",\"nanos\":");
    push_int(out, i64::from(t.nanos));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_lines_are_zero_padded_lower_hex() {
        let mut out = Vec::new();
        push_hex(&mut out, 0x0123456789abcdef0123456789abcdef, 32);
        push_hex(&mut out, 1, 16);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0123456789abcdef0123456789abcdef0000000000000001"
        );
    }

    #[test]
    fn seconds_nanos_split() {
        // P5
        let check =
            |ns: u128, s: i64, n: i32| assert_eq!(SecondsNanos::from_nanos(ns), SecondsNanos { seconds: s, nanos: n });
        check(1_700_000_000_123_456_789, 1_700_000_000, 123_456_789);
        check(5_000_000_000, 5, 0);
        check(500_000_000, 0, 500_000_000);
        check(2_500_000_000, 2, 500_000_000);
        check(0, 0, 0);
    }
}
