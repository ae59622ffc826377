//! The KRM Functions Specification's `ResourceList` envelope (`config.kubernetes.io/v1`).

use serde_json::{json, Value};

use crate::problem::{Origin, Problem, Problems};

/// A ResourceList read from stdin.
#[derive(Clone, Debug)]
pub struct ResourceList {
    /// `apiVersion` as received (`config.kubernetes.io/v1` or `v1beta1`), echoed on output.
    pub api_version: String,
    pub items: Vec<Value>,
    pub function_config: Option<Value>,
}

/// One entry of `results[]`.
#[derive(Clone, Debug)]
pub struct KrmResult {
    pub message: String,
    /// `error`, `warning` or `info`.
    pub severity: &'static str,
    /// `{apiVersion, kind, name, namespace}` of the item concerned.
    pub resource_ref: Option<Value>,
    /// Field path in the item.
    pub field: Option<String>,
}

impl ResourceList {
    /// Parses a ResourceList (YAML or JSON); `None` when the input is a plain stream instead.
    pub fn parse(bytes: &[u8]) -> Result<Option<ResourceList>, Problems> {
        let docs = super::document::parse_resource_list_stream("<stdin>", bytes)?;
        let [doc] = docs.as_slice() else { return Ok(None) };
        if doc.kind() != "ResourceList" || !doc.api_version().starts_with("config.kubernetes.io/") {
            return Ok(None);
        }
        let origin = Origin { file: "<stdin>".into(), index: 0, item: None };
        let mut items = match doc.value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(Problem::new("`items` must be a sequence").at(&origin).field("items").into()),
        };
        if let Some(raw) = &doc.raw {
            // Items are written again from their values: keep their big integers' digits.
            items.iter_mut().for_each(|item| super::numbers::keep_big_integers(item, raw));
        }
        let function_config = doc.value.get("functionConfig").filter(|v| !v.is_null()).cloned();
        Ok(Some(ResourceList { api_version: doc.api_version().to_string(), items, function_config }))
    }

    /// The output envelope: these items and results (`functionConfig` is not echoed).
    pub fn to_value(&self, items: Vec<Value>, results: &[KrmResult]) -> Value {
        let mut out = json!({ "apiVersion": self.api_version, "kind": "ResourceList", "items": items });
        if !results.is_empty() {
            out["results"] = results.iter().map(KrmResult::to_value).collect();
        }
        out
    }
}

impl KrmResult {
    fn to_value(&self) -> Value {
        let mut v = json!({ "message": self.message, "severity": self.severity });
        if let Some(r) = &self.resource_ref {
            v["resourceRef"] = r.clone();
        }
        if let Some(f) = &self.field {
            v["field"] = json!({ "path": f });
        }
        v
    }
}
