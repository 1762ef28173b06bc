//! Reading the profilers' files into tables: folded stacks (cpu), `dhat-heap.json` (mem), Chrome traces (timeline).

pub mod calibration;
pub mod chrome;
pub mod dhat;
mod error;
pub mod folded;
pub mod names;
pub mod threads;

pub use error::{ParseError, ParseErrorKind};
