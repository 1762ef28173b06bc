//! Heap profiles: dhat's `dhat-heap.json` (dhat 0.3, file version 2) reduced to allocation sites.
//!
//! # Format
//!
//! The top level holds `dhatFileVersion` (must be 2), `mode` (`rust-heap`; valgrind's DHAT writes `heap`), time
//! fields (`tu`, `tg`, `te`), the program points `pps` and the frame table `ftbl`. Each program point is one
//! distinct allocation stack with `tb`/`tbk` (bytes/blocks allocated over the run), `gb`/`gbk` (live at the global
//! peak), `eb`/`ebk` (live at exit) and `fs`, indices into `ftbl`, **innermost first**. `ftbl[0]` is `[root]`;
//! the others read `0x55d0c3a2b4c1: drift_sdk::json::parse::Parser::value (sdk/src/json/parse.rs:120:22)`.
//!
//! # Sites
//!
//! A program point's frames are resolved through `ftbl`, addresses stripped and names
//! [normalised](super::names::normalise). Allocator frames are skipped ([`is_allocator_frame`]: `alloc::`,
//! `<alloc::`, `core::alloc`, `std::alloc`, `RawVec`, `__rg_`, `__rust_`, dhat's own). The **site** is the
//! innermost remaining frame of a workspace crate (`drift_sdk`, `demo_app`, `benchmarks`) — the line of our code
//! that asked for the memory — or, when the stack has none, the innermost remaining frame (e.g. inside hyper). A
//! stack of allocator frames only is named by its outermost frame. Points with the same site (function and
//! `file:line`) are summed.
//!
//! # The SDK's share
//!
//! A point is the SDK's when its allocation was made on the SDK's behalf, by the rule in
//! [`names`](super::names#whose-work-a-frame-is): the innermost frame of a workspace or host-framework crate is a
//! `drift_sdk` frame. The application's handler allocating under the SDK's layer is not the SDK's; `sha2` or
//! `Vec::clone` called by the SDK is. [`HeapSite::sdk`] says something simpler — whether the site's function is
//! the SDK's — so Σ of the SDK sites' bytes may differ from [`HeapProfile::sdk_bytes`] (for example hyper reading
//! a request body that the SDK polls is named by the SDK's frame but is the application's cost).
//! [`HeapProfile::sdk_stack_bytes`] counts points with a `drift_sdk` frame anywhere, an upper bound.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::from_json;
use super::names::{SDK_CRATE, WORKSPACE_CRATES, crate_of, normalise, sdk_attribution, strip_address};
use super::{ParseError, ParseErrorKind};

/// A heap profile reduced to totals and allocation sites. Serialised into `summary.json`; `compare` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapProfile {
    /// Totals over every program point.
    pub totals: HeapTotals,
    /// Bytes allocated on the SDK's behalf (see the [module documentation](self#the-sdks-share)).
    pub sdk_bytes: u64,
    /// Blocks allocated on the SDK's behalf.
    pub sdk_blocks: u64,
    /// Bytes allocated on the SDK's behalf and live at the global peak.
    pub sdk_peak_bytes: u64,
    /// Bytes of points with a `drift_sdk` frame anywhere on the stack (the wrapped application included).
    pub sdk_stack_bytes: u64,
    /// Allocation sites, by bytes (most first), then blocks, then function and location.
    pub sites: Vec<HeapSite>,
}

/// Sums over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapTotals {
    /// Bytes allocated over the run (Σ `tb`).
    pub bytes: u64,
    /// Blocks (allocations) over the run (Σ `tbk`).
    pub blocks: u64,
    /// Bytes live at the global peak (Σ `gb`).
    pub peak_bytes: u64,
    /// Blocks live at the global peak (Σ `gbk`).
    pub peak_blocks: u64,
    /// Bytes still live at exit (Σ `eb`).
    pub end_bytes: u64,
    /// Blocks still live at exit (Σ `ebk`).
    pub end_blocks: u64,
}

/// One allocation site: the program points that share a site frame, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapSite {
    /// The site's function, normalised.
    pub function: String,
    /// `file:line` of the site (`sdk/src/to_clean_span.rs:210`), or empty when dhat did not know it.
    pub location: String,
    /// Bytes allocated over the run.
    pub bytes: u64,
    /// Blocks allocated over the run.
    pub blocks: u64,
    /// Bytes live at the global peak.
    pub peak_bytes: u64,
    /// Blocks live at the global peak.
    pub peak_blocks: u64,
    /// Bytes live at exit.
    pub end_bytes: u64,
    /// Blocks live at exit.
    pub end_blocks: u64,
    /// Whether the site's function is the SDK's.
    pub sdk: bool,
}

impl HeapProfile {
    /// Reads a `dhat-heap.json`.
    pub fn from_json(text: &str) -> Result<HeapProfile, ParseError> {
        parse_dhat(text)
    }

    /// Sites by bytes (most first), ties by function and location.
    pub fn top_by_bytes(&self) -> Vec<&HeapSite> {
        self.ranked(|s| (s.bytes, s.blocks))
    }

    /// Sites by blocks (most first), ties by function and location.
    pub fn top_by_blocks(&self) -> Vec<&HeapSite> {
        self.ranked(|s| (s.blocks, s.bytes))
    }

    /// Sites by bytes live at the global peak (most first), ties by function and location.
    pub fn top_by_peak(&self) -> Vec<&HeapSite> {
        self.ranked(|s| (s.peak_bytes, s.peak_blocks))
    }

    fn ranked(&self, key: impl Fn(&HeapSite) -> (u64, u64)) -> Vec<&HeapSite> {
        let mut sites: Vec<&HeapSite> = self.sites.iter().collect();
        sites.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| (&a.function, &a.location).cmp(&(&b.function, &b.location)))
        });
        sites
    }
}

/// Whether a (normalised, address-free) frame is the allocator's rather than the caller's.
pub fn is_allocator_frame(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "alloc::",
        "<alloc::",
        "core::alloc::",
        "<core::alloc::",
        "std::alloc::",
        "<std::alloc::",
        "dhat::",
        "<dhat::",
        "__rg_",
        "__rust_",
        "[root]",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p)) || function.contains("RawVec")
}

#[derive(Deserialize)]
struct RawPoint {
    tb: u64,
    tbk: u64,
    gb: u64,
    gbk: u64,
    eb: u64,
    ebk: u64,
    fs: Vec<usize>,
}

/// One `ftbl` entry, split.
struct Frame {
    function: String,
    location: String,
}

impl Frame {
    fn parse(entry: &str) -> Frame {
        let entry = strip_address(entry.trim());
        // The location is the last ` (…)`; function names may hold parentheses of their own (tuples).
        let (function, location) = match entry.strip_suffix(')').and_then(|e| e.rsplit_once(" (")) {
            Some((function, location)) => (function, location),
            None => (entry, ""),
        };
        // `file:line:col` → `file:line`; dhat writes `???:0:0` when it does not know.
        let location = location
            .rsplit_once(':')
            .map_or(location, |(file_line, _col)| file_line);
        let location = if location.starts_with("???") { "" } else { location };
        Frame {
            function: normalise(function),
            location: location.to_string(),
        }
    }
}

/// Reads a `dhat-heap.json`. See the [module documentation](self).
pub fn parse_dhat(text: &str) -> Result<HeapProfile, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| from_json(&e, "dhat-heap.json"))?;
    let unsupported = |message: String| ParseError::new(ParseErrorKind::Unsupported, None, message);
    let Some(top) = value.as_object() else {
        return Err(unsupported(
            "not a dhat v2 file: the top level is not a JSON object".into(),
        ));
    };
    match top.get("dhatFileVersion") {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) => {
            return Err(unsupported(format!(
                "not a dhat v2 file: dhatFileVersion is {v}, expected 2"
            )));
        }
        None => return Err(unsupported("not a dhat v2 file: it has no dhatFileVersion".into())),
    }
    match top.get("mode").and_then(Value::as_str) {
        Some("rust-heap" | "heap") => {}
        Some(mode) => {
            return Err(unsupported(format!(
                "dhat mode {mode:?} is not a heap profile (dhat::Profiler::new_heap writes \"rust-heap\")"
            )));
        }
        None => return Err(ParseError::invalid(None, "dhat-heap.json has no string `mode`")),
    }
    let field = |name: &str| {
        top.get(name)
            .ok_or_else(|| ParseError::invalid(None, format!("no `{name}` field")))
    };
    let ftbl: Vec<String> = serde_json::from_value(field("ftbl")?.clone())
        .map_err(|e| ParseError::invalid(None, format!("`ftbl` is not a list of strings: {e}")))?;
    let Some(pps) = field("pps")?.as_array() else {
        return Err(ParseError::invalid(None, "`pps` is not a list"));
    };

    let frames: Vec<Frame> = ftbl.iter().map(|entry| Frame::parse(entry)).collect();
    let mut totals = HeapTotals::default();
    let (mut sdk_bytes, mut sdk_blocks, mut sdk_peak_bytes, mut sdk_stack_bytes) = (0, 0, 0, 0);
    let mut sites: Vec<HeapSite> = Vec::new();
    let mut site_index: HashMap<(String, String), usize> = HashMap::new();

    for (i, pp) in pps.iter().enumerate() {
        let point: RawPoint =
            RawPoint::deserialize(pp).map_err(|e| ParseError::invalid(None, format!("program point {i}: {e}")))?;
        let stack: Vec<&Frame> = point
            .fs
            .iter()
            .map(|&f| {
                frames.get(f).ok_or_else(|| {
                    ParseError::invalid(
                        None,
                        format!(
                            "program point {i}: frame index {f} is outside the frame table ({} entries)",
                            frames.len()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?;

        totals.bytes += point.tb;
        totals.blocks += point.tbk;
        totals.peak_bytes += point.gb;
        totals.peak_blocks += point.gbk;
        totals.end_bytes += point.eb;
        totals.end_blocks += point.ebk;

        let root_first: Vec<&str> = stack.iter().rev().map(|f| f.function.as_str()).collect();
        if sdk_attribution(&root_first).last() == Some(&true) {
            sdk_bytes += point.tb;
            sdk_blocks += point.tbk;
            sdk_peak_bytes += point.gb;
        }
        if root_first.iter().any(|f| crate_of(f) == Some(SDK_CRATE)) {
            sdk_stack_bytes += point.tb;
        }

        let site = site_of(&stack);
        let (function, location) = site.map_or(("[root]", ""), |f| (f.function.as_str(), f.location.as_str()));
        let key = (function.to_string(), location.to_string());
        let at = *site_index.entry(key).or_insert_with(|| {
            sites.push(HeapSite {
                function: function.to_string(),
                location: location.to_string(),
                bytes: 0,
                blocks: 0,
                peak_bytes: 0,
                peak_blocks: 0,
                end_bytes: 0,
                end_blocks: 0,
                sdk: crate_of(function) == Some(SDK_CRATE),
            });
            sites.len() - 1
        });
        let site = &mut sites[at];
        site.bytes += point.tb;
        site.blocks += point.tbk;
        site.peak_bytes += point.gb;
        site.peak_blocks += point.gbk;
        site.end_bytes += point.eb;
        site.end_blocks += point.ebk;
    }

    sites.sort_by(|a, b| {
        (b.bytes, b.blocks)
            .cmp(&(a.bytes, a.blocks))
            .then_with(|| (&a.function, &a.location).cmp(&(&b.function, &b.location)))
    });
    Ok(HeapProfile {
        totals,
        sdk_bytes,
        sdk_blocks,
        sdk_peak_bytes,
        sdk_stack_bytes,
        sites,
    })
}

/// The site frame of a stack listed innermost first (see the [module documentation](self#sites)).
fn site_of<'a>(stack: &[&'a Frame]) -> Option<&'a Frame> {
    let mut ours = stack.iter().filter(|f| !is_allocator_frame(&f.function));
    let first_ours = ours.clone().next();
    ours.find(|f| crate_of(&f.function).is_some_and(|c| WORKSPACE_CRATES.contains(&c)))
        .or(first_ours)
        .or_else(|| stack.iter().rev().find(|f| f.function != "[root]"))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../test_data/dhat-small.json");

    fn site<'a>(p: &'a HeapProfile, function: &str) -> &'a HeapSite {
        p.sites
            .iter()
            .find(|s| s.function == function)
            .unwrap_or_else(|| panic!("no site {function}"))
    }

    #[test]
    fn totals_are_sums_over_program_points() {
        let p = parse_dhat(SMALL).unwrap();
        assert_eq!(
            p.totals,
            HeapTotals {
                bytes: 16_816,
                blocks: 55,
                peak_bytes: 3_716,
                peak_blocks: 10,
                end_bytes: 180,
                end_blocks: 3,
            }
        );
        assert_eq!(p.sites.iter().map(|s| s.bytes).sum::<u64>(), p.totals.bytes);
        assert_eq!(p.sites.iter().map(|s| s.peak_bytes).sum::<u64>(), p.totals.peak_bytes);
    }

    #[test]
    fn sites_skip_allocator_frames_and_prefer_the_workspace() {
        let p = parse_dhat(SMALL).unwrap();
        // Two points (one through RawVec, one through Vec::clone and __rg_alloc) share the site.
        let encode = site(&p, "drift_sdk::to_clean_span::encode_body");
        assert_eq!(
            (
                encode.location.as_str(),
                encode.bytes,
                encode.blocks,
                encode.peak_bytes,
                encode.end_bytes,
                encode.sdk
            ),
            ("sdk/src/to_clean_span.rs:210", 5_000, 15, 1_000, 100, true)
        );
        // The handler under the SDK's layer: named by the app's frame, not the SDK's.
        let echo = site(&p, "demo_app::endpoints::echo::{{closure}}");
        assert_eq!(
            (echo.location.as_str(), echo.bytes, echo.sdk),
            ("demo-app/src/endpoints.rs:88", 8_000, false)
        );
        // No workspace frame: the first frame that is not the allocator's.
        let hyper = site(&p, "hyper::proto::h1::role::Server::parse");
        assert_eq!(
            (hyper.bytes, hyper.blocks, hyper.end_blocks, hyper.sdk),
            (3_000, 30, 1, false)
        );
        // Allocator frames only: the outermost one, with dhat's unknown location left empty.
        let only_alloc = site(&p, "__rg_alloc");
        assert_eq!((only_alloc.location.as_str(), only_alloc.bytes), ("", 16));
        assert_eq!(p.sites.len(), 6);

        let by = |ranked: Vec<&HeapSite>| ranked.iter().map(|s| s.bytes).collect::<Vec<_>>();
        assert_eq!(by(p.top_by_bytes()), [8_000, 5_000, 3_000, 600, 200, 16]);
        assert_eq!(by(p.top_by_blocks()), [3_000, 5_000, 8_000, 600, 200, 16]);
        assert_eq!(by(p.top_by_peak()), [8_000, 5_000, 3_000, 600, 16, 200]);
    }

    #[test]
    fn the_sdk_share_is_what_runs_on_its_behalf() {
        let p = parse_dhat(SMALL).unwrap();
        // encode_body ×2 and finalize; not the handler nor hyper's body under the SDK's frame.
        assert_eq!((p.sdk_bytes, p.sdk_blocks, p.sdk_peak_bytes), (5_600, 18, 1_200));
        // With any drift_sdk frame: those, the handler and hyper's body.
        assert_eq!(p.sdk_stack_bytes, 13_800);
        let poll = site(
            &p,
            "<drift_sdk::capture::inbound::ResponseFuture<S,B,F> as core::future::future::Future>::poll",
        );
        assert_eq!((poll.bytes, poll.sdk), (200, true));
    }

    #[test]
    fn frames_are_split_into_function_and_location() {
        let f = Frame::parse("0x1: <(A, B) as core::hash::Hash>::hash (src/hash/mod.rs:10:5)");
        assert_eq!(
            (f.function.as_str(), f.location.as_str()),
            ("<(A, B) as core::hash::Hash>::hash", "src/hash/mod.rs:10")
        );
        let f = Frame::parse("[root]");
        assert_eq!((f.function.as_str(), f.location.as_str()), ("[root]", ""));
        assert!(is_allocator_frame(
            "<dhat::Alloc as core::alloc::global::GlobalAlloc>::alloc"
        ));
        assert!(is_allocator_frame("__rust_alloc") && is_allocator_frame("<alloc::raw_vec::RawVec<T,A>>::grow_one"));
        assert!(!is_allocator_frame("drift_sdk::alloc_buffer"));
    }

    #[test]
    fn the_profile_round_trips_through_json() {
        let p = parse_dhat(SMALL).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<HeapProfile>(&json).unwrap(), p);
    }

    #[track_caller]
    fn check_error(text: &str, kind: ParseErrorKind, want: &str) {
        let err = parse_dhat(text).unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), (kind, want));
    }

    #[test]
    fn errors() {
        use ParseErrorKind::{Invalid, Truncated, Unsupported};
        check_error(
            &SMALL.replace("\"dhatFileVersion\": 2", "\"dhatFileVersion\": 1"),
            Unsupported,
            "not a dhat v2 file: dhatFileVersion is 1, expected 2",
        );
        check_error(
            "{\"pps\": []}",
            Unsupported,
            "not a dhat v2 file: it has no dhatFileVersion",
        );
        check_error(
            "[1, 2]",
            Unsupported,
            "not a dhat v2 file: the top level is not a JSON object",
        );
        check_error(
            &SMALL.replace("rust-heap", "rust-ad-hoc"),
            Unsupported,
            "dhat mode \"rust-ad-hoc\" is not a heap profile (dhat::Profiler::new_heap writes \"rust-heap\")",
        );
        check_error(
            &SMALL.replace("\"fs\":[1,10,11,7,9]", "\"fs\":[1,10,99,7,9]"),
            Invalid,
            "program point 3: frame index 99 is outside the frame table (14 entries)",
        );
        check_error(
            &SMALL.replace("\"gb\":500,", ""),
            Invalid,
            "program point 4: missing field `gb`",
        );
        check_error(
            &SMALL.replace("\"tb\":600,", "\"tb\":\"600\","),
            Invalid,
            "program point 3: invalid type: string \"600\", expected u64",
        );
        check_error(&SMALL.replace("\"ftbl\":", "\"frames\":"), Invalid, "no `ftbl` field");
        let cut = &SMALL[..SMALL.len() / 2];
        let err = parse_dhat(cut).unwrap_err();
        assert_eq!(err.kind(), Truncated);
        assert!(err.to_string().contains("truncated dhat-heap.json"), "{err}");
        check_error(
            "{\"dhatFileVersion\": 2,}",
            Invalid,
            "line 1: not a valid dhat-heap.json: trailing comma",
        );
    }
}
