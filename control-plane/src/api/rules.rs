//! Rules (docs/rules.md): CreateRule, ListRules, GetRule, UpdateRule, DeleteRule, EnableRule and
//! DisableRule. At most `maxRules` per instance. Target secrets are write-only: stored encrypted,
//! sent to brokers in the snapshot, and shown in answers only as `hasSecret`/`hasPassword`/...

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::quotas::Quotas;
use common::rules::{OutboxLimits, RuleSource, RuleTarget};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::rule_reports;
use crate::db::rules::{self, RuleRow, RuleWrite};
use crate::db::{ConfigTx, instances};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::rules::model::{
    NatsEndpointView, OutboxInput, OutboxView, RuleKindView, RuleSourceInput, RuleSourceView, RuleStatus,
    RuleTargetInput, RuleTargetView, kind_name, source_view,
};
use crate::rules::secrets::{self, Secrets};
use crate::rules::validate::{self, Context};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRuleRequest {
    /// 1-64 characters.
    pub name: String,
    /// [default true]
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub source: RuleSourceInput,
    /// Required for outflow and status rules; not given for inflow rules.
    pub target: Option<RuleTargetInput>,
    #[serde(default)]
    pub outbox: OutboxInput,
}

fn enabled_by_default() -> bool {
    true
}

/// Omitted fields keep their value; a given `source` or `target` replaces the whole of it, except
/// its secrets, which an absent field keeps and `""` removes.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRuleRequest {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub source: Option<RuleSourceInput>,
    pub target: Option<RuleTargetInput>,
    pub outbox: Option<OutboxInput>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `rule-` and 16 lowercase hex characters.
    pub rule_id: String,
    pub instance_id: String,
    pub name: String,
    pub kind: RuleKindView,
    pub enabled: bool,
    #[schema(value_type = RuleSourceView)]
    pub source: RuleSource<NatsEndpointView>,
    /// Absent for inflow rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<RuleTargetView>,
    pub outbox: OutboxView,
    pub status: RuleStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

impl Rule {
    pub(crate) fn new(row: RuleRow, stats: Option<&RuleStatus>) -> Self {
        let mut source = row.source.0;
        let mut target = row.target.map(|t| t.0);
        secrets::mark(&mut source, target.as_mut(), &row.secret_fields);
        Self {
            rule_id: row.id,
            instance_id: row.instance_id,
            name: row.name,
            kind: source.kind().into(),
            enabled: row.enabled,
            source: source_view(&source),
            target: target.as_ref().map(RuleTargetView::from),
            outbox: row.outbox.0.into(),
            status: stats.cloned().unwrap_or_default(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A fresh rule id: `rule-` and 64 random bits in hex.
fn rule_id() -> String {
    format!(
        "{}{}",
        common::rules::RULE_ID_PREFIX,
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// A rule as it will be stored: secrets still in it, resolved against the stored ones.
struct Draft {
    name: String,
    enabled: bool,
    source: RuleSource,
    target: Option<RuleTarget>,
    outbox: OutboxLimits,
}

/// Checks the draft against its instance (locked by `tx`), seals its secrets and writes it: an
/// update of the rule whose secrets were `previous`, or a new rule.
async fn write(
    state: &AppState,
    tx: &mut ConfigTx,
    instance_id: &str,
    quotas: &Quotas,
    id: &str,
    mut d: Draft,
    previous: Option<&Secrets>,
) -> ApiResult<RuleRow> {
    secrets::resolve(&mut d.source, d.target.as_mut(), previous.unwrap_or(&Secrets::new()));
    let (parent_topics, group_ids) = rules::names(tx, instance_id).await?;
    let cx = Context {
        quotas,
        parent_topics: &parent_topics,
        group_ids: &group_ids,
        policy: state.config.rule_policy(),
    };
    validate::rule(&d.name, &d.source, d.target.as_ref(), &d.outbox, &cx)?;
    let taken = secrets::split(&mut d.source, d.target.as_mut());
    let sealed = secrets::seal(&state.secrets, id, &taken);
    let secret_fields: Vec<String> = taken.into_keys().collect();
    let w = RuleWrite {
        name: &d.name,
        enabled: d.enabled,
        kind: kind_name(d.source.kind()),
        source: &d.source,
        target: d.target.as_ref(),
        outbox: &d.outbox,
        secrets_enc: sealed.as_deref(),
        secret_fields: &secret_fields,
    };
    Ok(if previous.is_some() {
        rules::update(tx, instance_id, id, &w).await?
    } else {
        rules::insert(tx, instance_id, id, &w).await?
    })
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/rules", operation_id = "CreateRule", tag = "rules",
    params(("instanceId" = String, Path)), request_body = CreateRuleRequest, security(("bearer" = []), ("acs3" = [])),
    responses((status = 201, body = Rule), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`QuotaExceeded`: the instance has `maxRules` rules")))]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    ApiJson(req): ApiJson<CreateRuleRequest>,
) -> ApiResult<(StatusCode, Json<Rule>)> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(&instance_id).await?;
    if rules::count(&mut tx, &instance_id).await? >= i64::from(quotas.max_rules) {
        return Err(ApiError::QuotaExceeded(format!(
            "the instance already has the maximum of {} rules",
            quotas.max_rules
        )));
    }
    let draft = Draft {
        name: req.name,
        enabled: req.enabled,
        source: (&req.source).into(),
        target: req.target.as_ref().map(RuleTarget::from),
        outbox: req.outbox.apply(OutboxLimits::default()),
    };
    let id = rule_id();
    let row = write(&state, &mut tx, &instance_id, &quotas, &id, draft, None).await?;
    tx.commit().await?;
    tracing::info!(instance = instance_id, rule = id, "rule created");
    Ok((StatusCode::CREATED, Json(Rule::new(row, None))))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/rules", operation_id = "ListRules", tag = "rules",
    params(("instanceId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = RuleList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<RuleList>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    let rows = rules::list(&state.db, &instance_id).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let stats = rule_reports::stats(&state.db, &ids).await?;
    Ok(Json(RuleList {
        rules: rows
            .into_iter()
            .map(|r| {
                let s = stats.get(&r.id);
                Rule::new(r, s)
            })
            .collect(),
    }))
}

/// The rule with its status; 404 naming the instance or the rule.
pub(crate) async fn fetch(state: &AppState, instance_id: &str, rule_id: &str) -> ApiResult<Rule> {
    instances::quotas(&state.db, instance_id).await?;
    let row = rules::get(&state.db, instance_id, rule_id)
        .await?
        .ok_or(ApiError::NotFound("rule"))?;
    with_status(state, row).await
}

/// The rule's answer, with its figures.
async fn with_status(state: &AppState, row: RuleRow) -> ApiResult<Rule> {
    let stats = rule_reports::stats(&state.db, std::slice::from_ref(&row.id)).await?;
    let s = stats.get(&row.id);
    Ok(Rule::new(row, s))
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/rules/{ruleId}", operation_id = "GetRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Rule), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<Rule>> {
    caller.require_instance(&instance_id)?;
    Ok(Json(fetch(&state, &instance_id, &rule_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/instances/{instanceId}/rules/{ruleId}", operation_id = "UpdateRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), request_body = UpdateRuleRequest,
    security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Rule), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn update_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateRuleRequest>,
) -> ApiResult<Json<Rule>> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    let quotas = tx.lock_instance(&instance_id).await?;
    let sealed = rules::lock(&mut tx, &instance_id, &rule_id)
        .await?
        .ok_or(ApiError::NotFound("rule"))?;
    let previous = secrets::open(&state.secrets, &rule_id, sealed.secrets_enc.as_deref())?;
    let source: RuleSource = match &req.source {
        Some(s) => s.into(),
        None => sealed.rule.source.0.clone(),
    };
    let target = match (&req.target, &source) {
        (Some(t), _) => Some(t.into()),
        // An inflow rule has no target (a rule turned into one drops its old target).
        (None, RuleSource::Inflow(_)) => None,
        (None, _) => sealed.rule.target.map(|t| t.0),
    };
    let draft = Draft {
        name: req.name.unwrap_or(sealed.rule.name),
        enabled: req.enabled.unwrap_or(sealed.rule.enabled),
        source,
        target,
        outbox: req
            .outbox
            .map_or(sealed.rule.outbox.0, |o| o.apply(sealed.rule.outbox.0)),
    };
    let row = write(&state, &mut tx, &instance_id, &quotas, &rule_id, draft, Some(&previous)).await?;
    tx.commit().await?;
    tracing::info!(instance = instance_id, rule = rule_id, "rule updated");
    Ok(Json(with_status(&state, row).await?))
}

async fn set_enabled(state: &AppState, instance_id: &str, rule_id: &str, enabled: bool) -> ApiResult<Json<Rule>> {
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(instance_id).await?;
    let row = rules::set_enabled(&mut tx, instance_id, rule_id, enabled)
        .await?
        .ok_or(ApiError::NotFound("rule"))?;
    tx.commit().await?;
    tracing::info!(
        instance = instance_id,
        rule = rule_id,
        enabled,
        "rule enabled or disabled"
    );
    Ok(Json(with_status(state, row).await?))
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/rules/{ruleId}/enable", operation_id = "EnableRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Rule), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<Rule>> {
    caller.require_instance(&instance_id)?;
    set_enabled(&state, &instance_id, &rule_id, true).await
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/rules/{ruleId}/disable", operation_id = "DisableRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = Rule), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<Rule>> {
    caller.require_instance(&instance_id)?;
    set_enabled(&state, &instance_id, &rule_id, false).await
}

#[utoipa::path(delete, path = "/api/v1/instances/{instanceId}/rules/{ruleId}", operation_id = "DeleteRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_instance(&instance_id)?;
    let mut tx = ConfigTx::begin(&state.db).await?;
    tx.lock_instance(&instance_id).await?;
    if !rules::delete(&mut tx, &instance_id, &rule_id).await? {
        return Err(ApiError::NotFound("rule"));
    }
    tx.commit().await?;
    tracing::info!(instance = instance_id, rule = rule_id, "rule deleted");
    Ok(StatusCode::NO_CONTENT)
}
