//! Root sampling: fixed and adaptive modes (§11 of the format).
//!
//! Everything here is pure logic with time injected; nothing here starts a thread.
//!
//! # Threading
//!
//! Two parties use sampling:
//!
//! - **The request path** takes one decision per inbound root (§11.1). It must never take a lock, so it reads a
//!   [`SharedRate`] (three relaxed atomics) and calls [`decide`] with a draw from [`draw`] or [`draw_unit`].
//! - **The updater** (adaptive mode only) owns the [`AdaptiveController`]. Every 2 s it builds a [`HealthSnapshot`],
//!   calls [`AdaptiveController::update`], then [`AdaptiveController::publish`] into the [`SharedRate`]. The
//!   controller itself is never shared, so it needs no lock either.
//!
//! A reader racing a publication may combine the new value of one atomic with the old value of another for one
//! decision. Both values are valid rates of two consecutive updates, 2 s apart, so that one decision is as good as
//! either update's; no value outside [0, base] is ever observed.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default base rate when no source gives a valid one (§11.4).
pub const DEFAULT_BASE_RATE: f64 = 1.0;
/// The default minimum rate of adaptive mode (§11.3); it is capped at the base rate.
pub const DEFAULT_MIN_RATE: f64 = 0.001;
/// How often the adaptive updater runs (§11.3).
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a hard brake pauses recording (§11.3, step 4).
pub const CRITICAL_PAUSE: Duration = Duration::from_secs(15);
/// How long after the last decrease the multiplier may recover (§11.3, step 6).
pub const RECOVERY_DELAY: Duration = Duration::from_secs(10);
/// The multiplier's step up when healthy (§11.3, step 6).
pub const RECOVERY_STEP: f64 = 0.05;
/// The time constant of the decayed failure signal, in milliseconds (§11.3, step 1).
pub const FAILURE_DECAY_MS: f64 = 30_000.0;
/// The message of the info log emitted on a state change or multiplier move (§11.3, R10).
pub const TRANSITION_LOG_MESSAGE: &str = "Adaptive sampling updated";

const QUEUE_RANGE: (f64, f64) = (0.20, 0.85);
const MEMORY_RANGE: (f64, f64) = (0.80, 0.92);
const MEMORY_HARD_BRAKE: f64 = 0.92;
const FAILURE_SCALE: f64 = 5.0;
const HOT_PRESSURE: f64 = 0.70;
const WARM_PRESSURE: f64 = 0.45;
const HEALTHY_PRESSURE: f64 = 0.20;
const HOT_FACTOR: f64 = 0.4;
const WARM_FACTOR: f64 = 0.7;
const EWMA_WEIGHT: f64 = 0.25;
/// A multiplier move at least this large is logged; the tolerance absorbs float error on the 0.05 recovery step.
const LOGGED_MOVE: f64 = RECOVERY_STEP - 1e-9;
/// `2⁵³`, the resolution of a draw (§11.2).
const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// How the base rate is applied (§11.4, `recording.sampling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SamplingMode {
    /// Every root is recorded with probability `base` (§11.2). The default.
    #[default]
    Fixed,
    /// The rate is `base` scaled down under pressure (§11.3).
    Adaptive,
}

impl SamplingMode {
    /// The configuration spelling: `fixed` or `adaptive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for SamplingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a root was or was not recorded (the "root sampling reason" vocabulary of §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleReason {
    /// The app was not ready yet: always recorded, effective rate 1.0 (§11.1).
    PreAppStart,
    /// The draw fell under the effective rate: recorded.
    Sampled,
    /// The draw did not fall under the rate, and the rate was the full base rate (or zero outside a pause).
    NotSampled,
    /// The draw did not fall under an effective rate that adaptive mode had lowered below the base rate.
    LoadShed,
    /// Adaptive mode is paused after a hard brake: nothing is recorded.
    CriticalPause,
}

impl SampleReason {
    /// The §2 spelling: `pre_app_start`, `sampled`, `not_sampled`, `load_shed` or `critical_pause`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreAppStart => "pre_app_start",
            Self::Sampled => "sampled",
            Self::NotSampled => "not_sampled",
            Self::LoadShed => "load_shed",
            Self::CriticalPause => "critical_pause",
        }
    }

    /// Whether the reason means the root is recorded (`pre_app_start` or `sampled`).
    pub fn is_recorded(self) -> bool {
        matches!(self, Self::PreAppStart | Self::Sampled)
    }
}

impl fmt::Display for SampleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The adaptive sampler's state (the "adaptive sampler state" vocabulary of §2). Fixed mode reports `Fixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptiveState {
    /// Fixed mode: no controller.
    Fixed,
    /// Pressure below 0.45: the multiplier may recover.
    Healthy,
    /// Pressure in [0.45, 0.70): the multiplier is scaled by 0.7 on each update.
    Warm,
    /// Pressure at least 0.70: the multiplier is scaled by 0.4 on each update.
    Hot,
    /// A hard brake: nothing is recorded for 15 s.
    CriticalPause,
}

impl AdaptiveState {
    /// The §2 spelling: `fixed`, `healthy`, `warm`, `hot` or `critical_pause`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Healthy => "healthy",
            Self::Warm => "warm",
            Self::Hot => "hot",
            Self::CriticalPause => "critical_pause",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Fixed => 0,
            Self::Healthy => 1,
            Self::Warm => 2,
            Self::Hot => 3,
            Self::CriticalPause => 4,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Healthy,
            2 => Self::Warm,
            3 => Self::Hot,
            4 => Self::CriticalPause,
            _ => Self::Fixed,
        }
    }
}

impl fmt::Display for AdaptiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Draws and the fixed decision (§11.2)
// ---------------------------------------------------------------------------------------------------------------

/// A draw uniform in [0, 1) with 53-bit resolution: `(next_u64 >> 11) as f64 / 2⁵³` (§11.2).
pub fn draw_unit(rng: &mut fastrand::Rng) -> f64 {
    unit_from_u64(rng.u64(..))
}

/// [`draw_unit`] on the calling thread's `fastrand` generator; what the request path uses.
pub fn draw() -> f64 {
    unit_from_u64(fastrand::u64(..))
}

fn unit_from_u64(bits: u64) -> f64 {
    (bits >> 11) as f64 / TWO_POW_53
}

/// The fixed-mode decision: record iff `u < rate` (strict, §11.2). Rate 1.0 always records, 0.0 never does.
pub fn decide_fixed(rate: f64, u: f64) -> bool {
    u < rate
}

// ---------------------------------------------------------------------------------------------------------------
// Rates and their precedence (§11.4)
// ---------------------------------------------------------------------------------------------------------------

/// Parses a sampling rate from text: a number in [0, 1] (`1` means 1.0); `None` for anything else (§11.4, R5, R6).
pub fn parse_rate(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().and_then(validate_rate)
}

/// `Some(rate)` iff `rate` is a number in [0, 1]; NaN and values outside the range are rejected. `-0.0` becomes
/// `0.0`.
pub fn validate_rate(rate: f64) -> Option<f64> {
    // NaN fails both comparisons. Adding 0.0 turns -0.0 into 0.0.
    (0.0..=1.0).contains(&rate).then_some(rate + 0.0)
}

/// One candidate value for the base rate, as a source gave it (§11.4).
#[derive(Debug, Clone, PartialEq)]
pub enum RateCandidate {
    /// A float (builder, YAML float).
    Float(f64),
    /// An integer (YAML integer); `1` means 1.0.
    Integer(i64),
    /// Text (an environment variable, a YAML string).
    Text(String),
}

impl RateCandidate {
    /// The rate this candidate stands for, if it is valid.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Self::Float(f) => validate_rate(*f),
            // Only 0 and 1 can be valid; the conversion is exact for them.
            Self::Integer(i) => (0..=1).contains(i).then_some(*i as f64),
            Self::Text(s) => parse_rate(s),
        }
    }
}

impl fmt::Display for RateCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Float(v) => write!(f, "{v}"),
            Self::Integer(v) => write!(f, "{v}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<f64> for RateCandidate {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<i64> for RateCandidate {
    fn from(v: i64) -> Self {
        Self::Integer(v)
    }
}

impl From<&str> for RateCandidate {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for RateCandidate {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

/// The first valid rate among `candidates`, in order, and one warning for each invalid candidate skipped before it
/// (§11.4 step 1). [`DEFAULT_BASE_RATE`] when none is valid. Absent sources are simply left out of `candidates`.
///
/// The caller logs the warnings (`tracing::warn!`); returning them keeps this pure and testable.
pub fn first_valid_rate<S, I>(candidates: I) -> (f64, Vec<String>)
where
    S: AsRef<str>,
    I: IntoIterator<Item = (S, RateCandidate)>,
{
    let mut warnings = Vec::new();
    for (source, candidate) in candidates {
        match candidate.rate() {
            Some(rate) => return (rate, warnings),
            None => warnings.push(format!(
                "{}: {candidate} is not a sampling rate in [0, 1]; trying the next source",
                source.as_ref()
            )),
        }
    }
    (DEFAULT_BASE_RATE, warnings)
}

// ---------------------------------------------------------------------------------------------------------------
// The decision (§11.1, §11.3 "Decision")
// ---------------------------------------------------------------------------------------------------------------

/// The outcome of one root sampling decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the trace is recorded.
    pub record: bool,
    /// Why.
    pub reason: SampleReason,
    /// The effective rate the decision used (1.0 before the app is ready).
    pub effective_rate: f64,
}

/// The decision rule of §11.3, shared by both modes (fixed mode is `state = Fixed`, `effective = base`).
fn decide_with(effective: f64, base: f64, state: AdaptiveState, u: f64) -> (bool, SampleReason) {
    if effective <= 0.0 {
        let reason = if state == AdaptiveState::CriticalPause {
            SampleReason::CriticalPause
        } else {
            SampleReason::NotSampled
        };
        return (false, reason);
    }
    if u < effective {
        (true, SampleReason::Sampled)
    } else if effective < base {
        (false, SampleReason::LoadShed)
    } else {
        (false, SampleReason::NotSampled)
    }
}

/// The root decision on the request path (§11.1): before the app is ready, always recorded with reason
/// `pre_app_start` and effective rate 1.0; otherwise the rate in `rate` at `now` against the draw `u`.
///
/// Lock-free: it only loads the atomics of `rate`.
pub fn decide(app_ready: bool, rate: &SharedRate, u: f64, now: Instant) -> Decision {
    if !app_ready {
        return Decision {
            record: true,
            reason: SampleReason::PreAppStart,
            effective_rate: 1.0,
        };
    }
    let (effective, state) = rate.effective_rate_and_state(now);
    let (record, reason) = decide_with(effective, rate.base, state, u);
    Decision {
        record,
        reason,
        effective_rate: effective,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The lock-free handle the request path reads
// ---------------------------------------------------------------------------------------------------------------

/// The current sampling rate, published by the updater and read without a lock by the request path.
///
/// It holds the unpaused effective rate (`clamp(base × m, min(base, min_rate), base)`) as the bits of an `f64`, the
/// state, and the end of a pause as nanoseconds after `origin` (0 = no pause). The request path computes "0 while
/// paused" itself from `now`, so a pause ends on time even if the next update is up to 2 s away, exactly like
/// [`AdaptiveController::effective_rate`].
#[derive(Debug)]
pub struct SharedRate {
    base: f64,
    origin: Instant,
    rate_bits: AtomicU64,
    state: AtomicU8,
    paused_until_ns: AtomicU64,
}

impl SharedRate {
    /// A fixed-mode rate: always `base`, state `fixed`. `base` is clamped to [0, 1] (NaN becomes 0).
    pub fn fixed(base: f64) -> Self {
        let base = clamp_rate(base);
        Self::with_state(base, base, AdaptiveState::Fixed, Instant::now())
    }

    /// The starting point of an adaptive-mode rate: `base` (multiplier 1.0), state `healthy`. Pauses are encoded
    /// relative to `origin`, which must not be later than any `now` later passed to it.
    pub fn adaptive(base: f64, origin: Instant) -> Self {
        let base = clamp_rate(base);
        Self::with_state(base, base, AdaptiveState::Healthy, origin)
    }

    fn with_state(base: f64, rate: f64, state: AdaptiveState, origin: Instant) -> Self {
        Self {
            base,
            origin,
            rate_bits: AtomicU64::new(rate.to_bits()),
            state: AtomicU8::new(state.to_u8()),
            paused_until_ns: AtomicU64::new(0),
        }
    }

    /// The base rate.
    pub fn base(&self) -> f64 {
        self.base
    }

    /// The state last published.
    pub fn state(&self) -> AdaptiveState {
        AdaptiveState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The effective rate at `now`: 0 while paused (state `critical_pause` and `now` before the pause's end),
    /// otherwise the published rate.
    pub fn effective_rate(&self, now: Instant) -> f64 {
        self.effective_rate_and_state(now).0
    }

    fn effective_rate_and_state(&self, now: Instant) -> (f64, AdaptiveState) {
        let state = self.state();
        if state == AdaptiveState::CriticalPause {
            let until = self.paused_until_ns.load(Ordering::Relaxed);
            if until != 0 && nanos_since(self.origin, now) < until {
                return (0.0, state);
            }
        }
        (f64::from_bits(self.rate_bits.load(Ordering::Relaxed)), state)
    }

    fn store(&self, rate: f64, state: AdaptiveState, paused_until: Option<Instant>) {
        // Store the pause end before the state, so a reader that sees `critical_pause` mostly sees its end too.
        let until = paused_until.map_or(0, |t| nanos_since(self.origin, t).max(1));
        self.paused_until_ns.store(until, Ordering::Relaxed);
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        self.state.store(state.to_u8(), Ordering::Relaxed);
    }
}

fn nanos_since(origin: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

fn clamp_rate(r: f64) -> f64 {
    if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) }
}

// ---------------------------------------------------------------------------------------------------------------
// Adaptive mode (§11.3)
// ---------------------------------------------------------------------------------------------------------------

/// What the adaptive updater reads every 2 s (§11.3).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthSnapshot {
    /// Queued records / queue capacity (2048).
    pub queue_fill: f64,
    /// The `dropped` counter (cumulative).
    pub dropped: u64,
    /// The sink's `failed` counter (cumulative).
    pub failures: u64,
    /// Whether the API circuit breaker is open.
    pub circuit_open: bool,
    /// Memory usage / effective memory limit; `None` when there is no limit (see [`memory_ratio`]).
    pub memory_ratio: Option<f64>,
}

/// A logged change of the adaptive controller: its state changed, or its multiplier moved by at least 0.05.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state before the update.
    pub from: AdaptiveState,
    /// The state after the update.
    pub to: AdaptiveState,
    /// The multiplier before the update.
    pub old_multiplier: f64,
    /// The multiplier after the update.
    pub new_multiplier: f64,
    /// The combined pressure of step 3 (computed before a hard brake or a running pause can stop the update).
    pub pressure: f64,
    /// The effective rate right after the update.
    pub effective_rate: f64,
}

impl Transition {
    /// Logs the transition at info level with the message [`TRANSITION_LOG_MESSAGE`].
    pub fn log(&self) {
        tracing::info!(
            from = self.from.as_str(),
            to = self.to.as_str(),
            old_multiplier = self.old_multiplier,
            new_multiplier = self.new_multiplier,
            pressure = self.pressure,
            effective_rate = self.effective_rate,
            "{}",
            TRANSITION_LOG_MESSAGE
        );
    }
}

/// The adaptive sampling controller of §11.3. Owned by the updater; see the module docs for the threading.
#[derive(Debug, Clone)]
pub struct AdaptiveController {
    base: f64,
    min_rate: f64,
    log_transitions: bool,
    multiplier: f64,
    state: AdaptiveState,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
    queue_ewma: Option<f64>,
    failure_signal: f64,
    prev_dropped: u64,
    prev_failures: u64,
    last_update: Option<Instant>,
    last_pressure: f64,
}

impl AdaptiveController {
    /// A controller with base rate `base` and minimum rate `min_rate` (capped at `base`); both are clamped to [0, 1].
    /// `log_transitions` gates the info log of [`update`](Self::update) (R10).
    ///
    /// It starts with multiplier 1.0, state `healthy`, no pause, and previous counters at 0 (the counters start at 0
    /// when the SDK starts, so the first snapshot's counters are all new).
    pub fn new(base: f64, min_rate: f64, log_transitions: bool) -> Self {
        let base = clamp_rate(base);
        let min_rate = clamp_rate(min_rate).min(base);
        Self {
            base,
            min_rate,
            log_transitions,
            multiplier: 1.0,
            state: AdaptiveState::Healthy,
            paused_until: None,
            last_decrease: None,
            queue_ewma: None,
            failure_signal: 0.0,
            prev_dropped: 0,
            prev_failures: 0,
            last_update: None,
            last_pressure: 0.0,
        }
    }

    /// The base rate.
    pub fn base(&self) -> f64 {
        self.base
    }

    /// The minimum rate (already capped at the base rate).
    pub fn min_rate(&self) -> f64 {
        self.min_rate
    }

    /// The multiplier `m`.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The state.
    pub fn state(&self) -> AdaptiveState {
        self.state
    }

    /// The decayed failure signal.
    pub fn failure_signal(&self) -> f64 {
        self.failure_signal
    }

    /// The queue EWMA; `None` before the first update.
    pub fn queue_ewma(&self) -> Option<f64> {
        self.queue_ewma
    }

    /// When the current pause ends, if a hard brake set one.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// The pressure computed by the last update (step 3).
    pub fn last_pressure(&self) -> f64 {
        self.last_pressure
    }

    /// Whether transitions are logged.
    pub fn log_transitions(&self) -> bool {
        self.log_transitions
    }

    /// `clamp((m_min…), 0, 1)`: `min_rate / base`, 0 if either rate is 0 (step 6).
    fn m_min(&self) -> f64 {
        if self.base <= 0.0 || self.min_rate <= 0.0 {
            0.0
        } else {
            (self.min_rate / self.base).clamp(0.0, 1.0)
        }
    }

    fn paused(&self, now: Instant) -> bool {
        self.state == AdaptiveState::CriticalPause && self.paused_until.is_some_and(|until| now < until)
    }

    /// The rate outside a pause: `clamp(base × m, min(base, min_rate), base)`.
    fn unpaused_rate(&self) -> f64 {
        (self.base * self.multiplier).clamp(self.base.min(self.min_rate), self.base)
    }

    /// The effective rate at `now`: 0 while paused, otherwise `clamp(base × m, min(base, min_rate), base)`.
    pub fn effective_rate(&self, now: Instant) -> f64 {
        if self.paused(now) { 0.0 } else { self.unpaused_rate() }
    }

    /// The decision for draw `u` at `now` (§11.3 "Decision"): `(recorded, reason)`. The app is assumed ready; see
    /// [`decide`] for the request path.
    pub fn decide(&self, u: f64, now: Instant) -> (bool, SampleReason) {
        decide_with(self.effective_rate(now), self.base, self.state, u)
    }

    /// Publishes the controller's rate, state and pause into `shared`, for the request path.
    pub fn publish(&self, shared: &SharedRate) {
        let paused_until = if self.state == AdaptiveState::CriticalPause {
            self.paused_until
        } else {
            None
        };
        shared.store(self.unpaused_rate(), self.state, paused_until);
    }

    /// One update (§11.3 steps 1–6) with the snapshot `snap` taken at `now`.
    ///
    /// Returns the transition when the state changed or the multiplier moved by at least 0.05. The transition has
    /// already been logged at info level ("Adaptive sampling updated") unless `log_transitions` is false; it is
    /// returned either way.
    pub fn update(&mut self, snap: &HealthSnapshot, now: Instant) -> Option<Transition> {
        let from = self.state;
        let old_multiplier = self.multiplier;
        self.step(snap, now);
        let moved = (self.multiplier - old_multiplier).abs() >= LOGGED_MOVE;
        if from == self.state && !moved {
            return None;
        }
        let transition = Transition {
            from,
            to: self.state,
            old_multiplier,
            new_multiplier: self.multiplier,
            pressure: self.last_pressure,
            effective_rate: self.effective_rate(now),
        };
        if self.log_transitions {
            transition.log();
        }
        Some(transition)
    }

    fn step(&mut self, snap: &HealthSnapshot, now: Instant) {
        // 1. Decay the failure signal by the elapsed time (2 s on the first update, at least 1 ms), add new failures.
        let elapsed = match self.last_update {
            Some(prev) => now.saturating_duration_since(prev),
            None => UPDATE_INTERVAL,
        };
        self.last_update = Some(now);
        let elapsed_ms = (elapsed.as_secs_f64() * 1000.0).max(1.0);
        let new_failures = snap.failures.saturating_sub(self.prev_failures);
        let new_drops = snap.dropped.saturating_sub(self.prev_dropped);
        self.prev_failures = snap.failures;
        self.prev_dropped = snap.dropped;
        self.failure_signal = self.failure_signal * (-elapsed_ms / FAILURE_DECAY_MS).exp() + new_failures as f64;

        // 2. Queue EWMA.
        let fill = if snap.queue_fill.is_nan() {
            0.0
        } else {
            snap.queue_fill.clamp(0.0, 1.0)
        };
        let ewma = match self.queue_ewma {
            None => fill,
            Some(prev) => EWMA_WEIGHT * fill + (1.0 - EWMA_WEIGHT) * prev,
        };
        self.queue_ewma = Some(ewma);

        // 3. Pressures.
        let memory = snap.memory_ratio.filter(|r| !r.is_nan());
        let queue_pressure = normalise(Some(ewma), QUEUE_RANGE);
        let memory_pressure = normalise(memory, MEMORY_RANGE);
        let failure_pressure = (self.failure_signal / FAILURE_SCALE).clamp(0.0, 1.0);
        let pressure = queue_pressure.max(memory_pressure).max(failure_pressure);
        self.last_pressure = pressure;

        // 4. Hard brake.
        if new_drops > 0 || snap.circuit_open || memory.is_some_and(|r| r >= MEMORY_HARD_BRAKE) {
            self.multiplier = 0.0;
            self.state = AdaptiveState::CriticalPause;
            self.paused_until = Some(now + CRITICAL_PAUSE);
            self.last_decrease = Some(now);
            return;
        }

        // 5. A running pause.
        if self.paused_until.is_some_and(|until| now < until) {
            self.state = AdaptiveState::CriticalPause;
            return;
        }

        // 6. Scale the multiplier.
        let m_min = self.m_min();
        if pressure >= HOT_PRESSURE {
            self.multiplier = m_min.max(self.multiplier * HOT_FACTOR);
            self.state = AdaptiveState::Hot;
            self.last_decrease = Some(now);
        } else if pressure >= WARM_PRESSURE {
            self.multiplier = m_min.max(self.multiplier * WARM_FACTOR);
            self.state = AdaptiveState::Warm;
            self.last_decrease = Some(now);
        } else {
            self.state = AdaptiveState::Healthy;
            let recovered = self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= RECOVERY_DELAY);
            if pressure <= HEALTHY_PRESSURE && recovered {
                self.multiplier = (self.multiplier + RECOVERY_STEP).min(1.0);
            }
        }
    }
}

/// `clamp((v − a) / (b − a), 0, 1)`, and 0 when `v` is absent.
fn normalise(v: Option<f64>, (a, b): (f64, f64)) -> f64 {
    v.map_or(0.0, |v| ((v - a) / (b - a)).clamp(0.0, 1.0))
}

// ---------------------------------------------------------------------------------------------------------------
// Memory pressure (§11.3)
// ---------------------------------------------------------------------------------------------------------------

/// The page size assumed to turn `/proc/self/statm` pages into bytes (the RSS fallback only).
pub const STATM_PAGE_SIZE: u64 = 4096;
/// A memory limit above this is "no limit" (cgroup v1 reports about 2⁶³ when unlimited).
const MAX_MEMORY_LIMIT: f64 = 1e18;

/// The contents of the files [`memory_ratio`] reads; `None` for a file that could not be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryFiles<'a> {
    /// cgroup v2 `memory.current`.
    pub v2_current: Option<&'a str>,
    /// cgroup v2 `memory.max`.
    pub v2_max: Option<&'a str>,
    /// cgroup v1 `memory.usage_in_bytes`.
    pub v1_usage: Option<&'a str>,
    /// cgroup v1 `memory.limit_in_bytes`.
    pub v1_limit: Option<&'a str>,
    /// `/proc/self/statm` (its second field is the resident set in pages).
    pub statm: Option<&'a str>,
}

/// The memory ratio from file contents (pure): usage from v2 `memory.current`, else v1 `memory.usage_in_bytes`,
/// else RSS from statm; the limit from `memory.max`, else `memory.limit_in_bytes`, a limit being ignored when it is
/// `max`, not a number, ≤ 0 or > 10¹⁸. `None` when there is no limit or no usage.
pub fn memory_ratio_from(files: &MemoryFiles<'_>) -> Option<f64> {
    let limit = files
        .v2_max
        .and_then(parse_limit)
        .or_else(|| files.v1_limit.and_then(parse_limit))?;
    let usage = files
        .v2_current
        .and_then(parse_bytes)
        .or_else(|| files.v1_usage.and_then(parse_bytes))
        .or_else(|| files.statm.and_then(parse_statm_rss))?;
    Some(usage as f64 / limit)
}

fn parse_bytes(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok()
}

fn parse_limit(s: &str) -> Option<f64> {
    let v = s.trim().parse::<i128>().ok()? as f64;
    (v > 0.0 && v <= MAX_MEMORY_LIMIT).then_some(v)
}

fn parse_statm_rss(s: &str) -> Option<u64> {
    s.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?
        .checked_mul(STATM_PAGE_SIZE)
}

/// Memory usage divided by the effective memory limit of this process's cgroup (§11.3), read from
/// `/sys/fs/cgroup` and `/proc/self/statm`; `None` when there is no limit. See [`memory_ratio_from`].
pub fn memory_ratio() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let v2_current = read("/sys/fs/cgroup/memory.current");
    let v2_max = read("/sys/fs/cgroup/memory.max");
    let v1_usage = read("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    let v1_limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    let statm = read("/proc/self/statm");
    memory_ratio_from(&MemoryFiles {
        v2_current: v2_current.as_deref(),
        v2_max: v2_max.as_deref(),
        v1_usage: v1_usage.as_deref(),
        v1_limit: v1_limit.as_deref(),
        statm: statm.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn ready(rate: &SharedRate, u: f64, now: Instant) -> Decision {
        decide(true, rate, u, now)
    }

    #[test]
    fn vocabularies_match_section_2() {
        let reasons = [
            SampleReason::PreAppStart,
            SampleReason::Sampled,
            SampleReason::NotSampled,
            SampleReason::LoadShed,
            SampleReason::CriticalPause,
        ];
        let names: Vec<_> = reasons.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["pre_app_start", "sampled", "not_sampled", "load_shed", "critical_pause"]
        );
        let states = [
            AdaptiveState::Fixed,
            AdaptiveState::Healthy,
            AdaptiveState::Warm,
            AdaptiveState::Hot,
            AdaptiveState::CriticalPause,
        ];
        let names: Vec<_> = states.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["fixed", "healthy", "warm", "hot", "critical_pause"]);
        for s in states {
            assert_eq!(AdaptiveState::from_u8(s.to_u8()), s);
        }
        assert_eq!(SamplingMode::Adaptive.to_string(), "adaptive");
    }

    #[test]
    fn draw_unit_uses_the_top_53_bits() {
        assert_eq!(unit_from_u64(0), 0.0);
        assert_eq!(unit_from_u64(u64::MAX), (TWO_POW_53 - 1.0) / TWO_POW_53);
        assert!(unit_from_u64(u64::MAX) < 1.0);
        assert_eq!(unit_from_u64(1 << 63), 0.5);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut copy = rng.clone();
        assert_eq!(draw_unit(&mut rng), unit_from_u64(copy.u64(..)));
        let u = draw();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn r1_before_the_app_is_ready_everything_is_recorded() {
        let now = Instant::now();
        for rate in [0.0, 0.5, 1.0] {
            let shared = SharedRate::fixed(rate);
            for u in [0.0, 0.3, 0.5, 0.999] {
                let d = decide(false, &shared, u, now);
                assert_eq!(
                    d,
                    Decision {
                        record: true,
                        reason: SampleReason::PreAppStart,
                        effective_rate: 1.0
                    }
                );
            }
        }
        // Also while adaptive mode is paused.
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        c.update(
            &HealthSnapshot {
                dropped: 1,
                ..Default::default()
            },
            now,
        );
        let shared = SharedRate::adaptive(0.5, now);
        c.publish(&shared);
        assert!(decide(false, &shared, 0.9, now).record);
    }

    #[test]
    fn r2_rate_one_always_and_rate_zero_never() {
        let now = Instant::now();
        let mut rng = fastrand::Rng::with_seed(2);
        let one = SharedRate::fixed(1.0);
        let zero = SharedRate::fixed(0.0);
        for u in [0.0, 0.5, 1.0 - f64::EPSILON]
            .into_iter()
            .chain((0..1000).map(|_| draw_unit(&mut rng)))
        {
            assert!(decide_fixed(1.0, u));
            assert!(!decide_fixed(0.0, u));
            assert_eq!(ready(&one, u, now).reason, SampleReason::Sampled);
            assert_eq!(ready(&zero, u, now).reason, SampleReason::NotSampled);
            assert!(!ready(&zero, u, now).record);
        }
    }

    #[test]
    fn r3_injected_draws_and_the_strict_comparison() {
        let now = Instant::now();
        let shared = SharedRate::fixed(0.5);
        let got: Vec<_> = [0.3, 0.7, 0.5].iter().map(|&u| ready(&shared, u, now)).collect();
        assert_eq!(got.iter().map(|d| d.record).collect::<Vec<_>>(), [true, false, false]);
        assert_eq!(
            got.iter().map(|d| d.reason).collect::<Vec<_>>(),
            [
                SampleReason::Sampled,
                SampleReason::NotSampled,
                SampleReason::NotSampled
            ]
        );
        assert!(got.iter().all(|d| d.effective_rate == 0.5));
        assert!(!decide_fixed(0.5, 0.5));
    }

    #[test]
    fn r4_real_draws_are_near_the_rate() {
        // Seeded, so the test cannot flake; several seeds so it does not hinge on one lucky stream. With n = 1000,
        // rate 0.5 must land within ±0.05 (±10 % of the rate, ~3.2σ) and rate 0.1 within ±0.05 (±5 points, ~5σ).
        for seed in 0..20u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            for (rate, tolerance) in [(0.5, 0.05), (0.1, 0.05)] {
                let shared = SharedRate::fixed(rate);
                let now = Instant::now();
                let hits = (0..1000)
                    .filter(|_| ready(&shared, draw_unit(&mut rng), now).record)
                    .count();
                let observed = hits as f64 / 1000.0;
                assert!(
                    (observed - rate).abs() <= tolerance,
                    "seed {seed}: rate {rate} observed {observed}"
                );
            }
        }
    }

    #[test]
    fn r5_valid_rates_are_accepted() {
        for (text, want) in [
            ("0.0", 0.0),
            ("1.0", 1.0),
            ("0.5", 0.5),
            ("0.25", 0.25),
            ("0.99", 0.99),
            ("1", 1.0),
        ] {
            assert_eq!(parse_rate(text), Some(want), "{text}");
            assert_eq!(first_valid_rate([("src", RateCandidate::from(text))]), (want, vec![]));
        }
        assert_eq!(parse_rate(" 0.5 \n"), Some(0.5));
        for f in [0.0, 1.0, 0.5, 0.25, 0.99] {
            assert_eq!(RateCandidate::Float(f).rate(), Some(f));
        }
        assert_eq!(RateCandidate::Integer(1).rate(), Some(1.0));
        assert_eq!(RateCandidate::Integer(0).rate(), Some(0.0));
        let zero = parse_rate("-0.0").map(f64::to_bits);
        assert_eq!(zero, Some(0.0f64.to_bits()));
    }

    #[test]
    fn r6_invalid_rates_are_skipped_with_a_warning() {
        for text in [
            "-0.1", "-1.0", "1.1", "2.0", "-0.0001", "1.0001", "abc", "NaN", "inf", "", "0.5x",
        ] {
            assert_eq!(parse_rate(text), None, "{text}");
        }
        for f in [-0.1, -1.0, 1.1, 2.0, -0.0001, 1.0001, f64::NAN, f64::INFINITY] {
            assert_eq!(validate_rate(f), None, "{f}");
        }
        assert_eq!(RateCandidate::Integer(2).rate(), None);
        assert_eq!(RateCandidate::Integer(-1).rate(), None);

        // Each invalid value is skipped with a warning naming its source, and the next source is used.
        let (rate, warnings) = first_valid_rate([
            ("builder", RateCandidate::Float(-0.1)),
            ("TUSK_RECORDING_SAMPLING_RATE", RateCandidate::from("abc")),
            ("TUSK_SAMPLING_RATE", RateCandidate::from("1.0001")),
            ("recording.sampling.base_rate", RateCandidate::Integer(2)),
            ("recording.sampling_rate", RateCandidate::Float(0.25)),
        ]);
        assert_eq!(rate, 0.25);
        assert_eq!(warnings.len(), 4);
        assert!(warnings[0].starts_with("builder: -0.1 "), "{}", warnings[0]);
        assert!(warnings[1].contains("TUSK_RECORDING_SAMPLING_RATE") && warnings[1].contains("\"abc\""));
        // Nothing valid: the default 1.0.
        let (rate, warnings) = first_valid_rate([("a", RateCandidate::Float(1.1)), ("b", RateCandidate::Float(2.0))]);
        assert_eq!((rate, warnings.len()), (1.0, 2));
        let (rate, warnings) = first_valid_rate(Vec::<(&str, RateCandidate)>::new());
        assert_eq!((rate, warnings.len()), (1.0, 0));
    }

    #[test]
    fn r7_queue_pressure_makes_the_sampler_hot() {
        // base 0.5, min 0.1, first snapshot with fill 0.9:
        //   step 1: no failures or drops;        step 2: first snapshot, ewma = 0.9;
        //   step 3: queue = clamp((0.9 − 0.20) / (0.85 − 0.20)) = clamp(1.077) = 1.0, memory 0, failures 0
        //           → pressure 1.0;
        //   step 4/5: no brake, no pause;
        //   step 6: m_min = 0.1 / 0.5 = 0.2; pressure ≥ 0.70 → m = max(0.2, 1.0 × 0.4) = 0.4, state hot.
        // Effective = clamp(0.5 × 0.4, min(0.5, 0.1), 0.5) = clamp(0.2, 0.1, 0.5) = 0.2.
        // Draw 0.3 ≥ 0.2 → not recorded; 0.2 < base 0.5 → reason load_shed.
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        let tr = c.update(
            &HealthSnapshot {
                queue_fill: 0.9,
                ..Default::default()
            },
            t0,
        );
        assert_eq!(c.state(), AdaptiveState::Hot);
        assert_eq!(c.queue_ewma(), Some(0.9));
        assert_eq!(c.last_pressure(), 1.0);
        assert!((c.multiplier() - 0.4).abs() < 1e-12);
        assert!((c.effective_rate(t0) - 0.2).abs() < 1e-12);
        assert_eq!(c.decide(0.3, t0), (false, SampleReason::LoadShed));
        assert_eq!(c.decide(0.1, t0), (true, SampleReason::Sampled));
        let tr = tr.expect("healthy → hot is a transition");
        assert_eq!((tr.from, tr.to), (AdaptiveState::Healthy, AdaptiveState::Hot));

        // The same through the lock-free handle.
        let shared = SharedRate::adaptive(0.5, t0);
        c.publish(&shared);
        let d = ready(&shared, 0.3, t0);
        assert_eq!((d.record, d.reason), (false, SampleReason::LoadShed));
        assert!((d.effective_rate - 0.2).abs() < 1e-12);
        assert_eq!(shared.state(), AdaptiveState::Hot);
    }

    #[test]
    fn r8_a_new_drop_is_a_hard_brake() {
        let t0 = Instant::now();
        let shared = SharedRate::adaptive(0.5, t0);
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        c.update(
            &HealthSnapshot {
                queue_fill: 0.9,
                ..Default::default()
            },
            t0,
        );
        let t1 = t0 + secs(2.0);
        let tr = c.update(
            &HealthSnapshot {
                queue_fill: 0.9,
                dropped: 1,
                ..Default::default()
            },
            t1,
        );
        assert_eq!(c.state(), AdaptiveState::CriticalPause);
        assert_eq!(c.multiplier(), 0.0);
        assert_eq!(c.paused_until(), Some(t1 + CRITICAL_PAUSE));
        assert_eq!(tr.map(|t| t.to), Some(AdaptiveState::CriticalPause));
        assert_eq!(c.effective_rate(t1), 0.0);
        assert_eq!(c.decide(0.0, t1), (false, SampleReason::CriticalPause));
        c.publish(&shared);
        let d = ready(&shared, 0.0, t1 + secs(1.0));
        assert_eq!(
            (d.record, d.reason, d.effective_rate),
            (false, SampleReason::CriticalPause, 0.0)
        );

        // The same counter value is not a new drop: the pause runs on (step 5) and the state stays.
        let t2 = t1 + secs(2.0);
        c.update(
            &HealthSnapshot {
                dropped: 1,
                ..Default::default()
            },
            t2,
        );
        assert_eq!(c.state(), AdaptiveState::CriticalPause);
        assert_eq!(c.paused_until(), Some(t1 + CRITICAL_PAUSE));

        // After 15 s the pause is over even before the next update: effective = clamp(0, min(0.5, 0.1), 0.5) = 0.1.
        let after = t1 + CRITICAL_PAUSE;
        assert!((c.effective_rate(after) - 0.1).abs() < 1e-12);
        assert!((shared.effective_rate(after) - 0.1).abs() < 1e-12);
        assert_eq!(ready(&shared, 0.5, after).reason, SampleReason::LoadShed);

        // An open circuit and memory ≥ 0.92 brake too.
        for snap in [
            HealthSnapshot {
                circuit_open: true,
                ..Default::default()
            },
            HealthSnapshot {
                memory_ratio: Some(0.92),
                ..Default::default()
            },
        ] {
            let mut c = AdaptiveController::new(0.5, 0.1, false);
            c.update(&snap, t0);
            assert_eq!(c.state(), AdaptiveState::CriticalPause, "{snap:?}");
            assert_eq!(c.paused_until(), Some(t0 + CRITICAL_PAUSE));
        }
    }

    #[test]
    fn r9_the_failure_signal_decays_with_the_elapsed_time() {
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                failures: 2,
                ..Default::default()
            },
            t0,
        );
        // First update: 0 × exp(−2000/30000) + 2 new failures.
        assert_eq!(c.failure_signal(), 2.0);
        c.update(
            &HealthSnapshot {
                failures: 2,
                ..Default::default()
            },
            t0 + secs(0.5),
        );
        let want = 2.0 * (-500.0f64 / 30000.0).exp();
        assert!(
            (c.failure_signal() - want).abs() < 1e-12,
            "{} vs {want}",
            c.failure_signal()
        );
        // Decay first, then add the new failures; a counter going backwards adds nothing.
        c.update(
            &HealthSnapshot {
                failures: 5,
                ..Default::default()
            },
            t0 + secs(1.5),
        );
        let want = want * (-1000.0f64 / 30000.0).exp() + 3.0;
        assert!((c.failure_signal() - want).abs() < 1e-12);
        c.update(
            &HealthSnapshot {
                failures: 1,
                ..Default::default()
            },
            t0 + secs(1.5),
        );
        // elapsed 0 → at least 1 ms.
        let want = want * (-1.0f64 / 30000.0).exp();
        assert!((c.failure_signal() - want).abs() < 1e-12);
    }

    #[test]
    fn failures_become_pressure() {
        let t0 = Instant::now();
        // 5 failures → failure pressure 1.0 → hot.
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                failures: 5,
                ..Default::default()
            },
            t0,
        );
        assert_eq!((c.state(), c.last_pressure()), (AdaptiveState::Hot, 1.0));
        // 3 failures → 0.6 → warm, m = 0.7.
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                failures: 3,
                ..Default::default()
            },
            t0,
        );
        assert_eq!(c.state(), AdaptiveState::Warm);
        assert!((c.last_pressure() - 0.6).abs() < 1e-12);
        assert!((c.multiplier() - 0.7).abs() < 1e-12);
    }

    #[test]
    fn queue_ewma_and_memory_pressure() {
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                queue_fill: 0.2,
                ..Default::default()
            },
            t0,
        );
        c.update(
            &HealthSnapshot {
                queue_fill: 1.7,
                ..Default::default()
            },
            t0 + secs(2.0),
        );
        // fill clamped to 1: 0.25 × 1 + 0.75 × 0.2 = 0.4 → queue pressure (0.4 − 0.2) / 0.65.
        assert!((c.queue_ewma().unwrap_or_default() - 0.4).abs() < 1e-12);
        assert!((c.last_pressure() - 0.2 / 0.65).abs() < 1e-12);
        assert_eq!(c.state(), AdaptiveState::Healthy);

        // Memory 0.89 → (0.89 − 0.80) / 0.12 = 0.75 → hot; absent memory → 0.
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                memory_ratio: Some(0.89),
                ..Default::default()
            },
            t0,
        );
        assert!((c.last_pressure() - 0.75).abs() < 1e-9);
        assert_eq!(c.state(), AdaptiveState::Hot);
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                memory_ratio: None,
                ..Default::default()
            },
            t0,
        );
        assert_eq!((c.last_pressure(), c.state()), (0.0, AdaptiveState::Healthy));
    }

    #[test]
    fn m_min_floors_the_multiplier() {
        let t0 = Instant::now();
        let hot = HealthSnapshot {
            queue_fill: 1.0,
            ..Default::default()
        };
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        for i in 0..10 {
            c.update(&hot, t0 + secs(2.0 * f64::from(i)));
        }
        // 0.4ⁿ would be far below; m_min = 0.2.
        assert!((c.multiplier() - 0.2).abs() < 1e-12);
        assert!((c.effective_rate(t0 + secs(20.0)) - 0.1).abs() < 1e-12);
        // min_rate 0 → m_min 0; min_rate above base is capped at base → m_min 1.
        let mut c = AdaptiveController::new(0.5, 0.0, false);
        c.update(&hot, t0);
        assert!((c.multiplier() - 0.4).abs() < 1e-12);
        let mut c = AdaptiveController::new(0.5, 0.9, false);
        assert_eq!(c.min_rate(), 0.5);
        c.update(&hot, t0);
        assert_eq!(c.multiplier(), 1.0);
        // Base 0: effective 0, reason not_sampled (state is not critical_pause).
        let c = AdaptiveController::new(0.0, 0.001, false);
        assert_eq!(c.decide(0.0, t0), (false, SampleReason::NotSampled));
    }

    #[test]
    fn recovery_adds_0_05_after_10_s_without_decrease() {
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                queue_fill: 0.9,
                ..Default::default()
            },
            t0,
        ); // hot: m = 0.4, last_decrease t0
        assert!((c.multiplier() - 0.4).abs() < 1e-12);
        let calm = HealthSnapshot::default();
        // The EWMA needs a few updates to fall under 0.20 pressure. Before 10 s there is no recovery.
        let mut t = t0;
        let mut last_decrease = t0;
        let mut before = c.multiplier();
        for _ in 0..4 {
            t += UPDATE_INTERVAL;
            c.update(&calm, t);
            if c.state() != AdaptiveState::Healthy {
                last_decrease = t;
            }
            assert!(c.multiplier() <= before + 1e-12, "no recovery before 10 s");
            before = c.multiplier();
        }
        assert_eq!(c.state(), AdaptiveState::Healthy);
        // 10 s after the last decrease, with pressure ≤ 0.20, each update adds 0.05.
        let mut t = last_decrease + RECOVERY_DELAY;
        let m = c.multiplier();
        let tr = c.update(&calm, t);
        assert!(c.last_pressure() <= 0.20);
        assert!((c.multiplier() - (m + 0.05)).abs() < 1e-12);
        assert!(tr.is_some(), "a move of 0.05 is a transition");
        // …up to 1.0.
        for _ in 0..40 {
            t += UPDATE_INTERVAL;
            c.update(&calm, t);
        }
        assert_eq!(c.multiplier(), 1.0);
        assert_eq!(c.update(&calm, t + UPDATE_INTERVAL), None);
    }

    #[test]
    fn recovery_waits_for_pressure_at_most_0_20() {
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(1.0, 0.001, false);
        c.update(
            &HealthSnapshot {
                failures: 5,
                ..Default::default()
            },
            t0,
        ); // hot, m 0.4
        // 0.3 pressure (healthy, but > 0.20) long after: no recovery.
        let t = t0 + secs(60.0);
        c.update(
            &HealthSnapshot {
                failures: 5,
                memory_ratio: Some(0.836),
                ..Default::default()
            },
            t,
        );
        assert_eq!(c.state(), AdaptiveState::Healthy);
        assert!(c.last_pressure() > 0.20);
        assert!((c.multiplier() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn after_a_pause_the_controller_resumes_from_zero() {
        let t0 = Instant::now();
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        c.update(
            &HealthSnapshot {
                dropped: 3,
                ..Default::default()
            },
            t0,
        );
        let t = t0 + CRITICAL_PAUSE + secs(1.0);
        let tr = c.update(
            &HealthSnapshot {
                dropped: 3,
                ..Default::default()
            },
            t,
        );
        assert_eq!(c.state(), AdaptiveState::Healthy);
        assert_eq!(
            tr.map(|t| (t.from, t.to)),
            Some((AdaptiveState::CriticalPause, AdaptiveState::Healthy))
        );
        // 16 s after the last decrease: recovery already applies.
        assert!((c.multiplier() - 0.05).abs() < 1e-12);
        assert!((c.effective_rate(t) - 0.1).abs() < 1e-12);
    }

    /// A minimal `tracing` subscriber counting events whose message is the transition message.
    struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    struct MessageVisitor(bool);

    impl tracing::field::Visit for MessageVisitor {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            if field.name() == "message" && format!("{value:?}") == TRANSITION_LOG_MESSAGE {
                self.0 = true;
            }
        }
    }

    impl tracing::Subscriber for Counter {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut v = MessageVisitor(false);
            event.record(&mut v);
            if v.0 && *event.metadata().level() == tracing::Level::INFO {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn logged_transitions(log_transitions: bool) -> (usize, usize) {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut returned = 0;
        tracing::subscriber::with_default(Counter(count.clone()), || {
            let t0 = Instant::now();
            let mut c = AdaptiveController::new(0.5, 0.1, log_transitions);
            let snaps = [
                HealthSnapshot {
                    queue_fill: 0.9,
                    ..Default::default()
                },
                HealthSnapshot {
                    queue_fill: 0.9,
                    dropped: 1,
                    ..Default::default()
                },
            ];
            for (i, s) in snaps.iter().enumerate() {
                returned += usize::from(c.update(s, t0 + secs(2.0 * i as f64)).is_some());
            }
        });
        (count.load(Ordering::SeqCst), returned)
    }

    #[test]
    fn r10_log_transitions_false_logs_nothing() {
        assert_eq!(logged_transitions(false), (0, 2));
        assert_eq!(logged_transitions(true), (2, 2));
    }

    #[test]
    fn shared_rate_is_usable_across_threads() {
        let t0 = Instant::now();
        let shared = std::sync::Arc::new(SharedRate::adaptive(0.5, t0));
        let reader = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                (0..10_000).all(|_| (0.0..=0.5).contains(&shared.effective_rate(Instant::now())))
            })
        };
        let mut c = AdaptiveController::new(0.5, 0.1, false);
        for i in 0..100u32 {
            let snap = HealthSnapshot {
                queue_fill: f64::from(i % 10) / 10.0,
                dropped: u64::from(i / 50),
                ..Default::default()
            };
            c.update(&snap, t0 + secs(2.0 * f64::from(i)));
            c.publish(&shared);
        }
        assert!(reader.join().unwrap_or(false));
        assert_eq!(SharedRate::fixed(2.0).base(), 1.0);
        assert_eq!(SharedRate::fixed(f64::NAN).effective_rate(t0), 0.0);
        assert_eq!(SharedRate::fixed(0.3).state(), AdaptiveState::Fixed);
    }

    #[test]
    fn memory_ratio_parsing() {
        let v2 = MemoryFiles {
            v2_current: Some("536870912\n"),
            v2_max: Some("1073741824\n"),
            ..Default::default()
        };
        assert_eq!(memory_ratio_from(&v2), Some(0.5));
        // `max` means no limit; v1 is tried next, then there is none.
        let unlimited = MemoryFiles {
            v2_max: Some("max\n"),
            ..v2
        };
        assert_eq!(memory_ratio_from(&unlimited), None);
        // v1, and its "unlimited" value (> 1e18).
        let v1 = MemoryFiles {
            v1_usage: Some("300\n"),
            v1_limit: Some("1200\n"),
            ..Default::default()
        };
        assert_eq!(memory_ratio_from(&v1), Some(0.25));
        let v1_unlimited = MemoryFiles {
            v1_limit: Some("9223372036854771712\n"),
            ..v1
        };
        assert_eq!(memory_ratio_from(&v1_unlimited), None);
        // ≤ 0 and garbage limits are ignored.
        for bad in ["0", "-1", "abc", ""] {
            assert_eq!(
                memory_ratio_from(&MemoryFiles {
                    v2_max: Some(bad),
                    ..v2
                }),
                None,
                "{bad}"
            );
        }
        // 1e18 exactly is still a limit.
        let big = MemoryFiles {
            v2_current: Some("1000000000000000000"),
            v2_max: Some("1000000000000000000"),
            ..v2
        };
        assert_eq!(memory_ratio_from(&big), Some(1.0));
        // Usage falls back to v1, then to RSS from statm (second field, in pages).
        let rss = MemoryFiles {
            v2_max: Some("81920"),
            statm: Some("100 10 5 1 0 20 0\n"),
            ..Default::default()
        };
        assert_eq!(memory_ratio_from(&rss), Some(0.5));
        let v1_usage = MemoryFiles {
            v1_usage: Some("40960"),
            ..rss
        };
        assert_eq!(memory_ratio_from(&v1_usage), Some(0.5));
        // A limit but no readable usage.
        assert_eq!(
            memory_ratio_from(&MemoryFiles {
                v2_max: Some("100"),
                ..Default::default()
            }),
            None
        );
        // The live reader does not panic and gives a sane value.
        if let Some(r) = memory_ratio() {
            assert!(r.is_finite() && r >= 0.0);
        }
    }
}
