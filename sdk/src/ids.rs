//! Trace and span ids (§3.2): random, never zero, written as lower-case hex.

use std::fmt;

/// A 128-bit trace id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub u128);

/// A 64-bit span id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub u64);

impl TraceId {
    /// A new random id, never zero. Uses the calling thread's fast RNG.
    pub fn random() -> TraceId {
        loop {
            let id = fastrand::u128(..);
            if id != 0 {
                return TraceId(id);
            }
        }
    }
}

impl SpanId {
    /// A new random id, never zero.
    pub fn random() -> SpanId {
        loop {
            let id = fastrand::u64(..);
            if id != 0 {
                return SpanId(id);
            }
        }
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_format_as_zero_padded_lower_hex() {
        // P3, P4
        assert_eq!(
            TraceId(0x0123456789abcdef0123456789abcdef).to_string(),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(TraceId(1).to_string(), format!("{}1", "0".repeat(31)));
        assert_eq!(TraceId(0).to_string(), "0".repeat(32));
        assert_eq!(SpanId(1).to_string(), "0000000000000001");
        assert_eq!(SpanId(0xfedcba9876543210).to_string(), "fedcba9876543210");
    }

    #[test]
    fn random_ids_are_never_zero_and_differ() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a.0, 0);
        assert_ne!(a, b);
        assert_ne!(SpanId::random().0, 0);
    }
}
