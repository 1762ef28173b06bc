//! The pprof protobuf (`perftools.profiles.Profile`, google/pprof's `proto/profile.proto`), written with prost.
//!
//! Samples carry two values, `samples/count` and `cpu/nanoseconds` (count × period), and a `thread` label; every
//! distinct address is one `Location` with its real address, its inlined frames as `Line`s (innermost first, as
//! the format says), and the mapping of the executable file it falls in (from `/proc/self/maps`), so
//! `go tool pprof` knows the binary.

use std::collections::HashMap;
use std::time::SystemTime;

use prost::Message as _;

use super::symbols::Symbols;

#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    memory_start: u64,
    #[prost(uint64, tag = "3")]
    memory_limit: u64,
    #[prost(uint64, tag = "4")]
    file_offset: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(int64, tag = "6")]
    build_id: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(uint64, tag = "3")]
    address: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// An executable region of a file, from `/proc/self/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Region {
    pub start: u64,
    pub limit: u64,
    pub offset: u64,
    pub path: String,
}

/// The executable file-backed regions of this process (`r-xp` lines of `/proc/self/maps`); empty when unreadable.
pub(super) fn executable_regions() -> Vec<Region> {
    std::fs::read_to_string("/proc/self/maps").map_or_else(|_| Vec::new(), |maps| parse_maps(&maps))
}

fn parse_maps(maps: &str) -> Vec<Region> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let path = fields.nth(2)?;
            if !perms.contains('x') || !path.starts_with('/') {
                return None;
            }
            let (start, limit) = range.split_once('-')?;
            Some(Region {
                start: u64::from_str_radix(start, 16).ok()?,
                limit: u64::from_str_radix(limit, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The strings of a profile, each once; index 0 is the empty string.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.id("");
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), id);
        id
    }
}

/// What a protobuf is built from.
pub(super) struct Input<'a, I> {
    /// (thread name, addresses leaf first, count).
    pub stacks: I,
    pub symbols: &'a Symbols,
    pub regions: &'a [Region],
    pub hz: i32,
    pub started: SystemTime,
    pub duration_nanos: i64,
    /// Free text for the profile's comments (`go tool pprof` shows them).
    pub comments: &'a [String],
}

/// Encodes a profile.
pub(super) fn encode<'a, I>(input: Input<'a, I>) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a [usize], u64)>,
{
    let mut strings = Strings::new();
    let period = 1_000_000_000 / i64::from(input.hz.max(1));
    let mapping: Vec<Mapping> = input
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| Mapping {
            id: i as u64 + 1,
            memory_start: r.start,
            memory_limit: r.limit,
            file_offset: r.offset,
            filename: strings.id(&r.path),
            build_id: 0,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        })
        .collect();
    let mapping_of = |address: u64| {
        input
            .regions
            .iter()
            .position(|r| (r.start..r.limit).contains(&address))
            .map_or(0, |i| i as u64 + 1)
    };
    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<usize, u64> = HashMap::new();
    let mut samples = Vec::new();
    let (thread_key, samples_type, count_unit, cpu_type, ns_unit) = (
        strings.id("thread"),
        strings.id("samples"),
        strings.id("count"),
        strings.id("cpu"),
        strings.id("nanoseconds"),
    );
    for (thread, addresses, count) in input.stacks {
        let mut location_id = Vec::with_capacity(addresses.len());
        for &address in addresses {
            let id = match location_ids.get(&address) {
                Some(&id) => id,
                None => {
                    let id = locations.len() as u64 + 1;
                    let line = input
                        .symbols
                        .frames(address)
                        .iter()
                        .map(|frame| {
                            let key = (frame.name.clone(), frame.file.clone());
                            let function_id = match function_ids.get(&key) {
                                Some(&f) => f,
                                None => {
                                    let f = functions.len() as u64 + 1;
                                    functions.push(Function {
                                        id: f,
                                        name: strings.id(&frame.name),
                                        system_name: strings.id(frame.system_name.as_deref().unwrap_or(&frame.name)),
                                        filename: strings.id(frame.file.as_deref().unwrap_or("")),
                                    });
                                    function_ids.insert(key, f);
                                    f
                                }
                            };
                            Line {
                                function_id,
                                line: i64::from(frame.line.unwrap_or(0)),
                            }
                        })
                        .collect();
                    locations.push(Location {
                        id,
                        mapping_id: mapping_of(address as u64),
                        address: address as u64,
                        line,
                    });
                    location_ids.insert(address, id);
                    id
                }
            };
            location_id.push(id);
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        samples.push(Sample {
            location_id,
            value: vec![count, count.saturating_mul(period)],
            label: vec![Label {
                key: thread_key,
                str: strings.id(thread),
                num: 0,
            }],
        });
    }
    let comment = input.comments.iter().map(|c| strings.id(c)).collect();
    let time_nanos = input
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let profile = Profile {
        sample_type: vec![
            ValueType {
                r#type: samples_type,
                unit: count_unit,
            },
            ValueType {
                r#type: cpu_type,
                unit: ns_unit,
            },
        ],
        sample: samples,
        mapping,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos,
        duration_nanos: input.duration_nanos,
        period_type: Some(ValueType {
            r#type: cpu_type,
            unit: ns_unit,
        }),
        period,
        comment,
    };
    profile.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_file_regions_are_read_from_the_maps() {
        let maps = "\
55d0c0a00000-55d0c0a40000 r--p 00000000 fd:01 1234 /work/target/demo-app
55d0c0a40000-55d0c0f00000 r-xp 00040000 fd:01 1234 /work/target/demo-app
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0
7f1e2c200000-7f1e2c380000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffc1a5fe000-7ffc1a600000 r-xp 00000000 00:00 0 [vdso]
";
        assert_eq!(
            parse_maps(maps),
            [
                Region {
                    start: 0x55d0c0a40000,
                    limit: 0x55d0c0f00000,
                    offset: 0x40000,
                    path: "/work/target/demo-app".into()
                },
                Region {
                    start: 0x7f1e2c200000,
                    limit: 0x7f1e2c380000,
                    offset: 0x28000,
                    path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into()
                },
            ]
        );
        let own = executable_regions();
        let here = executable_regions as fn() -> Vec<Region> as usize as u64;
        assert!(own.iter().any(|r| (r.start..r.limit).contains(&here)), "{own:?}");
    }
}
