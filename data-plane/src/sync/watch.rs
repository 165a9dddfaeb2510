//! The configuration watch: long-polls the configuration, asking for deltas once it holds a version;
//! validates and swaps in each snapshot or delta (live sessions are re-checked by the swap; an invalid
//! instance is refused alone), and keeps what it was sent as last-known-good: a snapshot replaces the
//! cache, a delta is appended to its log (`lkg::Cache`). A delta that does not fit makes the next poll
//! ask for the full snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::core::Broker;
use crate::directory::Directories;
use crate::sync::backoff::Backoff;
use crate::sync::client::{Client, Config, Fetched, WAIT_SECS};
use crate::sync::{LinkState, lkg};

/// What the next poll asks for.
#[derive(Debug, PartialEq)]
enum Next {
    /// A delta from the version held (or the snapshot if the control plane cannot make one).
    Delta,
    /// The full snapshot at the next change: a snapshot was refused.
    FullOnChange,
    /// The full snapshot at once: a delta did not fit what the broker holds.
    FullNow,
}

pub async fn run(client: Arc<Client>, state: Arc<LinkState>, broker: Arc<Broker>, cache: PathBuf) {
    let cache = lkg::Cache::new(cache);
    // From a cache: ask only for something newer; from nothing: for the snapshot at once.
    let applied = broker.dirs.load().version;
    let mut after = (applied > 0).then_some(applied);
    let mut next = Next::Delta;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let (ask_after, deltas) = match next {
            Next::Delta => (after, after.is_some()),
            Next::FullOnChange => (after, false),
            Next::FullNow => (None, false),
        };
        match client.snapshot(ask_after, WAIT_SECS, deltas).await {
            Ok(None) => {
                backoff.reset();
                state.set_fetch_error(None);
            }
            Ok(Some(fetched)) => {
                backoff.reset();
                state.set_fetch_error(None);
                let version = fetched.config.version();
                next = apply(&state, &broker.dirs, &cache, fetched).await;
                if next != Next::FullNow {
                    // Poll past a refused version too: asking again would only fetch the same refusal.
                    after = Some(version);
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                crate::metrics::sync_error("snapshot");
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "snapshot poll failed");
                state.set_fetch_error(Some(e.to_string()));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Applies what was fetched and keeps it as last-known-good (a snapshot replaces the cache, a delta
/// is appended to its log); says what to ask for next.
async fn apply(
    state: &LinkState,
    dirs: &Directories,
    cache: &Arc<lkg::Cache>,
    Fetched { config, raw }: Fetched,
) -> Next {
    let version = config.version();
    let is_delta = matches!(config, Config::Delta(_));
    match config {
        Config::Snapshot(snapshot) => {
            crate::metrics::config_received("snapshot", raw.len());
            if let Err(e) = dirs.apply_snapshot(snapshot) {
                crate::metrics::snapshot_refused();
                tracing::error!(version, error = %e, "snapshot refused; keeping the current one");
                state.set_refused(Some(format!("snapshot version {version} refused: {e}")));
                state.beat_now.notify_one();
                return Next::FullOnChange;
            }
        }
        Config::Delta(delta) => {
            crate::metrics::config_received("delta", raw.len());
            if let Err(e) = dirs.apply_delta(&delta) {
                crate::metrics::delta_refused();
                tracing::warn!(from = delta.from_version, version, error = %e, "delta does not apply; fetching the full snapshot");
                return Next::FullNow;
            }
        }
    }
    report_refusals(state, version, dirs);
    state.beat_now.notify_one();
    let files = Arc::clone(cache);
    // fsync can take a while: off this thread, so that heartbeats and commands go on meanwhile.
    let written = tokio::task::spawn_blocking(move || {
        if is_delta {
            files.append_delta(&raw)
        } else {
            files.write_snapshot(&raw)
        }
    })
    .await;
    keep_written(state, cache.path(), version, written);
    Next::Delta
}

/// Reports the instances the directory holds refused, also those refused by an earlier delta and
/// not changed since.
fn report_refusals(state: &LinkState, version: i64, dirs: &Directories) {
    let dir = dirs.load();
    if dir.refused.is_empty() {
        state.set_refused(None);
        return;
    }
    let why: Vec<&str> = dir.refused.values().map(String::as_str).collect();
    state.set_refused(Some(format!(
        "snapshot version {version} applied without {} refused instance(s): {}",
        why.len(),
        why.join("; ")
    )));
}

/// Reports how writing the cache went.
fn keep_written(
    state: &LinkState,
    cache: &Path,
    version: i64,
    written: Result<std::io::Result<()>, tokio::task::JoinError>,
) {
    match written {
        Ok(Ok(())) => tracing::debug!(version, "last-known-good written"),
        Ok(Err(e)) => {
            tracing::error!(version, path = %cache.display(), error = %e, "cannot write the last-known-good cache");
            state.set_fetch_error(Some(format!("cannot write {}: {e}", cache.display())));
        }
        Err(e) => tracing::error!(error = %e, "last-known-good writer failed"),
    }
}

#[cfg(test)]
mod tests {
    use common::snapshot::{Snapshot, SnapshotContent};

    use super::*;

    /// As fetched; pretty-printed, so that bytes written as sent differ from a serialization.
    fn fetched(snapshot: Snapshot) -> Fetched {
        let raw = serde_json::to_vec_pretty(&snapshot).unwrap().into();
        Fetched {
            config: Config::Snapshot(snapshot),
            raw,
        }
    }

    #[tokio::test]
    async fn a_refused_snapshot_is_reported_not_applied_nor_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = lkg::Cache::new(dir.path().join("lkg.json"));
        let (state, dirs) = (LinkState::new(), Directories::new(None));

        apply(
            &state,
            &dirs,
            &cache,
            fetched(Snapshot::new(3, SnapshotContent::default())),
        )
        .await;
        assert_eq!((dirs.load().version, state.last_error()), (3, None));
        let cached = std::fs::read(cache.path()).unwrap();

        let mut bad = Snapshot::new(4, SnapshotContent::default());
        bad.hash = "0".repeat(64);
        apply(&state, &dirs, &cache, fetched(bad)).await;
        assert_eq!(dirs.load().version, 3, "the old snapshot stays");
        assert!(
            state.last_error().unwrap().contains("version 4 refused"),
            "{:?}",
            state.last_error()
        );
        assert_eq!(
            std::fs::read(cache.path()).unwrap(),
            cached,
            "the cache keeps the last good one"
        );

        apply(
            &state,
            &dirs,
            &cache,
            fetched(Snapshot::new(5, SnapshotContent::default())),
        )
        .await;
        assert_eq!((dirs.load().version, state.last_error()), (5, None));
    }

    #[tokio::test]
    async fn a_refused_instance_is_reported_while_the_rest_is_applied_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = lkg::Cache::new(dir.path().join("lkg.json"));
        let (state, dirs) = (LinkState::new(), Directories::new(None));
        let content = |groups: &[&str]| SnapshotContent {
            instances: vec![crate::directory::tests::instance("mqtt-bbbbbbbbbbbb", groups)],
            ..SnapshotContent::default()
        };

        apply(&state, &dirs, &cache, fetched(Snapshot::new(6, content(&["nope"])))).await;
        assert_eq!(dirs.load().version, 6);
        let error = state.last_error().expect("the refusal is reported");
        assert!(
            error.contains("mqtt-bbbbbbbbbbbb") && error.contains("1 refused instance"),
            "{error}"
        );
        assert_eq!(
            std::fs::read(cache.path()).unwrap(),
            fetched(Snapshot::new(6, content(&["nope"]))).raw,
            "what the control plane sent, byte for byte, is the last-known-good"
        );

        apply(&state, &dirs, &cache, fetched(Snapshot::new(7, content(&["GID_okay"])))).await;
        assert_eq!((dirs.load().version, state.last_error()), (7, None));
    }
}
