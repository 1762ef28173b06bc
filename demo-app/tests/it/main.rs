//! The demo app's integration tests: one binary, one module per behaviour. In-process tests build the app around
//! their own `Drift`; the others run the real binary (the profilers' files need a whole process).

mod support;

mod bad_input_is_answered_as_without_the_sdk;
#[cfg(feature = "dhat-heap")]
mod dhat_build_writes_a_complete_heap_profile;
mod every_endpoint_answers_the_seed_body;
mod kill_9_tears_at_most_the_last_line_of_a_file;
#[cfg(feature = "pprof")]
mod pprof_build_writes_a_complete_cpu_profile;
#[cfg(feature = "pprof")]
mod pprof_endpoint_profiles_a_window_of_a_loaded_app;
mod redacted_secrets_appear_in_no_file_the_run_writes;
mod sigterm_drains_requests_and_exits_cleanly;
mod the_binary_refuses_bad_flags_with_exit_code_2;
mod the_seed_mix_and_outbound_calls_are_recorded;
#[cfg(feature = "timeline")]
mod timeline_build_writes_a_complete_chrome_trace;
mod trace_directory_faults_are_counted_and_the_app_keeps_serving;
