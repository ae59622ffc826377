//! Collecting input files: paths, folders (recursive) and stdin.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use crate::problem::{Problem, Problems};

use super::document::{parse_stream, Document};

/// File names a folder walk never reads as manifests: build configuration, not objects.
const SKIPPED_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization", "Chart.yaml", "Chart.yml", "Kptfile"];

/// Largest input read from one file or stdin (256 MiB); a larger one is refused, not read.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// Whether a file found by a folder walk is read: `.yaml`, `.yml` or `.json`, and not one of the
/// build files (`kustomization.yaml`, `Chart.yaml`, `values*.yaml`, `Kptfile`).
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let ext_ok = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
    let is_values = name.starts_with("values") && (name.ends_with(".yaml") || name.ends_with(".yml"));
    ext_ok && !is_values && !SKIPPED_NAMES.contains(&name)
}

/// Expands `paths` into the files to read, in a stable order: files as given; folders walked
/// recursively (sorted by name, hidden entries skipped) keeping regular files that pass
/// [`is_manifest_file`]. Symbolic links are followed, each real folder once (a link loop ends
/// there). A path that does not exist is a problem.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Problems> {
    expand_paths_within(paths, None)
}

/// Where a run may read input files: every file and folder, after following symbolic links, must
/// be inside `root` (a canonical path), and the files of the run together hold at most
/// `max_total_bytes`. Used in Argo CD mode (the repository tree Argo CD hands over) and by
/// `render --confine-to`.
#[derive(Clone, Debug)]
pub struct Confinement {
    /// Canonical folder every read must stay in.
    pub root: PathBuf,
    /// The rule and switch, for refusals (`argocd generate reads only inside ...`).
    pub rule: String,
    /// Bound on the bytes of all files read in the run.
    pub max_total_bytes: u64,
}

impl Confinement {
    /// A confinement to `root` (canonicalized here); an error when `root` cannot be resolved.
    pub fn new(root: &Path, rule: impl Into<String>, max_total_bytes: u64) -> Result<Confinement, Problem> {
        let root =
            std::fs::canonicalize(root).map_err(|e| Problem::new(format!("{}: cannot read folder: {}", root.display(), e.kind())))?;
        Ok(Confinement { root, rule: rule.into(), max_total_bytes })
    }

    /// The real path of `path` when it is inside the root; a refusal naming `path` and the rule
    /// otherwise (never where the link leads: that may be the operator's).
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, Problem> {
        let real = std::fs::canonicalize(path).map_err(|e| Problem::new(format!("{}: cannot read: {}", path.display(), e.kind())))?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(Problem::new(format!("{}: refused: a symbolic link leads outside {} ({})", path.display(), self.root.display(), self.rule)))
        }
    }

    /// Every entry under `dir` (hidden ones too, following links into folders once) resolves
    /// inside the root; renderers such as helm read files we never see, so a link out of the tree
    /// is refused before they run. Dangling links are ignored (nothing can be read through them).
    pub fn check_tree(&self, dir: &Path) -> Result<(), Problems> {
        let mut problems = Problems::default();
        let mut seen = BTreeSet::new();
        let mut stack = vec![(dir.to_path_buf(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let real = match self.resolve(&dir) {
                Ok(real) => real,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            if !seen.insert(real) || depth > 64 {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => stack.push((path, depth + 1)),
                    Ok(_) => {
                        if let Err(p) = self.resolve(&path) {
                            problems.push(p);
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        problems.into_result(())
    }
}

/// As [`expand_paths`]; with a confinement, a folder or file that resolves outside its root is a
/// problem (and is not walked).
pub fn expand_paths_within(paths: &[PathBuf], confinement: Option<&Confinement>) -> Result<Vec<PathBuf>, Problems> {
    let mut files = Vec::new();
    let mut problems = Problems::default();
    let mut seen = BTreeSet::new();
    for p in paths {
        if let Some(Err(e)) = confinement.map(|c| c.resolve(p)) {
            problems.push(e);
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut problems, &mut seen, 0, confinement),
            Ok(_) => files.push(p.clone()),
            Err(e) => problems.push(Problem::new(format!("{}: cannot read: {}", p.display(), e.kind()))),
        }
    }
    problems.into_result(files)
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    problems: &mut Problems,
    seen: &mut BTreeSet<PathBuf>,
    depth: usize,
    confinement: Option<&Confinement>,
) {
    // Each real folder once: symlinked folders pointing back up (or at each other) end here.
    let real = match confinement {
        Some(c) => c.resolve(dir),
        None => std::fs::canonicalize(dir).map_err(|e| Problem::new(format!("{}: cannot read folder: {}", dir.display(), e.kind()))),
    };
    match real {
        Ok(real) => {
            if !seen.insert(real) {
                return;
            }
        }
        Err(p) => {
            problems.push(p);
            return;
        }
    }
    if depth > 64 {
        problems.push(Problem::new(format!("{}: folders nested deeper than 64", dir.display())));
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            problems.push(Problem::new(format!("{}: cannot read folder: {}", dir.display(), e.kind())));
            return;
        }
    };
    entries.sort();
    for path in entries {
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, files, problems, seen, depth + 1, confinement),
            // Only regular files: a FIFO or device named `x.yaml` would block or never end.
            Ok(m) if m.is_file() && is_manifest_file(&path) => match confinement.map(|c| c.resolve(&path)) {
                Some(Err(p)) => problems.push(p),
                _ => files.push(path),
            },
            _ => {}
        }
    }
}

/// Reads and parses every input, in the order given; `-` (or no path at all) reads stdin at its
/// place. A terminal on stdin is a usage error (nothing would ever arrive). All problems of all
/// files are reported together.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Document>, Problems> {
    read_inputs_within(paths, None)
}

/// As [`read_inputs`], every file read through `confinement` when given (stdin is not a file
/// and is read as usual).
pub fn read_inputs_within(paths: &[PathBuf], confinement: Option<&Confinement>) -> Result<Vec<Document>, Problems> {
    let stdin_only = [PathBuf::from("-")];
    let paths = if paths.is_empty() { &stdin_only[..] } else { paths };
    let mut problems = Problems::default();
    let mut docs = Vec::new();
    let mut budget = confinement.map_or(u64::MAX, |c| c.max_total_bytes);
    let mut take = |result: Result<Vec<Document>, Problems>| match result {
        Ok(d) => docs.extend(d),
        Err(p) => problems.extend(p),
    };
    for p in paths {
        if p.as_os_str() == "-" {
            take(read_stdin().map_err(Problems::from).and_then(|bytes| parse_stream("<stdin>", &bytes)));
            continue;
        }
        match expand_paths_within(std::slice::from_ref(p), confinement) {
            Ok(files) => files.iter().for_each(|f| take(read_file_within(f, confinement, &mut budget))),
            Err(e) => take(Err(e)),
        }
    }
    problems.into_result(docs)
}

/// Reads and parses one file, naming it as given. Files over [`MAX_INPUT_BYTES`] are refused.
pub fn read_file(path: &Path) -> Result<Vec<Document>, Problems> {
    let mut budget = u64::MAX;
    read_file_within(path, None, &mut budget)
}

/// Reads and parses one file through `confinement` (its real path, checked again just before it
/// is opened), taking its size from `budget`.
fn read_file_within(path: &Path, confinement: Option<&Confinement>, budget: &mut u64) -> Result<Vec<Document>, Problems> {
    let bytes = read_bytes_within(path, confinement, budget)?;
    parse_stream(&path.display().to_string(), &bytes)
}

/// The bytes of one file, at most [`MAX_INPUT_BYTES`] and at most `budget` (which is reduced by
/// what was read); with a confinement the file is opened by its real path inside the root.
pub fn read_bytes_within(path: &Path, confinement: Option<&Confinement>, budget: &mut u64) -> Result<Vec<u8>, Problem> {
    let name = path.display().to_string();
    let real = match confinement {
        Some(c) => c.resolve(path)?,
        None => path.to_path_buf(),
    };
    let file = std::fs::File::open(&real).map_err(|e| Problem::new(format!("{name}: cannot read: {}", e.kind())))?;
    let limit = MAX_INPUT_BYTES.min(*budget);
    let bytes = read_bounded(file, limit).map_err(|e| match (e, confinement) {
        (Oversize, Some(c)) if limit < MAX_INPUT_BYTES => Problem::new(format!(
            "{name}: the files of this run hold more than {} MiB; refused ({}: bounded input)",
            c.max_total_bytes / 1024 / 1024,
            c.rule
        )),
        (e, _) => Problem::new(format!("{name}: {e}")),
    })?;
    *budget -= bytes.len() as u64;
    Ok(bytes)
}

/// Why a bounded read failed.
#[derive(Debug)]
enum ReadError {
    Oversize,
    Io(std::io::ErrorKind),
}
use ReadError::Oversize;

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Oversize => write!(f, "input larger than {} MiB; refused", MAX_INPUT_BYTES / 1024 / 1024),
            ReadError::Io(kind) => write!(f, "cannot read: {kind}"),
        }
    }
}

fn read_bounded(r: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf).map_err(|e| ReadError::Io(e.kind()))?;
    if buf.len() as u64 > limit {
        return Err(Oversize);
    }
    Ok(buf)
}

/// Reads all of stdin (at most [`MAX_INPUT_BYTES`]); refuses a terminal.
pub fn read_stdin() -> Result<Vec<u8>, Problem> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Problem::new("no input: give manifest files or folders, or pipe a stream into stdin (`-`)"));
    }
    read_bounded(stdin.lock(), MAX_INPUT_BYTES).map_err(|e| Problem::new(format!("<stdin>: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_files_are_skipped_by_folder_walks() {
        for skipped in ["kustomization.yaml", "Chart.yaml", "values.yaml", "values-prod.yml", "Kptfile", "README.md"] {
            assert!(!is_manifest_file(Path::new(skipped)), "{skipped}");
        }
        for kept in ["es.yaml", "a.yml", "b.json", "my-values.yaml"] {
            assert!(is_manifest_file(Path::new(kept)), "{kept}");
        }
    }

    #[test]
    fn a_confinement_refuses_links_out_of_its_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("repo"), dir.path().join("outside.yaml"));
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(&outside, "x").unwrap();
        std::fs::write(root.join("shared.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("../shared.yaml", root.join("app/in.yaml")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", root.join("app/dangling")).unwrap();
        let c = Confinement::new(&root, "the rule", 1).unwrap();
        assert!(c.resolve(&root.join("app/in.yaml")).is_ok());
        assert!(c.check_tree(&root).is_ok());
        std::os::unix::fs::symlink(&outside, root.join("app/out.yaml")).unwrap();
        let err = c.resolve(&root.join("app/out.yaml")).unwrap_err().message;
        assert!(err.contains("out.yaml: refused: a symbolic link leads outside") && err.contains("(the rule)"), "{err}");
        assert!(!err.contains("outside.yaml"), "the target is not named: {err}");
        assert_eq!(c.check_tree(&root).unwrap_err().0.len(), 1);
        // The budget is for the whole run: the second byte is refused.
        let mut budget = 1;
        assert!(read_bytes_within(&root.join("shared.yaml"), Some(&c), &mut budget).is_ok());
        assert!(read_bytes_within(&root.join("app/in.yaml"), Some(&c), &mut budget).unwrap_err().message.contains("more than 0 MiB"));
    }

    #[test]
    fn branching_symlink_loops_visit_each_folder_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("es.yaml"), "x").unwrap();
        std::os::unix::fs::symlink(".", d.join("a")).unwrap();
        std::os::unix::fs::symlink(".", d.join("b")).unwrap();
        std::os::unix::fs::symlink("..", d.join("up")).unwrap();
        let files = expand_paths(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files, vec![d.join("es.yaml")]);
    }
}
