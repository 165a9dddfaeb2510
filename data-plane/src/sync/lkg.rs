//! The last-known-good snapshot cache: written atomically after every applied snapshot, read once at
//! start so a broker that cannot reach the control plane still serves the instances it had.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::directory::Directories;

/// The temporary file next to `path` (same directory, so the rename cannot cross file systems).
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file, never a mix:
/// tmp file (mode 0600: the snapshot holds secrets), fsync, rename, fsync of the directory.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    // A leftover from a crash may have another mode; `mode()` only applies to files it creates.
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The rename itself is only durable once the directory entry is on disk.
    File::open(dir)?.sync_all()
}

/// Serves from the cache at start, if there is one. Never fails: without a usable cache the broker
/// starts empty and waits for the control plane.
pub fn load(dirs: &Directories, path: &Path) {
    if !path.exists() {
        tracing::info!(path = %path.display(), "no last-known-good snapshot yet; waiting for the control plane");
        return;
    }
    match dirs.apply_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), version = dirs.load().version, "serving the last-known-good snapshot")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "last-known-good snapshot unusable; waiting for the control plane")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_mode_0600_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last-known-good.json");
        write(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        // A stale tmp file with a lax mode from an earlier crash must not leak into the result.
        let tmp = tmp_path(&path);
        fs::write(&tmp, b"junk").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!tmp.exists(), "the tmp file is renamed away");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn load_without_or_with_a_broken_cache_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Directories::new(None);
        load(&dirs, &dir.path().join("missing.json"));
        let broken = dir.path().join("broken.json");
        write(&broken, b"{not json").unwrap();
        load(&dirs, &broken);
        assert_eq!(dirs.load().version, 0);
    }

    #[test]
    fn a_written_snapshot_is_served_back() {
        use common::snapshot::{Snapshot, SnapshotContent};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lkg.json");
        let snap = Snapshot::new(42, SnapshotContent::default());
        write(&path, &serde_json::to_vec(&snap).unwrap()).unwrap();
        let dirs = Directories::new(None);
        load(&dirs, &path);
        assert_eq!(dirs.load().version, 42);
    }
}
