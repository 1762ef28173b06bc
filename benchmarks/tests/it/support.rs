//! A recording test server and a way to run the real `workload` binary with a time limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use http_body_util::channel::Channel;
use tokio::sync::oneshot;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
    pub content_type: Option<String>,
    pub host: Option<String>,
}

#[derive(Default)]
struct Recorded {
    requests: Mutex<Vec<Seen>>,
    connections: AtomicU64,
    count: AtomicU64,
    /// Answer 500 to every n-th request (the n-th, 2n-th, …), if set.
    fail_every: Option<u64>,
}

/// An axum server on 127.0.0.1:0 in a thread of its own that records every request and every accepted connection.
pub struct Server {
    pub addr: SocketAddr,
    recorded: Arc<Recorded>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_failing_every(None)
    }

    /// A server answering 500 to one request in `n`.
    pub fn start_failing_every(n: Option<u64>) -> Server {
        let recorded = Arc::new(Recorded {
            fail_every: n,
            ..Recorded::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let state = recorded.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let counter = state.clone();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap().tap_io(move |_| {
                    counter.connections.fetch_add(1, SeqCst);
                });
                let app = Router::new().fallback(record).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Server {
            addr,
            recorded,
            shutdown: Some(shutdown),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.recorded.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> u64 {
        self.recorded.connections.load(SeqCst)
    }

    /// Requests by `METHOD /path`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for seen in self.requests() {
            *counts.entry(format!("{} {}", seen.method, seen.path)).or_default() += 1;
        }
        counts
    }

    /// The `iteration` of every `/api/echo` body, in arrival order.
    pub fn echo_iterations(&self) -> Vec<u64> {
        self.requests()
            .iter()
            .filter(|s| s.path == "/api/echo")
            .map(|s| {
                let body: serde_json::Value = serde_json::from_str(&s.body).unwrap();
                assert_eq!(body["data"], "test", "{}", s.body);
                body["iteration"].as_u64().unwrap()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// How long `/test/slow-body` waits between the first and the last byte of its body.
pub const SLOW_BODY_PAUSE: Duration = Duration::from_millis(30);

async fn record(
    State(recorded): State<Arc<Recorded>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    recorded.requests.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type: header("content-type"),
        host: header("host"),
    });
    let n = recorded.count.fetch_add(1, SeqCst) + 1;
    let json = [("content-type", "application/json")];
    if let Some(every) = recorded.fail_every
        && n % every == 0
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            r#"{"error":"Internal Server Error"}"#,
        )
            .into_response();
    }
    if uri.path() == "/test/slow-body" {
        // Headers and the first byte now, the last byte after a pause.
        let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
        tokio::spawn(async move {
            let _ = sender.send_data(Bytes::from_static(b"{")).await;
            tokio::time::sleep(SLOW_BODY_PAUSE).await;
            let _ = sender.send_data(Bytes::from_static(b"}")).await;
        });
        return (StatusCode::OK, json, Body::new(body)).into_response();
    }
    (StatusCode::OK, json, r#"{"message":"Hello World"}"#).into_response()
}

/// Runs `workload` with `args`; panics if it runs longer than `limit`.
pub fn workload(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workload"))
        .args(args)
        .env_remove("WORKLOAD_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "workload {args:?} ran longer than {limit:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Runs `workload` and asserts it exits with `code`; returns (stdout, stderr).
#[track_caller]
pub fn workload_exits(code: i32, args: &[&str]) -> (String, String) {
    let output = workload(args, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "workload {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
