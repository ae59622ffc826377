//! kustomize legacy exec plugin: the binary installed (or linked) as
//! `$KUSTOMIZE_PLUGIN_HOME/external-secrets.io/<v1 or v1beta1>/externalsecret/ExternalSecret`,
//! which `kubectl kustomize --enable-alpha-plugins` runs with the generator's config file (an
//! ExternalSecret) in argv\[1\] and the kustomization directory as cwd.
//!
//! As a generator (empty stdin) it prints the Secret of the config's ExternalSecret. Listed under
//! `transformers:` it also receives the current resources on stdin: those pass through (with
//! their `kustomize.config.k8s.io/id` annotations), ExternalSecrets among them are rendered, and
//! the config's Secret is added. Stores come from `EXTSECRET_STORES` (relative to the
//! kustomization directory; an absolute path under Argo CD) and SecretStores in the stream. An
//! ExternalSecret without a namespace is resolved in the Argo CD Application's namespace when the
//! render is bound to one (see [`crate::binding`]), else in the kustomization's `namespace:`
//! (where kustomize puts the generated Secret).

use std::io::IsTerminal;
use std::path::Path;

use crate::manifest::{input, output, parse_stream};
use crate::problem::Problems;
use crate::settings::OperatorArgs;

/// Runs the plugin; returns the exit code.
pub async fn run(config: &Path, operator: OperatorArgs) -> i32 {
    let root = std::env::var("KUSTOMIZE_PLUGIN_CONFIG_ROOT").unwrap_or_else(|_| ".".into());
    let result = async {
        let mut settings = super::bind(operator.settings(), &operator, false)?;
        // The kustomization's `namespace:` is the app's own text: it never replaces the bound
        // Application's namespace, nor names the namespace of operator files.
        if settings.namespace.is_none() {
            settings.namespace = kustomization_namespace(Path::new(&root));
        }
        let bytes = std::fs::read(config).map_err(|e| {
            Problems::from(crate::problem::Problem::new(format!("{}: cannot read plugin config: {}", config.display(), e.kind())))
        })?;
        let mut docs = Vec::new();
        if !std::io::stdin().is_terminal() {
            let stdin = input::read_stdin().map_err(Problems::from)?;
            if !stdin.iter().all(u8::is_ascii_whitespace) {
                docs.extend(parse_stream("<kustomize resources>", &stdin)?);
            }
        }
        docs.extend(parse_stream(&format!("{root}/<generator config>"), &bytes)?);
        let out = super::render_with_settings(docs, &settings).await?;
        super::check_not_empty(&out, &settings)?;
        Ok(out)
    }
    .await;
    match result {
        Ok(out) => super::emit(&output::write_yaml(&out)),
        Err(p) => super::report(&p),
    }
}

/// The `namespace:` of the kustomization in `root`, if any. kustomize's namespace transformer
/// puts a generator's output in that namespace, so an ExternalSecret without one is resolved
/// there (as its Secret will be applied there); an explicit `metadata.namespace`, the bound
/// Application's namespace, `--namespace` or `EXTSECRET_NAMESPACE` come first.
fn kustomization_namespace(root: &Path) -> Option<String> {
    let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"].iter().map(|n| root.join(n)).find(|p| p.is_file())?;
    let text = std::fs::read_to_string(file).ok()?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    value.get("namespace").and_then(serde_json::Value::as_str).filter(|n| !n.is_empty()).map(str::to_string)
}
