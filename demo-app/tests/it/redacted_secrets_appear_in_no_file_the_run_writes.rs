//! Secrets under redact rules appear nowhere in what a run writes (issue 7): traces, the app's log, and in a profiler
//! build its profiles. A control run without the rules must find them, so the search is known to work.
//!
//! Bodies are stored base64-encoded, so each secret is searched for as plain text and as every base64 encoding it can
//! have inside a longer encoded value (three alignments).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use nix::sys::signal::Signal;

use crate::support::{blocking_client, wait_with_timeout};

const PASSWORD: &str = "hunter2-PASSWORD-SECRET-4417";
const BEARER: &str = "TOKEN-SECRET-9c1f2e77";
const COOKIE: &str = "COOKIE-SECRET-e5d0aa31";

const RULES: &str = r#"transforms:
  http:
    - matcher: { direction: inbound, jsonPath: "$.password" }
      action: { type: redact }
    - matcher: { direction: inbound, headerName: "authorization" }
      action: { type: redact }
    - matcher: { direction: inbound, headerName: "cookie" }
      action: { type: redact }
"#;

/// `secret` as plain text and as the base64 characters it always produces, at each of the three alignments.
fn encodings(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![secret.as_bytes().to_vec()];
    for k in 0..3usize {
        let mut bytes = vec![0u8; k];
        bytes.extend_from_slice(secret.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let start = 4 * k.div_ceil(3);
        let end = 4 * ((k + secret.len()) / 3);
        out.push(encoded.as_bytes()[start..end].to_vec());
    }
    out
}

/// Every file under `dir` (recursively) that contains one of `secrets` in any encoding, with the secret.
fn leaks(dir: &Path, secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for secret in secrets {
                if encodings(secret)
                    .iter()
                    .any(|needle| bytes.windows(needle.len()).any(|w| w == needle.as_slice()))
                {
                    found.push(format!("{secret} in {}", path.display()));
                }
            }
        }
    }
    found
}

/// Runs the binary (recording, trace log level) with or without the rules, sends secrets, stops it; returns the
/// directory holding everything it wrote.
fn run(with_rules: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let log = std::fs::File::create(dir.path().join("demo-app.log")).unwrap();
    let stdout = std::fs::File::create(dir.path().join("demo-app.out")).unwrap();
    let mut args = vec![
        "--mode",
        "record",
        "--traces-dir",
        "traces",
        "--profile-dir",
        "profile",
        "--log-level",
        "trace",
    ];
    if with_rules {
        args.extend(["--transforms", "rules.yaml"]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(&args)
        .current_dir(dir.path())
        .env_remove("TUSK_DRIFT_MODE")
        .env_remove("TUSK_SAMPLING_RATE")
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let url = {
        let out = dir.path().join("demo-app.out");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(line) = text.lines().next() {
                let listening: serde_json::Value = serde_json::from_str(line).unwrap();
                break listening["url"].as_str().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no listening line");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let client = blocking_client();
    for i in 0..20 {
        let response = client
            .post(format!("{url}/api/auth/login"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {BEARER}"))
            .header("cookie", format!("session={COOKIE}; theme=dark"))
            .body(format!(r#"{{"email":"user{i}@example.com","password":"{PASSWORD}"}}"#))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    dir
}

#[test]
fn redacted_secrets_appear_in_no_file_the_run_writes() {
    let secrets = [PASSWORD, BEARER, COOKIE];
    let control = run(false);
    let found = leaks(control.path(), &secrets);
    for secret in secrets {
        assert!(
            found.iter().any(|f| f.starts_with(secret)),
            "the control run (no rules) should record {secret}; the search would prove nothing: {found:?}"
        );
    }
    let redacted = run(true);
    let traces = std::fs::read_dir(redacted.path().join("traces")).unwrap().count();
    assert!(traces >= 20, "the redacted run recorded {traces} traces");
    let found = leaks(redacted.path(), &secrets);
    // rules.yaml itself names no secret; the files are the traces, the log, run.json and any profiler output.
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
}
