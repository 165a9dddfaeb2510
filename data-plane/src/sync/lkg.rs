//! The last-known-good cache: the last full snapshot, written atomically, plus a log of the deltas
//! applied on top of it (`<file>.deltas`, one JSON document per line, each fsynced before the next
//! poll). Read once at start so a broker that cannot reach the control plane still serves the
//! instances it had. Once the log outgrows the snapshot, a background thread folds it into a new
//! snapshot file (`common::delta::fold`) while appends go on; a full snapshot from the control plane
//! replaces both.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::delta::Delta;
use common::snapshot::Snapshot;

use crate::directory::{Directories, LoadError};

/// A delta log shorter than this is not compacted, whatever the snapshot's size.
const MIN_LOG_BEFORE_COMPACTION: u64 = 1 << 20;

/// The cache files of one broker, written from the configuration watch.
pub struct Cache {
    path: PathBuf,
    /// Held while a file of the cache is replaced, appended to or read as a pair.
    files: Mutex<()>,
    /// Bumped by every full snapshot written: a compaction that started before is dropped.
    generation: AtomicU64,
    compacting: AtomicBool,
    min_log: u64,
}

impl Cache {
    pub fn new(path: PathBuf) -> Arc<Self> {
        Self::with_min_log(path, MIN_LOG_BEFORE_COMPACTION)
    }

    fn with_min_log(path: PathBuf, min_log: u64) -> Arc<Self> {
        Arc::new(Self {
            path,
            files: Mutex::new(()),
            generation: AtomicU64::new(0),
            compacting: AtomicBool::new(false),
            min_log,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A full snapshot as received: replaces the file and empties the log.
    pub fn write_snapshot(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _files = self.files.lock().expect("cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        write(&self.path, bytes)
    }

    /// A delta as received: appended to the log; starts a compaction once the log outgrows the
    /// snapshot.
    pub fn append_delta(self: &Arc<Self>, raw: &[u8]) -> std::io::Result<()> {
        let log_len = {
            let _files = self.files.lock().expect("cache lock");
            append_delta(&self.path, raw)?
        };
        let snapshot_len = fs::metadata(&self.path).map_or(0, |m| m.len());
        if log_len > snapshot_len.max(self.min_log) && !self.compacting.swap(true, Ordering::SeqCst) {
            let cache = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("lkg-compaction".into())
                .spawn(move || {
                    if let Err(e) = cache.compact() {
                        tracing::error!(path = %cache.path.display(), error = %e, "cannot compact the last-known-good cache");
                    }
                    cache.compacting.store(false, Ordering::SeqCst);
                });
            if started.is_err() {
                self.compacting.store(false, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Folds the log as it is now into a new snapshot file; deltas appended meanwhile stay in the
    /// log, after it.
    fn compact(&self) -> std::io::Result<()> {
        let generation = self.generation.load(Ordering::SeqCst);
        let (snapshot, log) = {
            let _files = self.files.lock().expect("cache lock");
            (fs::read(&self.path)?, fs::read(delta_log_path(&self.path))?)
        };
        let started = std::time::Instant::now();
        let snapshot: Snapshot = serde_json::from_slice(&snapshot)?;
        let from = snapshot.version;
        let folded = common::delta::fold(snapshot, logged_deltas(&log));
        let bytes = serde_json::to_vec(&folded)?;
        let _files = self.files.lock().expect("cache lock");
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        write_atomically(&self.path, &bytes)?;
        let log_path = delta_log_path(&self.path);
        let now = fs::read(&log_path)?;
        write_atomically(&log_path, now.get(log.len()..).unwrap_or_default())?;
        tracing::info!(
            from,
            to = folded.version,
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "last-known-good log folded into its snapshot"
        );
        Ok(())
    }

    /// Whether a compaction is running (tests wait for it).
    #[cfg(test)]
    fn is_compacting(&self) -> bool {
        self.compacting.load(Ordering::SeqCst)
    }
}

/// The deltas of a log, in order, up to the first unreadable or damaged line (a torn last line after
/// a crash).
fn logged_deltas(log: &[u8]) -> impl Iterator<Item = Delta> + '_ {
    log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map_while(|line| {
        serde_json::from_slice::<Delta>(line)
            .ok()
            .filter(|d| d.check_hash().is_ok())
    })
}

/// The temporary file next to `path` (same directory, so the rename cannot cross file systems).
fn tmp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.tmp", file_name(path)))
}

/// The delta log that goes with the snapshot file at `path`.
fn delta_log_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}.deltas", file_name(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned())
}

/// Replaces the snapshot file at `path` with `bytes` and empties the delta log (its deltas led to
/// older versions). A crash in between leaves a log whose deltas no longer follow the snapshot:
/// `load` skips them.
fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically(path, bytes)?;
    match fs::remove_file(delta_log_path(path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Appends one delta (as the control plane sent it: compact JSON, no line breaks) to the log and
/// syncs it. Returns the log's length.
fn append_delta(path: &Path, raw: &[u8]) -> std::io::Result<u64> {
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(delta_log_path(path))?;
    let mut line = Vec::with_capacity(raw.len() + 1);
    line.extend_from_slice(raw);
    line.push(b'\n');
    log.write_all(&line)?;
    log.sync_data()?;
    Ok(log.metadata()?.len())
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file, never a mix:
/// tmp file (mode 0600: the snapshot holds secrets), fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    let served = read_cache(path).and_then(|snapshot| Ok(dirs.apply_snapshot(snapshot)?));
    match served {
        Ok(_) => {
            tracing::info!(path = %path.display(), version = dirs.load().version, "serving the last-known-good snapshot")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "last-known-good snapshot unusable; waiting for the control plane")
        }
    }
}

/// The cached snapshot with the logged deltas that follow it folded in, up to the first that does
/// not (a torn last line after a crash, or a log older than the snapshot). Folded rather than
/// applied one by one: a logged batch of a thousand credentials would otherwise copy much of a
/// large instance's table for each delta.
fn read_cache(path: &Path) -> Result<Snapshot, LoadError> {
    let raw = fs::read(path).map_err(|e| LoadError::Read(path.display().to_string(), e))?;
    let snapshot: Snapshot = serde_json::from_slice(&raw)?;
    snapshot.check_hash()?;
    let log = fs::read(delta_log_path(path)).unwrap_or_default();
    Ok(common::delta::fold(snapshot, logged_deltas(&log)))
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

    #[test]
    fn logged_deltas_are_replayed_until_one_does_not_follow() {
        use common::delta::{Delta, DeltaContent};
        use common::snapshot::Snapshot;

        use crate::directory::tests::{instance, snapshot};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lkg.json");
        let id = "mqtt-aaaaaaaaaaaa";
        write(
            &path,
            &serde_json::to_vec(&snapshot(3, vec![instance(id, &["GID_alpha"])])).unwrap(),
        )
        .unwrap();
        let changed = |from: i64, to: i64, groups: &[&str]| {
            let content = DeltaContent {
                instances: vec![common::delta::ChangedInstance {
                    config: instance(id, groups),
                    devices_included: false,
                }],
                ..DeltaContent::default()
            };
            serde_json::to_vec(&Delta::new(from, to, content)).unwrap()
        };
        append_delta(&path, &changed(3, 4, &["GID_alpha", "GID_bravo"])).unwrap();
        append_delta(&path, &changed(4, 6, &["GID_charlie"])).unwrap();
        // Does not follow 6: replay stops before it, and before anything after it.
        append_delta(&path, &changed(5, 7, &["GID_delta1"])).unwrap();
        append_delta(&path, &changed(7, 8, &["GID_echo1"])).unwrap();
        let dirs = Directories::new(None);
        load(&dirs, &path);
        let dir = dirs.load();
        assert_eq!(dir.version, 6);
        assert!(dir.instances[id].group_ids.contains("GID_charlie"));

        // A torn last line (a crash while appending) is where replay stops too.
        let log = delta_log_path(&path);
        let mut bytes = fs::read(&log).unwrap();
        let first_line = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        bytes.truncate(first_line + 20);
        fs::write(&log, &bytes).unwrap();
        let dirs = Directories::new(None);
        load(&dirs, &path);
        assert_eq!(dirs.load().version, 4);
        assert_eq!(fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);

        // A new snapshot empties the log.
        write(
            &path,
            &serde_json::to_vec(&Snapshot::new(9, Default::default())).unwrap(),
        )
        .unwrap();
        assert!(!log.exists());
    }

    #[test]
    fn an_outgrown_log_is_folded_into_the_snapshot_while_appends_go_on() {
        use common::delta::{Delta, DeltaContent, DeviceChanges};
        use common::snapshot::DeviceCredentialEntry;

        use crate::directory::tests::{instance, snapshot};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lkg.json");
        let id = "mqtt-aaaaaaaaaaaa";
        // Any log outgrows this small snapshot: compactions start at once and overlap appends.
        let cache = Cache::with_min_log(path.clone(), 0);
        let first = snapshot(3, vec![instance(id, &["GID_alpha"])]);
        cache.write_snapshot(&serde_json::to_vec(&first).unwrap()).unwrap();
        for v in 3..40 {
            let content = DeltaContent {
                devices: vec![DeviceChanges {
                    instance_id: id.into(),
                    upserts: vec![DeviceCredentialEntry {
                        client_id: format!("GID_alpha@@@{v}"),
                        device_access_key_id: format!("k{v}"),
                        device_access_key_secret: "s".into(),
                    }],
                    removed: vec![],
                }],
                ..DeltaContent::default()
            };
            cache
                .append_delta(&serde_json::to_vec(&Delta::new(v, v + 1, content)).unwrap())
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.is_compacting() {
            assert!(std::time::Instant::now() < deadline, "compaction did not end");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }

        let on_disk: Snapshot = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        on_disk.check_hash().unwrap();
        assert!(
            on_disk.version > 3,
            "the log was folded in (snapshot at {})",
            on_disk.version
        );
        for file in [path.clone(), delta_log_path(&path)] {
            assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let dirs = Directories::new(None);
        load(&dirs, &path);
        let dir = dirs.load();
        assert_eq!(
            dir.version, 40,
            "snapshot and what is left of the log reach the last delta"
        );
        assert_eq!(dir.instances[id].device_credentials.len(), 37);
    }
}
