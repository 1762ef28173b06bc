//! Engine tests: the transform cases of §16.4, the examples of §12, and matching edge cases.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

use super::*;

fn transforms(rules: impl IntoIterator<Item = TransformRule>) -> Transforms {
    Transforms::new(rules).expect("valid rules")
}

fn obj(text: &str) -> Object {
    match json::parse(text).expect("valid JSON") {
        Value::Object(o) => o,
        other => panic!("not an object: {other:?}"),
    }
}

#[track_caller]
fn at<'a>(o: &'a Object, key: &str) -> &'a Value {
    o.get(key).unwrap_or_else(|| panic!("no key {key:?}"))
}

#[track_caller]
fn at2<'a>(o: &'a Object, key: &str, inner: &str) -> &'a Value {
    at(at(o, key).as_object().expect("an object"), inner)
}

fn text(v: &Value) -> String {
    let mut out = Vec::new();
    json::write_compact(v, &mut out);
    String::from_utf8(out).expect("UTF-8")
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// A stored server `inputValue` shaped as §4.2.
fn server_input(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Object {
    let mut o = Object::new();
    o.insert("method", method);
    o.insert("url", format!("http://127.0.0.1:5000{target}"));
    o.insert("target", target);
    o.insert(
        "headers",
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect::<Object>(),
    );
    o.insert("httpVersion", "1.1");
    if let Some(body) = body {
        o.insert("body", b64(body));
        o.insert("bodySize", i64::try_from(body.len()).expect("small"));
    }
    o
}

fn metadata_json(m: &TransformMetadata) -> String {
    let mut out = Vec::new();
    m.write_json(&mut out);
    String::from_utf8(out).expect("UTF-8")
}

fn body_text(holder: &Object) -> String {
    let bytes = BASE64
        .decode(holder.get("body").and_then(Value::as_str).expect("body"))
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// Applies `rules` to a server request with `body` and checks the stored body, `bodySize` and metadata.
#[track_caller]
fn check_server_body(rules: Vec<TransformRule>, body: &[u8], expected_body: &str, expected_metadata: &str) {
    let t = transforms(rules);
    let mut input = server_input(
        "POST",
        "/api/auth/login",
        &[("content-type", "application/json")],
        Some(body),
    );
    let metadata = t.apply_server(&mut input).expect("a rule applies");
    assert_eq!(body_text(&input), expected_body);
    assert_eq!(
        input.get("bodySize"),
        Some(&Value::Int(i64::try_from(expected_body.len()).expect("small")))
    );
    assert_eq!(metadata_json(&metadata), expected_metadata);
}

/// Applies `rules` to a server request with `body` and checks that nothing changed.
#[track_caller]
fn check_server_body_untouched(rules: Vec<TransformRule>, body: &[u8]) {
    let t = transforms(rules);
    let mut input = server_input("POST", "/api/auth/login", &[], Some(body));
    let before = input.clone();
    assert_eq!(t.apply_server(&mut input), None);
    assert_eq!(input, before);
}

fn meta(kind: &str, field: &str) -> String {
    format!(r#"{{"transformed":true,"actions":[{{"type":"{kind}","field":"{field}","reason":"transforms"}}]}}"#)
}

// §16.4 T1: inbound drop rule on the request path.
#[test]
fn t1_inbound_drop_rule_matches_on_the_request_thread() {
    let t = transforms([TransformRule::inbound().path("/private/*").drop()]);
    let headers = HeaderMap::new();
    assert!(t.inbound_drop_matches("GET", "/private/123", &headers));
    assert!(t.inbound_drop_matches("GET", "/private/123?x=1", &headers));
    assert!(!t.inbound_drop_matches("GET", "/public/123", &headers));
    assert!(!t.outbound_drop_matches("GET", "http://h/private/123", &headers));
    let m = t
        .drop_metadata(Direction::Inbound, "GET", "/private/123", &headers)
        .expect("dropped");
    assert_eq!(
        metadata_json(&m),
        r#"{"transformed":true,"actions":[{"type":"drop","field":"entire_span","reason":"transforms","description":"unknown"}]}"#
    );
    assert_eq!(t.drop_metadata(Direction::Inbound, "GET", "/public", &headers), None);
    // Drop rules never match at finalisation.
    let mut input = server_input("GET", "/private/123", &[], None);
    assert_eq!(t.apply_server(&mut input), None);
}

// §16.4 T2.
#[test]
fn t2_json_path_mask() {
    check_server_body(
        vec![TransformRule::inbound().json_path("$.password").mask_with("#")],
        br#"{"username":"alice","password":"hunter2"}"#,
        "{\"username\":\"alice\",\"password\":\"#######\"}",
        &meta("mask", "jsonPath:$.password"),
    );
}

// §16.4 T3.
#[test]
fn t3_json_path_replace() {
    check_server_body(
        vec![
            TransformRule::inbound()
                .json_path("$.password")
                .replace_with("redacted"),
        ],
        br#"{"username":"alice","password":"hunter2"}"#,
        r#"{"username":"alice","password":"redacted"}"#,
        &meta("replace", "jsonPath:$.password"),
    );
}

// §16.4 T4 and §17.3.
#[test]
fn t4_redact_value() {
    let expected = "REDACTED_f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";
    assert_eq!(Action::redact().apply("hunter2").as_deref(), Some(expected));
    check_server_body(
        vec![TransformRule::inbound().json_path("$.password").redact()],
        br#"{"password":"hunter2"}"#,
        &format!(r#"{{"password":"{expected}"}}"#),
        &meta("redact", "jsonPath:$.password"),
    );
    let custom = Action::Redact {
        hash_prefix: "P_".to_owned(),
    };
    assert_eq!(
        custom.apply("").as_deref(),
        Some("P_e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

// §16.4 T5.
#[test]
fn t5_header_redact_is_case_insensitive() {
    let t = transforms([TransformRule::inbound().header("Authorization").redact()]);
    let mut input = server_input("GET", "/a", &[("host", "h"), ("authorization", "Bearer x")], None);
    let m = t.apply_server(&mut input).expect("applies");
    assert_eq!(
        text(at(&input, "headers")),
        r#"{"host":"h","authorization":"REDACTED_b937a6fd6074f3650930dd9a8c3ea51fa502846a5301d74c252c768aef76dcda"}"#
    );
    assert_eq!(metadata_json(&m), meta("redact", "header:Authorization"));
    // No such header: nothing applies.
    let mut input = server_input("GET", "/a", &[("host", "h")], None);
    assert_eq!(t.apply_server(&mut input), None);
}

// §16.4 T6.
#[test]
fn t6_query_param_mask_rewrites_target_and_url() {
    let t = transforms([TransformRule::inbound().query_param("token").mask()]);
    let mut input = server_input("GET", "/a?token=abc&b=1", &[], None);
    let m = t.apply_server(&mut input).expect("applies");
    assert_eq!(*at(&input, "target"), Value::from("/a?token=%2A%2A%2A&b=1"));
    assert_eq!(
        *at(&input, "url"),
        Value::from("http://127.0.0.1:5000/a?token=%2A%2A%2A&b=1")
    );
    assert_eq!(metadata_json(&m), meta("mask", "queryParam:token"));
}

// §16.4 T7: outbound drop rule, checked before the request is sent.
#[test]
fn t7_outbound_drop_rule_matches_the_url() {
    let t = transforms([TransformRule::outbound()
        .path("/upstream/*")
        .method("post")
        .query_param("page")
        .drop()]);
    let headers = HeaderMap::new();
    let url = "http://127.0.0.1:7001/upstream/items?page=2&tag=a";
    assert!(t.outbound_drop_matches("POST", url, &headers));
    assert!(!t.outbound_drop_matches("GET", url, &headers));
    assert!(!t.inbound_drop_matches("POST", "/upstream/items", &headers));
    let m = t
        .drop_metadata(Direction::Outbound, "POST", url, &headers)
        .expect("dropped");
    assert_eq!(
        metadata_json(&m),
        r#"{"transformed":true,"actions":[{"type":"drop","field":"entire_span","reason":"transforms","description":"queryParam:page"}]}"#
    );
}

// §16.4 T9.
#[test]
fn t9_double_dot_is_not_recursive_descent() {
    check_server_body(
        vec![TransformRule::inbound().json_path("$..password").mask()],
        br#"{"user":{"password":"x"},"password":"hunter2"}"#,
        r#"{"user":{"password":"x"},"password":"*******"}"#,
        &meta("mask", "jsonPath:$..password"),
    );
}

// §12.6 worked example, on the request of §4.5.
#[test]
fn worked_example_12_6() {
    let t = transforms([TransformRule::inbound().json_path("$.password").redact()]);
    let mut input = obj(
        r#"{"method":"POST","url":"http://127.0.0.1:5000/api/auth/login","target":"/api/auth/login","headers":{"host":"127.0.0.1:5000","content-type":"application/json","content-length":"51","accept":"*/*"},"httpVersion":"1.1","remoteAddress":"127.0.0.1","remotePort":54321,"body":"eyJlbWFpbCI6InRlc3RAZXhhbXBsZS5jb20iLCJwYXNzd29yZCI6InNlY3JldDEyMyJ9","bodySize":51}"#,
    );
    let m = t.apply_server(&mut input).expect("applies");
    assert_eq!(
        *at(&input, "body"),
        Value::from(
            "eyJlbWFpbCI6InRlc3RAZXhhbXBsZS5jb20iLCJwYXNzd29yZCI6IlJFREFDVEVEX2ZjZjczMGI2ZDk1MjM2ZWNkM2M5ZmMyZDkyZDdiNmIyYmIwNjE1MTQ5NjFhZWMwNDFkNmM3YTcxOTJmNTkyZTQifQ=="
        )
    );
    assert_eq!(*at(&input, "bodySize"), Value::Int(115));
    assert_eq!(
        metadata_json(&m),
        r#"{"transformed":true,"actions":[{"type":"redact","field":"jsonPath:$.password","reason":"transforms"}]}"#
    );
    // Every other key is unchanged, in its place.
    let keys: Vec<&str> = input.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "method",
            "url",
            "target",
            "headers",
            "httpVersion",
            "remoteAddress",
            "remotePort",
            "body",
            "bodySize"
        ]
    );
}

// §12.4 queryParam example.
#[test]
fn query_param_example_rebuilds_the_whole_query() {
    let t = transforms([TransformRule::inbound().query_param("token").mask()]);
    let mut input = server_input("GET", "/p?token=abc&b=1&e=&sp=a+b%20c#frag", &[], None);
    t.apply_server(&mut input).expect("applies");
    assert_eq!(
        *at(&input, "target"),
        Value::from("/p?token=%2A%2A%2A&b=1&e=&sp=a+b+c#frag")
    );
    assert_eq!(
        *at(&input, "url"),
        Value::from("http://127.0.0.1:5000/p?token=%2A%2A%2A&b=1&e=&sp=a+b+c#frag")
    );
}

#[test]
fn query_param_edge_cases() {
    let t = transforms([TransformRule::inbound().query_param("t k").replace_with("é")]);
    // Decoded names are compared; a pair without `=` has value "" and is rewritten as `k=`.
    let mut input = server_input("GET", "/p?t+k&t%20k=1&&x", &[], None);
    t.apply_server(&mut input).expect("applies");
    assert_eq!(*at(&input, "target"), Value::from("/p?t+k=%C3%A9&t+k=%C3%A9&x="));
    // No such parameter, or no query: nothing changes and nothing is reported.
    for target in ["/p?a=1&tk=2", "/p", "/p?"] {
        let mut input = server_input("GET", target, &[], None);
        assert_eq!(t.apply_server(&mut input), None, "{target}");
        assert_eq!(*at(&input, "target"), Value::from(target));
    }
}

#[test]
fn query_param_on_client_spans_also_rewrites_query_entries() {
    let t = transforms([TransformRule::outbound().query_param("tag").mask()]);
    let mut input = obj(
        r#"{"method":"GET","url":"http://127.0.0.1:7001/up?page=2&tag=ab&tag=c","protocol":"http","path":"/up","headers":{},"query":{"page":"2","tag":["ab","c"]}}"#,
    );
    let mut output = obj(r#"{"statusCode":200}"#);
    let m = t.apply_client(&mut input, &mut output).expect("applies");
    assert_eq!(
        *at(&input, "url"),
        Value::from("http://127.0.0.1:7001/up?page=2&tag=%2A%2A&tag=%2A")
    );
    assert_eq!(text(at(&input, "query")), r#"{"page":"2","tag":["**","*"]}"#);
    assert!(!input.contains_key("target"));
    assert_eq!(metadata_json(&m), meta("mask", "queryParam:tag"));
}

// §12.4 urlPath example.
#[test]
fn url_path_example() {
    let t = transforms([TransformRule::outbound().url_path().replace_with("REDACTED_x")]);
    let mut input =
        obj(r#"{"method":"GET","url":"https://api.example.com/a?x=1","path":"/a","headers":{},"query":{"x":"1"}}"#);
    let mut output = Object::new();
    let m = t.apply_client(&mut input, &mut output).expect("applies");
    assert_eq!(
        *at(&input, "url"),
        Value::from("https://api.example.com/REDACTED_x?x=1")
    );
    assert_eq!(*at(&input, "path"), Value::from("REDACTED_x"));
    assert_eq!(metadata_json(&m), meta("replace", "urlPath"));
}

#[test]
fn url_path_on_server_spans() {
    let t = transforms([TransformRule::inbound().url_path().redact()]);
    let mut input = server_input("GET", "/a/b?x=1", &[], None);
    t.apply_server(&mut input).expect("applies");
    let hashed = "/REDACTED_662b7b62a798bb2d53e67cad9778e12e48297c79eae98d3aae7197be825d768f";
    assert_eq!(*at(&input, "target"), Value::from(format!("{}?x=1", &hashed[1..])));
    assert_eq!(
        *at(&input, "url"),
        Value::from(format!("http://127.0.0.1:5000{hashed}?x=1"))
    );
    assert!(!input.contains_key("path"), "server spans have no path key");

    // A result starting with `/` gets no extra one.
    let t = transforms([TransformRule::inbound().url_path().replace_with("/x")]);
    let mut input = server_input("GET", "/a?q", &[], None);
    t.apply_server(&mut input).expect("applies");
    assert_eq!(*at(&input, "target"), Value::from("/x?q"));
    assert_eq!(*at(&input, "url"), Value::from("http://127.0.0.1:5000/x?q"));

    // A result equal to the path changes nothing and is not reported.
    let t = transforms([TransformRule::inbound().url_path().replace_with("/a")]);
    let mut input = server_input("GET", "/a?q", &[], None);
    assert_eq!(t.apply_server(&mut input), None);
    assert_eq!(*at(&input, "target"), Value::from("/a?q"));
}

#[test]
fn mask_counts_code_points() {
    assert_eq!(Action::mask().apply("héllo").as_deref(), Some("*****"));
    assert_eq!(
        Action::Mask {
            mask_char: "ab".to_owned()
        }
        .apply("é😀")
        .as_deref(),
        Some("abab")
    );
    assert_eq!(Action::mask().apply("").as_deref(), Some(""));
    let t = transforms([TransformRule::inbound().header("x-name").mask_with("#")]);
    let mut input = server_input("GET", "/", &[("x-name", "héllo")], None);
    t.apply_server(&mut input).expect("applies");
    assert_eq!(*at2(&input, "headers", "x-name"), Value::from("#####"));
}

#[test]
fn replace_defaults_to_empty_and_drop_does_not_transform_text() {
    assert_eq!(Action::replace("").apply("secret").as_deref(), Some(""));
    assert_eq!(Action::Drop.apply("secret"), None);
    let doc: serde_yaml::Value =
        serde_yaml::from_str("transforms: {http: [{matcher: {headerName: x-k}, action: {type: replace}}]}")
            .expect("YAML");
    let t = transforms(rules_from_yaml(&doc).expect("valid"));
    let mut input = server_input("GET", "/", &[("X-K", "v")], None);
    t.apply_server(&mut input).expect("applies");
    assert_eq!(*at2(&input, "headers", "X-K"), Value::from(""));
}

#[test]
fn json_path_text_of_non_string_values() {
    for (v, expected) in [
        ("12", "12"),
        ("-7", "-7"),
        ("1.0", "1.0"),
        ("1e-5", "1e-05"),
        ("1e16", "1e+16"),
        ("18446744073709551615", "18446744073709551615"),
        ("true", "True"),
        ("false", "False"),
        ("null", "None"),
        (
            r#"{"a": 1, "b": "é", "c": [1.5, null]}"#,
            r#"{"a":1,"b":"é","c":[1.5,null]}"#,
        ),
        ("[]", "[]"),
        (r#""s""#, "s"),
    ] {
        let value = json::parse(v).expect("JSON");
        assert_eq!(value_text(&value), expected, "{v}");
    }
    // Through the engine: each match becomes a JSON string, whatever it was.
    check_server_body(
        vec![TransformRule::inbound().json_path("$.*").replace_with("x")],
        br#"{"n":1,"f":2.5,"b":true,"z":null,"o":{"k":1},"a":[1]}"#,
        r#"{"n":"x","f":"x","b":"x","z":"x","o":"x","a":"x"}"#,
        &meta("replace", "jsonPath:$.*"),
    );
    check_server_body(
        vec![TransformRule::inbound().json_path("$.*").mask()],
        br#"{"n":1234,"f":1e-5,"b":false,"z":null,"o":{"k":1}}"#,
        r#"{"n":"****","f":"*****","b":"*****","z":"****","o":"*******"}"#,
        &meta("mask", "jsonPath:$.*"),
    );
}

#[test]
fn json_path_wildcards_quoted_names_and_indexes() {
    check_server_body(
        vec![TransformRule::inbound().json_path("$.items[*].card").mask()],
        br#"{"items":[{"card":"1234"},{"x":1},{"card":"56"}]}"#,
        r#"{"items":[{"card":"****"},{"x":1},{"card":"**"}]}"#,
        &meta("mask", "jsonPath:$.items[*].card"),
    );
    check_server_body(
        vec![TransformRule::inbound().json_path("$['na me']").mask()],
        br#"{"na me":"ab","name":"cd"}"#,
        r#"{"na me":"**","name":"cd"}"#,
        &meta("mask", "jsonPath:$['na me']"),
    );
    check_server_body(
        vec![TransformRule::inbound().json_path("$[1]").mask()],
        br#"["a","bc"]"#,
        r#"["a","**"]"#,
        &meta("mask", "jsonPath:$[1]"),
    );
    // `[0]` on an object does not read key "0"; `$` alone matches nothing; a missing key matches nothing.
    check_server_body_untouched(vec![TransformRule::inbound().json_path("$[0]").mask()], br#"{"0":"a"}"#);
    check_server_body_untouched(vec![TransformRule::inbound().json_path("$").mask()], br#"{"a":"b"}"#);
    check_server_body_untouched(
        vec![TransformRule::inbound().json_path("$.nope").mask()],
        br#"{"a":"b"}"#,
    );
}

#[test]
fn json_path_reserialises_ascii_in_key_order() {
    check_server_body(
        vec![TransformRule::inbound().json_path("$.p").mask()],
        "{\"z\": \"é😀\u{7f}\", \"a\": 1.50, \"p\": \"x\", \"z\": [1E2]}".as_bytes(),
        r#"{"z":[100.0],"a":1.5,"p":"*"}"#,
        &meta("mask", "jsonPath:$.p"),
    );
    check_server_body(
        vec![TransformRule::inbound().json_path("$.p").mask()],
        "{\"n\":\"é😀\u{7f}\",\"p\":\"x\"}".as_bytes(),
        r#"{"n":"\u00e9\ud83d\ude00\u007f","p":"*"}"#,
        &meta("mask", "jsonPath:$.p"),
    );
}

#[test]
fn json_path_needs_utf8_json_and_base64() {
    let rule = || vec![TransformRule::inbound().json_path("$.a").mask()];
    check_server_body_untouched(rule(), b"{\"a\":\"\xff\"}");
    check_server_body_untouched(rule(), b"\xef\xbb\xbf{\"a\":\"x\"}");
    check_server_body_untouched(rule(), br#"{"a":"x""#);
    check_server_body_untouched(rule(), br#"{"a":NaN}"#);
    check_server_body_untouched(rule(), b"");
    let t = transforms(rule());
    let mut input = server_input("POST", "/", &[], None);
    input.insert("body", "not base64!");
    assert_eq!(t.apply_server(&mut input), None);
    assert_eq!(*at(&input, "body"), Value::from("not base64!"));
}

#[test]
fn full_body_drops_invalid_utf8_and_sets_body_size() {
    check_server_body(
        vec![TransformRule::inbound().full_body().mask()],
        b"\xff\xfeA\xc3\xa9",
        "**",
        &meta("mask", "body"),
    );
    check_server_body(
        vec![TransformRule::inbound().full_body().redact()],
        b"\xff\xfeA",
        "REDACTED_559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd",
        &meta("redact", "body"),
    );
    // No body key: left alone.
    let t = transforms([TransformRule::inbound().full_body().mask()]);
    let mut input = server_input("GET", "/", &[], None);
    assert_eq!(t.apply_server(&mut input), None);
    assert!(!input.contains_key("body") && !input.contains_key("bodySize"));
}

#[test]
fn outbound_body_rules_act_on_the_response_and_header_rules_on_the_request() {
    let t = transforms([
        TransformRule::outbound().json_path("$.token").mask(),
        TransformRule::outbound().header("x-key").mask(),
        TransformRule::inbound().full_body().mask(),
    ]);
    let mut input = obj(&format!(
        r#"{{"method":"POST","url":"http://u/x","path":"/x","headers":{{"x-key":"abc"}},"query":{{}},"body":"{}","bodySize":13}}"#,
        b64(br#"{"token":"t"}"#)
    ));
    let mut output = obj(&format!(
        r#"{{"statusCode":200,"statusMessage":"OK","headers":{{"x-key":"resp"}},"body":"{}","bodySize":16}}"#,
        b64(br#"{"token":"abcd"}"#)
    ));
    let m = t.apply_client(&mut input, &mut output).expect("applies");
    assert_eq!(body_text(&input), r#"{"token":"t"}"#);
    assert_eq!(body_text(&output), r#"{"token":"****"}"#);
    assert_eq!(*at(&output, "bodySize"), Value::Int(16));
    assert_eq!(*at2(&input, "headers", "x-key"), Value::from("***"));
    assert_eq!(*at2(&output, "headers", "x-key"), Value::from("resp"));
    assert_eq!(
        metadata_json(&m),
        r#"{"transformed":true,"actions":[{"type":"mask","field":"jsonPath:$.token","reason":"transforms"},{"type":"mask","field":"header:x-key","reason":"transforms"}]}"#
    );
    // A failed call has no body: body rules leave it alone.
    let mut output = obj(r#"{"errorName":"ConnectError","errorMessage":"refused"}"#);
    let mut input = obj(r#"{"method":"GET","url":"http://u/x","headers":{}}"#);
    assert_eq!(t.apply_client(&mut input, &mut output), None);
}

#[test]
fn matching_method_path_and_host() {
    let rule = |m: Matcher| transforms([m.header("x").mask()]);
    let applies = |t: &Transforms, method: &str, target: &str, host: &str| {
        let mut input = server_input(method, target, &[("Host", host), ("x", "v")], None);
        t.apply_server(&mut input).is_some()
    };
    let t = rule(TransformRule::inbound().method("post").method("PUT"));
    assert!(applies(&t, "POST", "/", "h"));
    assert!(applies(&t, "put", "/", "h"));
    assert!(applies(&t, "", "/", "h"), "an empty span method matches any list");
    assert!(!applies(&t, "GET", "/", "h"));

    let t = rule(TransformRule::inbound().path("/api/*/login"));
    assert!(applies(&t, "GET", "/api/v1/auth/login?x=/login", "h"));
    assert!(!applies(&t, "GET", "/api/login", "h"));
    assert!(!applies(&t, "GET", "/API/v1/login", "h"));

    let t = rule(TransformRule::inbound().host("127.0.0.1:*"));
    assert!(applies(&t, "GET", "/", "127.0.0.1:5000"));
    assert!(!applies(&t, "GET", "/", "localhost:5000"));

    // Empty patterns are no condition (as in Python, where they are falsy).
    let t = rule(TransformRule::inbound().path("").host(""));
    assert!(applies(&t, "GET", "/anything", "anyhost"));
}

#[test]
fn outbound_host_rules_never_match() {
    let t = transforms([
        TransformRule::outbound().host("*").header("x").mask(),
        TransformRule::outbound().host("*").drop(),
    ]);
    let mut input = obj(r#"{"method":"GET","url":"http://h/","headers":{"host":"h","x":"v"},"query":{}}"#);
    assert_eq!(t.apply_client(&mut input, &mut Object::new()), None);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("h"));
    assert!(!t.outbound_drop_matches("GET", "http://h/", &headers));
}

#[test]
fn drop_rules_check_host_header_map() {
    let t = transforms([TransformRule::inbound().host("127.0.0.1:*").method("GET").drop()]);
    let mut headers = HeaderMap::new();
    assert!(!t.inbound_drop_matches("GET", "/", &headers), "no host header");
    headers.insert(http::header::HOST, HeaderValue::from_static("127.0.0.1:5000"));
    assert!(t.inbound_drop_matches("GET", "/", &headers));
    assert!(t.inbound_drop_matches("get", "/", &headers));
    assert!(t.inbound_drop_matches("", "/", &headers));
    assert!(!t.inbound_drop_matches("POST", "/", &headers));
    headers.append(http::header::HOST, HeaderValue::from_static("other"));
    assert!(
        t.inbound_drop_matches("GET", "/", &headers),
        "joined: 127.0.0.1:5000, other"
    );
    let t = transforms([TransformRule::inbound().host("caf?").drop()]);
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        HeaderValue::from_bytes(b"caf\xe9").expect("opaque bytes are allowed"),
    );
    assert!(t.inbound_drop_matches("GET", "/", &headers), "latin-1: one character");
}

#[test]
fn path_pattern_uses_the_path_component() {
    for (s, path) in [
        ("/a/b?x=1", "/a/b"),
        ("/a/b", "/a/b"),
        ("/a#f?x", "/a"),
        ("http://h:1/p/q?x", "/p/q"),
        ("https://h", "https://h"),
        ("https://h?x=1", "https://h"),
        ("?x=1", ""),
        ("*", "*"),
        ("//host/p", "/p"),
        ("a:b/c", "b/c"),
        ("1a:b", "1a:b"),
    ] {
        assert_eq!(match_path(s), path, "{s}");
    }
}

#[test]
fn order_drop_rules_skipped_and_rules_chain_in_config_order() {
    let t = transforms([
        TransformRule::inbound().header("x").mask(),
        TransformRule::inbound().path("/never/*").drop(),
        TransformRule::inbound().header("x").redact(),
        TransformRule::inbound().redact(), // no target: skipped
    ]);
    let mut input = server_input("GET", "/", &[("x", "ab")], None);
    let m = t.apply_server(&mut input).expect("applies");
    assert_eq!(
        *at2(&input, "headers", "x"),
        Action::redact().apply("**").map(Value::from).expect("redact")
    );
    assert_eq!(
        metadata_json(&m),
        r#"{"transformed":true,"actions":[{"type":"mask","field":"header:x","reason":"transforms"},{"type":"redact","field":"header:x","reason":"transforms"}]}"#
    );
}

#[test]
fn rules_see_earlier_changes() {
    // A urlPath rule runs first, so a later rule on the old path no longer matches.
    let t = transforms([
        TransformRule::inbound().url_path().replace_with("/hidden"),
        TransformRule::inbound().path("/secret").header("x").mask(),
    ]);
    let mut input = server_input("GET", "/secret", &[("x", "v")], None);
    let m = t.apply_server(&mut input).expect("applies");
    assert_eq!(m.actions.len(), 1);
    assert_eq!(*at2(&input, "headers", "x"), Value::from("v"));
}

#[test]
fn no_rules_means_no_work() {
    let t = Transforms::default();
    assert!(t.is_empty());
    let mut input = server_input("GET", "/a?token=1", &[("authorization", "x")], Some(b"{}"));
    let before = input.clone();
    assert_eq!(t.apply_server(&mut input), None);
    assert_eq!(t.apply_client(&mut input, &mut Object::new()), None);
    assert_eq!(input, before);
    assert!(!t.inbound_drop_matches("GET", "/", &HeaderMap::new()));
    assert!(!t.outbound_drop_matches("GET", "http://h/", &HeaderMap::new()));
    assert!(!t.has_body_rules(Direction::Inbound));
}

#[test]
fn has_body_rules_per_direction() {
    let t = transforms([
        TransformRule::inbound().header("x").mask(),
        TransformRule::outbound().full_body().drop(),
        TransformRule::inbound().json_path("$.a").mask(),
    ]);
    assert!(t.has_body_rules(Direction::Inbound));
    assert!(!t.has_body_rules(Direction::Outbound), "drop rules never touch bodies");
    let t = transforms([TransformRule::outbound().full_body().mask()]);
    assert!(t.has_body_rules(Direction::Outbound));
    assert!(!t.has_body_rules(Direction::Inbound));
}

#[test]
fn builder_rules_are_validated() {
    assert_eq!(TransformRule::inbound().json_path("$.a[0]").mask().validate(), Ok(()));
    assert_eq!(TransformRule::inbound().header("x").mask().validate(), Ok(()));
    let err = TransformRule::inbound()
        .json_path("password")
        .redact()
        .validate()
        .expect_err("invalid");
    assert_eq!(
        err,
        TransformConfigError::JsonPathWithoutRoot {
            rule: None,
            path: "password".to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        "transform rule: jsonPath `password` must start with `$`, e.g. `$.password` or `$.user.email`"
    );
    let err = Transforms::new([
        TransformRule::inbound().header("x").mask(),
        TransformRule::outbound().json_path("$.a[").drop(),
    ])
    .expect_err("invalid");
    assert_eq!(
        err,
        TransformConfigError::JsonPathUnclosedBracket {
            rule: Some(1),
            path: "$.a[".to_owned()
        }
    );
    let err = Transforms::new([TransformRule::inbound().json_path("").mask()]).expect_err("invalid");
    assert!(matches!(
        err,
        TransformConfigError::JsonPathWithoutRoot { rule: Some(0), .. }
    ));
}

#[test]
fn builder_shape_and_defaults() {
    let rule = TransformRule::inbound()
        .path("/api/auth/*")
        .json_path("$.password")
        .redact();
    assert_eq!(
        rule,
        TransformRule::new(
            Matcher {
                direction: Direction::Inbound,
                method: vec![],
                path_pattern: Some("/api/auth/*".to_owned()),
                host: None,
                target: Some(Target::JsonPath("$.password".to_owned())),
            },
            Action::Redact {
                hash_prefix: "REDACTED_".to_owned()
            },
        )
    );
    assert_eq!(
        Action::mask(),
        Action::Mask {
            mask_char: "*".to_owned()
        }
    );
    assert_eq!(
        TransformRule::outbound().url_path().query_param("q").target,
        Some(Target::QueryParam("q".into()))
    );
    assert_eq!(
        [
            Target::JsonPath("$.a".into()),
            Target::QueryParam("q".into()),
            Target::HeaderName("H".into()),
            Target::UrlPath,
            Target::FullBody
        ]
        .map(|t| t.label()),
        ["jsonPath:$.a", "queryParam:q", "header:H", "urlPath", "body"]
    );
}

#[test]
fn seed_benchmark_config_redacts_the_seed_requests() {
    let doc: serde_yaml::Value = serde_yaml::from_str(
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
    )
    .expect("YAML");
    let t = transforms(rules_from_yaml(&doc).expect("valid"));
    let body =
        br#"{"username":"testuser","email":"test@example.com","ssn":"123-45-6789","creditCard":"4111-1111-1111-1111"}"#;
    let mut input = server_input("POST", "/api/users", &[], Some(body));
    let m = t.apply_server(&mut input).expect("applies");
    let fields: Vec<&str> = m.actions.iter().map(|a| a.field.as_str()).collect();
    assert_eq!(fields, ["jsonPath:$.ssn", "jsonPath:$.creditCard", "jsonPath:$.email"]);
    let out = body_text(&input);
    assert!(out.contains(r#""creditCard":"*******************""#), "{out}");
    assert!(
        !out.contains("123-45-6789") && !out.contains("test@example.com"),
        "{out}"
    );
}
