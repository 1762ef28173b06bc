//! `clean_span_to_proto`: a processed span as `tusk.drift.core.v1.Span` (§3.1, §3.3), for the API sink only — the
//! file sink writes its JSON line straight from the [`CleanSpan`].

use tusk_drift_schemas::tusk::drift::core::v1 as proto;

use crate::clean_span::CleanSpan;
use crate::json::{Value, value_to_proto_struct};
use crate::schema;

/// Builds the prost message. Cannot fail (§3.3: there is no validation step).
pub fn clean_span_to_proto(span: &CleanSpan) -> proto::Span {
    let _stage = tracing::trace_span!("clean_span_to_proto").entered();
    proto::Span {
        trace_id: span.trace_id.to_string(),
        span_id: span.span_id.to_string(),
        parent_span_id: span.parent_span_id.map(|p| p.to_string()).unwrap_or_default(),
        name: span.name.clone(),
        package_name: span.package_name.to_string(),
        instrumentation_name: span.instrumentation_name.to_owned(),
        submodule_name: span.submodule_name.to_string(),
        package_type: span.package_type,
        input_value: Some(proto_struct(&span.input_value)),
        output_value: Some(proto_struct(&span.output_value)),
        input_schema: Some(schema::to_proto(span.input_schema.tree())),
        output_schema: Some(schema::to_proto(span.output_schema.tree())),
        input_schema_hash: span.input_schema_hash.to_string(),
        output_schema_hash: span.output_schema_hash.to_string(),
        input_value_hash: span.input_value_hash.to_string(),
        output_value_hash: span.output_value_hash.to_string(),
        kind: span.kind,
        status: Some(proto::SpanStatus {
            code: span.status_code,
            message: span.status_message.clone(),
        }),
        is_pre_app_start: span.is_pre_app_start,
        timestamp: Some(prost_types::Timestamp {
            seconds: span.timestamp.seconds,
            nanos: span.timestamp.nanos,
        }),
        duration: Some(prost_types::Duration {
            seconds: span.duration.seconds,
            nanos: span.duration.nanos,
        }),
        is_root_span: span.is_root_span,
        metadata: Some(prost_types::Struct::default()),
        environment: Some(span.environment.to_string()),
        id: None,
    }
}

/// Stored values are always objects; anything else becomes an empty Struct.
fn proto_struct(v: &Value) -> prost_types::Struct {
    v.as_object().map(value_to_proto_struct).unwrap_or_default()
}
