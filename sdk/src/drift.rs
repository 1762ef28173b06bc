//! The SDK handle, its builder, and the state the layer and the middleware share.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Method, Uri};

use crate::capture::inbound::DriftLayer;
use crate::capture::outbound::DriftMiddleware;
use crate::config::{self, BuilderValues, Mode, Settings, SinkChoice};
use crate::error::{Error, Result};
use crate::export::{FileExporter, InMemoryExporter, InMemorySpans, SpanExporter};
use crate::ids::{SpanId, TraceId};
use crate::processor::{BatchProcessor, ExportThreadConfig};
use crate::record::{Payload, SpanRecord};
use crate::sampling::{self, AdaptiveController, SamplingMode, SharedRate};
use crate::stats::{Counters, Stats};
use crate::to_clean_span::Cleaner;
use crate::transform::{Direction, TransformMetadata, TransformRule, Transforms};

/// How the root sampling decision is taken.
#[derive(Debug)]
enum Sampler {
    Fixed(f64),
    Adaptive(Arc<SharedRate>),
}

/// What the layer, the middleware and the handle share. Dropping the last reference shuts the pipeline down.
#[derive(Debug)]
pub(crate) struct Core {
    ready: AtomicBool,
    sampler: Sampler,
    transforms: Arc<Transforms>,
    inbound_body_rules: bool,
    outbound_body_rules: bool,
    processor: Option<BatchProcessor>,
    counters: Arc<Counters>,
}

impl Core {
    pub(crate) fn is_recording(&self) -> bool {
        self.processor.is_some()
    }

    pub(crate) fn is_app_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    pub(crate) fn mark_app_ready(&self) {
        if !self.ready.load(Relaxed) {
            self.ready.store(true, Relaxed);
        }
    }

    pub(crate) fn inbound_drop_matches(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        let target = uri.path_and_query().map_or_else(|| uri.path(), |pq| pq.as_str());
        self.transforms.inbound_drop_matches(method.as_str(), target, headers)
    }

    /// The `transformMetadata` of the outbound drop rule that matches the request, if one does (§5.5, §12.6).
    pub(crate) fn outbound_drop(&self, method: &Method, url: &str, headers: &HeaderMap) -> Option<TransformMetadata> {
        self.transforms
            .drop_metadata(Direction::Outbound, method.as_str(), url, headers)
    }

    pub(crate) fn has_inbound_body_rules(&self) -> bool {
        self.inbound_body_rules
    }

    /// Whether an outbound `fullBody`/`jsonPath` rule exists (it acts on response bodies, §12.4).
    pub(crate) fn has_outbound_body_rules(&self) -> bool {
        self.outbound_body_rules
    }

    pub(crate) fn count_blocked(&self) {
        self.counters.blocked.fetch_add(1, Relaxed);
    }

    /// The root sampling decision (§11) for a request arriving after readiness: one random draw. Counts
    /// `sampled_out` when the answer is no.
    pub(crate) fn sample_root(&self) -> bool {
        let u = (fastrand::u64(..) >> 11) as f64 / (1u64 << 53) as f64;
        let record = match &self.sampler {
            Sampler::Fixed(rate) => u < *rate,
            Sampler::Adaptive(shared) => sampling::decide(true, shared, u, Instant::now()).record,
        };
        if !record {
            self.counters.sampled_out.fetch_add(1, Relaxed);
        }
        record
    }

    pub(crate) fn on_end(&self, record: SpanRecord) {
        if let Some(p) = &self.processor {
            p.on_end(record);
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(p) = &self.processor {
            p.shutdown();
        }
    }
}

/// A running SDK. Cheap to clone; clones share one pipeline. When the last clone (and the last layer and middleware
/// made from it) is dropped, the SDK shuts down as [`Drift::shutdown`] does.
#[derive(Debug, Clone)]
pub struct Drift {
    core: Arc<Core>,
    traces_dir: Option<PathBuf>,
}

impl Drift {
    /// A builder with every setting at its default.
    pub fn builder() -> DriftBuilder {
        DriftBuilder::default()
    }

    /// The inbound tower layer (§4). Put it outermost on the router.
    pub fn layer(&self) -> DriftLayer {
        DriftLayer::new(self.core.clone())
    }

    /// The outbound `reqwest-middleware` middleware (§5).
    pub fn client_middleware(&self) -> DriftMiddleware {
        DriftMiddleware::new(self.core.clone())
    }

    /// Marks the app ready: outbound calls made before this (and before the first inbound request) are recorded as
    /// pre-app-start spans. Idempotent.
    pub fn mark_app_ready(&self) {
        self.core.mark_app_ready();
    }

    /// Whether the SDK records (mode `RECORD`) — `false` when it passes everything through.
    pub fn is_recording(&self) -> bool {
        self.core.is_recording()
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.core.counters.snapshot()
    }

    /// The live counters, for a reader that must not keep the SDK alive (the profiling endpoint).
    #[cfg(feature = "pprof-endpoint")]
    pub(crate) fn counters(&self) -> Arc<Counters> {
        self.core.counters.clone()
    }

    /// Records waiting in the export queue now.
    pub fn queued(&self) -> usize {
        self.core.processor.as_ref().map_or(0, BatchProcessor::queued)
    }

    /// The trace directory of the file sink, when that is the sink.
    pub fn traces_dir(&self) -> Option<&std::path::Path> {
        self.traces_dir.as_deref()
    }

    /// Blocks until every span recorded before the call has been handed to the sink, or the flush timeout (30 s by
    /// default) passes. Returns whether it completed. Returns at once when nothing is recording.
    pub fn flush(&self) -> bool {
        self.core.processor.as_ref().is_none_or(BatchProcessor::flush)
    }

    /// Stops recording, drains the queue, closes the sink and joins the export thread. Returns when everything
    /// accepted is written (or the flush timeout passed). Idempotent; spans offered afterwards count as dropped.
    pub fn shutdown(&self) {
        if let Some(p) = &self.core.processor {
            p.shutdown();
        }
    }
}

/// Configures and starts the SDK. Every setting falls back to the environment, then to `.tusk/config.yaml`, then to
/// the default its doc gives.
#[derive(Debug, Default)]
pub struct DriftBuilder {
    values: BuilderValues,
    exporter: Option<Box<dyn SpanExporter>>,
}

impl DriftBuilder {
    /// Record or pass through. By default, `TUSK_DRIFT_MODE`, else [`Mode::Disabled`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.values.mode = Some(mode);
        self
    }

    /// The `environment` of every span. By default, `ENV`, else `"development"`.
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.values.environment = Some(name.into());
        self
    }

    /// The observable service id, needed for API export. By default, `service.id` from the config file.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.values.service_id = Some(id.into());
        self
    }

    /// The API key for API export. By default, `TUSK_API_KEY`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.values.api_key = Some(key.into());
        self
    }

    /// The API base URL. By default, `tusk_api.url`, else `https://api.usetusk.ai`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.values.api_url = Some(url.into());
        self
    }

    /// Send spans to the API instead of trace files. By default, `recording.export_spans`, else `false`.
    pub fn export_spans(mut self, on: bool) -> Self {
        self.values.export_spans = Some(on);
        self
    }

    /// The trace directory (relative paths resolve against the current directory). By default, `traces.dir`, else
    /// `.tusk/traces`.
    pub fn traces_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.values.traces_dir = Some(dir.into());
        self
    }

    /// Send spans to this sink; replaces the file and API sinks. By default, the sink the configuration selects.
    pub fn exporter(mut self, exporter: Box<dyn SpanExporter>) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// Keep spans in memory instead of exporting them (tests). By default, off.
    pub fn in_memory(mut self, spans: InMemorySpans) -> Self {
        self.values.memory_sink = Some(spans);
        self
    }

    /// The base sampling rate in [0, 1]. By default, `TUSK_RECORDING_SAMPLING_RATE`, `TUSK_SAMPLING_RATE`,
    /// `recording.sampling.base_rate`, `recording.sampling_rate`, else 1.0.
    pub fn sampling_rate(mut self, rate: f64) -> Self {
        self.values.sampling_rate = Some(rate);
        self
    }

    /// Fixed or adaptive sampling. By default, `recording.sampling.mode`, else fixed.
    pub fn sampling_mode(mut self, mode: SamplingMode) -> Self {
        self.values.sampling_mode = Some(mode);
        self
    }

    /// The adaptive floor rate. By default, `recording.sampling.min_rate`, else 0.001 (capped at the base rate).
    pub fn min_sampling_rate(mut self, rate: f64) -> Self {
        self.values.min_sampling_rate = Some(rate);
        self
    }

    /// Whether adaptive state changes are logged. By default, `TUSK_RECORDING_SAMPLING_LOG_TRANSITIONS`,
    /// `recording.sampling.log_transitions`, else `true`.
    pub fn log_sampling_transitions(mut self, on: bool) -> Self {
        self.values.log_sampling_transitions = Some(on);
        self
    }

    /// Transform rules; replaces the config file's `transforms.http`. By default, the file's rules, else none.
    pub fn transforms(mut self, rules: Vec<TransformRule>) -> Self {
        self.values.transforms = Some(rules);
        self
    }

    /// Read this config file instead of searching for `.tusk/config.yaml` upwards from the current directory.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.values.config_file = Some(path.into());
        self
    }

    /// Resolve against these variables instead of the process environment (tests, embedding). By default, the
    /// process environment.
    pub fn env_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.values.env = Some(vars.into_iter().collect());
        self
    }

    /// The directory relative paths and the config-file search start from. By default, the current directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.values.current_dir = Some(dir.into());
        self
    }

    /// The export queue's capacity in records. By default, [`config::DEFAULT_QUEUE_CAPACITY`] (2048).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.values.queue_capacity = Some(records);
        self
    }

    /// The export batch size. By default, [`config::DEFAULT_BATCH_SIZE`] (512).
    pub fn batch_size(mut self, records: usize) -> Self {
        self.values.batch_size = Some(records);
        self
    }

    /// The longest wait between exports. By default, [`config::DEFAULT_SCHEDULED_DELAY`] (2 s).
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.values.scheduled_delay = Some(delay);
        self
    }

    /// The timeout of `flush()` and of the final join. By default, [`config::DEFAULT_FLUSH_TIMEOUT`] (30 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.values.flush_timeout = Some(timeout);
        self
    }

    /// Traces whose file the file sink remembers. By default, [`config::DEFAULT_TRACE_FILE_LRU`] (1000).
    pub fn trace_file_lru(mut self, traces: usize) -> Self {
        self.values.trace_file_lru = Some(traces);
        self
    }

    /// The export thread's nice value on Linux, from -20 (first) to 19 (last); other systems ignore it. A nice above
    /// the request threads' 0 lets a batch's burst of CPU work wait for them instead of delaying requests; under
    /// sustained saturation the queue then fills and spans are dropped (counted) rather than requests slowed. By
    /// default, [`config::DEFAULT_EXPORT_THREAD_NICE`] (0: no change).
    pub fn export_thread_nice(mut self, nice: i32) -> Self {
        self.values.export_thread_nice = Some(nice);
        self
    }

    /// Resolves the configuration and starts the SDK: in mode `RECORD`, creates the trace directory and the
    /// `drift-exporter` thread. In mode `DISABLED` nothing starts and the layer and middleware pass through.
    pub fn init(self) -> Result<Drift> {
        let settings = config::resolve(self.values)?;
        start(settings, self.exporter)
    }
}

fn start(settings: Settings, custom: Option<Box<dyn SpanExporter>>) -> Result<Drift> {
    let transforms = Arc::new(Transforms::new(settings.transforms.iter().cloned())?);
    let counters = Arc::new(Counters::default());
    if settings.mode == Mode::Disabled {
        let core = Core {
            ready: AtomicBool::new(false),
            sampler: Sampler::Fixed(0.0),
            inbound_body_rules: false,
            outbound_body_rules: false,
            transforms,
            processor: None,
            counters,
        };
        return Ok(Drift {
            core: Arc::new(core),
            traces_dir: None,
        });
    }
    let mut traces_dir = None;
    let exporter: Box<dyn SpanExporter> = match (custom, &settings.sink) {
        (Some(custom), _) => custom,
        (None, SinkChoice::Memory(spans)) => Box::new(InMemoryExporter::new(spans.clone())),
        (None, SinkChoice::Files) => {
            std::fs::create_dir_all(&settings.traces_dir).map_err(|source| Error::TracesDir {
                path: settings.traces_dir.clone(),
                source,
            })?;
            traces_dir = Some(settings.traces_dir.clone());
            Box::new(FileExporter::new(&settings.traces_dir, settings.trace_file_lru))
        }
        (None, SinkChoice::Api) => Box::new(crate::export::ApiExporter::from_settings(&settings)?),
    };
    let (sampler, adaptive) = match settings.sampling_mode {
        SamplingMode::Fixed => (Sampler::Fixed(settings.sampling_rate), None),
        SamplingMode::Adaptive => {
            let shared = Arc::new(SharedRate::adaptive(settings.sampling_rate, Instant::now()));
            let controller = AdaptiveController::new(
                settings.sampling_rate,
                settings.min_sampling_rate,
                settings.log_sampling_transitions,
            );
            (Sampler::Adaptive(shared.clone()), Some((controller, shared)))
        }
    };
    let cleaner = Cleaner::new(transforms.clone(), &settings.environment);
    let processor = BatchProcessor::start(
        ExportThreadConfig {
            queue_capacity: settings.queue_capacity,
            batch_size: settings.batch_size,
            scheduled_delay: settings.scheduled_delay,
            flush_timeout: settings.flush_timeout,
            nice: settings.export_thread_nice,
        },
        adaptive,
        cleaner,
        exporter,
        counters.clone(),
    )
    .map_err(Error::ExportThread)?;
    let core = Core {
        ready: AtomicBool::new(false),
        sampler,
        inbound_body_rules: transforms.has_body_rules(Direction::Inbound),
        outbound_body_rules: transforms.has_body_rules(Direction::Outbound),
        transforms,
        processor: Some(processor),
        counters,
    };
    let drift = Drift {
        core: Arc::new(core),
        traces_dir,
    };
    if settings.record_env_vars {
        let mut vars: Vec<(String, String)> = settings.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort();
        drift.core.on_end(SpanRecord {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_span_id: None,
            is_pre_app_start: true,
            start: SystemTime::now(),
            duration: Instant::now().elapsed(),
            payload: Payload::EnvSnapshot(vars),
        });
    }
    Ok(drift)
}
