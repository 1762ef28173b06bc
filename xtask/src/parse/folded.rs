//! CPU profiles: the demo app's folded stacks (`cpu.folded`) and the self / cumulative maths over them.
//!
//! # Format
//!
//! One line per distinct stack, `thread;root;…;leaf COUNT`, root first. The first frame is the **thread's name**
//! (`tokio-runtime-worker`, `drift-exporter`, …), not a function: it gives the per-thread totals and is never a
//! row of the tables. The count follows the last space (names contain spaces: `<A as B>::f`). Blank lines are
//! skipped; the same stack on two lines is summed.
//!
//! # Self and cumulative
//!
//! Names are [normalised](super::names::normalise) first, so frames differing only by hash or closure spelling are
//! one function.
//! - **cum**(f) = Σ counts of the stacks that contain f at least once (a recursive function counts once per stack);
//! - **self**(f) = Σ counts of the stacks whose leaf is f — after *leaf folding*, below;
//! - flat% = self ÷ total samples; sum% = running Σ of flat% down a table (Go pprof's columns).
//!
//! # Leaf folding (on by default, [`CpuOptions::fold_library_leaves`])
//!
//! With `debug = 1`, pprof reports inlined frames, so the leaf of a sample is often an inlined standard-library
//! helper: `core::ptr::copy_nonoverlapping`, `<u32>::swap_bytes`, `alloc::raw_vec::…`. That helper is not where a
//! reader can act — the function that inlined it is. So when the leaf's crate is `core`, `alloc` or `std`, the
//! sample's self time goes to the nearest caller (towards the root) whose crate is not one of those; if every
//! frame is, the leaf keeps it. Native leaves (`malloc`, `__memmove_avx_unaligned_erms`, `write`) are real calls
//! and stay leaves. Cumulative counts are not affected.
//!
//! # SDK share
//!
//! - [`CpuProfile::sdk_samples`]: samples whose leaf runs on the SDK's behalf, by the rule in
//!   [`names`](super::names#whose-work-a-frame-is): the nearest workspace or host-framework frame above the leaf is
//!   a `drift_sdk` frame. This excludes the application code that the SDK's layer wraps (the handler runs inside
//!   the SDK's `ResponseFuture::poll`) and includes the SDK's callees (sha2, memcpy, malloc, file writes).
//! - [`CpuProfile::sdk_stack_samples`]: samples with any `drift_sdk` frame anywhere on the stack — an upper bound
//!   that counts the wrapped application too.
//! - [`CpuProfile::exporter_samples`]: samples of the SDK's export thread ([`EXPORTER_THREAD`]).
//!
//! # The cumulative view
//!
//! Runtime plumbing (tokio's harness, hyper's dispatcher, axum's router) is 90–100 % cumulative. The default
//! [`CumulativeView::Focus`] keeps the workspace's functions and the functions that ran on the SDK's behalf in some
//! stack (the SDK's callees); [`CumulativeView::All`] keeps everything.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::names::{Owner, is_sdk, is_std, normalise, owner_of, sdk_attribution};
use super::{ParseError, ParseErrorKind};

/// The name of the SDK's export thread.
pub const EXPORTER_THREAD: &str = "drift-exporter";

/// One line of a folded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// The thread's name (the line's first frame).
    pub thread: String,
    /// The frames, root first, as written (not normalised).
    pub frames: Vec<String>,
    /// How many samples had this stack.
    pub count: u64,
}

/// Reads a folded file. Empty input is zero samples, not an error.
///
/// Errors name the line and what is wrong with it; a bad last line without a trailing newline is reported as a
/// truncated file ([`ParseErrorKind::Truncated`]).
pub fn parse_folded(text: &str) -> Result<Vec<Stack>, ParseError> {
    let complete = text.is_empty() || text.ends_with('\n');
    let line_count = text.lines().count();
    let mut stacks = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        match parse_line(line) {
            Ok(Some(stack)) => stacks.push(stack),
            Ok(None) => {}
            Err(problem) if number == line_count && !complete => {
                return Err(ParseError::new(
                    ParseErrorKind::Truncated,
                    Some(number),
                    format!("truncated file: the last line has no newline and {problem}"),
                ));
            }
            Err(problem) => return Err(ParseError::invalid(Some(number), problem)),
        }
    }
    Ok(stacks)
}

fn parse_line(line: &str) -> Result<Option<Stack>, String> {
    let line = line.trim_end();
    if line.trim_start().is_empty() {
        return Ok(None);
    }
    let Some((stack, count)) = line.rsplit_once(' ') else {
        return Err(format!(
            "no sample count: expected `thread;root;…;leaf COUNT`, found {:?}",
            clip(line)
        ));
    };
    let count: u64 = count
        .parse()
        .map_err(|_| format!("the sample count {:?} is not a non-negative integer", clip(count)))?;
    let stack = stack.trim();
    if stack.is_empty() {
        return Err(format!("empty stack: only a count ({count})"));
    }
    let mut parts = stack.split(';');
    let thread = parts.next().unwrap_or_default().to_string();
    let frames: Vec<String> = parts.map(str::to_string).collect();
    if thread.is_empty() {
        return Err("the thread name (the first frame) is empty".into());
    }
    if let Some(k) = frames.iter().position(String::is_empty) {
        return Err(format!("frame {} after the thread name is empty", k + 1));
    }
    Ok(Some(Stack { thread, frames, count }))
}

/// At most 60 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// How a [`CpuProfile`] is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuOptions {
    /// Give the self time of `core` / `alloc` / `std` leaves to their nearest caller outside those crates (see the
    /// [module documentation](self)). By default, true.
    pub fold_library_leaves: bool,
}

impl Default for CpuOptions {
    fn default() -> CpuOptions {
        CpuOptions {
            fold_library_leaves: true,
        }
    }
}

/// A CPU profile reduced to per-function costs. Serialised into `summary.json`; `compare` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// All samples.
    pub total_samples: u64,
    /// Samples per thread name, most first (ties by name).
    pub threads: Vec<ThreadSamples>,
    /// Samples whose leaf runs on the SDK's behalf (see the [module documentation](self#sdk-share)).
    pub sdk_samples: u64,
    /// Samples with a `drift_sdk` frame anywhere on the stack, the wrapped application included.
    pub sdk_stack_samples: u64,
    /// Samples of the export thread ([`EXPORTER_THREAD`]).
    pub exporter_samples: u64,
    /// The options the profile was computed with.
    pub options: CpuOptions,
    /// Every function that appears in a stack, by self samples, then cum samples (most first), then name.
    pub functions: Vec<FunctionCost>,
}

/// The samples of one thread name (tokio's workers share theirs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSamples {
    /// The thread's name as the profiler wrote it.
    pub name: String,
    /// Its samples.
    pub samples: u64,
}

/// One function's costs, in samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCost {
    /// The [normalised](super::names::normalise) name.
    pub name: String,
    /// Whose function it is.
    pub owner: Owner,
    /// Samples with this function as the (folded) leaf.
    pub self_samples: u64,
    /// Samples with this function anywhere on the stack, once per stack.
    pub cum_samples: u64,
    /// Of `cum_samples`, those where it ran on the SDK's behalf: the SDK's own functions and its callees.
    pub sdk_cum_samples: u64,
}

impl FunctionCost {
    /// Whether this is a function of the SDK's crate.
    #[cfg(test)] // and `compare` (issue 5)
    pub fn is_sdk(&self) -> bool {
        is_sdk(&self.name)
    }
}

/// In the focused cumulative view, a library function is listed when at least this many tenths of its samples ran
/// on the SDK's behalf.
pub const FOCUS_SDK_TENTHS: u64 = 9;

/// Which functions a cumulative table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CumulativeView {
    /// The workspace's functions, and the library functions with self time that ran (almost) only on the SDK's
    /// behalf: where the SDK's time lands.
    #[default]
    Focus,
    /// Every function.
    All,
}

#[derive(Default)]
struct Tally {
    self_samples: u64,
    cum_samples: u64,
    sdk_cum_samples: u64,
    /// The last stack (index + 1) counted in `cum_samples` / `sdk_cum_samples`: once per stack.
    cum_seen: usize,
    sdk_seen: usize,
}

impl CpuProfile {
    /// Reads folded text and computes the profile.
    pub fn from_folded(text: &str, options: CpuOptions) -> Result<CpuProfile, ParseError> {
        Ok(CpuProfile::from_stacks(&parse_folded(text)?, options))
    }

    /// Computes the profile of parsed stacks.
    pub fn from_stacks(stacks: &[Stack], options: CpuOptions) -> CpuProfile {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut tallies: Vec<(String, Tally)> = Vec::new();
        let mut threads: BTreeMap<&str, u64> = BTreeMap::new();
        let (mut total, mut sdk, mut sdk_stack, mut exporter) = (0, 0, 0, 0);

        for (k, stack) in stacks.iter().enumerate() {
            let (count, mark) = (stack.count, k + 1);
            total += count;
            *threads.entry(stack.thread.as_str()).or_default() += count;
            if stack.thread == EXPORTER_THREAD {
                exporter += count;
            }
            let names: Vec<String> = stack.frames.iter().map(|f| normalise(f)).collect();
            let on_behalf_of_sdk = sdk_attribution(&names);
            let sample_is_sdks = on_behalf_of_sdk.last() == Some(&true);
            if sample_is_sdks {
                sdk += count;
            }
            if names.iter().any(|n| is_sdk(n)) {
                sdk_stack += count;
            }
            let ids: Vec<usize> = names
                .iter()
                .map(|name| match index.get(name) {
                    Some(&id) => id,
                    None => {
                        index.insert(name.clone(), tallies.len());
                        tallies.push((name.clone(), Tally::default()));
                        tallies.len() - 1
                    }
                })
                .collect();
            for (&id, &for_sdk) in ids.iter().zip(&on_behalf_of_sdk) {
                let tally = &mut tallies[id].1;
                if tally.cum_seen != mark {
                    tally.cum_seen = mark;
                    tally.cum_samples += count;
                }
                // Below an SDK frame, and the sample is the SDK's: a framework future the SDK polls (the
                // task-local scope around the app's handler) does not count the app's samples as the SDK's.
                if for_sdk && sample_is_sdks && tally.sdk_seen != mark {
                    tally.sdk_seen = mark;
                    tally.sdk_cum_samples += count;
                }
            }
            if let Some(at) = self_frame(&names, options) {
                tallies[ids[at]].1.self_samples += count;
            }
        }

        let mut functions: Vec<FunctionCost> = tallies
            .into_iter()
            .map(|(name, t)| FunctionCost {
                owner: owner_of(&name),
                name,
                self_samples: t.self_samples,
                cum_samples: t.cum_samples,
                sdk_cum_samples: t.sdk_cum_samples,
            })
            .collect();
        functions.sort_by(|a, b| {
            (b.self_samples, b.cum_samples)
                .cmp(&(a.self_samples, a.cum_samples))
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut threads: Vec<ThreadSamples> = threads
            .into_iter()
            .map(|(name, samples)| ThreadSamples {
                name: name.to_string(),
                samples,
            })
            .collect();
        threads.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.name.cmp(&b.name)));

        CpuProfile {
            total_samples: total,
            threads,
            sdk_samples: sdk,
            sdk_stack_samples: sdk_stack,
            exporter_samples: exporter,
            options,
            functions,
        }
    }

    /// The function named `name` (normalised), if it appears.
    #[cfg(test)] // and `compare` (issue 5)
    pub fn function(&self, name: &str) -> Option<&FunctionCost> {
        let name = normalise(name);
        self.functions.iter().find(|f| f.name == name)
    }

    /// Functions with self samples, by self (most first), then cum, then name.
    pub fn self_ranking(&self) -> Vec<&FunctionCost> {
        // `functions` is already in this order.
        self.functions.iter().filter(|f| f.self_samples > 0).collect()
    }

    /// Functions of `view`, by cum (most first), then self, then name.
    pub fn cumulative_ranking(&self, view: CumulativeView) -> Vec<&FunctionCost> {
        let mut rows: Vec<&FunctionCost> = self
            .functions
            .iter()
            .filter(|f| match view {
                CumulativeView::All => true,
                // A library function joins the workspace's when it runs almost only on the SDK's behalf (a helper
                // the SDK also calls, such as catch_unwind or malloc, would otherwise bring its whole process-wide
                // cum into a table about the SDK) and does work of its own: the wrappers in between (eight std
                // frames from `File::open` down to `open64`) would repeat the same number row after row.
                CumulativeView::Focus => {
                    f.owner == Owner::Workspace
                        || (f.self_samples > 0 && f.sdk_cum_samples * 10 >= f.cum_samples * FOCUS_SDK_TENTHS)
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.cum_samples, b.self_samples)
                .cmp(&(a.cum_samples, a.self_samples))
                .then_with(|| a.name.cmp(&b.name))
        });
        rows
    }

    /// `samples` as a share of all samples (0 when there are none).
    pub fn share(&self, samples: u64) -> f64 {
        if self.total_samples == 0 {
            0.0
        } else {
            samples as f64 / self.total_samples as f64
        }
    }
}

/// The index of the frame that gets the sample's self time.
fn self_frame(names: &[String], options: CpuOptions) -> Option<usize> {
    let leaf = names.len().checked_sub(1)?;
    if options.fold_library_leaves && is_std(&names[leaf]) {
        return Some((0..leaf).rev().find(|&i| !is_std(&names[i])).unwrap_or(leaf));
    }
    Some(leaf)
}

/// What was measured around a CPU profile, besides the samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuRun {
    /// CPU seconds of the profiled process (its own `getrusage`).
    pub cpu_seconds: f64,
    /// The sampling frequency asked for.
    pub hz: u32,
    /// Requests served during the profile.
    pub requests: u64,
}

/// Converts samples into time per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuScale {
    /// CPU seconds ÷ samples: what one sample stands for.
    pub seconds_per_sample: f64,
    /// Requests served during the profile.
    pub requests: u64,
}

impl CpuScale {
    /// The scale of a profile of `samples` taken over `cpu_seconds` while serving `requests`.
    pub fn new(cpu_seconds: f64, samples: u64, requests: u64) -> CpuScale {
        let seconds_per_sample = if samples == 0 {
            0.0
        } else {
            cpu_seconds / samples as f64
        };
        CpuScale {
            seconds_per_sample,
            requests,
        }
    }

    /// CPU µs per request that `samples` stand for, or `None` without requests.
    pub fn us_per_request(&self, samples: u64) -> Option<f64> {
        (self.requests > 0).then(|| samples as f64 * self.seconds_per_sample / self.requests as f64 * 1e6)
    }
}

/// Below this capture ratio the headline warns that samples were lost.
pub const LOW_CAPTURE_RATIO: f64 = 0.9;

/// The numbers above the CPU tables. Serialisable for `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuHeadline {
    /// All samples.
    pub samples: u64,
    /// CPU seconds of the process.
    pub cpu_seconds: f64,
    /// The sampling frequency asked for.
    pub hz: u32,
    /// Requests served.
    pub requests: u64,
    /// samples ÷ (CPU seconds × Hz); `None` when no CPU time or Hz was measured.
    pub capture_ratio: Option<f64>,
    /// sdk_samples ÷ samples.
    pub sdk_share: f64,
    /// SDK share × CPU seconds ÷ requests, in µs; `None` without requests.
    pub sdk_us_per_request: Option<f64>,
    /// sdk_stack_samples ÷ samples (any SDK frame on the stack).
    pub sdk_stack_share: f64,
    /// exporter_samples ÷ samples.
    pub exporter_share: f64,
}

impl CpuHeadline {
    /// The headline of `profile` measured as `run` says.
    pub fn new(profile: &CpuProfile, run: &CpuRun) -> CpuHeadline {
        let expected = run.cpu_seconds * f64::from(run.hz);
        let sdk_share = profile.share(profile.sdk_samples);
        CpuHeadline {
            samples: profile.total_samples,
            cpu_seconds: run.cpu_seconds,
            hz: run.hz,
            requests: run.requests,
            capture_ratio: (expected > 0.0).then(|| profile.total_samples as f64 / expected),
            sdk_share,
            sdk_us_per_request: (run.requests > 0).then(|| sdk_share * run.cpu_seconds / run.requests as f64 * 1e6),
            sdk_stack_share: profile.share(profile.sdk_stack_samples),
            exporter_share: profile.share(profile.exporter_samples),
        }
    }

    /// Whether the capture ratio is below [`LOW_CAPTURE_RATIO`].
    pub fn capture_is_low(&self) -> bool {
        self.capture_ratio.is_some_and(|r| r < LOW_CAPTURE_RATIO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../test_data/cpu-small.folded");

    fn profile(text: &str) -> CpuProfile {
        CpuProfile::from_folded(text, CpuOptions::default()).unwrap()
    }

    /// (self, cum) of a function that must exist.
    fn costs(p: &CpuProfile, name: &str) -> (u64, u64) {
        let f = p
            .function(name)
            .unwrap_or_else(|| panic!("{name} is not in the profile"));
        (f.self_samples, f.cum_samples)
    }

    const MATHS: &str = "\
worker;main;a;b 10
worker;main;a;c 5
worker;main;a;b 3
worker;main;r;r;r 4
other;main;a 2
";

    #[test]
    fn self_and_cum_from_known_stacks() {
        let p = profile(MATHS);
        assert_eq!(p.total_samples, 24);
        // b's stack is split over two lines: 10 + 3.
        assert_eq!(costs(&p, "b"), (13, 13));
        assert_eq!(costs(&p, "c"), (5, 5));
        assert_eq!(costs(&p, "a"), (2, 20));
        assert_eq!(costs(&p, "main"), (0, 24));
        // r is three frames of one stack: counted once in cum.
        assert_eq!(costs(&p, "r"), (4, 4));
        let names: Vec<&str> = p.self_ranking().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "r", "a"]);
        let cum: Vec<(&str, u64)> = p
            .cumulative_ranking(CumulativeView::All)
            .iter()
            .map(|f| (f.name.as_str(), f.cum_samples))
            .collect();
        assert_eq!(cum, [("main", 24), ("a", 20), ("b", 13), ("c", 5), ("r", 4)]);
        // Σ self = total.
        assert_eq!(p.functions.iter().map(|f| f.self_samples).sum::<u64>(), 24);
    }

    #[test]
    fn the_thread_root_is_not_a_function() {
        let p = profile(MATHS);
        assert!(p.function("worker").is_none() && p.function("other").is_none());
        let threads: Vec<(&str, u64)> = p.threads.iter().map(|t| (t.name.as_str(), t.samples)).collect();
        assert_eq!(threads, [("worker", 22), ("other", 2)]);
        // A stack of only a thread counts as samples of that thread, and of no function.
        let p = profile("idle 7\nworker;f 1\n");
        assert_eq!((p.total_samples, p.functions.len()), (8, 1));
    }

    #[test]
    fn library_leaves_fold_into_their_caller() {
        let text = "\
t;drift_sdk::export::write;core::ptr::copy_nonoverlapping 7
t;drift_sdk::hash::digest;sha2::compress;<u32>::swap_bytes 3
t;drift_sdk::grow;alloc::raw_vec::RawVec<T,A>::grow_one;malloc 2
t;core::ops::function::FnOnce::call_once;alloc::vec::Vec<T>::push 1
t;drift_sdk::grow;alloc::raw_vec::RawVec<T,A>::grow_one;core::ptr::write 5
";
        let on = profile(text);
        assert_eq!(costs(&on, "drift_sdk::export::write"), (7, 7));
        assert_eq!(costs(&on, "core::ptr::copy_nonoverlapping"), (0, 7));
        assert_eq!(costs(&on, "sha2::compress"), (3, 3));
        assert_eq!(costs(&on, "<u32>::swap_bytes"), (0, 3));
        // A native leaf stays; two library frames in a row are both skipped.
        assert_eq!(costs(&on, "malloc"), (2, 2));
        assert_eq!(costs(&on, "drift_sdk::grow"), (5, 7));
        // Nothing outside the standard library to fold into: the leaf keeps it.
        assert_eq!(costs(&on, "alloc::vec::Vec<T>::push"), (1, 1));

        let off = CpuProfile::from_folded(
            text,
            CpuOptions {
                fold_library_leaves: false,
            },
        )
        .unwrap();
        assert_eq!(costs(&off, "drift_sdk::export::write"), (0, 7));
        assert_eq!(costs(&off, "core::ptr::copy_nonoverlapping"), (7, 7));
        assert_eq!(costs(&off, "<u32>::swap_bytes"), (3, 3));
        assert_eq!(costs(&off, "core::ptr::write"), (5, 5));
        assert!(!off.options.fold_library_leaves);
    }

    #[test]
    fn names_are_normalised_and_merged() {
        let p = profile(
            "t;drift_sdk::f::h0123456789abcdef;x::{closure#0} 2\nt;drift_sdk::f::hfedcba9876543210;x::{{closure}} 3\n",
        );
        assert_eq!(costs(&p, "drift_sdk::f"), (0, 5));
        assert_eq!(costs(&p, "x::{{closure}}"), (5, 5));
        assert_eq!(p.functions.len(), 2);
    }

    #[test]
    fn sdk_share_counts_the_sdk_and_its_callees_not_the_app_it_wraps() {
        let p = profile(SMALL);
        assert_eq!(p.total_samples, 100);
        // 6 (finalize on the request thread) + 10 + 4 (export thread).
        assert_eq!(p.sdk_samples, 20);
        // The echo handler's 50 samples run under the SDK's ResponseFuture::poll.
        assert_eq!(p.sdk_stack_samples, 70);
        assert_eq!(p.exporter_samples, 14);
        let sdk_functions: Vec<&str> = p
            .functions
            .iter()
            .filter(|f| f.is_sdk())
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(sdk_functions.len(), 4, "{sdk_functions:?}");
        let echo = p.function("demo_app::endpoints::echo::{{closure}}").unwrap();
        assert_eq!(
            (echo.owner, echo.cum_samples, echo.sdk_cum_samples),
            (Owner::Workspace, 50, 0)
        );
        let write = p.function("__libc_write").unwrap();
        assert_eq!(
            (write.owner, write.cum_samples, write.sdk_cum_samples),
            (Owner::Native, 34, 4)
        );

        let focus: Vec<&str> = p
            .cumulative_ranking(CumulativeView::Focus)
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            focus,
            [
                "<drift_sdk::capture::inbound::ResponseFuture<S,B,F> as core::future::future::Future>::poll",
                "demo_app::endpoints::echo::{{closure}}",
                // Not `__libc_write`: only 4 of its 34 samples are the SDK's (the rest is the app's socket I/O).
                "drift_sdk::processor::ExportWorker::run",
                "sha2::sha256::compress256",
                // Not `<u32>::swap_bytes` nor `Vec::clone`: their self time is folded into their callers.
                "drift_sdk::to_clean_span::hashes",
                "__memmove_avx_unaligned_erms",
                "drift_sdk::capture::inbound::finalize",
                // Not `std::fs::File::write_all`: a wrapper with no self time of its own.
            ]
        );
        assert_eq!(p.cumulative_ranking(CumulativeView::All).len(), p.functions.len());
        assert_eq!(
            p.cumulative_ranking(CumulativeView::All)[0].name,
            "tokio::runtime::task::harness::poll"
        );
    }

    #[test]
    fn a_framework_future_between_the_sdk_and_the_app_is_not_the_sdks() {
        // The SDK's layer polls tokio's task-local scope, which polls the app's handler: 8 samples in the app, 2 in
        // the SDK's own code below the same scope (a CLIENT span's capture in the handler's call).
        let p = profile(
            "w;<drift_sdk::capture::inbound::ResponseFuture<S> as Future>::poll;<tokio::task::task_local::TaskLocalFuture<T,F> as Future>::poll;demo_app::handler;serde_json::to_vec 8\n\
             w;<drift_sdk::capture::inbound::ResponseFuture<S> as Future>::poll;<tokio::task::task_local::TaskLocalFuture<T,F> as Future>::poll;drift_sdk::capture::outbound::capture;malloc 2\n",
        );
        let scope = p
            .function("<tokio::task::task_local::TaskLocalFuture<T,F> as Future>::poll")
            .unwrap();
        assert_eq!((scope.cum_samples, scope.sdk_cum_samples), (10, 2));
        assert_eq!(p.sdk_samples, 2);
        assert_eq!(p.function("serde_json::to_vec").unwrap().sdk_cum_samples, 0);
        assert_eq!(p.function("malloc").unwrap().sdk_cum_samples, 2);
    }

    #[test]
    fn headline_numbers() {
        let p = profile(SMALL);
        let h = CpuHeadline::new(
            &p,
            &CpuRun {
                cpu_seconds: 2.0,
                hz: 99,
                requests: 1000,
            },
        );
        assert_eq!(h.capture_ratio, Some(100.0 / 198.0));
        assert!(h.capture_is_low());
        assert_eq!(h.sdk_share, 0.2);
        // 20 % of 2 CPU s over 1000 requests = 400 µs.
        assert!((h.sdk_us_per_request.unwrap() - 400.0).abs() < 1e-9);
        assert_eq!((h.sdk_stack_share, h.exporter_share), (0.7, 0.14));
        let scale = CpuScale::new(2.0, p.total_samples, 1000);
        assert!((scale.us_per_request(p.sdk_samples).unwrap() - 400.0).abs() < 1e-9);
        assert_eq!(CpuScale::new(2.0, 100, 0).us_per_request(5), None);
        let none = CpuHeadline::new(
            &profile(""),
            &CpuRun {
                cpu_seconds: 0.0,
                hz: 99,
                requests: 0,
            },
        );
        assert_eq!(
            (none.capture_ratio, none.sdk_us_per_request, none.sdk_share),
            (None, None, 0.0)
        );
        assert!(!none.capture_is_low());
    }

    #[test]
    fn empty_input_is_zero_samples() {
        assert_eq!(parse_folded("").unwrap(), []);
        assert_eq!(parse_folded("\n\n").unwrap(), []);
        let p = profile("");
        assert_eq!((p.total_samples, p.functions.len(), p.threads.len()), (0, 0, 0));
    }

    #[test]
    fn a_last_line_without_newline_is_fine_when_complete() {
        let stacks = parse_folded("t;<a as b>::f 3\r\nt;g 4").unwrap();
        assert_eq!(
            stacks,
            [
                Stack {
                    thread: "t".into(),
                    frames: vec!["<a as b>::f".into()],
                    count: 3
                },
                Stack {
                    thread: "t".into(),
                    frames: vec!["g".into()],
                    count: 4
                },
            ]
        );
    }

    #[track_caller]
    fn check_error(text: &str, kind: ParseErrorKind, want: &str) {
        let err = parse_folded(text).unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), (kind, want));
        let line = err.line().expect("folded errors name their line");
        assert_eq!(err.to_string(), format!("line {line}: {}", err.message()));
    }

    #[test]
    fn errors_name_the_line() {
        use ParseErrorKind::Invalid;
        check_error(
            "t;a 5\nt;b\nt;c 1\n",
            Invalid,
            "line 2: no sample count: expected `thread;root;…;leaf COUNT`, found \"t;b\"",
        );
        check_error(
            "t;a 5\nt;a x5\n",
            Invalid,
            "line 2: the sample count \"x5\" is not a non-negative integer",
        );
        check_error(
            "t;a -5\n",
            Invalid,
            "line 1: the sample count \"-5\" is not a non-negative integer",
        );
        check_error("t;a 1\n\n 5\n", Invalid, "line 3: empty stack: only a count (5)");
        check_error(
            "t;a 1\n; 5\n",
            Invalid,
            "line 2: the thread name (the first frame) is empty",
        );
        check_error("t;a;;b 5\n", Invalid, "line 1: frame 2 after the thread name is empty");
    }

    #[test]
    fn a_cut_last_line_is_truncated() {
        check_error(
            "t;a 5\nt;drift_sdk::f;<a",
            ParseErrorKind::Truncated,
            "line 2: truncated file: the last line has no newline and no sample count: expected \
             `thread;root;…;leaf COUNT`, found \"t;drift_sdk::f;<a\"",
        );
        check_error(
            "t;a 5\nt;<a as",
            ParseErrorKind::Truncated,
            "line 2: truncated file: the last line has no newline and the sample count \"as\" is not a \
             non-negative integer",
        );
    }
}
