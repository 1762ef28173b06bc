//! Timelines: the Chrome trace JSON that tracing-chrome writes (threaded style), reduced to per-stage statistics.
//!
//! # Format
//!
//! A JSON array of events `{"ph", "pid", "tid", "ts" (µs, a float), "name", "cat", "args"}`. Per thread
//! (`pid`, `tid`), `B` (begin) and `E` (end, carrying the same name) nest like a call stack; `M` events named
//! `thread_name` name the threads. Instants (`i`), counters and other phases are ignored; the async style's `b`/`e`
//! events are refused (write the trace with `TraceStyle::Threaded`).
//!
//! # Calls, total and self
//!
//! A stage is a span name within a category (the `cat`, i.e. the tracing target: `capture` in
//! `drift_sdk::capture::inbound` and in `…::outbound` are two stages). Each `B`/`E` pair is a *slice*:
//! - duration = E.ts − B.ts; self = duration − the durations of its direct children on the same thread;
//! - a span whose `B` carries `args.seq` (the app's `request` span, entered once per poll of the request's future,
//!   possibly on several threads) makes **one call per distinct seq**, whose duration is the sum of its slices;
//!   any other span makes one call per slice;
//! - total = Σ durations; mean = total ÷ calls; p99 is the nearest-rank 99th percentile of the call durations
//!   (the ⌈0.99·n⌉-th smallest); max is the longest call.
//!
//! A span nested in itself (recursion) has its inner time counted twice in `total_us`, as in any per-call
//! profiler; the stages here do not recurse.
//!
//! # Errors
//!
//! An `E` with no open span on its thread, an `E` whose name is not the innermost open span's, a span still open
//! at the end, and an array that is not closed (a truncated file: the `FlushGuard` was not dropped) are errors.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::from_json;
use super::{ParseError, ParseErrorKind};

/// A timeline reduced to stages. Serialised into `summary.json`; `compare` reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// From the first event's `ts` to the last's, in µs.
    pub wall_us: f64,
    /// The named threads, by pid and tid.
    pub threads: Vec<TraceThread>,
    /// The stages, by total time (most first), then name, then category.
    pub stages: Vec<StageStats>,
}

/// A thread named by an `M` `thread_name` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceThread {
    /// The process id of the trace.
    pub pid: u64,
    /// The thread id of the trace (tracing-chrome numbers threads from 1).
    pub tid: u64,
    /// The thread's name.
    pub name: String,
}

/// One stage's statistics, in µs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    /// The span's name (`capture`, `to_clean_span`, `request`).
    pub name: String,
    /// The span's category: its tracing target (`drift_sdk::processor`).
    pub category: String,
    /// Calls (distinct `seq` values for spans that carry one, slices otherwise).
    pub calls: u64,
    /// Σ durations.
    pub total_us: f64,
    /// Σ (duration − direct children's durations).
    pub self_us: f64,
    /// total ÷ calls.
    pub mean_us: f64,
    /// The nearest-rank 99th percentile of the call durations.
    pub p99_us: f64,
    /// The longest call.
    pub max_us: f64,
}

impl Timeline {
    /// Reads a Chrome trace.
    pub fn from_json(text: &str) -> Result<Timeline, ParseError> {
        parse_chrome(text)
    }

    /// The stage called `name` in `category`.
    #[cfg(test)] // and `compare` (issue 5)
    pub fn stage(&self, name: &str, category: &str) -> Option<&StageStats> {
        self.stages.iter().find(|s| s.name == name && s.category == category)
    }
}

#[derive(Deserialize)]
struct RawEvent {
    ph: String,
    #[serde(default)]
    pid: u64,
    tid: Option<u64>,
    ts: Option<f64>,
    name: Option<String>,
    cat: Option<String>,
    args: Option<Map<String, Value>>,
}

struct Open<'a> {
    name: &'a str,
    cat: &'a str,
    begin: f64,
    seq: Option<String>,
    children_us: f64,
}

#[derive(Default)]
struct StageTally {
    /// Durations of calls without a seq.
    durations: Vec<f64>,
    /// Durations per seq, in order of first appearance.
    by_seq: Vec<f64>,
    seq_index: HashMap<String, usize>,
    total_us: f64,
    self_us: f64,
}

/// Reads a Chrome trace. See the [module documentation](self).
pub fn parse_chrome(text: &str) -> Result<Timeline, ParseError> {
    let events: Vec<RawEvent> = serde_json::from_str(text).map_err(|e| from_json(&e, "Chrome trace"))?;
    let mut open: HashMap<(u64, u64), Vec<Open<'_>>> = HashMap::new();
    let mut stages: BTreeMap<(&str, &str), StageTally> = BTreeMap::new();
    let mut threads: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);

    for (i, event) in events.iter().enumerate() {
        let number = i + 1;
        if let Some(ts) = event.ts {
            first = first.min(ts);
            last = last.max(ts);
        }
        let ph = event.ph.as_str();
        if ph == "M" {
            if event.name.as_deref() == Some("thread_name")
                && let Some(tid) = event.tid
                && let Some(name) = event.args.as_ref().and_then(|a| a.get("name")).and_then(Value::as_str)
            {
                threads.insert((event.pid, tid), name.to_string());
            }
            continue;
        }
        if matches!(ph, "b" | "e" | "n") {
            return Err(ParseError::new(
                ParseErrorKind::Unsupported,
                None,
                format!(
                    "event {number}: async-style event (ph {ph:?}); write the trace with tracing-chrome's \
                     TraceStyle::Threaded"
                ),
            ));
        }
        if ph != "B" && ph != "E" {
            continue;
        }
        let bad = |what: &str| ParseError::invalid(None, format!("event {number} (ph {ph:?}): {what}"));
        let tid = event.tid.ok_or_else(|| bad("no `tid`"))?;
        let ts = event.ts.ok_or_else(|| bad("no `ts`"))?;
        let name = event.name.as_deref().ok_or_else(|| bad("no `name`"))?;
        let stack = open.entry((event.pid, tid)).or_default();
        if ph == "B" {
            let seq = event.args.as_ref().and_then(|a| a.get("seq")).map(|seq| match seq {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            stack.push(Open {
                name,
                cat: event.cat.as_deref().unwrap_or(""),
                begin: ts,
                seq,
                children_us: 0.0,
            });
            continue;
        }
        let Some(span) = stack.pop() else {
            return Err(ParseError::invalid(
                None,
                format!("event {number}: `{name}` ends at {ts} µs on thread {tid}, but no span is open there"),
            ));
        };
        if span.name != name {
            return Err(ParseError::invalid(
                None,
                format!(
                    "event {number}: `{name}` ends at {ts} µs on thread {tid}, but the innermost open span there is \
                     `{}` (begun at {} µs)",
                    span.name, span.begin
                ),
            ));
        }
        let duration = ts - span.begin;
        if duration < 0.0 {
            return Err(ParseError::invalid(
                None,
                format!(
                    "event {number}: `{name}` on thread {tid} ends at {ts} µs, before it began ({} µs)",
                    span.begin
                ),
            ));
        }
        if let Some(parent) = stack.last_mut() {
            parent.children_us += duration;
        }
        let tally = stages.entry((span.name, span.cat)).or_default();
        tally.total_us += duration;
        tally.self_us += (duration - span.children_us).max(0.0);
        match span.seq {
            Some(seq) => match tally.seq_index.get(&seq) {
                Some(&at) => tally.by_seq[at] += duration,
                None => {
                    tally.seq_index.insert(seq, tally.by_seq.len());
                    tally.by_seq.push(duration);
                }
            },
            None => tally.durations.push(duration),
        }
    }

    let mut unclosed: Vec<(&(u64, u64), &Open<'_>)> = open
        .iter()
        .flat_map(|(thread, spans)| spans.iter().map(move |s| (thread, s)))
        .collect();
    unclosed.sort_by(|a, b| a.1.begin.total_cmp(&b.1.begin));
    if let Some(((_, tid), span)) = unclosed.first() {
        return Err(ParseError::invalid(
            None,
            format!(
                "`{}` on thread {tid} (begun at {} µs) never ends, and {} other span(s) are still open: the trace \
                 stops before the process finished (was tracing-chrome's FlushGuard dropped at exit?)",
                span.name,
                span.begin,
                unclosed.len() - 1
            ),
        ));
    }

    let mut stages: Vec<StageStats> = stages
        .into_iter()
        .map(|((name, category), tally)| {
            let mut calls = tally.durations;
            calls.extend(tally.by_seq);
            calls.sort_by(f64::total_cmp);
            let n = calls.len();
            StageStats {
                name: name.to_string(),
                category: category.to_string(),
                calls: n as u64,
                total_us: tally.total_us,
                self_us: tally.self_us,
                mean_us: if n == 0 { 0.0 } else { tally.total_us / n as f64 },
                p99_us: percentile(&calls, 0.99),
                max_us: calls.last().copied().unwrap_or(0.0),
            }
        })
        .collect();
    stages.sort_by(|a, b| {
        b.total_us
            .total_cmp(&a.total_us)
            .then_with(|| (&a.name, &a.category).cmp(&(&b.name, &b.category)))
    });
    Ok(Timeline {
        wall_us: if last >= first { last - first } else { 0.0 },
        threads: threads
            .into_iter()
            .map(|((pid, tid), name)| TraceThread { pid, tid, name })
            .collect(),
        stages,
    })
}

/// The nearest-rank percentile `p` (0 < p ≤ 1) of sorted values: the ⌈p·n⌉-th smallest; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../test_data/timeline-small.json");

    /// (calls, total, self, mean, p99, max) of a stage.
    fn stats(t: &Timeline, name: &str, category: &str) -> (u64, f64, f64, f64, f64, f64) {
        let s = t
            .stage(name, category)
            .unwrap_or_else(|| panic!("no stage {name} in {category}"));
        (s.calls, s.total_us, s.self_us, s.mean_us, s.p99_us, s.max_us)
    }

    #[test]
    fn stages_from_a_small_trace() {
        let t = parse_chrome(SMALL).unwrap();
        // Request 0 is three slices (50 + 25 + 10, on two threads), request 1 two (20 + 10).
        assert_eq!(stats(&t, "request", "demo_app"), (2, 115.0, 60.0, 57.5, 85.0, 85.0));
        assert_eq!(
            stats(&t, "capture", "drift_sdk::capture::inbound"),
            (2, 30.0, 30.0, 15.0, 20.0, 20.0)
        );
        assert_eq!(
            stats(&t, "finalize", "drift_sdk::capture::inbound"),
            (2, 25.0, 22.0, 12.5, 18.0, 18.0)
        );
        assert_eq!(
            stats(&t, "on_end", "drift_sdk::processor"),
            (2, 3.0, 3.0, 1.5, 2.0, 2.0)
        );
        assert_eq!(
            stats(&t, "export_batch", "drift_sdk::processor"),
            (1, 150.0, 13.0, 150.0, 150.0, 150.0)
        );
        assert_eq!(
            stats(&t, "export", "drift_sdk::processor"),
            (1, 37.0, 7.0, 37.0, 37.0, 37.0)
        );
        assert_eq!(
            stats(&t, "to_clean_span", "drift_sdk::to_clean_span"),
            (2, 100.0, 100.0, 50.0, 60.0, 60.0)
        );
        assert_eq!(
            stats(&t, "write_line", "drift_sdk::export::file"),
            (2, 30.0, 30.0, 15.0, 20.0, 20.0)
        );
        let order: Vec<&str> = t.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "export_batch",
                "request",
                "to_clean_span",
                "export",
                "capture",
                "write_line",
                "finalize",
                "on_end"
            ]
        );
        assert_eq!(t.wall_us, 650.0);
        let threads: Vec<(u64, &str)> = t.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
        assert_eq!(
            threads,
            [
                (1, "tokio-runtime-worker"),
                (2, "drift-exporter"),
                (3, "tokio-runtime-worker")
            ]
        );
    }

    #[test]
    fn a_numeric_seq_works_too_and_the_same_name_in_two_categories_is_two_stages() {
        let t = parse_chrome(
            r#"[
{"ph":"B","pid":1,"tid":1,"ts":0,"name":"request","cat":"app","args":{"seq":7}},
{"ph":"B","pid":1,"tid":1,"ts":1,"name":"capture","cat":"in"},
{"ph":"E","pid":1,"tid":1,"ts":2,"name":"capture","cat":"in"},
{"ph":"B","pid":1,"tid":1,"ts":3,"name":"capture","cat":"out"},
{"ph":"E","pid":1,"tid":1,"ts":5,"name":"capture","cat":"out"},
{"ph":"E","pid":1,"tid":1,"ts":6,"name":"request","cat":"app"},
{"ph":"B","pid":1,"tid":1,"ts":10,"name":"request","cat":"app","args":{"seq":7}},
{"ph":"E","pid":1,"tid":1,"ts":14,"name":"request","cat":"app"}
]"#,
        )
        .unwrap();
        assert_eq!(stats(&t, "request", "app"), (1, 10.0, 7.0, 10.0, 10.0, 10.0));
        assert_eq!(stats(&t, "capture", "in").1, 1.0);
        assert_eq!(stats(&t, "capture", "out").1, 2.0);
        assert_eq!(parse_chrome("[\n\n]").unwrap().stages, []);
    }

    #[test]
    fn p99_is_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.99), 198.0);
        assert_eq!(percentile(&values[..100], 0.99), 99.0);
        assert_eq!(percentile(&values[..10], 0.99), 10.0);
        assert_eq!(percentile(&[4.0], 0.99), 4.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }

    #[test]
    fn the_timeline_round_trips_through_json() {
        let t = parse_chrome(SMALL).unwrap();
        assert_eq!(
            serde_json::from_str::<Timeline>(&serde_json::to_string(&t).unwrap()).unwrap(),
            t
        );
    }

    #[track_caller]
    fn check_error(text: &str, kind: ParseErrorKind, want: &str) {
        let err = parse_chrome(text).unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), (kind, want));
    }

    #[test]
    fn errors() {
        use ParseErrorKind::{Invalid, Truncated, Unsupported};
        check_error(
            r#"[{"ph":"B","pid":1,"tid":1,"ts":1,"name":"a"},{"ph":"E","pid":1,"tid":1,"ts":2,"name":"a"},
                {"ph":"E","pid":1,"tid":1,"ts":3,"name":"capture"}]"#,
            Invalid,
            "event 3: `capture` ends at 3 µs on thread 1, but no span is open there",
        );
        // An E on another thread does not close the span of this one.
        check_error(
            r#"[{"ph":"B","pid":1,"tid":1,"ts":1,"name":"a"},{"ph":"E","pid":1,"tid":2,"ts":2,"name":"a"}]"#,
            Invalid,
            "event 2: `a` ends at 2 µs on thread 2, but no span is open there",
        );
        check_error(
            r#"[{"ph":"B","pid":1,"tid":1,"ts":1,"name":"a"},{"ph":"B","pid":1,"tid":1,"ts":2,"name":"b"},
                {"ph":"E","pid":1,"tid":1,"ts":3,"name":"a"}]"#,
            Invalid,
            "event 3: `a` ends at 3 µs on thread 1, but the innermost open span there is `b` (begun at 2 µs)",
        );
        check_error(
            r#"[{"ph":"B","pid":1,"tid":1,"ts":1,"name":"a"},{"ph":"B","pid":1,"tid":2,"ts":2,"name":"b"}]"#,
            Invalid,
            "`a` on thread 1 (begun at 1 µs) never ends, and 1 other span(s) are still open: the trace stops before \
             the process finished (was tracing-chrome's FlushGuard dropped at exit?)",
        );
        check_error(
            r#"[{"ph":"B","pid":1,"tid":1,"ts":5,"name":"a"},{"ph":"E","pid":1,"tid":1,"ts":2,"name":"a"}]"#,
            Invalid,
            "event 2: `a` on thread 1 ends at 2 µs, before it began (5 µs)",
        );
        check_error(
            r#"[{"ph":"B","pid":1,"ts":5,"name":"a"}]"#,
            Invalid,
            "event 1 (ph \"B\"): no `tid`",
        );
        check_error(
            r#"[{"ph":"b","pid":1,"tid":1,"ts":5,"name":"a","id":1}]"#,
            Unsupported,
            "event 1: async-style event (ph \"b\"); write the trace with tracing-chrome's TraceStyle::Threaded",
        );
        check_error(
            "{}",
            Invalid,
            "line 1: not a valid Chrome trace: invalid type: map, expected a sequence",
        );
        // The writer was stopped before the closing bracket.
        let cut = SMALL.trim_end().strip_suffix(']').unwrap();
        let err = parse_chrome(cut).unwrap_err();
        assert_eq!(err.kind(), Truncated);
        assert_eq!(
            err.to_string(),
            "line 40: truncated Chrome trace: the file ends early (EOF while parsing a list); did the profiled \
             process exit cleanly?"
        );
        // Cut inside an event.
        assert_eq!(parse_chrome(&SMALL[..SMALL.len() / 2]).unwrap_err().kind(), Truncated);
    }
}
