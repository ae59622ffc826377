//! Front-ends: thin adapters from each calling convention to [`crate::render`].
//!
//! | front-end | input | stores and credentials | on failure |
//! |---|---|---|---|
//! | [`cli`] `extsecret render` | files, folders, stdin | input SecretStores, `--stores`, `--credentials` | exit 1, empty stdout |
//! | [`argocd`] `extsecret argocd generate`/`discover` | the app directory (plain, kustomize or helm) | `--stores`, `--credentials` (absolute); input SecretStores only with `--allow-input-stores` | exit 1, empty stdout |
//! | [`krm`] `extsecret krm` | a ResourceList on stdin | items, `EXTSECRET_STORES` | ResourceList with error results, exit 1 |
//! | [`legacy`] kustomize legacy exec plugin | config file in argv\[1\], stdin | `EXTSECRET_STORES` (relative to the kustomization) | exit 1, empty stdout |
//!
//! Every front-end goes through [`bind`]: under Argo CD (always in `argocd generate`) the render is
//! bound to the Application's namespaces ([`crate::binding`]). `argocd generate` and `discover`
//! also read files only inside the repository tree Argo CD handed over
//! ([`crate::manifest::input::Confinement`]); `render --confine-to DIR` opts into the same rule.

pub mod argocd;
pub mod cli;
pub mod krm;
pub mod legacy;
pub mod renderer;

use std::io::Write;

use crate::binding::Application;
use crate::manifest::{Document, OutputDoc};
use crate::problem::{Problem, Problems};
use crate::render;
use crate::settings::{OperatorArgs, Settings};

/// Exit code of a failed render.
pub const EXIT_FAILURE: i32 = 1;

/// Loads the operator's catalog and renders `docs`.
pub async fn render_with_settings(docs: Vec<Document>, settings: &Settings) -> Result<Vec<OutputDoc>, Problems> {
    let catalog = render::load_catalog(settings)?;
    render::render_documents(docs, catalog, settings).await
}

/// Binds `settings` to the Argo CD Application when it is known (always in `argocd generate`,
/// else when Argo CD's `ARGOCD_APP_NAMESPACE` or `ARGOCD_APP_PROJECT_NAME` is in the
/// environment; see [`crate::binding`]): input objects without a namespace take the
/// Application's, operator paths must be absolute (a relative one would resolve inside the
/// application's directory), and in `argocd generate` input SecretStores are refused unless
/// `--allow-input-stores`.
///
/// Errors: a relative operator path, or a project file that cannot be read.
pub fn bind(mut settings: Settings, operator: &OperatorArgs, argocd_generate: bool) -> Result<Settings, Problems> {
    if argocd_generate {
        settings.no_input_stores |= !operator.allow_input_stores;
    }
    let env = |k: &str| std::env::var(k).ok();
    let known = argocd_generate || crate::binding::APP_VARIABLES.iter().any(|v| env(v).is_some());
    if !known {
        return Ok(settings);
    }
    let mut problems = Problems::default();
    let operator_paths = settings
        .stores
        .iter()
        .map(|p| ("--stores / EXTSECRET_STORES", p))
        .chain(settings.credentials.iter().map(|p| ("--credentials / EXTSECRET_CREDENTIALS", p)))
        .chain(operator.project_namespaces.iter().map(|p| (crate::binding::PROJECT_SWITCH, p)));
    for (switch, path) in operator_paths {
        if path.is_relative() {
            problems.push(Problem::new(format!(
                "{switch}: `{}` is a relative path, which in an Argo CD render resolves inside the untrusted application directory; the operator must give an absolute path",
                path.display()
            )));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let app = Application::from_env(&env, true, operator.project_namespaces.as_deref())?;
    if let Some(ns) = app.as_ref().and_then(|a| a.namespace.clone()) {
        settings.namespace = Some(ns);
    }
    settings.application = app;
    Ok(settings)
}

/// Refuses an empty render unless `--allow-empty` (an empty render makes Argo CD prune everything).
pub fn check_not_empty(docs: &[OutputDoc], settings: &Settings) -> Result<(), Problems> {
    if docs.is_empty() && !settings.allow_empty {
        return Err(Problem::new("the render produced no document; refusing empty output (an empty Application would be pruned); pass --allow-empty if that is intended").into());
    }
    Ok(())
}

/// Prints every problem on stderr and returns the failure exit code.
pub fn report(problems: &Problems) -> i32 {
    eprintln!("{problems}");
    eprintln!("extsecret: {} problem(s); nothing was written to stdout", problems.0.len());
    EXIT_FAILURE
}

/// Writes the whole output at once; a write error (closed pipe) is a failure.
pub fn emit(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("extsecret: cannot write output: {e}");
            EXIT_FAILURE
        }
    }
}
