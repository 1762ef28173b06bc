//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::calibrate::CalibrationClocks;
use crate::endpoints::LARGE;

/// The handlers' shared state: cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// `LARGE` bytes of `x`, sliced for the padded endpoints.
    pub padding: Bytes,
    /// The instrumented client the outbound endpoint calls the upstream with.
    pub client: reqwest_middleware::ClientWithMiddleware,
    /// The loopback upstream's base URL, `http://127.0.0.1:PORT`.
    pub upstream: Arc<str>,
    /// The calibration functions' CPU clocks (and their syscall thread).
    pub calibration: Arc<CalibrationClocks>,
}

impl AppState {
    pub fn new(
        client: reqwest_middleware::ClientWithMiddleware,
        upstream: String,
        calibration: Arc<CalibrationClocks>,
    ) -> Self {
        AppState {
            padding: Bytes::from(vec![b'x'; LARGE]),
            client,
            upstream: upstream.into(),
            calibration,
        }
    }
}

/// Counts the requests the instrumented routes have received; shared by the server, the profilers and the shutdown report.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    /// Requests answered so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
