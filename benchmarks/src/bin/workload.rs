//! `workload`: drives a running demo app with a request mix and reports req/s, latency percentiles and errors.
//!
//! `workload --url http://127.0.0.1:PORT [--mix seed] [--iterations 500 | --duration 10s] [--concurrency C]
//! [--json out.json]`. Exit status: 0 on success, 1 when the URL is unreachable or too many requests failed (after
//! the JSON is written), 2 for bad arguments.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use benchmarks::Args;
use clap::Parser;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("workload: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let result = benchmarks::run(&args.plan())?;
    if !args.quiet {
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(result.report.render(&result.notes).as_bytes()) {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing the summary")?,
        }
    }
    if let Some(path) = &args.json {
        result.report.write_json(path)?;
    }
    if let Err(reason) = result.report.check_error_rate(args.max_error_rate) {
        eprintln!("workload: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
