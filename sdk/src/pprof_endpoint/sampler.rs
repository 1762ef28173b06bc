//! [`CpuSampler`]: one CPU-time timer per thread, a lock-free SIGPROF handler, and the threads' own clocks.
//!
//! # Why not pprof-rs
//!
//! pprof-rs arms one process-wide `setitimer(ITIMER_PROF)`. The kernel counts the process's CPU time and sends the
//! process a SIGPROF every period, which it then hands to a thread of its choosing — not in proportion to each
//! thread's CPU time. Measured on this project's 2-core VM, the SDK's export thread (most of its time in `open` and
//! `write`) got 6–13 points fewer samples than its share of the process's CPU by its own clock (golang/go#14434 shows
//! the same skew; Go 1.18 moved to per-thread timers for it, golang/go#35057). Driving pprof-rs's handler with
//! per-thread timers instead fixed the routing but not the handler: it takes a process-wide lock with `try_write`
//! and drops the sample that finds it taken, and two threads' timers often fire at the same kernel tick (3–18 % of
//! the samples lost with two busy threads, more of the one in a system call).
//!
//! # What the sampler does
//!
//! - Its handler (`signal.rs`) takes no lock: it writes the interrupted program counter and the unwound return
//!   addresses into a slot of a fixed ring, and the `drift-sampler` thread drains the ring every [`SCAN_INTERVAL`].
//! - The same thread lists `/proc/self/task` every other scan. For every thread it has not seen, it creates a POSIX
//!   timer on **that thread's CPU-time clock** which sends SIGPROF to **that thread** (`SIGEV_THREAD_ID`) every 1/hz
//!   seconds of the thread's own CPU time, the first one at a random point of the first period (as Go does, so
//!   short-lived threads are not biased). A thread is then sampled in proportion to its own CPU time, system calls
//!   included: the signal is handled when the thread returns to user mode, so a sample taken during a system call
//!   shows the stack that made it.
//! - At each scan it reads every thread's clock, so a thread that exits keeps its last reading, and it reads them
//!   all once more when the profile stops: [`ThreadCpu`], the truth the samples are checked against.
//! - Symbolisation (backtrace-rs, with inlined frames) runs after the profile, in [`CpuSampler::finish`].
//!
//! # What it cannot see
//!
//! - CPU a thread spends before its timer is armed: a thread started during the profile runs up to 50 ms
//!   unsampled. That time is counted ([`ThreadCpu::unarmed_seconds`]), not hidden.
//! - A thread's last few milliseconds before it exits (its clock is read at each scan, not at its exit).
//! - Samples beyond the ring's room between two scans (512: at 99 Hz, 50 busy threads' worth of 100 ms), counted
//!   in [`CpuProfile::dropped_samples`].
//! - The kernel's frames: a sample shows the user-space stack that made the system call.
//!
//! Linux only: the per-thread clocks and `SIGEV_THREAD_ID` are Linux's.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigEvent, SigevNotify, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::{ClockId, clock_gettime};

use super::MAX_HZ;
use super::proto::{self, Region};
use super::signal::{Claim, ClaimError, MAX_FRAMES, RawSample};
use super::symbols::{self, Symbols};

/// How often the sampler reads every thread's clock and drains the samples; every [`LISTS_EVERY`] scans it also
/// lists the process's threads and arms the new ones (reading a procfs directory is the sampler thread's largest
/// cost).
///
/// Each wake-up of the sampler thread costs (a timed futex wait on a loaded 2-core VM, and 512 slots of the ring to
/// look at): every 10 ms, listing each time, cost it 0.5–1.4 % of the app's CPU in seed runs; every 25 ms, listing
/// every other time, 0.4–0.5 %.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(25);
/// Scans between two listings of `/proc/self/task`: a new thread runs at most this many [`SCAN_INTERVAL`]s unarmed.
pub const LISTS_EVERY: u32 = 2;

/// The name of the sampler's own thread. It is sampled like every other thread (its CPU is the profiler's).
pub const SAMPLER_THREAD: &str = "drift-sampler";

/// What can stop a profile from starting or ending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// Another CPU profile runs in this process (SIGPROF has one handler). Wait for it to finish.
    #[error("another CPU profiler is running in this process (one per process)")]
    Running,
    /// A setting the sampler cannot use.
    #[error("invalid sampler setting: {0}")]
    Config(String),
    /// The signal handler, the process's threads or their timers could not be set up (no `/proc`, or the kernel
    /// refused a timer).
    #[error("setting up the CPU sampler: {0}")]
    Setup(String),
}

/// One thread's CPU time over a profile, by its own clock (`CLOCK_THREAD_CPUTIME_ID`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadCpu {
    /// The kernel's thread id.
    pub tid: i32,
    /// The thread's name (`/proc/self/task/TID/comm`, at most 15 bytes), the name its samples carry.
    pub name: String,
    /// CPU seconds (user + system) the thread ran during the profile.
    pub cpu_seconds: f64,
    /// Of [`cpu_seconds`](Self::cpu_seconds), those before its timer was armed (a thread started during the
    /// profile), which no sample can show; 0 for threads armed at the start.
    pub unarmed_seconds: f64,
}

/// A finished profile: the samples, symbolised, and every thread's CPU time.
pub struct CpuProfile {
    /// Samples per second of each thread's CPU time.
    pub hz: i32,
    /// Every thread that ran during the profile, most CPU first.
    pub threads: Vec<ThreadCpu>,
    /// From start to stop, in seconds.
    pub wall_seconds: f64,
    /// `CLOCK_MONOTONIC` seconds when every thread present was armed and when the timers were disarmed: the
    /// window the samples and the clocks cover, on the clock `perf record -k CLOCK_MONOTONIC` stamps samples with.
    pub monotonic_window: (f64, f64),
    /// Signals handled: distinct samples. [`samples`](Self::samples) counts periods: each signal stands for one,
    /// plus its timer's overruns.
    pub signals: u64,
    /// Periods that arrived as overruns of a signal rather than as signals of their own (a thread's timer is
    /// checked at kernel ticks that find it running; one that runs in short bursts can pass two expiries before a
    /// tick notices). Included in [`samples`](Self::samples), with the stack of the signal that carried them.
    pub overrun_periods: u64,
    /// Samples lost because the ring was full (the drainer fell behind).
    pub dropped_samples: u64,
    /// Wall seconds spent in the signal handler, summed over its calls: the sampler's cost on the sampled threads
    /// (the `drift-sampler` thread's own cost is its [`ThreadCpu`] row).
    pub handler_seconds: f64,
    /// Samples whose stack could not be unwound past the signal frame: they keep only the interrupted function.
    pub leaf_only_samples: u64,
    /// Samples whose stack was deeper than the handler keeps: they lost their outermost frames.
    pub truncated_samples: u64,
    started: SystemTime,
    /// (thread name, addresses leaf first, count), one entry per distinct pair.
    stacks: Vec<(String, Vec<usize>, u64)>,
    symbols: Symbols,
    regions: Vec<Region>,
}

impl std::fmt::Debug for CpuProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuProfile")
            .field("hz", &self.hz)
            .field("samples", &self.samples())
            .field("threads", &self.threads)
            .field("wall_seconds", &self.wall_seconds)
            .field("dropped_samples", &self.dropped_samples)
            .finish_non_exhaustive()
    }
}

impl CpuProfile {
    /// All samples, in timer periods (1/hz seconds of a thread's CPU each): signals plus their overruns.
    pub fn samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.2).sum()
    }

    /// Samples per thread name.
    pub fn samples_by_thread(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for (thread, _, count) in &self.stacks {
            *out.entry(thread.as_str()).or_default() += count;
        }
        out
    }

    /// Folded stacks: `thread;root;…;leaf COUNT`, one line per distinct stack, sorted, each ending in a newline.
    /// Inlined frames appear as frames of their own (outermost first); `;` in a name becomes `,`, line breaks
    /// spaces.
    pub fn folded(&self) -> String {
        symbols::folded(self.entries(), &self.symbols)
    }

    /// The pprof protobuf (uncompressed): `samples/count` and `cpu/nanoseconds` per sample, a `thread` label, real
    /// addresses with their inlined frames, and the process's executable mappings.
    pub fn protobuf(&self) -> Vec<u8> {
        let comments = [format!(
            "drift-sdk CpuSampler: one CPU-time timer per thread at {} Hz; {} signals, {} periods as timer overruns, \
             {} samples dropped, {} unwound to the interrupted function only",
            self.hz, self.signals, self.overrun_periods, self.dropped_samples, self.leaf_only_samples
        )];
        proto::encode(proto::Input {
            stacks: self.entries(),
            symbols: &self.symbols,
            regions: &self.regions,
            hz: self.hz,
            started: self.started,
            duration_nanos: (self.wall_seconds * 1e9) as i64,
            comments: &comments,
        })
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &[usize], u64)> {
        self.stacks.iter().map(|(t, a, n)| (t.as_str(), a.as_slice(), *n))
    }
}

/// A running CPU profile of the whole process. [`CpuSampler::finish`] stops it and returns the samples.
pub struct CpuSampler {
    hz: i32,
    stop: mpsc::Sender<()>,
    scanning: JoinHandle<Scanned>,
    started: Instant,
    started_at: SystemTime,
    started_monotonic: f64,
}

impl std::fmt::Debug for CpuSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuSampler")
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

impl CpuSampler {
    /// Installs the SIGPROF handler and arms a timer on every thread of the process, `hz` samples per second of
    /// each thread's CPU time (1 to [`MAX_HZ`]). Returns once every thread present is armed.
    pub fn start(hz: i32) -> Result<CpuSampler, SamplerError> {
        if !(1..=MAX_HZ).contains(&hz) {
            return Err(SamplerError::Config(format!(
                "{hz} Hz is outside 1..={MAX_HZ} (a thread's CPU-time timer fires at most once per kernel tick)"
            )));
        }
        let claim = Claim::new().map_err(|e| match e {
            ClaimError::Taken | ClaimError::Busy => SamplerError::Running,
            ClaimError::Install(e) => SamplerError::Setup(format!("installing the SIGPROF handler: {e}")),
        })?;
        let period = Duration::from_nanos(1_000_000_000 / hz as u64);
        let (stop, stopped) = mpsc::channel();
        let (ready, armed) = mpsc::channel();
        let scanning = std::thread::Builder::new()
            .name(SAMPLER_THREAD.into())
            .spawn(move || scan_until_stopped(claim, period, &ready, &stopped))
            .map_err(|e| SamplerError::Setup(format!("starting the {SAMPLER_THREAD} thread: {e}")))?;
        match armed.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = scanning.join();
                return Err(e);
            }
            Err(_) => {
                let _ = scanning.join();
                return Err(SamplerError::Setup(format!(
                    "the {SAMPLER_THREAD} thread ended before arming"
                )));
            }
        }
        Ok(CpuSampler {
            hz,
            stop,
            scanning,
            started: Instant::now(),
            started_at: SystemTime::now(),
            started_monotonic: monotonic_seconds(),
        })
    }

    /// The sampling frequency, per second of each thread's CPU time.
    pub fn hz(&self) -> i32 {
        self.hz
    }

    /// Disarms every timer, reads every thread's clock, drains the last samples, gives SIGPROF back, then
    /// symbolises (that work runs after the profile and is not in it).
    pub fn finish(self) -> Result<CpuProfile, SamplerError> {
        let wall_seconds = self.started.elapsed().as_secs_f64();
        drop(self.stop);
        let scanned = self
            .scanning
            .join()
            .map_err(|_| SamplerError::Setup(format!("the {SAMPLER_THREAD} thread panicked")))?;
        let names: HashMap<i32, &str> = scanned.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
        let mut by_name: HashMap<(String, Vec<usize>), u64> = HashMap::new();
        for ((tid, addresses), count) in scanned.samples.stacks {
            let name = names.get(&tid).map_or_else(|| tid.to_string(), |n| (*n).to_owned());
            *by_name.entry((name, addresses)).or_default() += count;
        }
        let mut stacks: Vec<(String, Vec<usize>, u64)> = by_name.into_iter().map(|((t, a), n)| (t, a, n)).collect();
        stacks.sort_unstable();
        let symbols = Symbols::resolve(stacks.iter().flat_map(|s| s.1.iter()));
        Ok(CpuProfile {
            hz: self.hz,
            threads: scanned.threads,
            wall_seconds,
            monotonic_window: (self.started_monotonic, scanned.disarmed_monotonic),
            signals: scanned.samples.signals,
            overrun_periods: scanned.samples.overrun_periods,
            dropped_samples: scanned.samples.dropped,
            handler_seconds: scanned.samples.handler_ns as f64 / 1e9,
            leaf_only_samples: scanned.samples.leaf_only,
            truncated_samples: scanned.samples.truncated,
            started: self.started_at,
            stacks,
            symbols,
            regions: proto::executable_regions(),
        })
    }
}

/// The samples drained so far.
#[derive(Default)]
struct Samples {
    /// (thread id, addresses leaf first) → count. The leaf is the interrupted instruction; the others are
    /// return addresses minus one (inside the call instruction), so that each symbolises to its call site.
    stacks: HashMap<(i32, Vec<usize>), u64>,
    dropped: u64,
    leaf_only: u64,
    truncated: u64,
    signals: u64,
    overrun_periods: u64,
    handler_ns: u64,
}

impl Samples {
    fn add(&mut self, raw: RawSample<'_>) {
        // The handler's own frames and the signal trampoline come first; the interrupted frame is the one whose
        // address is the interrupted instruction.
        let stack = match raw.frames.iter().position(|&ip| ip == raw.pc) {
            Some(k) => {
                let mut stack = Vec::with_capacity(raw.frames.len() - k);
                stack.push(raw.pc);
                stack.extend(raw.frames[k + 1..].iter().filter(|&&ip| ip > 1).map(|&ip| ip - 1));
                stack
            }
            None => {
                self.leaf_only += 1;
                vec![raw.pc]
            }
        };
        if raw.frames.len() == MAX_FRAMES {
            self.truncated += 1;
        }
        self.signals += 1;
        self.handler_ns += u64::from(raw.handler_ns);
        self.overrun_periods += u64::from(raw.weight.saturating_sub(1));
        *self.stacks.entry((raw.tid, stack)).or_default() += u64::from(raw.weight.max(1));
    }
}

/// What the `drift-sampler` thread hands back.
struct Scanned {
    threads: Vec<ThreadCpu>,
    samples: Samples,
    /// `CLOCK_MONOTONIC` seconds when the timers were disarmed.
    disarmed_monotonic: f64,
}

/// A thread the sampler has seen.
struct Tracked {
    name: String,
    /// `None` once the thread is gone (its timer is deleted), or when the kernel refused one.
    timer: Option<Timer>,
    /// The thread has exited: a thread listed later under its id is another one.
    ended: bool,
    /// The clock's reading the profile counts from: at the first scan for threads already running, 0 for threads
    /// started later (a new thread's clock starts at 0).
    baseline_ns: u64,
    /// The clock's reading when the timer was armed.
    armed_ns: u64,
    /// The latest reading.
    last_ns: u64,
}

/// The `drift-sampler` thread: arms the threads present, tells `ready`, then scans and drains until `stop` is
/// dropped; then reads every clock, disarms, and gives SIGPROF back (dropping the claim).
fn scan_until_stopped(
    mut claim: Claim,
    period: Duration,
    ready: &mpsc::Sender<Result<(), SamplerError>>,
    stop: &mpsc::Receiver<()>,
) -> Scanned {
    let mut threads: BTreeMap<i32, Tracked> = BTreeMap::new();
    let mut retired: Vec<(i32, Tracked)> = Vec::new();
    let mut samples = Samples::default();
    claim.record(true);
    let scanned = TaskList::open()
        .and_then(|mut tasks| scan(&mut tasks, &mut threads, &mut retired, period, true).map(|()| tasks));
    let mut tasks = match scanned {
        Ok(tasks) => {
            let _ = ready.send(Ok(()));
            tasks
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Scanned {
                threads: Vec::new(),
                samples,
                disarmed_monotonic: monotonic_seconds(),
            };
        }
    };
    let mut scans: u32 = 0;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(SCAN_INTERVAL) {
        claim.drain(|raw| samples.add(raw));
        scans = scans.wrapping_add(1);
        if scans.is_multiple_of(LISTS_EVERY) {
            // A failed listing now is transient (the profile is running): the next one tries again.
            let _ = scan(&mut tasks, &mut threads, &mut retired, period, false);
        } else {
            read_clocks(&mut threads);
        }
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
    let disarmed_monotonic = monotonic_seconds();
    claim.record(false);
    claim.settle(Duration::from_millis(50));
    claim.drain(|raw| samples.add(raw));
    samples.dropped = claim.dropped();
    drop(claim);
    let mut out: Vec<ThreadCpu> = threads
        .into_iter()
        .chain(retired)
        .map(|(tid, t)| ThreadCpu {
            tid,
            name: t.name,
            cpu_seconds: t.last_ns.saturating_sub(t.baseline_ns) as f64 / 1e9,
            unarmed_seconds: t.armed_ns.saturating_sub(t.baseline_ns) as f64 / 1e9,
        })
        .collect();
    out.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds).then(a.tid.cmp(&b.tid)));
    Scanned {
        threads: out,
        samples,
        disarmed_monotonic,
    }
}

/// `CLOCK_MONOTONIC` now, in seconds: the handler's clock.
fn monotonic_seconds() -> f64 {
    super::signal::monotonic_ns() as f64 / 1e9
}

/// One look at `/proc/self/task`: arms new threads, reads every live thread's clock, deletes the timers of threads
/// that are gone.
fn scan(
    tasks: &mut TaskList,
    threads: &mut BTreeMap<i32, Tracked>,
    retired: &mut Vec<(i32, Tracked)>,
    period: Duration,
    first: bool,
) -> Result<(), SamplerError> {
    let present = tasks.list()?;
    for &tid in present {
        match threads.get_mut(&tid) {
            Some(thread) if thread.timer.is_some() => read_clock(tid, thread),
            // Refused a timer: nothing more to learn.
            Some(thread) if !thread.ended => {}
            // Its id is taken by a new thread: the old one is kept as it ended, the new one armed.
            Some(_) => {
                if let Some(old) = threads.remove(&tid) {
                    retired.push((tid, old));
                }
                arm_new(tid, threads, period, first)?;
            }
            None => arm_new(tid, threads, period, first)?,
        }
    }
    for (tid, thread) in threads.iter_mut() {
        if thread.timer.is_some() && present.binary_search(tid).is_err() {
            thread.timer = None;
            thread.ended = true;
        }
    }
    Ok(())
}

/// Arms the thread `tid`, seen for the first time, and starts tracking it.
fn arm_new(tid: i32, threads: &mut BTreeMap<i32, Tracked>, period: Duration, first: bool) -> Result<(), SamplerError> {
    let Some(now_ns) = thread_cpu_ns(tid) else {
        return Ok(()); // gone between the listing and the clock
    };
    let timer = match arm(tid, period) {
        Ok(timer) => Some(timer),
        // The thread exited in between.
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) if first => {
            return Err(SamplerError::Setup(format!("a CPU-time timer for thread {tid}: {e}")));
        }
        Err(_) => None,
    };
    threads.insert(
        tid,
        Tracked {
            name: thread_name(tid).unwrap_or_else(|| tid.to_string()),
            timer,
            ended: false,
            baseline_ns: if first { now_ns } else { 0 },
            armed_ns: now_ns,
            last_ns: now_ns,
        },
    );
    Ok(())
}

/// Every live thread's clock; a thread whose clock is gone has exited: its timer is deleted.
fn read_clocks(threads: &mut BTreeMap<i32, Tracked>) {
    for (&tid, thread) in threads.iter_mut().filter(|(_, t)| t.timer.is_some()) {
        read_clock(tid, thread);
    }
}

/// One live thread's clock. A clock that is gone, or that went back (its id taken by a new thread, whose clock
/// starts again from 0), ends the thread: its timer is deleted and the next listing arms whatever has the id now.
/// (A new thread whose clock is already past the old one's last reading is not told apart.)
fn read_clock(tid: i32, thread: &mut Tracked) {
    match thread_cpu_ns(tid) {
        Some(ns) if ns >= thread.last_ns => thread.last_ns = ns,
        _ => {
            thread.timer = None;
            thread.ended = true;
        }
    }
}

/// `/proc/self/task`, opened once and read again at each scan: opening a procfs directory costs more than reading it
/// (it was half the sampler thread's CPU when opened at every scan).
struct TaskList {
    dir: rustix::fs::Dir,
    /// The thread ids of the last listing, sorted.
    tids: Vec<i32>,
}

impl TaskList {
    fn open() -> Result<TaskList, SamplerError> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            "/proc/self/task",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SamplerError::Setup(format!("opening /proc/self/task: {e}")))?;
        let dir = rustix::fs::Dir::new(fd).map_err(|e| SamplerError::Setup(format!("reading /proc/self/task: {e}")))?;
        Ok(TaskList { dir, tids: Vec::new() })
    }

    /// The process's thread ids now, sorted.
    fn list(&mut self) -> Result<&[i32], SamplerError> {
        self.tids.clear();
        self.dir.rewind();
        while let Some(entry) = self.dir.read() {
            let entry = entry.map_err(|e| SamplerError::Setup(format!("listing /proc/self/task: {e}")))?;
            if let Some(tid) = entry.file_name().to_str().ok().and_then(|s| s.parse::<i32>().ok()) {
                self.tids.push(tid);
            }
        }
        self.tids.sort_unstable();
        Ok(&self.tids)
    }
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
    use std::io::Write as _;

    use super::*;

    /// This thread's CPU time by its own clock.
    fn own_cpu_seconds() -> f64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
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
        let samples = profile.samples_by_thread();
        for name in ["calib-user", "calib-syscalls"] {
            let thread = profile.threads.iter().find(|t| t.name == name).unwrap();
            // The last reading of a thread that exited is from the scan before: up to one interval short.
            assert!(
                (CPU_SECONDS - 2.0 * SCAN_INTERVAL.as_secs_f64()..CPU_SECONDS + 0.05).contains(&thread.cpu_seconds),
                "{name}'s clock: {thread:?}"
            );
            assert!(
                thread.unarmed_seconds < 0.08,
                "armed within a listing or so: {thread:?}"
            );
            let expected = (thread.cpu_seconds - thread.unarmed_seconds) * 99.0;
            let got = samples.get(name).copied().unwrap_or(0) as f64;
            // Per-thread timers fire at most once per kernel tick: exact to a sample or two, and no lost samples.
            assert!(
                (got - expected).abs() <= 0.05 * expected + 2.0,
                "{name}: {got} samples for {expected:.1} expected ({thread:?}, all: {samples:?})"
            );
        }
        assert_eq!(profile.dropped_samples, 0);
        assert!(
            profile.leaf_only_samples * 20 <= profile.samples(),
            "nearly every sample unwinds past the signal frame: {profile:?}"
        );
        let folded = profile.folded();
        let user_loop: u64 = folded
            .lines()
            .filter(|l| l.starts_with("calib-user;") && l.contains("each_thread_is_sampled"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert!(
            user_loop as f64 >= 0.9 * samples["calib-user"] as f64,
            "the user thread's samples are in its closure: {user_loop} of {}\n{folded}",
            samples["calib-user"]
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
