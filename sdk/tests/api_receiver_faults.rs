//! The Tusk API receiver misbehaves (issue 7): it answers 500, closes connections without answering, or answers
//! garbage. Requests are still answered at once; the spans count as failed; the circuit breaker stops the SDK from
//! hammering the receiver; no thread is left behind and the queue stays bounded.
//!
//! Its own test binary: the thread counts below must not see other tests' threads.

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drift_sdk::{Drift, Mode};

use support::{Server, seed_router};

/// What the receiver does with request `n` (from 0): 500, hang up, or 200 with a body that is not protobuf.
fn misbehave(n: usize, stream: &mut TcpStream) {
    match n % 3 {
        0 => {
            let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\n\r\noops!");
        }
        1 => {} // dropped: the connection closes without an answer
        _ => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/protobuf\r\ncontent-length: 9\r\n\r\n\xff\xffgarbage",
            );
        }
    }
}

/// A receiver on 127.0.0.1 that reads each request whole, then misbehaves; counts the requests.
struct Receiver {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (hits, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if read_request(&mut stream) {
                    let n = h.fetch_add(1, Ordering::Relaxed);
                    misbehave(n, &mut stream);
                }
            }
        });
        Receiver { addr, hits, stop }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request's head and its content-length body; false if the client went away first.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return true;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Threads of this process, and how many of them are the SDK's export thread.
fn threads() -> (usize, usize) {
    let mut all = 0;
    let mut exporters = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        all += 1;
        let comm = std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap_or_default();
        exporters += usize::from(comm.trim() == "drift-exporter");
    }
    (all, exporters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_api_receiver_fails_spans_without_leaks_or_slow_requests() {
    let receiver = Receiver::start();
    let drift = Drift::builder()
        .mode(Mode::Record)
        .env_vars(Vec::new())
        .export_spans(true)
        .api_key("k")
        .service_id("svc")
        .api_url(format!("http://{}", receiver.addr))
        .batch_size(1)
        .queue_capacity(64)
        .scheduled_delay(Duration::from_millis(20))
        .init()
        .unwrap();
    let server = Server::start(seed_router().layer(drift.layer())).await;
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    let mut threads_midway = 0;
    for i in 0..60 {
        let started = Instant::now();
        let response = client.get(server.url("/api/simple")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert!(drift.queued() <= 64, "the queue is bounded");
        if i == 20 {
            threads_midway = threads().0;
        }
        // Steady load, slow enough for the exporter to retry and fail batches meanwhile.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let threads_at_end = threads().0;
    assert!(
        slowest < Duration::from_secs(1),
        "a request waited for the failing exporter: {slowest:?}"
    );
    assert_eq!(
        threads_at_end, threads_midway,
        "threads grew while the exporter kept failing"
    );

    server.stop().await;
    // Shutdown blocks while the export thread finishes (with the breaker open, it sends nothing more).
    let handle = drift.clone();
    tokio::task::spawn_blocking(move || handle.shutdown()).await.unwrap();
    let stats = drift.stats();
    assert_eq!(stats.exported, 0, "no answer was a success: {stats:?}");
    assert_eq!(stats.recorded, 60, "{stats:?}");
    assert_eq!(
        stats.failed + stats.dropped,
        60,
        "every span is accounted for: {stats:?}"
    );
    // Five failed batches (3 attempts each) open the breaker for 30 s: later batches make no request.
    let hits = receiver.hits.load(Ordering::Relaxed);
    assert!(
        (5..=5 * 3 + 3).contains(&hits),
        "{hits} requests reached the receiver: the breaker did not stop them"
    );
    drop(drift);
    let (_, exporters) = threads();
    assert_eq!(exporters, 0, "the export thread outlived shutdown");
}
