//! `GET /debug/pprof/profile?seconds=N`: a CPU profile of the running process, on demand, for any axum app
//! (cargo feature `pprof-endpoint`).
//!
//! Mount the router next to the app's routes and serve with the peer's address, which the endpoint needs to refuse
//! clients that are not on loopback:
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::{Router, routing::get};
//! use drift_sdk::pprof_endpoint::ProfileEndpoint;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .merge(ProfileEndpoint::builder().build()?.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! # The endpoint
//!
//! `GET /debug/pprof/profile` samples every thread of the process with [`CpuSampler`] for a window (one CPU-time
//! timer per thread; every thread's own clock read beside the samples), then answers:
//!
//! - by default (`format=pprof`): the pprof protobuf, uncompressed (`go tool pprof`, Pyroscope, speedscope read it);
//! - with `format=folded`: one line of JSON, then folded stacks (`thread;root;…;leaf COUNT`, one line per distinct
//!   stack, sorted). The JSON line holds the window's facts:
//!
//!   ```text
//!   {"format":"folded","frequency":99,"seconds":10,"wall_seconds":10.001,"samples":1632,"cpu_seconds":16.52,"requests":341234,"threads":[{"tid":41,"name":"drift-exporter","cpu_seconds":9.875,"unarmed_seconds":0.0}]}
//!   ```
//!
//!   `cpu_seconds` is the process's CPU time (user + system, all threads) over the window, `null` off Linux;
//!   `requests` is the difference of [`ProfileEndpointBuilder::requests`]'s counter over the window, `null` without
//!   one. samples ÷ (cpu_seconds × frequency) is the capture ratio. With [`ProfileEndpointBuilder::drift`], an `sdk`
//!   object follows: the SDK's [`Stats`] counted over the window (`recorded`, `sampled_out`, `dropped`, `blocked`,
//!   `exported`, `failed`), so a reader can tell whether the SDK dropped spans meanwhile. (Not the export thread's
//!   CPU time: that counter moves only between drains, so over a busy window it can stand still.) `threads` is every
//!   thread's CPU time over the window by its own clock ([`ThreadCpu`]): the truth the samples of each thread are
//!   checked against.
//!
//! Both answers carry the same facts in `x-profile-frequency`, `x-profile-seconds`, `x-profile-samples`,
//! `x-profile-cpu-seconds` and `x-profile-requests` headers (the last two only when known).
//!
//! Query parameters: `seconds` (a whole number, 1 to [`ProfileEndpointBuilder::max_seconds`]; by default
//! [`DEFAULT_SECONDS`]) and `format` (`pprof` or `folded`). Refusals answer a plain-text reason:
//!
//! | status | when |
//! |---|---|
//! | 403 | the client is not on loopback, or the app is not served with `ConnectInfo<SocketAddr>` |
//! | 400 | a bad `seconds`, an unknown `format`, an unknown or repeated parameter |
//! | 409 | a window is already being profiled, or another CPU profiler runs in the process (one per process) |
//! | 500 | pprof could not start or build its report |
//!
//! The endpoint keeps no global state of its own (SIGPROF has one handler per process: hence the 409), never
//! panics into its host, and stops profiling early when the client goes away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Drift;
use crate::error::{Error, Result};
use crate::stats::{Counters, Stats};

mod proto;
mod sampler;
mod signal;
mod symbols;

pub use sampler::{CpuProfile, CpuSampler, LISTS_EVERY, SAMPLER_THREAD, SCAN_INTERVAL, SamplerError, ThreadCpu};

/// Where the router serves the endpoint (Go's `net/http/pprof` path).
pub const PATH: &str = "/debug/pprof/profile";
/// The sampling frequency by default, in Hz: SIGPROF fires at most once per kernel tick, and 99 Hz keeps every
/// sample where higher rates lose them erratically.
pub const DEFAULT_HZ: i32 = 99;
/// The highest sampling frequency [`ProfileEndpointBuilder::hz`] accepts.
pub const MAX_HZ: i32 = 250;
/// The window when the request gives no `seconds` (Go's default).
pub const DEFAULT_SECONDS: u64 = 30;
/// The longest window by default, in seconds.
pub const DEFAULT_MAX_SECONDS: u64 = 300;
/// The highest value [`ProfileEndpointBuilder::max_seconds`] accepts: one hour.
pub const MAX_MAX_SECONDS: u64 = 3600;

/// The requests the app has served so far, read at the start and the end of each window.
type RequestCount = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The configured endpoint: [`ProfileEndpoint::router`] mounts it. Cheap to clone; clones share the one-window-at-a-
/// time lock.
#[derive(Clone)]
pub struct ProfileEndpoint {
    hz: i32,
    default_seconds: u64,
    max_seconds: u64,
    requests: Option<RequestCount>,
    sdk: Option<Arc<Counters>>,
    /// Held while a window is profiled: a process holds one CPU profiler at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for ProfileEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileEndpoint")
            .field("hz", &self.hz)
            .field("default_seconds", &self.default_seconds)
            .field("max_seconds", &self.max_seconds)
            .field("counts_requests", &self.requests.is_some())
            .field("reports_sdk_stats", &self.sdk.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`ProfileEndpoint`].
#[derive(Clone)]
pub struct ProfileEndpointBuilder {
    hz: i32,
    default_seconds: u64,
    max_seconds: u64,
    requests: Option<RequestCount>,
    sdk: Option<Arc<Counters>>,
}

impl std::fmt::Debug for ProfileEndpointBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileEndpointBuilder")
            .field("hz", &self.hz)
            .field("default_seconds", &self.default_seconds)
            .field("max_seconds", &self.max_seconds)
            .field("counts_requests", &self.requests.is_some())
            .field("reports_sdk_stats", &self.sdk.is_some())
            .finish()
    }
}

impl Default for ProfileEndpointBuilder {
    fn default() -> Self {
        ProfileEndpointBuilder {
            hz: DEFAULT_HZ,
            default_seconds: DEFAULT_SECONDS,
            max_seconds: DEFAULT_MAX_SECONDS,
            requests: None,
            sdk: None,
        }
    }
}

impl ProfileEndpointBuilder {
    /// The sampling frequency, 1 to [`MAX_HZ`] Hz. By default, [`DEFAULT_HZ`].
    pub fn hz(mut self, hz: i32) -> Self {
        self.hz = hz;
        self
    }

    /// The window when a request gives no `seconds`, at most [`max_seconds`](Self::max_seconds). By default,
    /// [`DEFAULT_SECONDS`].
    pub fn default_seconds(mut self, seconds: u64) -> Self {
        self.default_seconds = seconds;
        self
    }

    /// The longest window a request may ask for, 1 to [`MAX_MAX_SECONDS`]; longer ones are refused with 400. By
    /// default, [`DEFAULT_MAX_SECONDS`].
    pub fn max_seconds(mut self, seconds: u64) -> Self {
        self.max_seconds = seconds;
        self
    }

    /// A counter of the requests the app has served, read at the start and the end of each window, so that the
    /// answer says how many requests the window saw (the divisor of a cost per request). It runs on a blocking
    /// thread, twice per window: an atomic load is enough. By default, none: `requests` is `null`.
    pub fn requests(mut self, served_so_far: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.requests = Some(Arc::new(served_so_far));
        self
    }

    /// Reports `drift`'s [`Stats`] counted over each window (the `sdk` object), for example the spans it dropped
    /// while the window ran. Keeps the counters only: the endpoint does not keep the SDK alive. By default, none.
    pub fn drift(mut self, drift: &Drift) -> Self {
        self.sdk = Some(drift.counters());
        self
    }

    /// Checks the values. Fails with [`Error::Config`] naming the value to change.
    pub fn build(self) -> Result<ProfileEndpoint> {
        if !(1..=MAX_HZ).contains(&self.hz) {
            return Err(Error::Config(format!(
                "pprof endpoint hz {} is outside 1..={MAX_HZ}: SIGPROF fires at most once per kernel tick, so use \
                 {DEFAULT_HZ}",
                self.hz
            )));
        }
        if !(1..=MAX_MAX_SECONDS).contains(&self.max_seconds) {
            return Err(Error::Config(format!(
                "pprof endpoint max_seconds {} is outside 1..={MAX_MAX_SECONDS}",
                self.max_seconds
            )));
        }
        if !(1..=self.max_seconds).contains(&self.default_seconds) {
            return Err(Error::Config(format!(
                "pprof endpoint default_seconds {} is outside 1..={} (max_seconds)",
                self.default_seconds, self.max_seconds
            )));
        }
        Ok(ProfileEndpoint {
            hz: self.hz,
            default_seconds: self.default_seconds,
            max_seconds: self.max_seconds,
            requests: self.requests,
            sdk: self.sdk,
            busy: Arc::default(),
        })
    }
}

impl ProfileEndpoint {
    /// A builder with every default.
    pub fn builder() -> ProfileEndpointBuilder {
        ProfileEndpointBuilder::default()
    }

    /// The sampling frequency, in Hz.
    pub fn hz(&self) -> i32 {
        self.hz
    }

    /// A router serving [`PATH`], to merge into the app's router. The app must be served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; without the peer's address every request is refused.
    ///
    /// Mount it outside the SDK's [`DriftLayer`](crate::DriftLayer) (merge it after `.layer(drift.layer())`), so that
    /// profiling windows are not recorded as spans.
    pub fn router<S>(self) -> Router<S> {
        Router::new().route(PATH, get(serve_window)).with_state(self)
    }
}

/// [`ProfileEndpoint::router`] with every default: 99 Hz, 30 s by default, 300 s at most, no request counter.
pub fn router<S>() -> Router<S> {
    ProfileEndpoint {
        hz: DEFAULT_HZ,
        default_seconds: DEFAULT_SECONDS,
        max_seconds: DEFAULT_MAX_SECONDS,
        requests: None,
        sdk: None,
        busy: Arc::default(),
    }
    .router()
}

/// What a request may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The pprof protobuf (`format=pprof`, the default).
    Pprof,
    /// One line of JSON facts, then folded stacks (`format=folded`).
    Folded,
}

/// A window's parameters, from the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ask {
    seconds: u64,
    format: Format,
}

/// A refusal: its status and the reason, answered as plain text.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(status, mut reason) = self;
        reason.push('\n');
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], reason).into_response()
    }
}

async fn serve_window(State(endpoint): State<ProfileEndpoint>, request: Request) -> Response {
    match take_window(endpoint, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn take_window(endpoint: ProfileEndpoint, request: Request) -> Result<Response, Refusal> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    match peer {
        None => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "the profiling endpoint cannot see the client's address, so it cannot check for loopback: serve the \
                 app with into_make_service_with_connect_info::<SocketAddr>()"
                    .into(),
            ));
        }
        Some(peer) if !is_loopback(peer.ip()) => {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                format!(
                    "the profiling endpoint answers loopback clients only, not {}",
                    peer.ip()
                ),
            ));
        }
        Some(_) => {}
    }
    let ask = parse_query(
        request.uri().query().unwrap_or(""),
        endpoint.default_seconds,
        endpoint.max_seconds,
    )
    .map_err(|reason| Refusal(StatusCode::BAD_REQUEST, reason))?;
    let busy = endpoint.busy.clone().try_lock_owned().map_err(|_| {
        Refusal(
            StatusCode::CONFLICT,
            "another profile is being taken: one CPU profiler per process, try again when it ends".into(),
        )
    })?;
    // Dropped with this future when the client goes away: the window then ends early.
    let (_client_waits, client_gone) = mpsc::channel::<()>();
    let window = tokio::task::spawn_blocking(move || {
        let window = profile(&endpoint, ask, &client_gone);
        // The lock goes with the profiler, whichever way the window ended.
        drop(busy);
        window
    })
    .await
    .map_err(|e| {
        Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the profiling task failed: {e}"),
        )
    })??;
    Ok(window.into_response(ask.format))
}

/// A finished window.
#[derive(Debug)]
struct Window {
    facts: Facts,
    body: Vec<u8>,
}

/// What the window measured, beside its stacks.
#[derive(Clone, Debug, PartialEq)]
struct Facts {
    frequency: i32,
    seconds: u64,
    wall_seconds: f64,
    samples: u64,
    cpu_seconds: Option<f64>,
    requests: Option<u64>,
    /// The SDK's counters at the start and the end of the window.
    sdk: Option<(Stats, Stats)>,
    /// Every thread's CPU time over the window, by its own clock.
    threads: Vec<ThreadCpu>,
}

impl Facts {
    /// The JSON line in front of the folded stacks.
    fn json_line(&self) -> String {
        let cpu = self
            .cpu_seconds
            .map_or_else(|| "null".to_owned(), |s| format!("{s:.6}"));
        let requests = self.requests.map_or_else(|| "null".to_owned(), |n| n.to_string());
        let sdk = match &self.sdk {
            None => String::new(),
            Some((b, a)) => format!(
                r#","sdk":{{"recorded":{},"sampled_out":{},"dropped":{},"blocked":{},"exported":{},"failed":{}}}"#,
                a.recorded.saturating_sub(b.recorded),
                a.sampled_out.saturating_sub(b.sampled_out),
                a.dropped.saturating_sub(b.dropped),
                a.blocked.saturating_sub(b.blocked),
                a.exported.saturating_sub(b.exported),
                a.failed.saturating_sub(b.failed),
            ),
        };
        let threads = threads_json(&self.threads);
        format!(
            r#"{{"format":"folded","frequency":{},"seconds":{},"wall_seconds":{:.6},"samples":{},"cpu_seconds":{cpu},"requests":{requests}{sdk},"threads":{threads}}}"#,
            self.frequency, self.seconds, self.wall_seconds, self.samples
        )
    }
}

/// Threads as a JSON array: `[{"tid":…,"name":"…","cpu_seconds":…,"unarmed_seconds":…}, …]`, the form
/// `pprof.json`'s `threads` takes too.
pub fn threads_json(threads: &[ThreadCpu]) -> String {
    let mut out = Vec::from(b"[" as &[u8]);
    for (i, t) in threads.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!(r#"{{"tid":{},"name":"#, t.tid).as_bytes());
        crate::json::write_string_ascii(&t.name, &mut out);
        out.extend_from_slice(
            format!(
                r#","cpu_seconds":{:.6},"unarmed_seconds":{:.6}}}"#,
                t.cpu_seconds, t.unarmed_seconds
            )
            .as_bytes(),
        );
    }
    out.push(b']');
    String::from_utf8_lossy(&out).into_owned()
}

impl Window {
    fn into_response(self, format: Format) -> Response {
        let f = &self.facts;
        let mut headers = vec![
            ("x-profile-frequency", f.frequency.to_string()),
            ("x-profile-seconds", f.seconds.to_string()),
            ("x-profile-samples", f.samples.to_string()),
        ];
        if let Some(cpu) = f.cpu_seconds {
            headers.push(("x-profile-cpu-seconds", format!("{cpu:.3}")));
        }
        if let Some(requests) = f.requests {
            headers.push(("x-profile-requests", requests.to_string()));
        }
        let mut response = self.body.into_response();
        let map = response.headers_mut();
        let content_type = match format {
            Format::Pprof => "application/octet-stream",
            Format::Folded => "text/plain; charset=utf-8",
        };
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if format == Format::Pprof {
            map.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"profile.pb\""),
            );
        }
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// Profiles the process for `ask.seconds` (less if the client goes away) and encodes the report. Runs on a
/// blocking thread: starting pprof the first time and symbolising the report take a while.
fn profile(endpoint: &ProfileEndpoint, ask: Ask, client_gone: &mpsc::Receiver<()>) -> Result<Window, Refusal> {
    let hz = endpoint.hz;
    let requests = endpoint.requests.as_deref();
    let sdk = || endpoint.sdk.as_ref().map(|c| c.snapshot());
    let sampler = CpuSampler::start(hz).map_err(|e| match e {
        SamplerError::Running => Refusal(StatusCode::CONFLICT, e.to_string()),
        e => Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("starting the CPU profiler: {e}"),
        ),
    })?;
    let (started, cpu_before, requests_before, sdk_before) =
        (Instant::now(), process_cpu_seconds(), requests.map(|f| f()), sdk());
    match client_gone.recv_timeout(Duration::from_secs(ask.seconds)) {
        Err(RecvTimeoutError::Timeout) => {}
        // Nothing is ever sent: the sender was dropped, so the client is gone and nobody reads the answer.
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            return Err(Refusal(StatusCode::REQUEST_TIMEOUT, "the client went away".into()));
        }
    }
    // The window ends here: the timers are disarmed first, then the report is built.
    let facts_at_end = (
        started.elapsed().as_secs_f64(),
        process_cpu_seconds(),
        requests.map(|f| f()),
        sdk(),
    );
    let profile = sampler.finish().map_err(|e| {
        Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the CPU profile: {e}"),
        )
    })?;
    let (wall_seconds, cpu_after, requests_after, sdk_after) = facts_at_end;
    let facts = Facts {
        frequency: hz,
        seconds: ask.seconds,
        wall_seconds,
        samples: profile.samples(),
        cpu_seconds: cpu_before.zip(cpu_after).map(|(b, a)| (a - b).max(0.0)),
        requests: requests_before.zip(requests_after).map(|(b, a)| a.saturating_sub(b)),
        sdk: sdk_before.zip(sdk_after),
        threads: profile.threads.clone(),
    };
    let body = match ask.format {
        Format::Pprof => profile.protobuf(),
        Format::Folded => {
            let mut text = facts.json_line();
            text.push('\n');
            text.push_str(&profile.folded());
            text.into_bytes()
        }
    };
    Ok(Window { facts, body })
}

/// Loopback, including an IPv4 loopback client of an IPv6 socket (`::ffff:127.0.0.1`).
fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// `seconds=N&format=F`, each at most once, nothing else.
fn parse_query(query: &str, default_seconds: u64, max_seconds: u64) -> Result<Ask, String> {
    let (mut seconds, mut format) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("seconds", value)) => {
                if seconds.is_some() {
                    return Err("seconds is given twice".into());
                }
                let parsed = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=max_seconds).contains(s))
                    .ok_or_else(|| format!("seconds must be a whole number from 1 to {max_seconds}, not {value:?}"))?;
                seconds = Some(parsed);
            }
            Some(("format", value)) => {
                if format.is_some() {
                    return Err("format is given twice".into());
                }
                format = Some(match value {
                    "pprof" => Format::Pprof,
                    "folded" => Format::Folded,
                    _ => {
                        return Err(format!(
                            "format must be pprof (the protobuf, the default) or folded (a JSON line, then folded \
                             stacks), not {value:?}"
                        ));
                    }
                });
            }
            _ => {
                return Err(format!(
                    "unknown parameter {pair:?}: the endpoint takes seconds=N (1 to {max_seconds}) and \
                     format=pprof|folded"
                ));
            }
        }
    }
    Ok(Ask {
        seconds: seconds.unwrap_or(default_seconds),
        format: format.unwrap_or(Format::Pprof),
    })
}

/// The process's CPU time so far (user + system, every thread), where the platform says.
fn process_cpu_seconds() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Some(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::IpAddr;

    use axum::body::Body;
    use tower_service::Service;

    use super::*;

    #[test]
    fn the_query_is_bounded_and_refusals_say_why() {
        let ask = |q: &str| parse_query(q, DEFAULT_SECONDS, DEFAULT_MAX_SECONDS);
        assert_eq!(
            ask(""),
            Ok(Ask {
                seconds: DEFAULT_SECONDS,
                format: Format::Pprof
            })
        );
        assert_eq!(
            ask("seconds=2&format=folded"),
            Ok(Ask {
                seconds: 2,
                format: Format::Folded
            })
        );
        assert_eq!(ask("seconds=300&format=pprof").map(|a| a.seconds), Ok(300));
        for (bad, needle) in [
            ("seconds=0", "from 1 to 300"),
            ("seconds=301", "from 1 to 300"),
            ("seconds=-1", "from 1 to 300"),
            ("seconds=1.5", "from 1 to 300"),
            ("seconds=", "from 1 to 300"),
            ("seconds=1&seconds=2", "twice"),
            ("format=svg", "pprof (the protobuf"),
            ("format=folded&format=pprof", "twice"),
            ("hz=1000", "unknown parameter \"hz=1000\""),
            ("seconds", "unknown parameter"),
        ] {
            let err = ask(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        assert!(parse_query("seconds=61", 30, 60).unwrap_err().contains("from 1 to 60"));
    }

    #[test]
    fn only_loopback_clients_are_served() {
        for ok in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ok.parse().unwrap()), "{ok}");
        }
        for refused in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "2001:db8::1", "0.0.0.0"] {
            assert!(!is_loopback(refused.parse().unwrap()), "{refused}");
        }
    }

    #[test]
    fn the_builder_refuses_values_it_cannot_use() {
        for (builder, needle) in [
            (ProfileEndpoint::builder().hz(0), "hz 0"),
            (ProfileEndpoint::builder().hz(1000), "kernel tick"),
            (ProfileEndpoint::builder().max_seconds(0), "max_seconds 0"),
            (ProfileEndpoint::builder().max_seconds(10), "default_seconds 30"),
            (ProfileEndpoint::builder().default_seconds(0), "default_seconds 0"),
        ] {
            let err = builder.build().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let endpoint = ProfileEndpoint::builder()
            .hz(49)
            .max_seconds(10)
            .default_seconds(5)
            .build()
            .unwrap();
        assert_eq!(
            (endpoint.hz(), endpoint.max_seconds, endpoint.default_seconds),
            (49, 10, 5)
        );
    }

    #[test]
    fn the_facts_line_is_json_with_nulls_for_what_is_unknown() {
        let mut facts = Facts {
            frequency: 99,
            seconds: 2,
            wall_seconds: 2.0004,
            samples: 180,
            cpu_seconds: Some(1.875),
            requests: Some(4000),
            sdk: None,
            threads: vec![
                ThreadCpu {
                    tid: 41,
                    name: "drift-exporter".into(),
                    cpu_seconds: 1.25,
                    unarmed_seconds: 0.0,
                },
                ThreadCpu {
                    tid: 42,
                    name: "odd \"name\"\u{e9}".into(),
                    cpu_seconds: 0.5,
                    unarmed_seconds: 0.001,
                },
            ],
        };
        assert_eq!(
            facts.json_line(),
            r#"{"format":"folded","frequency":99,"seconds":2,"wall_seconds":2.000400,"samples":180,"cpu_seconds":1.875000,"requests":4000,"threads":[{"tid":41,"name":"drift-exporter","cpu_seconds":1.250000,"unarmed_seconds":0.000000},{"tid":42,"name":"odd \"name\"\u00e9","cpu_seconds":0.500000,"unarmed_seconds":0.001000}]}"#
        );
        facts.cpu_seconds = None;
        facts.requests = None;
        facts.threads.clear();
        assert!(
            facts
                .json_line()
                .ends_with(r#""cpu_seconds":null,"requests":null,"threads":[]}"#)
        );
        let at = |n: u64| Stats {
            recorded: 10 * n,
            sampled_out: n,
            dropped: 3 * n,
            blocked: 0,
            exported: 9 * n,
            failed: 0,
            export_thread_cpu_ns: 250_000_000 * n,
        };
        facts.sdk = Some((at(1), at(3)));
        assert!(
            facts.json_line().ends_with(
                r#""requests":null,"sdk":{"recorded":20,"sampled_out":2,"dropped":6,"blocked":0,"exported":18,"failed":0},"threads":[]}"#
            ),
            "the window's counts: {}",
            facts.json_line()
        );
    }

    /// One request through the router, from `peer` (none: served without `ConnectInfo`).
    async fn get(router: &mut Router, query: &str, peer: Option<IpAddr>) -> (StatusCode, String) {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = format!("{PATH}?{query}").parse().unwrap();
        if let Some(ip) = peer {
            request.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, 40000)));
        }
        std::future::poll_fn(|cx| Service::<Request>::poll_ready(router, cx))
            .await
            .unwrap();
        let response = router.call(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_come_before_any_profiling_with_their_reason() {
        let mut router: Router = ProfileEndpoint::builder().build().unwrap().router();
        let (status, body) = get(&mut router, "seconds=1", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("into_make_service_with_connect_info"), "{body}");
        let (status, body) = get(&mut router, "seconds=1", Some("10.1.2.3".parse().unwrap())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("loopback clients only, not 10.1.2.3"), "{body}");
        for bad in ["seconds=0", "seconds=301", "seconds=abc", "format=svg", "hz=1000"] {
            let (status, body) = get(&mut router, bad, LOOPBACK).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body.contains("seconds") || body.contains("format"), "{bad}: {body}");
        }
    }

    /// Held by every test that runs pprof: its profiler is process-wide, so two such tests would refuse each other.
    pub(in crate::pprof_endpoint) static PPROF: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(
        clippy::await_holding_lock,
        reason = "the lock stands for the process's one profiler, held for the whole test"
    )]
    async fn a_window_answers_folded_stacks_and_a_second_one_meanwhile_is_refused() {
        let _one_profiler = PPROF.lock().unwrap_or_else(|e| e.into_inner());
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = served.clone();
        let drift = Drift::builder()
            .mode(crate::Mode::Record)
            .in_memory(crate::InMemorySpans::new())
            .env_vars(Vec::new())
            .init()
            .unwrap();
        let mut router: Router = ProfileEndpoint::builder()
            .requests(move || counter.load(std::sync::atomic::Ordering::Relaxed))
            .drift(&drift)
            .build()
            .unwrap()
            .router();
        let first = {
            let mut router = router.clone();
            tokio::spawn(async move { get(&mut router, "seconds=1&format=folded", LOOPBACK).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, body) = get(&mut router, "seconds=1", LOOPBACK).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body.contains("one CPU profiler per process"), "{body}");
        // Work for the profiler to see, and requests for the counter.
        let busy = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut x = 0u64;
            while started.elapsed() < Duration::from_millis(900) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            x
        });
        let (status, body) = first.await.unwrap();
        let _ = busy.await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (header, stacks) = body.split_once('\n').unwrap();
        assert!(
            header.starts_with(r#"{"format":"folded","frequency":99,"seconds":1,"#),
            "{header}"
        );
        let header: serde_json::Value = serde_json::from_str(header).unwrap();
        assert!(header["requests"].as_u64().unwrap() > 0, "{header}");
        assert_eq!(
            header["sdk"]["dropped"], 0,
            "the SDK's counters over the window: {header}"
        );
        let samples = header["samples"].as_u64().unwrap();
        let total: u64 = stacks
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, samples, "the stacks hold the samples the header counts");
        assert!(samples > 0, "{header}");
        // The lock went with the window: the next one is served.
        let (status, body) = get(&mut router, "seconds=1", LOOPBACK).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
