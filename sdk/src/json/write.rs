//! JSON writers: compact (trace-file lines), canonical (hashing, §7.2), ASCII-escaped (jsonPath re-serialisation,
//! §12.4) and the `json.dumps` length count of the size gate (§13.1).
//!
//! All writers recurse over the value. That is safe for every value the SDK walks: either it built the value itself
//! (depth ≤ 3) or the value was parsed under the 127-level limit of [`super::parse()`] (§13.5).

use sha2::Digest as _;

use super::float;
use super::value::{Object, Value};

/// Where canonical text goes: a byte buffer, or a hasher directly.
pub trait CanonicalSink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);

    /// Appends one byte.
    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl CanonicalSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }
}

impl CanonicalSink for sha2::Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Objects with at most this many entries are key-sorted in a stack array; larger ones use the scratch vector.
const SMALL_OBJECT: usize = 32;

/// Escape codes for the bytes that §7.2 escapes: 0 = written raw, `u` = `\u00xx`, otherwise the letter after `\`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The bytes of the little-endian word `w` that need a §7.2 escape (`< 0x20`, `"` or `\`), as the high bit of each
/// byte (the classic SWAR zero-byte tests). The mask is non-zero exactly when a byte needs escaping, and its lowest
/// set bit marks the first such byte (a borrow can flag bytes only above a true one).
#[inline]
fn escape_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b & HI;
    below_space | quote | backslash
}

/// Index of the first byte at or after `from` that needs a §7.2 escape.
///
/// Eight bytes at a time; the last word of a string is read overlapping the word before (those bytes were found
/// clean, so the first flagged byte is still the first to escape), so no byte-by-byte tail loop runs, whose
/// mispredicted branches were the biggest cost of writing the SDK's many short strings.
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let n = rest.len();
    if n < 8 {
        // Branch-free test first: short keys and values rarely need an escape.
        if rest.iter().fold(0, |any, &b| any | ESCAPE[usize::from(b)]) == 0 {
            return None;
        }
        return rest.iter().position(|&b| ESCAPE[usize::from(b)] != 0).map(|i| from + i);
    }
    let mut at = 0;
    loop {
        let start = at.min(n - 8);
        let word = rest.get(start..).and_then(|w| w.first_chunk::<8>())?;
        let mask = escape_mask(u64::from_le_bytes(*word));
        if mask != 0 {
            return Some(from + start + (mask.trailing_zeros() / 8) as usize);
        }
        if start + 8 >= n {
            return None;
        }
        at = start + 8;
    }
}

/// Writes `s` as a JSON string with the §7.2 escapes; non-ASCII, `/` and U+007F are written raw.
pub fn write_string<W: CanonicalSink + ?Sized>(s: &str, out: &mut W) {
    out.put_byte(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.put(&bytes[start..i]);
        let b = bytes[i];
        let esc = ESCAPE[usize::from(b)];
        if esc == b'u' {
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.put(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put_byte(b'"');
}

/// Writes `s` as a JSON string escaped to ASCII as Python's `ensure_ascii` does (§12.4 step 3): the §7.2 escapes,
/// plus every non-ASCII character and U+007F as `\uxxxx` (lower-case hex), characters above U+FFFF as a surrogate
/// pair.
pub fn write_string_ascii(s: &str, out: &mut Vec<u8>) {
    fn unit(u: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[((u >> shift) & 0xf) as usize]);
        }
    }
    out.push(b'"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let u = u32::from(c);
        if (0x20..0x7f).contains(&u) && c != '"' && c != '\\' {
            continue;
        }
        out.extend_from_slice(&s.as_bytes()[start..i]);
        start = i + c.len_utf8();
        if u < 0x80 && ESCAPE[u as usize] != 0 && ESCAPE[u as usize] != b'u' {
            out.extend_from_slice(&[b'\\', ESCAPE[u as usize]]);
        } else if u > 0xffff {
            let v = u - 0x10000;
            unit(0xd800 + (v >> 10), out);
            unit(0xdc00 + (v & 0x3ff), out);
        } else {
            unit(u, out);
        }
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

/// Decimal text of an `i64` in a stack buffer; returns the used tail.
fn i64_text(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Writes an integer in decimal.
pub(crate) fn write_int<W: CanonicalSink + ?Sized>(v: i64, out: &mut W) {
    out.put(i64_text(v, &mut [0; 20]));
}

/// Writes a scalar (not an array or object) per §7.2/§7.3.
fn write_scalar<W: CanonicalSink + ?Sized>(v: &Value, out: &mut W) {
    match v {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Int(i) => out.put(i64_text(*i, &mut [0; 20])),
        Value::BigInt(s) => out.put(s.as_bytes()),
        Value::Float(f) => out.put(float::repr(*f).as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(_) | Value::Object(_) => {}
    }
}

/// Writes `v` compactly with keys in insertion order (trace-file lines, §8.2): no whitespace, §7.2 escapes,
/// non-ASCII raw, numbers per §7.2/§7.3.
pub fn write_compact(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_compact(item, out);
            }
            out.push(b'}');
        }
        _ => write_scalar(v, out),
    }
}

/// Writes `v` compactly in insertion order with every non-ASCII character and U+007F escaped (§12.4 step 3).
pub fn write_ascii(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ascii(item, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string_ascii(k, out);
                out.push(b':');
                write_ascii(item, out);
            }
            out.push(b'}');
        }
        Value::String(s) => write_string_ascii(s, out),
        _ => write_scalar(v, out),
    }
}

/// Visits the indices of `items` in the byte order of `key(item)` (code-point order for `str`).
///
/// Up to [`SMALL_OBJECT`] items are sorted in a stack array; larger sets use a segment at the end of `scratch`,
/// which `visit` receives for its own nested walks and which is restored to its length on return.
pub(crate) fn visit_sorted<T>(
    items: &[T],
    key: impl Fn(&T) -> &str,
    scratch: &mut Vec<usize>,
    mut visit: impl FnMut(usize, usize, &mut Vec<usize>),
) {
    let n = items.len();
    if n <= SMALL_OBJECT {
        // Sorted by the keys' first eight bytes, which settle almost every comparison without a call to `memcmp`.
        let mut idx = [(0u64, 0u8); SMALL_OBJECT];
        for (i, slot) in idx.iter_mut().enumerate().take(n) {
            *slot = (key_prefix(key(&items[i])), i as u8);
        }
        let idx = &mut idx[..n];
        idx.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| key(&items[usize::from(a.1)]).cmp(key(&items[usize::from(b.1)])))
        });
        for (pos, &(_, i)) in idx.iter().enumerate() {
            visit(pos, usize::from(i), scratch);
        }
    } else {
        let start = scratch.len();
        scratch.extend(0..n);
        scratch[start..].sort_unstable_by(|&a, &b| key(&items[a]).cmp(key(&items[b])));
        for pos in 0..n {
            let i = scratch[start + pos];
            visit(pos, i, scratch);
        }
        scratch.truncate(start);
    }
}

/// The first eight bytes of `key`, zero-padded, as a big-endian number: when two keys' prefixes differ, they order
/// as the keys do (byte order, which is code point order); when equal, the keys must be compared in full.
fn key_prefix(key: &str) -> u64 {
    let bytes = key.as_bytes();
    match bytes.first_chunk::<8>() {
        Some(first) => u64::from_be_bytes(*first),
        None => {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(bytes) {
                *w = *b;
            }
            u64::from_be_bytes(word)
        }
    }
}

/// Writes canonical text (§7.2), keeping a scratch vector for key sorting across calls.
///
/// Keep one per thread (the export thread) to avoid allocating for objects larger than the stack-sorted size.
#[derive(Debug, Default)]
pub struct CanonicalWriter {
    order: Vec<usize>,
}

impl CanonicalWriter {
    /// A writer with empty scratch.
    pub fn new() -> CanonicalWriter {
        CanonicalWriter::default()
    }

    /// Writes the canonical text of `v` into `out`.
    pub fn write<W: CanonicalSink + ?Sized>(&mut self, v: &Value, out: &mut W) {
        canonical(v, &[], out, &mut self.order);
    }

    /// Writes the canonical text of `v` with some of its top-level entries replaced: `overrides` holds
    /// `(entry index, value)` pairs, an entry index being a position in [`Object::entries`] of `v`. Ignored when `v`
    /// is not an object. This is how a decoded value (§6.1) is hashed without cloning the stored value.
    pub fn write_with_overrides<W: CanonicalSink + ?Sized>(
        &mut self,
        v: &Value,
        overrides: &[(usize, Value)],
        out: &mut W,
    ) {
        canonical(v, overrides, out, &mut self.order);
    }
}

/// Writes the canonical text of `v` (§7.2): no whitespace, keys sorted by code point at every depth.
pub fn write_canonical<W: CanonicalSink + ?Sized>(v: &Value, out: &mut W) {
    CanonicalWriter::new().write(v, out);
}

fn canonical<W: CanonicalSink + ?Sized>(v: &Value, overrides: &[(usize, Value)], out: &mut W, order: &mut Vec<usize>) {
    match v {
        Value::Array(items) => {
            out.put_byte(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                canonical(item, &[], out, order);
            }
            out.put_byte(b']');
        }
        Value::Object(o) => canonical_object(o, overrides, out, order),
        _ => write_scalar(v, out),
    }
}

fn canonical_object<W: CanonicalSink + ?Sized>(
    o: &Object,
    overrides: &[(usize, Value)],
    out: &mut W,
    order: &mut Vec<usize>,
) {
    let entries = o.entries();
    out.put_byte(b'{');
    visit_sorted(
        entries,
        |(k, _)| k.as_ref(),
        order,
        |pos, i, order| {
            if pos > 0 {
                out.put_byte(b',');
            }
            let (key, stored) = &entries[i];
            let value = overrides.iter().find(|(j, _)| *j == i).map_or(stored, |(_, v)| v);
            write_string(key, out);
            out.put_byte(b':');
            canonical(value, &[], out, order);
        },
    );
    out.put_byte(b'}');
}

/// Length in bytes of a JSON string as Python's `json.dumps` writes it with `ensure_ascii` (§13.1).
fn python_str_len(s: &str) -> usize {
    let mut n = 2;
    for &b in s.as_bytes() {
        n += match b {
            b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
            0x00..=0x1f | 0x7f => 6,
            0x20..=0x7e => 1,
            0x80..=0xbf => 0,  // continuation byte: counted with its lead byte
            0xc0..=0xef => 6,  // lead byte of a 2- or 3-byte sequence: one `\uxxxx`
            0xf0..=0xff => 12, // lead byte of a 4-byte sequence: a surrogate pair
        };
    }
    n
}

fn dumps_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Int(i) => i64_text(*i, &mut [0; 20]).len(),
        Value::BigInt(s) => s.len(),
        Value::Float(f) => float::repr(*f).as_bytes().len(),
        Value::String(s) => python_str_len(s),
        // `[` `]` plus `", "` between elements.
        Value::Array(items) => 2 + items.len().saturating_sub(1) * 2 + items.iter().map(dumps_len).sum::<usize>(),
        // `{` `}` plus `", "` between members, each member `key": "value`.
        Value::Object(o) => {
            2 + o.len().saturating_sub(1) * 2
                + o.iter()
                    .map(|(k, v)| python_str_len(k) + 2 + dumps_len(v))
                    .sum::<usize>()
        }
    }
}

/// An upper bound of [`python_dumps_len`] that reads no string's bytes: a cheap first check for the size gate.
pub fn python_dumps_len_upper_bound(v: &Value) -> usize {
    fn bound(v: &Value) -> usize {
        match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Int(_) => 20,
            Value::BigInt(s) => s.len(),
            Value::Float(_) => 24,
            // No character costs more than 6 bytes per UTF-8 byte it takes (§13.1's costs: 6 for one control byte,
            // 6 for a 2- or 3-byte sequence, 12 for a 4-byte one).
            Value::String(s) => 2 + 6 * s.len(),
            Value::Array(items) => 2 + 2 * items.len() + items.iter().map(bound).sum::<usize>(),
            Value::Object(o) => 2 + o.iter().map(|(k, v)| 6 + 6 * k.len() + bound(v)).sum::<usize>(),
        }
    }
    match v {
        Value::Object(o) if o.is_empty() => 0,
        _ => bound(v),
    }
}

/// `L(v)` of the size gate (§13.1): the byte length of Python `json.dumps(v)` with default settings (separators
/// `", "` / `": "`, `ensure_ascii`, numbers as their §7 text), computed by a counting walk that builds no text.
///
/// As §13.1 specifies, a top-level **empty object** counts 0 (not 2); empty objects nested inside count 2.
pub fn python_dumps_len(v: &Value) -> usize {
    match v {
        Value::Object(o) if o.is_empty() => 0,
        _ => dumps_len(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn next_escape_finds_the_first_byte_to_escape_at_every_length_and_position() {
        let naive = |bytes: &[u8], from: usize| {
            bytes
                .get(from..)?
                .iter()
                .position(|&b| ESCAPE[usize::from(b)] != 0)
                .map(|i| from + i)
        };
        // Fillers include bytes just above the escaped ranges and non-ASCII bytes, which must not be flagged.
        for filler in [b'a', b' ', 0x7f, 0x80, 0xff, b'#', b']'] {
            for len in 0..40 {
                let clean = vec![filler; len];
                for from in 0..=len + 1 {
                    assert_eq!(next_escape(&clean, from), naive(&clean, from), "{filler} {len} {from}");
                }
                for at in 0..len {
                    for esc in [0x00, 0x1f, b'"', b'\\', b'\n'] {
                        let mut s = clean.clone();
                        s[at] = esc;
                        if at + 3 < len {
                            s[at + 3] = b'"';
                        }
                        for from in [0, at.saturating_sub(1), at, at + 1] {
                            assert_eq!(
                                next_escape(&s, from),
                                naive(&s, from),
                                "{filler} {len} {at} {esc} {from}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Keys that tie on their first eight bytes, are prefixes of each other, hold NUL bytes or non-ASCII text.
    const TRICKY_KEYS: &[&str] = &[
        "abcdefgh",
        "",
        "abcdefgh\0",
        "a",
        "abcdefghi",
        "a\0",
        "\0",
        "é",
        "a\0b",
        "abcdefgg~",
        "z",
        "Zz",
        "abcdefgh\0\0",
        "😀",
        "\u{7f}",
        "abc",
    ];

    #[test]
    fn visit_sorted_orders_keys_as_a_full_byte_comparison_does() {
        // Both paths: the stack array (≤ 32 items) and the scratch vector (more).
        for copies in [1, 3] {
            let items: Vec<String> = (0..copies)
                .flat_map(|c| TRICKY_KEYS.iter().map(move |k| format!("{k}{}", "~".repeat(c))))
                .collect();
            let mut want: Vec<&str> = items.iter().map(String::as_str).collect();
            want.sort_unstable();
            let mut got = Vec::new();
            visit_sorted(
                &items,
                |s| s.as_str(),
                &mut Vec::new(),
                |pos, i, _| {
                    assert_eq!(pos, got.len());
                    got.push(items[i].as_str());
                },
            );
            assert_eq!(got, want);
        }
    }

    #[test]
    fn the_upper_bound_is_never_below_the_exact_length() {
        for doc in [
            r#"{}"#,
            r#"{"a":[1,2.5,null,true,false,"x"],"b":{}}"#,
            r#"{"é😀\u0001":"\u007f\n\"\\ü漢😀","n":-12345678901234567890123}"#,
            r#"[{"k":"\u0000\u001f"},[],[[]]]"#,
        ] {
            let v = parse(doc).unwrap();
            assert!(python_dumps_len_upper_bound(&v) >= python_dumps_len(&v), "{doc}");
        }
    }

    #[track_caller]
    fn value(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("writers emit UTF-8")
    }

    #[track_caller]
    fn check_canonical(input: &str, expected: &str) {
        let v = value(input);
        assert_eq!(text(|o| write_canonical(&v, o)), expected, "canonical of {input}");
    }

    #[track_caller]
    fn check_compact(input: &str, expected: &str) {
        let v = value(input);
        assert_eq!(text(|o| write_compact(&v, o)), expected, "compact of {input}");
    }

    #[track_caller]
    fn check_ascii(input: &str, expected: &str) {
        let v = value(input);
        assert_eq!(text(|o| write_ascii(&v, o)), expected, "ascii of {input}");
    }

    #[track_caller]
    fn check_len(input: &str, expected: usize) {
        assert_eq!(python_dumps_len(&value(input)), expected, "python_dumps_len of {input}");
    }

    #[test]
    fn example_of_7_2() {
        check_canonical(
            "{\"b\":2,\"a\":{\"y\":[{\"d\":1,\"c\":2}],\"x\":\"é\\n\"}}",
            "{\"a\":{\"x\":\"é\\n\",\"y\":[{\"c\":2,\"d\":1}]},\"b\":2}",
        );
    }

    #[test]
    fn string_escapes() {
        let s = "q\"b\\s/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}é😀";
        let expected = "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é😀\"";
        assert_eq!(text(|o| write_string(s, o)), expected);
        let expected_ascii = "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\\u007f\\u00e9\\ud83d\\ude00\"";
        let mut out = Vec::new();
        write_string_ascii(s, &mut out);
        assert_eq!(String::from_utf8(out).expect("ascii"), expected_ascii);
    }

    /// Reference escaper for §7.2, char by char.
    fn naive_escape(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn string_escapes_at_every_position() {
        // Every ASCII byte and some non-ASCII characters at every position of strings longer than the 8-byte scan.
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', '\u{80}', '\u{ffff}', '😀'])
            .collect();
        for len in [1, 7, 8, 9, 16, 17, 23] {
            for pos in 0..len {
                for &c in &specials {
                    let s: String = (0..len).map(|i| if i == pos { c } else { 'a' }).collect();
                    assert_eq!(text(|o| write_string(&s, o)), naive_escape(&s), "{s:?}");
                }
            }
        }
        let mixed = "\u{1}x\"yyyyyyyyyy\\zzzzzzzz\u{1f}\u{7f}é😀\n";
        assert_eq!(text(|o| write_string(mixed, o)), naive_escape(mixed));
    }

    #[test]
    fn numbers_and_literals() {
        check_canonical(
            "[0,-0,-5,9223372036854775807,-9223372036854775808,12345678901234567890123,-12345678901234567890123]",
            "[0,0,-5,9223372036854775807,-9223372036854775808,12345678901234567890123,-12345678901234567890123]",
        );
        check_canonical(
            "[1e-7,1e-5,1e16,1.0,-0.0,1E2,1e400]",
            "[1e-07,1e-05,1e+16,1.0,-0.0,100.0,null]",
        );
        check_canonical("[true,false,null]", "[true,false,null]");
        let nan = Value::Array(vec![Value::Float(f64::NAN), Value::Float(f64::INFINITY)]);
        assert_eq!(text(|o| write_canonical(&nan, o)), "[null,null]");
    }

    #[test]
    fn canonical_sorts_every_depth_by_code_point() {
        check_canonical("[{\"b\":1,\"a\":2}]", "[{\"a\":2,\"b\":1}]");
        // Code-point order: "B" < "a" < "é" < "😀" (U+1F600 after U+FFFF, also in byte order).
        check_canonical(
            "{\"😀\":1,\"\u{ffff}\":2,\"é\":3,\"a\":4,\"B\":5,\"\":6}",
            "{\"\":6,\"B\":5,\"a\":4,\"é\":3,\"\u{ffff}\":2,\"😀\":1}",
        );
        // A large object (sorted through the scratch vector) holding another large object.
        let keys: Vec<String> = (0..50).rev().map(|i| format!("k{i:02}")).collect();
        let inner: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
        let outer: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}\":{{{}}}", inner.join(",")))
            .collect();
        let v = value(&format!("{{{}}}", outer.join(",")));
        let mut sorted_inner: Vec<String> = inner.clone();
        sorted_inner.sort();
        let mut sorted_outer: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}\":{{{}}}", sorted_inner.join(",")))
            .collect();
        sorted_outer.sort();
        assert_eq!(
            text(|o| write_canonical(&v, o)),
            format!("{{{}}}", sorted_outer.join(","))
        );
    }

    #[test]
    fn overrides_replace_top_level_entries() {
        let v = value("{\"b\":\"x\",\"a\":1}");
        let mut w = CanonicalWriter::new();
        let s = text(|o| w.write_with_overrides(&v, &[(0, value("{\"z\":1,\"y\":2}"))], o));
        assert_eq!(s, "{\"a\":1,\"b\":{\"y\":2,\"z\":1}}");
    }

    #[test]
    fn sha256_sink_equals_buffer_hash() {
        let v = value("{\"b\":[1,2.5,\"é\"],\"a\":{\"d\":null,\"c\":true}}");
        let mut hasher = sha2::Sha256::new();
        write_canonical(&v, &mut hasher);
        let streamed = hasher.finalize();
        let buffered = sha2::Sha256::digest(text(|o| write_canonical(&v, o)).as_bytes());
        assert_eq!(streamed, buffered);
    }

    #[test]
    fn compact_keeps_insertion_order() {
        check_compact(
            "{ \"b\" : 1, \"a\" : [ 1.0, \"é\\u007f\\n\" , {\"z\": null, \"y\": 12345678901234567890123} ] }",
            "{\"b\":1,\"a\":[1.0,\"é\u{7f}\\n\",{\"z\":null,\"y\":12345678901234567890123}]}",
        );
    }

    #[test]
    fn ascii_of_12_4() {
        check_ascii(
            "{\"b\":\"é😀\",\"a\":[1e-7,true]}",
            "{\"b\":\"\\u00e9\\ud83d\\ude00\",\"a\":[1e-07,true]}",
        );
        check_ascii("{\"é\":\"\\u007f\"}", "{\"\\u00e9\":\"\\u007f\"}");
        check_ascii(
            "{\"username\":\"alice\",\"password\":\"#######\"}",
            "{\"username\":\"alice\",\"password\":\"#######\"}",
        );
    }

    #[test]
    fn python_dumps_len_examples() {
        // json.dumps({"a": [1, 2], "b": {}}) == '{"a": [1, 2], "b": {}}'
        check_len("{\"a\":[1,2],\"b\":{}}", "{\"a\": [1, 2], \"b\": {}}".len());
        // L1: a top-level empty object counts 0; nested ones 2.
        check_len("{}", 0);
        check_len("{\"a\":{}}", "{\"a\": {}}".len());
        check_len("[]", 2);
        // '"\\u00e9"' is 8, '"\\ud83d\\ude00"' 14, '"\\u007f"' 8, '"\\u0001"' 8.
        check_len("\"é\"", 8);
        check_len("\"😀\"", 14);
        check_len("\"\\u007f\"", 8);
        check_len("\"\\u0001\"", 8);
        check_len("\"\\\"\\\\\\b\\f\\n\\r\\t/\"", 2 + 7 * 2 + 1);
        check_len("\"中\"", 8);
        // Numbers cost their §7 text.
        check_len(
            "[1e-7, 1.0, -0, 12345678901234567890123, true, false, null]",
            "[1e-07, 1.0, 0, 12345678901234567890123, true, false, null]".len(),
        );
        check_len(
            "{\"k\": \"v\", \"é\": [\"x\", {\"n\": 1.5}]}",
            "{\"k\": \"v\", \"\\u00e9\": [\"x\", {\"n\": 1.5}]}".len(),
        );
    }

    #[test]
    fn python_dumps_len_matches_ascii_text_with_spaces() {
        // Independent cross-check: python_dumps_len equals the length of write_ascii's text plus the separators'
        // spaces (one per `,` and `:` outside strings).
        let inputs = [
            "{\"a\":[1,2,{\"x\":\"é😀\\u0000\\n\"}],\"b\":{},\"c\":[],\"d\":-12.5e-9,\"e\":null}",
            "[\"\\u007f\\u0080\\u07ff\\u0800\\uffff\",\"\\ud800\\udc00\"]",
        ];
        for input in inputs {
            let v = value(input);
            let compact = text(|o| write_ascii(&v, o));
            let mut seps = 0;
            let mut in_str = false;
            let mut esc = false;
            for c in compact.chars() {
                match (in_str, esc, c) {
                    (true, true, _) => esc = false,
                    (true, false, '\\') => esc = true,
                    (_, false, '"') => in_str = !in_str,
                    (false, _, ',' | ':') => seps += 1,
                    _ => {}
                }
            }
            assert_eq!(python_dumps_len(&v), compact.len() + seps, "{input}");
        }
    }
}
