//! JSON and YAML of template values, with numbers as Go writes them (`toJson`, `toPrettyJson`,
//! `toYaml`) and read without losing digits (`fromJson`):
//! - an integer too large for 64 bits keeps every digit: it is carried as a *raw number*, a string
//!   starting with [`RAW_NUMBER`] (a char no byte-char string holds, see [`super::bytes`]), which
//!   prints as its digits and encodes as a JSON number (through the placeholders of
//!   [`crate::manifest::numbers`]);
//! - a float is written as Go's `encoding/json` writes a `float64`: shortest digits, `1000` not
//!   `1000.0`, exponent form (`1e+21`, `1e-7`) below 1e-6 and from 1e21.
//!
//! Maps are written with keys sorted and `<`, `>`, `&` escaped, as Go's `json.Marshal`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use super::bytes::{from_engine, text_to_engine, RAW_NUMBER};
use crate::manifest::numbers::{finish, go_float, placeholder};

/// A raw number: JSON number text as a template value.
pub fn raw_number(text: &str) -> Value {
    Value::String(Arc::from(format!("{RAW_NUMBER}{text}").as_str()))
}

/// `v` as a serde value; numbers become placeholders that [`finish`] turns into number text.
fn encodable(v: &Value) -> Result<serde_json::Value, String> {
    let placeholder = |text: &str| serde_json::Value::String(placeholder(text));
    Ok(match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Uint(u) => serde_json::Value::from(*u),
        Value::Float(f) => placeholder(&go_float(*f).ok_or("NaN or infinite number")?),
        Value::String(s) if s.starts_with(RAW_NUMBER) => placeholder(&s[RAW_NUMBER.len_utf8()..]),
        Value::String(s) => serde_json::Value::String(String::from_utf8_lossy(&from_engine(s)?).into_owned()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(encodable).collect::<Result<_, _>>()?),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| Ok((key_text(k), encodable(v)?))).collect::<Result<_, String>>()?),
        _ => return Err("a function cannot be encoded".into()),
    })
}

fn key_text(k: &str) -> String {
    from_engine(k).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_else(|| k.to_string())
}

fn go_escape(text: String) -> String {
    text.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// Compact JSON as Go's `json.Marshal` writes it.
pub fn to_json(v: &Value) -> Result<String, String> {
    let text = serde_json::to_string(&encodable(v)?).map_err(|_| "the value cannot be encoded".to_string())?;
    Ok(go_escape(finish(&text)))
}

/// Indented JSON as sprig's `toPrettyJson` (Go's `json.MarshalIndent(v, "", "  ")`).
pub fn to_pretty_json(v: &Value) -> Result<String, String> {
    let text = serde_json::to_string_pretty(&encodable(v)?).map_err(|_| "the value cannot be encoded".to_string())?;
    Ok(go_escape(finish(&text)))
}

/// YAML as sprig's `toYaml` (no trailing newline).
pub fn to_yaml(v: &Value) -> Result<String, String> {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let text = serde_saphyr::to_string_with_options(&encodable(v)?, options).map_err(|_| "the value cannot be encoded".to_string())?;
    Ok(finish(text.trim_end_matches('\n')))
}

/// A parsed JSON text as a template value; integers keep their written form (beyond 64 bits as
/// raw numbers).
pub fn from_json_text(text: &str) -> Result<Value, String> {
    if !gjson::valid(text) {
        return Err("not valid JSON".into());
    }
    fn conv(v: &gjson::Value) -> Value {
        match v.kind() {
            gjson::Kind::Null => Value::Nil,
            gjson::Kind::True => Value::Bool(true),
            gjson::Kind::False => Value::Bool(false),
            gjson::Kind::String => Value::String(Arc::from(text_to_engine(v.str()).as_str())),
            gjson::Kind::Number => {
                let raw = v.json();
                let integer = raw.strip_prefix('-').unwrap_or(raw).bytes().all(|b| b.is_ascii_digit());
                raw.parse::<i64>().map(Value::Int).or_else(|_| raw.parse::<u64>().map(Value::Uint)).unwrap_or_else(|_| {
                    if integer {
                        raw_number(raw)
                    } else {
                        Value::Float(v.f64())
                    }
                })
            }
            gjson::Kind::Array => Value::List(v.array().iter().map(conv).collect::<Vec<_>>().into()),
            gjson::Kind::Object => {
                let mut m = BTreeMap::new();
                v.each(|k, val| {
                    m.insert(Arc::from(text_to_engine(k.str()).as_str()), conv(&val));
                    true
                });
                Value::Map(Arc::new(m))
            }
        }
    }
    Ok(conv(&gjson::parse(text)))
}

/// A serde value (parsed YAML) as a template value.
pub fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            n.as_i64().map(Value::Int).or_else(|| n.as_u64().map(Value::Uint)).unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)))
        }
        serde_json::Value::String(t) => Value::String(Arc::from(text_to_engine(t).as_str())),
        serde_json::Value::Array(a) => Value::List(a.iter().map(from_serde).collect::<Vec<_>>().into()),
        serde_json::Value::Object(o) => {
            Value::Map(Arc::new(o.iter().map(|(k, v)| (Arc::from(text_to_engine(k).as_str()), from_serde(v))).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_go_writes_them() {
        let v =
            from_json_text(r#"{"big":123456789012345678901234567890,"neg":-98765432109876543210,"f":1e3,"g":0.5,"t":1e-7,"h":1e21,"i":7}"#)
                .unwrap();
        assert_eq!(
            to_json(&v).unwrap(),
            r#"{"big":123456789012345678901234567890,"f":1000,"g":0.5,"h":1e+21,"i":7,"neg":-98765432109876543210,"t":1e-7}"#
        );
        assert_eq!(
            to_yaml(&v).unwrap(),
            "big: 123456789012345678901234567890\nf: 1000\ng: 0.5\nh: 1e+21\ni: 7\nneg: -98765432109876543210\nt: 1e-7"
        );
        assert!(to_pretty_json(&v).unwrap().contains("\n  \"big\": 123456789012345678901234567890,\n"));
        assert_eq!(go_float(100.0).unwrap(), "100");
        assert_eq!(go_float(0.000001).unwrap(), "0.000001");
        assert_eq!(go_float(-2.5e-9).unwrap(), "-2.5e-9");
    }
}
