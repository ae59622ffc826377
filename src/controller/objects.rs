//! The cluster objects the controller reads, seen through the render's decoders: the
//! `external-secrets.io/v1` resources as dynamic objects, turned into [`Document`]s.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::api::EsoKind;
use crate::manifest::Document;
use crate::problem::Origin;

/// The `external-secrets.io/v1` resource of a kind (plural as ESO's CRDs).
pub fn resource(kind: EsoKind) -> ApiResource {
    let plural = match kind {
        EsoKind::ExternalSecret => "externalsecrets",
        EsoKind::SecretStore => "secretstores",
        EsoKind::ClusterSecretStore => "clustersecretstores",
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(crate::api::GROUP, "v1", kind.as_str()), plural)
}

/// A JSON value kept as its compact text: a parsed JSON tree costs several times its text, and
/// the controller caches every ExternalSecret.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsonText(pub String);

impl JsonText {
    /// The value, parsed again (`Null` if the text were somehow invalid).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| JsonText(v.to_string()))
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

/// An ExternalSecret as the controller caches it: typed metadata, `spec` and `status` as text.
/// A missing `spec` reads as `None` (reported by the reconcile, not a broken watch). A static
/// resource type (not a dynamic one), so the controller's per-object references carry no copy of
/// the API resource's names.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExternalSecretObject {
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<JsonText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JsonText>,
}

impl kube::Resource for ExternalSecretObject {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "ExternalSecret".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        crate::api::GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "externalsecrets".into()
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

/// The ExternalSecret as one JSON value (`apiVersion`, `kind`, `metadata`, `spec`, `status`).
pub fn external_secret_value(obj: &ExternalSecretObject) -> Value {
    let mut v = serde_json::json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": serde_json::to_value(&obj.metadata).unwrap_or(Value::Null),
    });
    if let Some(spec) = &obj.spec {
        v["spec"] = spec.value();
    }
    if let Some(status) = &obj.status {
        v["status"] = status.value();
    }
    v
}

/// A dynamic object as one JSON value (`apiVersion`, `kind`, `metadata`, and its other fields).
pub fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// A cluster object as a document for the shared decoders. Its origin reads `cluster`: problems
/// about it name the object and field, as in a render.
pub fn document(value: Value) -> Document {
    Document { origin: Origin { file: "cluster".into(), index: 0, item: None }, raw: None, value }
}

/// A kube API error without request bodies: the HTTP status and the server's reason and message.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("API server answered {} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// Whether an API error is a 409 Conflict (a concurrent write: retry at once).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether an API error is a 404 Not Found.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_secrets_are_cached_as_text_and_read_back_whole() {
        let json = serde_json::json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": "apps"},
            "spec": {"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]},
            "status": {"refreshTime": "2026-01-01T00:00:00Z"},
        });
        let obj: ExternalSecretObject = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(obj.spec.as_ref().unwrap().0, r#"{"secretStoreRef":{"name":"s"},"data":[{"secretKey":"a","remoteRef":{"key":"k"}}]}"#);
        assert_eq!(external_secret_value(&obj), json);
        // No spec: read, not refused (one bad object must not break the watch).
        let bare: ExternalSecretObject = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
        assert!(bare.spec.is_none() && bare.status.is_none());
    }
}
