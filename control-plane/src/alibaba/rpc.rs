//! The RPC dialect at `/`: a request with an `Action` parameter (query string or form body) or an
//! `x-acs-action` header is an API call; everything else at `/` goes on to the web console.
//!
//! A call: method (GET or POST), action and version (`2020-04-20`), then the signature (ACS3 or v1,
//! `signature.rs`), then the action's handler. The answer carries the request id (`x-request-id`)
//! as `RequestId` and the request's host as `HostId`, in JSON or, with `Format=XML`, in XML.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::actions::{self, Call};
use super::errors::RpcError;
use super::params::{self, Params};
use super::reply::{self, Format};
use super::signature;
use crate::error::REQUEST_ID;
use crate::metrics;
use crate::state::AppState;

/// The one API version spoken *(compat)*.
pub(crate) const VERSION: &str = "2020-04-20";
const ACTION_HEADER: &str = "x-acs-action";
const VERSION_HEADER: &str = "x-acs-version";

/// Middleware in front of the whole router (it sees `/` before the console fallback does).
pub(crate) async fn dialect(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/" {
        return next.run(req).await;
    }
    let in_header = req.headers().contains_key(ACTION_HEADER);
    let in_query = Params::parse(req.uri().query(), None).get("Action").is_some();
    let maybe_in_form = req.method() == Method::POST && params::is_form(req.headers());
    if !in_header && !in_query && !maybe_in_form {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = req.method().to_string();
    let request_id = header(req.headers(), "x-request-id").to_string();
    let host_id = header(req.headers(), "host").to_string();
    let (parts, body, params) = match params::read(req).await {
        Ok(read) => read,
        Err(e) => return reply::error(Format::Json, &request_id, &host_id, &e),
    };
    if !in_header && params.get("Action").is_none() {
        // A form POST to `/` that is not a call: the console's business.
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    }
    let format = Format::of(&params);
    let (label, result) = REQUEST_ID
        .scope(request_id.clone(), call(&state, parts, &body, params))
        .await;
    let response = match result {
        Ok((action, fields)) => reply::success(format, action, &request_id, fields),
        Err(e) => reply::error(format, &request_id, &host_id, &e),
    };
    metrics::http_request(method, label, response.status().as_u16(), started.elapsed());
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

type Outcome = Result<(&'static str, actions::Fields), RpcError>;

/// Runs the call; also returns the route label of its metrics (`/?Action=<name>` for a listed action).
async fn call(state: &AppState, parts: Parts, body: &Bytes, params: Params) -> (String, Outcome) {
    // An ACS3-signed request names its action and version in headers, a v1-signed one in parameters
    // (`signature.rs` makes sure that what is used was signed).
    let acs3 = signature::acs3_authorization(&parts).is_some();
    let named = |header_name: &str, param: &str| {
        let from_header = Some(header(&parts.headers, header_name)).filter(|v| !v.is_empty());
        let from_param = params.get(param);
        let name = if acs3 {
            from_header.or(from_param)
        } else {
            from_param.or(from_header)
        };
        name.map(str::to_string)
    };
    let action = named(ACTION_HEADER, "Action");
    let version = named(VERSION_HEADER, "Version");
    let found = action.as_deref().map(actions::find);
    let label = match &found {
        Some(Ok((name, _))) => format!("/?Action={name}"),
        _ => "/?Action=".to_string(),
    };
    let outcome = async {
        if parts.method != Method::GET && parts.method != Method::POST {
            return Err(RpcError::unsupported_method());
        }
        let (name, handler) = found.ok_or_else(|| RpcError::missing_common("Action"))??;
        match version.as_deref() {
            None => return Err(RpcError::missing_common("Version")),
            Some(VERSION) => {}
            Some(other) => {
                return Err(RpcError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidVersion",
                    format!("Specified parameter Version {other:?} is not valid: this API is {VERSION}."),
                ));
            }
        }
        let caller = signature::authenticate(state, parts, body, &params).await?;
        let fields = handler(Call {
            state: state.clone(),
            caller,
            params,
        })
        .await?;
        Ok((name, fields))
    }
    .await;
    (label, outcome)
}
