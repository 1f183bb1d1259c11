//! Atomic file writes: write to a temporary file beside the target, fsync it, rename it
//! over the target, fsync the directory. A reader (or a resumed run) sees either the old
//! file or the new one, never half of either.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically (temp + fsync + rename + directory fsync).
///
/// # Errors
/// Fails if the directory cannot be created or written, naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, ".tmp", |tmp| {
        let mut file =
            File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))
    })
}

/// Atomic write for writers that need a path of their own (e.g. an image encoder):
/// `fill` writes the complete file at the temporary path it is given (same directory,
/// `.<name>.<pid><suffix>`, so an encoder that picks its format from the extension can be
/// given e.g. `".tmp.png"`); it is then fsynced and renamed over `path`. On any error the
/// temporary file is removed and `path` is left as it was.
///
/// # Errors
/// Whatever `fill` returns; a directory that cannot be created or written, naming the path.
pub fn write_atomic_with(
    path: &Path,
    suffix: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}{suffix}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        fill(&tmp)?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot rename onto {}", path.display()))?;
        if let Ok(d) = File::open(dir) {
            // Directory fsync makes the rename durable; not every filesystem supports it.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.bin");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn unwritable_target_is_a_clear_error() {
        let err = write_atomic(Path::new("/proc/definitely/not/here.bin"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/proc/definitely"));
    }
}
