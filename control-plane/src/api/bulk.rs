//! Onboarding in bulk (our extension; Alibaba's API registers one at a time): up to 1,000 device
//! credentials or group IDs of one instance per call, in one transaction and so one configuration
//! change for the brokers, with a result per item in the order asked.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::devices::{DeviceCredential, no_such_group, parse_client_id, sealed_new_secret};
use super::groups::GroupId;
use crate::auth::Caller;
use crate::db::devices::{self, NewDevice};
use crate::db::{ConfigTx, credential_exists, group_exists, groups};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Items per call at most.
pub const MAX_ITEMS: usize = 1_000;

/// Largest body of a batch call: 1,000 client IDs of the longest length an instance allows (1,024
/// characters, none needing escapes), with their quotes and commas, and room for the rest.
pub(crate) const BODY_LIMIT: usize = MAX_ITEMS * (1_024 + 3) + 4_096;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRegisterDeviceCredentialRequest {
    /// 1-1,000 client IDs, each `<GroupID>@@@<DeviceID>` of a group of the instance.
    pub client_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchCreateGroupIdRequest {
    /// 1-1,000 groups.
    pub groups: Vec<NewGroup>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewGroup {
    pub group_id: String,
    #[serde(default)]
    pub description: String,
}

/// Why one item was not done: the code and message the single-item operation would have answered.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemError {
    /// `InvalidParameter` or `AlreadyExists`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCredentialResult {
    pub client_id: String,
    /// The new credential (its secret shown this once), when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<DeviceCredential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRegisterDeviceCredentialResponse {
    pub registered: usize,
    pub failed: usize,
    /// One per client ID asked, in the same order.
    pub results: Vec<DeviceCredentialResult>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupIdResult {
    pub group_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateGroupIdResponse {
    pub created: usize,
    pub failed: usize,
    /// One per group asked, in the same order.
    pub results: Vec<GroupIdResult>,
}

impl From<ApiError> for ItemError {
    fn from(e: ApiError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The refusal of an item that repeats an earlier one of the call.
fn repeated(field: &str) -> Option<ItemError> {
    Some(ApiError::invalid(field, "listed more than once").into())
}

fn check_count(field: &str, n: usize) -> ApiResult<()> {
    if n == 0 || n > MAX_ITEMS {
        return Err(ApiError::invalid(field, format!("1 to {MAX_ITEMS} items")));
    }
    Ok(())
}

/// Each item asked, in order, with what became of it: written (`done` has it under its key), refused
/// by the checks (its error), or passed the checks but not written because it exists already.
fn outcomes<T>(
    asked: Vec<String>,
    errors: Vec<Option<ItemError>>,
    mut done: HashMap<String, T>,
    exists: impl Fn(&str) -> ApiError,
) -> impl Iterator<Item = (String, Option<T>, Option<ItemError>)> {
    asked.into_iter().zip(errors).map(move |(key, error)| {
        let item = error.is_none().then(|| done.remove(&key)).flatten();
        let error = match (&item, error) {
            (None, None) => Some(exists(&key).into()),
            (_, error) => error,
        };
        (key, item, error)
    })
}

/// Marks the items that repeat an earlier one (each is done once, for its first occurrence).
fn repeats<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<bool> {
    let mut seen = HashSet::new();
    keys.map(|k| !seen.insert(k)).collect()
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/device-credentials/batch",
    operation_id = "BatchRegisterDeviceCredential", tag = "device-credentials",
    params(("instanceId" = String, Path)), request_body = BatchRegisterDeviceCredentialRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = BatchRegisterDeviceCredentialResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn batch_register_device_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<BatchRegisterDeviceCredentialRequest>,
) -> ApiResult<Json<BatchRegisterDeviceCredentialResponse>> {
    caller.require_instance(&instance_id)?;
    check_count("clientIds", req.client_ids.len())?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance_for_devices(&instance_id).await?;
    let known_groups: HashSet<String> = groups::ids(&mut tx, &instance_id).await?.into_iter().collect();
    let repeats = repeats(req.client_ids.iter().map(String::as_str));

    // Checked one by one as RegisterDeviceCredential would; the valid ones are inserted together.
    let mut errors: Vec<Option<ItemError>> = Vec::with_capacity(req.client_ids.len());
    let mut keys = Vec::new();
    for (client_id, again) in req.client_ids.iter().zip(repeats) {
        let error = match parse_client_id(client_id, quotas.max_client_id_length) {
            _ if again => repeated("clientIds"),
            Err(e) => Some(e.into()),
            Ok(c) if !known_groups.contains(c.group_id) => Some(no_such_group().into()),
            Ok(c) => {
                let key_id = crate::ids::device_key_id();
                let secret_enc = sealed_new_secret(&state, &key_id);
                keys.push((client_id.as_str(), c.group_id, c.device_id, key_id, secret_enc));
                None
            }
        };
        errors.push(error);
    }
    let new: Vec<NewDevice<'_>> = keys
        .iter()
        .map(|(client_id, group_id, device_id, key_id, secret_enc)| NewDevice {
            instance_id: &instance_id,
            client_id,
            group_id,
            device_id,
            device_access_key_id: key_id,
            secret_enc,
        })
        .collect();
    let rows = if new.is_empty() {
        Vec::new()
    } else {
        devices::register_many(&mut tx, &instance_id, &new).await?
    };
    if !rows.is_empty() {
        tx.commit().await?;
    }

    let mut registered: HashMap<String, DeviceCredential> = HashMap::with_capacity(rows.len());
    for row in rows {
        registered.insert(row.client_id.clone(), DeviceCredential::open(row, &state)?);
    }
    let results: Vec<DeviceCredentialResult> = outcomes(req.client_ids, errors, registered, credential_exists)
        .map(|(client_id, credential, error)| DeviceCredentialResult {
            client_id,
            credential,
            error,
        })
        .collect();
    let registered = results.iter().filter(|r| r.credential.is_some()).count();
    Ok(Json(BatchRegisterDeviceCredentialResponse {
        registered,
        failed: results.len() - registered,
        results,
    }))
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/groups/batch", operation_id = "BatchCreateGroupId",
    tag = "groups", params(("instanceId" = String, Path)), request_body = BatchCreateGroupIdRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = BatchCreateGroupIdResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn batch_create_group_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<BatchCreateGroupIdRequest>,
) -> ApiResult<Json<BatchCreateGroupIdResponse>> {
    caller.require_instance(&instance_id)?;
    check_count("groups", req.groups.len())?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    let repeats = repeats(req.groups.iter().map(|g| g.group_id.as_str()));
    let errors: Vec<Option<ItemError>> = req
        .groups
        .iter()
        .zip(repeats)
        .map(|(g, again)| match common::names::validate_group_id(&g.group_id) {
            _ if again => repeated("groups"),
            Err(e) => Some(ApiError::invalid("groupId", e).into()),
            Ok(()) => None,
        })
        .collect();
    let valid: Vec<(&str, &str)> = req
        .groups
        .iter()
        .zip(&errors)
        .filter(|(_, e)| e.is_none())
        .map(|(g, _)| (g.group_id.as_str(), g.description.as_str()))
        .collect();
    let rows = if valid.is_empty() {
        Vec::new()
    } else {
        groups::create_many(&mut tx, &instance_id, &valid).await?
    };
    if !rows.is_empty() {
        tx.commit().await?;
    }

    let created: HashMap<String, GroupId> = rows.into_iter().map(|r| (r.group_id.clone(), r.into())).collect();
    let asked = req.groups.into_iter().map(|g| g.group_id).collect();
    let results: Vec<GroupIdResult> = outcomes(asked, errors, created, group_exists)
        .map(|(group_id, group, error)| GroupIdResult { group_id, group, error })
        .collect();
    let created = results.iter().filter(|r| r.group.is_some()).count();
    Ok(Json(BatchCreateGroupIdResponse {
        created,
        failed: results.len() - created,
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_later_occurrences_are_repeats() {
        assert_eq!(repeats(["a", "b", "a", "a"].into_iter()), [false, false, true, true]);
    }

    #[test]
    fn a_thousand_of_the_longest_client_ids_fit_the_body_limit() {
        let ids: Vec<String> = (0..MAX_ITEMS).map(|i| format!("GID_x@@@{i:0>1016}")).collect();
        assert_eq!(ids[0].len(), 1_024);
        let body = serde_json::to_vec(&serde_json::json!({ "clientIds": ids })).unwrap();
        assert!(body.len() <= BODY_LIMIT, "{} > {BODY_LIMIT}", body.len());
    }
}
