//! The per-span cost of the pipeline on the seed's three request shapes.
//!
//! - `request_thread`: the layer around a trivial service, per request — record (capture + finalize + on_end),
//!   sampled out, and disabled (the baseline to subtract).
//! - `export_thread`: `to_clean_span` (gates, payloads, base64, schemas, four hashes), `write_json_line` (encode),
//!   and the file sink's write of one new trace file, measured separately; and `seed_mix_span`, the export thread's
//!   whole work for one span but the file (convert, write the line, drop), on the three shapes in turn, so that
//!   branches and caches see changing spans as in the app rather than one span repeated.
//!
//! Run: `cargo bench -p drift-sdk --bench pipeline`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use divan::Bencher;
use drift_sdk::bench_support::{ExportStages, SeedShape, seed_record};
use drift_sdk::{CleanSpan, Drift, ExportOutcome, FileExporter, Mode, RequestBody, SpanExporter};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower_service::Service;

fn main() {
    divan::main();
}

const SHAPES: [SeedShape; 3] = [SeedShape::Simple, SeedShape::Echo, SeedShape::Login];

/// A sink that drops what it gets, so the export thread keeps up and nothing is retained.
#[derive(Debug)]
struct NullSink;

impl SpanExporter for NullSink {
    fn export(&mut self, batch: Vec<CleanSpan>) -> ExportOutcome {
        ExportOutcome {
            exported: batch.len() as u64,
            failed: 0,
        }
    }
}

/// The app: answers the seed's `/api/simple` body.
#[derive(Clone)]
struct App;

impl Service<Request<RequestBody<Full<Bytes>>>> for App {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<RequestBody<Full<Bytes>>>) -> Self::Future {
        Box::pin(async {
            Ok(Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"message":"Hello World","timestamp":1700000000000}"#,
                )))
                .unwrap_or_default())
        })
    }
}

fn request(shape: SeedShape) -> Request<Full<Bytes>> {
    let (method, path, body): (&str, &str, &'static [u8]) = match shape {
        SeedShape::Simple => ("GET", "/api/simple", b""),
        SeedShape::Echo => ("POST", "/api/echo", br#"{"data":"test","iteration":1}"#),
        SeedShape::Login => (
            "POST",
            "/api/auth/login",
            br#"{"email":"test@example.com","password":"secret123"}"#,
        ),
    };
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:5000")
        .header("accept", "*/*")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap_or_default()
}

fn request_thread(bencher: Bencher<'_, '_>, mode: Mode, rate: f64, shape: SeedShape) {
    let drift = Drift::builder()
        .mode(mode)
        .sampling_rate(rate)
        .env_vars(Vec::new())
        .exporter(Box::new(NullSink))
        // Room for every iteration (a full queue would drop records, and a drop is cheaper than a recording), and an
        // export thread that sleeps until shutdown, so it neither competes for the other core nor frees the
        // request thread's allocations while the request thread is measured.
        .queue_capacity(1 << 18)
        .batch_size(1 << 18)
        .scheduled_delay(std::time::Duration::from_secs(3600))
        .init()
        .expect("drift init");
    let mut svc = tower_layer::Layer::layer(&drift.layer(), App);
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    bencher.with_inputs(|| request(shape)).bench_local_values(|req| {
        rt.block_on(async {
            let resp = svc.call(req).await.unwrap_or_else(|e| match e {});
            resp.into_body()
                .collect()
                .await
                .map(|c| c.to_bytes().len())
                .unwrap_or_default()
        })
    });
    drift.shutdown();
    let stats = drift.stats();
    assert_eq!((stats.failed, stats.dropped), (0, 0), "{stats:?}");
}

mod request_thread {
    use super::*;

    #[divan::bench(args = SHAPES, sample_count = 300, sample_size = 50)]
    fn record(bencher: Bencher<'_, '_>, shape: SeedShape) {
        request_thread(bencher, Mode::Record, 1.0, shape);
    }

    #[divan::bench(args = SHAPES, sample_count = 300, sample_size = 50)]
    fn sampled_out(bencher: Bencher<'_, '_>, shape: SeedShape) {
        request_thread(bencher, Mode::Record, 0.0, shape);
    }

    #[divan::bench(args = SHAPES, sample_count = 300, sample_size = 50)]
    fn disabled(bencher: Bencher<'_, '_>, shape: SeedShape) {
        request_thread(bencher, Mode::Disabled, 1.0, shape);
    }
}

mod export_thread {
    use super::*;

    #[divan::bench(args = SHAPES)]
    fn to_clean_span(bencher: Bencher<'_, '_>, shape: SeedShape) {
        let mut stages = ExportStages::new(Vec::new()).expect("stages");
        bencher
            .with_inputs(|| seed_record(shape))
            .bench_local_values(|r| stages.to_clean_span(r));
    }

    #[divan::bench(sample_count = 300, sample_size = 60)]
    fn seed_mix_span(bencher: Bencher<'_, '_>) {
        let mut stages = ExportStages::new(Vec::new()).expect("stages");
        let mut line = Vec::with_capacity(4096);
        let mut next = 0usize;
        bencher
            .with_inputs(|| {
                next += 1;
                seed_record(SHAPES[next % SHAPES.len()])
            })
            .bench_local_values(|r| {
                if let Some(span) = stages.to_clean_span(r) {
                    line.clear();
                    span.write_json_line(&mut line);
                }
                line.len()
            });
    }

    #[divan::bench(args = SHAPES)]
    fn write_json_line(bencher: Bencher<'_, '_>, shape: SeedShape) {
        let mut stages = ExportStages::new(Vec::new()).expect("stages");
        let span = stages.to_clean_span(seed_record(shape)).expect("span");
        let mut line = Vec::with_capacity(4096);
        bencher.bench_local(|| {
            line.clear();
            span.write_json_line(&mut line);
            line.len()
        });
    }

    /// One span to a new trace file (create, write, close): the Tusk layout's one file per trace.
    #[divan::bench(args = SHAPES, sample_count = 50, sample_size = 20)]
    fn write_new_trace_file(bencher: Bencher<'_, '_>, shape: SeedShape) {
        let dir = std::env::temp_dir().join(format!("drift-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench dir");
        let mut sink = FileExporter::new(&dir, 1000);
        let mut stages = ExportStages::new(Vec::new()).expect("stages");
        bencher
            .with_inputs(|| stages.to_clean_span(seed_record(shape)).expect("span"))
            .bench_local_values(|span| sink.export(vec![span]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
