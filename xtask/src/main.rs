//! `cargo xtask`: the project's own commands.
//!
//! The profiling commands (`profile`, `compare`, `bench`) arrive with their issues; today this binary only hosts the
//! repository's `tidy` checks, which run under `cargo test`.

#[cfg(test)]
mod tidy;

fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    anyhow::bail!(
        "unknown command {}: no xtask command exists yet (profile, compare and bench are planned)",
        command.as_deref().unwrap_or("(none)")
    )
}
