//! extsecret: turns `external-secrets.io` ExternalSecret manifests into Kubernetes Secrets at render
//! time (CLI, Argo CD config-management plugin, KRM function, kustomize legacy exec plugin).
//!
//! Layout, one concern per module:
//! - [`api`]: the `external-secrets.io` types (ExternalSecret, SecretStore, ClusterSecretStore) and
//!   their strict decoding from manifests.
//! - [`manifest`]: reading and writing manifest streams (YAML/JSON documents, `List`, ResourceList).
//! - [`provider`]: one [`provider::Provider`] trait, one file per provider (`fake`, `aws`).
//! - [`resolve`]: store lookup and namespace rules, the fetch plan, value extraction, building the Secret.
//! - [`template`]: ESO templates (Go text/template via gotmpl, and handlebars), bytes-safe.
//! - [`render`]: the render pipeline shared by every front-end.
//! - [`binding`]: binding a render to its Argo CD Application (namespaces it may use).
//! - [`frontend`]: thin front-ends (CLI `render`, Argo CD `generate`/`discover`, KRM, legacy plugin).
//! - [`controller`]: the in-cluster reconciler; [`logging`]: which log lines are written.
//! - [`isolate`]: panics in template and provider code caught per ExternalSecret, never printed.

pub mod api;
pub mod binding;
pub mod controller;
pub mod frontend;
pub mod isolate;
pub mod logging;
pub mod manifest;
pub mod problem;
pub mod provider;
pub mod render;
pub mod resolve;
pub mod settings;
pub mod template;
