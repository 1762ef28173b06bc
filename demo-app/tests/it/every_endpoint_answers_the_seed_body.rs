//! Every endpoint of drift-format.md §15.1 answers the seed server's body, with the SDK recording.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{InProcess, record_in_memory};

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn get(&self, path: &str) -> (u16, Value) {
        self.answer(self.http.get(format!("{}{path}", self.url))).await
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.answer(request).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "application/json");
        let bytes = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Takes `key` out of `body`, checks it is a millisecond timestamp of the last minute, and returns it.
#[track_caller]
fn take_timestamp(body: &mut Value, key: &str) -> u64 {
    let ms = body.as_object_mut().unwrap().remove(key).unwrap().as_u64().unwrap();
    assert!(
        ms <= now_ms() && ms + 60_000 > now_ms(),
        "{key} = {ms} is not a recent UNIX time in ms"
    );
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_the_seed_body() {
    let (drift, spans) = record_in_memory();
    let app = InProcess::start(&drift).await;
    let c = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: app.url.clone(),
    };

    assert_eq!(c.get("/health").await, (200, json!({"status": "ok"})));
    for (path, post) in [("/api/simple", false), ("/api/simple-post", true)] {
        let (status, mut body) = if post {
            c.post(path, "ignored").await
        } else {
            c.get(path).await
        };
        take_timestamp(&mut body, "timestamp");
        assert_eq!((status, body), (200, json!({"message": "Hello World"})), "{path}");
    }

    // Echo: the parsed JSON, key order kept; `{}` for non-JSON and falsy bodies.
    let (_, echoed) = c.post("/api/echo", r#"{"data":"test","iteration":7}"#).await;
    assert_eq!(echoed.to_string(), r#"{"data":"test","iteration":7}"#);
    let (_, echoed) = c.post("/api/echo", r#"{"b":1,"a":[2]}"#).await;
    assert_eq!(echoed.to_string(), r#"{"b":1,"a":[2]}"#);
    for falsy in ["not json", "[]", "0", "\"\"", "null", "false", "{}"] {
        assert_eq!(c.post("/api/echo", falsy).await, (200, json!({})), "{falsy}");
    }

    for (path, id, len) in [
        ("/api/small", "small-123", demo_app::SMALL),
        ("/api/small-post", "small-post-123", demo_app::SMALL),
        ("/api/medium", "medium-456", demo_app::MEDIUM),
        ("/api/medium-post", "medium-post-456", demo_app::MEDIUM),
        ("/api/large", "large-789", demo_app::LARGE),
        ("/api/large-post", "large-post-789", demo_app::LARGE),
    ] {
        let (status, mut body) = if path.ends_with("-post") {
            c.post(path, "{}").await
        } else {
            c.get(path).await
        };
        take_timestamp(&mut body, "timestamp");
        let data = body.as_object_mut().unwrap().remove("data").unwrap();
        let data = data.as_str().unwrap();
        assert!(
            data.len() == len && data.bytes().all(|b| b == b'x'),
            "{path}: data of {}",
            data.len()
        );
        assert_eq!((status, body), (200, json!({"id": id})), "{path}");
    }

    assert_eq!(
        c.post("/api/compute-hash", r#"{"data":"abc","iterations":2}"#).await,
        (
            200,
            json!({"hash": "dfe7a23fefeea519e9bbfdd1a6be94c4b2e4529dd6b7cbea83f9959c2621b13c", "iterations": 2})
        )
    );
    // Python: h = "default-data"; 1000 times h = sha256(h.encode()).hexdigest()
    assert_eq!(
        c.post("/api/compute-hash", "{}").await,
        (
            200,
            json!({"hash": "73818107b350191ab53f2c6cab7a6d4be1bb43f84ebe7129dd005bc2ea8312c5", "iterations": 1000})
        )
    );

    let (_, result) = c.post("/api/compute-json", "{}").await;
    assert_eq!(
        result.to_string(),
        r#"{"test":"data","nested":{"value":123},"iteration":99}"#
    );
    assert_eq!(
        c.post("/api/compute-json", r#"{"iterations":0,"data":{"a":1}}"#).await,
        (200, json!({"a": 1}))
    );

    assert_eq!(
        c.post(
            "/api/auth/login",
            r#"{"email":"test@example.com","password":"secret123"}"#
        )
        .await,
        (
            200,
            json!({
                "success": true,
                "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                "user": {"id": 123, "email": "test@example.com", "role": "user"},
            })
        )
    );
    assert_eq!(
        c.post("/api/auth/login", "").await.1["user"]["email"],
        "user@example.com"
    );

    let (status, mut user) = c.post("/api/users", "{}").await;
    take_timestamp(&mut user, "id");
    assert_eq!(
        (status, user),
        (
            200,
            json!({
                "username": "testuser",
                "profile": {"email": "test@example.com", "ssn": "123-45-6789", "creditCard": "4111-1111-1111-1111"},
                "createdAt": "2025-01-14T00:00:00Z",
            })
        )
    );

    let started = Instant::now();
    let (status, mut io) = c.post("/api/io-bound", r#"{"jobs":3,"delayMs":10}"#).await;
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "the jobs run one after another"
    );
    take_timestamp(&mut io, "completedAt");
    let mut results = io.as_object_mut().unwrap().remove("results").unwrap();
    for (i, job) in results.as_array_mut().unwrap().iter_mut().enumerate() {
        take_timestamp(job, "timestamp");
        assert_eq!(*job, json!({"jobId": i, "status": "completed"}));
    }
    assert_eq!(
        (status, io, results.as_array().unwrap().len()),
        (200, json!({"totalJobs": 3}), 3)
    );

    let started = Instant::now();
    let (status, mut slow) = c.get("/api/slow").await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    take_timestamp(&mut slow, "timestamp");
    assert_eq!((status, slow), (200, json!({"message": "Slow response"})));

    assert_eq!(
        c.get("/api/error").await,
        (500, json!({"error": "Internal Server Error"}))
    );

    let long_query = "q".repeat(80);
    let (status, mut realistic) = c
        .post(
            "/api/realistic",
            &format!(r#"{{"userId":"user-1","query":"{long_query}","email":"test@example.com"}}"#),
        )
        .await;
    take_timestamp(&mut realistic, "timestamp");
    let results = realistic.as_object_mut().unwrap().remove("results").unwrap();
    assert_eq!(
        (status, realistic),
        (
            200,
            json!({"success": true, "userId": "user-1", "emailValid": true, "resultCount": 10, "processingTimeMs": 10})
        )
    );
    let scores: Vec<String> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].to_string())
        .collect();
    assert_eq!(
        scores,
        [
            "0.1",
            "0.2",
            "0.30000000000000004",
            "0.4",
            "0.5",
            "0.6000000000000001",
            "0.7000000000000001",
            "0.8",
            "0.9",
            "1.0"
        ]
    );
    assert_eq!(
        results[3],
        json!({"id": "item-3", "userId": "user-1", "data": {"index": 3, "query": "q".repeat(50)}, "score": 0.4})
    );
    assert_eq!(
        c.post("/api/realistic", r#"{"email":"nope"}"#).await.1["emailValid"],
        false
    );

    for (authorization, authenticated) in [(None, false), (Some("short"), false), (Some("Bearer abcdefghij"), true)] {
        let mut request = c.http.get(format!("{}/api/typical-read", c.url));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let (status, mut read) = c.answer(request).await;
        take_timestamp(&mut read, "timestamp");
        assert_eq!(
            (status, read),
            (
                200,
                json!({
                    "id": "resource-123",
                    "name": "Example Resource",
                    "description": "This is a typical API response",
                    "metadata": {"createdAt": "2025-01-14T00:00:00Z", "updatedAt": "2025-01-14T12:00:00Z", "version": 1},
                    "authenticated": authenticated,
                })
            ),
            "{authorization:?}"
        );
    }

    for (body, name) in [
        (r#"{"name":"item-4"}"#, "item-4"),
        (r#"{"name":""}"#, "default"),
        ("{}", "default"),
    ] {
        let (status, mut write) = c.post("/api/typical-write", body).await;
        let ms = take_timestamp(&mut write, "timestamp");
        assert_eq!(
            (status, write),
            (
                200,
                json!({"id": format!("new-{ms}"), "name": name, "status": "created"})
            )
        );
    }

    let (status, calibrate) = c.get("/api/calibrate?units=2").await;
    assert_eq!((status, &calibrate["ratio"]), (200, &json!([60, 30, 10])));
    assert_eq!(c.get("/api/calibrate?ratio=1,2").await.0, 400);
    let (status, syscalls) = c.get("/api/calibrate-syscalls?units=3").await;
    assert_eq!((status, syscalls), (200, json!({"units": 3, "bytes": 7500})));
    let (status, wakeups) = c.get("/api/calibrate-wakeups?units=5").await;
    assert_eq!((status, wakeups), (200, json!({"rounds": 5})));
    for bad in ["/api/calibrate-syscalls?units=0", "/api/calibrate-wakeups?units=x"] {
        assert_eq!(c.get(bad).await.0, 400, "{bad}");
    }

    let (status, outbound) = c.post("/api/outbound", r#"{"userId":"user-9"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        outbound["user"],
        json!({"id": "user-9", "name": "User user-9", "email": "user-9@example.com", "plan": "pro"})
    );
    assert_eq!(outbound["audited"], true);

    let served = app.stop().await;
    let timed: Vec<&str> = served.calibration.iter().map(|t| t.function).collect();
    assert_eq!(
        timed,
        [
            "demo_app::calibrate::calibrate_sixty",
            "demo_app::calibrate::calibrate_thirty",
            "demo_app::calibrate::calibrate_ten",
            "demo_app::calibrate::calibrate_syscalls",
            "demo_app::calibrate::calibrate_wait",
        ],
        "every calibration function that ran is timed by its thread's clock"
    );
    drift.shutdown();
    assert!(
        !spans.is_empty(),
        "the layer recorded while the bodies above were checked"
    );
}
