//! Shell globs with Python `fnmatch.fnmatchcase` semantics (§12.2 of the format).
//!
//! The whole string must match, case-sensitively, character (code point) by character. `*` matches any run of
//! characters, `/` and newlines included; `?` matches one character; `[abc]`, `[a-z]` and `[!abc]` are sets; a `]`
//! right after `[` or `[!` is a member; a `-` first or last in a set is a member; a reversed range (`[z-a]`) matches
//! nothing; a `[` without a closing `]` is a literal. There is no escape character.

/// A compiled glob. Matching does not allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    sets: Vec<Set>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// One literal character.
    Char(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters (consecutive stars are merged).
    Star,
    /// `[...]`: index into `Glob::sets`.
    Set(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Set {
    negated: bool,
    /// Inclusive ranges; a single member `c` is `(c, c)`. Reversed ranges are dropped at compile time.
    ranges: Vec<(char, char)>,
}

impl Set {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut sets = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => match parse_set(&chars, i) {
                    Some((set, next)) => {
                        tokens.push(Token::Set(sets.len()));
                        sets.push(set);
                        i = next;
                    }
                    None => tokens.push(Token::Char('[')),
                },
                c => tokens.push(Token::Char(c)),
            }
        }
        Glob { tokens, sets }
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        let (mut p, mut s) = (0usize, 0usize);
        // After a `*`: the token index just past it, and the text offset it currently stops at.
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    p += 1;
                    backtrack = Some((p, s));
                    continue;
                }
                Some(&token) => {
                    if let Some(c) = text[s..].chars().next()
                        && self.token_matches(token, c)
                    {
                        p += 1;
                        s += c.len_utf8();
                        continue;
                    }
                }
                None if s == text.len() => return true,
                None => {}
            }
            // Mismatch: let the last `*` take one more character, or fail.
            let Some((star_p, star_s)) = backtrack else {
                return false;
            };
            let Some(c) = text[star_s..].chars().next() else {
                return false;
            };
            backtrack = Some((star_p, star_s + c.len_utf8()));
            p = star_p;
            s = star_s + c.len_utf8();
        }
    }

    fn token_matches(&self, token: Token, c: char) -> bool {
        match token {
            Token::Char(t) => t == c,
            Token::Any => true,
            Token::Set(i) => self.sets.get(i).is_some_and(|set| set.contains(c)),
            Token::Star => false,
        }
    }
}

/// Parses a set whose `[` is just before `start`. Returns the set and the index after its `]`, or `None` when the
/// set is not closed (the `[` is then a literal).
fn parse_set(chars: &[char], start: usize) -> Option<(Set, usize)> {
    let mut j = start;
    let negated = chars.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    let body_start = j;
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    while chars.get(j).is_some_and(|&c| c != ']') {
        j += 1;
    }
    if j >= chars.len() {
        return None;
    }
    let body = &chars[body_start..j];
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let lo = body[k];
        if k + 2 < body.len() && body[k + 1] == '-' {
            let hi = body[k + 2];
            if lo <= hi {
                ranges.push((lo, hi));
            }
            k += 3;
        } else {
            ranges.push((lo, lo));
            k += 1;
        }
    }
    Some((Set { negated, ranges }, j + 1))
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[track_caller]
    fn check(pattern: &str, text: &str, expected: bool) {
        assert_eq!(
            Glob::new(pattern).is_match(text),
            expected,
            "pattern {pattern:?} on {text:?}"
        );
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        check("/api/auth/*", "/api/auth/login", true);
        check("/api/auth/*", "/api/auth/", true);
        check("/api/auth/*", "/api/auth/a/b/c", true);
        check("/api/auth/*", "/api/auth", false);
        check("/private/*", "/private/123", true);
        check("*", "", true);
        check("*", "anything\nat all", true);
        check("a*b*c", "aXbYbZc", true);
        check("a*b*c", "aXbYbZ", false);
        check("**a", "bba", true);
        check("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false);
    }

    #[test]
    fn whole_string_and_case_sensitive() {
        check("/api", "/api/x", false);
        check("/API", "/api", false);
        check("127.0.0.1:*", "127.0.0.1:5000", true);
        check("127.0.0.1:*", "localhost:5000", false);
        check("", "", true);
        check("", "a", false);
    }

    #[test]
    fn question_mark_is_one_code_point() {
        check("h?llo", "héllo", true);
        check("h?llo", "hllo", false);
        check("??", "é😀", true);
        check("?", "", false);
    }

    #[test]
    fn sets_ranges_and_negation() {
        check("[abc]x", "bx", true);
        check("[abc]x", "dx", false);
        check("[!abc]x", "dx", true);
        check("[!abc]x", "ax", false);
        check("v[0-9]", "v7", true);
        check("v[0-9]", "va", false);
        check("[a-c-e]", "-", true);
        check("[a-c-e]", "d", false);
        check("[a-]", "-", true);
        check("[-a]", "-", true);
        check("[!-a]", "-", false);
        check("[]]", "]", true);
        check("[!]]", "]", false);
        check("[!]]", "x", true);
        check("[z-a]", "z", false);
        check("[z-a]", "a", false);
        check("[!z-a]", "q", true);
        check("[az-ab]", "b", true);
        check("[az-ab]", "m", false);
        check("[[]", "[", true);
        check("[^a]", "^", true);
        check("[\\]", "\\", true);
        check("[*?]", "*", true);
        check("[*?]", "a", false);
    }

    #[test]
    fn unclosed_bracket_is_literal() {
        check("[abc", "[abc", true);
        check("[abc", "a", false);
        check("a[!", "a[!", true);
        check("x[", "x[", true);
        check("[a-", "[a-", true);
    }
}
