//! Assembles the application (state, routes, layers) and runs it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::login_limit::LoginGuard;
use crate::auth::{operator, signing_key};
use crate::broker_link::feeds::Feeds;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::error::{ApiError, REQUEST_ID};
use crate::state::AppState;
use crate::{alibaba, api, console, db, http, telemetry};

/// Connects to PostgreSQL, migrates, loads keys and creates the first operator if needed.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let secrets = SecretBox::from_config(&config)?;
    let db = db::connect(
        &config.database_url,
        config.database_max_connections,
        Duration::from_millis(config.database_acquire_timeout_ms),
    )
    .await?;
    if let Some(password) =
        operator::bootstrap_admin(&db, &config.admin_username, config.admin_password.as_deref()).await?
    {
        // Printed once, on the terminal only: there is no other way to learn it.
        eprintln!(
            "created operator {:?} with generated password: {password}",
            config.admin_username
        );
    }
    let token_signer = signing_key::load_or_create(&db, &secrets).await?;
    crate::auth::node::bootstrap(&db, &config.broker_nodes).await?;
    Ok(AppState {
        db,
        operator_keys: Arc::new(operator::OperatorKeys::new(&secrets)),
        secrets,
        token_signer: Arc::new(token_signer),
        feeds: Feeds::default(),
        snapshots: Arc::default(),
        logins: Arc::new(LoginGuard::new(
            config.login_attempts_per_minute,
            config.login_failures_per_minute,
            config.login_max_concurrent_hashes,
        )),
        config: Arc::new(config),
    })
}

fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let console = console::service(&state.config.console_dir);
    let timeouts = http::RequestTimeouts {
        request: Duration::from_secs(state.config.http_request_timeout_secs),
        long_poll_extra: Duration::from_secs(crate::broker_link::MAX_WAIT_SECS),
    };
    Router::new()
        .merge(api::router(state.clone()))
        .merge(alibaba::token_server::router())
        .route("/healthz", get(api::health::healthz))
        .route("/readyz", get(api::health::readyz))
        .route("/metrics", get(api::health::metrics))
        .route_layer(axum::middleware::from_fn(crate::extract::reject_unstorable_uri))
        .route_layer(axum::middleware::from_fn(telemetry::request_context))
        .fallback(move |req: Request| fallback(console.clone(), req))
        .method_not_allowed_fallback(method_not_allowed)
        // Alibaba's RPC calls at `/` are taken before the console fallback sees them.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            alibaba::rpc::dialect,
        ))
        .with_state(state)
        // Every body is bounded; routes that need more (SendMessage, broker events) say so themselves.
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(timeouts, http::request_timeout))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn(security_headers))
}

/// What the built console needs and no more: its own scripts, styles, API calls and `data:` images
/// (the favicon); no inline script, no framing (`frame-ancestors 'none'`, and `X-Frame-Options` for
/// older browsers), no MIME sniffing, no referrer. Set on every answer (harmless on JSON).
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    for (name, value) in SECURITY_HEADERS {
        res.headers_mut()
            .entry(name)
            .or_insert(axum::http::HeaderValue::from_static(value));
    }
    res
}

/// Non-API paths go to the web console when there is one; unknown API paths get the JSON error shape
/// (the route layers do not run for fallbacks, so the request id is scoped here).
async fn fallback(console: Option<console::Console>, req: Request) -> Response {
    match console {
        Some(c) if !console::is_api_path(req.uri().path()) => console::serve(c, req).await,
        _ => error_with_request_id(req.headers(), ApiError::NotFound("route")).await,
    }
}

async fn method_not_allowed(headers: HeaderMap) -> Response {
    error_with_request_id(&headers, ApiError::MethodNotAllowed).await
}

async fn error_with_request_id(headers: &HeaderMap, error: ApiError) -> Response {
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST_ID.scope(id, async move { error.into_response() }).await
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    telemetry::metrics_handle();
    let housekeeping = tokio::spawn(crate::housekeeping::run(state.db.clone()));
    let config_check = tokio::spawn(crate::broker_link::digest_check::run(state.clone()));
    let listener_task = tokio::spawn(state.feeds.clone().run(
        state.config.database_url.clone(),
        Duration::from_millis(state.config.database_acquire_timeout_ms),
    ));
    let feeds = state.feeds.clone();
    let shutdown = async move {
        shutdown.await;
        // Long-polls answer at once instead of holding graceful shutdown for up to a minute.
        feeds.close();
    };
    let limits = http::Limits {
        header_timeout: Duration::from_secs(state.config.http_header_timeout_secs),
        idle_timeout: Duration::from_secs(state.config.http_idle_timeout_secs),
        max_connections: state.config.http_max_connections,
    };
    let result = http::serve(listener, app(state), limits, shutdown).await;
    housekeeping.abort();
    config_check.abort();
    listener_task.abort();
    Ok(result?)
}

/// Resolves on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "control plane listening");
    serve(state, listener, shutdown_signal()).await
}
