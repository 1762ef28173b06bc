//! The SIGPROF handler and the ring it writes samples into: the workspace's only unsafe code.
//!
//! A signal handler gets no context of its own, so the ring is a `static` — the process's one CPU profiler, claimed
//! by one [`Claim`] at a time (a second claim is refused, as a second pprof-rs profiler was).
//!
//! # The handler
//!
//! Called on the thread whose CPU-time timer fired, possibly on both cores at once. It takes no lock (pprof-rs's
//! handler took a process-wide one with `try_write` and dropped the sample that found it taken: 3–18 % of the
//! samples when two threads were busy, more of the thread that was in a system call). It:
//!
//! 1. counts itself in flight, and returns at once unless a profile is active;
//! 2. claims the next slot of the ring (`FREE → WRITING`, a compare-exchange), or counts a drop when the slot is
//!    still full (the drainer is [`SLOTS`] samples behind);
//! 3. stores the interrupted program counter (from the signal's `ucontext`) and the return addresses found by
//!    `backtrace::trace_unsynchronized` (libgcc's unwinder: it allocates nothing and, with glibc's
//!    `_dl_find_object`, takes no lock), the thread id (`gettid`, a raw system call), and the sample's weight:
//!    1 + the timer's overrun count (`si_overrun`). A thread's CPU-time timer is checked only at kernel ticks that
//!    find the thread running; a thread that runs in short bursts can pass two expiries before a tick notices, and
//!    the kernel then sends one signal and counts the other as an overrun. The sample stands for both periods;
//! 4. notes how long it took (`CLOCK_MONOTONIC` from the vDSO, at entry and before publishing: the sampler's own
//!    cost on the sampled thread), publishes the slot (`WRITING → READY`, release), and restores `errno`.
//!
//! The drainer ([`Claim::drain`], on the `drift-sampler` thread) copies every `READY` slot out and frees it.
//!
//! The handler is installed with `SA_RESTART`, but some system calls return `EINTR` whatever the flag says
//! (`epoll_wait`, `poll`, relative `nanosleep`): as with any SIGPROF profiler, the host must retry them, as std
//! and tokio do. It runs on the interrupted thread's stack (no `SA_ONSTACK`: the unwinder walks the current stack):
//! the kernel's signal frame and libgcc's unwinding take a few KB of it.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The deepest stack a sample keeps (the handler's own frames included): deeper stacks lose their roots.
pub(super) const MAX_FRAMES: usize = 192;
/// Samples the ring holds between two drains.
pub(super) const SLOTS: usize = 512;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    tid: AtomicI32,
    weight: AtomicU32,
    /// How long the handler took to store this sample, in nanoseconds (`CLOCK_MONOTONIC`, from the vDSO).
    handler_ns: AtomicU32,
    pc: AtomicUsize,
    len: AtomicUsize,
    frames: UnsafeCell<[usize; MAX_FRAMES]>,
}

// SAFETY: `frames` is written only by the handler that moved `state` from FREE to WRITING, and read only by the
// drainer after it loaded READY (acquire, pairing with the handler's release) and before it stores FREE.
unsafe impl Sync for Slot {}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(FREE),
            tid: AtomicI32::new(0),
            weight: AtomicU32::new(0),
            handler_ns: AtomicU32::new(0),
            pc: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            frames: UnsafeCell::new([0; MAX_FRAMES]),
        }
    }
}

struct Ring {
    slots: [Slot; SLOTS],
    next: AtomicUsize,
    /// Whether the handler records (false: it returns at once).
    active: AtomicBool,
    /// Whether a [`Claim`] holds the ring.
    claimed: AtomicBool,
    /// Samples the handler could not store: the ring was full.
    dropped: AtomicU64,
    /// Handlers running now, counted from before they look at `active`: a handler preempted anywhere in its body is
    /// seen, so the ring is never reset or handed over under it.
    inflight: AtomicUsize,
}

static RING: Ring = Ring {
    slots: [const { Slot::new() }; SLOTS],
    next: AtomicUsize::new(0),
    active: AtomicBool::new(false),
    claimed: AtomicBool::new(false),
    dropped: AtomicU64::new(0),
    inflight: AtomicUsize::new(0),
};

/// One sample as the handler stored it.
pub(super) struct RawSample<'a> {
    /// The sampled thread.
    pub tid: i32,
    /// The timer periods this sample stands for: 1 + the timer's overruns.
    pub weight: u32,
    /// How long the handler took to store it, in nanoseconds: the sampler's cost on the sampled thread.
    pub handler_ns: u32,
    /// The interrupted instruction.
    pub pc: usize,
    /// Return addresses from the handler's own frame outwards: the interrupted frames follow the signal
    /// trampoline, starting with `pc` itself.
    pub frames: &'a [usize],
}

/// The process's one hold on the ring and SIGPROF. Dropping it stops recording and gives SIGPROF back.
pub(super) struct Claim {
    previous: SigAction,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").finish_non_exhaustive()
    }
}

/// Why the ring could not be claimed.
#[derive(Debug)]
pub(super) enum ClaimError {
    /// Another [`Claim`] holds it.
    Taken,
    /// `sigaction` failed.
    Install(Errno),
    /// A handler of an earlier profile is still running (preempted for long): try again later.
    Busy,
}

impl Claim {
    /// Claims the ring, empties it and installs the handler (recording stays off until [`Claim::record`]).
    pub(super) fn new() -> Result<Claim, ClaimError> {
        if RING.claimed.compare_exchange(false, true, Acquire, Relaxed).is_err() {
            return Err(ClaimError::Taken);
        }
        if RING.inflight.load(SeqCst) != 0 {
            RING.claimed.store(false, Release);
            return Err(ClaimError::Busy);
        }
        // Samples an earlier profile left behind; no handler runs, so no slot is being written.
        for slot in &RING.slots {
            let _ = slot.state.compare_exchange(READY, FREE, Acquire, Relaxed);
        }
        RING.dropped.store(0, Relaxed);
        // What the handler calls must not set itself up inside it: rustix finds the vDSO's clock_gettime on first
        // use (on kernels before 6.4 by reading /proc/self/auxv into a Vec), and libgcc's first unwind runs a
        // pthread_once. Both happen here, outside any handler.
        let _ = monotonic_ns();
        backtrace::trace(|_| false);
        let action = SigAction::new(
            SigHandler::SigAction(on_sigprof),
            SaFlags::SA_SIGINFO | SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: `on_sigprof` is async-signal-safe (see the module documentation).
        match unsafe { sigaction(Signal::SIGPROF, &action) } {
            Ok(previous) => Ok(Claim { previous }),
            Err(e) => {
                RING.claimed.store(false, Release);
                Err(ClaimError::Install(e))
            }
        }
    }

    /// Turns recording on or off.
    pub(super) fn record(&self, on: bool) {
        RING.active.store(on, SeqCst);
    }

    /// Hands every stored sample to `each`, then frees its slot.
    /// `&mut`: one drainer at a time, so a slot is never read by two.
    pub(super) fn drain(&mut self, mut each: impl FnMut(RawSample<'_>)) {
        for slot in &RING.slots {
            if slot.state.load(Acquire) != READY {
                continue;
            }
            let len = slot.len.load(Relaxed).min(MAX_FRAMES);
            // SAFETY: READY was loaded with acquire: the handler's writes are visible and it no longer writes.
            let frames = unsafe { &*slot.frames.get() };
            each(RawSample {
                tid: slot.tid.load(Relaxed),
                weight: slot.weight.load(Relaxed),
                handler_ns: slot.handler_ns.load(Relaxed),
                pc: slot.pc.load(Relaxed),
                frames: &frames[..len],
            });
            slot.state.store(FREE, Release);
        }
    }

    /// Samples lost because the ring was full, since the claim.
    pub(super) fn dropped(&self) -> u64 {
        RING.dropped.load(Relaxed)
    }

    /// Waits (at most `limit`) until no handler is running. Call after `record(false)`: a handler that starts later
    /// returns at once.
    pub(super) fn settle(&self, limit: Duration) {
        let started = Instant::now();
        while RING.inflight.load(Acquire) != 0 && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.record(false);
        self.settle(Duration::from_millis(100));
        // A SIGPROF still queued for some thread must not meet the default action, which ends the process. Where
        // the previous action was the default (or ignore), the handler stays installed, inert (`active` is false):
        // unlike SIG_IGN, a caught signal goes back to the default across exec, so child processes are unaffected.
        if let SigHandler::Handler(_) | SigHandler::SigAction(_) = self.previous.handler() {
            // SAFETY: the previous action was the process's own handler before the claim.
            let _ = unsafe { sigaction(Signal::SIGPROF, &self.previous) };
        }
        RING.claimed.store(false, Release);
    }
}

extern "C" fn on_sigprof(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // Counted before `active` is read (both SeqCst, as `record` and `settle` are): whoever turns recording off and
    // then sees no handler in flight knows none will write.
    RING.inflight.fetch_add(1, SeqCst);
    if RING.active.load(SeqCst) {
        let errno = Errno::last_raw();
        record_sample(info, context);
        Errno::set_raw(errno);
    }
    RING.inflight.fetch_sub(1, Release);
}

/// The handler's work while a profile is active.
fn record_sample(info: *mut libc::siginfo_t, context: *mut c_void) {
    let entered = monotonic_ns();
    let index = RING.next.fetch_add(1, Relaxed) % SLOTS;
    let slot = &RING.slots[index];
    if slot.state.compare_exchange(FREE, WRITING, Acquire, Relaxed).is_err() {
        RING.dropped.fetch_add(1, Relaxed);
        return;
    }
    // SAFETY: the compare-exchange gave this handler the slot until it stores READY.
    let frames = unsafe { &mut *slot.frames.get() };
    let mut len = 0;
    // SAFETY: the unsynchronized trace takes no lock of backtrace's (this may interrupt a thread that holds it);
    // the closure only writes into the claimed slot.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            if len == MAX_FRAMES {
                return false;
            }
            frames[len] = frame.ip() as usize;
            len += 1;
            true
        });
    }
    slot.weight.store(1 + timer_overruns(info), Relaxed);
    slot.pc.store(interrupted_pc(context), Relaxed);
    slot.len.store(len, Relaxed);
    slot.tid.store(rustix::thread::gettid().as_raw_nonzero().get(), Relaxed);
    let spent = monotonic_ns().saturating_sub(entered);
    slot.handler_ns.store(u32::try_from(spent).unwrap_or(u32::MAX), Relaxed);
    slot.state.store(READY, Release);
}

/// `CLOCK_MONOTONIC` in nanoseconds (rustix reads it from the vDSO: no system call, no lock).
pub(super) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// `si_code` of a signal sent by a POSIX timer.
const SI_TIMER: libc::c_int = -2;
/// Overruns counted beyond this are taken as this many (a thread asleep inside its handler, or a bad count).
const MAX_OVERRUNS: u32 = 1000;

/// The kernel's `siginfo_t` as far as its `_timer` fields: the union after the three ints is pointer-aligned.
#[repr(C)]
struct TimerSigInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    timer: TimerFields,
}

#[repr(C)]
struct TimerFields {
    timer_id: libc::c_int,
    overrun: libc::c_int,
    value: *mut c_void,
}

/// How many expiries of the signal's timer the kernel folded into this one signal (0 if not a timer's).
fn timer_overruns(info: *mut libc::siginfo_t) -> u32 {
    if info.is_null() {
        return 0;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t, whose first fields TimerSigInfo mirrors; the
    // timer fields are read only when si_code says a timer sent it.
    let info = unsafe { &*info.cast::<TimerSigInfo>() };
    if info.code != SI_TIMER {
        return 0;
    }
    u32::try_from(info.timer.overrun).unwrap_or(0).min(MAX_OVERRUNS)
}

/// The program counter the signal interrupted, from the kernel's `ucontext_t`; 0 when unknown.
fn interrupted_pc(context: *mut c_void) -> usize {
    if context.is_null() {
        return 0;
    }
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t as the handler's third argument.
    #[cfg(target_arch = "x86_64")]
    let pc = unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] as usize };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    let pc = unsafe { (*context).uc_mcontext.pc as usize };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let pc = {
        let _ = context;
        0
    };
    pc
}
