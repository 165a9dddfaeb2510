//! Builds the full configuration every `config_check_secs` when it changed since the last build, so
//! that brokers' configuration digests (in their heartbeats) have a digest of the same version to be
//! compared with (`heartbeat::check_digest`). With deltas the full snapshot is otherwise built only
//! when a broker needs one.

use std::time::Duration;

use crate::db;
use crate::state::AppState;

pub(crate) async fn run(state: AppState) {
    let secs = state.config.config_check_secs;
    if secs == 0 {
        return;
    }
    let every = Duration::from_secs(secs);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        let current = match db::config_version(&state.db).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "configuration check: cannot read the version");
                continue;
            }
        };
        if state
            .snapshots
            .built_digest()
            .is_some_and(|(built, _)| built >= current)
        {
            continue;
        }
        let built = state
            .snapshots
            .get(&state.db, &state.secrets, state.config.rule_policy(), current)
            .await;
        if let Err(e) = built {
            tracing::warn!(error = %e, "configuration check: cannot build the snapshot");
        }
    }
}
