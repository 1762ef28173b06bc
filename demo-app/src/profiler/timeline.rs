//! The `timeline` build: a tracing-chrome layer over the SDK's stage spans and the app's request spans.

use std::path::{Path, PathBuf};

use tracing::Level;
use tracing_chrome::{ChromeLayerBuilder, FlushGuard, TraceStyle};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{Layer, Registry};

/// The file the timeline is written to, in the profile directory.
pub const FILE_NAME: &str = "timeline.json";

pub(super) struct Timeline {
    guard: FlushGuard,
    path: PathBuf,
}

impl Timeline {
    /// The layer to install and the guard that must live until exit (dropping it closes the JSON array).
    pub(super) fn start(dir: &Path) -> (Timeline, Option<Box<dyn Layer<Registry> + Send + Sync>>) {
        let path = dir.join(FILE_NAME);
        let (layer, guard) = ChromeLayerBuilder::new()
            .file(&path)
            .trace_style(TraceStyle::Threaded)
            .include_args(true)
            .build();
        // Only our spans: hyper and tokio would flood the file.
        let targets = Targets::new()
            .with_target("drift_sdk", Level::TRACE)
            .with_target("demo_app", Level::TRACE);
        (Timeline { guard, path }, Some(layer.with_filter(targets).boxed()))
    }

    /// Flushes and closes the trace file.
    pub(super) fn finish(self) -> PathBuf {
        drop(self.guard);
        self.path
    }
}
