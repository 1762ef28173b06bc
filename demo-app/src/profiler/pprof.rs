//! The `pprof` build: pprof-rs samples the whole run, or serves `/debug/pprof/profile?seconds=N` on demand.
//!
//! pprof's default unwinder and no blocklist: a blocklist drops the samples it matches rather than re-attributing
//! them, and the other unwinders deadlock or lose the leaf frame (profiling-notes.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use pprof::protos::Message;
use pprof::{ProfilerGuard, ProfilerGuardBuilder, Report};
use serde_json::{Value, json};

use super::{RunFacts, cpu_seconds, write_json};
use crate::state::RequestCounter;

/// Folded stacks of the whole run, in the profile directory.
pub const FOLDED_FILE: &str = "cpu.folded";
/// The pprof protobuf of the whole run (uncompressed; `go tool pprof` reads it as it is).
pub const PROTOBUF_FILE: &str = "cpu.pb";
/// Frequency, samples, CPU seconds and requests of the whole run.
pub const SUMMARY_FILE: &str = "pprof.json";
/// The longest window `/debug/pprof/profile` accepts, in seconds.
pub const MAX_WINDOW_SECONDS: u64 = 300;
/// The window when `seconds` is not given (Go's default).
pub const DEFAULT_WINDOW_SECONDS: u64 = 30;

/// The whole-run profiler.
pub(super) struct WholeRun {
    guard: ProfilerGuard<'static>,
    hz: i32,
}

/// What [`WholeRun::finish`] wrote.
pub(super) struct Written {
    pub files: Vec<PathBuf>,
    pub summary: Value,
}

impl WholeRun {
    pub(super) fn start(hz: i32) -> anyhow::Result<WholeRun> {
        let guard = ProfilerGuardBuilder::default()
            .frequency(hz)
            .build()
            .context("starting the CPU profiler")?;
        Ok(WholeRun { guard, hz })
    }

    /// Stops sampling and writes the folded stacks, the protobuf and `pprof.json`.
    pub(super) fn finish(self, dir: &Path, facts: &RunFacts) -> anyhow::Result<Written> {
        // CPU time of the sampled run, before building the report (symbolisation is the profiler's own cost).
        let cpu_seconds = cpu_seconds();
        let report = self.guard.report().build().context("building the CPU profile")?;
        drop(self.guard);
        let folded_path = dir.join(FOLDED_FILE);
        std::fs::write(&folded_path, folded(&report)).with_context(|| format!("writing {}", folded_path.display()))?;
        let pb_path = dir.join(PROTOBUF_FILE);
        std::fs::write(&pb_path, protobuf(&report)?).with_context(|| format!("writing {}", pb_path.display()))?;
        let summary = json!({
            "frequency": self.hz,
            "samples": samples(&report),
            "cpu_seconds": cpu_seconds,
            "requests": facts.requests,
        });
        let summary_path = dir.join(SUMMARY_FILE);
        write_json(&summary_path, &summary)?;
        Ok(Written {
            files: vec![folded_path, pb_path, summary_path],
            summary,
        })
    }
}

/// Total samples in a report. One stack can appear under several keys (the key holds the thread and time), so
/// everything is summed.
pub fn samples(report: &Report) -> i64 {
    report.data.values().map(|&n| n as i64).sum()
}

/// The report as folded stacks: `thread;root;…;leaf COUNT`, one line per distinct stack, sorted.
///
/// pprof stores frames leaf first and, inside a frame, inlined symbols innermost first: both are reversed. `;` in a
/// name (array types such as `[u8; 8]`) becomes `,`, and line breaks become spaces.
pub fn folded(report: &Report) -> String {
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    for (frames, &count) in &report.data {
        let mut line = sanitise(&frames.thread_name_or_id());
        for frame in frames.frames.iter().rev() {
            for symbol in frame.iter().rev() {
                line.push(';');
                line.push_str(&sanitise(&symbol.name()));
            }
        }
        *stacks.entry(line).or_default() += count as i64;
    }
    let mut out = String::new();
    for (stack, count) in stacks {
        let _ = writeln!(out, "{stack} {count}");
    }
    out
}

fn sanitise(name: &str) -> String {
    name.replace(';', ",").replace(['\n', '\r'], " ")
}

fn protobuf(report: &Report) -> anyhow::Result<Vec<u8>> {
    let profile = report.pprof().context("converting the CPU profile to pprof")?;
    let mut buf = Vec::with_capacity(profile.encoded_len());
    profile.encode(&mut buf).context("encoding the pprof protobuf")?;
    Ok(buf)
}

/// The on-demand endpoint's shared state.
#[derive(Clone, Debug)]
struct Endpoint {
    hz: i32,
    requests: RequestCounter,
    /// Held while a window is being profiled: a process holds one CPU profiler at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// `GET /debug/pprof/profile?seconds=N`: profiles the process for N seconds (default 30, 1 to 300) and answers the
/// pprof protobuf, with the window's samples, CPU seconds and requests in `x-profile-*` headers.
///
/// Refused with 403 to a client that is not on loopback, 400 for a bad `seconds`, and 409 while another window is
/// being profiled.
pub fn endpoint_routes<S>(hz: i32, requests: RequestCounter) -> Router<S> {
    let endpoint = Endpoint {
        hz,
        requests,
        busy: Arc::default(),
    };
    Router::new()
        .route("/debug/pprof/profile", get(profile_window))
        .with_state(endpoint)
}

async fn profile_window(
    State(endpoint): State<Endpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    if !is_loopback(peer.ip()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the profiling endpoint answers loopback clients only".into(),
        );
    }
    let seconds = match window_seconds(query.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    // Owned, and moved into the task that holds the profiler: if the client goes away while the report is built,
    // the lock is released only when the profiler is.
    let Ok(busy) = endpoint.busy.clone().try_lock_owned() else {
        return refuse(
            StatusCode::CONFLICT,
            "another profile is being taken; one at a time".into(),
        );
    };
    let (cpu_before, requests_before) = (cpu_seconds(), endpoint.requests.get());
    let guard = match ProfilerGuardBuilder::default().frequency(endpoint.hz).build() {
        Ok(guard) => guard,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("starting the CPU profiler: {e}"),
            );
        }
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let built = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, i64)> {
        let report = guard.report().build().context("building the CPU profile")?;
        drop(guard);
        drop(busy);
        Ok((protobuf(&report)?, samples(&report)))
    })
    .await;
    let (pb, samples) = match built {
        Ok(Ok(built)) => built,
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("profiling task failed: {e}")),
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile.pb\"".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-profile-frequency"),
                endpoint.hz.to_string(),
            ),
            (
                header::HeaderName::from_static("x-profile-samples"),
                samples.to_string(),
            ),
            (
                header::HeaderName::from_static("x-profile-cpu-seconds"),
                format!("{:.3}", cpu_seconds() - cpu_before),
            ),
            (
                header::HeaderName::from_static("x-profile-requests"),
                (endpoint.requests.get() - requests_before).to_string(),
            ),
        ],
        pb,
    )
        .into_response()
}

/// Loopback, including an IPv4 loopback client of an IPv6 socket (`::ffff:127.0.0.1`).
fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn refuse(status: StatusCode, reason: String) -> Response {
    (status, axum::Json(json!({"error": reason}))).into_response()
}

fn window_seconds(query: &str) -> Result<u64, String> {
    let mut seconds = DEFAULT_WINDOW_SECONDS;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("seconds", value)) => {
                seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_WINDOW_SECONDS).contains(s))
                    .ok_or_else(|| {
                        format!("seconds must be a whole number from 1 to {MAX_WINDOW_SECONDS}, not {value:?}")
                    })?;
            }
            _ => return Err(format!("unknown parameter {pair:?}; the endpoint takes seconds=N")),
        }
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_bounded() {
        assert_eq!(window_seconds(""), Ok(DEFAULT_WINDOW_SECONDS));
        assert_eq!(window_seconds("seconds=2"), Ok(2));
        assert_eq!(window_seconds("seconds=300"), Ok(300));
        for bad in [
            "seconds=0",
            "seconds=301",
            "seconds=-1",
            "seconds=1.5",
            "seconds=",
            "hz=1000",
        ] {
            assert!(window_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_clients_are_served() {
        for ok in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ok.parse().unwrap()), "{ok}");
        }
        for refused in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "2001:db8::1", "0.0.0.0"] {
            assert!(!is_loopback(refused.parse().unwrap()), "{refused}");
        }
    }

    #[test]
    fn names_lose_separators() {
        assert_eq!(sanitise("f<[u8; 8]>\n"), "f<[u8, 8]> ");
    }
}
