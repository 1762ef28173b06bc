//! `export_spans` with an API key and a service id selects the API sink (§9.1): the seed mix reaches a receiver on
//! 127.0.0.1 as protobuf `ExportSpansRequest`s with the contract's headers and fields, and every span is counted as
//! exported once the receiver answers `success: true` (P9, F7).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use drift_sdk::{Drift, Mode};
use prost::Message as _;
use tusk_drift_schemas::tusk::drift::backend::v1::{ExportSpansRequest, ExportSpansResponse};

use crate::support::{Server, seed_router, send_seed_mix};

const EXPORT_PATH: &str = "/api/drift/tusk.drift.backend.v1.SpanExportService/ExportSpans";

type Received = Arc<Mutex<Vec<(HeaderMap, ExportSpansRequest)>>>;

/// A receiver that decodes every export request and answers `ExportSpansResponse{success: true}`.
async fn receiver() -> (Server, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            EXPORT_PATH,
            post(
                |State(received): State<Received>, headers: HeaderMap, body: axum::body::Bytes| async move {
                    let request = ExportSpansRequest::decode(body).expect("the body is an ExportSpansRequest");
                    received.lock().unwrap().push((headers, request));
                    let reply = ExportSpansResponse {
                        success: true,
                        message: String::new(),
                    };
                    ([(header::CONTENT_TYPE, "application/protobuf")], reply.encode_to_vec())
                },
            ),
        )
        .with_state(received.clone());
    (Server::start(app).await, received)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_export_through_the_builder() {
    let (api, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let drift = Drift::builder()
        .mode(Mode::Record)
        .env_vars(Vec::new())
        .environment("ci")
        .traces_dir(&traces)
        .export_spans(true)
        .api_key("k")
        .service_id("svc")
        .api_url(format!("http://{}", api.addr))
        .init()
        .unwrap();
    assert!(drift.traces_dir().is_none(), "§9.1: the API sink, not the file sink");
    let server = Server::start(seed_router().layer(drift.layer())).await;
    send_seed_mix(&server, 9).await;
    server.stop().await;
    // `shutdown` blocks while the export thread talks to the receiver, which runs on this runtime.
    let handle = drift.clone();
    tokio::task::spawn_blocking(move || handle.shutdown()).await.unwrap();
    api.stop().await;

    assert!(!traces.exists(), "§9.1: never both sinks");
    let stats = drift.stats();
    assert_eq!(
        (stats.recorded, stats.exported, stats.failed, stats.dropped),
        (9, 9, 0, 0),
        "{stats:?}"
    );

    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "the receiver got no request");
    let instance = &received[0].1.sdk_instance_id;
    let mut span_ids = Vec::new();
    for (headers, request) in received.iter() {
        assert_eq!(headers["x-api-key"], "k");
        assert_eq!(headers["content-type"], "application/protobuf");
        assert_eq!(headers["accept"], "application/protobuf");
        assert_eq!(headers["x-td-skip-instrumentation"], "true");
        assert_eq!(request.observable_service_id, "svc");
        assert_eq!(request.environment, "ci");
        assert_eq!(request.sdk_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(&request.sdk_instance_id, instance, "one instance id per SDK");
        let parts: Vec<&str> = request.sdk_instance_id.splitn(3, '-').collect();
        assert_eq!(parts.len(), 3, "{}", request.sdk_instance_id);
        assert_eq!(parts[0], "sdk");
        assert!(
            parts[1].parse::<u64>().unwrap() > 1_700_000_000_000,
            "epoch milliseconds"
        );
        assert_eq!(parts[2].len(), 9);
        assert!(
            parts[2].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{}",
            request.sdk_instance_id
        );
        for span in &request.spans {
            assert_eq!(span.kind, 2, "SERVER");
            assert_eq!(span.package_type, 1);
            assert_eq!(span.package_name, "axum");
            assert!(span.is_root_span);
            assert!(!span.is_pre_app_start);
            assert_eq!(
                span.metadata,
                Some(prost_types::Struct::default()),
                "P9: an empty Struct"
            );
            assert_eq!(span.environment.as_deref(), Some("ci"), "P9");
            assert_eq!(span.id, None, "P9: the backend assigns the id");
            let status = span.status.as_ref().expect("status");
            assert_eq!((status.code, status.message.as_str()), (1, ""));
            assert!(span.timestamp.is_some() && span.duration.is_some());
            assert!(span.input_value.is_some() && span.output_value.is_some());
            assert!(span.input_schema.is_some() && span.output_schema.is_some());
            assert!(is_lower_hex(&span.trace_id, 32), "{}", span.trace_id);
            assert!(is_lower_hex(&span.span_id, 16), "{}", span.span_id);
            assert_eq!(span.parent_span_id, "");
            for hash in [
                &span.input_value_hash,
                &span.output_value_hash,
                &span.input_schema_hash,
                &span.output_schema_hash,
            ] {
                assert!(is_lower_hex(hash, 64), "{}: hash {hash:?}", span.name);
            }
            span_ids.push(span.span_id.clone());
        }
    }
    assert_eq!(span_ids.len(), 9, "exactly the recorded spans reach the API");
    span_ids.sort();
    span_ids.dedup();
    assert_eq!(span_ids.len(), 9, "no span is sent twice");
}
