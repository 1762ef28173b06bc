//! Addresses → function names, files and lines (with inlined frames), and the folded-stacks text.

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;
use std::fmt::Write as _;

/// One source-level frame at an address: the function, and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SourceFrame {
    /// The demangled name without its hash (`drift_sdk::processor::ExportWorker::run`), or `Unknown`.
    pub name: String,
    /// The mangled name, when the symbol has one.
    pub system_name: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The name of a frame no symbol covers.
pub(super) const UNKNOWN: &str = "Unknown";

/// What every address of a profile resolves to: the chain of frames inlined there, innermost first.
#[derive(Debug, Default)]
pub(super) struct Symbols {
    at: HashMap<usize, Vec<SourceFrame>>,
}

impl Symbols {
    /// Resolves every address of `stacks` once. Addresses are instruction addresses (the sampler stores a return
    /// address minus one: the call instruction).
    pub(super) fn resolve<'a>(addresses: impl IntoIterator<Item = &'a usize>) -> Symbols {
        let mut at = HashMap::new();
        for &address in addresses {
            at.entry(address).or_insert_with(|| resolve_one(address));
        }
        Symbols { at }
    }

    /// The frames at `address`, innermost first (never empty).
    pub(super) fn frames(&self, address: usize) -> &[SourceFrame] {
        self.at.get(&address).map_or(&[], Vec::as_slice)
    }
}

fn resolve_one(address: usize) -> Vec<SourceFrame> {
    let mut frames = Vec::new();
    // `resolve` looks one byte back (it expects return addresses): give it the byte after the instruction.
    backtrace::resolve((address + 1) as *mut c_void, |symbol| {
        let (name, system_name) = match symbol.name() {
            Some(name) => (
                format!("{name:#}"),
                name.as_str()
                    .map(str::to_owned)
                    .filter(|raw| raw != &format!("{name:#}")),
            ),
            None => (UNKNOWN.to_owned(), None),
        };
        frames.push(SourceFrame {
            name,
            system_name,
            file: symbol.filename().map(|f| f.display().to_string()),
            line: symbol.lineno(),
        });
    });
    if frames.is_empty() {
        frames.push(SourceFrame {
            name: UNKNOWN.to_owned(),
            system_name: None,
            file: None,
            line: None,
        });
    }
    frames
}

/// Folded stacks: `thread;root;…;leaf COUNT`, one line per distinct stack, sorted, each ending in a newline.
/// `stacks` are (thread name, addresses leaf first, count); inside an address, inlined frames go outermost first.
/// `;` in a name (array types such as `[u8; 8]`) becomes `,`, and line breaks become spaces.
pub(super) fn folded<'a>(stacks: impl IntoIterator<Item = (&'a str, &'a [usize], u64)>, symbols: &Symbols) -> String {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for (thread, addresses, count) in stacks {
        let mut line = sanitise(thread);
        for &address in addresses.iter().rev() {
            for frame in symbols.frames(address).iter().rev() {
                line.push(';');
                line.push_str(&sanitise(&frame.name));
            }
        }
        *lines.entry(line).or_default() += count;
    }
    let mut out = String::new();
    for (stack, count) in lines {
        let _ = writeln!(out, "{stack} {count}");
    }
    out
}

pub(super) fn sanitise(name: &str) -> String {
    name.replace(';', ",").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_known_function() -> usize {
        std::hint::black_box(a_known_function as fn() -> usize as usize)
    }

    #[test]
    fn an_address_in_a_function_resolves_to_its_name_file_and_line() {
        let address = a_known_function() + 4;
        let symbols = Symbols::resolve([address].iter());
        let frames = symbols.frames(address);
        assert!(
            frames
                .iter()
                .any(|f| f.name.ends_with("symbols::tests::a_known_function")),
            "{frames:?}"
        );
        assert!(frames.iter().all(|f| !f.name.contains("::h")), "no hashes: {frames:?}");
        assert!(
            frames[0].file.as_deref().is_some_and(|f| f.ends_with("symbols.rs")),
            "{frames:?}"
        );
        let nowhere = Symbols::resolve([16usize].iter());
        assert_eq!(nowhere.frames(16)[0].name, UNKNOWN);
    }

    #[test]
    fn folded_lines_are_root_first_with_inlined_frames_outermost_first() {
        let frame = |name: &str| SourceFrame {
            name: name.into(),
            system_name: None,
            file: None,
            line: None,
        };
        let symbols = Symbols {
            at: HashMap::from([
                (1, vec![frame("leaf")]),
                (2, vec![frame("inlined"), frame("caller")]),
                (3, vec![frame("f<[u8; 8]>\n")]),
            ]),
        };
        let text = folded(
            [
                ("worker", &[1usize, 2, 3][..], 5),
                ("worker", &[1, 2, 3][..], 2),
                ("other", &[3][..], 1),
            ],
            &symbols,
        );
        assert_eq!(text, "other;f<[u8, 8]>  1\nworker;f<[u8, 8]> ;caller;inlined;leaf 7\n");
    }
}
