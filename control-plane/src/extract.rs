//! Request extraction in one place: the JSON body extractor (rejections become our `InvalidParameter`
//! naming the field, instead of axum's plain-text 422), and the refusal of strings PostgreSQL cannot
//! store. PostgreSQL text cannot hold a NUL character, so a NUL anywhere in a JSON body (the escape
//! `\u0000`), in the path or in the query string answers 400 here, before any handler runs, instead of
//! failing in the database with a 500. Invalid UTF-8 in the path is refused the same way (axum would
//! answer it with a plain-text 400).

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::invalid(
                "content-type",
                "expected `Content-Type: application/json`",
            ));
        }
        // Bytes honours the route's `DefaultBodyLimit`.
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        if has_nul_escape(&bytes) {
            let field = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| nul_path(&v, String::new()))
                .unwrap_or_else(|| "body".into());
            return Err(ApiError::invalid(field, NUL_MESSAGE));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

const NUL_MESSAGE: &str = "may not contain the NUL character";

/// `application/json` or `application/<something>+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// True when the JSON text has a `\u0000` escape (a raw NUL byte is not valid JSON anyway). Escaped
/// backslashes are skipped, so the text `\\u0000` does not count.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The JSON name of the first field whose key or string value holds a NUL: `quotas.x`,
/// `events[3].clientId`; a list of strings is named as a whole (`instanceIds`).
fn nul_path(v: &Value, at: String) -> Option<String> {
    let here = || if at.is_empty() { "body".to_string() } else { at.clone() };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| match item {
            Value::String(_) => nul_path(item, at.clone()),
            _ => nul_path(item, format!("{at}[{i}]")),
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            if k.contains('\0') {
                Some(here())
            } else {
                nul_path(v, path)
            }
        }),
        _ => None,
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            let msg = std::error::Error::source(&e).map_or_else(|| e.body_text(), ToString::to_string);
            ApiError::invalid(field_of(&msg).unwrap_or("body").to_string(), msg)
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("content-type", "expected `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(_) => ApiError::PayloadTooLarge,
        other => ApiError::invalid("body", other.body_text()),
    }
}

/// serde names the field in backticks ("missing field `name`"); the path prefix ("name: invalid
/// type ...") names it for type errors.
fn field_of(msg: &str) -> Option<&str> {
    if let Some(start) = msg.find('`') {
        let rest = &msg[start + 1..];
        if msg.contains("field `") {
            return rest.split('`').next();
        }
    }
    msg.split_once(": ").map(|(path, _)| path).filter(|p| !p.contains(' '))
}

/// Route middleware on every API route: a path that does not decode to UTF-8 without NUL, or a query
/// string with an encoded NUL, answers 400 before the route's extractors and handler run.
pub(crate) async fn reject_unstorable_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let problem = match percent_decode(uri.path()) {
        Err(()) => Some(("path", "is not valid percent-encoded UTF-8")),
        Ok(path) if path.contains('\0') => Some(("path", NUL_MESSAGE)),
        Ok(_) if uri.query().is_some_and(|q| q.contains("%00")) => Some(("query", NUL_MESSAGE)),
        Ok(_) => None,
    };
    match problem {
        Some((field, message)) => ApiError::invalid(field, message).into_response(),
        None => next.run(req).await,
    }
}

/// Strict percent-decoding to UTF-8 (what axum's `Path` does).
fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_escapes_and_their_field() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a":"x\\u0000"}"#));
        assert!(has_nul_escape(br#"{"a":"x\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a":"\u0001"}"#));
        let v: Value = serde_json::from_str(r#"{"quotas":{"a":1},"instanceIds":["ok","b\u0000"]}"#).unwrap();
        assert_eq!(nul_path(&v, String::new()).as_deref(), Some("instanceIds"));
        let v: Value = serde_json::from_str(r#"{"e":[{"a":"x"},{"t":["y\u0000"]}]}"#).unwrap();
        assert_eq!(nul_path(&v, String::new()).as_deref(), Some("e[1].t"));
        let v: Value = serde_json::from_str(r#"{"q":{"k\u0000":1}}"#).unwrap();
        assert_eq!(nul_path(&v, String::new()).as_deref(), Some("q"));
    }

    #[test]
    fn decodes_paths_strictly() {
        assert_eq!(percent_decode("/a%40b").unwrap(), "/a@b");
        assert_eq!(percent_decode("/a%00").unwrap(), "/a\0");
        assert!(percent_decode("/a%FF").is_err());
        assert_eq!(percent_decode("/a%zz").unwrap(), "/a%zz");
    }
}
