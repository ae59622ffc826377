//! Numbers written as Go writes them, without losing digits. The YAML reader gives `f64` for an
//! integer beyond 64 bits (`123456789012345678901234567890` would come out as
//! `1.2345678901234568e+29`) and serde writes a float `1e3` as `1000.0`, where Go writes `1000`.
//!
//! A number that serde cannot hold is carried as a *placeholder*: a string of its text between
//! [`RAW_START`] and [`RAW_END`] (private-use chars), which [`finish`] turns back into the bare
//! number in the encoded JSON or YAML text.

use serde_json::Value;

/// Starts a placeholder (also marks a raw number inside templates, see `crate::template::json`).
pub const RAW_START: char = '\u{e000}';
/// Ends a placeholder.
pub const RAW_END: char = '\u{e001}';

/// A placeholder for number text `number`.
pub fn placeholder(number: &str) -> String {
    format!("{RAW_START}{number}{RAW_END}")
}

/// Encoded JSON or YAML `text` with each placeholder (quoted `"…"`, `'…'`, or bare) replaced by
/// its number.
pub fn finish(text: &str) -> String {
    if !text.contains(RAW_START) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(RAW_START) {
        let Some(len) = rest[start..].find(RAW_END) else { break };
        let number = &rest[start + RAW_START.len_utf8()..start + len];
        let mut before = &rest[..start];
        let mut after = &rest[start + len + RAW_END.len_utf8()..];
        if let (Some(q @ ('"' | '\'')), Some(c)) = (before.chars().next_back(), after.chars().next()) {
            if q == c {
                before = &before[..before.len() - 1];
                after = &after[1..];
            }
        }
        out.push_str(before);
        out.push_str(number);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A float as Go's `encoding/json` writes a `float64` (shortest digits; exponent form below 1e-6
/// and from 1e21: `1e+21`, `1e-7`); `None` for NaN and infinities.
pub fn go_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` and `1.5e-7`; Go `1e+21` and `1.5e-7`.
        let text = format!("{f:e}");
        return Some(match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        });
    }
    Some(format!("{f}"))
}

/// Puts back, as placeholders, the integers of `value` that were too large for 64 bits: each
/// such `f64` (integral, at least 2^63) takes the digits of the next integer literal of `raw`
/// (the document's text) that reads as the same `f64`. Other values are left as they are.
pub fn keep_big_integers(value: &mut Value, raw: &str) {
    if !raw.bytes().any(|b| b.is_ascii_digit()) {
        return;
    }
    let tokens = big_integer_literals(raw);
    let mut next = 0;
    walk(value, &mut |v| {
        let Some(f) = v.as_f64().filter(|f| v.is_f64() && f.fract() == 0.0 && f.abs() >= 9.223_372_036_854_776e18) else {
            return;
        };
        if let Some(found) = tokens[next..].iter().position(|t| t.parse::<f64>().ok() == Some(f)) {
            *v = Value::String(placeholder(tokens[next + found]));
            next += found + 1;
        }
    });
}

/// A copy of `value` with floats in Go's forms: integral ones below 2^63 as integers, others as
/// placeholders of [`go_float`].
pub fn go_numbers(value: &Value) -> Value {
    let mut v = value.clone();
    walk(&mut v, &mut |n| {
        let Some(f) = n.as_f64().filter(|_| n.is_f64()) else { return };
        if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
            *n = Value::from(f as i64);
        } else if let Some(text) = go_float(f) {
            *n = Value::String(placeholder(&text));
        }
    });
    v
}

fn walk(v: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| walk(i, f)),
        other => f(other),
    }
}

/// Integer literals of at least 19 digits in `text`, in order (`-` kept).
fn big_integer_literals(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'.') {
            let start = if i > 0 && bytes[i - 1] == b'-' { i - 1 } else { i };
            let mut end = i;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            let followed_ok = end == bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'.' || bytes[end] == b'_');
            if end - i >= 19 && followed_ok {
                out.push(&text[start..end]);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_keep_their_digits_and_floats_take_go_forms() {
        let raw = "a: 123456789012345678901234567890\nb: [1e3, 2.5, -98765432109876543210]\nc: 1e21\nd: 7\n";
        let mut v: Value = serde_saphyr::from_str(raw).unwrap();
        keep_big_integers(&mut v, raw);
        let text = serde_json::to_string(&go_numbers(&v)).unwrap();
        assert_eq!(finish(&text), r#"{"a":123456789012345678901234567890,"b":[1000,2.5,-98765432109876543210],"c":1e+21,"d":7}"#);
    }
}
