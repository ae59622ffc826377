//! Writing the output stream.

use serde_json::Value;

use super::numbers;

/// One output document: an input document passed through as written, or an object this tool built.
#[derive(Clone, Debug)]
pub enum OutputDoc {
    /// Original text (written byte for byte in YAML output) and its parsed value (for JSON output).
    Raw { text: String, value: Value },
    /// A built object, serialized on output.
    Built(Value),
}

impl OutputDoc {
    pub fn value(&self) -> &Value {
        match self {
            OutputDoc::Raw { value, .. } | OutputDoc::Built(value) => value,
        }
    }
}

/// Serializes an object as a YAML document (block mappings, two-space indent, compact lists),
/// ending in a newline. Long strings stay single scalars (never folded: a base64 value is one
/// token), and strings a YAML 1.1 reader would take for booleans or numbers (`n`, `yes`, `1.0`)
/// are quoted.
/// Numbers are written as Go writes them ([`numbers`]).
pub fn to_yaml(value: &Value) -> String {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let text = serde_saphyr::to_string_with_options(&numbers::go_numbers(value), options).expect("a JSON value always serializes as YAML");
    let mut s = numbers::finish(&text);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Writes documents as a YAML stream separated by `---` lines, without a trailing empty document.
/// Pass-through documents keep their original text.
pub fn write_yaml(docs: &[OutputDoc]) -> String {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        match doc {
            OutputDoc::Raw { text, .. } => {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            OutputDoc::Built(v) => out.push_str(&to_yaml(v)),
        }
    }
    out
}

/// Writes documents as one `v1` `List` in JSON (`-o json`), pretty-printed, ending in a newline.
/// Numbers are written as Go writes them, pass-through documents' integers with every digit.
pub fn write_json_list(docs: &[OutputDoc]) -> String {
    let items = docs.iter().map(|d| match d {
        OutputDoc::Raw { text, value } => {
            let mut value = value.clone();
            numbers::keep_big_integers(&mut value, text);
            numbers::go_numbers(&value)
        }
        OutputDoc::Built(value) => numbers::go_numbers(value),
    });
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items.collect::<Vec<_>>(),
    });
    let mut s = numbers::finish(&serde_json::to_string_pretty(&list).expect("JSON value serializes"));
    s.push('\n');
    s
}
