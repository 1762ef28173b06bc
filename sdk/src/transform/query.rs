//! Query strings: form decoding as Python's `parse_qsl(keep_blank_values=True)` does it, and re-encoding as Python's
//! `urlencode` does it (§12.4 of the format).

/// Splits `query` (without the `?`) into decoded `(key, value)` pairs.
///
/// Pairs are separated by `&`; empty segments are skipped (as `parse_qsl` does); a pair is split at its first `=`; a
/// pair without `=` has the value `""`. Both sides are form-decoded with [`form_decode`].
pub fn parse_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

/// Form-decodes one component: `+` becomes a space, `%XX` (two hex digits, either case) becomes that byte, anything
/// else is kept; the bytes are then read as UTF-8 with each invalid sequence replaced by U+FFFD (Python's
/// `errors="replace"`). A `%` not followed by two hex digits is kept as it is.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'+' || b == b'%') {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` encoded as Python's `quote_plus`: `A–Z a–z 0–9 _ . - ~` kept, space as `+`, every other UTF-8 byte
/// as `%XX` in upper-case hex.
pub fn quote_plus_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

/// Encodes pairs as Python's `urlencode`: `key=value` joined by `&`, each side through [`quote_plus_into`].
pub fn urlencode(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus_into(key, &mut out);
        out.push('=');
        quote_plus_into(value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_parse(query: &str, expected: &[(&str, &str)]) {
        let pairs = parse_pairs(query);
        let got: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected, "query {query:?}");
    }

    #[test]
    fn parse_keeps_blanks_and_decodes() {
        check_parse(
            "token=abc&b=1&e=&sp=a+b%20c",
            &[("token", "abc"), ("b", "1"), ("e", ""), ("sp", "a b c")],
        );
        check_parse("flag&x=1=2", &[("flag", ""), ("x", "1=2")]);
        check_parse("a=1&&b=2&", &[("a", "1"), ("b", "2")]);
        check_parse("", &[]);
        check_parse("k%3D=%E2%82%AC", &[("k=", "€")]);
        check_parse("bad=%zz%4", &[("bad", "%zz%4")]);
        check_parse("x=%ff%41", &[("x", "\u{fffd}A")]);
        check_parse("x=%E2%82", &[("x", "\u{fffd}")]);
        check_parse("é=ü", &[("é", "ü")]);
    }

    #[test]
    fn urlencode_follows_python() {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            urlencode(&pairs(&[("token", "***"), ("b", "1"), ("e", ""), ("sp", "a b c")])),
            "token=%2A%2A%2A&b=1&e=&sp=a+b+c"
        );
        assert_eq!(
            urlencode(&pairs(&[("a_.-~Z9", "/?&=+é\u{fffd}")])),
            "a_.-~Z9=%2F%3F%26%3D%2B%C3%A9%EF%BF%BD"
        );
        assert_eq!(urlencode(&[]), "");
    }
}
