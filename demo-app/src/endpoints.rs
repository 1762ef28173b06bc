//! The seed test server's endpoints (drift-format.md §15.1), with the same request fields, defaults and bodies.
//!
//! Request fields are read from the JSON body; a body that is not a JSON object gives every field its default, as
//! the seed server did. A field of the wrong type also takes its default where the seed server would have failed
//! (for example a non-integer `iterations`), and is passed through where the seed server passed it through (for
//! example a non-string `email` in a login).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::state::AppState;

/// The seed server's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/api/simple", get(simple))
        .route("/api/simple-post", post(simple))
        .route("/api/echo", post(echo))
        .route("/api/small", get(|s: State<AppState>| padded(s, "small-123", SMALL)))
        .route(
            "/api/small-post",
            post(|s: State<AppState>| padded(s, "small-post-123", SMALL)),
        )
        .route("/api/medium", get(|s: State<AppState>| padded(s, "medium-456", MEDIUM)))
        .route(
            "/api/medium-post",
            post(|s: State<AppState>| padded(s, "medium-post-456", MEDIUM)),
        )
        .route("/api/large", get(|s: State<AppState>| padded(s, "large-789", LARGE)))
        .route(
            "/api/large-post",
            post(|s: State<AppState>| padded(s, "large-post-789", LARGE)),
        )
        .route("/api/compute-hash", post(compute_hash))
        .route("/api/compute-json", post(compute_json))
        .route("/api/auth/login", post(login))
        .route("/api/users", post(create_user))
        .route("/api/io-bound", post(io_bound))
        .route("/api/slow", get(slow))
        .route("/api/error", get(error))
        .route("/api/realistic", post(realistic))
        .route("/api/typical-read", get(typical_read))
        .route("/api/typical-write", post(typical_write))
}

/// Length of the `data` string of `/api/small`: 100 KiB.
pub const SMALL: usize = 100 * 1024;
/// Length of the `data` string of `/api/medium`: 1 MiB.
pub const MEDIUM: usize = 1024 * 1024;
/// Length of the `data` string of `/api/large`: 2 MiB. The state holds one string of `x` this long.
pub const LARGE: usize = 2 * 1024 * 1024;

/// The current UNIX time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The request's JSON object, or an empty one when the body is not a JSON object.
pub(crate) fn fields(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn str_field<'a>(fields: &'a Map<String, Value>, key: &str, default: &'a str) -> &'a str {
    fields.get(key).and_then(Value::as_str).unwrap_or(default)
}

fn int_field(fields: &Map<String, Value>, key: &str, default: i64) -> i64 {
    fields.get(key).and_then(Value::as_i64).unwrap_or(default)
}

/// A field passed through as the client sent it, whatever its type.
fn any_field(fields: &Map<String, Value>, key: &str, default: &str) -> Value {
    fields.get(key).cloned().unwrap_or_else(|| Value::from(default))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn simple() -> Json<Value> {
    Json(json!({"message": "Hello World", "timestamp": now_ms()}))
}

/// The parsed request JSON, or `{}` when the body is not JSON or is falsy in Python's sense.
async fn echo(body: Bytes) -> Json<Value> {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Json(if is_falsy(&value) { json!({}) } else { value })
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// `{"id":…,"data":"x"×len,"timestamp":…}`, written straight into one buffer.
async fn padded(State(state): State<AppState>, id: &'static str, len: usize) -> Response {
    let x = &state.padding[..len];
    let mut body = Vec::with_capacity(len + id.len() + 48);
    body.extend_from_slice(b"{\"id\":\"");
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(b"\",\"data\":\"");
    body.extend_from_slice(x);
    body.extend_from_slice(b"\",\"timestamp\":");
    body.extend_from_slice(now_ms().to_string().as_bytes());
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `data` replaced `iterations` times by the lower-case hex SHA-256 of its UTF-8.
async fn compute_hash(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    let iterations = int_field(&f, "iterations", 1000);
    let hash = repeated_sha256(str_field(&f, "data", "default-data"), iterations);
    Json(json!({"hash": hash, "iterations": iterations}))
}

pub(crate) fn repeated_sha256(data: &str, iterations: i64) -> String {
    let mut h = data.to_owned();
    for _ in 0..iterations.max(0) {
        let digest = Sha256::digest(h.as_bytes());
        h = hex(&digest);
    }
    h
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// For i in 0..n: `result = parse(serialise(result)); result["iteration"] = i`.
async fn compute_json(body: Bytes) -> Response {
    let f = fields(&body);
    let iterations = int_field(&f, "iterations", 100);
    let mut result = match f.get("data") {
        Some(Value::Object(data)) => Value::Object(data.clone()),
        _ => json!({"test": "data", "nested": {"value": 123}}),
    };
    for i in 0..iterations.max(0) {
        let text = result.to_string();
        result = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return internal_error(&e.to_string()),
        };
        if let Value::Object(map) = &mut result {
            map.insert("iteration".to_owned(), Value::from(i));
        }
    }
    Json(result).into_response()
}

async fn login(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    Json(json!({
        "success": true,
        "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        "user": {"id": 123, "email": any_field(&f, "email", "user@example.com"), "role": "user"},
    }))
}

async fn create_user(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    Json(json!({
        "id": now_ms(),
        "username": any_field(&f, "username", "testuser"),
        "profile": {
            "email": any_field(&f, "email", "test@example.com"),
            "ssn": any_field(&f, "ssn", "123-45-6789"),
            "creditCard": any_field(&f, "creditCard", "4111-1111-1111-1111"),
        },
        "createdAt": "2025-01-14T00:00:00Z",
    }))
}

/// `jobs` sleeps of `delayMs`, one after another. Negative values count as zero.
async fn io_bound(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    let jobs = int_field(&f, "jobs", 5);
    let delay = Duration::from_millis(int_field(&f, "delayMs", 5).max(0) as u64);
    let mut results = Vec::new();
    for job in 0..jobs.max(0) {
        tokio::time::sleep(delay).await;
        results.push(json!({"jobId": job, "timestamp": now_ms(), "status": "completed"}));
    }
    Json(json!({"totalJobs": jobs, "results": results, "completedAt": now_ms()}))
}

async fn slow() -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Json(json!({"message": "Slow response", "timestamp": now_ms()}))
}

async fn error() -> Response {
    internal_error("Internal Server Error")
}

fn internal_error(message: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": message}))).into_response()
}

async fn realistic(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    let user_id = any_field(&f, "userId", "user-123");
    let query: String = str_field(&f, "query", "default query").chars().take(50).collect();
    let email = str_field(&f, "email", "");
    let email_valid = email.is_empty() || looks_like_email(email);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let results: Vec<Value> = (0..10)
        .map(|i| {
            json!({
                "id": format!("item-{i}"),
                "userId": user_id,
                "data": {"index": i, "query": query},
                "score": f64::from(i + 1) * 0.1,
            })
        })
        .collect();
    Json(json!({
        "success": true,
        "userId": user_id,
        "emailValid": email_valid,
        "resultCount": 10,
        "results": results,
        "processingTimeMs": 10,
        "timestamp": now_ms(),
    }))
}

/// Python's `re.match(r"^[^@]+@[^@]+\.[^@]+", email)`: anchored at the start only.
pub(crate) fn looks_like_email(email: &str) -> bool {
    let Some((local, rest)) = email.split_once('@') else {
        return false;
    };
    if local.is_empty() {
        return false;
    }
    // `[^@]+\.[^@]+` must match a prefix of what follows the first `@`, inside its first `@`-free segment.
    let domain = rest.split('@').next().unwrap_or("");
    domain
        .char_indices()
        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
}

async fn typical_read(headers: HeaderMap) -> Json<Value> {
    let authenticated = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| String::from_utf8_lossy(v.as_bytes()).chars().count() > 10);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Json(json!({
        "id": "resource-123",
        "name": "Example Resource",
        "description": "This is a typical API response",
        "metadata": {"createdAt": "2025-01-14T00:00:00Z", "updatedAt": "2025-01-14T12:00:00Z", "version": 1},
        "authenticated": authenticated,
        "timestamp": now_ms(),
    }))
}

async fn typical_write(body: Bytes) -> Json<Value> {
    let f = fields(&body);
    let name = match f.get("name") {
        None | Some(Value::Null) => Value::from("default"),
        Some(Value::String(s)) if s.is_empty() => Value::from("default"),
        Some(v) => v.clone(),
    };
    tokio::time::sleep(Duration::from_millis(15)).await;
    let ms = now_ms();
    Json(json!({"id": format!("new-{ms}"), "name": name, "status": "created", "timestamp": ms}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_check_is_anchored_at_the_start_only() {
        for ok in [
            "a@b.c",
            "test@example.com",
            "a@b.c@d",
            "a@b.c d",
            "x@y.z.w",
            "a@b..",
            "a@.b.c",
        ] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in ["", "@b.c", "a@.c", "a@b.", "a@bc", "abc", "a@b@c.d", "a@@b.c"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }

    #[test]
    fn repeated_sha256_matches_known_digests() {
        assert_eq!(repeated_sha256("abc", 0), "abc");
        assert_eq!(
            repeated_sha256("abc", 1),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Python: h = "abc"; twice h = sha256(h.encode()).hexdigest()
        assert_eq!(
            repeated_sha256("abc", 2),
            "dfe7a23fefeea519e9bbfdd1a6be94c4b2e4529dd6b7cbea83f9959c2621b13c"
        );
    }

    #[test]
    fn falsy_values_follow_python() {
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(is_falsy(&v), "{v}");
        }
        for v in [json!(true), json!(1), json!("0"), json!([0]), json!({"a": null})] {
            assert!(!is_falsy(&v), "{v}");
        }
    }

    #[test]
    fn bodies_that_are_not_objects_give_defaults() {
        assert!(fields(b"not json").is_empty());
        assert!(fields(b"[1,2]").is_empty());
        assert_eq!(fields(br#"{"a":1}"#)["a"], json!(1));
    }
}
