//! Function names as profilers print them: normalisation, the crate a name belongs to, and whose work a frame is.
//!
//! # Normalisation
//!
//! [`normalise`] makes the same function print the same way in two runs (and in pprof and dhat alike):
//! - a leading address, `0x55d0c3a2b4c1: `, is removed (dhat's frame table, some unwinders);
//! - legacy symbol hashes, `::h` followed by 16 hex digits (`drift_sdk::ids::TraceId::random::h0123456789abcdef`),
//!   are removed wherever they occur — they change with every build;
//! - closures are spelt the legacy way: the v0 mangling's `{closure#0}`, `{closure#1}`, … become `{{closure}}`, and
//!   `{shim:vtable#0}` becomes `{{vtable.shim}}`;
//! - generic arguments are kept (`core::ptr::drop_in_place<drift_sdk::record::SpanRecord>` and
//!   `core::ptr::drop_in_place<alloc::vec::Vec<u8>>` are different costs).
//!
//! # Whose work a frame is
//!
//! [`crate_of`] reads the crate a function's own path starts in; [`owner_of`] sorts it into the workspace's crates,
//! libraries, and native code (libc, the kernel, unresolved frames: names without `::`).
//!
//! The SDK's layer *wraps* the application: axum's handler future is polled from inside the SDK's
//! `ResponseFuture::poll`, the response body is streamed through the SDK's `CaptureBody`, and outbound calls go
//! through the SDK's middleware into reqwest. So "a drift_sdk frame is somewhere on the stack" counts the whole
//! application as the SDK's. [`sdk_attribution`] decides per frame instead: a frame is run on the SDK's behalf
//! when the nearest frame at or above it (towards the root) that belongs to a *deciding* crate is a `drift_sdk`
//! frame. Deciding crates are the workspace's ([`WORKSPACE_CRATES`]) and the frameworks the SDK wraps and calls
//! back into ([`HOST_CRATES`]: axum, hyper, tower, reqwest, …); everything else (sha2, serde_json, `std`, libc,
//! tokio's task-local scope) is neutral and belongs to whoever called it.

use serde::{Deserialize, Serialize};

/// The SDK's crate.
pub const SDK_CRATE: &str = "drift_sdk";

/// The workspace's crates, as they appear in symbol names.
pub const WORKSPACE_CRATES: &[&str] = &[SDK_CRATE, "demo_app", "benchmarks"];

/// Frameworks the SDK wraps or calls back into: below an SDK frame, a frame of one of these is the application's
/// work again (the inner service, the app's body, the outbound HTTP client), not the SDK's.
pub const HOST_CRATES: &[&str] = &[
    "axum",
    "axum_core",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "reqwest",
    "reqwest_middleware",
];

/// The standard library's crates: their leaves are inlined helpers (see `folded`'s leaf folding).
pub const STD_CRATES: &[&str] = &["core", "alloc", "std"];

/// Primitive types, whose inherent methods print as `<u32>::swap_bytes`: they are `core`'s.
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64", "bool",
    "char", "str",
];

/// Who a function belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// One of the [`WORKSPACE_CRATES`] (the SDK, the demo app); [`is_sdk`] tells the SDK's apart.
    Workspace,
    /// Any other Rust crate, the standard library included.
    Library,
    /// A name without a Rust path: libc (`malloc`, `__memmove_avx_unaligned_erms`), the kernel, or an unresolved
    /// frame (`Unknown`).
    Native,
}

/// The name as it should be compared between runs: see the [module documentation](self).
pub fn normalise(name: &str) -> String {
    let name = strip_address(name.trim());
    let name = strip_hashes(name);
    let name = replace_numbered(&name, "{closure#", "{{closure}}");
    replace_numbered(&name, "{shim:vtable#", "{{vtable.shim}}")
}

/// Removes a leading `0x…: ` address.
pub(crate) fn strip_address(name: &str) -> &str {
    if let Some(rest) = name.strip_prefix("0x")
        && let Some((hex, after)) = rest.split_once(": ")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return after;
    }
    name
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Removes every `::h` + 16 hex digits that ends a path segment.
fn strip_hashes(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(pos) = name[from..].find("::h") {
        let at = from + pos;
        let hex = at + 3;
        let end = hex + 16;
        let is_hash = end <= bytes.len()
            && bytes[hex..end].iter().all(u8::is_ascii_hexdigit)
            && bytes.get(end).is_none_or(|&b| !is_ident_byte(b));
        if is_hash {
            out.push_str(&name[copied..at]);
            copied = end;
            from = end;
        } else {
            from = hex;
        }
    }
    out.push_str(&name[copied..]);
    out
}

/// Replaces `{open}DIGITS}` (e.g. `{closure#12}`) with `replacement`.
fn replace_numbered(name: &str, open: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find(open) {
        let after = &rest[pos + open.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with('}') {
            out.push_str(&rest[..pos]);
            out.push_str(replacement);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..pos + open.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The crate a function's own path belongs to, or `None` for a native name (no `::`).
///
/// Leading `<`, `&`, `*const `, `*mut `, `mut ` and `dyn ` are skipped and the first path segment is the crate, so
/// `<drift_sdk::capture::inbound::DriftService<S> as tower_service::Service<R>>::call` is `drift_sdk`'s (the
/// implementing type's crate, not the trait's). Primitive types, slices, tuples and function pointers
/// (`<u32>::swap_bytes`, `<[u8]>::to_vec`) are `core`'s.
pub fn crate_of(name: &str) -> Option<&str> {
    if !name.contains("::") {
        return None;
    }
    let mut s = name.trim_start();
    loop {
        let t = s.trim_start_matches(['<', '&', '*', ' ']);
        let t = ["mut ", "const ", "dyn "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .unwrap_or(t);
        if t.len() == s.len() {
            break;
        }
        s = t;
    }
    let end = s.bytes().position(|b| !is_ident_byte(b)).unwrap_or(s.len());
    let first = &s[..end];
    let fn_pointer = first == "fn" && s[end..].starts_with('(');
    if first.is_empty() || fn_pointer || PRIMITIVES.contains(&first) {
        return Some("core");
    }
    Some(first)
}

/// Who `name` belongs to.
pub fn owner_of(name: &str) -> Owner {
    match crate_of(name) {
        None => Owner::Native,
        Some(krate) if WORKSPACE_CRATES.contains(&krate) => Owner::Workspace,
        Some(_) => Owner::Library,
    }
}

/// Whether `name` is a function of the SDK's crate.
pub fn is_sdk(name: &str) -> bool {
    crate_of(name) == Some(SDK_CRATE)
}

/// Whether `name`'s crate is `core`, `alloc` or `std`.
pub fn is_std(name: &str) -> bool {
    crate_of(name).is_some_and(|krate| STD_CRATES.contains(&krate))
}

/// `Some(true)` for an SDK frame, `Some(false)` for another workspace or host-framework frame, `None` for a
/// neutral one.
fn decides(name: &str) -> Option<bool> {
    let krate = crate_of(name)?;
    if krate == SDK_CRATE {
        Some(true)
    } else if WORKSPACE_CRATES.contains(&krate) || HOST_CRATES.contains(&krate) {
        Some(false)
    } else {
        None
    }
}

/// For frames listed root first: whether each one runs on the SDK's behalf (see the
/// [module documentation](self)). The last entry says whether a sample with this stack is the SDK's.
pub fn sdk_attribution<S: AsRef<str>>(frames_root_first: &[S]) -> Vec<bool> {
    let mut current = false;
    frames_root_first
        .iter()
        .map(|frame| {
            if let Some(sdk) = decides(frame.as_ref()) {
                current = sdk;
            }
            current
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_strips_hashes_addresses_and_closure_numbers() {
        let cases = [
            (
                "drift_sdk::ids::TraceId::random::h0123456789abcdef",
                "drift_sdk::ids::TraceId::random",
            ),
            (
                "0x55d0c3a2b4c1: drift_sdk::json::parse::Parser::value",
                "drift_sdk::json::parse::Parser::value",
            ),
            ("  0x7f: malloc  ", "malloc"),
            (
                "drift_sdk::processor::spawn::{closure#0}::{closure#12}",
                "drift_sdk::processor::spawn::{{closure}}::{{closure}}",
            ),
            (
                "drift_sdk::processor::spawn::{{closure}}",
                "drift_sdk::processor::spawn::{{closure}}",
            ),
            (
                "<F as core::ops::function::FnOnce<()>>::call_once::{shim:vtable#0}",
                "<F as core::ops::function::FnOnce<()>>::call_once::{{vtable.shim}}",
            ),
            // A hash inside generic arguments, and the generics kept.
            (
                "core::ptr::drop_in_place<drift_sdk::record::SpanRecord::hffffffffffffffff>::h00000000000000aa",
                "core::ptr::drop_in_place<drift_sdk::record::SpanRecord>",
            ),
            // Not hashes: 15 digits, 17 digits, a function whose name starts with h.
            ("a::h0123456789abcde", "a::h0123456789abcde"),
            ("a::h0123456789abcdef0", "a::h0123456789abcdef0"),
            (
                "tokio::runtime::handle::Handle::current",
                "tokio::runtime::handle::Handle::current",
            ),
            // Not an address: no hex digits, or no ": ".
            ("0xzz: f", "0xzz: f"),
            ("{closure#}", "{closure#}"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw), want, "normalise({raw:?})");
        }
    }

    #[test]
    fn crate_of_reads_the_implementing_type() {
        let cases = [
            ("drift_sdk::processor::ExportWorker::run", Some("drift_sdk")),
            (
                "<drift_sdk::capture::inbound::DriftService<S> as tower_service::Service<http::request::Request<ReqBody>>>::call",
                Some("drift_sdk"),
            ),
            (
                "<&mut serde_json::ser::Serializer<W> as serde::ser::Serializer>::serialize_str",
                Some("serde_json"),
            ),
            ("<dyn core::any::Any>::is", Some("core")),
            ("<*const u8 as core::fmt::Pointer>::fmt", Some("core")),
            ("core::ptr::drop_in_place<drift_sdk::record::SpanRecord>", Some("core")),
            ("<u32>::swap_bytes", Some("core")),
            ("<[u8]>::to_vec", Some("core")),
            ("<(A, B) as core::hash::Hash>::hash", Some("core")),
            ("<fn() -> u8 as core::ops::Fn<()>>::call", Some("core")),
            ("alloc::raw_vec::RawVec<T,A>::grow_one", Some("alloc")),
            ("malloc", None),
            ("__memmove_avx_unaligned_erms", None),
            ("Unknown", None),
        ];
        for (name, want) in cases {
            assert_eq!(crate_of(name), want, "crate_of({name:?})");
        }
        assert_eq!(owner_of("demo_app::endpoints::echo"), Owner::Workspace);
        assert_eq!(owner_of("sha2::sha256::compress256"), Owner::Library);
        assert_eq!(owner_of("malloc"), Owner::Native);
        assert!(is_sdk(
            "<drift_sdk::capture::inbound::CaptureBody<B> as http_body::Body>::poll_frame"
        ));
        assert!(!is_sdk("demo_app::main"));
        assert!(is_std("<u32>::swap_bytes") && is_std("std::io::Write::write_all") && !is_std("memcpy"));
    }

    #[test]
    fn the_app_under_the_sdk_layer_is_not_the_sdk() {
        let stack = [
            "tokio::runtime::task::harness::poll",
            "hyper::proto::h1::dispatch::Dispatcher::poll",
            "<drift_sdk::capture::inbound::ResponseFuture<S,B,F> as core::future::future::Future>::poll",
            "sha2::sha256::compress256",
            "<axum::routing::route::RouteFuture<E> as core::future::future::Future>::poll",
            "demo_app::endpoints::echo::{{closure}}",
            "serde_json::de::from_slice",
            "malloc",
        ];
        assert_eq!(
            sdk_attribution(&stack),
            [false, false, true, true, false, false, false, false]
        );
        assert_eq!(sdk_attribution::<&str>(&[]), Vec::<bool>::new());
    }
}
