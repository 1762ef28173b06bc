//! End-to-end behaviour of `drift-sdk` against real servers and clients on 127.0.0.1. One test binary; each module
//! is named after the behaviour it checks.

mod support;

mod a_plain_hyper_service_is_recorded;
mod adaptive_sampling_sheds_load;
mod api_export_through_the_builder;
mod disabled_and_unsampled_requests_pass_through;
mod drop_rules_skip_requests;
mod drops_are_counted_when_the_exporter_stalls;
mod env_vars_snapshot_is_recorded_at_init;
mod layer_passes_streams_trailers_and_errors_through;
mod outbound_calls_become_client_spans;
mod redacted_password_reaches_no_file;
mod seed_mix_is_recorded_in_trace_files;
mod shutdown_writes_every_accepted_span;
mod size_and_content_gates_discard_spans;
