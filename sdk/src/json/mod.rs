//! The JSON core of the SDK: the value type, a parser with Python `json.loads` semantics, the writers (compact,
//! canonical, ASCII-escaped), the `json.dumps` length count and the proto conversion of values (§3.3, §7, §13).

mod float;
mod parse;
mod proto;
mod value;
mod write;

pub use float::{FloatText, repr as float_repr};
pub use parse::{MAX_DEPTH, ParseError, ParseErrorKind, parse};
pub use proto::{value_to_proto_struct, value_to_proto_value};
pub use value::{Key, Object, Value};
pub use write::{
    CanonicalSink, CanonicalWriter, python_dumps_len, python_dumps_len_upper_bound, write_ascii, write_canonical,
    write_compact, write_string, write_string_ascii,
};

pub(crate) use write::{visit_sorted, write_int};

use sha2::{Digest as _, Sha256};

/// Lower-case hex of `bytes` (a SHA-256 digest gives the 64 characters of §7.1).
pub fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(HEX[usize::from(b >> 4)]);
        text.push(HEX[usize::from(b & 0xf)]);
    }
    // Only ASCII hex digits were pushed, so this conversion cannot fail.
    String::from_utf8(text).unwrap_or_default()
}

/// A SHA-256 digest as its 64 lower-case hex digits (§7.1), held inline: a span's four hashes cost no allocation.
/// It reads as a `&str` (`as_str`, `Deref`, `Display`) and compares equal to the same text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexDigest([u8; 64]);

impl HexDigest {
    /// The hex of a 32-byte SHA-256 digest.
    pub fn of(digest: &[u8; 32]) -> HexDigest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (i, &b) in digest.iter().enumerate() {
            text[2 * i] = HEX[usize::from(b >> 4)];
            text[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        HexDigest(text)
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored, so this conversion cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for HexDigest {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for HexDigest {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HexDigest {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for HexDigest {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// The SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> HexDigest {
    HexDigest::of(&Sha256::digest(bytes).into())
}

/// `hash(v)` of §7.1: lower-case hex SHA-256 of the canonical text of `v`, streamed into the hasher.
pub fn sha256_hex_of_canonical(v: &Value) -> HexDigest {
    let mut hasher = Sha256::new();
    write_canonical(v, &mut hasher);
    HexDigest::of(&hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_hash() {
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let digest = sha256_hex(b"null");
        assert_eq!(
            digest,
            "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
        );
        assert_eq!(digest, sha256_hex_of_canonical(&Value::Null));
        assert_eq!(format!("{digest}"), digest.as_str());
        // §17.2: `null` hashes to this.
        assert_eq!(
            sha256_hex_of_canonical(&Value::Null),
            "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
        );
    }
}
