//! [`CpuSampler`]: pprof-rs's SIGPROF handler and unwinder, driven by one CPU-time timer per thread.
//!
//! # Why not pprof-rs's own timer
//!
//! pprof-rs arms one process-wide `setitimer(ITIMER_PROF)`. The kernel counts the process's CPU time and sends the
//! process a SIGPROF every period, which it then hands to a thread of its choosing — not in proportion to each
//! thread's CPU time. Measured on this project's 2-core VM, the SDK's export thread (most of its time in `open` and
//! `write`) got 6–13 points fewer samples than its share of the process's CPU by its own clock (golang/go#14434 shows
//! the same skew; Go 1.18 moved to per-thread timers for it, golang/go#35057).
//!
//! # What the sampler does instead
//!
//! - It starts pprof-rs at a frequency above 1 MHz ([`PPROF_DISARMED_FREQUENCY`]): pprof's `setitimer` interval
//!   rounds down to zero microseconds, which *disarms* the process-wide timer, while pprof's signal handler, unwinder
//!   and collector stay installed. The report's frequency is set back to the real one before anyone reads it.
//! - A thread of its own, `drift-sampler`, lists `/proc/self/task` every [`SCAN_INTERVAL`]. For every thread it has
//!   not seen, it creates a POSIX timer on **that thread's CPU-time clock** which sends SIGPROF to **that thread**
//!   (`SIGEV_THREAD_ID`) every 1/hz seconds of the thread's own CPU time, the first one at a random point of the first
//!   period (as Go does, so short-lived threads are not biased). A thread is then sampled in proportion to its own
//!   CPU time, system calls included: the signal is handled when the thread returns to user mode, so a sample taken
//!   during a system call shows the stack that made it.
//! - At each scan it reads every thread's clock, so a thread that exits keeps its last reading, and it reads them
//!   all once more when the profile stops: [`ThreadCpu`], the truth the samples are checked against.
//!
//! # What it cannot see
//!
//! - CPU a thread spends before its timer is armed: a thread started during the profile runs up to one scan
//!   interval unsampled. That time is counted ([`ThreadCpu::unarmed_seconds`]), not hidden.
//! - Two samples at the same instant on two cores: pprof-rs's handler takes its process-wide lock with `try_write`
//!   and drops the sample that finds it taken. The capture ratio (samples ÷ (CPU seconds × Hz)) shows the loss.
//!
//! Linux only: the per-thread clocks and `SIGEV_THREAD_ID` are Linux's.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::{ClockId, clock_gettime};
use pprof::{ProfilerGuard, ProfilerGuardBuilder, Report};

/// How often the sampler looks for new threads (and reads every thread's clock).
pub const SCAN_INTERVAL: Duration = Duration::from_millis(10);

/// The frequency pprof-rs is started at: above 1 MHz its `setitimer` interval is 0 µs, which disarms the
/// process-wide timer and leaves pprof's signal handler in place for the per-thread timers.
pub const PPROF_DISARMED_FREQUENCY: i32 = 1_000_001;

/// The name of the sampler's own thread. It is sampled like every other thread (its CPU is the profiler's).
pub const SAMPLER_THREAD: &str = "drift-sampler";

/// What can stop a profile from starting or ending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// Another CPU profiler runs in this process (pprof-rs's profiler is process-wide). Wait for it to finish.
    #[error("another CPU profiler is running in this process (one per process)")]
    Running,
    /// pprof-rs could not start or build its report.
    #[error("pprof: {0}")]
    Pprof(String),
    /// The process's threads could not be listed or armed (no `/proc`, or the kernel refused a timer).
    #[error("arming the per-thread CPU timers: {0}")]
    Timers(String),
}

/// One thread's CPU time over a profile, by its own clock (`CLOCK_THREAD_CPUTIME_ID`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadCpu {
    /// The kernel's thread id.
    pub tid: i32,
    /// The thread's name (`/proc/self/task/TID/comm`, at most 15 bytes: the name samples carry).
    pub name: String,
    /// CPU seconds (user + system) the thread ran during the profile.
    pub cpu_seconds: f64,
    /// Of [`cpu_seconds`](Self::cpu_seconds), those before its timer was armed (a thread started during the
    /// profile), which no sample can show; 0 for threads armed at the start.
    pub unarmed_seconds: f64,
}

/// A finished profile: pprof-rs's report (at the real frequency) and every thread's CPU time.
pub struct CpuProfile {
    /// The samples.
    pub report: Report,
    /// Every thread that ran during the profile, most CPU first.
    pub threads: Vec<ThreadCpu>,
    /// From start to stop, in seconds.
    pub wall_seconds: f64,
}

impl std::fmt::Debug for CpuProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuProfile")
            .field("samples", &super::samples(&self.report))
            .field("threads", &self.threads)
            .field("wall_seconds", &self.wall_seconds)
            .finish()
    }
}

/// A running CPU profile of the whole process. [`CpuSampler::finish`] stops it and returns the samples.
pub struct CpuSampler {
    hz: i32,
    guard: ProfilerGuard<'static>,
    stop: mpsc::Sender<()>,
    arming: JoinHandle<Vec<ThreadCpu>>,
    started: Instant,
}

impl std::fmt::Debug for CpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuSampler").field("hz", &self.hz).finish_non_exhaustive()
    }
}

impl CpuSampler {
    /// Installs pprof-rs's handler and arms a timer on every thread of the process, `hz` samples per second of each
    /// thread's CPU time (1 to 1,000,000). Returns once every thread present is armed.
    pub fn start(hz: i32) -> Result<CpuSampler, SamplerError> {
        if !(1..PPROF_DISARMED_FREQUENCY).contains(&hz) {
            return Err(SamplerError::Timers(format!("{hz} Hz is outside 1..{PPROF_DISARMED_FREQUENCY}")));
        }
        let guard = ProfilerGuardBuilder::default()
            .frequency(PPROF_DISARMED_FREQUENCY)
            .build()
            .map_err(|e| match e {
                pprof::Error::Running => SamplerError::Running,
                e => SamplerError::Pprof(format!("starting the profiler: {e}")),
            })?;
        let period = Duration::from_nanos(1_000_000_000 / hz as u64);
        let (stop, stopped) = mpsc::channel();
        let (ready, armed) = mpsc::channel();
        let arming = std::thread::Builder::new()
            .name(SAMPLER_THREAD.into())
            .spawn(move || arm_threads(period, &ready, &stopped))
            .map_err(|e| SamplerError::Timers(format!("starting the {SAMPLER_THREAD} thread: {e}")))?;
        match armed.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = arming.join();
                return Err(e);
            }
            Err(_) => {
                return Err(SamplerError::Timers(format!("the {SAMPLER_THREAD} thread ended before arming")));
            }
        }
        Ok(CpuSampler {
            hz,
            guard,
            stop,
            arming,
            started: Instant::now(),
        })
    }

    /// The sampling frequency, per second of each thread's CPU time.
    pub fn hz(&self) -> i32 {
        self.hz
    }

    /// Disarms every timer, reads every thread's clock, then builds the report (symbolisation runs here, after the
    /// profile, and is not in it).
    pub fn finish(self) -> Result<CpuProfile, SamplerError> {
        let wall_seconds = self.started.elapsed().as_secs_f64();
        drop(self.stop);
        let threads = self
            .arming
            .join()
            .map_err(|_| SamplerError::Timers(format!("the {SAMPLER_THREAD} thread panicked")))?;
        let mut report = self
            .guard
            .report()
            .build()
            .map_err(|e| SamplerError::Pprof(format!("building the report: {e}")))?;
        drop(self.guard);
        report.timing.frequency = self.hz;
        Ok(CpuProfile {
            report,
            threads,
            wall_seconds,
        })
    }
}

/// A thread the sampler has seen.
struct Tracked {
    name: String,
    /// `None` once the thread is gone (its timer is deleted), or when the kernel refused one.
    timer: Option<Timer>,
    /// The clock's reading the profile counts from: at the first scan for threads already running, 0 for threads
    /// started later (a new thread's clock starts at 0).
    baseline_ns: u64,
    /// The clock's reading when the timer was armed.
    armed_ns: u64,
    /// The latest reading.
    last_ns: u64,
}

/// The `drift-sampler` thread: arms the threads present, tells `ready`, then scans until `stop` is dropped.
fn arm_threads(
    period: Duration,
    ready: &mpsc::Sender<Result<(), SamplerError>>,
    stop: &mpsc::Receiver<()>,
) -> Vec<ThreadCpu> {
    let mut threads: BTreeMap<i32, Tracked> = BTreeMap::new();
    match scan(&mut threads, period, true) {
        Ok(()) => {
            let _ = ready.send(Ok(()));
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Vec::new();
        }
    }
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(SCAN_INTERVAL) {
        // A failed listing now is transient (the profile is running): the next scan tries again.
        let _ = scan(&mut threads, period, false);
    }
    // The end: read every live thread's clock, then disarm at once.
    for (&tid, thread) in threads.iter_mut().filter(|(_, t)| t.timer.is_some()) {
        if let Some(ns) = thread_cpu_ns(tid) {
            thread.last_ns = ns;
        }
        thread.timer = None;
        if let Some(name) = thread_name(tid) {
            thread.name = name;
        }
    }
    let mut out: Vec<ThreadCpu> = threads
        .into_iter()
        .map(|(tid, t)| ThreadCpu {
            tid,
            name: t.name,
            cpu_seconds: t.last_ns.saturating_sub(t.baseline_ns) as f64 / 1e9,
            unarmed_seconds: t.armed_ns.saturating_sub(t.baseline_ns) as f64 / 1e9,
        })
        .collect();
    out.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds).then(a.tid.cmp(&b.tid)));
    out
}

/// One look at `/proc/self/task`: arms new threads, reads every live thread's clock, deletes the timers of threads
/// that are gone.
fn scan(threads: &mut BTreeMap<i32, Tracked>, period: Duration, first: bool) -> Result<(), SamplerError> {
    let listing = std::fs::read_dir("/proc/self/task")
        .map_err(|e| SamplerError::Timers(format!("listing /proc/self/task: {e}")))?;
    let mut present = Vec::new();
    for entry in listing.flatten() {
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            present.push(tid);
        }
    }
    present.sort_unstable();
    for &tid in &present {
        match threads.get_mut(&tid) {
            Some(thread) if thread.timer.is_some() => {
                if let Some(ns) = thread_cpu_ns(tid) {
                    thread.last_ns = ns;
                }
            }
            // A thread that was gone, or refused a timer: nothing more to learn.
            Some(_) => {}
            None => {
                let Some(now_ns) = thread_cpu_ns(tid) else {
                    continue; // gone between the listing and the clock
                };
                let timer = match arm(tid, period) {
                    Ok(timer) => Some(timer),
                    // The thread exited in between.
                    Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ESRCH) => continue,
                    Err(e) if first => {
                        return Err(SamplerError::Timers(format!("a CPU-time timer for thread {tid}: {e}")));
                    }
                    Err(_) => None,
                };
                threads.insert(
                    tid,
                    Tracked {
                        name: thread_name(tid).unwrap_or_else(|| tid.to_string()),
                        timer,
                        baseline_ns: if first { now_ns } else { 0 },
                        armed_ns: now_ns,
                        last_ns: now_ns,
                    },
                );
            }
        }
    }
    for (tid, thread) in threads.iter_mut() {
        if thread.timer.is_some() && present.binary_search(tid).is_err() {
            thread.timer = None;
        }
    }
    Ok(())
}

/// A timer on `tid`'s CPU-time clock that sends SIGPROF to `tid` every `period` of its CPU time, the first at a
/// random point of the first period.
fn arm(tid: i32, period: Duration) -> nix::Result<Timer> {
    let event = SigEvent::new(SigevNotify::SigevThreadId {
        signal: Signal::SIGPROF,
        thread_id: tid,
        si_value: 0,
    });
    let mut timer = Timer::new(thread_clock(tid), event)?;
    let period_ns = period.as_nanos().max(1) as u64;
    let first = Duration::from_nanos(1 + fastrand::u64(0..period_ns));
    timer.set(
        Expiration::IntervalDelayed(TimeSpec::from_duration(first), TimeSpec::from_duration(period)),
        TimerSetTimeFlags::empty(),
    )?;
    Ok(timer)
}

/// The CPU-time clock of thread `tid` of this process: the kernel's `MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`,
/// what glibc's `pthread_getcpuclockid` returns.
fn thread_clock(tid: i32) -> ClockId {
    const CPUCLOCK_SCHED: u32 = 2;
    const CPUCLOCK_PERTHREAD_MASK: u32 = 4;
    ClockId::from_raw(((!(tid as u32) << 3) | CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED) as i32)
}

/// Thread `tid`'s CPU time so far, in nanoseconds; `None` once it is gone.
fn thread_cpu_ns(tid: i32) -> Option<u64> {
    let t = clock_gettime(thread_clock(tid)).ok()?;
    Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

fn thread_name(tid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(name.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use super::*;

    /// This thread's CPU time by its own clock.
    fn own_cpu_seconds() -> f64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    }

    /// Samples per thread name.
    fn samples_by_thread(report: &Report) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for (frames, &count) in &report.data {
            *out.entry(frames.thread_name_or_id()).or_default() += count.max(0) as u64;
        }
        out
    }

    /// Go's `TestCPUProfileMultithreadMagnitude`, with the case that a process-wide timer gets wrong here: one
    /// thread in a user-space loop, one in file system calls, each started after the profile (so both must be armed
    /// by a scan). Each thread's samples must be its own CPU time × Hz; a process-wide `setitimer` gave the system-
    /// call thread 40–49 % of the samples for 50 % of the CPU on this project's VM.
    #[test]
    fn each_thread_is_sampled_in_proportion_to_its_own_cpu_time() {
        let _one_profiler = super::super::tests::PPROF.lock().unwrap_or_else(|e| e.into_inner());
        const CPU_SECONDS: f64 = 0.6;
        let sampler = CpuSampler::start(99).unwrap();
        let user = std::thread::Builder::new()
            .name("calib-user".into())
            .spawn(|| {
                let mut x = 1u64;
                while own_cpu_seconds() < CPU_SECONDS {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                }
                x
            })
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let syscalls = std::thread::Builder::new()
            .name("calib-syscalls".into())
            .spawn(move || {
                while own_cpu_seconds() < CPU_SECONDS {
                    let mut f = std::fs::File::create(&path).unwrap();
                    f.write_all(&[7u8; 2500]).unwrap();
                    drop(f);
                    std::fs::remove_file(&path).unwrap();
                }
            })
            .unwrap();
        user.join().unwrap();
        syscalls.join().unwrap();
        let profile = sampler.finish().unwrap();
        assert_eq!(profile.report.timing.frequency, 99, "the report's frequency is the real one");
        let samples = samples_by_thread(&profile.report);
        for name in ["calib-user", "calib-syscalls"] {
            let thread = profile.threads.iter().find(|t| t.name == name).unwrap();
            // The last reading of a thread that exited is from the scan before: up to one interval short.
            assert!(
                (CPU_SECONDS - 2.0 * SCAN_INTERVAL.as_secs_f64()..CPU_SECONDS + 0.05).contains(&thread.cpu_seconds),
                "{name}'s clock: {thread:?}"
            );
            assert!(thread.unarmed_seconds < 0.05, "armed within a scan or so: {thread:?}");
            let expected = (thread.cpu_seconds - thread.unarmed_seconds) * 99.0;
            let got = samples.get(name).copied().unwrap_or(0) as f64;
            assert!(
                (got - expected).abs() <= 0.1 * expected + 2.0,
                "{name}: {got} samples for {expected:.1} expected ({thread:?}, all: {samples:?})"
            );
        }
        let total: u64 = samples.values().sum();
        let clocks: f64 = profile.threads.iter().map(|t| t.cpu_seconds - t.unarmed_seconds).sum();
        assert!(
            total as f64 <= clocks * 99.0 * 1.05 + 3.0,
            "no samples beyond the per-thread timers' (the process-wide timer is off): {total} for {clocks:.3} s"
        );
    }

    #[test]
    fn the_thread_clock_is_the_one_the_thread_reads_itself() {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let own = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
        };
        let before = own();
        let by_tid = thread_cpu_ns(tid).unwrap();
        let after = own();
        assert!(before <= by_tid && by_tid <= after, "{before} ≤ {by_tid} ≤ {after}");
        // Above the kernel's largest pid_max (2^22): no such thread.
        assert_eq!(thread_cpu_ns(4_194_305), None, "no such thread");
    }
}
