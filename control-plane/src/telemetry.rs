//! Logs and metrics: the tracing subscriber, the Prometheus recorder, and the per-request middleware
//! that makes the request id available to error bodies and records request counts and latencies.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::error::REQUEST_ID;
use crate::metrics;

/// Installs the global subscriber once (tests may start several servers in one process).
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub(crate) fn metrics_handle() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder exists; then our handle just renders nothing.
        let _ = ::metrics::set_global_recorder(recorder);
        handle
    })
}

pub(crate) fn render_metrics() -> String {
    metrics_handle().render()
}

/// Runs the request inside the request-id scope and records its metrics (`metrics::http_request`).
pub(crate) async fn request_context(req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| metrics::UNMATCHED_ROUTE.to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = REQUEST_ID.scope(id, next.run(req)).await;
    metrics::http_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// The request id `SetRequestIdLayer` put on the request (empty when there is none).
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
