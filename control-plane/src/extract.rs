//! A JSON body extractor whose rejections are our `InvalidParameter` errors naming the field, instead
//! of axum's plain-text 422.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
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
