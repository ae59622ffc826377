//! The part of `metadata` this tool reads.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `metadata` of a Kubernetes object; other metadata fields are accepted and ignored.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// `namespace/name`, or `name` alone for an object without a namespace.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", self.name),
            _ => self.name.clone(),
        }
    }
}
