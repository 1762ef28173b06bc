//! Transforms (§12 of the format): rules that redact, mask or replace parts of recorded HTTP payloads, or drop whole
//! requests from the recording.
//!
//! Rules come from the builder ([`TransformRule::inbound`], [`TransformRule::outbound`]) or from `.tusk/config.yaml`
//! ([`rules_from_yaml`]). [`Transforms::new`] validates and compiles them once. Then:
//! - on the request thread, [`Transforms::inbound_drop_matches`] and [`Transforms::outbound_drop_matches`] decide
//!   whether a request is recorded at all (§12.5);
//! - on the export thread, [`Transforms::apply_server`] and [`Transforms::apply_client`] rewrite the stored values
//!   (§4.2, §5.2, §5.3) in place and return the [`TransformMetadata`] to attach to the span (§12.6).
//!
//! ```text
//! let transforms = Transforms::new([
//!     TransformRule::inbound().path("/api/auth/*").json_path("$.password").redact(),
//!     TransformRule::inbound().header("Authorization").mask(),
//!     TransformRule::inbound().path("/private/*").drop(),
//! ])?;
//! assert!(transforms.inbound_drop_matches("GET", "/private/1", &http::HeaderMap::new()));
//! ```

mod glob;
mod jsonpath;
pub(crate) mod query;
#[cfg(test)]
mod tests;
mod yaml;

pub use yaml::rules_from_yaml;

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

use crate::json::{self, Object, Value};
use glob::Glob;
use jsonpath::{JsonPath, JsonPathError};

/// The default `hashPrefix` of a `redact` action.
pub const DEFAULT_HASH_PREFIX: &str = "REDACTED_";

/// The default `maskChar` of a `mask` action.
pub const DEFAULT_MASK_CHAR: &str = "*";

/// The `reason` of every [`TransformAction`].
pub const TRANSFORM_REASON: &str = "transforms";

/// Which spans a rule sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Direction {
    /// SERVER spans: requests the application receives. The default.
    #[default]
    Inbound,
    /// CLIENT spans: requests the application sends.
    Outbound,
}

/// What part of a span a rule changes (§12.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The JSON values at this expression inside the body (request body for inbound rules, response body for
    /// outbound rules). Must start with `$`. Field label `jsonPath:E`.
    JsonPath(String),
    /// The values of this query parameter (decoded name, compared exactly) in `target`, `url` and the client
    /// `query`. Field label `queryParam:N`.
    QueryParam(String),
    /// Every request header whose name equals this case-insensitively. Field label `header:N`.
    HeaderName(String),
    /// The path of `target`, `url` and the client `path`. Field label `urlPath`.
    UrlPath,
    /// The body as text (request body for inbound rules, response body for outbound rules). Field label `body`.
    FullBody,
}

impl Target {
    /// The field label written in [`TransformAction::field`] (§12.4).
    pub fn label(&self) -> String {
        match self {
            Target::JsonPath(e) => format!("jsonPath:{e}"),
            Target::QueryParam(n) => format!("queryParam:{n}"),
            Target::HeaderName(n) => format!("header:{n}"),
            Target::UrlPath => "urlPath".to_owned(),
            Target::FullBody => "body".to_owned(),
        }
    }
}

/// What a rule does to its target (§12.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `hash_prefix` followed by the lower-case hex SHA-256 of the value's UTF-8.
    Redact {
        /// Text put before the hash. By default, [`DEFAULT_HASH_PREFIX`].
        hash_prefix: String,
    },
    /// `mask_char` repeated once per code point of the value.
    Mask {
        /// The text repeated. By default, [`DEFAULT_MASK_CHAR`].
        mask_char: String,
    },
    /// `replace_with`, whatever the value.
    Replace {
        /// The replacement. By default, `""`.
        replace_with: String,
    },
    /// Do not record matching requests at all (§12.5). The rule's target only labels it.
    Drop,
}

impl Action {
    /// `redact` with the default prefix `REDACTED_`.
    pub fn redact() -> Action {
        Action::Redact {
            hash_prefix: DEFAULT_HASH_PREFIX.to_owned(),
        }
    }

    /// `mask` with the default mask `*`.
    pub fn mask() -> Action {
        Action::Mask {
            mask_char: DEFAULT_MASK_CHAR.to_owned(),
        }
    }

    /// `replace` with `replace_with`.
    pub fn replace(replace_with: impl Into<String>) -> Action {
        Action::Replace {
            replace_with: replace_with.into(),
        }
    }

    /// The action's type.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Redact { .. } => ActionKind::Redact,
            Action::Mask { .. } => ActionKind::Mask,
            Action::Replace { .. } => ActionKind::Replace,
            Action::Drop => ActionKind::Drop,
        }
    }

    /// The action applied to one value, e.g. `redact` on `hunter2` gives
    /// `REDACTED_f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7`. `None` for [`Action::Drop`],
    /// which acts on whole requests.
    pub fn apply(&self, value: &str) -> Option<String> {
        match self {
            Action::Redact { hash_prefix } => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let digest = Sha256::digest(value.as_bytes());
                let mut out = String::with_capacity(hash_prefix.len() + 64);
                out.push_str(hash_prefix);
                for b in digest {
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0x0f)]));
                }
                Some(out)
            }
            Action::Mask { mask_char } => Some(mask_char.repeat(value.chars().count())),
            Action::Replace { replace_with } => Some(replace_with.clone()),
            Action::Drop => None,
        }
    }
}

/// The type of an action, as written in configuration and in [`TransformAction::type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `redact`
    Redact,
    /// `mask`
    Mask,
    /// `replace`
    Replace,
    /// `drop`
    Drop,
}

impl ActionKind {
    /// The configuration name: `redact`, `mask`, `replace` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Redact => "redact",
            ActionKind::Mask => "mask",
            ActionKind::Replace => "replace",
            ActionKind::Drop => "drop",
        }
    }
}

/// Which spans a rule applies to, and its target (§12.2).
///
/// Build one with [`TransformRule::inbound`] or [`TransformRule::outbound`], chain the conditions and the target, and
/// finish with an action ([`Matcher::redact`], [`Matcher::mask`], [`Matcher::replace_with`], [`Matcher::drop`], …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Matcher {
    /// SERVER (inbound) or CLIENT (outbound) spans.
    pub direction: Direction,
    /// Methods that match, case-insensitively. Empty: any method. A span with an empty method matches any list.
    pub method: Vec<String>,
    /// Glob on the path of `target` (server) or `url` (client). `None` or `""`: any path.
    pub path_pattern: Option<String>,
    /// Glob on the request `host` header, port included. `None` or `""`: any host. Outbound rules with a host pattern
    /// never match, because client spans have no `host` header.
    pub host: Option<String>,
    /// What the action changes. Required for every action but [`Action::Drop`]; a rule without it is skipped.
    pub target: Option<Target>,
}

impl Matcher {
    /// A matcher for SERVER spans, with no conditions and no target.
    pub fn inbound() -> Matcher {
        Matcher::default()
    }

    /// A matcher for CLIENT spans, with no conditions and no target.
    pub fn outbound() -> Matcher {
        Matcher {
            direction: Direction::Outbound,
            ..Matcher::default()
        }
    }

    /// Adds `method` to the methods that match (case-insensitive). By default, any method matches.
    pub fn method(mut self, method: impl Into<String>) -> Matcher {
        self.method.push(method.into());
        self
    }

    /// Matches only paths that match the glob `pattern` (§12.2: `*`, `?`, `[abc]`, `[!abc]`; whole path,
    /// case-sensitive, `*` crosses `/`). By default, any path matches.
    pub fn path(mut self, pattern: impl Into<String>) -> Matcher {
        self.path_pattern = Some(pattern.into());
        self
    }

    /// Matches only requests whose `host` header (port included) matches the glob `pattern`. By default, any host
    /// matches.
    pub fn host(mut self, pattern: impl Into<String>) -> Matcher {
        self.host = Some(pattern.into());
        self
    }

    /// Targets the JSON values at `expr` in the body. Replaces any earlier target.
    pub fn json_path(self, expr: impl Into<String>) -> Matcher {
        self.target(Target::JsonPath(expr.into()))
    }

    /// Targets the query parameter `name`. Replaces any earlier target.
    pub fn query_param(self, name: impl Into<String>) -> Matcher {
        self.target(Target::QueryParam(name.into()))
    }

    /// Targets the request header `name` (case-insensitive). Replaces any earlier target.
    pub fn header(self, name: impl Into<String>) -> Matcher {
        self.target(Target::HeaderName(name.into()))
    }

    /// Targets the URL path. Replaces any earlier target.
    pub fn url_path(self) -> Matcher {
        self.target(Target::UrlPath)
    }

    /// Targets the whole body as text. Replaces any earlier target.
    pub fn full_body(self) -> Matcher {
        self.target(Target::FullBody)
    }

    /// Sets the target. Replaces any earlier target.
    pub fn target(mut self, target: Target) -> Matcher {
        self.target = Some(target);
        self
    }

    /// Finishes the rule with `action`.
    pub fn action(self, action: Action) -> TransformRule {
        TransformRule { matcher: self, action }
    }

    /// Finishes the rule with `redact` and the default prefix `REDACTED_`.
    pub fn redact(self) -> TransformRule {
        self.action(Action::redact())
    }

    /// Finishes the rule with `redact` and `hash_prefix`.
    pub fn redact_with_prefix(self, hash_prefix: impl Into<String>) -> TransformRule {
        self.action(Action::Redact {
            hash_prefix: hash_prefix.into(),
        })
    }

    /// Finishes the rule with `mask` and the default mask `*`.
    pub fn mask(self) -> TransformRule {
        self.action(Action::mask())
    }

    /// Finishes the rule with `mask` and `mask_char` (repeated once per code point of the value).
    pub fn mask_with(self, mask_char: impl Into<String>) -> TransformRule {
        self.action(Action::Mask {
            mask_char: mask_char.into(),
        })
    }

    /// Finishes the rule with `replace` and `replace_with`.
    pub fn replace_with(self, replace_with: impl Into<String>) -> TransformRule {
        self.action(Action::replace(replace_with))
    }

    /// Finishes the rule with `drop`: matching requests are not recorded.
    pub fn drop(self) -> TransformRule {
        self.action(Action::Drop)
    }
}

/// One transform rule: a matcher and an action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformRule {
    /// Which spans, and which part of them.
    pub matcher: Matcher,
    /// What to do there.
    pub action: Action,
}

impl TransformRule {
    /// A rule from its parts.
    pub fn new(matcher: Matcher, action: Action) -> TransformRule {
        TransformRule { matcher, action }
    }

    /// Starts an inbound (SERVER span) rule: `TransformRule::inbound().json_path("$.password").redact()`.
    pub fn inbound() -> Matcher {
        Matcher::inbound()
    }

    /// Starts an outbound (CLIENT span) rule: `TransformRule::outbound().header("authorization").mask()`.
    pub fn outbound() -> Matcher {
        Matcher::outbound()
    }

    /// Checks what `init()` checks: a `jsonPath` must start with `$` and close every `[`.
    pub fn validate(&self) -> Result<(), TransformConfigError> {
        self.validate_at(None)
    }

    fn validate_at(&self, rule: Option<usize>) -> Result<(), TransformConfigError> {
        if let Some(Target::JsonPath(path)) = &self.matcher.target {
            JsonPath::parse(path).map_err(|e| json_path_error(e, rule, path))?;
        }
        Ok(())
    }
}

fn json_path_error(e: JsonPathError, rule: Option<usize>, path: &str) -> TransformConfigError {
    let path = path.to_owned();
    match e {
        JsonPathError::MissingRoot => TransformConfigError::JsonPathWithoutRoot { rule, path },
        JsonPathError::UnclosedBracket => TransformConfigError::JsonPathUnclosedBracket { rule, path },
    }
}

/// A transform rule that cannot be used. `init()` fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformConfigError {
    /// `action.type` is not one of the four types. Fix the spelling (the names are lower-case).
    #[error("{}: unknown action type `{found}`; use `redact`, `mask`, `replace` or `drop`", RuleAt(*.rule))]
    UnknownAction {
        /// Position of the rule in its list (`transforms.http` or the builder's), from 0; `None` for a single rule.
        rule: Option<usize>,
        /// The type found, as text.
        found: String,
    },
    /// `action` has no `type`. Add one.
    #[error("{}: the action has no `type`; add `type: redact` (or `mask`, `replace`, `drop`)", RuleAt(*.rule))]
    MissingActionType {
        /// Position of the rule in its list, from 0; `None` for a single rule.
        rule: Option<usize>,
    },
    /// A `jsonPath` that does not start with `$`. Prefix it, e.g. `$.password`.
    #[error("{}: jsonPath `{path}` must start with `$`, e.g. `$.password` or `$.user.email`", RuleAt(*.rule))]
    JsonPathWithoutRoot {
        /// Position of the rule in its list, from 0; `None` for a single rule.
        rule: Option<usize>,
        /// The expression.
        path: String,
    },
    /// A `jsonPath` with a `[` that is never closed. Add the `]`, e.g. `$.items[0]`.
    #[error("{}: jsonPath `{path}` has a `[` without a closing `]`; close it, e.g. `$.items[0]`", RuleAt(*.rule))]
    JsonPathUnclosedBracket {
        /// Position of the rule in its list, from 0; `None` for a single rule.
        rule: Option<usize>,
        /// The expression.
        path: String,
    },
}

/// Displays "transform rule at index N" (or "transform rule").
struct RuleAt(Option<usize>);

impl std::fmt::Display for RuleAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(i) => write!(f, "transform rule at index {i}"),
            None => f.write_str("transform rule"),
        }
    }
}

/// What transforms did to one span (§12.6): written as the span's `transformMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformMetadata {
    /// One entry per rule that applied, in application order.
    pub actions: Vec<TransformAction>,
}

/// One rule that applied to a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformAction {
    /// The action's type.
    pub r#type: ActionKind,
    /// The target label (§12.4), or `entire_span` for a drop.
    pub field: String,
    /// Always [`TRANSFORM_REASON`].
    pub reason: &'static str,
    /// For drops only: the rule's target label, or `unknown` when it has none.
    pub description: Option<String>,
}

impl TransformMetadata {
    /// The metadata as a JSON object: `{"transformed":true,"actions":[{"type":…,"field":…,"reason":…}]}`, with
    /// `description` after `reason` in drop entries.
    pub fn to_value(&self) -> Value {
        let actions = self
            .actions
            .iter()
            .map(|a| {
                let mut o = Object::with_capacity(4);
                o.push_unique("type", a.r#type.as_str());
                o.push_unique("field", a.field.as_str());
                o.push_unique("reason", a.reason);
                if let Some(d) = &a.description {
                    o.push_unique("description", d.as_str());
                }
                Value::Object(o)
            })
            .collect();
        let mut o = Object::with_capacity(2);
        o.push_unique("transformed", true);
        o.push_unique("actions", Value::Array(actions));
        Value::Object(o)
    }

    /// Appends the metadata as compact JSON (see [`TransformMetadata::to_value`]) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json::write_compact(&self.to_value(), out);
    }
}

/// Validated, compiled rules (§12.5 order: all drop rules in configuration order, then the others in configuration
/// order). Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug, Clone, Default)]
pub struct Transforms {
    inbound_drop: Vec<CompiledRule>,
    outbound_drop: Vec<CompiledRule>,
    inbound: Vec<CompiledRule>,
    outbound: Vec<CompiledRule>,
}

impl Transforms {
    /// Validates and compiles `rules`. Non-drop rules without a target are skipped (§12.2).
    ///
    /// Fails on a `jsonPath` that does not start with `$` or has an unclosed `[`; the error names the rule's position.
    pub fn new(rules: impl IntoIterator<Item = TransformRule>) -> Result<Transforms, TransformConfigError> {
        let mut t = Transforms::default();
        for (i, rule) in rules.into_iter().enumerate() {
            rule.validate_at(Some(i))?;
            let Some(compiled) = CompiledRule::new(&rule) else {
                continue;
            };
            let list = match (rule.matcher.direction, rule.action == Action::Drop) {
                (Direction::Inbound, true) => &mut t.inbound_drop,
                (Direction::Outbound, true) => &mut t.outbound_drop,
                (Direction::Inbound, false) => &mut t.inbound,
                (Direction::Outbound, false) => &mut t.outbound,
            };
            list.push(compiled);
        }
        Ok(t)
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.inbound_drop.is_empty()
            && self.outbound_drop.is_empty()
            && self.inbound.is_empty()
            && self.outbound.is_empty()
    }

    /// Whether an inbound drop rule matches the request `{method, target, headers}` (§4.1 step 3, §12.5).
    ///
    /// Called on the request thread before sampling. Returns `false` at once when there are no inbound drop rules;
    /// otherwise it allocates only when a rule has a host pattern and the `host` header is repeated or not UTF-8.
    pub fn inbound_drop_matches(&self, method: &str, target: &str, headers: &http::HeaderMap) -> bool {
        first_drop(&self.inbound_drop, method, target, headers).is_some()
    }

    /// Whether an outbound drop rule matches the request `{method, url, headers}` (§5.5), before it is sent.
    pub fn outbound_drop_matches(&self, method: &str, url: &str, headers: &http::HeaderMap) -> bool {
        first_drop(&self.outbound_drop, method, url, headers).is_some()
    }

    /// The metadata of the first drop rule of `direction` that matches the request (`target` is the request target
    /// for inbound rules and the URL for outbound ones): one `drop` entry with field `entire_span` and the rule's
    /// target label as description. `None` when no drop rule matches.
    pub fn drop_metadata(
        &self,
        direction: Direction,
        method: &str,
        target: &str,
        headers: &http::HeaderMap,
    ) -> Option<TransformMetadata> {
        let rules = match direction {
            Direction::Inbound => &self.inbound_drop,
            Direction::Outbound => &self.outbound_drop,
        };
        let rule = first_drop(rules, method, target, headers)?;
        Some(TransformMetadata {
            actions: vec![TransformAction {
                r#type: ActionKind::Drop,
                field: "entire_span".to_owned(),
                reason: TRANSFORM_REASON,
                description: Some(rule.label.clone()),
            }],
        })
    }

    /// Whether a `fullBody` or `jsonPath` rule exists for `direction` (inbound rules act on request bodies, outbound
    /// rules on response bodies). Without one, capture may stop buffering an oversize body early (§13.1).
    pub fn has_body_rules(&self, direction: Direction) -> bool {
        let rules = match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        };
        rules.iter().any(|r| r.target.is_body())
    }

    /// Applies the inbound rules to a SERVER span's stored `inputValue` (§4.2), in place. Returns the metadata when
    /// at least one rule applied. Returns `None` at once, without allocating, when there are no inbound rules.
    pub fn apply_server(&self, input: &mut Object) -> Option<TransformMetadata> {
        if self.inbound.is_empty() {
            return None;
        }
        apply_rules(&self.inbound, input, None)
    }

    /// Applies the outbound rules to a CLIENT span's stored `inputValue` (§5.2) and `outputValue` (§5.3), in place.
    /// Body targets act on the output. Returns the metadata when at least one rule applied; `None` at once, without
    /// allocating, when there are no outbound rules.
    pub fn apply_client(&self, input: &mut Object, output: &mut Object) -> Option<TransformMetadata> {
        if self.outbound.is_empty() {
            return None;
        }
        apply_rules(&self.outbound, input, Some(output))
    }
}

/// The first of `rules` (drop rules of one direction) that matches the request; the `host` header is read at most
/// once, and only if a rule needs it.
fn first_drop<'r>(
    rules: &'r [CompiledRule],
    method: &str,
    target: &str,
    headers: &http::HeaderMap,
) -> Option<&'r CompiledRule> {
    if rules.is_empty() {
        return None;
    }
    let mut host: Option<Option<Cow<'_, str>>> = None;
    rules.iter().find(|rule| {
        rule.matches(method, Some(target), || {
            host.get_or_insert_with(|| header_map_host(headers)).as_deref()
        })
    })
}

/// Runs non-drop `rules` in order. `output` is `Some` for client spans: body targets then act on it, and the
/// client-only keys (`query`, `path`) are rewritten too. Server spans' body targets act on `input`.
fn apply_rules(
    rules: &[CompiledRule],
    input: &mut Object,
    mut output: Option<&mut Object>,
) -> Option<TransformMetadata> {
    let client = output.is_some();
    let mut actions = Vec::new();
    for rule in rules {
        if !rule.matches_stored(input) {
            continue;
        }
        let applied = match &rule.target {
            CompiledTarget::HeaderName(name) => apply_header(input, name, &rule.action),
            CompiledTarget::QueryParam(name) => apply_query_param(input, name, &rule.action, client),
            CompiledTarget::UrlPath => apply_url_path(input, &rule.action, client),
            CompiledTarget::FullBody => apply_full_body(output.as_deref_mut().unwrap_or(input), &rule.action),
            CompiledTarget::JsonPath(path) => {
                apply_json_path(output.as_deref_mut().unwrap_or(input), path, &rule.action)
            }
            CompiledTarget::None => false,
        };
        if applied {
            actions.push(TransformAction {
                r#type: rule.action.kind(),
                field: rule.label.clone(),
                reason: TRANSFORM_REASON,
                description: None,
            });
        }
    }
    (!actions.is_empty()).then_some(TransformMetadata { actions })
}

/// A rule ready to match: globs compiled, `jsonPath` tokenised, label computed.
#[derive(Debug, Clone)]
struct CompiledRule {
    methods: Vec<String>,
    path: Option<Glob>,
    host: Option<Glob>,
    /// An outbound rule with a host pattern: client spans have no `host` header.
    never_matches: bool,
    target: CompiledTarget,
    action: Action,
    /// The target label, or `unknown`.
    label: String,
}

#[derive(Debug, Clone)]
enum CompiledTarget {
    /// Only drop rules may lack a target.
    None,
    JsonPath(JsonPath),
    QueryParam(String),
    HeaderName(String),
    UrlPath,
    FullBody,
}

impl CompiledTarget {
    fn is_body(&self) -> bool {
        matches!(self, CompiledTarget::JsonPath(_) | CompiledTarget::FullBody)
    }
}

impl CompiledRule {
    /// `None` for a non-drop rule without a target (skipped). The rule is already validated.
    fn new(rule: &TransformRule) -> Option<CompiledRule> {
        let m = &rule.matcher;
        let target = match &m.target {
            None if rule.action != Action::Drop => return None,
            None => CompiledTarget::None,
            Some(Target::JsonPath(e)) => CompiledTarget::JsonPath(JsonPath::parse(e).ok()?),
            Some(Target::QueryParam(n)) => CompiledTarget::QueryParam(n.clone()),
            Some(Target::HeaderName(n)) => CompiledTarget::HeaderName(n.clone()),
            Some(Target::UrlPath) => CompiledTarget::UrlPath,
            Some(Target::FullBody) => CompiledTarget::FullBody,
        };
        let glob = |p: &Option<String>| p.as_deref().filter(|p| !p.is_empty()).map(Glob::new);
        let host = glob(&m.host);
        Some(CompiledRule {
            methods: m.method.clone(),
            path: glob(&m.path_pattern),
            never_matches: m.direction == Direction::Outbound && host.is_some(),
            host,
            target,
            action: rule.action.clone(),
            label: m.target.as_ref().map_or_else(|| "unknown".to_owned(), Target::label),
        })
    }

    /// §12.2. `path_source` is the request target (server) or URL (client); `host` gives the `host` header value.
    fn matches<'h>(&self, method: &str, path_source: Option<&str>, host: impl FnOnce() -> Option<&'h str>) -> bool {
        if self.never_matches {
            return false;
        }
        if !self.methods.is_empty() && !method.is_empty() && !self.methods.iter().any(|m| eq_upper(m, method)) {
            return false;
        }
        if let Some(glob) = &self.path
            && !path_source.is_some_and(|s| glob.is_match(match_path(s)))
        {
            return false;
        }
        if let Some(glob) = &self.host
            && !host().is_some_and(|h| glob.is_match(h))
        {
            return false;
        }
        true
    }

    /// Matches against a stored `inputValue`.
    fn matches_stored(&self, input: &Object) -> bool {
        let method = input.get("method").and_then(Value::as_str).unwrap_or("");
        let source = input
            .get("target")
            .and_then(Value::as_str)
            .or_else(|| input.get("url").and_then(Value::as_str));
        self.matches(method, source, || stored_host(input))
    }
}

/// The value of the first `host` header (name compared case-insensitively) in a stored value.
fn stored_host(input: &Object) -> Option<&str> {
    let headers = input.get("headers")?.as_object()?;
    headers
        .iter()
        .find_map(|(k, v)| if eq_lower(k, "host") { v.as_str() } else { None })
}

/// The `host` header as §4.2 stores it: UTF-8 or else latin-1, repeated values joined with `", "`.
fn header_map_host(headers: &http::HeaderMap) -> Option<Cow<'_, str>> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(header_text(first.as_bytes()));
    };
    let mut joined = String::new();
    for v in [first, second].into_iter().chain(values) {
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(&header_text(v.as_bytes()));
    }
    Some(Cow::Owned(joined))
}

fn header_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Python `str.lower()` equality, without allocating.
fn eq_lower(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Python `str.upper()` equality, without allocating.
fn eq_upper(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_uppercase)
            .eq(b.chars().flat_map(char::to_uppercase))
    }
}

/// The parts of a URL or request target, split as Python's `urllib.parse.urlsplit` splits them. Ranges index the
/// original string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlParts {
    /// Whether there is an authority (`//host`) before the path.
    has_authority: bool,
    path: Range<usize>,
    /// After the `?`, up to the `#` or the end.
    query: Option<Range<usize>>,
}

fn split_url(s: &str) -> UrlParts {
    let bytes = s.as_bytes();
    let mut pos = 0;
    if let Some(colon) = s.find(':')
        && colon > 0
        && bytes[0].is_ascii_alphabetic()
        && bytes[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        pos = colon + 1;
    }
    let has_authority = s[pos..].starts_with("//");
    if has_authority {
        pos = s[pos + 2..].find(['/', '?', '#']).map_or(s.len(), |i| pos + 2 + i);
    }
    let end = s[pos..].find('#').map_or(s.len(), |i| pos + i);
    match s[pos..end].find('?') {
        Some(q) => UrlParts {
            has_authority,
            path: pos..pos + q,
            query: Some(pos + q + 1..end),
        },
        None => UrlParts {
            has_authority,
            path: pos..end,
            query: None,
        },
    }
}

/// The path that `pathPattern` is matched against: the path component, or when it is empty the whole string up to
/// the first `?`.
fn match_path(s: &str) -> &str {
    let path = &s[split_url(s).path];
    if path.is_empty() {
        s.split('?').next().unwrap_or(s)
    } else {
        path
    }
}

fn apply_text(action: &Action, value: &str) -> String {
    action.apply(value).unwrap_or_else(|| value.to_owned())
}

fn apply_header(input: &mut Object, name: &str, action: &Action) -> bool {
    let Some(headers) = input.get_mut("headers").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut applied = false;
    for (key, value) in headers.iter_mut() {
        if let Value::String(s) = value
            && eq_lower(key, name)
        {
            *s = apply_text(action, s);
            applied = true;
        }
    }
    applied
}

fn apply_query_param(input: &mut Object, name: &str, action: &Action, client: bool) -> bool {
    let mut applied = false;
    for key in ["target", "url"] {
        if let Some(Value::String(s)) = input.get_mut(key)
            && let Some(rewritten) = rewrite_query(s, name, action)
        {
            *s = rewritten;
            applied = true;
        }
    }
    if client && let Some(Value::Object(q)) = input.get_mut("query") {
        match q.get_mut(name) {
            Some(Value::String(s)) => {
                *s = apply_text(action, s);
                applied = true;
            }
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::String(s) = item {
                        *s = apply_text(action, s);
                        applied = true;
                    }
                }
            }
            _ => {}
        }
    }
    applied
}

/// `s` with the values of parameter `name` transformed and the whole query re-encoded; `None` when no pair has
/// that name.
fn rewrite_query(s: &str, name: &str, action: &Action) -> Option<String> {
    let query = split_url(s).query.filter(|q| !q.is_empty())?;
    let mut pairs = query::parse_pairs(&s[query.clone()]);
    let mut hit = false;
    for (key, value) in &mut pairs {
        if key == name {
            *value = apply_text(action, value);
            hit = true;
        }
    }
    if !hit {
        return None;
    }
    let encoded = query::urlencode(&pairs);
    let mut out = String::with_capacity(s.len() - query.len() + encoded.len());
    out.push_str(&s[..query.start]);
    out.push_str(&encoded);
    out.push_str(&s[query.end..]);
    Some(out)
}

fn apply_url_path(input: &mut Object, action: &Action, client: bool) -> bool {
    let mut applied = false;
    let mut new_client_path = None;
    for key in ["target", "url"] {
        if let Some(Value::String(s)) = input.get_mut(key)
            && let Some((rewritten, new_path)) = rewrite_path(s, action)
        {
            *s = rewritten;
            applied = true;
            if key == "url" {
                new_client_path = Some(new_path);
            }
        }
    }
    if client && let Some(path) = new_client_path {
        input.insert("path", path);
    }
    applied
}

/// `s` with its path transformed, and the new path; `None` when the path is empty or the action leaves it as it is.
fn rewrite_path(s: &str, action: &Action) -> Option<(String, String)> {
    let parts = split_url(s);
    let path = &s[parts.path.clone()];
    if path.is_empty() {
        return None;
    }
    let new_path = apply_text(action, path);
    if new_path == path {
        return None;
    }
    let mut out = String::with_capacity(s.len() + new_path.len() + 1);
    out.push_str(&s[..parts.path.start]);
    if parts.has_authority && !new_path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&new_path);
    out.push_str(&s[parts.path.end..]);
    Some((out, new_path))
}

fn decode_body(holder: &Object) -> Option<Vec<u8>> {
    BASE64.decode(holder.get("body")?.as_str()?).ok()
}

fn store_body(holder: &mut Object, bytes: &[u8]) {
    holder.insert("body", BASE64.encode(bytes));
    holder.insert("bodySize", i64::try_from(bytes.len()).unwrap_or(i64::MAX));
}

fn apply_full_body(holder: &mut Object, action: &Action) -> bool {
    let Some(bytes) = decode_body(holder) else { return false };
    let text: String = bytes.utf8_chunks().map(|chunk| chunk.valid()).collect();
    let new_text = apply_text(action, &text);
    store_body(holder, new_text.as_bytes());
    true
}

fn apply_json_path(holder: &mut Object, path: &JsonPath, action: &Action) -> bool {
    let Some(bytes) = decode_body(holder) else { return false };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    let Ok(mut doc) = json::parse(text) else { return false };
    let matched = path.for_each_match_mut(&mut doc, &mut |v| {
        let new = match &*v {
            Value::String(s) => apply_text(action, s),
            other => apply_text(action, &value_text(other)),
        };
        *v = Value::String(new);
    });
    if matched == 0 {
        return false;
    }
    let mut out = Vec::with_capacity(bytes.len());
    json::write_ascii(&doc, &mut out);
    store_body(holder, &out);
    true
}

/// `text(value)` of §12.4: strings as they are, `True` / `False` / `None`, numbers in their §7 text, objects and
/// arrays as compact JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => {
            let mut out = Vec::new();
            json::write_compact(other, &mut out);
            String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
    }
}
