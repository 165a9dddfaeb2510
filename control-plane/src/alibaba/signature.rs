//! Who is calling the RPC dialect. Two public signatures of Alibaba's API are accepted:
//!
//! - **ACS3-HMAC-SHA256** (new SDKs): checked by the REST API's own verifier
//!   (`auth::access_key::verify`), after the query is read the way RPC clients write it: as a form,
//!   where `+` is a space (the SDK sends `a+b` and signs `a%20b`).
//! - **The v1 RPC signature** (older SDKs, `signature_algorithm='v2'` of the Python SDK, tools):
//!   `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))` with
//!   `StringToSign = METHOD + "&" + percentEncode("/") + "&" + percentEncode(CanonicalQuery)` and
//!   `CanonicalQuery` every parameter but `Signature`, sorted by name, `percentEncode(name) + "=" +
//!   percentEncode(value)` joined by `&` (percent-encoding keeps only `A-Za-z0-9-_.~`), plus
//!   `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`, a `Timestamp` within 15 minutes and a
//!   `SignatureNonce` that is accepted once (the REST API's nonce table).
//!
//! Either way the caller is the AccessKey, allowed on the instances it is bound to, exactly as on
//! the REST API.

use axum::http::Uri;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};

use super::errors::RpcError;
use super::params::Params;
use crate::auth::access_key;
use crate::auth::{Caller, acs3};
use crate::state::AppState;

/// Accepted clock skew of a v1 `Timestamp` *(compat: Alibaba's 15 minutes)*.
pub(crate) const V1_WINDOW_SECS: i64 = 15 * 60;

/// The `Authorization` header of an ACS3-signed request.
pub(crate) fn acs3_authorization(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with(acs3::ALGORITHM))
}

pub(crate) async fn authenticate(
    state: &AppState,
    mut parts: Parts,
    body: &[u8],
    params: &Params,
) -> Result<Caller, RpcError> {
    if let Some(authorization) = acs3_authorization(&parts).map(str::to_string) {
        let signed = acs3::parse_authorization(&authorization)
            .map(|a| a.signed_headers)
            .unwrap_or_default();
        for (header, param) in [("x-acs-action", "Action"), ("x-acs-version", "Version")] {
            if params.get(param).is_none() && !signed.iter().any(|h| h == header) {
                return Err(RpcError::incomplete_signature(&format!(
                    "{header} must be among the SignedHeaders."
                )));
            }
        }
        parts.uri = with_form_query(&parts.uri);
        let signed = access_key::verify(state, &parts, &authorization)
            .await
            .map_err(|e| RpcError::from_api(e, ""))?;
        if !acs3::sha256_hex(body).eq_ignore_ascii_case(&signed.content_sha256) {
            return Err(RpcError::from_api(crate::error::ApiError::SignatureMismatch, ""));
        }
        return Ok(signed.caller);
    }
    verify_v1(state, parts.method.as_str(), params).await
}

/// The same URI with every `+` of the query written `%20` (a literal `+` arrives as `%2B`).
fn with_form_query(uri: &Uri) -> Uri {
    match uri.query() {
        Some(q) if q.contains('+') => {
            let rewritten = format!("{}?{}", uri.path(), q.replace('+', "%20"));
            rewritten.parse().unwrap_or_else(|_| uri.clone())
        }
        _ => uri.clone(),
    }
}

/// The v1 string to sign of a request with these parameters (`Signature` itself left out).
pub fn string_to_sign<'a>(method: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != "Signature").collect();
    pairs.sort();
    let canonical = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", acs3::percent_encode(k), acs3::percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{method}&%2F&{}", acs3::percent_encode(&canonical))
}

/// The v1 signature of `string_to_sign` with this AccessKeySecret.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    common::signing::hmac_sha1_base64(format!("{secret}&").as_bytes(), string_to_sign.as_bytes())
}

fn common_param<'a>(params: &'a Params, name: &str) -> Result<&'a str, RpcError> {
    params.get(name).ok_or_else(|| RpcError::missing_common(name))
}

/// Checks in the order of the ACS3 verifier: form, clock, key, signature, then the nonce (recorded
/// only for a signature that holds, so unsigned traffic cannot fill the table).
async fn verify_v1(state: &AppState, method: &str, params: &Params) -> Result<Caller, RpcError> {
    // Action and Version count only as signed parameters (not as headers beside the signature).
    common_param(params, "Action")?;
    common_param(params, "Version")?;
    let access_key_id = common_param(params, "AccessKeyId")?;
    let signature = common_param(params, "Signature")?;
    if common_param(params, "SignatureMethod")? != "HMAC-SHA1" {
        return Err(RpcError::incomplete_signature("SignatureMethod must be HMAC-SHA1."));
    }
    if common_param(params, "SignatureVersion")? != "1.0" {
        return Err(RpcError::incomplete_signature("SignatureVersion must be 1.0."));
    }
    let nonce = common_param(params, "SignatureNonce")?;
    if nonce.len() > 128 {
        return Err(RpcError::incomplete_signature(
            "SignatureNonce must be 1 to 128 characters.",
        ));
    }
    let timestamp =
        DateTime::parse_from_rfc3339(common_param(params, "Timestamp")?).map_err(|_| RpcError::timestamp_format())?;
    if (Utc::now() - timestamp.with_timezone(&Utc)).num_seconds().abs() > V1_WINDOW_SECS {
        return Err(RpcError::timestamp_expired());
    }
    let secret = access_key::signing_secret(state, access_key_id)
        .await
        .map_err(|e| RpcError::from_api(e, ""))?;
    let to_sign = string_to_sign(method, params.iter());
    if !common::signing::constant_time_eq(sign(&secret, &to_sign).as_bytes(), signature.as_bytes()) {
        return Err(RpcError::signature_mismatch(&format!(
            " server string to sign is:{to_sign}"
        )));
    }
    access_key::record_nonce(state, access_key_id, nonce, V1_WINDOW_SECS)
        .await
        .map_err(|e| RpcError::from_api(e, ""))?;
    access_key::caller(state, access_key_id.to_string())
        .await
        .map_err(|e| RpcError::from_api(e, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector produced by `alibabacloud_tea_openapi.utils.Utils.get_rpcsignature` (the reference
    /// signer of the Python SDK) for the same parameters.
    #[test]
    fn matches_the_reference_v1_signer() {
        let params = [
            ("Action", "SendMessage"),
            ("Format", "json"),
            ("Version", "2020-04-20"),
            ("Timestamp", "2026-11-22T02:00:00Z"),
            ("SignatureNonce", "n-1"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("AccessKeyId", "LTAItest"),
            ("InstanceId", "mqtt-abcdefabcdef"),
            ("MqttTopic", "T/a b"),
            ("Payload", "x*y~z+1&2=3"),
            ("Signature", "ignored"),
        ];
        let to_sign = string_to_sign("POST", params);
        assert!(to_sign.starts_with("POST&%2F&AccessKeyId%3DLTAItest%26Action%3DSendMessage%26"));
        assert!(to_sign.contains("MqttTopic%3DT%252Fa%2520b"), "{to_sign}");
        assert_eq!(sign("secret123", &to_sign), "0a4NDSVsi7d2SY3EFFMhqyjF6DI=");
    }

    #[test]
    fn plus_in_the_query_is_a_space() {
        let uri: Uri = "/?Payload=a+b&MqttTopic=T%2Bx".parse().unwrap();
        assert_eq!(with_form_query(&uri).to_string(), "/?Payload=a%20b&MqttTopic=T%2Bx");
        let plain: Uri = "/?A=1".parse().unwrap();
        assert_eq!(with_form_query(&plain), plain);
    }
}
