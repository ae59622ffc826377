//! The render pipeline shared by every front-end: documents in, documents out, with each
//! ExternalSecret replaced by its Secret, stores dropped, and everything else passed through
//! unchanged and in order. All or nothing: any problem fails the whole render.

use std::collections::BTreeMap;

use crate::api::{self, ApiVersion, EsoKind};
use crate::manifest::{input, Document, OutputDoc};
use crate::problem::{Problem, Problems};
use crate::resolve::{self, stores::Catalog, ParsedExternalSecret};
use crate::settings::Settings;
use crate::template::apply::TemplateSources;

/// Time past `--timeout` after which a run that has still not returned is cut (a backstop: the
/// deadlines inside [`resolve`] end every provider call and assembly by `--timeout`).
pub const BACKSTOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What happens to each input document.
enum Role {
    ExternalSecret(usize),
    Dropped,
    PassThrough,
}

/// Loads the operator's stores and Namespaces (`--stores`) and credential Secrets (`--credentials`).
/// Their objects without a namespace take `--namespace` / `EXTSECRET_NAMESPACE` as set, never
/// the Application's namespace; without it a namespaced object is refused.
pub fn load_catalog(settings: &Settings) -> Result<Catalog, Problems> {
    let mut catalog = Catalog::default();
    let mut problems = Problems::default();
    let operator = Settings { namespace: settings.operator_namespace.clone(), ..settings.clone() };
    let unplaced = |doc: &Document, hint: &str| {
        Problem::new(format!("an object of an operator file without metadata.namespace takes --namespace / EXTSECRET_NAMESPACE, which is not set (never the Application's namespace); {hint}"))
            .at(&doc.origin)
            .object(format!("{} {}", doc.kind(), doc.qualified_name()))
    };
    if !settings.stores.is_empty() {
        for doc in input::read_inputs(&settings.stores)? {
            let kind = api::eso_version(doc.api_version()).and(EsoKind::parse(doc.kind()));
            match kind {
                Some(EsoKind::SecretStore) if doc.namespace().is_none() && operator.namespace.is_none() => problems.push(unplaced(
                    &doc,
                    "set its metadata.namespace, or serve several namespaces with a ClusterSecretStore and spec.conditions",
                )),
                Some(k @ (EsoKind::SecretStore | EsoKind::ClusterSecretStore)) => {
                    if let Err(p) = catalog.add_store(&doc, k, &operator) {
                        problems.extend(p);
                    }
                }
                _ if doc.kind() == "Namespace" && doc.api_version() == "v1" => catalog.add_namespace(&doc),
                _ => tracing::warn!(
                    "{}: --stores holds {} {}; ignored (only SecretStore, ClusterSecretStore and Namespace are read there)",
                    doc.origin,
                    doc.kind(),
                    doc.name()
                ),
            }
        }
    }
    catalog.mark_operator_stores();
    if !settings.credentials.is_empty() {
        for doc in input::read_inputs(&settings.credentials)? {
            if doc.kind() != "Secret" || doc.api_version() != "v1" {
                problems.push(Problem::new(format!("--credentials holds only Secrets, not {}", doc.kind())).at(&doc.origin));
            } else if doc.namespace().is_none() && operator.namespace.is_none() {
                problems.push(unplaced(&doc, "set its metadata.namespace"));
            } else if let Err(p) = catalog.add_credentials(&doc, &operator) {
                problems.extend(p);
            }
        }
    }
    problems.into_result(catalog)
}

/// Renders `docs` with the stores of `catalog` plus the SecretStores found in `docs`.
///
/// Errors: every problem of the run (bad documents, refused stores, unresolved references,
/// duplicate targets); no partial output is ever returned.
pub async fn render_documents(docs: Vec<Document>, catalog: Catalog, settings: &Settings) -> Result<Vec<OutputDoc>, Problems> {
    Ok(render_documents_indexed(docs, catalog, settings).await?.into_iter().map(|(_, d)| d).collect())
}

/// As [`render_documents`], each output document paired with the index of the input document it
/// comes from.
pub async fn render_documents_indexed(
    mut docs: Vec<Document>,
    mut catalog: Catalog,
    settings: &Settings,
) -> Result<Vec<(usize, OutputDoc)>, Problems> {
    let mut problems = Problems::default();
    let mut roles = Vec::with_capacity(docs.len());
    let mut ess: Vec<ParsedExternalSecret> = Vec::new();
    let mut existing_secrets: BTreeMap<(Option<String>, String), usize> = BTreeMap::new();
    for (i, doc) in docs.iter_mut().enumerate() {
        let role = match classify(doc) {
            Err(msg) => {
                problems.push(Problem::new(msg).at(&doc.origin).object(format!("{} {}", doc.kind(), doc.qualified_name())));
                Role::Dropped
            }
            Ok(None) => {
                if doc.kind() == "Secret" && doc.api_version() == "v1" {
                    let ns = doc.namespace().map(str::to_string).or_else(|| settings.namespace.clone());
                    existing_secrets.insert((ns, doc.name().to_string()), i);
                }
                Role::PassThrough
            }
            Ok(Some((version, EsoKind::ExternalSecret))) => {
                match resolve::parse_external_secret(doc, version, settings) {
                    Ok(es) => match bound_namespace(settings, es.effective_namespace.as_deref()) {
                        // Never resolved: its stores are another tenant's.
                        Err(why) => {
                            problems.push(Problem::new(why).at(&es.origin).object(es.object()).field("metadata.namespace"));
                            Role::Dropped
                        }
                        Ok(()) => {
                            // The parsed form is all that is needed from here on.
                            (doc.raw, doc.value) = (None, serde_json::Value::Null);
                            ess.push(es);
                            Role::ExternalSecret(ess.len() - 1)
                        }
                    },
                    Err(p) => {
                        problems.extend(p);
                        Role::Dropped
                    }
                }
            }
            Ok(Some((_, EsoKind::SecretStore))) => {
                let object = format!("SecretStore {}", doc.qualified_name());
                let namespace = doc.namespace().map(str::to_string).or_else(|| settings.namespace.clone());
                if settings.no_input_stores {
                    problems.push(
                        Problem::new(
                            "SecretStores from the rendered input are refused (--no-input-stores, and by default in argocd generate); the operator gives stores with --stores, or allows input stores in argocd generate with --allow-input-stores / EXTSECRET_ALLOW_INPUT_STORES",
                        )
                        .at(&doc.origin)
                        .object(object),
                    );
                } else if let Err(why) = bound_namespace(settings, namespace.as_deref()) {
                    problems.push(Problem::new(why).at(&doc.origin).object(object).field("metadata.namespace"));
                } else if let Err(p) = catalog.add_store(doc, EsoKind::SecretStore, settings) {
                    problems.extend(p);
                }
                Role::Dropped
            }
            Ok(Some((_, EsoKind::ClusterSecretStore))) => {
                problems.push(
                    Problem::new(
                        "ClusterSecretStores are the cluster operator's and come only from --stores, never from the rendered input",
                    )
                    .at(&doc.origin)
                    .object(format!("ClusterSecretStore {}", doc.qualified_name())),
                );
                Role::Dropped
            }
        };
        roles.push(role);
    }
    check_targets(&ess, &existing_secrets, &docs, &mut problems);
    // Resolve even when other documents had problems, so one run reports every problem.
    let sources = std::sync::Arc::new(template_sources(&docs, settings));
    let ess = std::sync::Arc::new(ess);
    let progress = resolve::Progress::default();
    // Each store's calls and each ExternalSecret's assembly end by `settings.timeout` inside
    // `resolve`, each failing on its own and naming the slow store; this outer bound is a backstop.
    let backstop = settings.timeout + BACKSTOP_GRACE;
    let resolved = match tokio::time::timeout(backstop, resolve::resolve(ess.clone(), &catalog, sources, settings, &progress)).await {
        Ok(r) => r,
        Err(_) => {
            let mut p = Problems(progress.take_early());
            p.push(Problem::new(format!(
                "deadline of {}s exceeded while reading from providers; nothing was rendered (check provider reachability, or raise --timeout)",
                settings.timeout.as_secs_f32()
            )));
            Err(p)
        }
    };
    let secrets = match resolved {
        Ok(secrets) if problems.is_empty() => secrets,
        Ok(_) => return Err(problems),
        Err(p) => {
            problems.extend(p);
            return Err(problems);
        }
    };
    let mut out = Vec::with_capacity(docs.len());
    for (source, (doc, role)) in docs.into_iter().zip(roles).enumerate() {
        match role {
            Role::ExternalSecret(i) => out.push((source, OutputDoc::Built(secrets[i].to_manifest()))),
            Role::Dropped => {}
            Role::PassThrough => out.push((
                source,
                match doc.raw {
                    Some(text) => OutputDoc::Raw { text, value: doc.value },
                    None => OutputDoc::Built(doc.value),
                },
            )),
        }
    }
    Ok(out)
}

/// The Application binding's rule for an input object in `namespace` (always `Ok` when the
/// render is not bound to an Application).
fn bound_namespace(settings: &Settings, namespace: Option<&str>) -> Result<(), String> {
    settings.application.as_ref().map_or(Ok(()), |app| app.check(namespace))
}

/// ConfigMaps and Secrets of the stream, by effective namespace and name, for `templateFrom`
/// (`data` and `binaryData`/`stringData`, as bytes). They stay in the output.
pub fn template_sources(docs: &[Document], settings: &Settings) -> TemplateSources {
    use base64::Engine;
    let mut sources = TemplateSources::default();
    for doc in docs.iter().filter(|d| d.api_version() == "v1") {
        let key = (doc.namespace().map(str::to_string).or_else(|| settings.namespace.clone()), doc.name().to_string());
        let field = |name: &str| doc.value.get(name).and_then(serde_json::Value::as_object).into_iter().flatten();
        let b64 = |v: &serde_json::Value| v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        let text = |v: &serde_json::Value| v.as_str().map(|s| s.as_bytes().to_vec());
        let values: BTreeMap<String, Vec<u8>> = match doc.kind() {
            "ConfigMap" => field("data")
                .filter_map(|(k, v)| text(v).map(|b| (k.clone(), b)))
                .chain(field("binaryData").filter_map(|(k, v)| b64(v).map(|b| (k.clone(), b))))
                .collect(),
            "Secret" => field("data")
                .filter_map(|(k, v)| b64(v).map(|b| (k.clone(), b)))
                .chain(field("stringData").filter_map(|(k, v)| text(v).map(|b| (k.clone(), b))))
                .collect(),
            _ => continue,
        };
        if doc.kind() == "ConfigMap" {
            sources.config_maps.insert(key, values);
        } else {
            sources.secrets.insert(key, values);
        }
    }
    sources
}

/// `Ok(Some)` for the group's kinds this tool handles, `Ok(None)` for other objects, `Err` for
/// group objects it refuses (other kinds, unknown versions).
fn classify(doc: &Document) -> Result<Option<(ApiVersion, EsoKind)>, String> {
    let Some(version) = api::eso_version(doc.api_version()) else { return Ok(None) };
    let v = ApiVersion::parse(version)
        .ok_or_else(|| format!("apiVersion `{}` is not supported (external-secrets.io/v1, v1beta1 or v1alpha1)", doc.api_version()))?;
    let kind = EsoKind::parse(doc.kind()).ok_or_else(|| {
        format!("kind `{}` of external-secrets.io is not supported (only ExternalSecret, SecretStore, ClusterSecretStore); it would reach the cluster unrendered", doc.kind())
    })?;
    Ok(Some((v, kind)))
}

/// Two ExternalSecrets targeting one Secret, or a target colliding with a Secret of the stream.
fn check_targets(
    ess: &[ParsedExternalSecret],
    existing: &BTreeMap<(Option<String>, String), usize>,
    docs: &[Document],
    problems: &mut Problems,
) {
    let mut targets: BTreeMap<(Option<String>, String), &ParsedExternalSecret> = BTreeMap::new();
    for es in ess {
        let key = (es.effective_namespace.clone(), es.target_name().to_string());
        if let Some(other) = targets.get(&key) {
            problems.push(
                Problem::new(format!("targets Secret `{}`, as does {} ({})", es.target_name(), other.object(), other.origin))
                    .at(&es.origin)
                    .object(es.object())
                    .field("spec.target.name"),
            );
        } else {
            targets.insert(key.clone(), es);
        }
        if let Some(&i) = existing.get(&key) {
            problems.push(
                Problem::new(format!("targets Secret `{}`, which the stream already holds ({})", es.target_name(), docs[i].origin))
                    .at(&es.origin)
                    .object(es.object())
                    .field("spec.target.name"),
            );
        }
    }
}
