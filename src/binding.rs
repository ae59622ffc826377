//! Binding a render to its Argo CD Application.
//!
//! Argo CD passes its build environment (`ARGOCD_APP_NAME`, `ARGOCD_APP_NAMESPACE` = the
//! destination namespace, `ARGOCD_APP_PROJECT_NAME`, ...) to a CMP command and to kustomize and
//! its plugins; an Application author cannot set these. When they are present (and always in
//! `argocd generate`) the render is bound: every ExternalSecret and SecretStore of the input must
//! be in the Application's destination namespace, or in a namespace the operator allows for the
//! Application's project in the `--project-namespaces` file (as an AppProject's `destinations`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::problem::Problem;

/// Environment variables that make the Application known (Argo CD sets both for every render).
pub const APP_VARIABLES: [&str; 2] = ["ARGOCD_APP_NAMESPACE", "ARGOCD_APP_PROJECT_NAME"];

/// The switch that widens what an Application may use.
pub const PROJECT_SWITCH: &str = "--project-namespaces / EXTSECRET_PROJECT_NAMESPACES";

/// The Application a render is bound to.
#[derive(Clone, Debug, Default)]
pub struct Application {
    /// `ARGOCD_APP_NAME`, for messages.
    pub name: Option<String>,
    /// `ARGOCD_APP_NAMESPACE`; `None` when empty (a multi-namespace Application).
    pub namespace: Option<String>,
    /// `ARGOCD_APP_PROJECT_NAME`.
    pub project: Option<String>,
    /// The project's namespace globs from the operator's file (none without file or entry).
    allowed: Vec<Glob>,
}

impl Application {
    /// The Application from `env`: `Some` when `always` (`argocd generate`) or when one of
    /// [`APP_VARIABLES`] is present (even empty). `project_file` is read only then.
    ///
    /// Errors: the project file cannot be read or is not a mapping of project names to lists of
    /// globs.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        always: bool,
        project_file: Option<&Path>,
    ) -> Result<Option<Application>, Problem> {
        if !always && APP_VARIABLES.iter().all(|v| env(v).is_none()) {
            return Ok(None);
        }
        let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
        let mut app = Application {
            name: nonempty("ARGOCD_APP_NAME"),
            namespace: nonempty("ARGOCD_APP_NAMESPACE"),
            project: nonempty("ARGOCD_APP_PROJECT_NAME"),
            allowed: Vec::new(),
        };
        if let (Some(file), Some(project)) = (project_file, &app.project) {
            app.allowed = load_project_namespaces(file)?.remove(project).unwrap_or_default();
        }
        Ok(Some(app))
    }

    /// Whether objects of this Application may be in `namespace`: its destination namespace or one
    /// that a glob of its project matches, and in either case no `!` glob of its project excludes
    /// it. Argo CD does not tell a plugin the destination *cluster*, so a project that may deploy
    /// anywhere on a sandbox cluster could name another team's namespace as its destination; a
    /// `!team-a` glob keeps it out all the same.
    pub fn permits(&self, namespace: &str) -> bool {
        let (deny, allow): (Vec<&Glob>, Vec<&Glob>) = self.allowed.iter().partition(|g| g.negated);
        if deny.iter().any(|g| g.matches(namespace)) {
            return false;
        }
        self.namespace.as_deref() == Some(namespace) || allow.iter().any(|g| g.matches(namespace))
    }

    /// Checks the effective namespace of an input ExternalSecret or SecretStore; the error names
    /// the rule and the switch that allows more.
    pub fn check(&self, namespace: Option<&str>) -> Result<(), String> {
        let project = self.project.as_deref().unwrap_or("");
        match namespace {
            Some(ns) if self.permits(ns) => Ok(()),
            Some(ns) => Err(format!(
                "namespace `{ns}` is refused: {} deploys to {}, and its ExternalSecrets and SecretStores must be in that namespace or in one the operator allows for project `{project}` ({PROJECT_SWITCH})",
                self.describe(),
                self.namespace.as_deref().map_or("no single namespace".to_string(), |n| format!("namespace `{n}`")),
            )),
            None => Err(format!(
                "no namespace, and {} has no destination namespace: set metadata.namespace to a namespace the operator allows for project `{project}` ({PROJECT_SWITCH})",
                self.describe()
            )),
        }
    }

    fn describe(&self) -> String {
        format!("Argo CD Application `{}` (project `{}`)", self.name.as_deref().unwrap_or("?"), self.project.as_deref().unwrap_or(""))
    }
}

/// A namespace glob of the project file: `*` any run of characters, `?` one character, a leading
/// `!` excludes (as Argo CD's AppProject destinations).
#[derive(Clone, Debug)]
struct Glob {
    negated: bool,
    regex: regex::Regex,
}

impl Glob {
    fn parse(text: &str) -> Result<Glob, String> {
        let (negated, pattern) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if pattern.is_empty() {
            return Err(format!("`{text}` is an empty glob"));
        }
        let mut re = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = regex::Regex::new(&re).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Glob { negated, regex })
    }

    fn matches(&self, namespace: &str) -> bool {
        self.regex.is_match(namespace)
    }
}

/// Reads the operator's project file: a YAML mapping of Argo CD project name to a list of
/// namespace globs, e.g. `team-b: [team-b, "team-b-*", "!team-b-admin"]`.
fn load_project_namespaces(file: &Path) -> Result<BTreeMap<String, Vec<Glob>>, Problem> {
    let name = file.display();
    let bytes = std::fs::read(file).map_err(|e| Problem::new(format!("{name} ({PROJECT_SWITCH}): cannot read: {}", e.kind())))?;
    let text = String::from_utf8(bytes).map_err(|_| Problem::new(format!("{name} ({PROJECT_SWITCH}): not UTF-8")))?;
    let raw: BTreeMap<String, Vec<String>> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_saphyr::from_str(&text).map_err(|_| {
            Problem::new(format!(
                "{name} ({PROJECT_SWITCH}): expected a mapping of Argo CD project names to lists of namespace globs (`team-b: [team-b, \"team-b-*\"]`)"
            ))
        })?
    };
    raw.into_iter()
        .map(|(project, globs)| {
            let globs = globs
                .iter()
                .map(|g| Glob::parse(g))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Problem::new(format!("{name} ({PROJECT_SWITCH}): project `{project}`: {e}")))?;
            Ok((project, globs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(vars: &[(&str, &str)], always: bool, file: Option<&str>) -> Option<Application> {
        let m: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projects.yaml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        Application::from_env(&|k| m.get(k).cloned(), always, file.map(|_| path.as_path())).unwrap()
    }

    #[test]
    fn known_only_from_argo_cd_variables_or_generate() {
        assert!(app(&[("ARGOCD_APP_NAME", "web")], false, None).is_none());
        assert!(app(&[], true, None).is_some());
        let a = app(&[("ARGOCD_APP_NAMESPACE", "")], false, None).unwrap();
        assert_eq!(a.namespace, None);
        assert!(a.check(Some("default")).is_err());
        assert!(a.check(None).unwrap_err().contains("has no destination namespace"));
    }

    #[test]
    fn destination_namespace_and_project_globs() {
        let file = "team-b: [team-b, 'team-b-*', '!team-b-admin']\nother: ['*']\n";
        let a = app(&[("ARGOCD_APP_NAMESPACE", "web"), ("ARGOCD_APP_PROJECT_NAME", "team-b")], false, Some(file)).unwrap();
        for ok in ["web", "team-b", "team-b-dev"] {
            assert!(a.permits(ok), "{ok}");
        }
        for refused in ["team-a", "team-b-admin", "team-bx", "kube-system"] {
            assert!(!a.permits(refused), "{refused}");
        }
        let err = a.check(Some("team-a")).unwrap_err();
        assert!(err.contains("namespace `team-a` is refused") && err.contains("--project-namespaces"), "{err}");
        // A project without an entry gets only its destination namespace.
        let a = app(&[("ARGOCD_APP_NAMESPACE", "web"), ("ARGOCD_APP_PROJECT_NAME", "nope")], false, Some(file)).unwrap();
        assert!(a.permits("web") && !a.permits("team-b"));
        // A `!` glob excludes the destination namespace too (a project may name another team's
        // namespace as its destination on another cluster).
        let a =
            app(&[("ARGOCD_APP_NAMESPACE", "team-a"), ("ARGOCD_APP_PROJECT_NAME", "team-b")], false, Some("team-b: [team-b, '!team-a']\n"))
                .unwrap();
        assert!(!a.permits("team-a") && a.permits("team-b"));
    }

    #[test]
    fn a_bad_project_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "team-b: team-b\n").unwrap();
        let env = |k: &str| (k == "ARGOCD_APP_PROJECT_NAME").then(|| "team-b".to_string());
        assert!(Application::from_env(&env, false, Some(&path)).unwrap_err().message.contains("expected a mapping"));
        std::fs::write(&path, "team-b: ['!']\n").unwrap();
        assert!(Application::from_env(&env, false, Some(&path)).unwrap_err().message.contains("empty glob"));
    }
}
