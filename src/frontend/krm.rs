//! `extsecret krm`: a KRM function (Functions Specification v1) run as an exec function by
//! kustomize (`--enable-alpha-plugins --enable-exec`) and kpt (`kpt fn eval --exec`).
//!
//! - Generator: when `functionConfig` is an ExternalSecret (kustomize `generators:`), it is
//!   rendered and the output items are its Secret plus every item that is not the config's own
//!   echo (the same object but for tool annotations such as kustomize's local-config mark); other
//!   items are rendered as in a transformer (`kpt fn eval --fn-config`).
//! - Transformer: otherwise every ExternalSecret among the items is replaced by its Secret (which
//!   takes over the item's path/index annotations, so kpt writes it where the ExternalSecret was),
//!   SecretStores are dropped, and all other items pass through untouched.
//! - Failure: the input items unchanged plus error `results`, and exit 1 (kpt reports a function
//!   that exits 0 with error results as passed).

use serde_json::Value;

use crate::api;
use crate::manifest::document::list_items;
use crate::manifest::input::read_stdin;
use crate::manifest::resource_list::{KrmResult, ResourceList};
use crate::manifest::{output, Document, OutputDoc};
use crate::problem::{Origin, Problem, Problems};
use crate::settings::OperatorArgs;

/// Annotations that place an item in a package; a Secret replacing an ExternalSecret inherits them.
const PLACEMENT_ANNOTATIONS: &[&str] = &[
    "internal.config.kubernetes.io/path",
    "internal.config.kubernetes.io/index",
    "config.kubernetes.io/path",
    "config.kubernetes.io/index",
];

/// Runs the function on stdin; returns the exit code.
pub async fn run(operator: OperatorArgs) -> i32 {
    let bytes = match read_stdin() {
        Ok(b) => b,
        Err(p) => return super::report(&p.into()),
    };
    let rl = match ResourceList::parse(&bytes) {
        Ok(Some(rl)) => rl,
        Ok(None) => return super::report(&Problem::new("expected a ResourceList (config.kubernetes.io/v1) on stdin").into()),
        Err(p) => return super::report(&p),
    };
    let result = match super::bind(operator.settings(), &operator, false) {
        Ok(settings) => transform(&rl, &settings).await,
        Err(p) => Err(p),
    };
    match result {
        Ok(items) => super::emit(&output::to_yaml(&rl.to_value(items, &[]))),
        Err(problems) => {
            eprintln!("{problems}");
            let results: Vec<KrmResult> = problems.0.iter().map(to_result).collect();
            let _ = super::emit(&output::to_yaml(&rl.to_value(rl.items.clone(), &results)));
            super::EXIT_FAILURE
        }
    }
}

fn is_external_secret(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("ExternalSecret")
        && v.get("apiVersion").and_then(Value::as_str).and_then(api::eso_version).is_some()
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// The rendered items, or every problem.
async fn transform(rl: &ResourceList, settings: &crate::settings::Settings) -> Result<Vec<Value>, Problems> {
    let generator = rl.function_config.as_ref().filter(|fc| is_external_secret(fc));
    let mut inputs: Vec<Value> = Vec::new();
    if let Some(fc) = generator {
        inputs.push(fc.clone());
        // kustomize echoes the config as the only item (marked local-config): skip that echo, and
        // only it; a package item with the config's name but another content is rendered.
        let config = without_tool_annotations(fc);
        inputs.extend(rl.items.iter().filter(|i| !(is_external_secret(i) && without_tool_annotations(i) == config)).cloned());
    } else {
        inputs.extend(rl.items.iter().cloned());
    }
    let not_objects: Vec<Problem> = inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| !is_object(v))
        .map(|(i, _)| Problem::new(format!("item {i} of the ResourceList is not a Kubernetes object (a mapping with apiVersion and kind)")))
        .collect();
    if !not_objects.is_empty() {
        return Err(Problems(not_objects));
    }
    // Items of a list item (`kind: List`, ...) are rendered as items of their own, so an
    // ExternalSecret cannot hide in one; each list is rebuilt around its rendered items.
    let mut docs: Vec<Document> = Vec::new();
    let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
    for (index, v) in inputs.iter().enumerate() {
        let origin = item_origin(v, index, generator.is_some());
        match list_items(v) {
            Some(items) => {
                for (j, item) in items.iter().enumerate() {
                    if !is_object(item) || list_items(item).is_some() {
                        return Err(Problem::new("a list item must hold Kubernetes objects, and no nested list")
                            .at(&origin)
                            .field(format!("items[{j}]"))
                            .into());
                    }
                    docs.push(Document { origin: Origin { item: Some(j), ..origin.clone() }, raw: None, value: item.clone() });
                    owners.push((index, Some(j)));
                }
            }
            None => {
                docs.push(Document { origin, raw: None, value: v.clone() });
                owners.push((index, None));
            }
        }
    }
    let catalog = crate::render::load_catalog(settings)?;
    let rendered = crate::render::render_documents_indexed(docs, catalog, settings).await?;
    // Rendered items of each list item, by its input index.
    let mut lists: std::collections::BTreeMap<usize, Vec<Value>> =
        inputs.iter().enumerate().filter(|(_, v)| list_items(v).is_some()).map(|(i, _)| (i, Vec::new())).collect();
    let mut ordered: Vec<(usize, Value)> = Vec::new();
    for (source, doc) in rendered {
        let mut value = match doc {
            OutputDoc::Raw { value, .. } | OutputDoc::Built(value) => value,
        };
        let (outer, inner) = owners[source];
        let from = &inputs[outer];
        if inner.is_some() {
            lists.entry(outer).or_default().push(value);
            continue;
        }
        // A Secret takes its ExternalSecret's place in the package (not the config's file).
        if is_external_secret(from) && !(generator.is_some() && outer == 0) {
            for key in PLACEMENT_ANNOTATIONS {
                if let Some(v) = annotation(from, key) {
                    value["metadata"]["annotations"][*key] = Value::String(v.to_string());
                }
            }
        }
        ordered.push((outer, value));
    }
    // Lists keep their place among the other items.
    for (outer, items) in lists {
        let mut list = inputs[outer].clone();
        list["items"] = Value::Array(items);
        ordered.push((outer, list));
    }
    ordered.sort_by_key(|(outer, _)| *outer);
    Ok(ordered.into_iter().map(|(_, v)| v).collect())
}

/// `v` without the annotations tools add (kustomize's local-config mark, kpt's and kustomize's
/// path, index and id annotations): what tells the config's echo from another object.
fn without_tool_annotations(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(metadata) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.retain(|k, _| !is_tool_annotation(k));
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    v
}

fn is_tool_annotation(key: &str) -> bool {
    crate::resolve::secret::is_tool_internal(key) && !key.starts_with("extsecret.io/")
}

fn is_object(v: &Value) -> bool {
    v.is_object() && v.get("apiVersion").is_some_and(Value::is_string) && v.get("kind").is_some_and(Value::is_string)
}

/// Where an item comes from, for messages: its file and index in the package when kpt or
/// kustomize placed it, else its position among the items.
fn item_origin(v: &Value, index: usize, generator: bool) -> Origin {
    let file = annotation(v, "internal.config.kubernetes.io/path").or_else(|| annotation(v, "config.kubernetes.io/path"));
    // An item placed in a file is named by its document index in that file, not its position
    // among all the items.
    let index_in_file = || {
        annotation(v, "internal.config.kubernetes.io/index")
            .or_else(|| annotation(v, "config.kubernetes.io/index"))
            .and_then(|i| i.parse().ok())
            .unwrap_or(index)
    };
    let (file, index) = match (file, generator && index == 0) {
        (_, true) => ("<functionConfig>".to_string(), index),
        (Some(f), _) => (f.to_string(), index_in_file()),
        (None, _) => ("<ResourceList items>".to_string(), index),
    };
    Origin { file, index, item: None }
}

fn to_result(p: &Problem) -> KrmResult {
    // The message is escaped by Problem's Display; the field path is quoted on its own.
    KrmResult {
        message: p.to_string(),
        severity: "error",
        resource_ref: None,
        field: p.field.as_deref().map(|f| crate::problem::printable(f).into_owned()),
    }
}
