//! One manifest document: where it came from, its original text (for byte-exact pass-through) and
//! its parsed value.
//!
//! YAML is read with `serde-saphyr` (the parser kube uses): anchors, aliases and merge keys are
//! resolved within its default budget (bounded alias expansion, nesting depth 64, 250,000 nodes per
//! document), duplicate mapping keys are errors. Streams are split on `---` lines first so each
//! document keeps its exact text.

use serde_json::Value;

use crate::problem::{Origin, Problem, Problems};

/// A parsed document of the input.
#[derive(Clone, Debug)]
pub struct Document {
    pub origin: Origin,
    /// The document's text as read (no separator line); `None` for items taken out of a `kind: List`.
    pub raw: Option<String>,
    /// The parsed object (always a JSON object).
    pub value: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.value.get("apiVersion").and_then(Value::as_str).unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
    }
    /// `namespace/name`, or `name` for an object without a namespace (for messages).
    pub fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// `metadata.namespace`, if set and non-empty.
    pub fn namespace(&self) -> Option<&str> {
        self.value.pointer("/metadata/namespace").and_then(Value::as_str).filter(|s| !s.is_empty())
    }
}

/// Parses a whole input (one file or stdin) into its documents.
///
/// Accepts YAML streams (a leading `%YAML`/`%TAG` directive included) and JSON (one object or a
/// concatenation of objects); CRLF line ends and a leading BOM. Empty, `null` and comment-only
/// documents are skipped; the items of every object whose `items` is a list (`kind: List`, a
/// `ResourceList` piped into `render`, ...) are expanded into documents of their own. Invalid
/// UTF-8, YAML errors, documents that are not mappings or lack `apiVersion`/`kind` are problems
/// naming the file and document index; the parser's message never quotes the input (it may hold
/// credentials).
pub fn parse_stream(file: &str, bytes: &[u8]) -> Result<Vec<Document>, Problems> {
    parse_stream_as(file, bytes, Envelope::Expand)
}

/// As [`parse_stream`], but a top-level `ResourceList` stays one document (the KRM envelope).
pub fn parse_resource_list_stream(file: &str, bytes: &[u8]) -> Result<Vec<Document>, Problems> {
    parse_stream_as(file, bytes, Envelope::Keep)
}

/// Whether a top-level ResourceList is expanded like any list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Envelope {
    Expand,
    Keep,
}

fn parse_stream_as(file: &str, bytes: &[u8], envelope: Envelope) -> Result<Vec<Document>, Problems> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Locate the bad byte: the document it falls in and the file line.
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let index = split_yaml(valid).len().saturating_sub(1);
            let line = valid.matches('\n').count() + 1;
            return Err(Problem::new(format!("invalid UTF-8 at line {line} (byte {})", e.valid_up_to()))
                .at(&Origin { file: file.to_string(), index, item: None })
                .into());
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Some(docs) = parse_json_stream(file, text, envelope) {
            return docs;
        }
    }
    let mut problems = Problems::default();
    let mut docs = Vec::new();
    for (index, (line, raw)) in split_yaml(text).into_iter().enumerate() {
        let origin = Origin { file: file.to_string(), index, item: None };
        match parse_yaml_doc(raw) {
            Ok(Value::Null) => {}
            Ok(value) => push_document(&mut docs, &mut problems, origin, Some(raw.to_string()), value, envelope),
            Err(msg) => problems.push(Problem::new(format!("invalid YAML: {}", file_lines(&msg, line))).at(&origin)),
        }
    }
    problems.into_result(docs)
}

fn parse_json_stream(file: &str, text: &str, envelope: Envelope) -> Option<Result<Vec<Document>, Problems>> {
    let mut docs = Vec::new();
    let mut problems = Problems::default();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut index = 0;
    let mut start = 0;
    while let Some(next) = stream.next() {
        let end = stream.byte_offset();
        match next {
            Ok(_) => {
                let origin = Origin { file: file.to_string(), index, item: None };
                let raw = text[start..end].trim().to_string();
                // Parsed again by the YAML reader (JSON is YAML): duplicate keys are errors here too.
                let leading = text[start..end].len() - text[start..end].trim_start().len();
                let first_line = text[..start + leading].matches('\n').count() + 1;
                match parse_yaml_doc(&raw) {
                    Ok(value) => push_document(&mut docs, &mut problems, origin, Some(raw), value, envelope),
                    Err(msg) => problems.push(Problem::new(format!("invalid JSON: {}", file_lines(&msg, first_line))).at(&origin)),
                }
            }
            // Not JSON after all (YAML flow mappings also start with `{`): let the YAML reader try.
            Err(_) if index == 0 => return None,
            Err(e) => {
                let origin = Origin { file: file.to_string(), index, item: None };
                problems.push(Problem::new(format!("invalid JSON at line {} column {}", e.line(), e.column())).at(&origin));
                break;
            }
        }
        start = end;
        index += 1;
    }
    Some(problems.into_result(docs))
}

/// Checks the document shape and expands lists (a top-level ResourceList only with
/// [`Envelope::Expand`]).
fn push_document(docs: &mut Vec<Document>, problems: &mut Problems, origin: Origin, raw: Option<String>, value: Value, envelope: Envelope) {
    if !value.is_object() {
        problems.push(Problem::new("document is not a mapping (expected a Kubernetes object)").at(&origin));
        return;
    }
    let doc = Document { origin, raw, value };
    let missing: Vec<&str> =
        ["apiVersion", "kind"].into_iter().filter(|f| doc.value.get(*f).and_then(Value::as_str).is_none_or(str::is_empty)).collect();
    if !missing.is_empty() {
        problems.push(Problem::new(format!("object has no {}", missing.join(" and "))).at(&doc.origin));
        return;
    }
    let envelope_kept = envelope == Envelope::Keep && doc.kind() == "ResourceList";
    if let Some(items) = list_items(&doc.value).filter(|_| !envelope_kept) {
        let mut items = items.clone();
        if let Some(raw) = &doc.raw {
            // Items are written again from their values: keep their big integers' digits.
            items.iter_mut().for_each(|item| super::numbers::keep_big_integers(item, raw));
        }
        for (i, item) in items.into_iter().enumerate() {
            let origin = Origin { item: Some(i), ..doc.origin.clone() };
            push_document(docs, problems, origin, None, item, Envelope::Expand);
        }
        return;
    }
    if doc.kind() == "List" {
        problems.push(Problem::new("`items` of a List must be a sequence").at(&doc.origin).field("items"));
        return;
    }
    docs.push(doc);
}

/// The items of a list object, expanded as Argo CD does for any object whose `items` is a
/// sequence (`kind: List`, `SecretList`, `ResourceList`, ...): a list kind (`*List`), or `items`
/// that are all Kubernetes objects. So an ExternalSecret can never hide in a list and reach the
/// cluster. `value` is a whole object.
pub fn list_items(value: &Value) -> Option<&Vec<Value>> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let items = match value.get("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None if kind.ends_with("List") => return Some(const { &Vec::new() }),
        _ => return None,
    };
    let all_objects = !items.is_empty() && items.iter().all(|i| i.get("apiVersion").is_some() && i.get("kind").is_some());
    (kind.ends_with("List") || all_objects).then_some(items)
}

/// A parser message with its line numbers made file-relative (the document started at
/// `first_line`) and the library's configuration hints removed.
fn file_lines(msg: &str, first_line: usize) -> String {
    let hint = regex::Regex::new(r",? ?set \w+ in Options( if acceptable)?").expect("static regex");
    let msg = hint.replace_all(msg, "");
    let line = regex::Regex::new(r"line (\d+)").expect("static regex");
    line.replace_all(&msg, |c: &regex::Captures<'_>| format!("line {}", c[1].parse::<usize>().unwrap_or(0) + first_line - 1)).into_owned()
}

fn parse_yaml_doc(raw: &str) -> Result<Value, String> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options::<Value>(raw, options).map_err(|e| e.to_string())
}

/// Splits a YAML stream into `(first line number, text)` per document, on lines that are `---`
/// (optionally followed by a space and content that belongs to the next document) or `...`.
fn split_yaml(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "...";
        if is_start || is_end {
            docs.push((start_line, &text[start..offset]));
            // Content after `--- ` on the same line is part of the next document.
            start = if is_start && bare.len() > 3 { offset + 4 } else { offset + line.len() };
            start_line = n + 1 + usize::from(!(is_start && bare.len() > 3));
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    // A chunk of only directives (`%YAML 1.1`, `%TAG`), comments and blank lines is the preamble of
    // the next document, not a document.
    let preamble = |d: &str| {
        d.lines().any(|l| l.starts_with('%'))
            && d.lines().all(|l| l.trim().is_empty() || l.starts_with('%') || l.trim_start().starts_with('#'))
    };
    docs.retain(|(_, d)| !d.trim().is_empty() && !preamble(d));
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(docs: &[Document]) -> Vec<String> {
        docs.iter().map(|d| format!("{}/{}", d.kind(), d.name())).collect()
    }

    #[test]
    fn splits_stream_keeps_raw_text_and_skips_empty_and_comment_documents() {
        let text = "# leading\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\n\n---\r\napiVersion: v1\r\nkind: Secret\r\nmetadata:\r\n  name: b\r\n";
        let docs = parse_stream("f.yaml", text.as_bytes()).unwrap();
        assert_eq!(kinds(&docs), ["ConfigMap/a", "Secret/b"]);
        assert_eq!(docs[0].raw.as_deref(), Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"));
        assert_eq!(docs[1].origin.index, 3);
    }

    #[test]
    fn a_yaml_directive_starts_a_stream() {
        let text = "%YAML 1.1\n%TAG ! tag:example.com,2000:\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n";
        let docs = parse_stream("f.yaml", text.as_bytes()).unwrap();
        assert_eq!(kinds(&docs), ["ConfigMap/a", "ConfigMap/b"]);
        assert_eq!(docs[0].origin.index, 0);
        assert_eq!(docs[0].raw.as_deref(), Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"));
    }

    #[test]
    fn a_resource_list_is_expanded_unless_it_is_the_envelope() {
        let text =
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n";
        assert_eq!(kinds(&parse_stream("f.yaml", text.as_bytes()).unwrap()), ["ConfigMap/a"]);
        assert_eq!(kinds(&parse_resource_list_stream("f.yaml", text.as_bytes()).unwrap()), ["ResourceList/"]);
    }

    #[test]
    fn anchors_aliases_and_merge_keys_are_resolved() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &l {x: '1'}\n  annotations: *l\ndata:\n  base: &b {k: v}\n  m:\n    <<: *b\n    z: w\n";
        let docs = parse_stream("f.yaml", text.as_bytes()).unwrap();
        assert_eq!(docs[0].value.pointer("/metadata/annotations/x").unwrap(), "1");
        assert_eq!(docs[0].value.pointer("/data/m/k").unwrap(), "v");
    }

    #[test]
    fn duplicate_keys_bom_utf8_and_missing_kind_are_problems() {
        let dup = parse_stream("d.yaml", b"apiVersion: v1\nkind: A\nkind: B\n").unwrap_err();
        assert!(dup.to_string().contains("d.yaml: document 0"), "{dup}");
        let bad = parse_stream("u.yaml", b"apiVersion: v1\nkind: \xff\n").unwrap_err();
        assert!(bad.to_string().contains("u.yaml: document 0: invalid UTF-8 at line 2 (byte 21)"), "{bad}");
        let nokind = parse_stream("k.yaml", b"apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
        assert!(nokind.to_string().contains("object has no kind"), "{nokind}");
        let bom = parse_stream("b.yaml", "\u{feff}apiVersion: v1\nkind: A\n".as_bytes()).unwrap();
        assert_eq!(bom[0].kind(), "A");
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("apiVersion: v1\nkind: ConfigMap\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(parse_stream("bomb.yaml", text.as_bytes()).is_err());
    }

    #[test]
    fn json_streams_and_lists_are_read() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}
{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}"#;
        let docs = parse_stream("f.json", text.as_bytes()).unwrap();
        assert_eq!(kinds(&docs), ["ConfigMap/a", "Secret/b"]);
        assert_eq!(docs[0].origin.item, Some(0));
        assert!(docs[0].raw.is_none());
        assert_eq!(docs[1].raw.as_deref(), Some(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}"#));
    }
}
