//! `cargo xtask`: the project's own commands.
//!
//! - `cargo xtask profile cpu|mem|timeline`: build the demo app with the mode's profiler, drive it with the
//!   workload, and print where the CPU time, the allocations or the SDK's stage time go (`profile.rs`).
//! - `cargo xtask profile attach --url http://127.0.0.1:PORT`: the cpu report of a window of a running app, fetched
//!   from its `/debug/pprof/profile` endpoint (`attach.rs`).
//! - `cargo xtask compare BEFORE AFTER`: what changed between two saved runs, and whether it is noise
//!   (`compare.rs`).
//! - `cargo xtask bench`: the SDK's overhead end to end, against the targets it must meet (`bench.rs`).
//! - `cargo xtask faults stall|shutdown`: reliability checks too long for CI (`faults.rs`).
//!
//! Thin: parse the flags (`flags.rs`), find the workspace root, dispatch. Exit codes: 0 done, 1 a step failed,
//! 2 bad usage.

mod attach;
mod bench;
mod collect;
mod compare;
mod faults;
mod flags;
mod overhead;
mod parse;
mod perf;
mod profile;
mod render;
mod summary;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// A failure and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line or an input cannot be used (exit 2).
    Usage(anyhow::Error),
    /// A step failed (exit 1).
    Run(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let result = workspace_root().map_err(Failure::Run).and_then(|root| {
        let sh = xshell::Shell::new().map_err(|e| Failure::Run(e.into()))?;
        sh.change_dir(&root);
        match flags.command {
            flags::Command::Profile(args) => args.run(&sh, &root),
            flags::Command::Compare(args) => args.run(&root),
            flags::Command::Bench(args) => args.run(&sh, &root),
            flags::Command::Faults(args) => args.run(&sh, &root),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("xtask's manifest directory {} has no parent", manifest.display()))
}
