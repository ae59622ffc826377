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
    let mut files = Vec::new();
    let mut problems = Problems::default();
    let mut seen = BTreeSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut problems, &mut seen, 0),
            Ok(_) => files.push(p.clone()),
            Err(e) => problems.push(Problem::new(format!("{}: cannot read: {}", p.display(), e.kind()))),
        }
    }
    problems.into_result(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Problems, seen: &mut BTreeSet<PathBuf>, depth: usize) {
    // Each real folder once: symlinked folders pointing back up (or at each other) end here.
    match std::fs::canonicalize(dir) {
        Ok(real) => {
            if !seen.insert(real) {
                return;
            }
        }
        Err(e) => {
            problems.push(Problem::new(format!("{}: cannot read folder: {}", dir.display(), e.kind())));
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
            Ok(m) if m.is_dir() => walk(&path, files, problems, seen, depth + 1),
            // Only regular files: a FIFO or device named `x.yaml` would block or never end.
            Ok(m) if m.is_file() && is_manifest_file(&path) => files.push(path),
            _ => {}
        }
    }
}

/// Reads and parses every input, in the order given; `-` (or no path at all) reads stdin at its
/// place. A terminal on stdin is a usage error (nothing would ever arrive). All problems of all
/// files are reported together.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Document>, Problems> {
    let stdin_only = [PathBuf::from("-")];
    let paths = if paths.is_empty() { &stdin_only[..] } else { paths };
    let mut problems = Problems::default();
    let mut docs = Vec::new();
    let mut take = |result: Result<Vec<Document>, Problems>| match result {
        Ok(d) => docs.extend(d),
        Err(p) => problems.extend(p),
    };
    for p in paths {
        if p.as_os_str() == "-" {
            take(read_stdin().map_err(Problems::from).and_then(|bytes| parse_stream("<stdin>", &bytes)));
            continue;
        }
        match expand_paths(std::slice::from_ref(p)) {
            Ok(files) => files.iter().for_each(|f| take(read_file(f))),
            Err(e) => take(Err(e)),
        }
    }
    problems.into_result(docs)
}

/// Reads and parses one file, naming it as given. Files over [`MAX_INPUT_BYTES`] are refused.
pub fn read_file(path: &Path) -> Result<Vec<Document>, Problems> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Problem::new(format!("{name}: cannot read: {}", e.kind())))?;
    let bytes = read_bounded(file).map_err(|e| Problem::new(format!("{name}: {e}")))?;
    parse_stream(&name, &bytes)
}

fn read_bounded(r: impl Read) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf).map_err(|e| format!("cannot read: {}", e.kind()))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("input larger than {} MiB; refused", MAX_INPUT_BYTES / 1024 / 1024));
    }
    Ok(buf)
}

/// Reads all of stdin (at most [`MAX_INPUT_BYTES`]); refuses a terminal.
pub fn read_stdin() -> Result<Vec<u8>, Problem> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Problem::new("no input: give manifest files or folders, or pipe a stream into stdin (`-`)"));
    }
    read_bounded(stdin.lock()).map_err(|e| Problem::new(format!("<stdin>: {e}")))
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
