//! Directories and globs as inputs: `logveil run /archive/ -o out/` replays a whole tree, and
//! `logveil run 'logs/**/*.gz'` a pattern too large for the shell's argument list.
//!
//! A directory is walked depth-first in name order (the same order on every run), following
//! symlinks to files and directories; each file found keeps its path relative to the
//! directory named (or to the literal part of a glob), which is where a mirrored output
//! directory puts it. What cannot be walked is one clear problem each, and the walk goes on:
//! a symlink that leads back into its own ancestry (a loop), a directory or link that cannot
//! be read, a FIFO, socket or device (which would block or never end). Nothing readable is
//! left out.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::file::InputSpec;

/// Inputs named on the command line, expanded: files and stdin as they are, directories
/// and globs into the files they hold. Returns the inputs and the problems met on the way
/// (one line each, naming the path).
pub fn expand(args: &[String]) -> Result<(Vec<InputSpec>, Vec<String>)> {
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for arg in args {
        if arg == "-" {
            inputs.push(InputSpec::Stdin);
            continue;
        }
        let path = Path::new(arg);
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            let before = inputs.len();
            walk(path, &mut inputs, &mut problems);
            if inputs.len() == before && problems.is_empty() {
                crate::notice::warn(format_args!("input directory {arg}: no files in it"));
            }
        } else if is_glob(arg) && std::fs::symlink_metadata(path).is_err() {
            glob_files(arg, &mut inputs, &mut problems)?;
        } else {
            inputs.push(InputSpec::parse(arg));
        }
    }
    Ok((inputs, problems))
}

fn is_glob(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// What a walk keeps: every file, or those whose path relative to the root matches a glob
/// (then no deeper than the glob reaches, unless it has `**`).
struct Filter {
    pattern: Option<glob::Pattern>,
    max_depth: Option<usize>,
}

impl Filter {
    fn keeps(&self, rel: &Path) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.pattern
            .as_ref()
            .is_none_or(|p| p.matches_path_with(rel, opts))
    }
}

/// The files under `root`, each relative to `root`.
fn walk(root: &Path, inputs: &mut Vec<InputSpec>, problems: &mut Vec<String>) {
    let all = Filter {
        pattern: None,
        max_depth: None,
    };
    walk_root(root, &all, inputs, problems);
}

fn walk_root(
    root: &Path,
    filter: &Filter,
    inputs: &mut Vec<InputSpec>,
    problems: &mut Vec<String>,
) {
    let mut ancestors = HashSet::new();
    if let Ok(m) = std::fs::metadata(root) {
        ancestors.insert((m.dev(), m.ino()));
    }
    walk_dir(root, root, 1, filter, &mut ancestors, inputs, problems);
}

fn walk_dir(
    root: &Path,
    dir: &Path,
    depth: usize,
    filter: &Filter,
    ancestors: &mut HashSet<(u64, u64)>,
    inputs: &mut Vec<InputSpec>,
    problems: &mut Vec<String>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!(
                "input {}: cannot read directory: {e}",
                dir.display()
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for e in entries {
        match e {
            Ok(e) => paths.push(e.path()),
            Err(e) => problems.push(format!(
                "input {}: cannot read directory: {e}",
                dir.display()
            )),
        }
    }
    paths.sort();
    let deeper = filter.max_depth.is_none_or(|m| depth < m);
    for path in paths {
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        // `metadata` follows symlinks: a link is what it points at.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                if !filter.keeps(&rel) {
                    continue;
                }
                let what = if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
                    match std::fs::read_link(&path) {
                        Ok(to) => format!("symlink to {} cannot be followed", to.display()),
                        Err(_) => "symlink cannot be followed".into(),
                    }
                } else {
                    "cannot read".into()
                };
                problems.push(format!("input {}: {what}: {e}; skipped", path.display()));
                continue;
            }
        };
        if meta.is_dir() {
            if !deeper {
                continue;
            }
            let id = (meta.dev(), meta.ino());
            if !ancestors.insert(id) {
                let to = std::fs::read_link(&path)
                    .map(|t| format!(" -> {}", t.display()))
                    .unwrap_or_default();
                problems.push(format!(
                    "input {}{to}: symlink loop (leads back to a directory it is in); not followed",
                    path.display()
                ));
                continue;
            }
            walk_dir(root, &path, depth + 1, filter, ancestors, inputs, problems);
            ancestors.remove(&id);
        } else if !filter.keeps(&rel) {
            continue;
        } else if meta.is_file() {
            inputs.push(InputSpec::Tree { path, rel });
        } else {
            problems.push(format!(
                "input {}: not a regular file (a FIFO, socket or device would block or never end); skipped",
                path.display()
            ));
        }
    }
}

/// The files a glob matches (in name order), each relative to the glob's literal prefix
/// (`logs/2024/*.gz` → relative to `logs/2024`). `*` does not cross `/`; `**` is any depth.
/// The walk is the directory walk (symlink loops are found and reported, not followed).
fn glob_files(
    pattern: &str,
    inputs: &mut Vec<InputSpec>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let comps: Vec<String> = Path::new(pattern)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let literal = comps.iter().take_while(|c| !is_glob(c)).count();
    let base: PathBuf = Path::new(pattern).components().take(literal).collect();
    let rest: Vec<&String> = comps[literal..].iter().collect();
    let rel_pattern = rest
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let compiled = glob::Pattern::new(&rel_pattern)
        .map_err(|e| anyhow::anyhow!("input {pattern}: not a valid glob pattern: {e}"))?;
    let filter = Filter {
        pattern: Some(compiled),
        max_depth: (!rest.iter().any(|c| c.as_str() == "**")).then_some(rest.len()),
    };
    let root = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    if !root.is_dir() {
        bail!(
            "input {pattern}: no file matches this pattern ({} is not a directory)",
            root.display()
        );
    }
    let before = (inputs.len(), problems.len());
    walk_root(&root, &filter, inputs, problems);
    if (inputs.len(), problems.len()) == before {
        bail!("input {pattern}: no file matches this pattern");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(inputs: &[InputSpec]) -> Vec<String> {
        inputs
            .iter()
            .map(|i| match i {
                InputSpec::Tree { rel, .. } => rel.display().to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn walks_in_name_order_follows_links_and_reports_loops() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("logs");
        std::fs::create_dir_all(r.join("b/deep")).unwrap();
        std::fs::create_dir_all(r.join("a")).unwrap();
        std::fs::write(r.join("b/deep/x.log"), "x\n").unwrap();
        std::fs::write(r.join("a/2.log"), "2\n").unwrap();
        std::fs::write(r.join("a/10.log"), "10\n").unwrap();
        std::fs::write(r.join("top.log.gz"), "").unwrap();
        std::os::unix::fs::symlink(r.join("b"), r.join("a/link-to-b")).unwrap();
        std::os::unix::fs::symlink(&r, r.join("b/loop")).unwrap();
        std::os::unix::fs::symlink(r.join("gone"), r.join("dangling")).unwrap();
        let fifo = r.join("a/fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let arg = r.to_str().unwrap().to_string();
        let (inputs, problems) = expand(&[arg]).unwrap();
        assert_eq!(
            rels(&inputs),
            [
                "a/10.log",
                "a/2.log",
                "a/link-to-b/deep/x.log",
                "b/deep/x.log",
                "top.log.gz"
            ]
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("a/fifo: not a regular file"),
            "{problems:#?}"
        );
        // Reached twice: through a/link-to-b and through b itself; each names its path.
        assert!(
            problems[1].contains("a/link-to-b/loop -> ") && problems[1].contains("symlink loop")
        );
        assert!(problems[2].contains("b/loop -> ") && problems[2].contains("symlink loop"));
        assert!(problems[3].contains("dangling: symlink to") && problems[3].contains("skipped"));
    }

    #[test]
    fn globs_are_relative_to_their_literal_prefix() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("arch");
        std::fs::create_dir_all(r.join("2024/01")).unwrap();
        std::fs::create_dir_all(r.join("2025/02")).unwrap();
        std::fs::write(r.join("2024/01/app.log.gz"), "").unwrap();
        std::fs::write(r.join("2025/02/app.log.gz"), "").unwrap();
        std::fs::write(r.join("2025/02/skip.txt"), "").unwrap();
        let pat = format!("{}/**/*.gz", r.display());
        let (inputs, problems) = expand(&[pat]).unwrap();
        assert!(problems.is_empty());
        assert_eq!(rels(&inputs), ["2024/01/app.log.gz", "2025/02/app.log.gz"]);
        let e = expand(&[format!("{}/*.none", r.display())]).unwrap_err();
        assert!(format!("{e}").contains("no file matches"), "{e}");
        // A name that exists is a file, even with glob characters in it.
        std::fs::write(r.join("odd[1].log"), "").unwrap();
        let (inputs, _) = expand(&[r.join("odd[1].log").display().to_string()]).unwrap();
        assert!(matches!(inputs[0], InputSpec::File(_)));
    }
}
