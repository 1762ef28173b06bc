//! Stored value → `prost_types::Struct` (§3.3).

use std::collections::BTreeMap;

use prost_types::value::Kind;

use super::value::{Object, Value};

/// The proto form of a value (§3.3): null → `NullValue`, bool, every number as `f64` (integers beyond 2⁵³ lose
/// precision, as in the Python SDK; one beyond the `f64` range, and any non-finite float, becomes null per §7.4),
/// string, array → `ListValue`, object → `Struct`.
pub fn value_to_proto_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Int(i) => Kind::NumberValue(*i as f64),
        Value::BigInt(s) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Kind::NumberValue(f),
            _ => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        },
        Value::Float(f) if f.is_finite() => Kind::NumberValue(*f),
        Value::Float(_) => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_to_proto_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(value_to_proto_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The proto `Struct` of an object (the `input_value` / `output_value` of a span, §3.3).
pub fn value_to_proto_struct(o: &Object) -> prost_types::Struct {
    let fields: BTreeMap<String, prost_types::Value> =
        o.iter().map(|(k, v)| (k.to_owned(), value_to_proto_value(v))).collect();
    prost_types::Struct { fields }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn number(v: &prost_types::Value) -> f64 {
        match v.kind {
            Some(Kind::NumberValue(f)) => f,
            ref other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn kinds() {
        let v = parse(
            "{\"n\":null,\"b\":true,\"i\":200,\"big\":12345678901234567890123,\"huge\":1\
             00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
             00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
             00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
             0000000000,\"f\":1.5,\"s\":\"GET\",\"a\":[1,\"x\"],\"o\":{\"k\":false}}",
        )
        .expect("valid");
        let s = value_to_proto_struct(v.as_object().expect("object"));
        let f = &s.fields;
        assert_eq!(f["n"].kind, Some(Kind::NullValue(0)));
        assert_eq!(f["b"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(number(&f["i"]), 200.0);
        assert_eq!(number(&f["big"]), 1.2345678901234568e22);
        assert_eq!(f["huge"].kind, Some(Kind::NullValue(0)));
        assert_eq!(number(&f["f"]), 1.5);
        assert_eq!(f["s"].kind, Some(Kind::StringValue("GET".into())));
        match &f["a"].kind {
            Some(Kind::ListValue(l)) => {
                assert_eq!(l.values.len(), 2);
                assert_eq!(number(&l.values[0]), 1.0);
                assert_eq!(l.values[1].kind, Some(Kind::StringValue("x".into())));
            }
            other => panic!("not a list: {other:?}"),
        }
        match &f["o"].kind {
            Some(Kind::StructValue(o)) => assert_eq!(o.fields["k"].kind, Some(Kind::BoolValue(false))),
            other => panic!("not a struct: {other:?}"),
        }
        assert_eq!(f.len(), 9);
    }

    #[test]
    fn p1_payloads() {
        let input = parse("{\"method\":\"GET\",\"path\":\"/health\"}").expect("valid");
        let output = parse("{\"status_code\":200}").expect("valid");
        let i = value_to_proto_struct(input.as_object().expect("object"));
        let o = value_to_proto_struct(output.as_object().expect("object"));
        assert_eq!(i.fields["method"].kind, Some(Kind::StringValue("GET".into())));
        assert_eq!(number(&o.fields["status_code"]), 200.0);
        assert!(value_to_proto_struct(&Object::new()).fields.is_empty());
    }
}
