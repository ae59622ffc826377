//! Strict decoding of a manifest section into a typed spec.
//!
//! Unknown fields are collected with `serde_ignored` (an unknown field is an error by default, a
//! warning with `--lenient`: a typo such as `propery` must not silently render the whole value),
//! and type errors carry the field path through `serde_path_to_error`.

use serde::de::DeserializeOwned;

/// How unknown fields are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Unknown fields are errors (default).
    #[default]
    Strict,
    /// Unknown fields are logged as warnings and ignored (`--lenient`).
    Lenient,
}

/// A decoding failure: the field path (`spec.data[0].remoteRef.key`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Decodes `value` (found at `prefix`, such as `spec`) into `T`.
///
/// Returns the typed value and the warnings for unknown fields in lenient mode; in strict mode
/// every unknown field is a [`FieldError`] ("unknown field"). Errors never quote values.
pub fn decode_strict<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
    strictness: Strictness,
) -> Result<(T, Vec<String>), Vec<FieldError>> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(join(prefix, &format_path(&path)));
    let ignored = serde_ignored::Deserializer::new(super::strict_value::Strict(value), &mut record);
    let decoded: Result<T, _> = serde_path_to_error::deserialize(ignored);
    match decoded {
        Err(e) => {
            let field = join(prefix, &format_error_path(e.path()));
            Err(vec![FieldError { field, message: scrub(&e.into_inner().to_string()) }])
        }
        Ok(v) => match strictness {
            Strictness::Strict if !unknown.is_empty() => Err(unknown
                .into_iter()
                .map(|field| FieldError { field, message: "unknown field (a typo? use --lenient to ignore unknown fields)".into() })
                .collect()),
            _ => Ok((v, unknown.into_iter().map(|f| format!("{f}: unknown field ignored")).collect())),
        },
    }
}

fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => rest.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

/// Formats a `serde_ignored` path as `data[0].remoteRef.propery`.
fn format_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        Path::Map { parent, key } => join(&format_path(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => format_path(parent),
    }
}

/// Formats a `serde_path_to_error` path the same way.
fn format_error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join(&out, key),
            Segment::Enum { variant } => out = join(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

/// serde's messages quote the offending scalar (`invalid type: string "hunter2"`); manifests may
/// hold credentials, so quoted scalars are removed from the message.
fn scrub(message: &str) -> String {
    let re =
        regex::Regex::new(r#"(string|integer|floating point|boolean|value|variant) `[^`]*`|(string|value) "[^"]*""#).expect("static regex");
    re.replace_all(message, "$1$2").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        key: String,
        #[serde(default)]
        property: Option<String>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        #[serde(default)]
        data: Vec<Inner>,
    }

    #[test]
    fn unknown_field_is_an_error_with_its_path() {
        let v = serde_json::json!({"data": [{"key": "a"}, {"key": "b", "propery": "x"}]});
        let errs = decode_strict::<Outer>(v, "spec", Strictness::Strict).unwrap_err();
        assert_eq!(errs[0].field, "spec.data[1].propery");
    }

    #[test]
    fn a_sequence_where_a_mapping_is_expected_is_refused() {
        let v = serde_json::json!({"data": [["a", "p"]]});
        let errs = decode_strict::<Outer>(v, "spec", Strictness::Strict).unwrap_err();
        assert_eq!(errs[0].field, "spec.data[0]");
        assert!(errs[0].message.contains("expected a mapping"), "{}", errs[0].message);
    }

    #[test]
    fn lenient_mode_warns_and_keeps_known_fields() {
        let v = serde_json::json!({"data": [{"key": "b", "propery": "x"}]});
        let (o, warnings) = decode_strict::<Outer>(v, "spec", Strictness::Lenient).unwrap();
        assert_eq!(o.data[0].key, "b");
        assert_eq!(o.data[0].property, None);
        assert_eq!(warnings, vec!["spec.data[0].propery: unknown field ignored".to_string()]);
    }

    #[test]
    fn type_error_names_the_field_and_hides_the_value() {
        let v = serde_json::json!({"data": [{"key": "a"}, {"key": "b", "property": {"s3cr3t": 1}}]});
        let errs = decode_strict::<Outer>(v, "spec", Strictness::Strict).unwrap_err();
        assert_eq!(errs[0].field, "spec.data[1].property");
        assert!(!errs[0].message.contains("s3cr3t"), "{}", errs[0].message);
    }
}
