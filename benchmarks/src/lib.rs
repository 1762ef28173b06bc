//! The workload driver: sends a mix of requests to a running demo app over keep-alive HTTP/1.1 connections and
//! reports throughput, latency percentiles and errors. The `workload` binary is a thin shell around this crate.
//!
//! - [`flags`] — the command line ([`Args`]), parsed into a [`Plan`].
//! - [`mix`] — named mixes, `endpoint=weight` lists and mix files; the deterministic schedule.
//! - [`driver`] — the workers, their connections and the shared request counter; [`run`] a plan.
//! - [`report`] — the JSON document ([`Report`]) and the human summary.
//!
//! ```no_run
//! use benchmarks::{Args, run};
//! use clap::Parser;
//!
//! let args = Args::parse_from(["workload", "--url", "http://127.0.0.1:8080", "--iterations", "100"]);
//! let result = run(&args.plan())?;
//! print!("{}", result.report.render(&result.notes));
//! # anyhow::Ok(())
//! ```

#![deny(missing_docs)]

pub mod driver;
pub mod flags;
pub mod mix;
mod progress;
pub mod report;

pub use driver::{Run, run};
pub use flags::{Args, Plan, Stop, Target};
pub use mix::{Entry, Mix, Template};
pub use report::{Latency, Notes, Report};
