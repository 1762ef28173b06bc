//! The API sink (§9): one protobuf `ExportSpansRequest` per batch, POSTed to the Tusk API with retries and a
//! circuit breaker.
//!
//! # Threading
//!
//! [`ApiSink::send`] is called only from the dedicated export thread (a plain OS thread), never concurrently, and
//! blocks for the request, its retries and their back-off. The HTTP client is `reqwest::blocking`, a plain client
//! without the SDK's middleware, so the exporter's own requests are never recorded (§9.2).
//!
//! The [`CircuitBreaker`] is pure, with time injected. Its open state is also published to a [`CircuitStatus`] (one
//! relaxed atomic), which other threads, such as the adaptive sampling updater (§11.3), can read without a lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use prost::bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tusk_drift_schemas::tusk::drift::backend::v1::{ExportSpansRequest, ExportSpansResponse};
use tusk_drift_schemas::tusk::drift::core::v1::Span;

/// The default API base URL (§9.1).
pub const DEFAULT_BASE_URL: &str = "https://api.usetusk.ai";
/// The export endpoint's path, appended to the base URL (§9.1, F7).
pub const EXPORT_PATH: &str = "/api/drift/tusk.drift.backend.v1.SpanExportService/ExportSpans";
/// The media type of the request and the response (`Accept` and `Content-Type`).
pub const PROTOBUF_MEDIA_TYPE: &str = "application/protobuf";
/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The header telling instrumented Tusk services not to record this request; its value is `true`.
pub const SKIP_INSTRUMENTATION_HEADER: &str = "x-td-skip-instrumentation";
/// The default timeout of one attempt (§9.2).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most attempts per batch (§9.2).
pub const MAX_ATTEMPTS: u32 = 3;
/// The first back-off, before jitter (§9.2).
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest back-off, before jitter (§9.2).
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Failed batches within this window open the breaker (§9.2).
pub const BREAKER_WINDOW: Duration = Duration::from_secs(60);
/// How many failed batches within [`BREAKER_WINDOW`] open the breaker (§9.2).
pub const BREAKER_THRESHOLD: usize = 5;
/// How long an open breaker rejects batches (§9.2).
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
/// Consecutive successes in half-open that close the breaker (§9.2).
pub const BREAKER_CLOSE_AFTER: u32 = 2;

/// Why an [`ApiSink`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiSinkError {
    /// The base URL is not an absolute `http` or `https` URL.
    #[error("invalid API base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key cannot be sent as an HTTP header value (it contains control characters or non-ASCII text).
    #[error("the API key is not a valid HTTP header value")]
    InvalidApiKey,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The helper thread that builds the HTTP client panicked.
    #[error("the thread building the HTTP client panicked")]
    ClientThread,
}

/// The settings of an [`ApiSink`].
#[derive(Clone)]
pub struct ApiSinkConfig {
    /// The API base URL (`tusk_api.url`); [`DEFAULT_BASE_URL`] by default. A trailing `/` is ignored.
    pub base_url: String,
    /// The API key (`TUSK_API_KEY`).
    pub api_key: String,
    /// `service.id`, sent as `observable_service_id`.
    pub service_id: String,
    /// The environment name (§14).
    pub environment: String,
    /// The `drift-sdk` version, sent as `sdk_version`.
    pub sdk_version: String,
    /// The timeout of one attempt, connection to last body byte; 30 s by default.
    pub timeout: Duration,
    /// Attempts per batch, clamped to 1..=3 (§9.2 allows at most 3); 3 by default.
    pub max_attempts: u32,
    /// Whether back-offs are multiplied by a jitter in [0.75, 1.25); true by default.
    pub jitter: bool,
    /// The `sdk_instance_id` to send; `None` (the default) generates one with [`new_sdk_instance_id`].
    pub sdk_instance_id: Option<String>,
}

impl ApiSinkConfig {
    /// The defaults of §9 for this key, service and environment; `sdk_version` is this crate's version.
    pub fn new(api_key: impl Into<String>, service_id: impl Into<String>, environment: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            service_id: service_id.into(),
            environment: environment.into(),
            sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_attempts: MAX_ATTEMPTS,
            jitter: true,
            sdk_instance_id: None,
        }
    }
}

impl fmt::Debug for ApiSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSinkConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("service_id", &self.service_id)
            .field("environment", &self.environment)
            .field("sdk_version", &self.sdk_version)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("jitter", &self.jitter)
            .field("sdk_instance_id", &self.sdk_instance_id)
            .finish()
    }
}

/// The full export URL for a base URL: `<base>/api/drift/tusk.drift.backend.v1.SpanExportService/ExportSpans`
/// (F7). Trailing slashes of the base are dropped.
pub fn export_url(base_url: &str) -> String {
    format!("{}{EXPORT_PATH}", base_url.trim().trim_end_matches('/'))
}

/// A new `sdk_instance_id`: `sdk-<epoch milliseconds of now>-<9 random characters from [a-z0-9]>` (§9.1).
pub fn new_sdk_instance_id(now: SystemTime, rng: &mut fastrand::Rng) -> String {
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let suffix: String = (0..9).map(|_| rng.digit(36)).collect();
    format!("sdk-{millis}-{suffix}")
}

// ---------------------------------------------------------------------------------------------------------------
// One attempt and its classification (§9.2)
// ---------------------------------------------------------------------------------------------------------------

/// How one attempt ended (the table of §9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// HTTP 200 with an `ExportSpansResponse` whose `success` is true.
    Success,
    /// A transport error or timeout, a status ≥ 500, HTTP 200 with `success = false`, or a body that does not
    /// decode: try again if attempts remain. The text says why.
    Retryable(String),
    /// Any other status (1xx–4xx other than 200): the batch fails at once. The text says why.
    NonRetryable(String),
}

/// Classifies a received response (pure): status and body. Transport errors and timeouts are retryable and never get
/// here. `success = false` is logged with its `message`.
pub fn classify_response(status: u16, body: &[u8]) -> AttemptOutcome {
    match status {
        200 => match ExportSpansResponse::decode(body) {
            Ok(r) if r.success => AttemptOutcome::Success,
            Ok(r) => {
                tracing::warn!(message = %r.message, "the Tusk API did not accept the span batch");
                AttemptOutcome::Retryable(format!("success = false: {}", r.message))
            }
            Err(e) => AttemptOutcome::Retryable(format!("the response does not decode as ExportSpansResponse: {e}")),
        },
        s if s >= 500 => AttemptOutcome::Retryable(format!("HTTP {s}")),
        s => AttemptOutcome::NonRetryable(format!("HTTP {s}")),
    }
}

/// The back-off after failed attempt `attempt` (1-based) before jitter: `min(0.1 s × 2^(attempt−1), 10 s)` (F8).
/// Attempt 0 is treated as 1.
pub fn nominal_backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(31);
    BACKOFF_BASE.saturating_mul(1u32 << exponent).min(BACKOFF_CAP)
}

/// The back-off after failed attempt `attempt` with jitter factor `j`: `nominal_backoff(attempt) × j` (§9.2).
/// A negative or NaN `j` gives zero.
pub fn backoff_delay(attempt: u32, j: f64) -> Duration {
    let j = if j.is_nan() { 0.0 } else { j.max(0.0) };
    nominal_backoff(attempt).mul_f64(j)
}

/// A jitter factor uniform in [0.75, 1.25).
pub fn draw_jitter(rng: &mut fastrand::Rng) -> f64 {
    const BELOW_UPPER: f64 = 1.249_999_999_999_999_8; // the largest f64 below 1.25
    let u = crate::sampling::draw_unit(rng);
    (0.75 + 0.5 * u).min(BELOW_UPPER)
}

// ---------------------------------------------------------------------------------------------------------------
// The circuit breaker (§9.2)
// ---------------------------------------------------------------------------------------------------------------

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Batches go through; failed batches are counted over 60 s.
    Closed,
    /// Batches are rejected without a request, for 30 s.
    Open,
    /// After the 30 s: batches go through; 2 consecutive successes close, any failure re-opens.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of state reported by [`CircuitBreaker::record_failure`] and [`CircuitBreaker::record_success`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerTransition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
}

/// The circuit breaker of §9.2, one per API sink. Pure: every method takes the current time.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    phase: Phase,
    failures: VecDeque<Instant>,
    rejected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Open since this instant; half-open from 30 s later.
    Open(Instant),
    /// Half-open with this many consecutive successes.
    HalfOpen(u32),
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreaker {
    /// A closed breaker with no failures.
    pub fn new() -> Self {
        Self {
            phase: Phase::Closed,
            failures: VecDeque::new(),
            rejected: 0,
        }
    }

    /// The state at `now`: an open breaker is half-open once 30 s have passed since it opened.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open(since) if now.saturating_duration_since(since) < BREAKER_OPEN_FOR => BreakerState::Open,
            Phase::Open(_) | Phase::HalfOpen(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether the breaker is open at `now` (what adaptive sampling reads, §11.3). Half-open is not open.
    pub fn is_open(&self, now: Instant) -> bool {
        self.state(now) == BreakerState::Open
    }

    /// Until when the breaker stays open, if it is open at `now`.
    pub fn open_until(&self, now: Instant) -> Option<Instant> {
        match self.phase {
            Phase::Open(since) if self.is_open(now) => Some(since + BREAKER_OPEN_FOR),
            _ => None,
        }
    }

    /// Whether a batch may be sent at `now`. An open breaker rejects it and counts the rejection; after the 30 s the
    /// breaker turns half-open and lets it through.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Open => {
                self.rejected += 1;
                false
            }
            BreakerState::HalfOpen => {
                if let Phase::Open(_) = self.phase {
                    self.phase = Phase::HalfOpen(0);
                }
                true
            }
            BreakerState::Closed => true,
        }
    }

    /// Records a failed batch at `now`. Closed: keeps its time, forgets those older than 60 s, opens when 5 remain.
    /// Half-open (or open): re-opens, and the 30 s start again. Returns the transition, if any.
    pub fn record_failure(&mut self, now: Instant) -> Option<BreakerTransition> {
        let from = self.state(now);
        match from {
            BreakerState::Closed => {
                self.failures.push_back(now);
                self.forget_old(now);
                if self.failures.len() >= BREAKER_THRESHOLD {
                    self.phase = Phase::Open(now);
                }
            }
            BreakerState::Open | BreakerState::HalfOpen => self.phase = Phase::Open(now),
        }
        let to = self.state(now);
        (from != to).then_some(BreakerTransition { from, to })
    }

    /// Records a successful batch at `now`. Half-open: the second consecutive success closes the breaker and clears
    /// the failure list. Returns the transition, if any.
    pub fn record_success(&mut self, now: Instant) -> Option<BreakerTransition> {
        let from = self.state(now);
        if from == BreakerState::HalfOpen {
            // `Phase::Open` here means half-open without a call to `allow`: no success counted yet.
            let successes = if let Phase::HalfOpen(n) = self.phase { n + 1 } else { 1 };
            if successes >= BREAKER_CLOSE_AFTER {
                self.close();
            } else {
                self.phase = Phase::HalfOpen(successes);
            }
        }
        let to = self.state(now);
        (from != to).then_some(BreakerTransition { from, to })
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.failures.clear();
    }

    fn forget_old(&mut self, now: Instant) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > BREAKER_WINDOW)
        {
            self.failures.pop_front();
        }
    }

    /// The failed batches remembered (closed: within the last 60 s as of the last failure).
    pub fn failure_count(&self) -> usize {
        self.failures.len()
    }

    /// Batches rejected while open, since the breaker was made.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

/// A lock-free, cloneable view of whether an [`ApiSink`]'s breaker is open, for other threads (§11.3).
#[derive(Debug, Clone)]
pub struct CircuitStatus {
    origin: Instant,
    /// Nanoseconds after `origin` until which the breaker is open; 0 when it is not.
    open_until_ns: Arc<AtomicU64>,
}

impl CircuitStatus {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            open_until_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    fn publish(&self, open_until: Option<Instant>) {
        let ns = open_until.map_or(0, |t| {
            u64::try_from(t.saturating_duration_since(self.origin).as_nanos())
                .unwrap_or(u64::MAX)
                .max(1)
        });
        self.open_until_ns.store(ns, Ordering::Relaxed);
    }

    /// Whether the breaker is open at `now` (as of its last change; an open breaker turns half-open on time).
    pub fn is_open(&self, now: Instant) -> bool {
        let until = self.open_until_ns.load(Ordering::Relaxed);
        let now_ns = u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        until != 0 && now_ns < until
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------------------------

/// What happened to one batch handed to [`ApiSink::send`]; the caller adds it to the counters (§10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Spans accepted by the API (`exported += n`).
    pub exported: u64,
    /// Spans whose export failed, after retries or because the breaker was open (`failed += n`).
    pub failed: u64,
    /// Whether the open breaker rejected the batch without a request.
    pub rejected_by_breaker: bool,
}

/// A function the sink calls to wait between attempts; `std::thread::sleep` by default.
pub type Sleeper = Box<dyn FnMut(Duration) + Send>;

/// The API sink of §9. Lives on the export thread; see the module docs.
pub struct ApiSink {
    client: reqwest::blocking::Client,
    url: String,
    headers: HeaderMap,
    service_id: String,
    environment: String,
    sdk_version: String,
    sdk_instance_id: String,
    max_attempts: u32,
    jitter: bool,
    rng: fastrand::Rng,
    breaker: CircuitBreaker,
    status: CircuitStatus,
    /// Whether "the circuit opened" has been logged since the breaker last closed (§10.3).
    open_warned: bool,
    sleeper: Sleeper,
}

impl fmt::Debug for ApiSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSink")
            .field("url", &self.url)
            .field("service_id", &self.service_id)
            .field("environment", &self.environment)
            .field("sdk_version", &self.sdk_version)
            .field("sdk_instance_id", &self.sdk_instance_id)
            .field("max_attempts", &self.max_attempts)
            .field("jitter", &self.jitter)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl ApiSink {
    /// Builds the sink: validates the URL and the API key, and builds the HTTP client with `cfg.timeout`.
    ///
    /// The `reqwest::blocking` client is built on a short-lived helper thread, so `new` may be called from inside an
    /// async runtime (for example from `init()` in `#[tokio::main]`), where building it directly would panic.
    pub fn new(cfg: ApiSinkConfig) -> Result<Self, ApiSinkError> {
        let url = export_url(&cfg.base_url);
        let parsed = reqwest::Url::parse(&url).map_err(|e| ApiSinkError::InvalidUrl {
            url: cfg.base_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiSinkError::InvalidUrl {
                url: cfg.base_url.clone(),
                reason: format!("the scheme must be http or https, not {}", parsed.scheme()),
            });
        }

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(PROTOBUF_MEDIA_TYPE));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF_MEDIA_TYPE));
        let mut key = HeaderValue::from_str(&cfg.api_key).map_err(|_| ApiSinkError::InvalidApiKey)?;
        key.set_sensitive(true);
        headers.insert(HeaderName::from_static(API_KEY_HEADER), key);
        headers.insert(
            HeaderName::from_static(SKIP_INSTRUMENTATION_HEADER),
            HeaderValue::from_static("true"),
        );

        let timeout = cfg.timeout;
        let client = std::thread::scope(|s| {
            s.spawn(move || reqwest::blocking::Client::builder().timeout(timeout).build())
                .join()
                .map_err(|_| ApiSinkError::ClientThread)
        })?
        .map_err(ApiSinkError::Client)?;

        let mut rng = fastrand::Rng::new();
        let sdk_instance_id = cfg
            .sdk_instance_id
            .unwrap_or_else(|| new_sdk_instance_id(SystemTime::now(), &mut rng));
        Ok(Self {
            client,
            url,
            headers,
            service_id: cfg.service_id,
            environment: cfg.environment,
            sdk_version: cfg.sdk_version,
            sdk_instance_id,
            max_attempts: cfg.max_attempts.clamp(1, MAX_ATTEMPTS),
            jitter: cfg.jitter,
            rng,
            breaker: CircuitBreaker::new(),
            status: CircuitStatus::new(Instant::now()),
            open_warned: false,
            sleeper: Box::new(std::thread::sleep),
        })
    }

    /// Replaces the function that waits between attempts (tests, or a shutdown that must not wait).
    pub fn set_sleeper(&mut self, sleeper: Sleeper) {
        self.sleeper = sleeper;
    }

    /// The full export URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `sdk_instance_id` sent with every batch.
    pub fn sdk_instance_id(&self) -> &str {
        &self.sdk_instance_id
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Whether the breaker is open now (§11.3).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// A lock-free handle on the breaker's open state, for another thread (§11.3).
    pub fn circuit_status(&self) -> CircuitStatus {
        self.status.clone()
    }

    /// The request body for `spans` (§9.1).
    pub fn build_request(&self, spans: Vec<Span>) -> ExportSpansRequest {
        ExportSpansRequest {
            observable_service_id: self.service_id.clone(),
            environment: self.environment.clone(),
            sdk_version: self.sdk_version.clone(),
            sdk_instance_id: self.sdk_instance_id.clone(),
            spans,
        }
    }

    /// Exports one batch (§9.2): rejected at once while the breaker is open; otherwise up to 3 attempts with
    /// back-off. A batch that still fails is dropped (`failed = n`); the breaker records one failure or success.
    /// Blocks; call it from the export thread only. An empty batch sends nothing.
    pub fn send(&mut self, spans: Vec<Span>) -> BatchOutcome {
        let n = spans.len() as u64;
        if n == 0 {
            return BatchOutcome::default();
        }
        if !self.breaker.allow(Instant::now()) {
            tracing::debug!(spans = n, "circuit breaker open: span batch dropped without a request");
            return BatchOutcome {
                exported: 0,
                failed: n,
                rejected_by_breaker: true,
            };
        }
        let body = Bytes::from(self.build_request(spans).encode_to_vec());

        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            match self.attempt(body.clone()) {
                AttemptOutcome::Success => {
                    self.after_batch(true);
                    return BatchOutcome {
                        exported: n,
                        failed: 0,
                        rejected_by_breaker: false,
                    };
                }
                AttemptOutcome::NonRetryable(why) => {
                    last_error = why;
                    break;
                }
                AttemptOutcome::Retryable(why) => {
                    tracing::debug!(attempt, error = %why, "span export attempt failed");
                    last_error = why;
                    if attempt < self.max_attempts {
                        let j = if self.jitter { draw_jitter(&mut self.rng) } else { 1.0 };
                        (self.sleeper)(backoff_delay(attempt, j));
                    }
                }
            }
        }
        tracing::debug!(spans = n, error = %last_error, "span batch export failed; the batch is dropped");
        self.after_batch(false);
        BatchOutcome {
            exported: 0,
            failed: n,
            rejected_by_breaker: false,
        }
    }

    fn attempt(&self, body: Bytes) -> AttemptOutcome {
        let response = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send();
        let response = match response {
            Ok(r) => r,
            Err(e) => return AttemptOutcome::Retryable(transport_error(&e)),
        };
        let status = response.status().as_u16();
        if status != 200 {
            return classify_response(status, &[]);
        }
        match response.bytes() {
            Ok(bytes) => classify_response(status, &bytes),
            Err(e) => AttemptOutcome::Retryable(transport_error(&e)),
        }
    }

    fn after_batch(&mut self, success: bool) {
        let now = Instant::now();
        let transition = if success {
            self.breaker.record_success(now)
        } else {
            self.breaker.record_failure(now)
        };
        if let Some(t) = transition {
            match t.to {
                BreakerState::Open if !self.open_warned => {
                    self.open_warned = true;
                    tracing::warn!(
                        failures = BREAKER_THRESHOLD,
                        window_s = BREAKER_WINDOW.as_secs(),
                        open_for_s = BREAKER_OPEN_FOR.as_secs(),
                        "span export circuit breaker opened: batches are dropped without a request"
                    );
                }
                BreakerState::Open => tracing::debug!("span export circuit breaker re-opened"),
                BreakerState::Closed => {
                    self.open_warned = false;
                    tracing::info!("span export circuit breaker closed");
                }
                BreakerState::HalfOpen => {}
            }
        }
        self.status.publish(self.breaker.open_until(now));
    }
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        format!("transport error: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::thread::JoinHandle;
    use tusk_drift_schemas::tusk::drift::core::v1::SpanKind;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    // ---------------------------------------------------------------- pure parts

    #[test]
    fn f7_url_and_headers() {
        let want = "https://api.test.com/api/drift/tusk.drift.backend.v1.SpanExportService/ExportSpans";
        assert_eq!(export_url("https://api.test.com"), want);
        assert_eq!(export_url("https://api.test.com/"), want);
        let mut cfg = ApiSinkConfig::new("k", "svc", "production");
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        assert_eq!(
            (cfg.timeout, cfg.max_attempts, cfg.jitter),
            (Duration::from_secs(30), 3, true)
        );
        cfg.base_url = "https://api.test.com".into();
        let sink = ApiSink::new(cfg).expect("sink");
        assert_eq!(sink.url(), want);
        assert_eq!(sink.headers.len(), 4);
        assert_eq!(sink.headers["accept"], "application/protobuf");
        assert_eq!(sink.headers["content-type"], "application/protobuf");
        assert_eq!(sink.headers["x-api-key"], "k");
        assert_eq!(sink.headers["x-td-skip-instrumentation"], "true");
        assert!(!format!("{sink:?}").contains("\"k\""));
    }

    #[test]
    fn bad_config_is_an_error() {
        let mut cfg = ApiSinkConfig::new("k", "svc", "dev");
        cfg.base_url = "not a url".into();
        assert!(matches!(
            ApiSink::new(cfg.clone()),
            Err(ApiSinkError::InvalidUrl { .. })
        ));
        cfg.base_url = "ftp://example.com".into();
        assert!(matches!(
            ApiSink::new(cfg.clone()),
            Err(ApiSinkError::InvalidUrl { .. })
        ));
        cfg.base_url = "http://127.0.0.1:1".into();
        cfg.api_key = "bad\nkey".into();
        assert!(matches!(ApiSink::new(cfg), Err(ApiSinkError::InvalidApiKey)));
    }

    #[test]
    fn sdk_instance_id_shape() {
        let mut rng = fastrand::Rng::with_seed(1);
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let id = new_sdk_instance_id(now, &mut rng);
        let rest = id.strip_prefix("sdk-1700000000123-").expect(&id);
        assert_eq!(rest.len(), 9);
        assert!(
            rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{id}"
        );
        let sink = ApiSink::new(ApiSinkConfig::new("k", "s", "e")).expect("sink");
        let parts: Vec<_> = sink.sdk_instance_id().split('-').collect();
        assert_eq!((parts.len(), parts[0], parts[2].len()), (3, "sdk", 9));
        assert!(parts[1].parse::<u64>().is_ok());
    }

    #[test]
    fn classification_table() {
        let ok = ExportSpansResponse {
            success: true,
            message: String::new(),
        }
        .encode_to_vec();
        let no = ExportSpansResponse {
            success: false,
            message: "quota".into(),
        }
        .encode_to_vec();
        assert_eq!(classify_response(200, &ok), AttemptOutcome::Success);
        assert!(matches!(classify_response(200, &no), AttemptOutcome::Retryable(m) if m.contains("quota")));
        assert!(matches!(
            classify_response(200, &[0xff, 0xff, 0xff]),
            AttemptOutcome::Retryable(_)
        ));
        // An empty body decodes as success = false.
        assert!(matches!(classify_response(200, &[]), AttemptOutcome::Retryable(_)));
        for s in [500, 502, 503, 599] {
            assert!(matches!(classify_response(s, &ok), AttemptOutcome::Retryable(_)), "{s}");
        }
        for s in [100, 201, 204, 301, 400, 401, 404, 429, 499] {
            assert!(
                matches!(classify_response(s, &ok), AttemptOutcome::NonRetryable(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn f8_backoff() {
        assert_eq!(nominal_backoff(1), Duration::from_millis(100));
        assert_eq!(nominal_backoff(2), Duration::from_millis(200));
        assert_eq!(nominal_backoff(3), Duration::from_millis(400));
        assert_eq!(nominal_backoff(7), Duration::from_millis(6400));
        assert_eq!(nominal_backoff(8), Duration::from_secs(10));
        assert_eq!(nominal_backoff(10), Duration::from_secs(10));
        assert_eq!(nominal_backoff(u32::MAX), Duration::from_secs(10));
        assert_eq!(backoff_delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(10, 1.0), Duration::from_secs(10));
        assert_eq!(backoff_delay(1, 0.75), Duration::from_millis(75));
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for _ in 0..10_000 {
            let j = draw_jitter(&mut rng);
            assert!((0.75..1.25).contains(&j), "{j}");
            lo = lo.min(j);
            hi = hi.max(j);
            for attempt in [1, 2, 3, 10] {
                let d = backoff_delay(attempt, j).as_secs_f64();
                let nominal = nominal_backoff(attempt).as_secs_f64();
                assert!(d >= nominal * 0.75 - 1e-9 && d < nominal * 1.25, "{attempt}: {d}");
            }
        }
        assert!(lo < 0.76 && hi > 1.24, "the jitter covers its range: {lo}..{hi}");
    }

    #[test]
    fn f9_five_failures_within_60_s_open_the_breaker() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new();
        for i in 0..4 {
            assert!(b.allow(t0 + secs(f64::from(i))));
            assert_eq!(b.record_failure(t0 + secs(f64::from(i))), None);
        }
        assert_eq!(b.state(t0 + secs(4.0)), BreakerState::Closed);
        let tr = b.record_failure(t0 + secs(4.0));
        assert_eq!(
            tr,
            Some(BreakerTransition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
        assert!(b.is_open(t0 + secs(4.0)));
        assert!(!b.allow(t0 + secs(5.0)));
        assert!(!b.allow(t0 + secs(33.9)));
        assert_eq!(b.rejected(), 2);
        assert_eq!(b.open_until(t0 + secs(5.0)), Some(t0 + secs(34.0)));
        // Successes in closed state do not clear the list.
        let mut b = CircuitBreaker::new();
        for i in 0..4 {
            b.record_failure(t0 + secs(f64::from(i)));
        }
        b.record_success(t0 + secs(4.5));
        b.record_failure(t0 + secs(5.0));
        assert!(b.is_open(t0 + secs(5.0)));
    }

    #[test]
    fn failures_older_than_60_s_are_forgotten() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new();
        for i in 0..4 {
            b.record_failure(t0 + secs(f64::from(i)));
        }
        // At 61 s the first failure (t0) is older than 60 s; 4 remain.
        b.record_failure(t0 + secs(60.5));
        assert_eq!(b.state(t0 + secs(60.5)), BreakerState::Closed);
        assert_eq!(b.failure_count(), 4);
        b.record_failure(t0 + secs(61.0));
        assert!(b.is_open(t0 + secs(61.0)));
    }

    #[test]
    fn f10_half_open_closes_after_two_successes_or_reopens() {
        let t0 = Instant::now();
        let open = |t0: Instant| {
            let mut b = CircuitBreaker::new();
            for _ in 0..5 {
                b.record_failure(t0);
            }
            b
        };
        // After 30 s: half-open, batches go through, 2 successes close and clear.
        let mut b = open(t0);
        let t = t0 + BREAKER_OPEN_FOR;
        assert_eq!(b.state(t), BreakerState::HalfOpen);
        assert!(!b.is_open(t));
        assert!(b.allow(t));
        assert_eq!(b.record_success(t), None);
        assert_eq!(b.state(t), BreakerState::HalfOpen);
        assert!(b.allow(t));
        let tr = b.record_success(t + secs(1.0));
        assert_eq!(
            tr,
            Some(BreakerTransition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed
            })
        );
        assert_eq!(b.failure_count(), 0);
        // Cleared: 4 new failures do not open it.
        for _ in 0..4 {
            b.record_failure(t + secs(2.0));
        }
        assert_eq!(b.state(t + secs(2.0)), BreakerState::Closed);

        // 1 failure in half-open re-opens for another 30 s.
        let mut b = open(t0);
        assert!(b.allow(t));
        b.record_success(t);
        let t2 = t + secs(5.0);
        assert!(b.allow(t2));
        let tr = b.record_failure(t2);
        assert_eq!(
            tr,
            Some(BreakerTransition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open
            })
        );
        assert!(!b.allow(t2 + secs(29.0)));
        assert_eq!(b.state(t2 + BREAKER_OPEN_FOR), BreakerState::HalfOpen);
        // A success then a failure: not consecutive, back to open.
        assert!(b.allow(t2 + BREAKER_OPEN_FOR));
        b.record_success(t2 + BREAKER_OPEN_FOR);
        b.record_failure(t2 + BREAKER_OPEN_FOR);
        assert!(b.is_open(t2 + BREAKER_OPEN_FOR + secs(1.0)));
    }

    #[test]
    fn circuit_status_reads_the_published_state() {
        let t0 = Instant::now();
        let s = CircuitStatus::new(t0);
        assert!(!s.is_open(t0));
        s.publish(Some(t0 + secs(30.0)));
        let other = s.clone();
        assert!(other.is_open(t0 + secs(29.0)));
        assert!(!other.is_open(t0 + secs(30.0)));
        s.publish(None);
        assert!(!other.is_open(t0 + secs(1.0)));
    }

    // ---------------------------------------------------------------- a real HTTP receiver on 127.0.0.1

    /// What the receiver answers to its n-th request (0-based).
    enum Reply {
        Status(u16, Vec<u8>),
        /// Read the request, answer nothing, keep the connection open for a while.
        Hang,
    }

    #[derive(Debug, Clone)]
    struct Received {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    struct Receiver {
        addr: SocketAddr,
        hits: Arc<AtomicUsize>,
        received: Arc<Mutex<Vec<Received>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    /// The longest a receiver lives, whatever the test does.
    const RECEIVER_LIFETIME: Duration = Duration::from_secs(30);
    /// How long a hanging connection is held.
    const HANG_FOR: Duration = Duration::from_millis(1500);

    impl Receiver {
        fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let addr = listener.local_addr().expect("addr");
            let hits = Arc::new(AtomicUsize::new(0));
            let received = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let reply = Arc::new(reply);
            let thread = {
                let (hits, received, stop) = (hits.clone(), received.clone(), stop.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut conns = Vec::new();
                    while !stop.load(Ordering::SeqCst) && started.elapsed() < RECEIVER_LIFETIME {
                        match listener.accept() {
                            Ok((stream, _)) => {
                                let (hits, received, stop, reply) =
                                    (hits.clone(), received.clone(), stop.clone(), reply.clone());
                                conns.push(std::thread::spawn(move || {
                                    serve(stream, &hits, &received, &stop, &*reply);
                                }));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                    for c in conns {
                        let _ = c.join();
                    }
                })
            };
            Self {
                addr,
                hits,
                received,
                stop,
                thread: Some(thread),
            }
        }

        fn base_url(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn received(&self) -> Vec<Received> {
            self.received.lock().expect("lock").clone()
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(
        mut stream: TcpStream,
        hits: &AtomicUsize,
        received: &Mutex<Vec<Received>>,
        stop: &AtomicBool,
        reply: &(dyn Fn(usize) -> Reply + Send + Sync),
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let Some(req) = read_request(&mut stream) else { return };
        let n = hits.fetch_add(1, Ordering::SeqCst);
        received.lock().expect("lock").push(req);
        match reply(n) {
            Reply::Status(status, body) => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/protobuf\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.flush();
            }
            Reply::Hang => {
                let until = Instant::now() + HANG_FOR;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn read_request(stream: &mut TcpStream) -> Option<Received> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let method = request_line.next()?.to_owned();
        let path = request_line.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())?;
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some(Received {
            method,
            path,
            headers,
            body,
        })
    }

    fn response(success: bool, message: &str) -> Vec<u8> {
        ExportSpansResponse {
            success,
            message: message.into(),
        }
        .encode_to_vec()
    }

    fn spans(n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                trace_id: format!("{:032x}", i + 1),
                span_id: format!("{:016x}", i + 1),
                name: format!("GET /item/{i}"),
                kind: SpanKind::Server as i32,
                ..Default::default()
            })
            .collect()
    }

    /// A sink aimed at `receiver`, recording its back-off waits instead of sleeping.
    fn sink_for(receiver: &Receiver, timeout: Duration) -> (ApiSink, Arc<Mutex<Vec<Duration>>>) {
        let mut cfg = ApiSinkConfig::new("secret-key", "svc-123", "staging");
        cfg.base_url = receiver.base_url();
        cfg.sdk_version = "9.9.9".into();
        cfg.timeout = timeout;
        cfg.sdk_instance_id = Some("sdk-1-abcdefghi".into());
        let mut sink = ApiSink::new(cfg).expect("sink");
        let waits = Arc::new(Mutex::new(Vec::new()));
        let w = waits.clone();
        sink.set_sleeper(Box::new(move |d| w.lock().expect("lock").push(d)));
        (sink, waits)
    }

    #[test]
    fn a_success_sends_the_request_of_section_9_1() {
        let rx = Receiver::start(|_| Reply::Status(200, response(true, "")));
        let (mut sink, waits) = sink_for(&rx, Duration::from_secs(5));
        let batch = spans(3);
        let out = sink.send(batch.clone());
        assert_eq!(
            out,
            BatchOutcome {
                exported: 3,
                failed: 0,
                rejected_by_breaker: false
            }
        );
        assert_eq!(rx.hits(), 1);
        assert!(waits.lock().expect("lock").is_empty());
        let got = rx.received();
        let req = &got[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, EXPORT_PATH);
        assert_eq!(req.header("accept"), Some("application/protobuf"));
        assert_eq!(req.header("content-type"), Some("application/protobuf"));
        assert_eq!(req.header("x-api-key"), Some("secret-key"));
        assert_eq!(req.header("x-td-skip-instrumentation"), Some("true"));
        assert_eq!(req.header("content-encoding"), None);
        let decoded = ExportSpansRequest::decode(req.body.as_slice()).expect("an ExportSpansRequest");
        assert_eq!(decoded.observable_service_id, "svc-123");
        assert_eq!(decoded.environment, "staging");
        assert_eq!(decoded.sdk_version, "9.9.9");
        assert_eq!(decoded.sdk_instance_id, "sdk-1-abcdefghi");
        assert_eq!(decoded.spans, batch);
        assert_eq!(sink.breaker().state(Instant::now()), BreakerState::Closed);
        // An empty batch sends nothing.
        assert_eq!(sink.send(Vec::new()), BatchOutcome::default());
        assert_eq!(rx.hits(), 1);
    }

    #[test]
    fn http_500_three_times_fails_the_batch_after_3_attempts() {
        let rx = Receiver::start(|_| Reply::Status(500, Vec::new()));
        let (mut sink, waits) = sink_for(&rx, Duration::from_secs(5));
        let out = sink.send(spans(4));
        assert_eq!(
            out,
            BatchOutcome {
                exported: 0,
                failed: 4,
                rejected_by_breaker: false
            }
        );
        assert_eq!(rx.hits(), 3);
        assert_eq!(sink.breaker().failure_count(), 1);
        // Two waits, after attempts 1 and 2: 0.1 s and 0.2 s with jitter in [0.75, 1.25).
        let waits = waits.lock().expect("lock").clone();
        assert_eq!(waits.len(), 2);
        assert!(
            waits[0] >= Duration::from_millis(75) && waits[0] < Duration::from_millis(125),
            "{waits:?}"
        );
        assert!(
            waits[1] >= Duration::from_millis(150) && waits[1] < Duration::from_millis(250),
            "{waits:?}"
        );
    }

    #[test]
    fn http_500_then_success_exports() {
        let rx = Receiver::start(|n| {
            if n < 2 {
                Reply::Status(503, Vec::new())
            } else {
                Reply::Status(200, response(true, ""))
            }
        });
        let (mut sink, waits) = sink_for(&rx, Duration::from_secs(5));
        assert_eq!(sink.send(spans(2)).exported, 2);
        assert_eq!(rx.hits(), 3);
        assert_eq!(waits.lock().expect("lock").len(), 2);
        assert_eq!(sink.breaker().failure_count(), 0);
    }

    #[test]
    fn http_404_fails_at_once() {
        let rx = Receiver::start(|_| Reply::Status(404, Vec::new()));
        let (mut sink, waits) = sink_for(&rx, Duration::from_secs(5));
        let out = sink.send(spans(2));
        assert_eq!(
            out,
            BatchOutcome {
                exported: 0,
                failed: 2,
                rejected_by_breaker: false
            }
        );
        assert_eq!(rx.hits(), 1);
        assert!(waits.lock().expect("lock").is_empty());
        assert_eq!(sink.breaker().failure_count(), 1);
    }

    #[test]
    fn success_false_is_retried() {
        let rx = Receiver::start(|n| Reply::Status(200, response(n >= 2, "try later")));
        let (mut sink, _) = sink_for(&rx, Duration::from_secs(5));
        assert_eq!(
            sink.send(spans(1)),
            BatchOutcome {
                exported: 1,
                failed: 0,
                rejected_by_breaker: false
            }
        );
        assert_eq!(rx.hits(), 3);

        let rx = Receiver::start(|_| Reply::Status(200, response(false, "nope")));
        let (mut sink, _) = sink_for(&rx, Duration::from_secs(5));
        assert_eq!(sink.send(spans(1)).failed, 1);
        assert_eq!(rx.hits(), 3);

        // A 200 body that does not decode is retried too.
        let rx = Receiver::start(|_| Reply::Status(200, vec![0xff, 0xff, 0xff]));
        let (mut sink, _) = sink_for(&rx, Duration::from_secs(5));
        assert_eq!(sink.send(spans(1)).failed, 1);
        assert_eq!(rx.hits(), 3);
    }

    #[test]
    fn a_receiver_that_never_answers_times_out() {
        let rx = Receiver::start(|_| Reply::Hang);
        let (mut sink, _) = sink_for(&rx, Duration::from_millis(300));
        let started = Instant::now();
        let out = sink.send(spans(2));
        let took = started.elapsed();
        assert_eq!(
            out,
            BatchOutcome {
                exported: 0,
                failed: 2,
                rejected_by_breaker: false
            }
        );
        assert_eq!(rx.hits(), 3, "a timeout is retryable");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(sink.breaker().failure_count(), 1);
    }

    #[test]
    fn a_closed_port_is_a_retryable_failure() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("addr")
            .port();
        let mut cfg = ApiSinkConfig::new("k", "s", "e");
        cfg.base_url = format!("http://127.0.0.1:{port}");
        cfg.timeout = Duration::from_secs(2);
        let mut sink = ApiSink::new(cfg).expect("sink");
        let waits = Arc::new(AtomicUsize::new(0));
        let w = waits.clone();
        sink.set_sleeper(Box::new(move |_| {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(sink.send(spans(1)).failed, 1);
        assert_eq!(waits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn f9_five_failed_batches_open_the_breaker_and_the_next_makes_no_request() {
        let rx = Receiver::start(|_| Reply::Status(500, Vec::new()));
        let (mut sink, _) = sink_for(&rx, Duration::from_secs(5));
        let status = sink.circuit_status();
        for i in 1..=5 {
            assert_eq!(sink.send(spans(2)).failed, 2);
            assert_eq!(rx.hits(), 3 * i);
        }
        assert!(sink.circuit_open());
        assert!(status.is_open(Instant::now()));
        assert_eq!(sink.breaker().rejected(), 0);
        let out = sink.send(spans(7));
        assert_eq!(
            out,
            BatchOutcome {
                exported: 0,
                failed: 7,
                rejected_by_breaker: true
            }
        );
        assert_eq!(rx.hits(), 15, "no request while open");
        assert_eq!(sink.breaker().rejected(), 1);
    }

    #[tokio::test]
    async fn new_works_inside_an_async_runtime() {
        // Building a reqwest blocking client directly here would panic; `new` builds it on a helper thread. The
        // sink is then used and dropped off the runtime, as the export thread does.
        let sink = ApiSink::new(ApiSinkConfig::new("k", "s", "e")).expect("sink");
        let handle = std::thread::spawn(move || drop(sink));
        assert!(handle.join().is_ok());
    }
}
