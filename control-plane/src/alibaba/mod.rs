//! Alibaba's own API dialect, so that Alibaba's official SDKs and older tools work against this
//! control plane by changing only the endpoint and keys (docs/alibaba-compat.md):
//!
//! - `rpc`: the RPC style of the OnsMqtt 2020-04-20 API at `/` (`Action=ApplyToken&...`), signed
//!   with ACS3-HMAC-SHA256 or the v1 HMAC-SHA1 RPC signature (`signature`), answered in Alibaba's
//!   field names and error codes (`reply`, `errors`);
//! - `token_server`: the legacy token server endpoints `/token/apply|revoke|query`.
//!
//! Both are thin layers: parameters in (`params`), then the REST handlers of `api` with the
//! AccessKey as caller (`actions`), so validation, authorization and effects are the REST API's.

mod actions;
mod errors;
mod params;
mod reply;
pub(crate) mod rpc;
mod signature;
pub(crate) mod token_server;
