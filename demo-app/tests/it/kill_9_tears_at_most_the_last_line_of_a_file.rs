//! `kill -9` in the middle of a recorded run (issue 7): every complete line of every trace file parses, at most the
//! last line of a file is torn, and `drift_sdk::read_trace_file` skips it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Binary, blocking_client, try_seed_request, wait_with_timeout};

#[test]
fn kill_9_tears_at_most_the_last_line_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // Small batches: the exporter writes all the time, so the kill lands while files are being written.
    let app = Binary::start(
        &["--mode", "record", "--traces-dir", "traces", "--batch-size", "8"],
        dir.path(),
    );
    let traces = dir.path().join("traces");
    let written = || std::fs::read_dir(&traces).map(|d| d.count()).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..3)
        .map(|worker| {
            let (url, stop, answered) = (app.url.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let client = blocking_client();
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    // The connection dies with the app: errors end the loop.
                    let sent = match i % 4 {
                        3 => client.post(format!("{url}/api/outbound")).send(),
                        _ => try_seed_request(&client, &url, i),
                    };
                    let ok = sent.is_ok();
                    if !ok {
                        break;
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                    i += 3;
                }
            })
        })
        .collect();
    // Kill while requests are in flight and the exporter is writing.
    let start = Instant::now();
    while (answered.load(Ordering::Relaxed) < 300 || written() < 100) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut app = app;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(app.child.id() as i32), Signal::SIGKILL).unwrap();
    let status = wait_with_timeout(&mut app.child, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );

    let (mut files, mut spans, mut torn) = (0, 0, 0);
    for entry in std::fs::read_dir(&traces).unwrap() {
        let path = entry.unwrap().path();
        let file = drift_sdk::read_trace_file(&path).unwrap_or_else(|e| panic!("{e}"));
        for span in &file.spans {
            assert!(span.get("traceId").is_some(), "{}", path.display());
        }
        files += 1;
        spans += file.spans.len();
        torn += usize::from(file.torn_tail > 0);
    }
    eprintln!(
        "killed after {} answered requests: {files} trace files, {spans} whole spans, {torn} torn last lines",
        answered.load(Ordering::Relaxed)
    );
    assert!(files > 0 && spans > 0, "the run wrote nothing before the kill");
}
