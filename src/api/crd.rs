//! CustomResourceDefinitions for `external-secrets.io/v1` ExternalSecret, SecretStore and
//! ClusterSecretStore, generated from this crate's types (`schemars`), for `extsecret crds`.
//!
//! Compatible with ESO's so the same objects apply to either:
//! - only `v1` is declared (ESO's `v1beta1` is unserved); status is a subresource;
//! - every object keeps fields this tool does not model (`x-kubernetes-preserve-unknown-fields`),
//!   so `provider` sections of other providers and ESO fields beyond this tool survive;
//! - no `default` anywhere (ESO's defaults inside lists made Argo CD diff forever, ESO #6797);
//!   the controller applies ESO's defaults itself (`refreshInterval: 1h`, `creationPolicy: Owner`).
//!
//! Do not apply these over an installed ESO's CRDs (their served and stored versions would
//! clash): where ESO is installed, use ESO's CRDs.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::{AwsProvider, AzureKvProvider, ExternalSecretSpec, FakeProvider, SecretStoreSpec};

/// The schema of `T` as Kubernetes wants it: inlined, structural, no defaults or formats.
fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    structural(&mut v);
    v
}

/// Rewrites a JSON schema node in place: `true`/`{}` become "any value kept"; objects keep
/// unknown fields; `default`, `format`, `title`, `$schema` and definitions are dropped.
fn structural(v: &mut Value) {
    if v == &json!(true) || v == &json!({}) {
        *v = json!({ "x-kubernetes-preserve-unknown-fields": true });
        return;
    }
    let Some(map) = v.as_object_mut() else { return };
    for k in ["default", "format", "title", "$schema", "$defs", "definitions", "examples"] {
        map.remove(k);
    }
    // An enum whose variants carry docs comes as `oneOf` of one-value schemas: one string enum.
    for key in ["oneOf", "anyOf"] {
        let values: Option<Vec<Value>> = map.get(key).and_then(Value::as_array).and_then(|alts| {
            alts.iter()
                .map(|a| match (a.get("const"), a.get("enum").and_then(Value::as_array)) {
                    (Some(c), _) => Some(vec![c.clone()]),
                    (None, Some(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat())
        });
        if let Some(values) = values.filter(|v| v.iter().all(Value::is_string)) {
            map.remove(key);
            map.insert("type".into(), json!("string"));
            map.insert("enum".into(), Value::Array(values));
        }
    }
    if map.get("type") == Some(&json!("object")) && map.contains_key("properties") {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    // A schema with no type and no structure (e.g. an untyped field with a description) is "any".
    if !map.contains_key("type") && !map.keys().any(|k| ["properties", "items", "anyOf", "oneOf", "allOf", "enum"].contains(&k.as_str())) {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            props.values_mut().for_each(structural);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = map.get_mut(key) {
            if inner.is_object() || inner == &json!(true) {
                structural(inner);
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(items)) = map.get_mut(key) {
            items.iter_mut().for_each(structural);
        }
    }
}

fn object_schema(spec: Value, description: &str) -> Value {
    json!({
        "openAPIV3Schema": {
            "description": description,
            "type": "object",
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "metadata": { "type": "object" },
                "spec": spec,
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
        }
    })
}

fn crd(kind: &str, plural: &str, short: &str, scope: &str, schema: Value, columns: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{}", super::GROUP),
            "labels": { "app.kubernetes.io/part-of": "extsecret" },
        },
        "spec": {
            "group": super::GROUP,
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": kind.to_lowercase(),
                "shortNames": [short],
                "categories": ["external-secrets"],
            },
            "scope": scope,
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "additionalPrinterColumns": columns,
                "schema": schema,
            }],
        },
    })
}

fn store_spec_schema() -> Value {
    let mut spec = schema_of::<SecretStoreSpec>();
    spec["properties"]["provider"] = json!({
        "description": "Exactly one provider. aws, azurekv and fake are implemented by extsecret; other ESO providers are kept as written.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "aws": schema_of::<AwsProvider>(),
            "azurekv": schema_of::<AzureKvProvider>(),
            "fake": schema_of::<FakeProvider>(),
        },
    });
    spec
}

/// The three CustomResourceDefinitions, in apply order.
pub fn crds() -> Vec<Value> {
    let ready = |col: &str| format!(".status.conditions[?(@.type==\"Ready\")].{col}");
    let es_columns = json!([
        { "name": "StoreType", "type": "string", "jsonPath": ".spec.secretStoreRef.kind" },
        { "name": "Store", "type": "string", "jsonPath": ".spec.secretStoreRef.name" },
        { "name": "Refresh Interval", "type": "string", "jsonPath": ".spec.refreshInterval" },
        { "name": "Status", "type": "string", "jsonPath": ready("reason") },
        { "name": "Ready", "type": "string", "jsonPath": ready("status") },
        { "name": "Last Sync", "type": "date", "jsonPath": ".status.refreshTime" },
    ]);
    let store_columns = json!([
        { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" },
        { "name": "Status", "type": "string", "jsonPath": ready("reason") },
        { "name": "Ready", "type": "string", "jsonPath": ready("status") },
    ]);
    vec![
        crd(
            "ExternalSecret",
            "externalsecrets",
            "es",
            "Namespaced",
            object_schema(schema_of::<ExternalSecretSpec>(), "ExternalSecret: which remote values make which Secret."),
            es_columns,
        ),
        crd(
            "SecretStore",
            "secretstores",
            "ss",
            "Namespaced",
            object_schema(store_spec_schema(), "SecretStore: a provider and its credentials, for one namespace."),
            store_columns.clone(),
        ),
        crd(
            "ClusterSecretStore",
            "clustersecretstores",
            "css",
            "Cluster",
            object_schema(
                store_spec_schema(),
                "ClusterSecretStore: a provider and its credentials, for the namespaces its conditions allow.",
            ),
            store_columns,
        ),
    ]
}

/// Walks a schema and returns the paths that break Kubernetes' structural-schema rules or ESO
/// compatibility: `$ref`, `default`, a node with neither `type` nor preserve-unknown-fields.
pub fn structural_violations(v: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = v.as_object() else { return };
    for bad in ["$ref", "default", "$schema", "definitions", "$defs"] {
        if map.contains_key(bad) {
            out.push(format!("{path}: {bad}"));
        }
    }
    let typed = map.contains_key("type") || map.contains_key("x-kubernetes-preserve-unknown-fields") || map.contains_key("anyOf");
    if !typed {
        out.push(format!("{path}: no type"));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, p) in props {
            structural_violations(p, &format!("{path}.{k}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner @ Value::Object(_)) = map.get(key) {
            structural_violations(inner, &format!("{path}[{key}]"), out);
        }
    }
    let _ = Map::<String, Value>::new();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_are_structural_without_defaults_and_keep_other_providers() {
        let crds = crds();
        assert_eq!(crds.len(), 3);
        for c in &crds {
            let schema = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut bad = Vec::new();
            structural_violations(schema, c["spec"]["names"]["kind"].as_str().unwrap(), &mut bad);
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(c["spec"]["versions"][0]["subresources"], json!({"status": {}}));
        }
        let es = &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(es["properties"]["data"]["type"], json!("array"));
        assert_eq!(es["properties"]["data"]["items"]["properties"]["remoteRef"]["properties"]["key"]["type"], json!("string"));
        assert_eq!(es["x-kubernetes-preserve-unknown-fields"], json!(true));
        let provider = &crds[1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["provider"];
        assert_eq!(provider["x-kubernetes-preserve-unknown-fields"], json!(true));
        assert_eq!(provider["properties"]["aws"]["properties"]["region"]["type"], json!("string"));
        assert_eq!(crds[2]["spec"]["scope"], json!("Cluster"));
    }

    #[test]
    fn the_example_crds_are_the_generated_ones() {
        let generated: String = crds().iter().map(|c| format!("---\n{}", crate::manifest::output::to_yaml(c))).collect();
        assert!(
            include_str!("../../examples/controller/crds.yaml") == generated,
            "examples/controller/crds.yaml is stale: run `extsecret crds > examples/controller/crds.yaml`"
        );
    }
}
