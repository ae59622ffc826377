//! Stores the operator's trust rules refuse (`resolve::trust`), logged when the controller first
//! sees them (so a migration from ESO shows its breakage at start) and after each change.

use kube::api::DynamicObject;

use super::objects;
use crate::api::{EsoKind, StoreRefKind};
use crate::resolve::stores::Catalog;
use crate::settings::Settings;

/// Why `store` would be refused, if it would. `None` for a store of another controller class and
/// for a store whose spec is invalid (reported to its ExternalSecrets in detail).
pub fn refusal(store: &DynamicObject, kind: StoreRefKind, settings: &Settings, controller_class: &str) -> Option<String> {
    let value = objects::to_value(store);
    let class = value.pointer("/spec/controller").and_then(serde_json::Value::as_str).unwrap_or("");
    if !super::wave::class_matches(class, controller_class) {
        return None;
    }
    let eso_kind = if kind == StoreRefKind::SecretStore { EsoKind::SecretStore } else { EsoKind::ClusterSecretStore };
    let mut catalog = Catalog::default();
    catalog.add_store(&objects::document(value), eso_kind, settings).ok()?;
    let store = catalog.stores().next()?;
    crate::resolve::trust::check(store, settings).err().map(|why| format!("{}: [Refused] {why}", store.key))
}

/// Logs a refusal of `store` (a warning: its ExternalSecrets will get Ready=False).
pub fn log_refusal(store: &DynamicObject, kind: StoreRefKind, settings: &Settings, controller_class: &str) {
    if let Some(why) = refusal(store, kind, settings, controller_class) {
        tracing::warn!("{why}");
    }
}
