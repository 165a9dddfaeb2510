//! Errors in Alibaba's terms: an HTTP status, a code such as `InvalidParameter.ClientId` or
//! `SignatureDoesNotMatch`, and a message. The codes and statuses are those of Alibaba's OnsMqtt
//! error tables and of its API gateway's common errors (docs/alibaba-compat.md lists them).

use std::borrow::Cow;

use axum::http::StatusCode;

use crate::auth::access_key::UNKNOWN_KEY;
use crate::error::ApiError;

#[derive(Debug)]
pub(crate) struct RpcError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
}

const INSTANCE_PERMISSION: &str = "An error occurred while validating the permissions of the instance. Please verify the account that created the instance and its permissions settings.";

impl RpcError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// `InvalidParameter.<Name>`: a parameter of the action is missing or wrong.
    pub fn invalid(name: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("InvalidParameter.{name}"), message)
    }

    /// A common parameter (Action, Version, AccessKeyId, Signature, ...) is missing.
    pub fn missing_common(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    pub fn parameter_check(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ParameterCheckFailed", message)
    }

    /// The AccessKey is not bound to the instance (or the instance does not exist: the same answer).
    pub fn instance_permission() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InstancePermissionCheckFailed",
            INSTANCE_PERMISSION,
        )
    }

    pub fn incomplete_signature(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            format!("The request signature does not conform to Aliyun standards: {detail}"),
        )
    }

    pub fn signature_mismatch(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!("Specified signature is not matched with our calculation.{detail}"),
        )
    }

    pub fn unknown_key() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found or disabled.",
        )
    }

    pub fn nonce_used() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )
    }

    pub fn timestamp_expired() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        )
    }

    pub fn timestamp_format() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    }

    /// A failure of the REST layer underneath. `subject` is the parameter a "not found" is about
    /// (the device credential of `ClientId`, the group of `GroupId`, ...).
    pub fn from_api(e: ApiError, subject: &str) -> Self {
        match e {
            ApiError::InvalidParameter { field, message } => Self::invalid(&param_name(&field), message),
            ApiError::Unauthenticated(m) if m == UNKNOWN_KEY => Self::unknown_key(),
            ApiError::Unauthenticated(m) => Self::incomplete_signature(m),
            ApiError::SignatureMismatch => Self::signature_mismatch(""),
            ApiError::RequestExpired => Self::timestamp_expired(),
            ApiError::NonceReplayed => Self::nonce_used(),
            ApiError::Forbidden(_) | ApiError::NotFound("instance") => Self::instance_permission(),
            ApiError::NotFound(what) => Self::invalid(subject, format!("The {what} does not exist.")),
            ApiError::AlreadyExists(m) | ApiError::QuotaExceeded(m) => Self::parameter_check(m),
            ApiError::MethodNotAllowed => Self::unsupported_method(),
            ApiError::PayloadTooLarge => Self::parameter_check(e.to_string()),
            ApiError::QuotaBelowUsage { field, message } => Self::invalid(&param_name(&field), message),
            // Only console-session requests can fail this; RPC calls are signed, never cookie-borne.
            ApiError::CsrfTokenInvalid => Self::incomplete_signature("a console session cannot call the RPC API"),
            // No RPC action tests rules; kept exhaustive so a new REST error is mapped on purpose.
            ApiError::ServiceUnavailable
            | ApiError::RequestTimeout
            | ApiError::ServerBusy
            | ApiError::NoLiveBroker
            | ApiError::RuleTestTimeout { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ),
            ApiError::TooManyRequests { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttling",
                "Request was denied due to request throttling.",
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "An error occurred while processing your request. Try again later.",
                )
            }
        }
    }

    pub fn unsupported_method() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedHTTPMethod",
            "This http method is not supported: use GET or POST.",
        )
    }
}

/// Alibaba's name of a REST field: PascalCase, except where the action names it differently.
fn param_name(field: &str) -> String {
    match field {
        "clientIds" => "ClientIdList".into(),
        "topic" => "MqttTopic".into(),
        _ => {
            let mut chars = field.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_errors_in_alibaba_terms() {
        let e = RpcError::from_api(ApiError::invalid("expireTime", "too soon"), "Token");
        assert_eq!(
            (e.status, e.code.as_ref()),
            (StatusCode::BAD_REQUEST, "InvalidParameter.ExpireTime")
        );
        assert_eq!(
            RpcError::from_api(ApiError::invalid("clientIds", "x"), "").code,
            "InvalidParameter.ClientIdList"
        );
        assert_eq!(
            RpcError::from_api(ApiError::Forbidden("no"), "").code,
            "InstancePermissionCheckFailed"
        );
        let e = RpcError::from_api(ApiError::NotFound("device credential"), "ClientId");
        assert_eq!(e.code, "InvalidParameter.ClientId");
        let e = RpcError::from_api(ApiError::Unauthenticated(UNKNOWN_KEY), "");
        assert_eq!(
            (e.status, e.code.as_ref()),
            (StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound")
        );
        assert_eq!(
            RpcError::from_api(ApiError::NonceReplayed, "").code,
            "SignatureNonceUsed"
        );
    }
}
