//! JSON values compared as values: key order, white space and number spelling
//! (`1`, `1.0`, `100.10`) do not matter.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// One text for all equal JSON values: object keys sorted, numbers in their
/// shortest form, integral floats written as integers.
pub fn canonical_text(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// SHA-256 (hex) of [`canonical_text`].
pub fn canonical_digest(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical_text(value).as_bytes()))
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => {
            out.push_str(&value.to_string());
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (None, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                let _ = write!(out, "{}", f as i64);
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_value(&map[key], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_white_space_do_not_change_the_digest() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": [1, 2, {"y": true, "x": null}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[1,2,{"x":null,"y":true}],"b":1}"#).unwrap();
        assert_eq!(canonical_digest(&a), canonical_digest(&b));
    }

    #[test]
    fn equal_numbers_spelled_differently_have_one_digest() {
        let a: Value = serde_json::from_str(r#"{"wage": 100.10, "n": 1.0}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"wage": 100.1, "n": 1}"#).unwrap();
        assert_eq!(canonical_digest(&a), canonical_digest(&b));
    }

    #[test]
    fn different_values_have_different_digests() {
        assert_ne!(
            canonical_digest(&json!({"wage": 100.1})),
            canonical_digest(&json!({"wage": 100.11}))
        );
        assert_ne!(
            canonical_digest(&json!({"a": "1"})),
            canonical_digest(&json!({"a": 1}))
        );
    }
}
