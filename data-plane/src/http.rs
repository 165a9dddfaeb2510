//! The broker's HTTP side (`/metrics` for Prometheus, `/healthz`, the online-status query, this
//! broker's rule figures and latest dead letters on `/rules`) and the
//! SIGHUP snapshot reload, on a small tokio runtime of their own so they never compete with the MQTT
//! workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::cluster::Cluster;
use crate::core::Broker;

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    broker: Arc<Broker>,
}

/// Installs the metrics recorder and creates every series. First thing at start-up: what the start
/// counts (records of the store that cannot be read, the snapshot version) is counted from here on.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    crate::metrics::register();
    Ok(prometheus)
}

/// Starts the HTTP side. `reload`: the snapshot file SIGHUP re-reads (none, and SIGHUP is ignored,
/// when the control plane feeds the broker). In a cluster the online-status query answers for
/// every broker.
pub fn spawn(
    addr: SocketAddr,
    broker: Arc<Broker>,
    reload: Option<PathBuf>,
    prometheus: PrometheusHandle,
    cluster: Option<Arc<Cluster>>,
) -> anyhow::Result<()> {
    let std_listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    std_listener.set_nonblocking(true)?;
    tracing::info!(addr = %std_listener.local_addr()?, "http listener (/metrics, /healthz, /rules, /route/clientId/get)");
    let state = AppState { prometheus, broker };
    std::thread::Builder::new().name("http".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "cannot start the http runtime"),
        };
        rt.block_on(async move {
            // Also without a file: SIGHUP's default action would terminate a linked broker.
            tokio::spawn(reload_on_sighup(state.broker.clone(), reload));
            let online = crate::online_status::router(state.broker.clone(), cluster);
            let app = Router::new()
                .route("/metrics", get(metrics))
                .route("/healthz", get(|| async { "ok" }))
                .route("/rules", get(rules))
                .with_state(state)
                .merge(online);
            let served = async {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                axum::serve(listener, app).await
            };
            if let Err(e) = served.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
    })?;
    Ok(())
}

async fn metrics(State(state): State<AppState>) -> String {
    crate::metrics::offline_messages(state.broker.offline_message_count());
    crate::metrics::publish_message_counts();
    // Refreshes the per-rule queue gauges.
    if let Some(rules) = state.broker.rules() {
        rules.stats();
    }
    state.prometheus.render()
}

/// This broker's per-rule figures and its latest dead letters (no payloads beyond the first 4 KiB
/// of a refused body, which the control plane shows too).
async fn rules(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let (stats, dead) = match state.broker.rules() {
        Some(r) => (r.stats(), r.dead.recent()),
        None => Default::default(),
    };
    axum::Json(serde_json::json!({ "rules": stats, "deadLetters": dead }))
}

/// SIGHUP re-reads the snapshot file; an invalid one is refused and the current one kept.
async fn reload_on_sighup(broker: Arc<Broker>, snapshot: Option<PathBuf>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return tracing::error!("cannot listen for SIGHUP");
    };
    while hup.recv().await.is_some() {
        let Some(snapshot) = &snapshot else {
            tracing::info!("SIGHUP ignored: the configuration comes from the control plane");
            continue;
        };
        match broker.dirs.apply_file(snapshot) {
            Ok(()) => tracing::info!("snapshot reloaded"),
            Err(e) => {
                crate::metrics::snapshot_refused();
                tracing::error!(error = %e, "snapshot reload refused; keeping the current one");
            }
        }
    }
}
