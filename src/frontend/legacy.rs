//! kustomize legacy exec plugin: the binary installed (or linked) as
//! `$KUSTOMIZE_PLUGIN_HOME/external-secrets.io/<v1 or v1beta1>/externalsecret/ExternalSecret`,
//! which `kubectl kustomize --enable-alpha-plugins` runs with the generator's config file (an
//! ExternalSecret) in argv\[1\] and the kustomization directory as cwd.
//!
//! As a generator (empty stdin) it prints the Secret of the config's ExternalSecret. Listed under
//! `transformers:` it also receives the current resources on stdin: those pass through (with
//! their `kustomize.config.k8s.io/id` annotations), ExternalSecrets among them are rendered, and
//! the config's Secret is added. Stores come from `EXTSECRET_STORES` (relative to the
//! kustomization directory) and SecretStores in the stream.

use std::io::IsTerminal;
use std::path::Path;

use crate::manifest::{input, output, parse_stream};
use crate::problem::Problems;
use crate::settings::OperatorArgs;

/// Runs the plugin; returns the exit code.
pub async fn run(config: &Path, operator: OperatorArgs) -> i32 {
    let settings = operator.settings();
    let result = async {
        let bytes = std::fs::read(config).map_err(|e| Problems::from(crate::problem::Problem::new(format!("{}: cannot read plugin config: {}", config.display(), e.kind()))))?;
        let root = std::env::var("KUSTOMIZE_PLUGIN_CONFIG_ROOT").unwrap_or_else(|_| ".".into());
        let mut docs = Vec::new();
        if !std::io::stdin().is_terminal() {
            let stdin = input::read_stdin().map_err(Problems::from)?;
            if !stdin.iter().all(u8::is_ascii_whitespace) {
                docs.extend(parse_stream("<kustomize resources>", &stdin)?);
            }
        }
        docs.extend(parse_stream(&format!("{root}/<generator config>"), &bytes)?);
        super::render_with_settings(docs, &settings).await
    }
    .await;
    match result {
        Ok(out) => super::emit(&output::write_yaml(&out)),
        Err(p) => super::report(&p),
    }
}
