//! The SDK's one error type.

use std::path::PathBuf;

/// What can go wrong when the SDK starts. Once running, the SDK never returns errors into the host's request path:
/// failures inside a stage drop the span, count it in [`Stats`](crate::Stats) and log once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value the SDK cannot use. The message names the setting and what to change.
    #[error("invalid drift-sdk configuration: {0}")]
    Config(String),

    /// A transform rule is invalid (unknown action, malformed `jsonPath`). Fix or remove the rule.
    #[error("invalid transform rule: {0}")]
    Transform(#[from] crate::transform::TransformConfigError),

    /// The trace directory could not be created. Check the path (`traces.dir`) and its permissions.
    #[error("cannot create the trace directory {path}: {source}")]
    TracesDir {
        /// The directory the SDK tried to create.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The API exporter could not be built (for example a malformed `tusk_api.url`).
    #[error("cannot set up API export: {0}")]
    ApiExport(String),

    /// The export thread could not be started. The OS refused a new thread; the SDK records nothing.
    #[error("cannot start the drift-exporter thread: {0}")]
    ExportThread(#[source] std::io::Error),
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
