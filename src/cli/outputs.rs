//! Checks on the files a command will write, made before it reads or
//! computes anything: a long run must not end by failing on its output, and
//! an output must never replace the input it was computed from.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Refuses, naming the flag: an output whose directory does not exist or
/// takes no new files, a path that is a directory, and an output that is
/// the input (also through a symlink) or another output.
pub(super) fn check(input: Option<(&str, &Path)>, outputs: &[(&str, Option<&Path>)]) -> Result<()> {
    let mut seen: Vec<(&str, PathBuf)> = Vec::new();
    if let Some((flag, input)) = input
        && let Some(r) = resolved(input)
    {
        seen.push((flag, r));
    }
    for &(flag, path) in outputs {
        let Some(path) = path else { continue };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "{flag} {}: the directory {} does not exist; create it first (nothing was run)",
                path.display(),
                dir.display()
            );
        }
        if path.is_dir() {
            bail!("{flag} {} is a directory; name a file", path.display());
        }
        let Some(r) = resolved(path) else {
            bail!("{flag} {}: not a file path", path.display());
        };
        if let Some((other, _)) = seen.iter().find(|(_, p)| *p == r) {
            bail!(
                "{flag} {} is also {other}: one file cannot hold both; name another",
                path.display()
            );
        }
        // Written atomically through a temporary file beside it, so the
        // directory must take new files.
        let probe = dir.join(format!(".foresight-probe-{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => bail!(
                "{flag} {}: cannot create files in {}: {e}",
                path.display(),
                dir.display()
            ),
        }
        seen.push((flag, r));
    }
    Ok(())
}

/// Where a path points: the file itself when it exists (through any
/// symlink, so an output cannot replace the input it links to), else its
/// resolved directory joined with its name.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(full) = p.canonicalize() {
        return Some(full);
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(p.file_name()?))
}
