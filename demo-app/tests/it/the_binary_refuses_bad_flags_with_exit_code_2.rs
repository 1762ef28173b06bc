//! Bad flags give a clear message on stderr and exit code 2, before anything is bound or written.

use std::process::Command;

#[test]
fn the_binary_refuses_bad_flags_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.yaml"), "sampling:\n  rate: 1.0\n").unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "transforms:\n  http:\n    - matcher: { jsonPath: \"$.a\" }\n      action: { type: explode }\n",
    )
    .unwrap();
    let mut cases = vec![
        (vec!["--hz", "1000"], "kernel tick"),
        (vec!["--sampling-rate", "2"], "rate from 0.0 to 1.0"),
        (vec!["--listen", "localhost"], "invalid socket address"),
        (vec!["--drain-timeout", "soon"], "drain-timeout"),
        (vec!["--no-such-flag"], "unexpected argument"),
        (
            vec!["--transforms", "missing.yaml"],
            "reading --transforms missing.yaml",
        ),
        (vec!["--transforms", "empty.yaml"], "has no rules"),
        (vec!["--transforms", "bad.yaml"], "explode"),
    ];
    if cfg!(not(feature = "pprof")) {
        cases.push((vec!["--pprof-endpoint"], "`pprof` feature"));
    }
    for (args, needle) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: printed a listening line");
    }
}

/// A start-up failure that is not a flag's fault (here a trace directory that cannot be created: its parent is a
/// file) exits 1, not 2, with the SDK's reason.
#[test]
fn a_trace_directory_that_cannot_be_created_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(["--mode", "record", "--traces-dir", "a-file/traces"])
        .current_dir(dir.path())
        .env_remove("TUSK_DRIFT_MODE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot create the trace directory"), "{stderr}");
    assert!(output.stdout.is_empty(), "printed a listening line");
}
