//! Reading rules from `.tusk/config.yaml` (§12.1 of the format).

use serde_yaml::Value as Yaml;

use super::{
    Action, DEFAULT_HASH_PREFIX, DEFAULT_MASK_CHAR, Direction, Matcher, Target, TransformConfigError, TransformRule,
};
use crate::json::{self, Value};

/// Reads the rules of `transforms.http` from a whole parsed `.tusk/config.yaml` document.
///
/// Shape and leniency, following the Python SDK:
/// - A document without `transforms`, or whose `transforms.http` is not a list, has no rules. List items that are not
///   mappings, and rules whose `matcher` or `action` is missing, empty or not a mapping, are skipped.
/// - `direction`: `"outbound"` means CLIENT spans; anything else, or nothing, means inbound.
/// - `method`: a string (one method) or a list (its non-string items are ignored).
/// - `pathPattern`, `host`: strings; an empty string means no condition.
/// - The target is the first present of `jsonPath`, `queryParam`, `headerName` (non-empty strings), `urlPath`,
///   `fullBody` (any true value, Python truthiness).
/// - `hashPrefix`, `maskChar`, `replaceWith`: a YAML scalar is converted Python-style (numbers as in §7, `True` /
///   `False`, explicit null as `None`); a missing key, a list or a mapping gives the default.
///
/// Keys of the wrong type are otherwise ignored; they are not reported.
///
/// # Errors
///
/// An unknown or missing `action.type`, and a `jsonPath` that does not start with `$` or has an unclosed `[`. The
/// error names the rule's index in `transforms.http`.
pub fn rules_from_yaml(doc: &Yaml) -> Result<Vec<TransformRule>, TransformConfigError> {
    let Some(list) = field(doc, "transforms")
        .and_then(|t| field(t, "http"))
        .and_then(Yaml::as_sequence)
    else {
        return Ok(Vec::new());
    };
    let mut rules = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let (Some(matcher), Some(action)) = (non_empty_mapping(item, "matcher"), non_empty_mapping(item, "action"))
        else {
            continue;
        };
        let rule = TransformRule {
            action: action_from(action, i)?,
            matcher: matcher_from(matcher),
        };
        rule.validate_at(Some(i))?;
        rules.push(rule);
    }
    Ok(rules)
}

fn untag(mut v: &Yaml) -> &Yaml {
    while let Yaml::Tagged(t) = v {
        v = &t.value;
    }
    v
}

fn field<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    untag(v).get(key).map(untag)
}

fn non_empty_mapping<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    field(v, key).filter(|m| m.as_mapping().is_some_and(|m| !m.is_empty()))
}

fn non_empty_str<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    field(v, key).and_then(Yaml::as_str).filter(|s| !s.is_empty())
}

/// Python truthiness of a YAML value.
fn truthy(v: &Yaml) -> bool {
    match untag(v) {
        Yaml::Null => false,
        Yaml::Bool(b) => *b,
        Yaml::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Yaml::String(s) => !s.is_empty(),
        Yaml::Sequence(s) => !s.is_empty(),
        Yaml::Mapping(m) => !m.is_empty(),
        Yaml::Tagged(t) => truthy(&t.value),
    }
}

/// Python `str()` of a YAML scalar; `None` for lists and mappings.
fn python_str(v: &Yaml) -> Option<String> {
    match untag(v) {
        Yaml::Null => Some("None".to_owned()),
        Yaml::Bool(true) => Some("True".to_owned()),
        Yaml::Bool(false) => Some("False".to_owned()),
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(number_text(n)),
        Yaml::Sequence(_) | Yaml::Mapping(_) | Yaml::Tagged(_) => None,
    }
}

/// Integers in decimal, floats in their §7 text; non-finite floats as Python writes them (`inf`, `-inf`, `nan`).
fn number_text(n: &serde_yaml::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.is_nan() => "nan".to_owned(),
        Some(f) if f.is_infinite() => if f > 0.0 { "inf" } else { "-inf" }.to_owned(),
        Some(f) => {
            let mut out = Vec::new();
            json::write_compact(&Value::float(f), &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        None => n.to_string(),
    }
}

fn string_setting(action: &Yaml, key: &str, default: &str) -> String {
    field(action, key)
        .and_then(python_str)
        .unwrap_or_else(|| default.to_owned())
}

fn action_from(action: &Yaml, rule: usize) -> Result<Action, TransformConfigError> {
    let rule = Some(rule);
    match field(action, "type") {
        None | Some(Yaml::Null) => Err(TransformConfigError::MissingActionType { rule }),
        Some(ty) => match ty.as_str() {
            Some("redact") => Ok(Action::Redact {
                hash_prefix: string_setting(action, "hashPrefix", DEFAULT_HASH_PREFIX),
            }),
            Some("mask") => Ok(Action::Mask {
                mask_char: string_setting(action, "maskChar", DEFAULT_MASK_CHAR),
            }),
            Some("replace") => Ok(Action::Replace {
                replace_with: string_setting(action, "replaceWith", ""),
            }),
            Some("drop") => Ok(Action::Drop),
            _ => Err(TransformConfigError::UnknownAction {
                rule,
                found: python_str(ty).unwrap_or_else(|| format!("{ty:?}")),
            }),
        },
    }
}

fn matcher_from(m: &Yaml) -> Matcher {
    let direction = match field(m, "direction").and_then(Yaml::as_str) {
        Some("outbound") => Direction::Outbound,
        _ => Direction::Inbound,
    };
    let method = match field(m, "method") {
        Some(Yaml::String(s)) => vec![s.clone()],
        Some(Yaml::Sequence(items)) => items
            .iter()
            .filter_map(|v| untag(v).as_str())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let target = if let Some(e) = non_empty_str(m, "jsonPath") {
        Some(Target::JsonPath(e.to_owned()))
    } else if let Some(n) = non_empty_str(m, "queryParam") {
        Some(Target::QueryParam(n.to_owned()))
    } else if let Some(n) = non_empty_str(m, "headerName") {
        Some(Target::HeaderName(n.to_owned()))
    } else if field(m, "urlPath").is_some_and(truthy) {
        Some(Target::UrlPath)
    } else if field(m, "fullBody").is_some_and(truthy) {
        Some(Target::FullBody)
    } else {
        None
    };
    Matcher {
        direction,
        method,
        path_pattern: non_empty_str(m, "pathPattern").map(str::to_owned),
        host: non_empty_str(m, "host").map(str::to_owned),
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<TransformRule>, TransformConfigError> {
        let doc: Yaml = serde_yaml::from_str(text).expect("valid YAML");
        rules_from_yaml(&doc)
    }

    #[track_caller]
    fn check(text: &str, expected: &[TransformRule]) {
        assert_eq!(parse(text).expect("valid rules"), expected);
    }

    #[track_caller]
    fn check_err(text: &str, expected: TransformConfigError, message: &str) {
        let err = parse(text).expect_err("invalid rules");
        assert_eq!(err, expected);
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn format_example_12_1() {
        check(
            r#"
transforms:
  http:
    - matcher:
        direction: inbound         # "outbound" = CLIENT spans; anything else, or missing, = inbound (SERVER spans)
        method: [POST]             # optional; case-insensitive; a single string is taken as a one-element list
        pathPattern: "/api/auth/*" # optional shell glob on the path
        host: "127.0.0.1:*"        # optional shell glob on the request Host header
        jsonPath: "$.password"     # the target: one of jsonPath, queryParam, headerName, urlPath: true, fullBody: true
      action:
        type: redact               # redact, mask, replace or drop
        hashPrefix: "REDACTED_"    # redact only (this is the default)
        # maskChar: "*"            # mask only (default "*")
        # replaceWith: "x"         # replace only (default "")
"#,
            &[TransformRule::inbound()
                .method("POST")
                .path("/api/auth/*")
                .host("127.0.0.1:*")
                .json_path("$.password")
                .redact()],
        );
    }

    #[test]
    fn seed_benchmark_config_15_3() {
        check(
            r#"
transforms:
  http:
    - matcher: { direction: inbound, pathPattern: "/api/auth/login", jsonPath: "$.password" }
      action: { type: redact }
    - matcher: { direction: inbound, pathPattern: "/api/users", jsonPath: "$.ssn" }
      action: { type: redact }
    - matcher: { direction: inbound, pathPattern: "/api/users", jsonPath: "$.creditCard" }
      action: { type: mask, maskChar: "*" }
    - matcher: { direction: inbound, jsonPath: "$.email" }
      action: { type: redact }
"#,
            &[
                TransformRule::inbound()
                    .path("/api/auth/login")
                    .json_path("$.password")
                    .redact(),
                TransformRule::inbound().path("/api/users").json_path("$.ssn").redact(),
                TransformRule::inbound()
                    .path("/api/users")
                    .json_path("$.creditCard")
                    .mask(),
                TransformRule::inbound().json_path("$.email").redact(),
            ],
        );
    }

    #[test]
    fn method_direction_and_target_priority() {
        check(
            r##"
transforms:
  http:
    - matcher: { direction: outbound, method: get, queryParam: token, headerName: x, fullBody: true }
      action: { type: mask, maskChar: "#" }
    - matcher: { direction: Outbound, method: [GET, 7, post], urlPath: true, fullBody: true }
      action: { type: drop }
    - matcher: { jsonPath: "", queryParam: "", headerName: Authorization, pathPattern: "", host: "" }
      action: { type: replace }
    - matcher: { urlPath: false, fullBody: "yes" }
      action: { type: redact, hashPrefix: "H:" }
"##,
            &[
                TransformRule::outbound()
                    .method("get")
                    .query_param("token")
                    .mask_with("#"),
                TransformRule::inbound().method("GET").method("post").url_path().drop(),
                TransformRule::inbound().header("Authorization").replace_with(""),
                TransformRule::inbound().full_body().redact_with_prefix("H:"),
            ],
        );
    }

    #[test]
    fn replace_with_scalars_are_converted_python_style() {
        let doc = r#"
transforms:
  http:
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: 42 } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: 1.0 } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: 1.0e-5 } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: true } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: false } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: null } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: ~ } }
    - { matcher: { fullBody: true }, action: { type: replace } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: "x" } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: [a] } }
    - { matcher: { fullBody: true }, action: { type: replace, replaceWith: .inf } }
"#;
        let got: Vec<String> = parse(doc)
            .expect("valid rules")
            .into_iter()
            .map(|r| match r.action {
                Action::Replace { replace_with } => replace_with,
                other => panic!("not a replace: {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "42", "1.0", "1e-05", "True", "False", "None", "None", "", "x", "", "inf"
            ]
        );
    }

    #[test]
    fn other_shapes_give_no_rules_or_skip_rules() {
        check("", &[]);
        check("service: {id: x}", &[]);
        check("transforms: {}", &[]);
        check("transforms: {http: {matcher: {}}}", &[]);
        check("transforms: [{matcher: {fullBody: true}, action: {type: redact}}]", &[]);
        check(
            r#"
transforms:
  http:
    - just a string
    - { action: { type: redact } }
    - { matcher: { fullBody: true } }
    - { matcher: {}, action: { type: redact } }
    - { matcher: { fullBody: true }, action: {} }
    - { matcher: "fullBody", action: { type: redact } }
    - { matcher: { fullBody: true }, action: { type: redact } }
"#,
            &[TransformRule::inbound().full_body().redact()],
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_fix() {
        check_err(
            "transforms: {http: [{matcher: {fullBody: true}}, {matcher: {fullBody: true}, action: {type: hash}}]}",
            TransformConfigError::UnknownAction {
                rule: Some(1),
                found: "hash".to_owned(),
            },
            "transform rule at index 1: unknown action type `hash`; use `redact`, `mask`, `replace` or `drop`",
        );
        check_err(
            "transforms: {http: [{matcher: {fullBody: true}, action: {type: Redact}}]}",
            TransformConfigError::UnknownAction {
                rule: Some(0),
                found: "Redact".to_owned(),
            },
            "transform rule at index 0: unknown action type `Redact`; use `redact`, `mask`, `replace` or `drop`",
        );
        check_err(
            "transforms: {http: [{matcher: {urlPath: true}, action: {maskChar: x}}]}",
            TransformConfigError::MissingActionType { rule: Some(0) },
            "transform rule at index 0: the action has no `type`; add `type: redact` (or `mask`, `replace`, `drop`)",
        );
        check_err(
            "transforms: {http: [{matcher: {jsonPath: password}, action: {type: redact}}]}",
            TransformConfigError::JsonPathWithoutRoot {
                rule: Some(0),
                path: "password".to_owned(),
            },
            "transform rule at index 0: jsonPath `password` must start with `$`, e.g. `$.password` or `$.user.email`",
        );
        check_err(
            "transforms: {http: [{matcher: {jsonPath: '$.items[0'}, action: {type: drop}}]}",
            TransformConfigError::JsonPathUnclosedBracket {
                rule: Some(0),
                path: "$.items[0".to_owned(),
            },
            "transform rule at index 0: jsonPath `$.items[0` has a `[` without a closing `]`; close it, e.g. `$.items[0]`",
        );
    }

    #[test]
    fn unknown_action_fails_even_without_a_target() {
        // T8: `init()` fails on `type: hash`, whatever the matcher.
        let err = parse("transforms: {http: [{matcher: {method: GET}, action: {type: hash}}]}").expect_err("fails");
        assert!(matches!(err, TransformConfigError::UnknownAction { rule: Some(0), .. }));
        let err = parse("transforms: {http: [{matcher: {method: GET}, action: {type: 3}}]}").expect_err("fails");
        assert_eq!(
            err,
            TransformConfigError::UnknownAction {
                rule: Some(0),
                found: "3".to_owned()
            }
        );
    }
}
