//! Planning the write of a target Secret, pure: from the rendered Secret, the ExternalSecret's
//! identity and creationPolicy, and the Secret as it is in the cluster, to one server-side apply
//! body (plus the keys to remove), or a refusal. As ESO's `mutationFunc`/`applyOwnership`, with
//! server-side apply instead of Update.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Map, Value};

use super::hash;
use super::policy::CreationPolicy;
use crate::resolve::RenderedSecret;

/// Label ESO (and this controller) puts on every Secret it manages; the Secret watch filters on it.
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Annotation holding ESO's hash of the Secret's data.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Label naming the ExternalSecret that created a Secret with `creationPolicy: Owner`.
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Argo CD's tracking label and annotation: never copied, or Argo CD would prune the Secret as
/// its own and the controller recreate it, forever (ESO #68).
pub const ARGOCD_TRACKING: [&str; 2] = ["app.kubernetes.io/instance", "argocd.argoproj.io/tracking-id"];

/// The ExternalSecret a Secret is written for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// ESO's field manager for an ExternalSecret's writes, `externalsecrets.external-secrets.io/<name>`
/// (`…/sha3/<hash>` when the name is over 63 characters, as ESO's `fqdnFor`), so fields that ESO
/// wrote are recognised as this ExternalSecret's own after a move from ESO.
pub fn field_manager(es_name: &str) -> String {
    if es_name.len() > 63 {
        format!("externalsecrets.external-secrets.io/sha3/{}", &hash::created_by("", es_name)[..32])
    } else {
        format!("externalsecrets.external-secrets.io/{es_name}")
    }
}

/// What to do with the target Secret.
#[derive(Clone, Debug, PartialEq)]
pub enum WritePlan {
    /// The Secret already holds exactly this (or `creationPolicy: None`): no write.
    UpToDate,
    /// `creationPolicy: Merge` and no Secret: nothing is created (ESO's `SecretMissing`).
    Missing,
    /// Server-side apply `body`; then remove `remove_keys` from `data` (keys the ExternalSecret no
    /// longer names, or foreign keys of a Secret it owns). `create` is true when the Secret is new.
    Apply { body: Value, remove_keys: Vec<String>, create: bool },
    /// A configuration conflict that no retry fixes (ESO marks it failed without requeue).
    Refuse(String),
}

/// The data of an existing Secret, decoded.
pub fn existing_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Keys of `data` that `manager` owns according to `metadata.managedFields` (a real API server
/// keeps these; a server without field tracking gives none).
fn managed_keys(secret: &Secret, manager: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(manager) {
            continue;
        }
        if let Some(data) = entry.fields_v1.as_ref().and_then(|f| f.0.get("f:data")).and_then(Value::as_object) {
            keys.extend(data.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_string));
        }
    }
    keys
}

/// The controller ownerReference of `secret` naming another ExternalSecret, if any.
fn foreign_owner(secret: &Secret, owner: &Owner) -> Option<String> {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == "ExternalSecret" && r.uid != owner.uid)
        .map(|r| r.name.clone())
}

/// Plans the write of `rendered` for `owner` under `policy`, given the Secret as it is (`None` =
/// absent). Errors are configuration conflicts: a Secret controlled by another ExternalSecret, or
/// a change to an immutable Secret's data.
pub fn plan(rendered: &RenderedSecret, owner: &Owner, policy: CreationPolicy, existing: Option<&Secret>) -> WritePlan {
    if policy == CreationPolicy::None {
        return WritePlan::UpToDate;
    }
    if existing.is_none() && policy == CreationPolicy::Merge {
        return WritePlan::Missing;
    }
    if let Some(other) = existing.and_then(|s| foreign_owner(s, owner)) {
        return WritePlan::Refuse(format!("target is owned by another ExternalSecret (`{other}`)"));
    }
    let manager = field_manager(&owner.name);
    let current = existing.map(existing_data).unwrap_or_default();
    let desired: BTreeMap<String, Vec<u8>> = rendered.data.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    // Keys to drop: everything not desired when the Secret is ours alone; when merging, only the
    // keys this ExternalSecret wrote before.
    let remove_keys: Vec<String> = if policy.merges() {
        existing.map(|s| managed_keys(s, &manager)).unwrap_or_default().into_iter().filter(|k| !desired.contains_key(k)).collect()
    } else {
        current.keys().filter(|k| !desired.contains_key(*k)).cloned().collect()
    };
    let mut final_data = if policy.merges() { current.clone() } else { BTreeMap::new() };
    for k in &remove_keys {
        final_data.remove(k);
    }
    final_data.extend(desired.iter().map(|(k, v)| (k.clone(), v.clone())));
    let data_hash = hash::data_hash(final_data.iter().map(|(k, v)| (k, v.as_slice())));

    let mut labels: BTreeMap<String, String> =
        rendered.labels.iter().filter(|(k, _)| !ARGOCD_TRACKING.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut annotations: BTreeMap<String, String> =
        rendered.annotations.iter().filter(|(k, _)| !ARGOCD_TRACKING.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(MANAGED_LABEL.into(), "true".into());
    if policy == CreationPolicy::Owner {
        labels.insert(CREATED_BY_LABEL.into(), hash::created_by(&owner.namespace, &owner.name));
    }
    annotations.insert(DATA_HASH_ANNOTATION.into(), data_hash);
    // In merge modes the Secret's type stays the owner's unless a template sets one.
    let set_type = !policy.merges() || rendered.secret_type != "Opaque";

    if let Some(s) = existing {
        let same_data = current == final_data;
        let same_type = !set_type || s.type_.as_deref().unwrap_or("Opaque") == rendered.secret_type;
        if s.immutable == Some(true) && !(same_data && same_type) {
            return WritePlan::Refuse("could not update secret, target is immutable".into());
        }
        let has = |have: &Option<BTreeMap<String, String>>, want: &BTreeMap<String, String>| {
            want.iter().all(|(k, v)| have.as_ref().and_then(|m| m.get(k)) == Some(v))
        };
        let owned = policy != CreationPolicy::Owner
            || s.metadata.owner_references.iter().flatten().any(|r| r.uid == owner.uid && r.controller == Some(true));
        if same_data
            && same_type
            && owned
            && has(&s.metadata.labels, &labels)
            && has(&s.metadata.annotations, &annotations)
            && (s.immutable == Some(true)) == rendered.immutable
        {
            return WritePlan::UpToDate;
        }
    }

    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(rendered.name));
    metadata.insert("namespace".into(), json!(owner.namespace));
    metadata.insert("labels".into(), json!(labels));
    metadata.insert("annotations".into(), json!(annotations));
    if policy == CreationPolicy::Owner {
        metadata.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": "external-secrets.io/v1",
                "kind": "ExternalSecret",
                "name": owner.name,
                "uid": owner.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
    }
    let mut body = Map::new();
    body.insert("apiVersion".into(), json!("v1"));
    body.insert("kind".into(), json!("Secret"));
    body.insert("metadata".into(), Value::Object(metadata));
    if set_type {
        body.insert("type".into(), json!(rendered.secret_type));
    }
    if rendered.immutable {
        body.insert("immutable".into(), json!(true));
    }
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    body.insert("data".into(), Value::Object(desired.iter().map(|(k, v)| (k.clone(), json!(b64(v)))).collect()));
    WritePlan::Apply { body: Value::Object(body), remove_keys, create: existing.is_none() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::SecretValue;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, OwnerReference};
    use k8s_openapi::ByteString;

    fn rendered(pairs: &[(&str, &str)]) -> RenderedSecret {
        let mut labels = BTreeMap::new();
        labels.insert("app.kubernetes.io/instance".to_string(), "argo-app".to_string());
        labels.insert("team".to_string(), "db".to_string());
        RenderedSecret {
            name: "db-creds".into(),
            namespace: Some("apps".into()),
            labels,
            annotations: BTreeMap::new(),
            immutable: false,
            secret_type: "Opaque".into(),
            data: pairs.iter().map(|(k, v)| (k.to_string(), SecretValue(v.as_bytes().to_vec()))).collect(),
        }
    }

    fn owner() -> Owner {
        Owner { name: "db".into(), namespace: "apps".into(), uid: "uid-1".into() }
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta { name: Some("db-creds".into()), namespace: Some("apps".into()), ..Default::default() },
            data: Some(pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn owner_apply_body_has_owner_reference_labels_and_eso_hash() {
        let WritePlan::Apply { body, remove_keys, create } = plan(&rendered(&[("password", "hi")]), &owner(), CreationPolicy::Owner, None)
        else {
            panic!("expected an apply")
        };
        assert!(create);
        assert!(remove_keys.is_empty());
        assert_eq!(
            body,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "db-creds", "namespace": "apps",
                    "labels": {
                        "reconcile.external-secrets.io/created-by": hash::created_by("apps", "db"),
                        "reconcile.external-secrets.io/managed": "true",
                        "team": "db",
                    },
                    "annotations": {"reconcile.external-secrets.io/data-hash": hash::data_hash([(&"password".to_string(), b"hi".as_slice())])},
                    "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": "db", "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}],
                },
                "type": "Opaque",
                "data": {"password": "aGk="},
            })
        );
    }

    #[test]
    fn owned_secret_loses_keys_no_longer_named_and_is_left_alone_when_in_sync() {
        let existing = secret(&[("password", "old"), ("stale", "x")]);
        let WritePlan::Apply { remove_keys, create, .. } =
            plan(&rendered(&[("password", "new")]), &owner(), CreationPolicy::Orphan, Some(&existing))
        else {
            panic!("expected an apply")
        };
        assert_eq!(remove_keys, vec!["stale".to_string()]);
        assert!(!create);
        // Written once, the same Secret is up to date.
        let r = rendered(&[("password", "new")]);
        let WritePlan::Apply { body, .. } = plan(&r, &owner(), CreationPolicy::Orphan, None) else { panic!() };
        let mut written = secret(&[("password", "new")]);
        written.metadata.labels = serde_json::from_value(body["metadata"]["labels"].clone()).unwrap();
        written.metadata.annotations = serde_json::from_value(body["metadata"]["annotations"].clone()).unwrap();
        written.type_ = Some("Opaque".into());
        assert_eq!(plan(&r, &owner(), CreationPolicy::Orphan, Some(&written)), WritePlan::UpToDate);
    }

    #[test]
    fn merge_keeps_foreign_keys_and_hashes_the_merged_data() {
        let mut existing = secret(&[("foreign", "f"), ("mine", "old"), ("dropped", "d")]);
        existing.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(field_manager("db")),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(json!({"f:data": {"f:mine": {}, "f:dropped": {}}}))),
            ..Default::default()
        }]);
        let WritePlan::Apply { body, remove_keys, .. } =
            plan(&rendered(&[("mine", "new")]), &owner(), CreationPolicy::Merge, Some(&existing))
        else {
            panic!()
        };
        assert_eq!(remove_keys, vec!["dropped".to_string()]);
        assert_eq!(body["data"], json!({"mine": "bmV3"}));
        assert!(body.get("type").is_none());
        assert!(body["metadata"].get("ownerReferences").is_none());
        let f = ("foreign".to_string(), b"f".to_vec());
        let m = ("mine".to_string(), b"new".to_vec());
        assert_eq!(
            body["metadata"]["annotations"][DATA_HASH_ANNOTATION],
            json!(hash::data_hash([(&f.0, f.1.as_slice()), (&m.0, m.1.as_slice())]))
        );
    }

    #[test]
    fn merge_never_creates_and_none_never_writes() {
        assert_eq!(plan(&rendered(&[("a", "b")]), &owner(), CreationPolicy::Merge, None), WritePlan::Missing);
        assert_eq!(plan(&rendered(&[("a", "b")]), &owner(), CreationPolicy::None, None), WritePlan::UpToDate);
        assert!(matches!(
            plan(&rendered(&[("a", "b")]), &owner(), CreationPolicy::CreateOrMerge, None),
            WritePlan::Apply { create: true, .. }
        ));
    }

    #[test]
    fn refuses_a_secret_of_another_external_secret_and_immutable_changes() {
        let mut theirs = secret(&[("a", "b")]);
        theirs.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "external-secrets.io/v1".into(),
            kind: "ExternalSecret".into(),
            name: "other".into(),
            uid: "uid-2".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        assert!(
            matches!(plan(&rendered(&[("a", "b")]), &owner(), CreationPolicy::Owner, Some(&theirs)), WritePlan::Refuse(m) if m.contains("`other`"))
        );
        let mut frozen = secret(&[("a", "b")]);
        frozen.immutable = Some(true);
        assert_eq!(
            plan(&rendered(&[("a", "c")]), &owner(), CreationPolicy::Orphan, Some(&frozen)),
            WritePlan::Refuse("could not update secret, target is immutable".into())
        );
    }

    #[test]
    fn field_manager_matches_eso() {
        assert_eq!(field_manager("db"), "externalsecrets.external-secrets.io/db");
        assert!(field_manager(&"x".repeat(200)).len() <= 128);
    }
}
