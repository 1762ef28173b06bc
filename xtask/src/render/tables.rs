//! The terminal tables of `cargo xtask profile`: pure functions from parsed profiles to comfy-tables and text.
//!
//! Every table uses [`UTF8_FULL_CONDENSED`] with content arrangement disabled and no TTY styling, so its text
//! depends only on its input (not on the terminal's width): snapshots are stable and the same text can go into the
//! HTML report. Numbers are right-aligned; rows come in the parsed profiles' deterministic orders (ties by name).
//!
//! Function names longer than [`MAX_NAME_CHARS`] are shortened by [`shorten_name`]: generic arguments first, then
//! the start of the name (the end — type and method — is the informative part).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use crate::parse::chrome::Timeline;
use crate::parse::dhat::HeapProfile;
use crate::parse::folded::{CpuHeadline, CpuProfile, CpuScale, CumulativeView, FunctionCost, LOW_CAPTURE_RATIO};
use crate::parse::threads::{THREAD_SHARE_TOLERANCE_POINTS, ThreadTable};
use crate::perf::PerfCheck;

/// Function names are shortened to at most this many characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A table with `header`, the columns at `right` right-aligned.
pub(crate) fn table(header: &[&str], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(header.to_vec());
    for &i in right {
        if let Some(column) = t.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------------------- cpu

/// Go pprof's columns plus time per request.
const CPU_HEADER: [&str; 8] = [
    "flat",
    "flat%",
    "sum%",
    "cum",
    "cum%",
    "flat µs/req",
    "cum µs/req",
    "function",
];

fn cpu_table(profile: &CpuProfile, rows: &[&FunctionCost], scale: &CpuScale) -> Table {
    let mut t = table(&CPU_HEADER, &[0, 1, 2, 3, 4, 5, 6]);
    let mut sum = 0.0;
    for f in rows {
        let flat = profile.share(f.self_samples);
        sum += flat;
        t.add_row(vec![
            thousands(f.self_samples),
            percent(flat),
            percent(sum),
            thousands(f.cum_samples),
            percent(profile.share(f.cum_samples)),
            per_request(scale.us_per_request(f.self_samples)),
            per_request(scale.us_per_request(f.cum_samples)),
            shorten_name(&f.name, MAX_NAME_CHARS),
        ]);
    }
    t
}

/// The top `top` functions by cumulative samples, among those `view` keeps. sum% is the running Σ of flat% down
/// the table, as Go pprof prints it.
pub fn cumulative_table(profile: &CpuProfile, view: CumulativeView, top: usize, scale: &CpuScale) -> Table {
    let rows: Vec<&FunctionCost> = profile.cumulative_ranking(view).into_iter().take(top).collect();
    cpu_table(profile, &rows, scale)
}

/// The top `top` functions by self samples; sum% is the running Σ of flat%.
pub fn self_table(profile: &CpuProfile, top: usize, scale: &CpuScale) -> Table {
    let rows: Vec<&FunctionCost> = profile.self_ranking().into_iter().take(top).collect();
    cpu_table(profile, &rows, scale)
}

/// The lines above the CPU tables: samples, capture ratio (with a warning below 90 %), the SDK's share and µs per
/// request, the export thread's share. Ends with a newline.
pub fn cpu_headline(h: &CpuHeadline) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: String| out.push_str(&format!("{label:<15}{text}\n"));
    line(
        "samples",
        format!(
            "{} at {} Hz over {} CPU seconds, {} requests",
            thousands(h.samples),
            h.hz,
            fixed(h.cpu_seconds, 2),
            thousands(h.requests)
        ),
    );
    line(
        "capture ratio",
        match h.capture_ratio {
            Some(r) => format!("{} (samples ÷ (CPU seconds × Hz))", percent(r)),
            None => "unknown (no CPU time or frequency measured)".into(),
        },
    );
    if h.capture_is_low() {
        line(
            "warning",
            format!(
                "the capture ratio is below {}: samples were lost (SIGPROF fires at most once per kernel tick; \
                 use 99 Hz and a longer run). Shares stay fair, counts do not.",
                percent(LOW_CAPTURE_RATIO)
            ),
        );
    }
    line(
        "SDK share",
        format!(
            "{} of CPU samples (the SDK and what it calls) = {}",
            percent(h.sdk_share),
            match h.sdk_us_per_request {
                Some(us) => format!("{} µs of CPU per request", fixed(us, 2)),
                None => "no requests to divide by".into(),
            }
        ),
    );
    line(
        "",
        format!(
            "({} of samples have an SDK frame anywhere on the stack, counting the app code under the SDK's layer)",
            percent(h.sdk_stack_share)
        ),
    );
    line("export thread", format!("{} of samples", percent(h.exporter_share)));
    out
}

/// Each thread group's CPU by its own clocks beside its samples (see `parse::threads`); a gap beyond the tolerance
/// is marked `OFF`.
pub fn thread_table(threads: &ThreadTable) -> Table {
    let mut t = table(
        &[
            "thread",
            "n",
            "CPU s (own clock)",
            "CPU %",
            "samples",
            "samples %",
            "gap (points)",
            "capture",
        ],
        &[1, 2, 3, 4, 5, 6, 7],
    );
    for r in &threads.rows {
        let gap = r.gap_points();
        t.add_row(vec![
            r.name.clone(),
            thousands(r.threads),
            fixed(r.cpu_seconds, 3),
            percent(r.cpu_share),
            thousands(r.samples),
            percent(r.sample_share),
            format!(
                "{gap:+.1}{}",
                if gap.abs() > THREAD_SHARE_TOLERANCE_POINTS {
                    " OFF"
                } else {
                    ""
                }
            ),
            r.capture.map_or_else(|| "-".into(), percent),
        ]);
    }
    t
}

/// perf's share of the samples per thread group beside the sampler's and the clocks'.
pub fn perf_threads_table(check: &PerfCheck) -> Table {
    let mut t = table(
        &["thread", "perf", "sampler", "own clock", "sampler − perf"],
        &[1, 2, 3, 4],
    );
    for r in &check.threads {
        t.add_row(vec![
            r.name.clone(),
            percent(r.perf_share),
            percent(r.sampler_share),
            r.clock_share.map_or_else(|| "-".into(), percent),
            format!("{:+.1}", (r.sampler_share - r.perf_share) * 100.0),
        ]);
    }
    t
}

/// The sampler's and perf's self share of the functions either puts on top, perf's kernel time charged to the
/// first user-space frame.
pub fn perf_functions_table(check: &PerfCheck) -> Table {
    let mut t = table(
        &["sampler self%", "perf self%", "sampler − perf", "function"],
        &[0, 1, 2],
    );
    for f in &check.functions {
        t.add_row(vec![
            percent(f.sampler_share),
            percent(f.perf_share),
            format!("{:+.1}", f.gap_points()),
            shorten_name(&f.name, MAX_NAME_CHARS),
        ]);
    }
    t
}

/// perf's top kernel functions by self samples.
pub fn perf_kernel_table(check: &PerfCheck) -> Table {
    let mut t = table(&["perf self%", "kernel function"], &[0]);
    for (name, share) in &check.kernel_functions {
        t.add_row(vec![percent(*share), shorten_name(name, MAX_NAME_CHARS)]);
    }
    t
}

// ---------------------------------------------------------------------------------------------------------- mem

/// The order of an allocation-site table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemRanking {
    /// By bytes allocated over the run.
    Bytes,
    /// By blocks (allocations) over the run.
    Blocks,
    /// By bytes live at the global peak.
    Peak,
}

impl MemRanking {
    /// All three, in the order they are printed.
    pub const ALL: [MemRanking; 3] = [MemRanking::Bytes, MemRanking::Blocks, MemRanking::Peak];

    /// A title for the table.
    pub fn title(self) -> &'static str {
        match self {
            MemRanking::Bytes => "allocation sites by bytes allocated",
            MemRanking::Blocks => "allocation sites by allocations",
            MemRanking::Peak => "allocation sites by bytes live at the global peak",
        }
    }
}

/// The top `top` allocation sites by `ranking`; `requests` served during the profile give the per-request columns
/// ("-" when 0). The % column is the share of the ranking's total (bytes, blocks or bytes at peak).
pub fn mem_sites_table(profile: &HeapProfile, ranking: MemRanking, top: usize, requests: u64) -> Table {
    let totals = &profile.totals;
    let (sites, share_header) = match ranking {
        MemRanking::Bytes => (profile.top_by_bytes(), "% bytes"),
        MemRanking::Blocks => (profile.top_by_blocks(), "% blocks"),
        MemRanking::Peak => (profile.top_by_peak(), "% peak"),
    };
    let header = [
        "bytes",
        share_header,
        "blocks",
        "bytes/req",
        "allocs/req",
        "at peak",
        "function",
        "location",
    ];
    let mut t = table(&header, &[0, 1, 2, 3, 4, 5]);
    for s in sites.into_iter().take(top) {
        t.add_row(vec![
            bytes(s.bytes as f64),
            percent(match ranking {
                MemRanking::Bytes => ratio(s.bytes, totals.bytes),
                MemRanking::Blocks => ratio(s.blocks, totals.blocks),
                MemRanking::Peak => ratio(s.peak_bytes, totals.peak_bytes),
            }),
            thousands(s.blocks),
            per_request_with(requests, s.bytes, bytes),
            per_request_with(requests, s.blocks, |x| fixed(x, 2)),
            bytes(s.peak_bytes as f64),
            shorten_name(&s.function, MAX_NAME_CHARS),
            if s.location.is_empty() {
                "-".into()
            } else {
                s.location.clone()
            },
        ]);
    }
    t
}

/// Totals: allocated, at the global peak, at exit, per request, and the SDK's share.
pub fn mem_totals_table(profile: &HeapProfile, requests: u64) -> Table {
    let t0 = &profile.totals;
    let mut t = table(&["", "bytes", "blocks"], &[1, 2]);
    t.add_row(vec!["allocated".into(), bytes(t0.bytes as f64), thousands(t0.blocks)]);
    t.add_row(vec![
        "live at global peak".into(),
        bytes(t0.peak_bytes as f64),
        thousands(t0.peak_blocks),
    ]);
    t.add_row(vec![
        "live at exit".into(),
        bytes(t0.end_bytes as f64),
        thousands(t0.end_blocks),
    ]);
    t.add_row(vec![
        format!("per request ({})", thousands(requests)),
        per_request_with(requests, t0.bytes, bytes),
        per_request_with(requests, t0.blocks, |x| fixed(x, 2)),
    ]);
    t.add_row(vec![
        "SDK (its work and callees)".into(),
        format!(
            "{} ({})",
            bytes(profile.sdk_bytes as f64),
            percent(ratio(profile.sdk_bytes, t0.bytes))
        ),
        format!(
            "{} ({})",
            thousands(profile.sdk_blocks),
            percent(ratio(profile.sdk_blocks, t0.blocks))
        ),
    ]);
    t.add_row(vec![
        "SDK per request".into(),
        per_request_with(requests, profile.sdk_bytes, bytes),
        per_request_with(requests, profile.sdk_blocks, |x| fixed(x, 2)),
    ]);
    t.add_row(vec![
        "SDK live at global peak".into(),
        format!(
            "{} ({})",
            bytes(profile.sdk_peak_bytes as f64),
            percent(ratio(profile.sdk_peak_bytes, t0.peak_bytes))
        ),
        String::new(),
    ]);
    t.add_row(vec![
        "any SDK frame on the stack".into(),
        format!(
            "{} ({})",
            bytes(profile.sdk_stack_bytes as f64),
            percent(ratio(profile.sdk_stack_bytes, t0.bytes))
        ),
        String::new(),
    ]);
    t
}

// ----------------------------------------------------------------------------------------------------- timeline

/// One row per stage: calls, total and self time, mean, p99 and max per call.
pub fn timeline_table(timeline: &Timeline) -> Table {
    let header = [
        "stage", "category", "calls", "total ms", "self ms", "mean µs", "p99 µs", "max µs",
    ];
    let mut t = table(&header, &[2, 3, 4, 5, 6, 7]);
    for s in &timeline.stages {
        t.add_row(vec![
            s.name.clone(),
            s.category.clone(),
            thousands(s.calls),
            fixed(s.total_us / 1000.0, 3),
            fixed(s.self_us / 1000.0, 3),
            fixed(s.mean_us, 2),
            fixed(s.p99_us, 2),
            fixed(s.max_us, 2),
        ]);
    }
    t
}

// ------------------------------------------------------------------------------------------------------ helpers

/// Shortens a function name to at most `max` characters: first by replacing generic arguments with `…`
/// (`DriftService<S>` → `DriftService<…>`), then by cutting the start, keeping the end (the type and method) after
/// a leading `…`.
pub fn shorten_name(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let collapsed = collapse_generics(name).unwrap_or_else(|| name.to_string());
    let count = collapsed.chars().count();
    if count <= max {
        return collapsed;
    }
    let keep = max.saturating_sub(1);
    let tail: String = collapsed.chars().skip(count - keep).collect();
    // Start at a path separator rather than inside an identifier, when there is one.
    match tail.find("::") {
        Some(at) if at > 0 => format!("…{}", &tail[at..]),
        _ => format!("…{tail}"),
    }
}

/// Replaces the contents of each outermost generic argument list (a `<` right after an identifier) with `…`;
/// `None` when the brackets do not balance.
fn collapse_generics(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut prev: Option<char> = None;
    for c in name.chars() {
        if depth > 0 {
            match c {
                '<' => depth += 1,
                // `->` in a function type is not a closing bracket.
                '>' if prev != Some('-') => {
                    depth -= 1;
                    if depth == 0 {
                        out.push_str("…>");
                    }
                }
                _ => {}
            }
        } else if c == '<' && prev.is_some_and(|p| p.is_alphanumeric() || p == '_') {
            depth = 1;
            out.push('<');
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    (depth == 0).then_some(out)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// A fraction as a percentage with two decimals, Go pprof's way: `12.34%`.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn per_request(us: Option<f64>) -> String {
    us.map_or_else(|| "-".into(), |us| fixed(us, 2))
}

fn per_request_with(requests: u64, value: u64, format: impl Fn(f64) -> String) -> String {
    if requests == 0 {
        "-".into()
    } else {
        format(value as f64 / requests as f64)
    }
}

/// An integer with thousands separators: `12,345`.
pub(crate) fn thousands(n: u64) -> String {
    group(&n.to_string())
}

/// A number with `decimals` decimals and thousands separators: `1,234.57`.
pub(crate) fn fixed(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    match text.split_once('.') {
        Some((int, frac)) => format!("{sign}{}.{frac}", group(int)),
        None => format!("{sign}{}", group(text)),
    }
}

fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units: `812 B`, `12.3 KiB`, `4.56 MiB`; fractions of a byte (per request) keep one decimal.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return if n.fract() == 0.0 {
            format!("{} B", fixed(n, 0))
        } else {
            format!("{} B", fixed(n, 1))
        };
    }
    let mut value = n / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::parse::folded::{CpuOptions, CpuRun};

    #[track_caller]
    fn check(actual: impl std::fmt::Display, expect: Expect) {
        expect.assert_eq(&actual.to_string());
    }

    const CPU_SMALL: &str = include_str!("../../test_data/cpu-small.folded");
    const DHAT_SMALL: &str = include_str!("../../test_data/dhat-small.json");
    const TIMELINE_SMALL: &str = include_str!("../../test_data/timeline-small.json");

    fn cpu_small() -> CpuProfile {
        CpuProfile::from_folded(CPU_SMALL, CpuOptions::default()).unwrap()
    }

    #[test]
    fn self_table_has_go_pprof_columns_and_a_running_sum() {
        let p = CpuProfile::from_folded(
            "w;main;a;b 10\nw;main;a;c 5\nw;main;a;b 3\nw;main;r;r;r 4\no;main;a 2\n",
            CpuOptions::default(),
        )
        .unwrap();
        // 24 samples over 0.24 CPU s (10 ms a sample), 100 requests: a sample is 100 µs per request.
        let scale = CpuScale::new(0.24, 24, 100);
        check(
            self_table(&p, 10, &scale),
            expect![[r#"
                ┌──────┬────────┬─────────┬─────┬────────┬─────────────┬────────────┬──────────┐
                │ flat ┆  flat% ┆    sum% ┆ cum ┆   cum% ┆ flat µs/req ┆ cum µs/req ┆ function │
                ╞══════╪════════╪═════════╪═════╪════════╪═════════════╪════════════╪══════════╡
                │   13 ┆ 54.17% ┆  54.17% ┆  13 ┆ 54.17% ┆    1,300.00 ┆   1,300.00 ┆ b        │
                │    5 ┆ 20.83% ┆  75.00% ┆   5 ┆ 20.83% ┆      500.00 ┆     500.00 ┆ c        │
                │    4 ┆ 16.67% ┆  91.67% ┆   4 ┆ 16.67% ┆      400.00 ┆     400.00 ┆ r        │
                │    2 ┆  8.33% ┆ 100.00% ┆  20 ┆ 83.33% ┆      200.00 ┆   2,000.00 ┆ a        │
                └──────┴────────┴─────────┴─────┴────────┴─────────────┴────────────┴──────────┘"#]],
        );
        check(
            self_table(&p, 2, &CpuScale::new(0.24, 24, 0)),
            expect![[r#"
            ┌──────┬────────┬────────┬─────┬────────┬─────────────┬────────────┬──────────┐
            │ flat ┆  flat% ┆   sum% ┆ cum ┆   cum% ┆ flat µs/req ┆ cum µs/req ┆ function │
            ╞══════╪════════╪════════╪═════╪════════╪═════════════╪════════════╪══════════╡
            │   13 ┆ 54.17% ┆ 54.17% ┆  13 ┆ 54.17% ┆           - ┆          - ┆ b        │
            │    5 ┆ 20.83% ┆ 75.00% ┆   5 ┆ 20.83% ┆           - ┆          - ┆ c        │
            └──────┴────────┴────────┴─────┴────────┴─────────────┴────────────┴──────────┘"#]],
        );
    }

    #[test]
    fn cumulative_tables() {
        let p = cpu_small();
        let scale = CpuScale::new(1.0, p.total_samples, 1000);
        check(
            cumulative_table(&p, CumulativeView::Focus, 20, &scale),
            expect![[r#"
                ┌──────┬────────┬────────┬─────┬────────┬─────────────┬────────────┬────────────────────────────────────────────────────────────────────────────────────────────┐
                │ flat ┆  flat% ┆   sum% ┆ cum ┆   cum% ┆ flat µs/req ┆ cum µs/req ┆ function                                                                                   │
                ╞══════╪════════╪════════╪═════╪════════╪═════════════╪════════════╪════════════════════════════════════════════════════════════════════════════════════════════╡
                │    0 ┆  0.00% ┆  0.00% ┆  56 ┆ 56.00% ┆        0.00 ┆     560.00 ┆ <drift_sdk::capture::inbound::ResponseFuture<S,B,F> as core::future::future::Future>::poll │
                │    0 ┆  0.00% ┆  0.00% ┆  50 ┆ 50.00% ┆        0.00 ┆     500.00 ┆ demo_app::endpoints::echo::{{closure}}                                                     │
                │    0 ┆  0.00% ┆  0.00% ┆  14 ┆ 14.00% ┆        0.00 ┆     140.00 ┆ drift_sdk::processor::ExportWorker::run                                                    │
                │   10 ┆ 10.00% ┆ 10.00% ┆  10 ┆ 10.00% ┆      100.00 ┆     100.00 ┆ sha2::sha256::compress256                                                                  │
                │    0 ┆  0.00% ┆ 10.00% ┆  10 ┆ 10.00% ┆        0.00 ┆     100.00 ┆ drift_sdk::to_clean_span::hashes                                                           │
                │    6 ┆  6.00% ┆ 16.00% ┆   6 ┆  6.00% ┆       60.00 ┆      60.00 ┆ __memmove_avx_unaligned_erms                                                               │
                │    0 ┆  0.00% ┆ 16.00% ┆   6 ┆  6.00% ┆        0.00 ┆      60.00 ┆ drift_sdk::capture::inbound::finalize                                                      │
                └──────┴────────┴────────┴─────┴────────┴─────────────┴────────────┴────────────────────────────────────────────────────────────────────────────────────────────┘"#]],
        );
        check(
            cumulative_table(&p, CumulativeView::All, 5, &scale),
            expect![[r#"
            ┌──────┬────────┬────────┬─────┬────────┬─────────────┬────────────┬────────────────────────────────────────────────────────────────────────────────────────────┐
            │ flat ┆  flat% ┆   sum% ┆ cum ┆   cum% ┆ flat µs/req ┆ cum µs/req ┆ function                                                                                   │
            ╞══════╪════════╪════════╪═════╪════════╪═════════════╪════════════╪════════════════════════════════════════════════════════════════════════════════════════════╡
            │    0 ┆  0.00% ┆  0.00% ┆  86 ┆ 86.00% ┆        0.00 ┆     860.00 ┆ tokio::runtime::task::harness::poll                                                        │
            │    0 ┆  0.00% ┆  0.00% ┆  56 ┆ 56.00% ┆        0.00 ┆     560.00 ┆ <drift_sdk::capture::inbound::ResponseFuture<S,B,F> as core::future::future::Future>::poll │
            │   50 ┆ 50.00% ┆ 50.00% ┆  50 ┆ 50.00% ┆      500.00 ┆     500.00 ┆ malloc                                                                                     │
            │    0 ┆  0.00% ┆ 50.00% ┆  50 ┆ 50.00% ┆        0.00 ┆     500.00 ┆ <axum::routing::route::RouteFuture<E> as core::future::future::Future>::poll               │
            │    0 ┆  0.00% ┆ 50.00% ┆  50 ┆ 50.00% ┆        0.00 ┆     500.00 ┆ demo_app::endpoints::echo::{{closure}}                                                     │
            └──────┴────────┴────────┴─────┴────────┴─────────────┴────────────┴────────────────────────────────────────────────────────────────────────────────────────────┘"#]],
        );
        check(
            self_table(&p, 20, &scale),
            expect![[r#"
            ┌──────┬────────┬─────────┬─────┬────────┬─────────────┬────────────┬──────────────────────────────┐
            │ flat ┆  flat% ┆    sum% ┆ cum ┆   cum% ┆ flat µs/req ┆ cum µs/req ┆ function                     │
            ╞══════╪════════╪═════════╪═════╪════════╪═════════════╪════════════╪══════════════════════════════╡
            │   50 ┆ 50.00% ┆  50.00% ┆  50 ┆ 50.00% ┆      500.00 ┆     500.00 ┆ malloc                       │
            │   34 ┆ 34.00% ┆  84.00% ┆  34 ┆ 34.00% ┆      340.00 ┆     340.00 ┆ __libc_write                 │
            │   10 ┆ 10.00% ┆  94.00% ┆  10 ┆ 10.00% ┆      100.00 ┆     100.00 ┆ sha2::sha256::compress256    │
            │    6 ┆  6.00% ┆ 100.00% ┆   6 ┆  6.00% ┆       60.00 ┆      60.00 ┆ __memmove_avx_unaligned_erms │
            └──────┴────────┴─────────┴─────┴────────┴─────────────┴────────────┴──────────────────────────────┘"#]],
        );
    }

    #[test]
    fn headline() {
        let p = cpu_small();
        let run = CpuRun {
            cpu_seconds: 1.0,
            hz: 99,
            requests: 1000,
        };
        check(
            cpu_headline(&CpuHeadline::new(&p, &run)),
            expect![[r#"
            samples        100 at 99 Hz over 1.00 CPU seconds, 1,000 requests
            capture ratio  101.01% (samples ÷ (CPU seconds × Hz))
            SDK share      20.00% of CPU samples (the SDK and what it calls) = 200.00 µs of CPU per request
                           (70.00% of samples have an SDK frame anywhere on the stack, counting the app code under the SDK's layer)
            export thread  14.00% of samples
        "#]],
        );
        // 100 samples where 199 were expected: a warning.
        let run = CpuRun {
            cpu_seconds: 1.0,
            hz: 199,
            requests: 0,
        };
        check(
            cpu_headline(&CpuHeadline::new(&p, &run)),
            expect![[r#"
            samples        100 at 199 Hz over 1.00 CPU seconds, 0 requests
            capture ratio  50.25% (samples ÷ (CPU seconds × Hz))
            warning        the capture ratio is below 90.00%: samples were lost (SIGPROF fires at most once per kernel tick; use 99 Hz and a longer run). Shares stay fair, counts do not.
            SDK share      20.00% of CPU samples (the SDK and what it calls) = no requests to divide by
                           (70.00% of samples have an SDK frame anywhere on the stack, counting the app code under the SDK's layer)
            export thread  14.00% of samples
        "#]],
        );
    }

    #[test]
    fn mem_tables() {
        let p = HeapProfile::from_json(DHAT_SMALL).unwrap();
        for ranking in MemRanking::ALL {
            let text = format!("{}\n{}", ranking.title(), mem_sites_table(&p, ranking, 4, 10));
            match ranking {
                MemRanking::Bytes => check(
                    text,
                    expect![[r#"
                    allocation sites by bytes allocated
                    ┌──────────┬─────────┬────────┬───────────┬────────────┬──────────┬────────────────────────────────────────┬──────────────────────────────────────┐
                    │    bytes ┆ % bytes ┆ blocks ┆ bytes/req ┆ allocs/req ┆  at peak ┆ function                               ┆ location                             │
                    ╞══════════╪═════════╪════════╪═══════════╪════════════╪══════════╪════════════════════════════════════════╪══════════════════════════════════════╡
                    │ 7.81 KiB ┆  47.57% ┆      4 ┆     800 B ┆       0.40 ┆ 1.95 KiB ┆ demo_app::endpoints::echo::{{closure}} ┆ demo-app/src/endpoints.rs:88         │
                    │ 4.88 KiB ┆  29.73% ┆     15 ┆     500 B ┆       1.50 ┆  1,000 B ┆ drift_sdk::to_clean_span::encode_body  ┆ sdk/src/to_clean_span.rs:210         │
                    │ 2.93 KiB ┆  17.84% ┆     30 ┆     300 B ┆       3.00 ┆    500 B ┆ hyper::proto::h1::role::Server::parse  ┆ hyper-1.7.0/src/proto/h1/role.rs:120 │
                    │    600 B ┆   3.57% ┆      3 ┆      60 B ┆       0.30 ┆    200 B ┆ drift_sdk::capture::inbound::finalize  ┆ sdk/src/capture/inbound.rs:250       │
                    └──────────┴─────────┴────────┴───────────┴────────────┴──────────┴────────────────────────────────────────┴──────────────────────────────────────┘"#]],
                ),
                MemRanking::Blocks => check(
                    text,
                    expect![[r#"
                    allocation sites by allocations
                    ┌──────────┬──────────┬────────┬───────────┬────────────┬──────────┬────────────────────────────────────────┬──────────────────────────────────────┐
                    │    bytes ┆ % blocks ┆ blocks ┆ bytes/req ┆ allocs/req ┆  at peak ┆ function                               ┆ location                             │
                    ╞══════════╪══════════╪════════╪═══════════╪════════════╪══════════╪════════════════════════════════════════╪══════════════════════════════════════╡
                    │ 2.93 KiB ┆   54.55% ┆     30 ┆     300 B ┆       3.00 ┆    500 B ┆ hyper::proto::h1::role::Server::parse  ┆ hyper-1.7.0/src/proto/h1/role.rs:120 │
                    │ 4.88 KiB ┆   27.27% ┆     15 ┆     500 B ┆       1.50 ┆  1,000 B ┆ drift_sdk::to_clean_span::encode_body  ┆ sdk/src/to_clean_span.rs:210         │
                    │ 7.81 KiB ┆    7.27% ┆      4 ┆     800 B ┆       0.40 ┆ 1.95 KiB ┆ demo_app::endpoints::echo::{{closure}} ┆ demo-app/src/endpoints.rs:88         │
                    │    600 B ┆    5.45% ┆      3 ┆      60 B ┆       0.30 ┆    200 B ┆ drift_sdk::capture::inbound::finalize  ┆ sdk/src/capture/inbound.rs:250       │
                    └──────────┴──────────┴────────┴───────────┴────────────┴──────────┴────────────────────────────────────────┴──────────────────────────────────────┘"#]],
                ),
                MemRanking::Peak => check(
                    text,
                    expect![[r#"
                    allocation sites by bytes live at the global peak
                    ┌──────────┬────────┬────────┬───────────┬────────────┬──────────┬────────────────────────────────────────┬──────────────────────────────────────┐
                    │    bytes ┆ % peak ┆ blocks ┆ bytes/req ┆ allocs/req ┆  at peak ┆ function                               ┆ location                             │
                    ╞══════════╪════════╪════════╪═══════════╪════════════╪══════════╪════════════════════════════════════════╪══════════════════════════════════════╡
                    │ 7.81 KiB ┆ 53.82% ┆      4 ┆     800 B ┆       0.40 ┆ 1.95 KiB ┆ demo_app::endpoints::echo::{{closure}} ┆ demo-app/src/endpoints.rs:88         │
                    │ 4.88 KiB ┆ 26.91% ┆     15 ┆     500 B ┆       1.50 ┆  1,000 B ┆ drift_sdk::to_clean_span::encode_body  ┆ sdk/src/to_clean_span.rs:210         │
                    │ 2.93 KiB ┆ 13.46% ┆     30 ┆     300 B ┆       3.00 ┆    500 B ┆ hyper::proto::h1::role::Server::parse  ┆ hyper-1.7.0/src/proto/h1/role.rs:120 │
                    │    600 B ┆  5.38% ┆      3 ┆      60 B ┆       0.30 ┆    200 B ┆ drift_sdk::capture::inbound::finalize  ┆ sdk/src/capture/inbound.rs:250       │
                    └──────────┴────────┴────────┴───────────┴────────────┴──────────┴────────────────────────────────────────┴──────────────────────────────────────┘"#]],
                ),
            }
        }
        check(
            mem_totals_table(&p, 10),
            expect![[r#"
            ┌────────────────────────────┬───────────────────┬─────────────┐
            │                            ┆             bytes ┆      blocks │
            ╞════════════════════════════╪═══════════════════╪═════════════╡
            │ allocated                  ┆          16.4 KiB ┆          55 │
            │ live at global peak        ┆          3.63 KiB ┆          10 │
            │ live at exit               ┆             180 B ┆           3 │
            │ per request (10)           ┆          1.64 KiB ┆        5.50 │
            │ SDK (its work and callees) ┆ 5.47 KiB (33.30%) ┆ 18 (32.73%) │
            │ SDK per request            ┆             560 B ┆        1.80 │
            │ SDK live at global peak    ┆ 1.17 KiB (32.29%) ┆             │
            │ any SDK frame on the stack ┆ 13.5 KiB (82.06%) ┆             │
            └────────────────────────────┴───────────────────┴─────────────┘"#]],
        );
        check(
            mem_totals_table(&p, 0),
            expect![[r#"
            ┌────────────────────────────┬───────────────────┬─────────────┐
            │                            ┆             bytes ┆      blocks │
            ╞════════════════════════════╪═══════════════════╪═════════════╡
            │ allocated                  ┆          16.4 KiB ┆          55 │
            │ live at global peak        ┆          3.63 KiB ┆          10 │
            │ live at exit               ┆             180 B ┆           3 │
            │ per request (0)            ┆                 - ┆           - │
            │ SDK (its work and callees) ┆ 5.47 KiB (33.30%) ┆ 18 (32.73%) │
            │ SDK per request            ┆                 - ┆           - │
            │ SDK live at global peak    ┆ 1.17 KiB (32.29%) ┆             │
            │ any SDK frame on the stack ┆ 13.5 KiB (82.06%) ┆             │
            └────────────────────────────┴───────────────────┴─────────────┘"#]],
        );
    }

    #[test]
    fn timeline() {
        let t = Timeline::from_json(TIMELINE_SMALL).unwrap();
        check(
            timeline_table(&t),
            expect![[r#"
            ┌───────────────┬─────────────────────────────┬───────┬──────────┬─────────┬─────────┬────────┬────────┐
            │ stage         ┆ category                    ┆ calls ┆ total ms ┆ self ms ┆ mean µs ┆ p99 µs ┆ max µs │
            ╞═══════════════╪═════════════════════════════╪═══════╪══════════╪═════════╪═════════╪════════╪════════╡
            │ export_batch  ┆ drift_sdk::processor        ┆     1 ┆    0.150 ┆   0.013 ┆  150.00 ┆ 150.00 ┆ 150.00 │
            │ request       ┆ demo_app                    ┆     2 ┆    0.115 ┆   0.060 ┆   57.50 ┆  85.00 ┆  85.00 │
            │ to_clean_span ┆ drift_sdk::to_clean_span    ┆     2 ┆    0.100 ┆   0.100 ┆   50.00 ┆  60.00 ┆  60.00 │
            │ export        ┆ drift_sdk::processor        ┆     1 ┆    0.037 ┆   0.007 ┆   37.00 ┆  37.00 ┆  37.00 │
            │ capture       ┆ drift_sdk::capture::inbound ┆     2 ┆    0.030 ┆   0.030 ┆   15.00 ┆  20.00 ┆  20.00 │
            │ write_line    ┆ drift_sdk::export::file     ┆     2 ┆    0.030 ┆   0.030 ┆   15.00 ┆  20.00 ┆  20.00 │
            │ finalize      ┆ drift_sdk::capture::inbound ┆     2 ┆    0.025 ┆   0.022 ┆   12.50 ┆  18.00 ┆  18.00 │
            │ on_end        ┆ drift_sdk::processor        ┆     2 ┆    0.003 ┆   0.003 ┆    1.50 ┆   2.00 ┆   2.00 │
            └───────────────┴─────────────────────────────┴───────┴──────────┴─────────┴─────────┴────────┴────────┘"#]],
        );
    }

    #[test]
    fn long_names_keep_their_end() {
        let name = "<drift_sdk::capture::inbound::DriftService<S> as tower_service::Service<http::request::Request<ReqBody>>>::call";
        assert_eq!(name.chars().count(), 111);
        assert_eq!(
            shorten_name(name, 100),
            "<drift_sdk::capture::inbound::DriftService<…> as tower_service::Service<…>>::call"
        );
        assert_eq!(shorten_name(name, 30), "…::Service<…>>::call");
        assert_eq!(shorten_name(name, 200), name);
        // `->` inside generics does not close them.
        assert_eq!(shorten_name("a::f<fn() -> u8>::g", 12), "a::f<…>::g");
        // Unbalanced brackets: just the end.
        assert_eq!(shorten_name("a::b<c::d::e::f", 8), "…::e::f");
        assert_eq!(shorten_name("abcdefghij", 5), "…ghij");
    }

    #[test]
    fn number_formats() {
        assert_eq!(
            (thousands(0), thousands(999), thousands(1000), thousands(1234567)),
            ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
        );
        assert_eq!(
            (fixed(1234.567, 2), fixed(-1234.5, 1), fixed(0.004, 2)),
            ("1,234.57".into(), "-1,234.5".into(), "0.00".into())
        );
        assert_eq!(
            [
                bytes(0.0),
                bytes(812.0),
                bytes(1000.0),
                bytes(1.5),
                bytes(1024.0),
                bytes(12.3 * 1024.0),
                bytes(300.0 * 1024.0),
                bytes(4.56 * 1024.0 * 1024.0)
            ],
            [
                "0 B", "812 B", "1,000 B", "1.5 B", "1.00 KiB", "12.3 KiB", "300 KiB", "4.56 MiB"
            ]
        );
        assert_eq!(percent(0.54166), "54.17%");
    }
}
