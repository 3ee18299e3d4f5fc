//! Durable file writes. Reports, timelines and state are replaced
//! atomically: written to a temporary file in the same directory, flushed
//! to disk, then renamed over the target, so a reader never sees half a file
//! and a failed or interrupted run leaves the previous one intact.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with what `write` puts into a fresh file.
///
/// The temporary file's name is unique (random, created exclusively), not
/// derived from the process id: in containers every process is PID 1, and
/// two replicas of `serve` sharing a ReadWriteMany state volume wrote the
/// same selection through the same `.NAME.1.tmp`, truncating and
/// interleaving each other's bytes before the rename.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a file path", path.display()),
            )
        })?;
    // Dropped on any error below, which removes it.
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMPORARY_SUFFIX);
    // tempfile's own default is 0600; outputs (reports, charts, a
    // rewritten manifest) keep the mode `File::create` gave them, 0666
    // less the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(&dir)?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable only once the directory is synced.
    File::open(&dir)?.sync_all()
}

/// How every temporary file of [`write_atomically`] ends.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Removes the temporary files of [`write_atomically`] for targets in `dir`
/// whose names start with `target_prefix` and that have not been touched
/// for `older_than`: what a process killed
/// between creating and renaming one left behind (a SIGKILL at the end of
/// the grace period, an OOM kill). Younger ones may belong to a peer
/// writing right now on a shared volume, and are left alone. Returns the
/// names removed; errors are skipped, as the next sweep retries them.
///
/// Only targets named by `target_prefix`: a state directory pointed at a
/// shared place (`/tmp`, a home directory) holds other programs' `.*.tmp`
/// files, and an editor's swap file is not ours to delete.
pub(crate) fn sweep_temporaries(
    dir: &Path,
    target_prefix: &str,
    older_than: std::time::Duration,
) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name
            .strip_prefix('.')
            .is_some_and(|n| n.starts_with(target_prefix));
        if !(ours && name.ends_with(TEMPORARY_SUFFIX)) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= older_than);
        if old
            && entry.metadata().is_ok_and(|m| m.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// Replaces `path` with `bytes`.
pub(crate) fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically(path, |f| f.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_keeps_the_old_one_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_bytes_atomically(&p, b"one").unwrap();
        write_bytes_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let e = write_atomically(&p, |_| Err(std::io::Error::other("boom")));
        assert!(e.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_writers_of_one_file_never_mix_their_bytes() {
        // Two writers of the same target (two replicas on a shared volume;
        // threads of one process share a PID as containers' PID 1s do):
        // each rename installs one writer's whole content.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("selection.json");
        let a = vec![b'a'; 1 << 20];
        let b = vec![b'b'; 1 << 19];
        let (a, b) = (&a, &b);
        std::thread::scope(|s| {
            for body in [a, b] {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(p, |f| {
                            // In pieces, so the two writes overlap in time.
                            for chunk in body.chunks(4096) {
                                f.write_all(chunk)?;
                            }
                            Ok(())
                        })
                        .unwrap();
                        let got = std::fs::read(p).unwrap();
                        assert!(got == *a || got == *b, "mixed file of {} bytes", got.len());
                    }
                });
            }
        });
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("selection.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn files_get_the_mode_file_create_gives() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (ours, plain) = (dir.path().join("a"), dir.path().join("b"));
        write_bytes_atomically(&ours, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn sweep_removes_only_old_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".selection-1.json.a1b2c3.tmp");
        let young = dir.path().join(".selection-2.json.d4e5f6.tmp");
        let kept = dir.path().join("selection-1.json");
        for p in [&old, &young, &kept] {
            std::fs::write(p, b"x").unwrap();
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let other = dir.path().join(".editor-swap.tmp");
        std::fs::write(&other, b"x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let removed = sweep_temporaries(
            dir.path(),
            "selection-",
            std::time::Duration::from_secs(600),
        );
        assert_eq!(removed, vec![".selection-1.json.a1b2c3.tmp".to_string()]);
        assert!(!old.exists() && young.exists() && kept.exists() && other.exists());
    }
}
