//! Python `repr` of an `f64` (§7.3 of the format).
//!
//! The digits are the shortest ones that round-trip (Rust's `{:e}` gives exactly those); the layout is Python's:
//! positional notation with at least one fractional digit when the decimal exponent is in `-4..16`, otherwise
//! `d[.ddd]e±XX` with a signed exponent of at least two digits.

use std::fmt::{self, Write as _};

/// Capacity of [`FloatText`]. The longest text is 24 bytes (`-1.7976931348623157e+308`).
const CAP: usize = 32;

/// The text of one float, held inline (no heap allocation).
#[derive(Clone, Copy)]
pub struct FloatText {
    buf: [u8; CAP],
    len: usize,
}

impl FloatText {
    const fn new() -> FloatText {
        FloatText { buf: [0; CAP], len: 0 }
    }

    /// Appends bytes. The callers in this module never exceed the capacity; anything past it would be dropped.
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }

    /// The text as bytes (always ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so this cannot fail; the fallback keeps the function total without `unwrap`.
        std::str::from_utf8(self.as_bytes()).unwrap_or("null")
    }
}

impl fmt::Write for FloatText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for FloatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FloatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Python `repr(v)` for a finite `v`, as §7.3 defines it. A non-finite `v` gives `null` (§7.4).
pub fn repr(v: f64) -> FloatText {
    let mut out = FloatText::new();
    if !v.is_finite() {
        out.push(b"null");
        return out;
    }
    if v.is_sign_negative() {
        out.push(b"-");
    }
    if v == 0.0 {
        // The common `match_importance` value; skips the formatting machinery.
        out.push(b"0.0");
        return out;
    }
    // Shortest round-trip digits and the decimal exponent, e.g. "1.5e-7", "0e0", "1.7976931348623157e308".
    let mut sci = FloatText::new();
    if write!(sci, "{:e}", v.abs()).is_err() {
        // Cannot happen: the `{:e}` text of a finite f64 is at most 24 bytes.
        out.push(b"null");
        return out;
    }
    let sci = sci.as_bytes();
    let e_pos = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let (mantissa, exp_text) = sci.split_at(e_pos);
    let exp = parse_exponent(exp_text.get(1..).unwrap_or(b""));

    // The significant digits without the point.
    let mut digits = [0u8; CAP];
    let mut n = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        digits[n] = b;
        n += 1;
    }
    let digits = &digits[..n];

    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp.unsigned_abs() as usize + 1;
            if n <= int_len {
                out.push(digits);
                for _ in n..int_len {
                    out.push(b"0");
                }
                out.push(b".0");
            } else {
                out.push(&digits[..int_len]);
                out.push(b".");
                out.push(&digits[int_len..]);
            }
        } else {
            out.push(b"0.");
            for _ in 1..exp.unsigned_abs() {
                out.push(b"0");
            }
            out.push(digits);
        }
    } else {
        out.push(&digits[..1]);
        if n > 1 {
            out.push(b".");
            out.push(&digits[1..]);
        }
        out.push(if exp < 0 { b"e-" } else { b"e+" });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b"0");
        }
        // At most three digits (|exp| <= 324); `write!` into the inline buffer cannot overflow.
        let _ = write!(out, "{e}");
    }
    out
}

/// Parses the exponent of Rust's `{:e}` output (`-7`, `308`).
fn parse_exponent(text: &[u8]) -> i32 {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mag = digits.iter().fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    if neg { -mag } else { mag }
}

#[cfg(test)]
mod tests {
    use super::repr;

    #[track_caller]
    fn check(v: f64, expected: &str) {
        assert_eq!(repr(v).as_str(), expected, "repr({v:?})");
    }

    #[test]
    fn table_of_7_3() {
        check(1.0, "1.0");
        check(0.5, "0.5");
        check(100.0, "100.0");
        check(0.1 + 0.2, "0.30000000000000004");
        check(123456789.123, "123456789.123");
        check(1e-4, "0.0001");
        check(1e-5, "1e-05");
        check(1e-7, "1e-07");
        check(1.5e-7, "1.5e-07");
        check(1e15, "1000000000000000.0");
        check(1e16, "1e+16");
        check(1.7976931348623157e308, "1.7976931348623157e+308");
        check(5e-324, "5e-324");
        check(2.5e-310, "2.5e-310");
        check(-0.0, "-0.0");
    }

    #[test]
    fn more_python_reprs() {
        check(0.0, "0.0");
        check(1e100, "1e+100");
        check(-1.5, "-1.5");
        check(1234.5, "1234.5");
        check(0.00012345, "0.00012345");
        check(123456789012345680.0, "1.2345678901234568e+17");
        check(9999999999999998.0, "9999999999999998.0");
        check(-2.5e-5, "-2.5e-05");
        check(1e22, "1e+22");
        check(f64::MIN_POSITIVE, "2.2250738585072014e-308");
    }

    #[test]
    fn non_finite_is_null() {
        check(f64::NAN, "null");
        check(f64::INFINITY, "null");
        check(f64::NEG_INFINITY, "null");
    }
}
