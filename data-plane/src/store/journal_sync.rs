//! Starts writing the store's journal to the disk in the background, a little at a time. Writes
//! reach the OS page cache at once (what survives kill -9), but the disk only when something writes
//! them back, and the embedded store syncs its journal while it holds the journal's lock (when it
//! flushes a full memtable). With the kernel's default of writing dirty pages back after 30 s, that
//! sync found tens of MB to write, and every writer (MQTT workers storing offline messages and rule
//! items, the rule senders) waited 40 – 200 ms for it. Here, every `EVERY` when something was
//! written, the write-back of the active journal is started (`sync_file_range`, which neither waits
//! nor takes the store's lock), so the store's own sync finds almost nothing left.
//!
//! The active journal is the highest-numbered `<n>.jnl` in the store's folder (fjall's layout);
//! should that change, no journal is found and nothing happens here (the store works as before).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::Database;

/// How often the journal's write-back is started when something was written.
const EVERY: Duration = Duration::from_millis(200);

pub struct JournalSync {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JournalSync {
    pub fn start(db: Database, dir: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || {
                let mut written = db.seqno();
                let mut journal: Option<(PathBuf, File)> = None;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(EVERY);
                    let now = db.seqno();
                    if now == written {
                        continue;
                    }
                    written = now;
                    let Some(path) = active_journal(&dir) else { continue };
                    if journal.as_ref().is_none_or(|(p, _)| *p != path) {
                        journal = File::open(&path).ok().map(|f| (path, f));
                    }
                    if let Some((_, file)) = &journal {
                        start_write_back(file);
                    }
                }
            })
            .ok();
        if thread.is_none() {
            tracing::warn!("cannot start the store's journal write-back thread");
        }
        Self { stop, thread }
    }
}

impl Drop for JournalSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The highest-numbered `<n>.jnl` in `dir`.
fn active_journal(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n: u64 = name.to_str()?.strip_suffix(".jnl")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

#[cfg(target_os = "linux")]
fn start_write_back(file: &File) {
    use std::os::fd::AsRawFd;
    // Offset 0 and length 0: the whole file. Only starts the write-out of dirty pages.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot start the journal's write-back");
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &File) {}
