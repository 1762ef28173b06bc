//! End-to-end behaviour of `drift-sdk` against real servers and clients on 127.0.0.1. One test binary; each module
//! is named after the behaviour it checks.

mod support;

mod disabled_and_unsampled_requests_pass_through;
mod drops_are_counted_when_the_exporter_stalls;
mod outbound_calls_become_client_spans;
mod redacted_password_reaches_no_file;
mod seed_mix_is_recorded_in_trace_files;
mod shutdown_writes_every_accepted_span;
