//! A JSON parser with Python `json.loads` semantics, within the limits of §7.4 and §13.5 of the format.
//!
//! - Integers (no `.`, `e`, `E`) of any size are kept exactly: [`Value::Int`] when they fit `i64`, otherwise
//!   [`Value::BigInt`]. `-0` is `Int(0)`.
//! - Other numbers are `f64`, correctly rounded; a magnitude that overflows `f64` becomes [`Value::Null`].
//! - Duplicate keys: the last value wins, at the first key's position.
//! - Rejected: `NaN` / `Infinity` / `-Infinity`, unpaired surrogate escapes, leading zeros, raw control characters in
//!   strings, trailing characters other than whitespace (` `, `\t`, `\n`, `\r`), and nesting deeper than
//!   [`MAX_DEPTH`] levels (arrays and objects counted together).

use std::fmt;

use super::value::{Object, Value};

/// Deepest nesting that parses: 127 levels parse, 128 fail (serde_json's default limit, §13.5).
pub const MAX_DEPTH: usize = 127;

/// Objects with more entries than this are checked for duplicate keys by sorting instead of pairwise comparison.
const LINEAR_DEDUP_MAX: usize = 16;

/// Why a text is not JSON the SDK accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The text ended inside a value (or was empty).
    UnexpectedEnd,
    /// A character that cannot start or continue a value here (this covers `NaN` and `Infinity`).
    UnexpectedChar,
    /// A malformed number: leading zero, `-` without digits, `.` or exponent without digits.
    InvalidNumber,
    /// A backslash escape that JSON does not define, or a malformed `\u` escape.
    InvalidEscape,
    /// A `\uD800`–`\uDFFF` escape that is not part of a high+low surrogate pair.
    UnpairedSurrogate,
    /// A raw control character (U+0000–U+001F) inside a string.
    ControlCharacter,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Non-whitespace after the value.
    TrailingCharacters,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseErrorKind::UnexpectedEnd => "unexpected end of input",
            ParseErrorKind::UnexpectedChar => "unexpected character",
            ParseErrorKind::InvalidNumber => "invalid number",
            ParseErrorKind::InvalidEscape => "invalid escape",
            ParseErrorKind::UnpairedSurrogate => "unpaired surrogate escape",
            ParseErrorKind::ControlCharacter => "control character in string",
            ParseErrorKind::TooDeep => "nesting deeper than 127 levels",
            ParseErrorKind::TrailingCharacters => "trailing characters",
        })
    }
}

/// A parse failure: what went wrong and the byte offset where it was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    offset: usize,
}

impl ParseError {
    /// What went wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// Byte offset in the input where the error was noticed.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON: {} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Parses `text` as one JSON value, optionally surrounded by whitespace.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err(ParseErrorKind::TrailingCharacters));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, kind: ParseErrorKind) -> ParseError {
        ParseError { kind, offset: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A value starting at `pos` (whitespace already skipped).
    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.err(ParseErrorKind::UnexpectedEnd)),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(ParseErrorKind::UnexpectedChar)),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, ParseError> {
        let rest = &self.bytes[self.pos..];
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else if word.starts_with(rest) {
            self.pos = self.bytes.len();
            Err(self.err(ParseErrorKind::UnexpectedEnd))
        } else {
            Err(self.err(ParseErrorKind::UnexpectedChar))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(self.err(ParseErrorKind::TooDeep))
        } else {
            Ok(())
        }
    }

    /// Consumes `b` after optional whitespace, or fails.
    fn expect(&mut self, b: u8) -> Result<(), ParseError> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c == b => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.err(ParseErrorKind::UnexpectedChar)),
            None => Err(self.err(ParseErrorKind::UnexpectedEnd)),
        }
    }

    /// After an element: `true` if a `,` follows, `false` at the closing `close`.
    fn separator(&mut self, close: u8) -> Result<bool, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Err(self.err(ParseErrorKind::UnexpectedChar)),
            None => Err(self.err(ParseErrorKind::UnexpectedEnd)),
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                items.push(self.value()?);
                if !self.separator(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut entries: Vec<(String, Value)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                match self.peek() {
                    Some(b'"') => {}
                    Some(_) => return Err(self.err(ParseErrorKind::UnexpectedChar)),
                    None => return Err(self.err(ParseErrorKind::UnexpectedEnd)),
                }
                let key = self.string()?;
                self.expect(b':')?;
                self.skip_ws();
                let value = self.value()?;
                entries.push((key, value));
                if !self.separator(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Object(build_object(entries)))
    }

    /// A string starting at the opening quote; returns its decoded text.
    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // '"'
        let mut start = self.pos;
        let mut out: Option<String> = None;
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.err(ParseErrorKind::UnexpectedEnd));
            };
            match b {
                b'"' => {
                    // `start` and `pos` sit next to ASCII delimiters, so they are char boundaries.
                    let tail = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(match out {
                        Some(mut s) => {
                            s.push_str(tail);
                            s
                        }
                        None => tail.to_owned(),
                    });
                }
                b'\\' => {
                    let s = out.get_or_insert_with(String::new);
                    s.push_str(&self.text[start..self.pos]);
                    self.pos += 1;
                    s.push(self.escape()?);
                    start = self.pos;
                }
                0x00..=0x1f => return Err(self.err(ParseErrorKind::ControlCharacter)),
                _ => self.pos += 1,
            }
        }
    }

    /// The character of an escape; `pos` is just after the backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let Some(b) = self.peek() else {
            return Err(self.err(ParseErrorKind::UnexpectedEnd));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let at = self.pos - 2;
                let unpaired = ParseError {
                    kind: ParseErrorKind::UnpairedSurrogate,
                    offset: at,
                };
                let hi = self.hex4()?;
                let cp = match hi {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(unpaired);
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(unpaired);
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(unpaired),
                    _ => hi,
                };
                char::from_u32(cp).ok_or(unpaired)?
            }
            _ => {
                self.pos -= 1;
                return Err(self.err(ParseErrorKind::InvalidEscape));
            }
        })
    }

    /// Four hex digits (either case) as a number.
    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                Some(_) => return Err(self.err(ParseErrorKind::InvalidEscape)),
                None => return Err(self.err(ParseErrorKind::UnexpectedEnd)),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err(ParseErrorKind::InvalidNumber));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(ParseErrorKind::InvalidNumber)),
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(ParseErrorKind::InvalidNumber));
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(ParseErrorKind::InvalidNumber));
            }
            is_float = true;
        }
        let text = &self.text[start..self.pos];
        if is_float {
            // Rust's parser rounds correctly; a magnitude beyond f64 gives infinity, recorded as null (§7.4).
            let v: f64 = text.parse().map_err(|_| ParseError {
                kind: ParseErrorKind::InvalidNumber,
                offset: start,
            })?;
            Ok(Value::float(v))
        } else {
            // The grammar above leaves only overflow as a failure: then the exact text is kept.
            Ok(match text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::BigInt(text.into()),
            })
        }
    }
}

/// Builds an object from parsed entries with Python's duplicate-key rule (last value, first position).
fn build_object(entries: Vec<(String, Value)>) -> Object {
    let n = entries.len();
    let has_duplicates = if n <= LINEAR_DEDUP_MAX {
        (1..n).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
    } else {
        let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2).any(|w| w[0] == w[1])
    };
    let mut obj = Object::with_capacity(n);
    for (k, v) in entries {
        if has_duplicates {
            obj.insert(k, v);
        } else {
            obj.push_unique(k, v);
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(text: &str) -> Value {
        match parse(text) {
            Ok(v) => v,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    #[track_caller]
    fn check(text: &str, expected: Value) {
        assert_eq!(ok(text), expected, "{text:?}");
    }

    #[track_caller]
    fn fails(text: &str, kind: ParseErrorKind) {
        match parse(text) {
            Ok(v) => panic!("{text:?} should fail, parsed as {v:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{text:?}: {e}"),
        }
    }

    fn obj(entries: &[(&str, Value)]) -> Value {
        let mut o = Object::new();
        for (k, v) in entries {
            o.push_unique(k.to_string(), v.clone());
        }
        Value::Object(o)
    }

    #[test]
    fn scalars() {
        check("null", Value::Null);
        check(" true ", Value::Bool(true));
        check("\t\n\rfalse\n", Value::Bool(false));
        check(r#""a\"b\\c\/\b\f\n\r\t""#, Value::from("a\"b\\c/\u{8}\u{c}\n\r\t"));
        check(r#""\u00e9\u00E9\ud83d\ude00\u0000""#, Value::from("éé😀\0"));
        check(r#""é😀""#, Value::from("é😀"));
    }

    #[test]
    fn numbers() {
        check("0", Value::Int(0));
        check("-0", Value::Int(0));
        check("42", Value::Int(42));
        check("-9223372036854775808", Value::Int(i64::MIN));
        check("9223372036854775807", Value::Int(i64::MAX));
        check("9223372036854775808", Value::BigInt("9223372036854775808".into()));
        check("-9223372036854775809", Value::BigInt("-9223372036854775809".into()));
        check(
            "12345678901234567890123",
            Value::BigInt("12345678901234567890123".into()),
        );
        check("1E2", Value::Float(100.0));
        check("1.50", Value::Float(1.5));
        check("-0.0", Value::Float(-0.0));
        check("1e-400", Value::Float(0.0));
        check("1e400", Value::Null);
        check("-1e400", Value::Null);
        check("0.1", Value::Float(0.1));
        check("2.2250738585072011e-308", Value::Float(2.225_073_858_507_201e-308));
        check("1e+2", Value::Float(100.0));
    }

    #[test]
    fn bad_numbers() {
        fails("01", ParseErrorKind::InvalidNumber);
        fails("-01", ParseErrorKind::InvalidNumber);
        fails("-", ParseErrorKind::InvalidNumber);
        fails("1.", ParseErrorKind::InvalidNumber);
        fails(".5", ParseErrorKind::UnexpectedChar);
        fails("1e", ParseErrorKind::InvalidNumber);
        fails("1e+", ParseErrorKind::InvalidNumber);
        fails("+1", ParseErrorKind::UnexpectedChar);
        fails("NaN", ParseErrorKind::UnexpectedChar);
        fails("Infinity", ParseErrorKind::UnexpectedChar);
        fails("-Infinity", ParseErrorKind::InvalidNumber);
        fails("[NaN]", ParseErrorKind::UnexpectedChar);
    }

    #[test]
    fn bad_strings() {
        fails(r#""\ud800""#, ParseErrorKind::UnpairedSurrogate);
        fails(r#""\ud800x""#, ParseErrorKind::UnpairedSurrogate);
        fails(r#""\ud800\u0041""#, ParseErrorKind::UnpairedSurrogate);
        fails(r#""\udc00""#, ParseErrorKind::UnpairedSurrogate);
        fails(r#""\x""#, ParseErrorKind::InvalidEscape);
        fails(r#""\u12g4""#, ParseErrorKind::InvalidEscape);
        fails("\"a\nb\"", ParseErrorKind::ControlCharacter);
        fails(r#""abc"#, ParseErrorKind::UnexpectedEnd);
        fails("'a'", ParseErrorKind::UnexpectedChar);
    }

    #[test]
    fn structure() {
        check("[]", Value::Array(vec![]));
        check("{}", Value::Object(Object::new()));
        check(
            r#"{ "a" : [1, {"b": null}], "c": "d" }"#,
            obj(&[
                ("a", Value::Array(vec![Value::Int(1), obj(&[("b", Value::Null)])])),
                ("c", Value::from("d")),
            ]),
        );
        fails("", ParseErrorKind::UnexpectedEnd);
        fails("   ", ParseErrorKind::UnexpectedEnd);
        fails("[1,]", ParseErrorKind::UnexpectedChar);
        fails(r#"{"a":1,}"#, ParseErrorKind::UnexpectedChar);
        fails(r#"{"a" 1}"#, ParseErrorKind::UnexpectedChar);
        fails("{a:1}", ParseErrorKind::UnexpectedChar);
        fails("[1 2]", ParseErrorKind::UnexpectedChar);
        fails("[1", ParseErrorKind::UnexpectedEnd);
        fails("tru", ParseErrorKind::UnexpectedEnd);
        fails("trux", ParseErrorKind::UnexpectedChar);
        fails("{} x", ParseErrorKind::TrailingCharacters);
        fails("1 2", ParseErrorKind::TrailingCharacters);
        fails("\u{feff}{}", ParseErrorKind::UnexpectedChar);
    }

    #[test]
    fn duplicate_keys_last_wins_at_first_position() {
        check(
            r#"{"a":1,"b":2,"a":3}"#,
            obj(&[("a", Value::Int(3)), ("b", Value::Int(2))]),
        );
        // The sorted check for large objects.
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!(r#""k{i}":{i},"#));
        }
        text.push_str(r#""k5":"last"}"#);
        let v = ok(&text);
        let o = v.as_object().expect("object");
        assert_eq!(o.len(), 40);
        assert_eq!(o.entries()[5], ("k5".into(), Value::from("last")));
        // No duplicates in a large object: every key kept in order.
        let v = ok(
            r#"{"z":0,"y":1,"x":2,"w":3,"v":4,"u":5,"t":6,"s":7,"r":8,"q":9,"p":10,"o":11,"n":12,"m":13,"l":14,"k":15,"j":16,"i":17}"#,
        );
        let keys: Vec<&str> = v.as_object().expect("object").iter().map(|(k, _)| k).collect();
        assert_eq!(keys.concat(), "zyxwvutsrqponmlkji");
    }

    fn nested(levels: usize, open: &str, close: &str) -> String {
        format!("{}{}", open.repeat(levels), close.repeat(levels))
    }

    #[test]
    fn depth_limit_127_parses_128_fails() {
        ok(&nested(127, "[", "]"));
        fails(&nested(128, "[", "]"), ParseErrorKind::TooDeep);
        ok(&format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127)));
        fails(
            &format!("{}1{}", r#"{"a":"#.repeat(128), "}".repeat(128)),
            ParseErrorKind::TooDeep,
        );
        // Mixed arrays and objects count together.
        ok(&format!(
            "{}{}",
            r#"[{"a":"#.repeat(63),
            "[]".to_owned() + &"}]".repeat(63)
        ));
        fails(
            &format!("{}{}", r#"[{"a":"#.repeat(64), "null".to_owned() + &"}]".repeat(64)),
            ParseErrorKind::TooDeep,
        );
        // Far deeper input is rejected without recursing further (no stack overflow).
        fails(&"[".repeat(1_000_000), ParseErrorKind::TooDeep);
        // Depth resets between siblings.
        ok(&format!("[{},{}]", nested(126, "[", "]"), nested(126, "[", "]")));
    }

    #[test]
    fn error_display() {
        let e = parse("[1,]").expect_err("invalid");
        assert_eq!(e.to_string(), "invalid JSON: unexpected character at byte 3");
        assert_eq!(e.offset(), 3);
    }
}
