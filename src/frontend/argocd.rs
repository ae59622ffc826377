//! Argo CD config-management plugin (CMP v2) commands, named by `plugin.yaml`:
//! `extsecret argocd generate` renders the application directory (cwd) and `extsecret argocd
//! discover` prints the files that hold ExternalSecrets (Argo CD matches on exit 0 with output).
//!
//! App-settable parameters (from the Application, so untrusted): `renderer` (`plain`,
//! `kustomize` or `helm`, from that fixed set) and `helm-value-files` (paths inside the app
//! directory), read from `PARAM_RENDERER`, `PARAM_HELM_VALUE_FILES_<i>` or
//! `ARGOCD_APP_PARAMETERS`. Everything else is an operator setting (flags / `EXTSECRET_*`).
//! No shell is ever involved: commands run with explicit argument lists.
//!
//! The render is bound to the Application (see [`crate::binding`]); input SecretStores are refused
//! unless `--allow-input-stores`; operator paths must be absolute. Every file read (and, before
//! kustomize or helm runs, every file of the checkout) must resolve inside the repository tree
//! Argo CD unpacked, and a run reads at most [`MAX_INPUT_BYTES`].

use std::path::{Component, Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::manifest::{self, input, output};
use crate::problem::{Problem, Problems};
use crate::settings::OperatorArgs;

/// `extsecret argocd ...`
#[derive(Subcommand, Debug)]
pub enum ArgoCommand {
    /// Render the application directory (the CMP `generate` command)
    Generate(Box<GenerateArgs>),
    /// Print the manifest files under the directory that hold an ExternalSecret (the CMP `discover` command)
    Discover {
        /// Application directory
        #[arg(long, default_value = ".")]
        source_dir: PathBuf,
    },
}

/// Arguments of `argocd generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Application directory
    #[arg(long, default_value = ".")]
    pub source_dir: PathBuf,
    /// kustomize command for `renderer: kustomize` (split on spaces; the directory is appended)
    #[arg(long, env = "EXTSECRET_KUSTOMIZE_COMMAND", default_value = "kustomize build")]
    pub kustomize_command: String,
    /// helm binary for `renderer: helm` (run as `helm template NAME DIR --namespace NS -f FILE...`)
    #[arg(long, env = "EXTSECRET_HELM_COMMAND", default_value = "helm")]
    pub helm_command: String,
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// Renderers an Application may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renderer {
    Plain,
    Kustomize,
    Helm,
}

/// The Application's parameters, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppParameters {
    pub renderer: Renderer,
    pub helm_value_files: Vec<PathBuf>,
}

/// Reads the parameters Argo CD passes: `PARAM_*` variables first, else `ARGOCD_APP_PARAMETERS`.
pub fn app_parameters(env: &dyn Fn(&str) -> Option<String>) -> Result<AppParameters, String> {
    let mut renderer = env("PARAM_RENDERER");
    let mut files: Vec<String> = (0..).map_while(|i| env(&format!("PARAM_HELM_VALUE_FILES_{i}"))).collect();
    if renderer.is_none() && files.is_empty() {
        if let Some(json) = env("ARGOCD_APP_PARAMETERS") {
            let params: Vec<Value> = serde_json::from_str(&json).map_err(|_| "ARGOCD_APP_PARAMETERS is not a JSON array".to_string())?;
            for p in params {
                match p.get("name").and_then(Value::as_str) {
                    Some("renderer") => {
                        renderer =
                            Some(p.get("string").and_then(Value::as_str).map(str::to_string).ok_or("parameter renderer must be a string")?)
                    }
                    Some("helm-value-files") => {
                        let items = p.get("array").and_then(Value::as_array).ok_or("parameter helm-value-files must be an array")?;
                        files = items
                            .iter()
                            .map(|v| v.as_str().map(str::to_string).ok_or("parameter helm-value-files must hold strings"))
                            .collect::<Result<_, _>>()?;
                    }
                    Some(other) => {
                        return Err(format!("unknown plugin parameter `{other}` (this plugin takes renderer and helm-value-files)"))
                    }
                    None => return Err("ARGOCD_APP_PARAMETERS holds a parameter without a name".into()),
                }
            }
        }
    }
    let renderer = match renderer.as_deref().unwrap_or("plain") {
        "plain" | "" => Renderer::Plain,
        "kustomize" => Renderer::Kustomize,
        "helm" => Renderer::Helm,
        other => return Err(format!("parameter renderer `{other}` is not one of plain, kustomize, helm")),
    };
    let mut helm_value_files = Vec::new();
    for f in files {
        let p = PathBuf::from(&f);
        let inside = !p.is_absolute() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!("parameter helm-value-files: `{f}` must be a relative path inside the application directory"));
        }
        helm_value_files.push(p);
    }
    Ok(AppParameters { renderer, helm_value_files })
}

/// Parameters given as `PARAM_*` that this plugin does not take (a typo such as `renderrer` must
/// not silently fall back to `plain`).
pub fn unknown_parameters(names: impl Iterator<Item = String>) -> Vec<String> {
    let files = regex::Regex::new(r"^PARAM_HELM_VALUE_FILES_\d+$").expect("static regex");
    names.filter(|n| n.starts_with("PARAM_") && n != "PARAM_RENDERER" && !files.is_match(n)).collect()
}

/// `argocd generate`: returns the exit code.
///
/// `--timeout` bounds the whole command: the renderer gets it all, the provider reads and
/// assembly what the renderer left (so the command stays under Argo CD's 60 s with the default).
pub async fn generate(args: GenerateArgs) -> i32 {
    let started = std::time::Instant::now();
    let settings = args.operator.settings();
    let env = |k: &str| std::env::var(k).ok();
    let result = async {
        let mut settings = super::bind(settings.clone(), &args.operator, true)?;
        let confinement = confinement(&args.source_dir, &env)?;
        let unknown = unknown_parameters(std::env::vars().map(|(k, _)| k));
        if !unknown.is_empty() {
            return Err(Problem::new(format!(
                "unknown plugin parameter(s) {} (this plugin takes renderer and helm-value-files)",
                unknown.join(", ")
            ))
            .into());
        }
        let params = app_parameters(&env).map_err(|m| Problems::from(Problem::new(m)))?;
        if params.renderer != Renderer::Plain {
            // kustomize and helm read files we never see: no link may lead out of the tree.
            confinement.check_tree(&confinement.root)?;
        }
        let docs = match params.renderer {
            Renderer::Plain => input::read_inputs_within(std::slice::from_ref(&args.source_dir), Some(&confinement))?,
            Renderer::Kustomize => {
                let mut argv: Vec<String> = args.kustomize_command.split_whitespace().map(str::to_string).collect();
                argv.push(args.source_dir.display().to_string());
                run_renderer(&argv, "kustomize", settings.timeout).await?
            }
            Renderer::Helm => {
                let release = env("ARGOCD_APP_NAME").filter(|n| !n.is_empty()).unwrap_or_else(|| "release".into());
                let mut argv = vec![args.helm_command.clone(), "template".into(), release, args.source_dir.display().to_string()];
                if let Some(ns) = &settings.namespace {
                    argv.extend(["--namespace".into(), ns.clone()]);
                }
                for f in &params.helm_value_files {
                    confinement.resolve(&args.source_dir.join(f))?;
                    if !args.source_dir.join(f).is_file() {
                        return Err(
                            Problem::new(format!("helm value file `{}` does not exist in the application directory", f.display())).into()
                        );
                    }
                    argv.extend(["-f".into(), args.source_dir.join(f).display().to_string()]);
                }
                run_renderer(&argv, "helm", settings.timeout).await?
            }
        };
        let left = settings.timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Problem::new(format!(
                "deadline of {}s (--timeout) passed before any provider was read",
                settings.timeout.as_secs_f32()
            ))
            .into());
        }
        settings.timeout = left;
        let out = super::render_with_settings(docs, &settings).await?;
        super::check_not_empty(&out, &settings)?;
        Ok::<_, Problems>(out)
    }
    .await;
    match result {
        Ok(out) => super::emit(&output::write_yaml(&out)),
        Err(p) => super::report(&p),
    }
}

/// Runs a renderer (see [`super::renderer`]: no shell, stdout bounded by [`MAX_INPUT_BYTES`] as
/// it is read) and parses its stdout; a non-zero exit fails the render with the end of the
/// renderer's stderr.
async fn run_renderer(argv: &[String], what: &str, timeout: std::time::Duration) -> Result<Vec<manifest::Document>, Problems> {
    let out = super::renderer::run(argv, what, timeout, MAX_INPUT_BYTES).await?;
    manifest::parse_stream(&format!("<{what} output>"), &out)
}

/// Bound on the bytes of all files one `generate` or `discover` reads (16 MiB; Argo CD's own
/// `reposerver.max.combined.directory.manifests.size` defaults to 10M): the example sidecar's
/// memory limit is sized for it.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The rule of Argo CD mode's file reads, for refusals.
const CONFINEMENT_RULE: &str = "in Argo CD mode every file read must stay inside the repository tree Argo CD handed over";

/// What Argo CD mode may read: files inside the repository tree Argo CD unpacked (see
/// [`repository_root`]), at most [`MAX_INPUT_BYTES`] in all.
fn confinement(source_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<input::Confinement, Problem> {
    let dir = std::fs::canonicalize(source_dir)
        .map_err(|e| Problem::new(format!("{}: cannot read the application directory: {}", source_dir.display(), e.kind())))?;
    let root = repository_root(&dir, env("ARGOCD_APP_SOURCE_PATH").as_deref());
    input::Confinement::new(&root, CONFINEMENT_RULE, MAX_INPUT_BYTES)
}

/// The repository root Argo CD unpacked: the canonical application directory `dir` with
/// `ARGOCD_APP_SOURCE_PATH` (the Application's `source.path`) taken off its end; `dir` itself
/// when that path is unset, not plain relative, or not how `dir` ends.
pub fn repository_root(dir: &Path, source_path: Option<&str>) -> PathBuf {
    let Some(path) = source_path.map(Path::new) else { return dir.to_path_buf() };
    if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return dir.to_path_buf();
    }
    let mut root = dir.to_path_buf();
    for name in path.components().rev().filter_map(|c| match c {
        Component::Normal(n) => Some(n),
        _ => None,
    }) {
        if root.file_name() != Some(name) {
            return dir.to_path_buf();
        }
        root.pop();
    }
    root
}

/// `argocd discover`: prints each manifest file under `dir` holding an ExternalSecret. Reads as
/// `generate` does (inside the repository tree, [`MAX_INPUT_BYTES`] in all); a refused read is
/// reported on stderr with exit 1 (Argo CD then does not match the plugin).
pub fn discover(dir: &Path) -> i32 {
    let env = |k: &str| std::env::var(k).ok();
    let confinement = match confinement(dir, &env) {
        Ok(c) => c,
        Err(p) => return super::report(&p.into()),
    };
    let files = match input::expand_paths_within(&[dir.to_path_buf()], Some(&confinement)) {
        Ok(f) => f,
        Err(p) => return super::report(&p),
    };
    let mut budget = MAX_INPUT_BYTES;
    let mut found = String::new();
    for f in files {
        let bytes = match input::read_bytes_within(&f, Some(&confinement), &mut budget) {
            Ok(b) => b,
            Err(p) => return super::report(&p.into()),
        };
        let Ok(text) = String::from_utf8(bytes) else { continue };
        if !text.contains("ExternalSecret") {
            continue;
        }
        // Files that are not plain manifests (Helm templates) are matched on their text.
        let holds = match manifest::parse_stream(&f.display().to_string(), text.as_bytes()) {
            Ok(docs) => docs.iter().any(|d| d.kind() == "ExternalSecret" && crate::api::eso_version(d.api_version()).is_some()),
            Err(_) => text.contains("external-secrets.io/") && text.lines().any(|l| l.trim() == "kind: ExternalSecret"),
        };
        if holds {
            found.push_str(&format!("{}\n", f.display()));
        }
    }
    super::emit(&found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn params(vars: &[(&str, &str)]) -> Result<AppParameters, String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        app_parameters(&|k| m.get(k).cloned())
    }

    #[test]
    fn parameters_come_from_param_variables_or_the_json() {
        assert_eq!(params(&[]).unwrap().renderer, Renderer::Plain);
        let p = params(&[
            ("PARAM_RENDERER", "helm"),
            ("PARAM_HELM_VALUE_FILES_0", "values-prod.yaml"),
            ("PARAM_HELM_VALUE_FILES_1", "env/b.yaml"),
        ])
        .unwrap();
        assert_eq!(p, AppParameters { renderer: Renderer::Helm, helm_value_files: vec!["values-prod.yaml".into(), "env/b.yaml".into()] });
        let p = params(&[("ARGOCD_APP_PARAMETERS", r#"[{"name":"renderer","string":"kustomize"}]"#)]).unwrap();
        assert_eq!(p.renderer, Renderer::Kustomize);
    }

    #[test]
    fn unknown_or_mistyped_parameters_are_refused() {
        assert_eq!(
            unknown_parameters(
                ["PARAM_RENDERRER".to_string(), "PARAM_RENDERER".into(), "PARAM_HELM_VALUE_FILES_3".into(), "HOME".into()].into_iter()
            ),
            ["PARAM_RENDERRER"]
        );
        assert!(params(&[("ARGOCD_APP_PARAMETERS", r#"[{"name":"renderrer","string":"helm"}]"#)])
            .unwrap_err()
            .contains("unknown plugin parameter `renderrer`"));
        assert!(params(&[("ARGOCD_APP_PARAMETERS", r#"[{"name":"renderer","array":["helm"]}]"#)])
            .unwrap_err()
            .contains("must be a string"));
        assert!(params(&[("ARGOCD_APP_PARAMETERS", r#"[{"name":"helm-value-files","string":"a.yaml"}]"#)])
            .unwrap_err()
            .contains("must be an array"));
    }

    #[test]
    fn the_repository_root_is_the_directory_without_the_source_path() {
        let dir = Path::new("/tmp/_cmp_server/5f0c/apps/web");
        assert_eq!(repository_root(dir, Some("apps/web")), Path::new("/tmp/_cmp_server/5f0c"));
        assert_eq!(repository_root(dir, Some("./apps/web/")), Path::new("/tmp/_cmp_server/5f0c"));
        for unusable in [None, Some("other/web"), Some("../web"), Some("/apps/web"), Some("a/apps/web/x")] {
            assert_eq!(repository_root(dir, unusable), dir, "{unusable:?}");
        }
        assert_eq!(repository_root(dir, Some(".")), dir);
    }

    #[test]
    fn untrusted_parameters_are_refused() {
        assert!(params(&[("PARAM_RENDERER", "sh -c id")]).unwrap_err().contains("not one of"));
        assert!(params(&[("PARAM_HELM_VALUE_FILES_0", "../../etc/passwd")]).unwrap_err().contains("inside the application directory"));
        assert!(params(&[("PARAM_HELM_VALUE_FILES_0", "/etc/passwd")]).is_err());
    }
}
