//! Request mixes: which request the `i`-th request of a run is.
//!
//! A [`Mix`] is a list of weighted [`Entry`]s and a fixed schedule of length `total weight` that interleaves them
//! smoothly (nginx's smooth weighted round-robin: weights 2,1 give A,B,A). Request `i` of a run is entry
//! `schedule[i % total_weight]`, so a mix is exact whatever the concurrency: the index comes from one counter shared
//! by all connections.
//!
//! A mix is written three ways (see [`Mix::parse`]): a name (`seed`, `realistic`, …), a list of `endpoint=weight`
//! pairs whose endpoints take their method and body from the built-in [catalogue](CATALOGUE), or a JSON file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

/// The names [`Mix::parse`] accepts, in the order `--help` lists them.
pub const NAMED_MIXES: &[&str] = &[
    "seed",
    "realistic",
    "transforms",
    "outbound",
    "compute",
    "io",
    "calibrate",
    "calibrate-threads",
];

/// The longest schedule (sum of weights) a mix may have.
pub const MAX_TOTAL_WEIGHT: u64 = 100_000;

/// One endpoint of the demo app as the catalogue knows it: what a bare path in a pair list or a file means.
#[derive(Debug)]
pub struct CatalogueEntry {
    /// The endpoint's method.
    pub method: &'static str,
    /// The path, without query.
    pub path: &'static str,
    /// The request body (`{i}` is the request index), if the endpoint reads one.
    pub body: Option<&'static str>,
    /// Extra request headers.
    pub headers: &'static [(&'static str, &'static str)],
}

const fn endpoint(method: &'static str, path: &'static str, body: Option<&'static str>) -> CatalogueEntry {
    CatalogueEntry {
        method,
        path,
        body,
        headers: &[],
    }
}

/// Every demo-app endpoint (`drift-format.md` §15.1, plus `/api/outbound` and `/api/calibrate`) with the bodies of the
/// seed's profiling mix (§15.2) and overhead benchmark (§15.3). Endpoints whose body the server ignores get none.
pub const CATALOGUE: &[CatalogueEntry] = &[
    endpoint("GET", "/health", None),
    endpoint("GET", "/api/simple", None),
    endpoint("POST", "/api/simple-post", None),
    endpoint("POST", "/api/echo", Some(r#"{"data":"test","iteration":{i}}"#)),
    endpoint("GET", "/api/small", None),
    endpoint("POST", "/api/small-post", None),
    endpoint("GET", "/api/medium", None),
    endpoint("POST", "/api/medium-post", None),
    endpoint("GET", "/api/large", None),
    endpoint("POST", "/api/large-post", None),
    endpoint(
        "POST",
        "/api/compute-hash",
        Some(r#"{"data":"sensitive-data-to-hash","iterations":1000}"#),
    ),
    endpoint(
        "POST",
        "/api/compute-json",
        Some(r#"{"iterations":100,"data":{"test":"data","nested":{"value":123}}}"#),
    ),
    endpoint(
        "POST",
        "/api/auth/login",
        Some(r#"{"email":"test@example.com","password":"secret123"}"#),
    ),
    endpoint(
        "POST",
        "/api/users",
        Some(
            r#"{"username":"testuser","email":"test@example.com","ssn":"123-45-6789","creditCard":"4111-1111-1111-1111"}"#,
        ),
    ),
    endpoint("POST", "/api/io-bound", Some(r#"{"jobs":5,"delayMs":5}"#)),
    endpoint("GET", "/api/slow", None),
    endpoint("GET", "/api/error", None),
    endpoint(
        "POST",
        "/api/realistic",
        Some(r#"{"userId":"user-{i}","query":"search query","email":"test@example.com"}"#),
    ),
    CatalogueEntry {
        method: "GET",
        path: "/api/typical-read",
        body: None,
        headers: &[("authorization", "Bearer token-abcdefghijkl")],
    },
    endpoint("POST", "/api/typical-write", Some(r#"{"name":"item-{i}"}"#)),
    endpoint("POST", "/api/outbound", Some(r#"{"userId":"user-{i}"}"#)),
    endpoint("GET", "/api/calibrate", None),
    endpoint("GET", "/api/calibrate-syscalls", None),
    endpoint("GET", "/api/calibrate-wakeups", None),
];

/// The login body of the seed's transform benchmark (§15.3), which differs from the profiling mix's.
const TRANSFORMS_LOGIN_BODY: &str = r#"{"email":"user@example.com","password":"super-secret-password-123"}"#;

/// A request body in which `{i}` stands for the request index.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    /// The text split at each `{i}`: one part means a constant body.
    parts: Vec<Bytes>,
}

impl Template {
    /// A template from its text.
    pub fn new(text: &str) -> Template {
        Template {
            parts: text
                .split("{i}")
                .map(|p| Bytes::copy_from_slice(p.as_bytes()))
                .collect(),
        }
    }

    /// The body of request `i`.
    pub fn render(&self, i: u64) -> Bytes {
        match self.parts.as_slice() {
            [constant] => constant.clone(),
            parts => {
                let index = i.to_string();
                let len = parts.iter().map(Bytes::len).sum::<usize>() + index.len() * (parts.len() - 1);
                let mut out = Vec::with_capacity(len);
                for (n, part) in parts.iter().enumerate() {
                    if n > 0 {
                        out.extend_from_slice(index.as_bytes());
                    }
                    out.extend_from_slice(part);
                }
                Bytes::from(out)
            }
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<_> = self.parts.iter().map(|p| String::from_utf8_lossy(p)).collect();
        fmt::Debug::fmt(&text.join("{i}"), f)
    }
}

/// One kind of request in a mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The request method.
    pub method: Method,
    /// The path and query, starting with `/`.
    pub path: PathAndQuery,
    /// Extra headers, in order (`Content-Type: application/json` is added to bodies unless given here).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, if any.
    pub body: Option<Template>,
    /// How many slots of the schedule this entry takes.
    pub weight: u32,
}

impl Entry {
    /// The catalogue's request for `path` (matched without its query), or a bare GET for a path it does not know.
    /// A `method` other than the catalogue's drops the catalogue's body and headers.
    pub fn for_endpoint(method: Option<Method>, path: &str, weight: u32) -> anyhow::Result<Entry> {
        let path = parse_path(path)?;
        let known = CATALOGUE.iter().find(|c| c.path == path.path());
        let catalogue_method = known.map(|c| Method::from_bytes(c.method.as_bytes()).unwrap_or(Method::GET));
        let method = method.or_else(|| catalogue_method.clone()).unwrap_or(Method::GET);
        let (body, headers) = match known {
            Some(c) if Some(&method) == catalogue_method.as_ref() => {
                let headers = c
                    .headers
                    .iter()
                    .map(|&(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)));
                (c.body.map(Template::new), headers.collect())
            }
            _ => (None, Vec::new()),
        };
        Ok(Entry {
            method,
            path,
            headers,
            body,
            weight: check_weight(weight)?,
        })
    }

    /// `METHOD /path` as the report names it.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A weighted list of requests and its deterministic schedule.
#[derive(Clone, Debug)]
pub struct Mix {
    name: String,
    entries: Vec<Entry>,
    /// Entry indexes; request `i` is `entries[schedule[i % schedule.len()]]`.
    schedule: Vec<u32>,
}

impl Mix {
    /// Parses `--mix`: a name from [`NAMED_MIXES`]; `@file` or a path ending in `.json` (see [`Mix::from_file`]); or
    /// a comma-separated list of `[METHOD ]/path[=weight]` (weight 1 when left out; a path with a query string needs
    /// an explicit weight, since the text after the last `=` is the weight).
    pub fn parse(spec: &str) -> anyhow::Result<Mix> {
        let spec = spec.trim();
        if let Some(file) = spec.strip_prefix('@') {
            return Mix::from_file(Path::new(file));
        }
        if spec.ends_with(".json") {
            return Mix::from_file(Path::new(spec));
        }
        if let Some(mix) = Mix::named(spec) {
            return Ok(mix);
        }
        if spec.contains(['/', '=', ',']) {
            return Mix::from_pairs(spec);
        }
        bail!(
            "unknown mix {spec:?}: expected one of {}, a list such as \"/api/simple=3,POST /api/echo=1\", or \
             @file.json",
            NAMED_MIXES.join(", ")
        )
    }

    /// One of the [`NAMED_MIXES`].
    pub fn named(name: &str) -> Option<Mix> {
        let catalogue = |path: &str| Entry::for_endpoint(None, path, 1);
        let entries = match name {
            "seed" => Vec::from(["/api/simple", "/api/echo", "/api/auth/login"].map(catalogue)),
            "realistic" => Vec::from(["/api/typical-read", "/api/typical-write", "/api/realistic"].map(catalogue)),
            "transforms" => {
                let login = catalogue("/api/auth/login").map(|e| Entry {
                    body: Some(Template::new(TRANSFORMS_LOGIN_BODY)),
                    ..e
                });
                vec![login, catalogue("/api/users")]
            }
            "outbound" => vec![catalogue("/api/outbound")],
            "compute" => vec![catalogue("/api/compute-hash")],
            "io" => vec![catalogue("/api/io-bound")],
            "calibrate" => vec![catalogue("/api/calibrate")],
            // User-space work on the request threads, system calls on the app's calib-syscalls thread, and two
            // threads that wake each other up.
            "calibrate-threads" => vec![
                catalogue("/api/calibrate"),
                catalogue("/api/calibrate-syscalls"),
                catalogue("/api/calibrate-wakeups"),
            ],
            _ => return None,
        };
        let entries = entries.into_iter().collect::<anyhow::Result<Vec<_>>>().ok()?;
        Mix::new(name, entries).ok()
    }

    /// A list of `[METHOD ]/path[=weight]` separated by commas. An item may also be a named mix with a weight
    /// (`seed=9,calibrate=1`): each of its entries gets that weight.
    pub fn from_pairs(spec: &str) -> anyhow::Result<Mix> {
        let mut entries = Vec::new();
        for item in spec.split(',') {
            entries.extend(parse_item(item).with_context(|| format!("in mix {spec:?}"))?);
        }
        Mix::new(spec, entries)
    }

    /// A JSON file holding an array of `{"method", "path", "weight", "body", "headers"}` objects; only `path` is
    /// required. Fields left out come from the catalogue as for a pair (`weight` is 1). `body` is a string in which
    /// `{i}` is the request index, or any other JSON value, which is sent as compact JSON.
    pub fn from_file(path: &Path) -> anyhow::Result<Mix> {
        let name = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading mix file {name}"))?;
        let items: Vec<FileEntry> = serde_json::from_str(&text).map_err(|err| {
            anyhow!("mix file {name}: {err} (expected a JSON array of {{\"method\", \"path\", \"weight\", \"body\", \"headers\"}} objects)")
        })?;
        let entries = items
            .into_iter()
            .enumerate()
            .map(|(n, item)| {
                item.into_entry()
                    .with_context(|| format!("mix file {name}: entry {}", n + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Mix::new(&format!("@{name}"), entries).with_context(|| format!("mix file {name}"))
    }

    /// A mix of `entries` under `name`; fails if it is empty or its total weight exceeds [`MAX_TOTAL_WEIGHT`].
    pub fn new(name: &str, entries: Vec<Entry>) -> anyhow::Result<Mix> {
        ensure!(!entries.is_empty(), "the mix has no entries");
        let total: u64 = entries.iter().map(|e| u64::from(e.weight)).sum();
        ensure!(
            total <= MAX_TOTAL_WEIGHT,
            "the weights add up to {total}, more than {MAX_TOTAL_WEIGHT}"
        );
        let schedule = smooth_schedule(&entries.iter().map(|e| e.weight).collect::<Vec<_>>());
        Ok(Mix {
            name: name.to_owned(),
            entries,
            schedule,
        })
    }

    /// The mix as it was named on the command line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index into [`Mix::entries`] of request `i`.
    pub fn entry_index(&self, i: u64) -> usize {
        // The schedule is never empty (`Mix::new` refuses empty mixes) and is at most MAX_TOTAL_WEIGHT long.
        self.schedule[(i % self.schedule.len() as u64) as usize] as usize
    }
}

/// Smooth weighted round-robin: each step adds every weight to its entry's credit, picks the entry with the most
/// credit (the first on ties) and takes the total back from it. Equal weights give 0,1,2,…; weights 2,1 give 0,1,0.
fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut credit = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (n, &w) in weights.iter().enumerate() {
            credit[n] += i64::from(w);
            if credit[n] > credit[best] {
                best = n;
            }
        }
        credit[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

/// One item of a list: a named mix with a weight, or an endpoint.
fn parse_item(item: &str) -> anyhow::Result<Vec<Entry>> {
    if let Some((name, weight)) = item.trim().rsplit_once('=')
        && let Some(mix) = Mix::named(name.trim())
    {
        let weight = parse_weight(weight.trim(), name)?;
        return mix
            .entries
            .into_iter()
            .map(|e| {
                Ok(Entry {
                    weight: check_weight(e.weight.saturating_mul(weight))?,
                    ..e
                })
            })
            .collect();
    }
    Ok(vec![parse_pair(item)?])
}

fn parse_pair(item: &str) -> anyhow::Result<Entry> {
    let item = item.trim();
    ensure!(
        !item.is_empty(),
        "empty entry (two commas in a row, or a trailing comma)"
    );
    let (endpoint, weight) = match item.rsplit_once('=') {
        Some((endpoint, weight)) => (endpoint.trim(), parse_weight(weight.trim(), endpoint)?),
        None => (item, 1),
    };
    let (method, path) = match endpoint.split_once(char::is_whitespace) {
        Some((method, path)) => (Some(parse_method(method)?), path.trim()),
        None => (None, endpoint),
    };
    Entry::for_endpoint(method, path, weight)
}

fn parse_weight(text: &str, endpoint: &str) -> anyhow::Result<u32> {
    let weight = text
        .parse::<u32>()
        .map_err(|_| anyhow!("weight {text:?} of {endpoint:?} is not a whole number"))?;
    check_weight(weight).with_context(|| format!("weight of {endpoint:?}"))
}

fn check_weight(weight: u32) -> anyhow::Result<u32> {
    ensure!(weight >= 1, "a weight must be at least 1");
    Ok(weight)
}

fn parse_method(text: &str) -> anyhow::Result<Method> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let upper = text.to_ascii_uppercase();
    ensure!(
        METHODS.contains(&upper.as_str()),
        "unknown method {text:?}: expected one of {}",
        METHODS.join(", ")
    );
    Method::from_bytes(upper.as_bytes()).with_context(|| format!("method {text:?}"))
}

fn parse_path(path: &str) -> anyhow::Result<PathAndQuery> {
    ensure!(
        path.starts_with('/'),
        "endpoint {path:?} must be a path starting with \"/\", such as /api/echo"
    );
    path.parse::<PathAndQuery>()
        .map_err(|err| anyhow!("endpoint {path:?} is not a valid path: {err}"))
}

/// One object of a mix file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    method: Option<String>,
    path: String,
    weight: Option<u32>,
    /// `None` when left out (the catalogue's body), `Some(Null)` for an explicit `null` (no body).
    #[serde(default, deserialize_with = "present")]
    body: Option<serde_json::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl FileEntry {
    fn into_entry(self) -> anyhow::Result<Entry> {
        let method = self.method.as_deref().map(parse_method).transpose()?;
        let mut entry = Entry::for_endpoint(method, &self.path, self.weight.unwrap_or(1))?;
        match self.body {
            None => {}
            Some(serde_json::Value::Null) => entry.body = None,
            Some(serde_json::Value::String(text)) => entry.body = Some(Template::new(&text)),
            Some(value) => entry.body = Some(Template::new(&value.to_string())),
        }
        for (name, value) in self.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| anyhow!("bad header name {name:?}"))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| anyhow!("bad value {value:?} for header {name:?}"))?;
            entry.headers.retain(|(n, _)| *n != header);
            entry.headers.push((header, value));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(mix: &Mix, i: u64) -> (String, Option<String>) {
        let entry = &mix.entries()[mix.entry_index(i)];
        let body = entry
            .body
            .as_ref()
            .map(|t| String::from_utf8_lossy(&t.render(i)).into_owned());
        (entry.label(), body)
    }

    fn err(spec: &str) -> String {
        format!("{:#}", Mix::parse(spec).expect_err(spec))
    }

    #[test]
    fn the_seed_mix_is_i_mod_3_in_the_seed_order() {
        let mix = Mix::parse("seed").unwrap();
        for i in 0..999 {
            let (label, body) = bodies(&mix, i);
            match i % 3 {
                0 => assert_eq!((label.as_str(), body), ("GET /api/simple", None)),
                1 => assert_eq!(
                    (label.as_str(), body.as_deref()),
                    (
                        "POST /api/echo",
                        Some(format!(r#"{{"data":"test","iteration":{i}}}"#).as_str())
                    )
                ),
                _ => assert_eq!(
                    (label.as_str(), body.as_deref()),
                    (
                        "POST /api/auth/login",
                        Some(r#"{"email":"test@example.com","password":"secret123"}"#)
                    )
                ),
            }
        }
    }

    #[test]
    fn every_named_mix_exists_and_has_the_seed_bodies() {
        for name in NAMED_MIXES {
            assert_eq!(Mix::parse(name).unwrap().name(), *name);
        }
        let realistic = Mix::parse("realistic").unwrap();
        let read = &realistic.entries()[0];
        assert_eq!(read.label(), "GET /api/typical-read");
        assert_eq!(read.headers[0].1, "Bearer token-abcdefghijkl");
        assert_eq!(bodies(&realistic, 4).1.unwrap(), r#"{"name":"item-4"}"#);
        assert_eq!(
            bodies(&realistic, 5).1.unwrap(),
            r#"{"userId":"user-5","query":"search query","email":"test@example.com"}"#
        );
        let transforms = Mix::parse("transforms").unwrap();
        assert_eq!(bodies(&transforms, 0).1.unwrap(), TRANSFORMS_LOGIN_BODY);
        assert_eq!(bodies(&transforms, 1).0, "POST /api/users");
        assert_eq!(bodies(&transforms, 2).0, "POST /api/auth/login");
        assert_eq!(
            bodies(&Mix::parse("outbound").unwrap(), 7).1.unwrap(),
            r#"{"userId":"user-7"}"#
        );
        assert_eq!(
            bodies(&Mix::parse("io").unwrap(), 0).1.unwrap(),
            r#"{"jobs":5,"delayMs":5}"#
        );
        assert_eq!(
            bodies(&Mix::parse("calibrate").unwrap(), 0),
            ("GET /api/calibrate".into(), None)
        );
        assert_eq!(bodies(&Mix::parse("compute").unwrap(), 0).0, "POST /api/compute-hash");
    }

    #[test]
    fn weights_are_honoured_over_a_full_cycle_and_interleaved() {
        let mix = Mix::parse("/api/simple=2,/api/echo=1").unwrap();
        let order: Vec<_> = (0..6).map(|i| mix.entry_index(i)).collect();
        assert_eq!(order, [0, 1, 0, 0, 1, 0]);

        let mix = Mix::parse("/a=5, /b=3, /c=1, /d=1").unwrap();
        let mut counts = [0; 4];
        for i in 0..10 {
            counts[mix.entry_index(i)] += 1;
        }
        assert_eq!(counts, [5, 3, 1, 1]);
        // Smooth: the heavy entry never runs more than twice in a row.
        let order: Vec<_> = (0..20).map(|i| mix.entry_index(i)).collect();
        assert!(
            order.windows(3).all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)),
            "{order:?}"
        );
    }

    #[test]
    fn pairs_take_method_and_body_from_the_catalogue() {
        let mix = Mix::parse("/api/simple=3,/api/echo=1").unwrap();
        assert_eq!(mix.name(), "/api/simple=3,/api/echo=1");
        let labels: Vec<_> = mix.entries().iter().map(|e| (e.label(), e.weight)).collect();
        assert_eq!(labels, [("GET /api/simple".into(), 3), ("POST /api/echo".into(), 1)]);
        assert_eq!(
            mix.entries()[1].body,
            Some(Template::new(r#"{"data":"test","iteration":{i}}"#))
        );

        // Weight 1 when left out; unknown paths are a bare GET; a query string keeps the catalogue entry.
        let mix = Mix::parse("/api/unknown,/api/calibrate?units=10=2").unwrap();
        assert_eq!(mix.entries()[0].label(), "GET /api/unknown");
        assert_eq!((mix.entries()[0].weight, mix.entries()[0].body.is_none()), (1, true));
        assert_eq!(mix.entries()[1].label(), "GET /api/calibrate?units=10");
        assert_eq!(mix.entries()[1].weight, 2);
    }

    #[test]
    fn named_mixes_take_a_weight_in_lists() {
        let mix = Mix::parse("calibrate=1").unwrap();
        assert_eq!(mix.entries().len(), 1);
        assert_eq!(mix.entries()[0].label(), "GET /api/calibrate");
        let mix = Mix::parse("seed=3,/health=1").unwrap();
        let labels: Vec<String> = (0..10).map(|i| mix.entries()[mix.entry_index(i)].label()).collect();
        assert_eq!(labels.iter().filter(|l| l.as_str() == "GET /api/simple").count(), 3);
        assert_eq!(labels.iter().filter(|l| l.as_str() == "GET /health").count(), 1);
        assert!(err("seed=0").contains("at least 1"));
    }

    #[test]
    fn a_method_prefix_overrides_the_catalogue() {
        let mix = Mix::parse("POST /api/echo=2, post /api/new, GET /api/echo").unwrap();
        let e = mix.entries();
        assert_eq!(
            (e[0].label(), e[0].weight, e[0].body.is_some()),
            ("POST /api/echo".into(), 2, true)
        );
        assert_eq!((e[1].label(), e[1].body.is_some()), ("POST /api/new".into(), false));
        // Another method than the catalogue's: no catalogue body.
        assert_eq!((e[2].label(), e[2].body.is_some()), ("GET /api/echo".into(), false));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(
            err("sed").contains("unknown mix \"sed\": expected one of seed, realistic"),
            "{}",
            err("sed")
        );
        assert!(
            err("api/echo=1").contains("must be a path starting with \"/\""),
            "{}",
            err("api/echo=1")
        );
        assert!(err("/api/echo=0").contains("at least 1"), "{}", err("/api/echo=0"));
        assert!(err("/api/echo=x").contains("weight \"x\" of \"/api/echo\" is not a whole number"));
        assert!(err("/api/echo=-1").contains("not a whole number"));
        assert!(err("/a,,/b").contains("empty entry"), "{}", err("/a,,/b"));
        assert!(
            err("FETCH /api/echo").contains("unknown method \"FETCH\""),
            "{}",
            err("FETCH /api/echo")
        );
        assert!(
            err("/api/a b=1").contains("unknown method \"/api/a\""),
            "{}",
            err("/api/a b=1")
        );
        assert!(
            err("/api/\u{7f}=1").contains("is not a valid path"),
            "{}",
            err("/api/\u{7f}=1")
        );
        assert!(
            err("/a=60000,/b=60000").contains("more than 100000"),
            "{}",
            err("/a=60000,/b=60000")
        );
        assert!(
            err("/a=1,b=2").starts_with("in mix \"/a=1,b=2\": endpoint \"b\""),
            "{}",
            err("/a=1,b=2")
        );
    }

    #[test]
    fn template_substitutes_every_i() {
        assert_eq!(Template::new("{i}-{i}x{i}").render(42), "42-42x42");
        assert_eq!(Template::new("no index").render(7), "no index");
        assert_eq!(Template::new("").render(7), "");
        assert_eq!(Template::new("{i}").render(u64::MAX), u64::MAX.to_string());
        assert_eq!(format!("{:?}", Template::new("a{i}b")), "\"a{i}b\"");
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_file_mix_reads_methods_bodies_headers_and_weights() {
        let file = write(
            r#"[
              {"method":"POST","path":"/api/echo","weight":2,"body":"{\"data\":\"test\",\"iteration\":{i}}","headers":{"x":"y"}},
              {"path":"/api/typical-read"},
              {"method":"put","path":"/api/thing","body":{"n":1}},
              {"path":"/api/echo","body":null}
            ]"#,
        );
        let by_at = Mix::parse(&format!("@{}", file.path().display())).unwrap();
        let mix = Mix::parse(&file.path().display().to_string()).unwrap();
        assert_eq!(by_at.entries(), mix.entries());
        assert_eq!(mix.name(), format!("@{}", file.path().display()));
        let e = mix.entries();
        assert_eq!((e[0].label(), e[0].weight), ("POST /api/echo".into(), 2));
        assert_eq!(
            e[0].body.as_ref().unwrap().render(9),
            r#"{"data":"test","iteration":9}"#
        );
        assert_eq!(
            e[0].headers,
            [(HeaderName::from_static("x"), HeaderValue::from_static("y"))]
        );
        assert_eq!(e[1].label(), "GET /api/typical-read");
        assert_eq!(e[1].headers.len(), 1, "catalogue header kept");
        assert_eq!(e[2].label(), "PUT /api/thing");
        assert_eq!(e[2].body.as_ref().unwrap().render(0), r#"{"n":1}"#);
        assert_eq!(e[3].body, None);
        let order: Vec<_> = (0..5).map(|i| mix.entry_index(i)).collect();
        assert_eq!(order, [0, 1, 2, 3, 0]);
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let missing = err("@/nonexistent/mix.json");
        assert!(
            missing.starts_with("reading mix file /nonexistent/mix.json: "),
            "{missing}"
        );

        let cases = [
            ("{}", "expected a JSON array"),
            ("[", "EOF while parsing"),
            ("[]", "the mix has no entries"),
            (r#"[{"method":"GET"}]"#, "missing field `path`"),
            (r#"[{"path":"/a","wieght":2}]"#, "unknown field `wieght`"),
            (
                r#"[{"path":"/a"},{"path":"a"}]"#,
                "entry 2: endpoint \"a\" must be a path starting with \"/\"",
            ),
            (r#"[{"path":"/a","weight":0}]"#, "entry 1: a weight must be at least 1"),
            (r#"[{"path":"/a","weight":-1}]"#, "invalid value"),
            (r#"[{"path":"/a","method":"GO"}]"#, "entry 1: unknown method \"GO\""),
            (
                r#"[{"path":"/a","headers":{"bad name":"v"}}]"#,
                "entry 1: bad header name \"bad name\"",
            ),
            (r#"[{"path":"/a","headers":{"x":"line\nbreak"}}]"#, "entry 1: bad value"),
        ];
        for (text, expected) in cases {
            let file = write(text);
            let name = file.path().display().to_string();
            let message = err(&format!("@{name}"));
            assert!(message.starts_with(&format!("mix file {name}")), "{text}: {message}");
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
