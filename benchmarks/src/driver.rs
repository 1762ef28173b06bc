//! Running a [`Plan`]: `concurrency` workers, each owning one keep-alive HTTP/1.1 connection, take request numbers
//! from one shared counter (so the mix is exact whatever the concurrency), send the mix's request for that number, read
//! the whole answer, and record its latency in their own HDR histograms, merged at the end.
//!
//! With `--rate`, request `i` of the measured run is due at `start + i / rate`: a worker that takes it early sleeps until
//! then; one that takes it late (every connection was busy at its due time) sends at once, counts it as late, and
//! measures its latency from the due time, so a stalling server is not hidden by the client waiting for it
//! (coordinated omission).
//!
//! All connections are opened before the warm-up, so an unreachable URL fails at once. A worker whose connection
//! breaks counts a connection error for the request it was sending and opens a new one for the next; a connection the
//! server closed cleanly between two requests is replaced without counting an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::flags::{Plan, Stop};
use crate::mix::{Mix, Template};
use crate::progress::Progress;
use crate::report::{EndpointReport, Errors, Latency, Notes, REPORT_VERSION, Report};

/// Longest wait for a TCP connection (or `--timeout`, if shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed reconnection, so a dead server does not turn a duration run into a busy loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The results of a run: the JSON document and what the summary adds.
#[derive(Debug)]
pub struct Run {
    /// The JSON document.
    pub report: Report,
    /// Extra lines for the human summary.
    pub notes: Notes,
}

/// Runs `plan` on its own tokio runtime (current-thread unless `plan.threads` is set) and returns its results.
/// Fails only when the URL cannot be reached at the start; errors during the run are counted in the results.
pub fn run(plan: &Plan) -> anyhow::Result<Run> {
    let runtime = match plan.threads {
        None => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n as usize)
            .enable_all()
            .build(),
    }
    .context("starting the tokio runtime")?;
    runtime.block_on(run_plan(plan))
}

async fn run_plan(plan: &Plan) -> anyhow::Result<Run> {
    let shared = Arc::new(Shared::new(plan)?);
    let mut workers = Vec::with_capacity(plan.concurrency as usize);
    for _ in 0..plan.concurrency {
        let mut worker = Worker::new(shared.clone());
        let sender = open(&shared)
            .await
            .with_context(|| format!("cannot connect to {}", plan.target))?;
        worker.conn = Some(sender);
        worker.connections_opened = 1;
        workers.push(worker);
    }

    let mut warmup_failed = 0;
    if plan.warmup > 0 {
        let phase = Arc::new(Phase::new(Stop::Iterations(plan.warmup), None));
        workers = run_phase(workers, &phase, plan.progress, "warm-up").await?;
        warmup_failed = phase.failed.load(Relaxed);
        for worker in &mut workers {
            worker.stats = Stats::new(shared.requests.len());
        }
    }

    let started_at = SystemTime::now();
    let start = Instant::now();
    let phase = Arc::new(Phase::new(plan.stop, plan.rate));
    workers = run_phase(workers, &phase, plan.progress, "workload").await?;
    let elapsed = start.elapsed();

    let mut stats = Stats::new(shared.requests.len());
    let mut connections_opened = 0;
    for worker in workers {
        connections_opened += worker.connections_opened;
        stats.merge(worker.stats)?;
    }
    let notes = Notes {
        connections_opened,
        warmup_failed,
        last_connection_error: stats.last_connection_error.clone(),
    };
    Ok(Run {
        report: stats.into_report(plan, elapsed, started_at)?,
        notes,
    })
}

async fn run_phase(workers: Vec<Worker>, phase: &Arc<Phase>, show: bool, label: &str) -> anyhow::Result<Vec<Worker>> {
    let progress = Progress::start(show, label, phase.clone());
    let handles: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.run(phase.clone())))
        .collect();
    let mut workers = Vec::with_capacity(handles.len());
    for handle in handles {
        workers.push(handle.await.context("a worker task failed")?);
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    Ok(workers)
}

/// One phase (warm-up or measured run): its request counter, schedule and live totals.
#[derive(Debug)]
pub(crate) struct Phase {
    stop: Stop,
    start: Instant,
    deadline: Option<Instant>,
    /// Seconds between two due times (`1 / rate`), when paced.
    interval_s: Option<f64>,
    next: AtomicU64,
    /// Requests finished (for the progress bar).
    pub(crate) done: AtomicU64,
    /// Requests failed (for the progress bar).
    pub(crate) failed: AtomicU64,
}

impl Phase {
    fn new(stop: Stop, rate: Option<f64>) -> Phase {
        let start = Instant::now();
        let deadline = match stop {
            Stop::Duration(d) => Some(start + d),
            Stop::Iterations(_) => None,
        };
        Phase {
            stop,
            start,
            deadline,
            interval_s: rate.map(|r| 1.0 / r),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    pub(crate) fn stop(&self) -> Stop {
        self.stop
    }

    /// The next request: its number and, when paced, its due time; `None` when the phase is over (for a paced
    /// duration run, also when the next request would be due at or after the deadline).
    fn next_slot(&self) -> Option<Slot> {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return None;
        }
        let index = self.next.fetch_add(1, Relaxed);
        if let Stop::Iterations(n) = self.stop
            && index >= n
        {
            return None;
        }
        let due = self.due(index);
        if let (Some(due), Some(deadline)) = (due, self.deadline)
            && due >= deadline
        {
            return None;
        }
        Some(Slot { index, due })
    }

    /// When request `index` is due, if the phase is paced.
    fn due(&self, index: u64) -> Option<Instant> {
        self.interval_s
            .map(|interval| self.start + Duration::from_secs_f64(index as f64 * interval))
    }
}

/// One request to send: its number in the phase and, when paced, its due time.
#[derive(Clone, Copy, Debug)]
struct Slot {
    index: u64,
    due: Option<Instant>,
}

/// What every worker reads: the target and the mix's requests, ready to clone.
#[derive(Debug)]
struct Shared {
    mix: Mix,
    requests: Vec<Prepared>,
    host: String,
    port: u16,
    timeout: Duration,
}

impl Shared {
    fn new(plan: &Plan) -> anyhow::Result<Shared> {
        let requests = plan
            .mix
            .entries()
            .iter()
            .map(|entry| {
                let uri: Uri = format!("{}{}", plan.target.base_path(), entry.path)
                    .parse()
                    .with_context(|| format!("the path of {}", entry.label()))?;
                let mut headers = HeaderMap::new();
                headers.insert(HOST, plan.target.authority().clone());
                if entry.body.is_some() {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                for (name, value) in &entry.headers {
                    headers.insert(name.clone(), value.clone());
                }
                Ok(Prepared {
                    method: entry.method.clone(),
                    uri,
                    headers,
                    body: entry.body.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Shared {
            mix: plan.mix.clone(),
            requests,
            host: plan.target.host().to_owned(),
            port: plan.target.port(),
            timeout: plan.timeout,
        })
    }
}

/// One mix entry as a request template.
#[derive(Debug)]
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Template>,
}

impl Prepared {
    fn request(&self, i: u64) -> Request<Full<Bytes>> {
        let body = self.body.as_ref().map(|t| t.render(i)).unwrap_or_default();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Opens one keep-alive HTTP/1.1 connection; its I/O runs in a task of its own.
async fn open(shared: &Shared) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let limit = CONNECT_TIMEOUT.min(shared.timeout);
    let stream = tokio::time::timeout(limit, TcpStream::connect((shared.host.as_str(), shared.port)))
        .await
        .map_err(|_| anyhow!("no TCP connection within {}", humantime::format_duration(limit)))??;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // An I/O error here also fails the request in flight, which is where it is counted.
        let _ = connection.await;
    });
    Ok(sender)
}

/// How one request ended.
enum Outcome {
    /// A whole answer arrived.
    Answered { status: StatusCode, latency: Duration },
    /// The connection could not be opened, broke, or timed out.
    Lost { error: String, connecting: bool },
}

/// One connection and the statistics of the requests it sent.
struct Worker {
    shared: Arc<Shared>,
    conn: Option<SendRequest<Full<Bytes>>>,
    connections_opened: u64,
    stats: Stats,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Worker {
        let stats = Stats::new(shared.requests.len());
        Worker {
            shared,
            conn: None,
            connections_opened: 0,
            stats,
        }
    }

    async fn run(mut self, phase: Arc<Phase>) -> Worker {
        while let Some(Slot { index: i, due }) = phase.next_slot() {
            // Early: wait for the due time, and time the request from when it goes out. Late: go now, and time it
            // from when it was due.
            let late_since = match due {
                Some(due) if due > Instant::now() => {
                    tokio::time::sleep_until(due.into()).await;
                    None
                }
                Some(due) => {
                    self.stats.late += 1;
                    Some(due)
                }
                None => None,
            };
            let entry = self.shared.mix.entry_index(i);
            let outcome = self.send(i, entry, late_since).await;
            let failed = self.stats.record(entry, &outcome);
            phase.done.fetch_add(1, Relaxed);
            if failed {
                phase.failed.fetch_add(1, Relaxed);
            }
            if let Outcome::Lost { connecting: true, .. } = outcome {
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
        }
        self
    }

    /// Sends request `i` (mix entry `entry`); its latency runs from `late_since` if given, else from when it goes out.
    async fn send(&mut self, i: u64, entry: usize, late_since: Option<Instant>) -> Outcome {
        let request = self.shared.requests[entry].request(i);
        let timeout = self.shared.timeout;
        let sender = match self.ready().await {
            Ok(sender) => sender,
            Err(err) => {
                return Outcome::Lost {
                    error: format!("connecting: {err:#}"),
                    connecting: true,
                };
            }
        };
        let start = late_since.unwrap_or_else(Instant::now);
        match tokio::time::timeout(timeout, exchange(sender, request)).await {
            Ok(Ok(status)) => Outcome::Answered {
                status,
                latency: start.elapsed(),
            },
            Ok(Err(err)) => {
                self.conn = None;
                Outcome::Lost {
                    error: error_chain(&err),
                    connecting: false,
                }
            }
            Err(_) => {
                self.conn = None;
                let error = format!("no answer within {}", humantime::format_duration(timeout));
                Outcome::Lost {
                    error,
                    connecting: false,
                }
            }
        }
    }

    /// The connection, once it can take a request; reopened if the server closed it.
    async fn ready(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let usable = match &mut self.conn {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.conn = None;
            self.conn = Some(open(&self.shared).await?);
            self.connections_opened += 1;
        }
        self.conn.as_mut().context("no connection")
    }
}

/// Sends `request` and reads the answer to its last byte.
async fn exchange(sender: &mut SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> hyper::Result<StatusCode> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(status)
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Counts and latencies of one worker, or of all of them once merged.
#[derive(Debug)]
struct Stats {
    endpoints: Vec<EndpointStats>,
    status_errors: BTreeMap<u16, u64>,
    connection_errors: u64,
    last_connection_error: Option<String>,
    /// Paced requests sent after their due time because every connection was busy.
    late: u64,
}

#[derive(Debug)]
struct EndpointStats {
    requests: u64,
    failed: u64,
    /// Microseconds; auto-resizing (it starts small and grows to the largest value recorded).
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

impl Stats {
    fn new(entries: usize) -> Stats {
        let endpoints = (0..entries)
            .map(|_| EndpointStats {
                requests: 0,
                failed: 0,
                latency: histogram(),
            })
            .collect::<Vec<_>>();
        Stats {
            endpoints,
            status_errors: BTreeMap::new(),
            connection_errors: 0,
            last_connection_error: None,
            late: 0,
        }
    }

    /// Counts one request; returns whether it failed.
    fn record(&mut self, entry: usize, outcome: &Outcome) -> bool {
        let endpoint = &mut self.endpoints[entry];
        endpoint.requests += 1;
        let failed = match outcome {
            Outcome::Answered { status, latency } => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                // `record` grows the histogram; `saturating_record` would clamp to its current (tiny) range instead.
                if endpoint.latency.record(micros).is_err() {
                    endpoint.latency.saturating_record(micros);
                }
                if !status.is_success() {
                    *self.status_errors.entry(status.as_u16()).or_default() += 1;
                }
                !status.is_success()
            }
            Outcome::Lost { error, .. } => {
                self.connection_errors += 1;
                self.last_connection_error = Some(error.clone());
                true
            }
        };
        endpoint.failed += u64::from(failed);
        failed
    }

    fn merge(&mut self, other: Stats) -> anyhow::Result<()> {
        for (mine, theirs) in self.endpoints.iter_mut().zip(other.endpoints) {
            mine.requests += theirs.requests;
            mine.failed += theirs.failed;
            mine.latency
                .add(&theirs.latency)
                .map_err(|err| anyhow!("merging latency histograms: {err:?}"))?;
        }
        for (status, n) in other.status_errors {
            *self.status_errors.entry(status).or_default() += n;
        }
        self.connection_errors += other.connection_errors;
        self.late += other.late;
        if other.last_connection_error.is_some() {
            self.last_connection_error = other.last_connection_error;
        }
        Ok(())
    }

    fn into_report(self, plan: &Plan, elapsed: Duration, started_at: SystemTime) -> anyhow::Result<Report> {
        let mut all = histogram();
        for endpoint in &self.endpoints {
            all.add(&endpoint.latency)
                .map_err(|err| anyhow!("merging latency histograms: {err:?}"))?;
        }
        let requests: u64 = self.endpoints.iter().map(|e| e.requests).sum();
        let failed: u64 = self.endpoints.iter().map(|e| e.failed).sum();
        let elapsed_s = elapsed.as_secs_f64();
        let (iterations, duration_s) = match plan.stop {
            Stop::Iterations(n) => (Some(n), None),
            Stop::Duration(d) => (None, Some(d.as_secs_f64())),
        };
        let endpoints = plan
            .mix
            .entries()
            .iter()
            .zip(&self.endpoints)
            .map(|(entry, stats)| EndpointReport {
                method: entry.method.to_string(),
                path: entry.path.to_string(),
                requests: stats.requests,
                failed: stats.failed,
                latency_us: Latency::from_histogram(&stats.latency),
            })
            .collect();
        Ok(Report {
            version: REPORT_VERSION,
            url: plan.target.url().to_owned(),
            mix: plan.mix.name().to_owned(),
            concurrency: plan.concurrency,
            rate: plan.rate,
            late: self.late,
            warmup: plan.warmup,
            iterations,
            duration_s,
            requests,
            ok: requests - failed,
            failed,
            error_rate: if requests == 0 {
                0.0
            } else {
                failed as f64 / requests as f64
            },
            errors: Errors {
                status: self
                    .status_errors
                    .into_iter()
                    .map(|(code, n)| (code.to_string(), n))
                    .collect(),
                connection: self.connection_errors,
            },
            elapsed_s,
            req_per_s: if elapsed_s > 0.0 {
                requests as f64 / elapsed_s
            } else {
                0.0
            },
            latency_us: Latency::from_histogram(&all),
            endpoints,
            started_at_unix_ms: started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(phase: &Phase) -> Vec<u64> {
        std::iter::from_fn(|| phase.next_slot().map(|slot| slot.index)).collect()
    }

    #[test]
    fn iteration_phases_hand_out_each_index_once() {
        let phase = Phase::new(Stop::Iterations(3), None);
        assert_eq!(indices(&phase), [0, 1, 2]);
        assert!(phase.next_slot().is_none());
    }

    #[test]
    fn duration_phases_end_at_their_deadline() {
        let phase = Phase::new(Stop::Duration(Duration::from_millis(30)), None);
        assert_eq!(phase.next_slot().map(|slot| slot.index), Some(0));
        std::thread::sleep(Duration::from_millis(40));
        assert!(phase.next_slot().is_none());
    }

    #[test]
    fn paced_phases_space_due_times_by_the_rate_and_stop_before_the_deadline() {
        let phase = Phase::new(Stop::Duration(Duration::from_secs(1)), Some(4.0));
        let slots: Vec<_> = std::iter::from_fn(|| phase.next_slot()).collect();
        // Due at 0, 250, 500 and 750 ms; the fifth would be due at the deadline itself.
        let offsets: Vec<_> = slots
            .iter()
            .map(|slot| slot.due.unwrap().duration_since(phase.start).as_millis())
            .collect();
        assert_eq!(offsets, [0, 250, 500, 750]);
        let unpaced = Phase::new(Stop::Iterations(2), None);
        assert!(unpaced.next_slot().unwrap().due.is_none());
    }

    #[test]
    fn stats_count_statuses_and_lost_connections() {
        let mut a = Stats::new(2);
        let ok = Outcome::Answered {
            status: StatusCode::OK,
            latency: Duration::from_micros(100),
        };
        let err = Outcome::Answered {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            latency: Duration::from_micros(50),
        };
        assert!(!a.record(0, &ok));
        assert!(a.record(1, &err));
        let mut b = Stats::new(2);
        assert!(b.record(
            1,
            &Outcome::Lost {
                error: "reset".into(),
                connecting: false
            }
        ));
        a.merge(b).unwrap();
        assert_eq!(a.status_errors, BTreeMap::from([(500, 1)]));
        assert_eq!(
            (a.connection_errors, a.last_connection_error.as_deref()),
            (1, Some("reset"))
        );
        assert_eq!(
            (
                a.endpoints[1].requests,
                a.endpoints[1].failed,
                a.endpoints[1].latency.len()
            ),
            (2, 2, 1)
        );
    }

    #[test]
    fn latencies_of_any_size_are_kept_through_the_merge() {
        let answered = |ms| Outcome::Answered {
            status: StatusCode::OK,
            latency: Duration::from_millis(ms),
        };
        let mut a = Stats::new(1);
        a.record(0, &answered(5));
        let mut b = Stats::new(1);
        b.record(0, &answered(1_500));
        b.record(0, &answered(40));
        let mut all = Stats::new(1);
        all.merge(a).unwrap();
        all.merge(b).unwrap();
        let l = Latency::from_histogram(&all.endpoints[0].latency);
        let close = |value: u64, expected: u64| value.abs_diff(expected) <= expected / 500;
        assert!(
            close(l.min, 5_000) && close(l.p50, 40_000) && close(l.max, 1_500_000),
            "{l:?}"
        );
    }
}
