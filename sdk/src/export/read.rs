//! Reading a trace file back (§8.2): one JSON object per line, each line written whole, so a crash can tear only the
//! last line of a file.
//!
//! The Tusk CLI rejects a file with any malformed line. [`read_trace_file`] is stricter about the middle and kinder
//! about the end: a malformed line that ends in `\n` is an error (it cannot come from a crash), while a last line
//! without its `\n` that does not parse is the torn tail of a crash. It is skipped and reported in
//! [`TraceFile::torn_tail`], so the rest of the trace is kept.

use std::path::{Path, PathBuf};

use crate::json::{self, Object, Value};

/// The spans of one trace file.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFile {
    /// One JSON object per complete line, in file order.
    pub spans: Vec<Object>,
    /// Bytes of a torn last line (written partly before a crash), skipped; 0 when the file ends cleanly.
    pub torn_tail: usize,
}

/// Why a trace file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadTraceError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A complete line (one that ends in `\n`) is not a JSON object: the file was not written by a Drift SDK, or
    /// was changed since. The Tusk CLI rejects such a file too.
    #[error("{path}: line {line} is not a JSON object: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the spans of the trace file at `path`, skipping a torn last line (see the module doc).
pub fn read_trace_file(path: impl AsRef<Path>) -> Result<TraceFile, ReadTraceError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ReadTraceError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_trace_file(&bytes).map_err(|(line, reason)| ReadTraceError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    })
}

/// The spans in `bytes`; on a malformed complete line, its number (from 1) and why.
fn parse_trace_file(bytes: &[u8]) -> Result<TraceFile, (usize, String)> {
    let mut spans = Vec::new();
    let mut rest = bytes;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        match parse_span(line) {
            Ok(span) => spans.push(span),
            Err(_) if !complete => {
                return Ok(TraceFile {
                    spans,
                    torn_tail: line.len(),
                });
            }
            Err(reason) => return Err((number, reason)),
        }
    }
    Ok(TraceFile { spans, torn_tail: 0 })
}

fn parse_span(line: &[u8]) -> Result<Object, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8 ({e})"))?;
    match json::parse(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("a JSON value that is not an object".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"traceId":"a","spanId":"1"}"#;
    const B: &str = r#"{"traceId":"a","spanId":"2"}"#;

    fn ids(file: &TraceFile) -> Vec<&str> {
        file.spans
            .iter()
            .map(|s| s.get("spanId").and_then(Value::as_str).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn whole_lines_are_read_in_order() {
        let file = parse_trace_file(format!("{A}\n{B}\n").as_bytes()).unwrap();
        assert_eq!((ids(&file), file.torn_tail), (vec!["1", "2"], 0));
        assert_eq!(parse_trace_file(b"").unwrap().spans.len(), 0);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_reported() {
        let torn = &B[..B.len() - 5];
        let file = parse_trace_file(format!("{A}\n{torn}").as_bytes()).unwrap();
        assert_eq!((ids(&file), file.torn_tail), (vec!["1"], torn.len()));
        // Torn inside a multi-byte character.
        let mut bytes = format!("{A}\n{{\"k\":\"é").into_bytes();
        bytes.pop();
        assert_eq!(parse_trace_file(&bytes).unwrap().spans.len(), 1);
        // A last line missing only its newline is whole.
        let file = parse_trace_file(format!("{A}\n{B}").as_bytes()).unwrap();
        assert_eq!((ids(&file), file.torn_tail), (vec!["1", "2"], 0));
    }

    #[test]
    fn a_malformed_complete_line_is_an_error() {
        let torn = &B[..10];
        for (text, line) in [
            (format!("{torn}\n{A}\n"), 1),
            (format!("{A}\n[1,2]\n"), 2),
            (format!("{A}\n\n"), 2),
        ] {
            assert_eq!(parse_trace_file(text.as_bytes()).unwrap_err().0, line, "{text:?}");
        }
        let err = read_trace_file("/nonexistent/trace.jsonl").unwrap_err();
        assert!(matches!(err, ReadTraceError::Io { .. }), "{err}");
    }
}
