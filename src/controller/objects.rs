//! The cluster objects the controller reads, seen through the render's decoders: the
//! `external-secrets.io/v1` resources as dynamic objects, turned into [`Document`]s.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
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
