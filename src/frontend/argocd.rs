//! Argo CD config-management plugin (CMP v2) commands, named by `plugin.yaml`:
//! `extsecret argocd generate` renders the application directory (cwd) and `extsecret argocd
//! discover` prints the files that hold ExternalSecrets (Argo CD matches on exit 0 with output).
//!
//! App-settable parameters (from the Application, so untrusted): `renderer` (`plain`,
//! `kustomize` or `helm`, from that fixed set) and `helm-value-files` (paths inside the app
//! directory), read from `PARAM_RENDERER`, `PARAM_HELM_VALUE_FILES_<i>` or
//! `ARGOCD_APP_PARAMETERS`. Everything else is an operator setting (flags / `EXTSECRET_*`).
//! No shell is ever involved: commands run with explicit argument lists.

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
    Generate(GenerateArgs),
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
    let mut settings = args.operator.settings();
    let env = |k: &str| std::env::var(k).ok();
    let result = async {
        let unknown = unknown_parameters(std::env::vars().map(|(k, _)| k));
        if !unknown.is_empty() {
            return Err(Problem::new(format!(
                "unknown plugin parameter(s) {} (this plugin takes renderer and helm-value-files)",
                unknown.join(", ")
            ))
            .into());
        }
        let params = app_parameters(&env).map_err(|m| Problems::from(Problem::new(m)))?;
        let docs = match params.renderer {
            Renderer::Plain => input::read_inputs(std::slice::from_ref(&args.source_dir))?,
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

/// Runs a renderer (no shell) and parses its stdout; a non-zero exit fails the render with the
/// renderer's stderr.
async fn run_renderer(argv: &[String], what: &str, timeout: std::time::Duration) -> Result<Vec<manifest::Document>, Problems> {
    let (program, rest) = argv.split_first().ok_or_else(|| Problem::new(format!("empty {what} command")))?;
    let run = tokio::process::Command::new(program).args(rest).stdin(std::process::Stdio::null()).kill_on_drop(true).output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| Problem::new(format!("{what} did not finish within {}s (--timeout)", timeout.as_secs_f32())))?
        .map_err(|e| Problem::new(format!("cannot run {what} (`{program}`): {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Problem::new(format!("{what} failed ({}): {}", out.status, stderr.trim())).into());
    }
    manifest::parse_stream(&format!("<{what} output>"), &out.stdout)
}

/// `argocd discover`: prints each manifest file under `dir` holding an ExternalSecret.
pub fn discover(dir: &Path) -> i32 {
    let Ok(files) = input::expand_paths(&[dir.to_path_buf()]) else { return 0 };
    let mut found = String::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
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
    fn untrusted_parameters_are_refused() {
        assert!(params(&[("PARAM_RENDERER", "sh -c id")]).unwrap_err().contains("not one of"));
        assert!(params(&[("PARAM_HELM_VALUE_FILES_0", "../../etc/passwd")]).unwrap_err().contains("inside the application directory"));
        assert!(params(&[("PARAM_HELM_VALUE_FILES_0", "/etc/passwd")]).is_err());
    }
}
