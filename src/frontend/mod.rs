//! Front-ends: thin adapters from each calling convention to [`crate::render`].
//!
//! | front-end | input | stores and credentials | on failure |
//! |---|---|---|---|
//! | [`cli`] `extsecret render` | files, folders, stdin | input SecretStores, `--stores`, `--credentials` | exit 1, empty stdout |
//! | [`argocd`] `extsecret argocd generate`/`discover` | the app directory (plain, kustomize or helm) | as render, from the sidecar's flags and env | exit 1, empty stdout |
//! | [`krm`] `extsecret krm` | a ResourceList on stdin | items, `EXTSECRET_STORES` | ResourceList with error results, exit 1 |
//! | [`legacy`] kustomize legacy exec plugin | config file in argv\[1\], stdin | `EXTSECRET_STORES` (relative to the kustomization) | exit 1, empty stdout |

pub mod argocd;
pub mod cli;
pub mod krm;
pub mod legacy;

use std::io::Write;

use crate::manifest::{Document, OutputDoc};
use crate::problem::{Problem, Problems};
use crate::render;
use crate::settings::Settings;

/// Exit code of a failed render.
pub const EXIT_FAILURE: i32 = 1;

/// Loads the operator's catalog and renders `docs`.
pub async fn render_with_settings(docs: Vec<Document>, settings: &Settings) -> Result<Vec<OutputDoc>, Problems> {
    let catalog = render::load_catalog(settings)?;
    render::render_documents(docs, catalog, settings).await
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
