//! A record-mode [Tusk Drift](https://usetusk.ai) SDK for Rust HTTP services.
//!
//! It records every sampled inbound HTTP request of an axum (or any tower/hyper) service, and the outbound calls the
//! service makes through reqwest while serving it, as spans in the Tusk Drift trace format — the same JSONL files
//! and the same hashes as the Python SDK, so the Tusk CLI can replay them as tests.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use drift_sdk::{Drift, Mode};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let drift = Drift::builder().mode(Mode::Record).sampling_rate(1.0).init()?;
//! let app: Router = Router::new().route("/health", get(|| async { "ok" })).layer(drift.layer());
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(drift.client_middleware())
//!     .build();
//! # let _ = (app, client);
//! drift.mark_app_ready();
//! // serve `app` … then, at exit:
//! drift.shutdown();
//! # Ok(()) }
//! ```
//!
//! # The pipeline
//!
//! | stage | thread | module |
//! |---|---|---|
//! | capture | request | [`DriftLayer`] (inbound), [`DriftMiddleware`] (outbound) |
//! | finalize, on_end | request | a raw record and one `try_send` into a bounded queue; never blocks |
//! | to_clean_span | `drift-exporter` | gates, transforms, stored values, schemas, four SHA-256 hashes |
//! | clean_span_to_proto | `drift-exporter` | only for the API sink |
//! | export | `drift-exporter` | [`FileExporter`], the API sink, [`InMemoryExporter`] |
//!
//! Every stage carries a `tracing` span named after it (level `TRACE`), so a subscriber such as `tracing-chrome`
//! can time each one.
//!
//! # Configuration
//!
//! [`DriftBuilder`] first, then the environment (`TUSK_DRIFT_MODE`, `TUSK_SAMPLING_RATE`, `TUSK_API_KEY`, `ENV`, …),
//! then `.tusk/config.yaml`. The default mode is `DISABLED`: nothing records until the mode says `RECORD`.
//!
//! # Feature flags
//!
//! - `axum` (default): read the peer address from axum's `ConnectInfo<SocketAddr>`.
//! - `tls` (default): HTTPS for the API sink (rustls, with the platform's certificate verifier). Without it, only an
//!   `http://` `tusk_api.url` works and `init()` rejects an `https://` one.
//! - `pprof-endpoint` (off): the `pprof_endpoint` module, a loopback-only `/debug/pprof/profile?seconds=N` router
//!   that any axum app can mount; it answers a CPU profile of the process (pprof protobuf, or folded stacks), sampled
//!   by one CPU-time timer per thread. It pulls `nix` and `backtrace`, and is Linux only (per-thread CPU clocks).
#![deny(missing_docs)]

#[doc(hidden)]
pub mod bench_support;
mod capture;
pub mod clean_span;
mod clean_span_to_proto;
mod config;
mod context;
mod drift;
mod error;
pub mod export;
mod gates;
mod ids;
pub mod json;
#[cfg(all(feature = "pprof-endpoint", target_os = "linux"))]
pub mod pprof_endpoint;
mod processor;
mod record;
pub mod sampling;
pub mod schema;
mod stats;
mod to_clean_span;
pub mod transform;

pub use capture::inbound::{BoxError, CaptureBody, DriftLayer, DriftService, RemoteAddr, RequestBody, ResponseFuture};
pub use capture::outbound::{DriftMiddleware, DroppedByTransform, SKIP_INSTRUMENTATION_HEADER};
pub use clean_span::CleanSpan;
pub use clean_span_to_proto::clean_span_to_proto;
pub use config::{
    DEFAULT_API_URL, DEFAULT_BATCH_SIZE, DEFAULT_ENVIRONMENT, DEFAULT_FLUSH_TIMEOUT, DEFAULT_MIN_SAMPLING_RATE,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_SAMPLING_RATE, DEFAULT_SCHEDULED_DELAY, DEFAULT_TRACE_FILE_LRU, DEFAULT_TRACES_DIR,
    Mode,
};
pub use drift::{Drift, DriftBuilder};
pub use error::{Error, Result};
pub use export::{
    ExportOutcome, FileExporter, InMemoryExporter, InMemorySpans, ReadTraceError, SpanExporter, TraceFile,
    read_trace_file,
};
pub use ids::{SpanId, TraceId};
pub use sampling::SamplingMode;
pub use stats::Stats;
pub use transform::{Action, Direction, Target, TransformMetadata, TransformRule};
