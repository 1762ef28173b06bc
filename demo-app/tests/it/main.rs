//! The demo app's integration tests: one binary, one module per behaviour. In-process tests build the app around
//! their own `Drift`; the others run the real binary (the profilers' files need a whole process).

mod support;

#[cfg(feature = "dhat-heap")]
mod dhat_build_writes_a_complete_heap_profile;
mod every_endpoint_answers_the_seed_body;
#[cfg(feature = "pprof")]
mod pprof_build_writes_a_complete_cpu_profile;
mod sigterm_drains_requests_and_exits_cleanly;
mod the_binary_refuses_bad_flags_with_exit_code_2;
mod the_seed_mix_and_outbound_calls_are_recorded;
#[cfg(feature = "timeline")]
mod timeline_build_writes_a_complete_chrome_trace;
