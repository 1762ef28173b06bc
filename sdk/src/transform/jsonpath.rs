//! The JSONPath subset of the format (§12.4): a tokeniser and a mutable evaluation on [`Value`].
//!
//! - The expression starts with `$`. `.name` reads a key (the name runs up to the next `.` or `[`); `[n]` (ASCII
//!   digits only) is an array index; `['name']`, `["name"]` and `[name]` read a key (the content is trimmed of
//!   whitespace, then of surrounding `'` and `"` characters); `[*]` and `.*` are wildcards.
//! - `..` behaves like `.`: there is no recursive descent.
//! - An index applies only to arrays, a name only to objects, so `[0]` does not read key `"0"`. `[-1]` is key `"-1"`.
//! - `$` on its own matches nothing.

use crate::json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Reads a key of an object.
    Key(String),
    /// Reads an element of an array; `None` for an index too large for `usize` (it never matches).
    Index(Option<usize>),
    /// Every value of an object or element of an array.
    Wildcard,
}

/// Why an expression is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonPathError {
    /// The expression does not start with `$`.
    MissingRoot,
    /// A `[` has no `]` after it.
    UnclosedBracket,
}

impl JsonPath {
    /// Tokenises `expr`.
    pub fn parse(expr: &str) -> Result<JsonPath, JsonPathError> {
        let rest = expr.strip_prefix('$').ok_or(JsonPathError::MissingRoot)?;
        let mut tokens = Vec::new();
        let mut name_start = 0;
        let mut i = 0;
        let bytes = rest.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    push_name(&mut tokens, &rest[name_start..i]);
                    i += 1;
                    name_start = i;
                }
                b'[' => {
                    push_name(&mut tokens, &rest[name_start..i]);
                    let close = rest[i..].find(']').ok_or(JsonPathError::UnclosedBracket)? + i;
                    tokens.push(bracket_token(&rest[i + 1..close]));
                    i = close + 1;
                    if bytes.get(i) == Some(&b'.') {
                        i += 1;
                    }
                    name_start = i;
                }
                _ => i += 1,
            }
        }
        push_name(&mut tokens, &rest[name_start..]);
        Ok(JsonPath { tokens })
    }

    /// Calls `f` on every value the expression selects inside `root`, and returns how many there were.
    ///
    /// `root` itself is never selected. Matches never overlap (they all sit at the same depth), so `f` may replace
    /// the value it is given.
    pub fn for_each_match_mut(&self, root: &mut Value, f: &mut impl FnMut(&mut Value)) -> usize {
        if self.tokens.is_empty() {
            return 0;
        }
        visit(root, &self.tokens, f)
    }
}

fn push_name(tokens: &mut Vec<Token>, name: &str) {
    match name {
        "" => {}
        "*" => tokens.push(Token::Wildcard),
        name => tokens.push(Token::Key(name.to_owned())),
    }
}

fn bracket_token(content: &str) -> Token {
    let content = content.trim().trim_matches(['\'', '"']);
    if content == "*" {
        Token::Wildcard
    } else if !content.is_empty() && content.bytes().all(|b| b.is_ascii_digit()) {
        Token::Index(content.parse().ok())
    } else {
        Token::Key(content.to_owned())
    }
}

/// Recursion depth is bounded by the depth of `value`, which was parsed under the 127-level limit.
fn visit(value: &mut Value, tokens: &[Token], f: &mut impl FnMut(&mut Value)) -> usize {
    let Some((token, rest)) = tokens.split_first() else {
        return 0;
    };
    let mut step = |child: &mut Value| {
        if rest.is_empty() {
            f(child);
            1
        } else {
            visit(child, rest, f)
        }
    };
    match (token, value) {
        (Token::Wildcard, Value::Object(o)) => o.iter_mut().map(|(_, child)| step(child)).sum(),
        (Token::Wildcard, Value::Array(items)) => items.iter_mut().map(step).sum(),
        (Token::Index(Some(i)), Value::Array(items)) => items.get_mut(*i).map_or(0, step),
        (Token::Key(k), Value::Object(o)) => o.get_mut(k).map_or(0, step),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[track_caller]
    fn check(expr: &str, body: &str, expected: &str) {
        let path = JsonPath::parse(expr).expect("valid expression");
        let mut v = json::parse(body).expect("valid JSON");
        let mut n = 0;
        path.for_each_match_mut(&mut v, &mut |m| {
            n += 1;
            *m = Value::String(format!("<{n}>"));
        });
        let mut out = Vec::new();
        json::write_compact(&v, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), expected, "{expr} on {body}");
    }

    #[track_caller]
    fn check_tokens(expr: &str, expected: &[Token]) {
        assert_eq!(
            JsonPath::parse(expr).expect("valid expression").tokens,
            expected,
            "{expr}"
        );
    }

    fn key(k: &str) -> Token {
        Token::Key(k.to_owned())
    }

    #[test]
    fn tokeniser() {
        check_tokens("$", &[]);
        check_tokens("$.a.b", &[key("a"), key("b")]);
        check_tokens("$..password", &[key("password")]);
        check_tokens("$.items[0].name", &[key("items"), Token::Index(Some(0)), key("name")]);
        check_tokens("$[ 'na me' ]", &[key("na me")]);
        check_tokens("$[\"x\"][y]", &[key("x"), key("y")]);
        check_tokens("$.*[*]['*']", &[Token::Wildcard, Token::Wildcard, Token::Wildcard]);
        check_tokens("$[-1]", &[key("-1")]);
        check_tokens("$[99999999999999999999999]", &[Token::Index(None)]);
        check_tokens("$['a.b[c']", &[key("a.b[c")]);
        check_tokens("$.a b]", &[key("a b]")]);
        check_tokens("$abc", &[key("abc")]);
        check_tokens("$['']", &[key("")]);
    }

    #[test]
    fn tokeniser_errors() {
        assert_eq!(JsonPath::parse("password"), Err(JsonPathError::MissingRoot));
        assert_eq!(JsonPath::parse(".a"), Err(JsonPathError::MissingRoot));
        assert_eq!(JsonPath::parse("$.a[0"), Err(JsonPathError::UnclosedBracket));
        assert_eq!(JsonPath::parse("$['x'].b["), Err(JsonPathError::UnclosedBracket));
    }

    #[test]
    fn evaluation() {
        check(
            "$.password",
            r#"{"user":"a","password":"x"}"#,
            r#"{"user":"a","password":"<1>"}"#,
        );
        check(
            "$..password",
            r#"{"a":{"password":"x"},"password":"y"}"#,
            r#"{"a":{"password":"x"},"password":"<1>"}"#,
        );
        check(
            "$.a.*",
            r#"{"a":{"x":1,"y":[2]},"b":3}"#,
            r#"{"a":{"x":"<1>","y":"<2>"},"b":3}"#,
        );
        check(
            "$.a[*].id",
            r#"{"a":[{"id":1},{"no":2},{"id":3}]}"#,
            r#"{"a":[{"id":"<1>"},{"no":2},{"id":"<2>"}]}"#,
        );
        check("$['na me']", r#"{"na me":true}"#, r#"{"na me":"<1>"}"#);
        check("$[0]", r#"{"0":1}"#, r#"{"0":1}"#);
        check("$[1]", r#"[1,2,3]"#, r#"[1,"<1>",3]"#);
        check("$[3]", r#"[1,2,3]"#, r#"[1,2,3]"#);
        check("$.0", r#"[1]"#, r#"[1]"#);
        check("$[-1]", r#"{"-1":1}"#, r#"{"-1":"<1>"}"#);
        check("$[-1]", r#"[1,2]"#, r#"[1,2]"#);
        check("$", r#"{"a":1}"#, r#"{"a":1}"#);
        check("$.*", r#""text""#, r#""text""#);
        check("$.a.b", r#"{"a":"str"}"#, r#"{"a":"str"}"#);
    }
}
