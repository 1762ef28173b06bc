//! Turning parsed profiles into what people read: comfy-tables, the flame graph, the HTML report.

pub mod flamegraph;
pub mod html;
pub mod tables;
