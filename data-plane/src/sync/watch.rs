//! The configuration watch: long-polls the snapshot, validates and swaps it in (live sessions are
//! re-checked by the swap; an invalid instance is refused alone), and writes the bytes it was sent as
//! last-known-good.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::core::Broker;
use crate::directory::Directories;
use crate::sync::backoff::Backoff;
use crate::sync::client::{Client, Fetched, WAIT_SECS};
use crate::sync::{LinkState, lkg};

pub async fn run(client: Arc<Client>, state: Arc<LinkState>, broker: Arc<Broker>, cache: PathBuf) {
    // From a cache: ask only for something newer; from nothing: for the snapshot at once.
    let applied = broker.dirs.load().version;
    let mut after = (applied > 0).then_some(applied);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match client.snapshot(after, WAIT_SECS).await {
            Ok(None) => {
                backoff.reset();
                state.set_fetch_error(None);
            }
            Ok(Some(fetched)) => {
                backoff.reset();
                state.set_fetch_error(None);
                // Poll past a refused version too: asking again would only fetch the same refusal.
                after = Some(fetched.snapshot.version);
                apply(&state, &broker.dirs, &cache, fetched).await;
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

/// Applies a fetched snapshot and keeps the bytes it was read from as the last-known-good file.
async fn apply(state: &LinkState, dirs: &Directories, cache: &std::path::Path, Fetched { snapshot, raw }: Fetched) {
    let version = snapshot.version;
    match dirs.apply_snapshot(snapshot) {
        Err(e) => {
            crate::metrics::snapshot_refused();
            tracing::error!(version, error = %e, "snapshot refused; keeping the current one");
            state.set_refused(Some(format!("snapshot version {version} refused: {e}")));
            state.beat_now.notify_one();
            return;
        }
        Ok(refused) if refused.is_empty() => state.set_refused(None),
        Ok(refused) => {
            let why: Vec<String> = refused.iter().map(ToString::to_string).collect();
            state.set_refused(Some(format!(
                "snapshot version {version} applied without {} refused instance(s): {}",
                why.len(),
                why.join("; ")
            )));
        }
    }
    state.beat_now.notify_one();
    let path = cache.to_path_buf();
    // fsync can take a while: off this thread, so that heartbeats and commands go on meanwhile.
    let written = tokio::task::spawn_blocking(move || lkg::write(&path, &raw)).await;
    match written {
        Ok(Ok(())) => tracing::debug!(version, "last-known-good snapshot written"),
        Ok(Err(e)) => {
            tracing::error!(version, path = %cache.display(), error = %e, "cannot write the last-known-good snapshot");
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
        Fetched { snapshot, raw }
    }

    #[tokio::test]
    async fn a_refused_snapshot_is_reported_not_applied_nor_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("lkg.json");
        let (state, dirs) = (LinkState::new(), Directories::new(None));

        apply(
            &state,
            &dirs,
            &cache,
            fetched(Snapshot::new(3, SnapshotContent::default())),
        )
        .await;
        assert_eq!((dirs.load().version, state.last_error()), (3, None));
        let cached = std::fs::read(&cache).unwrap();

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
            std::fs::read(&cache).unwrap(),
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
        let cache = dir.path().join("lkg.json");
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
            std::fs::read(&cache).unwrap(),
            fetched(Snapshot::new(6, content(&["nope"]))).raw,
            "what the control plane sent, byte for byte, is the last-known-good"
        );

        apply(&state, &dirs, &cache, fetched(Snapshot::new(7, content(&["GID_okay"])))).await;
        assert_eq!((dirs.load().version, state.last_error()), (7, None));
    }
}
