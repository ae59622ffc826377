//! Collecting input files: paths, folders (recursive) and stdin.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use crate::problem::{Problem, Problems};

use super::document::{parse_stream, Document};

/// File names a folder walk never reads as manifests: build configuration, not objects.
const SKIPPED_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization", "Chart.yaml", "Chart.yml", "Kptfile"];

/// Whether a file found by a folder walk is read: `.yaml`, `.yml` or `.json`, and not one of the
/// build files (`kustomization.yaml`, `Chart.yaml`, `values*.yaml`, `Kptfile`).
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let ext_ok = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
    let is_values = name.starts_with("values") && (name.ends_with(".yaml") || name.ends_with(".yml"));
    ext_ok && !is_values && !SKIPPED_NAMES.contains(&name)
}

/// Expands `paths` into the files to read, in a stable order: files as given; folders walked
/// recursively (sorted by name, hidden entries skipped) keeping files that pass
/// [`is_manifest_file`]. A path that does not exist is a problem.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Problems> {
    let mut files = Vec::new();
    let mut problems = Problems::default();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut problems, 0),
            Ok(_) => files.push(p.clone()),
            Err(e) => problems.push(Problem::new(format!("{}: cannot read: {}", p.display(), e.kind()))),
        }
    }
    problems.into_result(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Problems, depth: usize) {
    if depth > 32 {
        problems.push(Problem::new(format!("{}: folder nesting deeper than 32 (a symlink loop?)", dir.display())));
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
        if path.is_dir() {
            walk(&path, files, problems, depth + 1);
        } else if is_manifest_file(&path) {
            files.push(path);
        }
    }
}

/// Reads and parses every input. No path, or `-`, reads stdin; a terminal on stdin is a usage
/// error (nothing would ever arrive). All problems of all files are reported together.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Document>, Problems> {
    let use_stdin = paths.is_empty() || paths.iter().any(|p| p.as_os_str() == "-");
    let files: Vec<PathBuf> = paths.iter().filter(|p| p.as_os_str() != "-").cloned().collect();
    let mut problems = Problems::default();
    let mut docs = Vec::new();
    if use_stdin {
        match read_stdin() {
            Ok(bytes) => match parse_stream("<stdin>", &bytes) {
                Ok(d) => docs.extend(d),
                Err(p) => problems.extend(p),
            },
            Err(p) => problems.push(p),
        }
    }
    match expand_paths(&files) {
        Ok(files) => {
            for f in files {
                match read_file(&f) {
                    Ok(d) => docs.extend(d),
                    Err(p) => problems.extend(p),
                }
            }
        }
        Err(p) => problems.extend(p),
    }
    problems.into_result(docs)
}

/// Reads and parses one file, naming it as given.
pub fn read_file(path: &Path) -> Result<Vec<Document>, Problems> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Problem::new(format!("{name}: cannot read: {}", e.kind())))?;
    parse_stream(&name, &bytes)
}

/// Reads all of stdin; refuses a terminal.
pub fn read_stdin() -> Result<Vec<u8>, Problem> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Problem::new("no input: give manifest files or folders, or pipe a stream into stdin (`-`)"));
    }
    let mut buf = Vec::new();
    stdin.read_to_end(&mut buf).map_err(|e| Problem::new(format!("<stdin>: cannot read: {}", e.kind())))?;
    Ok(buf)
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
}
