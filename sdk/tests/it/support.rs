//! A seed app, a server on 127.0.0.1, and an independent reading of trace files.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The three endpoints of the seed mix (§15.1), with the seed's bodies.
pub fn seed_router() -> Router {
    Router::new()
        .route(
            "/api/simple",
            get(|| async { axum::Json(json!({"message": "Hello World", "timestamp": now_ms()})) }),
        )
        .route(
            "/api/echo",
            post(|body: axum::body::Bytes| async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                axum::Json(v)
            }),
        )
        .route(
            "/api/auth/login",
            post(|body: axum::body::Bytes| async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                let email = v
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("user@example.com")
                    .to_owned();
                axum::Json(json!({
                    "success": true,
                    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "user": {"id": 123, "email": email, "role": "user"}
                }))
            }),
        )
}

/// An SDK in record mode with an in-memory sink and no environment, and the sink's span list.
pub fn record_in_memory() -> (drift_sdk::Drift, drift_sdk::InMemorySpans) {
    let spans = drift_sdk::InMemorySpans::new();
    let drift = drift_sdk::Drift::builder()
        .mode(drift_sdk::Mode::Record)
        .in_memory(spans.clone())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    (drift, spans)
}

/// A running server; dropping it does not stop it, `stop` does (gracefully).
pub struct Server {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server { addr, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Sends the seed mix (§15.2): i%3 = 0 GET /api/simple, 1 POST /api/echo, 2 POST /api/auth/login.
/// Returns the request bodies sent, in order (`None` for GETs).
pub async fn send_seed_mix(server: &Server, n: usize) -> Vec<Option<String>> {
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for i in 0..n {
        let (resp, body) = match i % 3 {
            0 => (client.get(server.url("/api/simple")).send().await.unwrap(), None),
            1 => {
                let body = format!(r#"{{"data":"test","iteration":{i}}}"#);
                let r = client
                    .post(server.url("/api/echo"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                (r, Some(body))
            }
            _ => {
                let body = r#"{"email":"test@example.com","password":"secret123"}"#.to_owned();
                let r = client
                    .post(server.url("/api/auth/login"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                (r, Some(body))
            }
        };
        assert!(resp.status().is_success());
        resp.bytes().await.unwrap();
        sent.push(body);
    }
    sent
}

/// A span from the in-memory sink as its trace-file line (§8.3), parsed.
pub fn span_json(span: &drift_sdk::CleanSpan) -> Value {
    let mut line = Vec::new();
    span.write_json_line(&mut line);
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)))
}

/// Every trace file in `dir`, with its parsed lines.
pub fn read_trace_files(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<(String, Vec<Value>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'), "{name}: the last line is not terminated");
            let lines = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}")))
                .collect();
            (name, lines)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

// An independent implementation of the hashing rules (§6, §7), on serde_json values, for values without floats.

/// Canonical text: compact, keys sorted by code point at every depth.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", serde_json::to_string(k).unwrap(), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::Number(n) if n.is_f64() => {
            // The only float in these payloads is `match_importance`; Python writes 0.0 as `0.0`.
            assert_eq!(n.as_f64(), Some(0.0), "the independent check handles no other float");
            "0.0".to_owned()
        }
        other => serde_json::to_string(other).unwrap(),
    }
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The schema's hash form (§6.2) before merges.
pub fn schema_of(v: &Value) -> Value {
    match v {
        Value::Null => json!({"type": 4, "properties": {}}),
        Value::Bool(_) => json!({"type": 3, "properties": {}}),
        Value::Number(_) => json!({"type": 1, "properties": {}}),
        Value::String(_) => json!({"type": 2, "properties": {}}),
        Value::Array(items) => {
            let mut s = json!({"type": 7, "properties": {}});
            if let Some(first) = items.first() {
                s["items"] = schema_of(first);
            }
            s
        }
        Value::Object(map) => {
            let props: serde_json::Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect();
            json!({"type": 6, "properties": props})
        }
    }
}

/// The four hashes of a server span's stored value, recomputed: body decoded from base64 to text (invalid UTF-8
/// dropped), `headers` annotated with `match_importance 0.0`, `body` with `encoding 1`.
pub fn server_payload_hashes(stored: &Value) -> (String, String) {
    let mut decoded = stored.clone();
    if let Some(Value::String(b64)) = stored.get("body") {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let text: String = bytes.utf8_chunks().map(|c| c.valid()).collect();
        decoded["body"] = Value::String(text);
    }
    let mut schema = schema_of(&decoded);
    schema["properties"]["headers"]["match_importance"] = json!(0.0);
    if stored.get("body").is_some() {
        schema["properties"]["body"]["encoding"] = json!(1);
    }
    (sha256_hex(&canonical(&decoded)), sha256_hex(&canonical(&schema)))
}
