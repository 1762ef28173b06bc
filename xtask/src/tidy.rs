//! Repository rules that a compiler does not check (rust-analyzer's `tidy.rs`).

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn workspace_members() -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let start = manifest.find("members").unwrap();
    let list = &manifest[start..manifest[start..].find(']').unwrap() + start];
    list.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn every_crate_has_a_crate_doc() {
    for member in workspace_members() {
        let src = workspace_root().join(&member).join("src");
        for root in ["lib.rs", "main.rs"] {
            let path = src.join(root);
            if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    text.trim_start().starts_with("//!"),
                    "{} has no crate doc (`//!` first)",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn architecture_names_every_crate() {
    let arch = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    for member in workspace_members() {
        assert!(
            arch.contains(&format!("`{member}/`")),
            "ARCHITECTURE.md does not name the crate `{member}/`"
        );
    }
}

/// The workspace lint denies unsafe code; one module allows it (the CPU sampler's signal handler and its ring), and
/// no other may.
#[test]
fn unsafe_code_lives_only_in_the_samplers_signal_module() {
    let allowed = workspace_root().join("sdk/src/pprof_endpoint/signal.rs");
    // Spelt in pieces, so that this file does not match itself.
    let word = "unsafe";
    let needles = [
        format!("allow({word}_code)"),
        format!("{word} {{"),
        format!("{word} fn"),
        format!("{word} impl"),
    ];
    for member in workspace_members() {
        for path in rust_files(&workspace_root().join(&member)) {
            if path == allowed || path.starts_with(workspace_root().join("target")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !needles.iter().any(|n| code.contains(n.as_str())),
                    "{}:{}: unsafe code belongs in sdk/src/pprof_endpoint/signal.rs only",
                    path.display(),
                    i + 1
                );
            }
        }
    }
    let signal = std::fs::read_to_string(&allowed).unwrap();
    assert!(
        signal.contains(&format!("#![{}]", needles[0])),
        "the signal module allows it itself"
    );
}

#[test]
fn the_sdk_does_not_print() {
    for path in rust_files(&workspace_root().join("sdk/src")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for banned in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                assert!(
                    !code.contains(banned),
                    "{}:{}: the SDK must log with tracing, not {banned}",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn readme_shows_the_test_command_that_ci_runs() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
    assert!(
        readme.contains("cargo test --workspace"),
        "README.md must show the test command"
    );
    assert!(
        ci.contains("cargo test --workspace"),
        ".ci/run must run the test command README.md gives"
    );
}
