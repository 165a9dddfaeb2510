//! Runs the embedded store's background threads (fjall's flush and compaction workers) at a lower
//! CPU priority than the MQTT workers. Flushing a full 64 MiB memtable takes about 300 ms of one
//! core; on a busy 2-core broker it took that time from the MQTT workers and the rule senders at
//! once, and every client saw it as a latency spike (rules at 10,000 msg/s: 100 – 200 ms on the
//! rule targets, 40 – 70 ms on MQTT deliveries). At nice 10 the flush gets the CPU the broker
//! leaves over; it has seconds to finish before the next memtable fills, and writers stop only if
//! four memtables wait to be flushed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Added to the threads' nice value (0 = the broker's own priority, 19 = the lowest).
const NICE: libc::c_int = 10;

/// The store's background threads are named so by fjall.
const THREAD_NAME: &str = "fjall:worker";

/// Opens a store with `open` and lowers the priority of the background threads it started. A new
/// thread names itself once it runs, so those still carrying the opening thread's name are waited
/// for (up to a second); threads that turn out to be named otherwise are left alone. Linux only:
/// elsewhere this just calls `open`.
pub fn below_workers<T>(open: impl FnOnce() -> T) -> T {
    let before = thread_ids();
    let opened = open();
    let own = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
    let mut pending: Vec<u32> = thread_ids().difference(&before).copied().collect();
    let deadline = Instant::now() + Duration::from_secs(1);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(
            |tid| match std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) {
                Ok(name) if name.trim_end() == THREAD_NAME => {
                    lower(*tid);
                    false
                }
                // Still the opener's name: not running yet.
                Ok(name) => name == own,
                // Gone already.
                Err(_) => false,
            },
        );
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    opened
}

fn thread_ids() -> HashSet<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashSet::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

fn lower(tid: u32) {
    // On Linux PRIO_PROCESS with a thread id sets that one thread's nice value.
    #[cfg(target_os = "linux")]
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, NICE) } != 0 {
        tracing::debug!(tid, error = %std::io::Error::last_os_error(), "cannot lower a store thread's priority");
    }
}
