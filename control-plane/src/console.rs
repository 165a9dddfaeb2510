//! Serves the web console build (`console_dir`, default `web-console/dist`) at `/`: static files, and
//! `index.html` for every other non-API path so client-side routes survive a reload. Unknown
//! `/api/...` paths keep their JSON 404.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

pub type Console = ServeDir<ServeFile>;

/// The console service, when the directory exists (the control plane runs fine without a console).
pub fn service(dir: &Path) -> Option<Console> {
    if !dir.is_dir() {
        tracing::info!(dir = %dir.display(), "no web console directory; not serving a console");
        return None;
    }
    tracing::info!(dir = %dir.display(), "serving the web console");
    Some(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))))
}

pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

pub async fn serve(console: Console, req: Request) -> Response {
    match console.oneshot(req).await {
        Ok(res) => res.map(Body::new),
        Err(never) => match never {},
    }
}
