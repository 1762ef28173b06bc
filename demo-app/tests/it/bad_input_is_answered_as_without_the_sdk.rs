//! Bad input through the demo app (issue 7): every case gets the answer the app gives without the SDK, nothing panics
//! or crashes, and each span is written as valid JSON or skipped with a counted reason.
//!
//! Two apps run side by side, one recording into trace files and one with the SDK disabled. Each case sends the
//! same raw bytes to both over a fresh connection (`Connection: close`) and compares what comes back, after masking
//! the `date` header and the `timestamp` fields.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use drift_sdk::{Drift, Mode};
use serde_json::Value;

use crate::support::InProcess;

/// How a case ends its side of the connection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Send everything and read the answer until the server closes.
    Read,
    /// Send everything, shut down the write side (the body ends early), then read.
    HalfClose,
    /// Send everything and close without reading: the answer has nowhere to go.
    Vanish,
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    then: Then,
}

fn request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A request whose `content-length` is the body's own.
fn with_body(method: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    request(
        method,
        path,
        &[
            ("content-type", content_type.as_bytes()),
            ("content-length", len.as_bytes()),
        ],
        body,
    )
}

fn json_to(path: &str, body: &[u8]) -> Vec<u8> {
    with_body("POST", path, "application/json", body)
}

fn cases() -> Vec<Case> {
    let read = |name, request| Case {
        name,
        request,
        then: Then::Read,
    };
    let ten_mib = {
        let mut b = b"{\"data\":\"".to_vec();
        b.resize(10 * 1024 * 1024 - 2, b'x');
        b.extend_from_slice(b"\"}");
        b
    };
    let non_utf8: &[u8] = b"{\"data\":\"\xff\xfe\xc3\x28 \xa0\xa1\"}";
    let invalid_json: &[u8] = b"{\"data\": [1, 2,, }";
    let deep = {
        let mut b = vec![b'['; 100_000];
        b.extend(std::iter::repeat_n(b']', 100_000));
        b
    };
    let numbers: &[u8] = br#"{"nan":NaN,"inf":Infinity,"huge":1e400,"big":123456789012345678901234567890,"tiny":5e-400,"negzero":-0.0,"negzero_int":-0}"#;
    let valid_numbers: &[u8] =
        br#"{"huge":1e308,"big":123456789012345678901234567890,"tiny":5e-324,"negzero":-0.0,"negzero_int":-0}"#;
    let keys = "{\"ключ\":1,\"\\u0000nul\":2,\"tab\\there\":3,\"\\u001f\":4,\"emoji 🎉\":5,\"\\ud800\":6}".as_bytes();
    let many_headers: Vec<(String, Vec<u8>)> = (0..1000).map(|i| (format!("x-h{i}"), b"v".to_vec())).collect();
    let many_headers: Vec<(&str, &[u8])> = many_headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let chunked_abort = b"POST /api/simple-post HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\
        content-type: application/json\r\n\r\n5\r\n{\"a\":\r\n"
        .to_vec();
    let mut cases = Vec::new();
    for path in ["/api/echo", "/api/simple-post"] {
        cases.extend([
            read("a 10 MiB body", json_to(path, &ten_mib)),
            read("a non-UTF-8 body", json_to(path, non_utf8)),
            read("invalid JSON with a JSON content type", json_to(path, invalid_json)),
            read("JSON nested 100,000 levels deep", json_to(path, &deep)),
            read("NaN, infinite, huge and negative-zero numbers", json_to(path, numbers)),
            read(
                "huge and negative-zero numbers that are valid JSON",
                json_to(path, valid_numbers),
            ),
            read("keys with unicode and control characters", json_to(path, keys)),
            read(
                "a body longer than its content-length",
                request(
                    "POST",
                    path,
                    &[("content-type", b"application/json"), ("content-length", b"4")],
                    b"{}  and then some garbage that is not a request",
                ),
            ),
            Case {
                name: "a body shorter than its content-length",
                request: request(
                    "POST",
                    path,
                    &[("content-type", b"application/json"), ("content-length", b"100")],
                    b"{\"short\":true}",
                ),
                then: Then::HalfClose,
            },
        ]);
    }
    cases.extend([
        read("1,000 headers", request("GET", "/api/simple", &many_headers, b"")),
        read(
            "header values that are not UTF-8",
            request(
                "GET",
                "/api/simple",
                &[
                    ("x-latin1", b"caf\xe9"),
                    ("x-bytes", b"\x80\x81\xfe\xff"),
                    ("authorization", b"Bearer \xff"),
                ],
                b"",
            ),
        ),
        Case {
            name: "a chunked body aborted mid-stream",
            request: chunked_abort,
            then: Then::HalfClose,
        },
        Case {
            name: "a client that disconnects before the response is read",
            request: request("GET", "/api/slow", &[], b""),
            then: Then::Vanish,
        },
    ]);
    cases
}

/// Sends `case` to the app at `addr` and returns what came back (empty when the case does not read).
fn send(addr: &str, case: &Case) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before it has read everything (a 413, say): keep what it said.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let bytes = case.request.clone();
        let then = case.then;
        std::thread::spawn(move || {
            let _ = stream.write_all(&bytes);
            if then == Then::HalfClose {
                let _ = stream.shutdown(Shutdown::Write);
            }
        })
    };
    if case.then == Then::Vanish {
        writer.join().unwrap();
        drop(stream);
        return Vec::new();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after the answer (unread request bytes on close) ends the exchange; a timeout is a hang.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("{}: no answer within 20 s", case.name)
            }
            Err(_) => break,
        }
    }
    let _ = writer.join();
    answer
}

/// The answer with its `date` header and `timestamp` values masked, as text (lossy: bodies echo bad bytes).
fn masked(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        if line.to_ascii_lowercase().starts_with("date:") {
            out.push_str("date: *\r\n");
        } else {
            out.push_str(line);
        }
    }
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("\"timestamp\":") {
        let (head, tail) = rest.split_at(at + "\"timestamp\":".len());
        masked.push_str(head);
        masked.push('*');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    masked.push_str(rest);
    masked
}

fn status_of(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn bad_input_is_answered_as_without_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let recording = Drift::builder()
        .mode(Mode::Record)
        .sampling_rate(1.0)
        .traces_dir(dir.path())
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let disabled = Drift::builder()
        .mode(Mode::Disabled)
        .env_vars(Vec::new())
        .init()
        .unwrap();
    let with_sdk = runtime.block_on(InProcess::start(&recording));
    let without_sdk = runtime.block_on(InProcess::start(&disabled));
    let addr = |url: &str| url.trim_start_matches("http://").to_owned();
    let (with_addr, without_addr) = (addr(&with_sdk.url), addr(&without_sdk.url));

    let cases = cases();
    let mut report = Vec::new();
    for case in &cases {
        let with = masked(&send(&with_addr, case));
        let without = masked(&send(&without_addr, case));
        report.push(format!("{:<55} {}", case.name, status_of(&without)));
        if with != without {
            panic!(
                "{}: the SDK changed the answer\n--- without the SDK:\n{}\n--- with the SDK:\n{}",
                case.name,
                &without[..without.len().min(2000)],
                &with[..with.len().min(2000)]
            );
        }
    }
    // Both apps still serve.
    for addr in [&with_addr, &without_addr] {
        let health = masked(&send(
            addr,
            &Case {
                name: "health",
                request: request("GET", "/health", &[], b""),
                then: Then::Read,
            },
        ));
        assert!(status_of(&health).contains("200"), "{health}");
    }
    // Let the vanished client's /api/slow finish before the books are closed.
    std::thread::sleep(Duration::from_millis(300));
    assert!(recording.flush());
    let stats = recording.stats();

    // Every span on disk is one valid JSON line, and every recorded span is accounted for.
    let mut lines = 0u64;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let span: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:.300}"));
            assert!(span["traceId"].is_string(), "{line:.300}");
            lines += 1;
        }
    }
    assert_eq!(lines, stats.exported, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        stats.recorded,
        stats.exported + stats.blocked,
        "every recorded span is written or skipped with a counted reason: {stats:?}"
    );
    assert!(
        stats.exported > 0 && stats.blocked > 0,
        "{stats:?}\n{}",
        report.join("\n")
    );
    runtime.block_on(with_sdk.stop());
    runtime.block_on(without_sdk.stop());
    recording.shutdown();
    eprintln!("{}\n{stats:?}", report.join("\n"));
}
