//! The one error type of the profile parsers.

use std::fmt;

/// What kind of problem a [`ParseError`] reports, so a caller can word its advice (a truncated file usually means
/// the profiled process did not exit cleanly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The file ends in the middle of a line, an event or a JSON value: the writer was interrupted.
    Truncated,
    /// The file is complete but something in it is malformed or inconsistent.
    Invalid,
    /// The file is well formed but of a kind or version these parsers do not read.
    Unsupported,
}

/// A profile file that could not be read: what is wrong and, where it helps, on which line.
///
/// The message names the offending thing (line, program point, event) but not the file: callers add the path, e.g.
/// `parse_folded(&text).with_context(|| format!("reading {}", path.display()))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    line: Option<usize>,
    message: String,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, line: Option<usize>, message: impl Into<String>) -> ParseError {
        ParseError {
            kind,
            line,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(line: Option<usize>, message: impl Into<String>) -> ParseError {
        ParseError::new(ParseErrorKind::Invalid, line, message)
    }

    /// What kind of problem this is.
    #[cfg(test)]
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The 1-based line of the file the problem is on, when known.
    #[cfg(test)]
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The problem, without the line number.
    #[cfg(test)]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Turns a serde_json error into a [`ParseError`]: an unexpected end of input is [`ParseErrorKind::Truncated`].
pub(crate) fn from_json(err: &serde_json::Error, what: &str) -> ParseError {
    let line = Some(err.line()).filter(|&l| l > 0);
    // serde_json's own text ends with " at line L column C": keep the description, the line goes in `line`.
    let text = err.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    if err.classify() == serde_json::error::Category::Eof {
        ParseError::new(
            ParseErrorKind::Truncated,
            line,
            format!("truncated {what}: the file ends early ({text}); did the profiled process exit cleanly?"),
        )
    } else {
        ParseError::invalid(line, format!("not a valid {what}: {text}"))
    }
}
