//! `/api/calibrate` and `/api/calibrate-syscalls`: known CPU work for the profiler's truth tests.
//!
//! - `/api/calibrate` splits its work between three functions that are never inlined — [`calibrate_sixty`],
//!   [`calibrate_thirty`] and [`calibrate_ten`] — in a fixed ratio (60 / 30 / 10 by default), on the request's
//!   thread. Each runs the same loop body a number of times proportional to its share, so a correct CPU profile
//!   shows their self times in that ratio. Query: `units` (default [`DEFAULT_UNITS`], at most [`MAX_UNITS`]) is the
//!   total work in steps of [`STEP_ITERATIONS`] loop iterations; `ratio=a,b,c` (default `60,30,10`) are the three
//!   shares in percent, which must add up to 100.
//! - `/api/calibrate-syscalls` hands `units` (default [`DEFAULT_SYSCALL_UNITS`]) rounds of system calls — create a
//!   small file, write 2.5 KB, close it, unlink it, as the SDK's export thread does for a trace — to one thread of
//!   its own, [`SYSCALL_THREAD`], running [`calibrate_syscalls`], and answers when they are done. The request thread
//!   waits off-CPU meanwhile. A profiler that routes its samples by anything but each thread's own CPU time (a
//!   process-wide `setitimer`) gets this split wrong.
//!
//! - `/api/calibrate-wakeups` (`units` rounds, default [`DEFAULT_SYSCALL_UNITS`]) passes a token between two threads
//!   of their own, [`PING_THREAD`] and [`PONG_THREAD`], over channels: each round, each blocks in [`calibrate_wait`]
//!   until the other wakes it. The CPU inside those waits (the futex system call, the switch out and back in) is
//!   what a profiler whose timers are checked only at kernel ticks can misplace.
//!
//! Every call of the five functions is timed with its thread's own CPU clock ([`CalibrationClocks`]): `run.json`
//! reports each function's CPU seconds, the truth its share of the samples is checked against.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::json;

use crate::state::AppState;

/// Default total work, in steps: about 5 ms of CPU in a release build here (2.5 ns an iteration).
pub const DEFAULT_UNITS: u64 = 100;
/// Default rounds of `/api/calibrate-syscalls`: a few ms of CPU, most of it in the kernel.
pub const DEFAULT_SYSCALL_UNITS: u64 = 100;
/// Largest `units` of `/api/calibrate-syscalls`.
pub const MAX_SYSCALL_UNITS: u64 = 10_000;
/// The thread that runs [`calibrate_syscalls`].
pub const SYSCALL_THREAD: &str = "calib-syscalls";
/// Bytes each round of [`calibrate_syscalls`] writes: about a seed trace line.
pub const SYSCALL_WRITE_BYTES: usize = 2500;
/// Largest `units` accepted, so one request cannot hold a core for long.
pub const MAX_UNITS: u64 = 100_000;
/// Loop iterations per step.
pub const STEP_ITERATIONS: u64 = 200;
/// The default shares of the three functions, in percent.
pub const DEFAULT_RATIO: [u64; 3] = [60, 30, 10];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/calibrate", get(calibrate))
        .route("/api/calibrate-syscalls", get(calibrate_syscalls_endpoint))
        .route("/api/calibrate-wakeups", get(calibrate_wakeups_endpoint))
}

/// CPU nanoseconds each calibration function has run so far, by its thread's own clock. Shared by the handlers and
/// the run's report; the syscall thread is started on first use.
#[derive(Debug, Default)]
pub struct CalibrationClocks {
    sixty: AtomicU64,
    thirty: AtomicU64,
    ten: AtomicU64,
    syscalls: AtomicU64,
    wait: AtomicU64,
    worker: OnceLock<Result<JobThread, String>>,
    ping_pong: OnceLock<Result<JobThread, String>>,
}

/// One calibration function's CPU time, by its thread's own clock.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationTime {
    /// The function's full name, as a profile names it.
    pub function: &'static str,
    pub cpu_seconds: f64,
    /// Whether the figure is exact to well within a profile's resolution. `calibrate_wait`'s is not: a wait costs a
    /// few µs of CPU and the clock reads around it are system calls whose cost after a wake-up is a sizeable, uneven
    /// part of that, so its figure is an upper bound.
    pub exact: bool,
}

impl CalibrationClocks {
    /// Each calibration function that ran, with its CPU time.
    pub fn seconds(&self) -> Vec<CalibrationTime> {
        [
            ("demo_app::calibrate::calibrate_sixty", &self.sixty, true),
            ("demo_app::calibrate::calibrate_thirty", &self.thirty, true),
            ("demo_app::calibrate::calibrate_ten", &self.ten, true),
            ("demo_app::calibrate::calibrate_syscalls", &self.syscalls, true),
            ("demo_app::calibrate::calibrate_wait", &self.wait, false),
        ]
        .into_iter()
        .map(|(function, ns, exact)| CalibrationTime {
            function,
            cpu_seconds: ns.load(Ordering::Relaxed) as f64 / 1e9,
            exact,
        })
        .filter(|t| t.cpu_seconds > 0.0)
        .collect()
    }

    fn ping_pong(self: &Arc<Self>) -> Result<&JobThread, String> {
        self.ping_pong
            .get_or_init(|| start_ping_pong(self.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn worker(self: &Arc<Self>) -> Result<&JobThread, String> {
        self.worker
            .get_or_init(|| start_syscall_thread(self.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// This thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// Runs `f`, adding the CPU time it took on this thread to `clock`.
fn timed<T>(clock: &AtomicU64, f: impl FnOnce() -> T) -> T {
    let started = thread_cpu_ns();
    let out = f();
    clock.fetch_add(thread_cpu_ns().saturating_sub(started), Ordering::Relaxed);
    out
}

async fn calibrate(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    match parse_query(query.as_deref().unwrap_or("")) {
        Ok((units, ratio)) => {
            let steps = ratio.map(|share| units * share);
            let clocks = &state.calibration;
            let checksum = timed(&clocks.sixty, || calibrate_sixty(steps[0] * STEP_ITERATIONS))
                ^ timed(&clocks.thirty, || calibrate_thirty(steps[1] * STEP_ITERATIONS))
                ^ timed(&clocks.ten, || calibrate_ten(steps[2] * STEP_ITERATIONS));
            Json(json!({"units": units, "ratio": ratio, "checksum": checksum})).into_response()
        }
        Err(reason) => (StatusCode::BAD_REQUEST, Json(json!({"error": reason}))).into_response(),
    }
}

async fn calibrate_syscalls_endpoint(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    hand_to_thread(
        query,
        || state.calibration.worker(),
        |units, bytes| json!({"units": units, "bytes": bytes}),
    )
    .await
}

async fn calibrate_wakeups_endpoint(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    hand_to_thread(
        query,
        || state.calibration.ping_pong(),
        |_, rounds| json!({"rounds": rounds}),
    )
    .await
}

/// Parses `units`, hands them to the calibration thread `thread` gives (started on first use), and answers what
/// `answer` makes of (units, the thread's result) once it is done.
async fn hand_to_thread<'a>(
    query: Option<String>,
    thread: impl FnOnce() -> Result<&'a JobThread, String>,
    answer: impl FnOnce(u64, u64) -> serde_json::Value,
) -> Response {
    let refuse = |status: StatusCode, reason: String| (status, Json(json!({"error": reason}))).into_response();
    let units = match parse_syscall_query(query.as_deref().unwrap_or("")) {
        Ok(units) => units,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    let thread = match thread() {
        Ok(thread) => thread,
        Err(reason) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, reason),
    };
    let (done, finished) = tokio::sync::oneshot::channel();
    let sent = thread
        .jobs
        .lock()
        .map(|jobs| jobs.send((units, done)).is_ok())
        .unwrap_or(false);
    match (sent, finished.await) {
        (true, Ok(Ok(result))) => Json(answer(units, result)).into_response(),
        (true, Ok(Err(reason))) => refuse(StatusCode::INTERNAL_SERVER_ERROR, reason),
        _ => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the {} thread is gone", thread.name),
        ),
    }
}

/// A job for a calibration thread: its units, and where to send the result.
type Job = (u64, tokio::sync::oneshot::Sender<Result<u64, String>>);

/// A calibration thread, fed one job at a time.
#[derive(Debug)]
struct JobThread {
    name: &'static str,
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The thread that takes `/api/calibrate-wakeups` jobs and passes a token to [`PONG_THREAD`] and back.
pub const PING_THREAD: &str = "calib-ping";
/// The thread that hands the token back.
pub const PONG_THREAD: &str = "calib-pong";

/// Two threads passing a token back and forth over channels: each round, each of them blocks in
/// [`calibrate_wait`] until the other wakes it. What the profiler must get right is the CPU inside that wait — the
/// system call, the sleep and the wake-up — which is where the SDK's export thread and tokio's workers spend much of
/// theirs. The ping thread takes the jobs.
fn start_ping_pong(clocks: Arc<CalibrationClocks>) -> Result<JobThread, String> {
    let (jobs, incoming) = mpsc::channel::<Job>();
    let (to_pong, pong_gets) = mpsc::channel::<()>();
    let (to_ping, ping_gets) = mpsc::channel::<()>();
    let pong_clocks = Arc::downgrade(&clocks);
    std::thread::Builder::new()
        .name(PONG_THREAD.into())
        .spawn(move || {
            while let Some(Ok(())) = pong_clocks.upgrade().map(|c| timed_wait(&c.wait, &pong_gets)) {
                if to_ping.send(()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("starting the {PONG_THREAD} thread: {e}"))?;
    let clocks = Arc::downgrade(&clocks);
    std::thread::Builder::new()
        .name(PING_THREAD.into())
        .spawn(move || {
            for (rounds, done) in incoming {
                let Some(clocks) = clocks.upgrade() else { break };
                let mut passed = 0;
                for _ in 0..rounds {
                    if to_pong.send(()).is_err() || timed_wait(&clocks.wait, &ping_gets).is_err() {
                        break;
                    }
                    passed += 1;
                }
                let _ = done.send(if passed == rounds {
                    Ok(rounds)
                } else {
                    Err(format!("the {PONG_THREAD} thread stopped after {passed} rounds"))
                });
            }
        })
        .map_err(|e| format!("starting the {PING_THREAD} thread: {e}"))?;
    Ok(JobThread {
        name: PING_THREAD,
        jobs: Mutex::new(jobs),
    })
}

/// [`calibrate_wait`], its CPU time added to `clock` less what reading the clock itself puts inside the interval.
///
/// A wait costs a few µs of CPU, and reading a thread's CPU clock is a system call: the end of the first read and
/// the start of the second fall inside the measured interval, a sizeable part of it. That part is measured once per
/// thread (the smallest of 200 intervals around nothing) and taken off each wait.
fn timed_wait(clock: &AtomicU64, from: &mpsc::Receiver<()>) -> Result<(), mpsc::RecvError> {
    thread_local! {
        static EMPTY_INTERVAL_NS: u64 = (0..200)
            .map(|_| {
                let started = thread_cpu_ns();
                thread_cpu_ns().saturating_sub(started)
            })
            .min()
            .unwrap_or(0);
    }
    let overhead = EMPTY_INTERVAL_NS.with(|ns| *ns);
    let started = thread_cpu_ns();
    let token = calibrate_wait(from);
    let spent = thread_cpu_ns().saturating_sub(started).saturating_sub(overhead);
    clock.fetch_add(spent, Ordering::Relaxed);
    token
}

/// Blocks until the other thread of the pair sends the token.
#[inline(never)]
pub fn calibrate_wait(from: &mpsc::Receiver<()>) -> Result<(), mpsc::RecvError> {
    let token = from.recv();
    // Used after the call, so that the call is not a tail call: a jump would leave no frame of this function on
    // the stack for a profiler to see.
    std::hint::black_box(&token);
    token
}

/// The thread that runs [`calibrate_syscalls`], one job at a time, in a directory of its own under the system's
/// temporary directory (removed when the app drops its state).
fn start_syscall_thread(clocks: Arc<CalibrationClocks>) -> Result<JobThread, String> {
    let dir = std::env::temp_dir().join(format!("drift-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (jobs, incoming) = mpsc::channel::<Job>();
    // The thread holds the clocks weakly: the state owns it, and when the state is dropped the channel closes.
    let clocks = Arc::downgrade(&clocks);
    std::thread::Builder::new()
        .name(SYSCALL_THREAD.into())
        .spawn(move || {
            let path = dir.join("round");
            for (units, done) in incoming {
                let written = match clocks.upgrade() {
                    Some(clocks) => timed(&clocks.syscalls, || calibrate_syscalls(&path, units)),
                    None => break,
                };
                let _ = done.send(written.map_err(|e| format!("calibrate_syscalls in {}: {e}", dir.display())));
            }
            let _ = std::fs::remove_dir_all(&dir);
        })
        .map_err(|e| format!("starting the {SYSCALL_THREAD} thread: {e}"))?;
    Ok(JobThread {
        name: SYSCALL_THREAD,
        jobs: Mutex::new(jobs),
    })
}

/// `units` rounds of: create `path`, write [`SYSCALL_WRITE_BYTES`], close, unlink. Returns the bytes written.
#[inline(never)]
pub fn calibrate_syscalls(path: &std::path::Path, units: u64) -> std::io::Result<u64> {
    use std::io::Write as _;
    let line = [b'x'; SYSCALL_WRITE_BYTES];
    for _ in 0..units {
        let mut file = std::fs::File::create(path)?;
        file.write_all(&line)?;
        drop(file);
        std::fs::remove_file(path)?;
    }
    Ok(units * SYSCALL_WRITE_BYTES as u64)
}

fn parse_syscall_query(query: &str) -> Result<u64, String> {
    let mut units = DEFAULT_SYSCALL_UNITS;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("units", value)) => {
                units = value
                    .parse()
                    .ok()
                    .filter(|u| (1..=MAX_SYSCALL_UNITS).contains(u))
                    .ok_or_else(|| format!("units must be an integer from 1 to {MAX_SYSCALL_UNITS}, not {value:?}"))?;
            }
            _ => return Err(format!("unknown parameter {pair:?}; use units")),
        }
    }
    Ok(units)
}

fn parse_query(query: &str) -> Result<(u64, [u64; 3]), String> {
    let mut units = DEFAULT_UNITS;
    let mut ratio = DEFAULT_RATIO;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "units" => {
                units = value
                    .parse()
                    .ok()
                    .filter(|u| (1..=MAX_UNITS).contains(u))
                    .ok_or_else(|| format!("units must be an integer from 1 to {MAX_UNITS}, not {value:?}"))?;
            }
            "ratio" => {
                let parts: Vec<u64> = value
                    .split([',', '%'])
                    .filter(|p| !p.is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("ratio must be three integers like 60,30,10, not {value:?}"))?;
                ratio = <[u64; 3]>::try_from(parts)
                    .ok()
                    .filter(|r| r.iter().sum::<u64>() == 100)
                    .ok_or_else(|| format!("ratio must be three integers adding up to 100, not {value:?}"))?;
            }
            other => return Err(format!("unknown parameter {other:?}; use units and ratio")),
        }
    }
    Ok((units, ratio))
}

/// The loop every calibration function runs: a xorshift-multiply chain the optimiser cannot shorten. Each function
/// passes its own odd multiplier: the same cost per iteration, but different machine code, so the linker cannot
/// fold the three into one symbol (identical code folding would give all their samples to one name).
macro_rules! burn {
    ($iterations:expr, $multiplier:expr) => {{
        let mut x: u64 = std::hint::black_box(0x9E37_79B9_7F4A_7C15);
        for _ in 0..$iterations {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = x.wrapping_mul($multiplier);
            x = std::hint::black_box(x);
        }
        x
    }};
}

/// 60 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_sixty(iterations: u64) -> u64 {
    burn!(iterations, 0x2545_F491_4F6C_DD1D)
}

/// 30 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_thirty(iterations: u64) -> u64 {
    burn!(iterations, 0x9FB2_1C65_1E98_DF25)
}

/// 10 % of the calibration work by default.
#[inline(never)]
pub fn calibrate_ten(iterations: u64) -> u64 {
    burn!(iterations, 0xD6E8_FEB8_6659_FD93)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(parse_query(""), Ok((DEFAULT_UNITS, DEFAULT_RATIO)));
        assert_eq!(parse_query("units=5&ratio=50,25,25"), Ok((5, [50, 25, 25])));
        assert!(parse_query("units=0").unwrap_err().contains("units"));
        assert!(parse_query("units=100001").unwrap_err().contains("units"));
        assert!(parse_query("ratio=60,30").unwrap_err().contains("three"));
        assert!(parse_query("ratio=60,30,20").unwrap_err().contains("100"));
        assert!(parse_query("ratio=a,b,c").unwrap_err().contains("ratio"));
        assert!(parse_query("seconds=1").unwrap_err().contains("unknown"));
    }

    #[test]
    fn syscall_units_are_bounded() {
        assert_eq!(parse_syscall_query(""), Ok(DEFAULT_SYSCALL_UNITS));
        assert_eq!(parse_syscall_query("units=7"), Ok(7));
        assert!(parse_syscall_query("units=0").unwrap_err().contains("units"));
        assert!(parse_syscall_query("units=10001").unwrap_err().contains("units"));
        assert!(parse_syscall_query("ratio=1").unwrap_err().contains("unknown"));
    }

    #[test]
    fn the_syscall_rounds_leave_no_file_and_are_timed() {
        let dir = tempfile::tempdir().unwrap();
        let clocks = CalibrationClocks::default();
        let written = timed(&clocks.syscalls, || calibrate_syscalls(&dir.path().join("f"), 20)).unwrap();
        assert_eq!(written, 20 * SYSCALL_WRITE_BYTES as u64);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let seconds = clocks.seconds();
        assert_eq!(seconds.len(), 1);
        assert_eq!(seconds[0].function, "demo_app::calibrate::calibrate_syscalls");
        assert!(seconds[0].cpu_seconds > 0.0);
        assert!(seconds[0].exact);
    }

    #[test]
    fn the_three_functions_are_distinct_code() {
        // Different multipliers: different results, so no two can be folded into one symbol.
        let results = [calibrate_sixty(1000), calibrate_thirty(1000), calibrate_ten(1000)];
        assert!(results[0] != results[1] && results[1] != results[2] && results[0] != results[2]);
        assert_ne!(calibrate_ten(1000), calibrate_ten(1001));
        let addresses = [calibrate_sixty as fn(u64) -> u64, calibrate_thirty, calibrate_ten].map(|f| f as usize);
        assert!(addresses[0] != addresses[1] && addresses[1] != addresses[2]);
    }
}
