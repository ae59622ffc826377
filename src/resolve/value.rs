//! Pure value handling, as ESO does it: `property` selection (gjson), `dataFrom.extract` expansion,
//! decoding strategies, key conversion and rewrites. All functions are deterministic and value-free
//! in their errors.

use base64::Engine;

use crate::api::{ConversionStrategy, DecodingStrategy, NullBytePolicy};

/// Order of `property` lookups for a property containing dots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotOrder {
    /// Literal key with the dots escaped first, then the gjson path (ESO's AWS provider, #963).
    LiteralFirst,
    /// gjson path first, then the literal key (ESO's Azure provider).
    PathFirst,
}

/// Selects `property` from a JSON payload with gjson syntax and returns it as ESO's
/// `gjson.Result.String()` does: strings unquoted, objects and arrays as their raw JSON, `true` and
/// `false`, `null` as empty, integers as written, other numbers in Go's shortest `'f'` float form
/// (`1.50` gives `1.5`).
///
/// Errors: the payload is not UTF-8 JSON, or the property does not exist.
pub fn select_property(payload: &[u8], property: &str, order: DotOrder) -> Result<Vec<u8>, String> {
    let json = std::str::from_utf8(payload).map_err(|_| "the value is not UTF-8 JSON, so `property` cannot be applied".to_string())?;
    if !gjson::valid(json) {
        return Err("the value is not valid JSON, so `property` cannot be applied".into());
    }
    let escaped = property.replace('.', "\\.");
    let candidates: Vec<&str> = match (property.contains('.'), order) {
        (false, _) => vec![property],
        (true, DotOrder::LiteralFirst) => vec![&escaped, property],
        (true, DotOrder::PathFirst) => vec![property, &escaped],
    };
    for path in candidates {
        let v = gjson::get(json, path);
        if v.exists() {
            return Ok(gjson_string(&v));
        }
    }
    Err(format!("property `{property}` does not exist"))
}

/// `gjson.Result.String()` of Go's gjson, as bytes.
pub fn gjson_string(v: &gjson::Value) -> Vec<u8> {
    match v.kind() {
        gjson::Kind::Null => Vec::new(),
        gjson::Kind::False => b"false".to_vec(),
        gjson::Kind::True => b"true".to_vec(),
        gjson::Kind::String => v.str().as_bytes().to_vec(),
        gjson::Kind::Number => {
            let raw = v.json();
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                raw.as_bytes().to_vec()
            } else {
                // Rust's `Display` for f64 is the shortest round-trip form without exponent, as Go's
                // strconv.FormatFloat(f, 'f', -1, 64); out-of-range numbers are Go's `+Inf`/`-Inf`.
                match v.f64() {
                    f if f.is_infinite() && f > 0.0 => b"+Inf".to_vec(),
                    f if f.is_infinite() => b"-Inf".to_vec(),
                    f => format!("{f}").into_bytes(),
                }
            }
        }
        gjson::Kind::Array | gjson::Kind::Object => v.json().as_bytes().to_vec(),
    }
}

/// Expands a JSON object into `(key, value)` pairs as ESO's `GetSecretMap`: string values
/// unquoted, `null` empty, every other value as its raw JSON text. Later duplicate keys win.
///
/// Errors: the payload is not a JSON object (#3803: a plain-text secret cannot be extracted).
pub fn expand_object(payload: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let json =
        std::str::from_utf8(payload).map_err(|_| "the secret is not UTF-8, so it cannot be extracted as a JSON object".to_string())?;
    let root = gjson::parse(json);
    if !gjson::valid(json) || root.kind() != gjson::Kind::Object {
        return Err("the secret is not a JSON object, so `extract` cannot expand it (use data[] without property for plain values)".into());
    }
    // A key written twice keeps its last value, placed where it was last written (as before);
    // one index per key keeps this linear (a rescan per key made 40,000 keys take 6.6 s).
    let mut out: Vec<Option<(String, Vec<u8>)>> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    root.each(|k, v| {
        let value = match v.kind() {
            gjson::Kind::String => v.str().as_bytes().to_vec(),
            gjson::Kind::Null => Vec::new(),
            _ => v.json().as_bytes().to_vec(),
        };
        if let Some(old) = at.insert(k.str().to_string(), out.len()) {
            out[old] = None;
        }
        out.push(Some((k.str().to_string(), value)));
        true
    });
    Ok(out.into_iter().flatten().collect())
}

/// Applies a decoding strategy (ESO `runtime/decoding`): `Base64` (standard, padded), `Base64URL`
/// (URL-safe, padded), `Auto` (Base64, then Base64URL, else unchanged), `None`.
///
/// Errors: the value is not valid in the requested alphabet.
pub fn decode(value: Vec<u8>, strategy: DecodingStrategy) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => {
            STANDARD.decode(&value).map_err(|_| "decodingStrategy Base64: the value is not valid base64".to_string())
        }
        DecodingStrategy::Base64Url => {
            URL_SAFE.decode(&value).map_err(|_| "decodingStrategy Base64URL: the value is not valid URL-safe base64".to_string())
        }
        DecodingStrategy::Auto => Ok(STANDARD.decode(&value).or_else(|_| URL_SAFE.decode(&value)).unwrap_or(value)),
    }
}

/// `nullBytePolicy: Fail` rejects a value with a NUL byte.
pub fn check_null_bytes(value: &[u8], policy: NullBytePolicy) -> Result<(), String> {
    if policy == NullBytePolicy::Fail && value.contains(&0) {
        return Err("the value contains a NUL byte (nullBytePolicy: Fail)".into());
    }
    Ok(())
}

/// Converts a key as ESO's `conversionStrategy` (`runtime/esutils`): every char that is not a
/// letter, a digit, `-`, `.` or `_` becomes `_` (`Default`) or `_U%04x_` (`Unicode`).
pub fn convert_key(key: &str, strategy: ConversionStrategy) -> String {
    key.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c.to_string()
            } else {
                match strategy {
                    ConversionStrategy::Default => "_".to_string(),
                    ConversionStrategy::Unicode => format!("_U{:04x}_", c as u32),
                }
            }
        })
        .collect()
}

/// Applies `rewrite[].regexp` steps in order (`ReplaceAllString`; `$1` and `${1}` expand groups;
/// note `$1_` names a group `1_`, as in Go: write `${1}_`).
pub fn rewrite_key(key: &str, rewrites: &[(regex::Regex, String)]) -> String {
    rewrites.iter().fold(key.to_string(), |k, (re, target)| re.replace_all(&k, target.as_str()).into_owned())
}

/// Why `key` is not a valid Secret data key, as the API server checks it: `^[-._a-zA-Z0-9]+$`,
/// at most 253 characters, not `.` or `..`, not starting with `..`. `None` when valid.
pub fn secret_key_error(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("it is empty")
    } else if key.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        Some("it must match ^[-._a-zA-Z0-9]+$")
    } else if key == "." || key == ".." || key.starts_with("..") {
        Some("`.`, `..` and keys starting with `..` are not allowed")
    } else {
        None
    }
}

/// Whether `key` is a valid Secret data key (see [`secret_key_error`]).
pub fn is_valid_secret_key(key: &str) -> bool {
    secret_key_error(key).is_none()
}

/// Why `name` is not a DNS-1123 subdomain (a Secret's name), `None` when it is one.
pub fn dns_subdomain_error(name: &str) -> Option<&'static str> {
    static SUBDOMAIN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("static regex")
    });
    if name.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !SUBDOMAIN.is_match(name) {
        Some("it must be lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit")
    } else {
        None
    }
}

/// Why `name` is not a DNS-1123 label (a namespace), `None` when it is one.
pub fn dns_label_error(name: &str) -> Option<&'static str> {
    static LABEL: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
    if name.len() > 63 {
        Some("it is longer than 63 characters")
    } else if !LABEL.is_match(name) {
        Some("it must be lower-case letters, digits and `-`, starting and ending with a letter or digit")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(json: &str, p: &str) -> String {
        String::from_utf8(select_property(json.as_bytes(), p, DotOrder::LiteralFirst).unwrap()).unwrap()
    }

    #[test]
    fn property_values_are_rendered_as_go_gjson_strings() {
        let j = r#"{"s":"a\"b","i":12345678,"neg":-3,"f":1.50,"e":1e3,"t":true,"f2":false,"n":null,"o":{"x": [1, 2]},"a":[1,"x"]}"#;
        assert_eq!(prop(j, "s"), "a\"b");
        assert_eq!(prop(j, "i"), "12345678");
        assert_eq!(prop(j, "neg"), "-3");
        assert_eq!(prop(j, "f"), "1.5");
        assert_eq!(prop(j, "e"), "1000");
        assert_eq!(prop(r#"{"big":1e400,"small":-1e400}"#, "big"), "+Inf");
        assert_eq!(prop(r#"{"big":1e400,"small":-1e400}"#, "small"), "-Inf");
        assert_eq!(prop(j, "t"), "true");
        assert_eq!(prop(j, "f2"), "false");
        assert_eq!(prop(j, "n"), "");
        assert_eq!(prop(j, "o"), r#"{"x": [1, 2]}"#);
        assert_eq!(prop(j, "a"), r#"[1,"x"]"#);
        assert_eq!(prop(j, "o.x.1"), "2");
        assert_eq!(prop(j, "a.#"), "2");
    }

    #[test]
    fn dotted_property_tries_the_literal_key_first_on_aws() {
        let j = r#"{"foo.bar":"literal","foo":{"bar":"nested"}}"#;
        assert_eq!(prop(j, "foo.bar"), "literal");
        let path_first = select_property(j.as_bytes(), "foo.bar", DotOrder::PathFirst).unwrap();
        assert_eq!(path_first, b"nested");
        assert_eq!(prop(r#"{"foo":{"bar":"nested"}}"#, "foo.bar"), "nested");
    }

    #[test]
    fn missing_property_and_non_json_are_errors_without_values() {
        let e = select_property(br#"{"user":"admin"}"#, "pass", DotOrder::LiteralFirst).unwrap_err();
        assert_eq!(e, "property `pass` does not exist");
        let e = select_property(b"Secret123", "pass", DotOrder::LiteralFirst).unwrap_err();
        assert!(!e.contains("Secret123"));
    }

    #[test]
    fn extract_unquotes_strings_and_keeps_raw_json_for_the_rest() {
        let got = expand_object(br#"{"a":"x","n":1.50,"b":true,"z":null,"o":{"k": 1}}"#).unwrap();
        let got: Vec<(String, String)> = got.into_iter().map(|(k, v)| (k, String::from_utf8(v).unwrap())).collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "x".into()),
                ("n".into(), "1.50".into()),
                ("b".into(), "true".into()),
                ("z".into(), "".into()),
                ("o".into(), r#"{"k": 1}"#.into()),
            ]
        );
        assert!(expand_object(b"Secret123").unwrap_err().contains("not a JSON object"));
        assert!(expand_object(b"[1,2]").is_err());
        // A key written twice keeps its last value, where it was last written.
        let got = expand_object(br#"{"a":"1","b":"2","a":"3"}"#).unwrap();
        assert_eq!(got, [("b".to_string(), b"2".to_vec()), ("a".to_string(), b"3".to_vec())]);
        // Many keys (linear now: the quadratic rescan took 6.6 s at 40,000 keys).
        let many = format!("{{{}}}", (0..200_000).map(|i| format!("\"k{i}\":\"v\"")).collect::<Vec<_>>().join(","));
        assert_eq!(expand_object(many.as_bytes()).unwrap().len(), 200_000);
    }

    #[test]
    fn decoding_strategies() {
        assert_eq!(decode(b"aGk=".to_vec(), DecodingStrategy::Base64).unwrap(), b"hi");
        assert_eq!(decode(b"-_8=".to_vec(), DecodingStrategy::Base64Url).unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode(b"-_8=".to_vec(), DecodingStrategy::Auto).unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode(b"not base64!".to_vec(), DecodingStrategy::Auto).unwrap(), b"not base64!");
        assert!(decode(b"not base64!".to_vec(), DecodingStrategy::Base64).is_err());
        assert_eq!(decode(b"raw".to_vec(), DecodingStrategy::None).unwrap(), b"raw");
    }

    #[test]
    fn key_conversion_and_rewrite() {
        assert_eq!(convert_key("/team/eks/param 1", ConversionStrategy::Default), "_team_eks_param_1");
        assert_eq!(convert_key("a/b", ConversionStrategy::Unicode), "a_U002f_b");
        let rw =
            vec![(regex::Regex::new("^/team/(.*)").unwrap(), "${1}_x".to_string()), (regex::Regex::new("/").unwrap(), "-".to_string())];
        assert_eq!(rewrite_key("/team/eks/p", &rw), "eks-p_x");
        assert!(is_valid_secret_key("a-b.c_D9"));
        assert!(!is_valid_secret_key("a/b"));
        assert!(!is_valid_secret_key(""));
        for bad in [".", "..", "..data", &"a".repeat(254)] {
            assert!(!is_valid_secret_key(bad), "{bad}");
        }
        assert!(is_valid_secret_key(".dockerconfigjson"));
        assert_eq!(dns_subdomain_error("db-creds.v1"), None);
        assert!(dns_subdomain_error("Bad_Name").is_some() && dns_subdomain_error("-a").is_some() && dns_subdomain_error("a/b").is_some());
        assert!(dns_label_error("team.a").is_some());
    }

    #[test]
    fn null_bytes() {
        assert!(check_null_bytes(b"a\0b", NullBytePolicy::Fail).is_err());
        assert!(check_null_bytes(b"a\0b", NullBytePolicy::Ignore).is_ok());
    }
}
