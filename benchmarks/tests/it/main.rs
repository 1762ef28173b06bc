//! End-to-end tests of the `workload` binary against small axum servers on 127.0.0.1; file names are behaviours.

mod a_paced_run_keeps_its_rate_and_times_late_requests_from_their_due_time;
mod bad_input_fails_fast_with_a_clear_message;
mod concurrency_uses_one_keep_alive_connection_per_worker;
mod connection_errors_are_counted;
mod duration_runs_stop_by_themselves;
mod errors_above_the_limit_fail_the_run_after_writing_the_json;
mod latency_runs_from_sending_to_the_last_byte;
mod support;
mod the_seed_mix_sends_exactly_the_seed_requests;
