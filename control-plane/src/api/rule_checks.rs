//! Looking at a rule's deliveries: TestRule (one live broker sends a sample through the rule's
//! target and the answer comes back here) and ListRuleDeadLetters (what targets refused for good).
//! The test runs on a broker, where deliveries run, never on the control plane: it sees the
//! network, address policy and secrets the broker has.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use common::sync::Command;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::broker_link::feeds::Wake;
use crate::db::{self, instances, rule_reports, rules};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::metrics::rule_test as outcome;
use crate::state::AppState;

/// The broker's answer to TestRule.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleTestResult {
    /// The broker node that sent the sample.
    pub node_id: String,
    /// The target took the sample (2xx, NATS/JetStream acknowledgement, republished).
    pub delivered: bool,
    /// The target's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The broker that gave up on the delivery.
    pub node_id: String,
    pub at: DateTime<Utc>,
    /// The target's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The first 4 KiB of the refused body, Base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_head: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    /// Newest first; the latest 100 are kept.
    pub dead_letters: Vec<DeadLetter>,
}

#[utoipa::path(post, path = "/api/v1/instances/{instanceId}/rules/{ruleId}/test", operation_id = "TestRule", tag = "rules",
    params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = RuleTestResult, description = "the broker's answer (`delivered` false with the target's error when it refused)"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "`NoBrokerAvailable`: no broker node is live; or the database is unavailable"),
        (status = 504, body = ErrorBody, description = "`RuleTestTimeout`: the broker did not answer in time (`rule_test_timeout_secs`)")))]
pub async fn test_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<RuleTestResult>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    if !rules::exists(&state.db, &instance_id, &rule_id).await? {
        return Err(ApiError::NotFound("rule"));
    }
    // The broker waits until it runs this configuration (or a later one): the rule as saved.
    let min_version = db::config_version(&state.db).await?;
    let silent_after = Duration::from_secs(state.config.broker_silent_secs);
    let Some(node_id) = db::brokers::pick_live(&state.db, silent_after).await? else {
        outcome("no_broker");
        tracing::warn!(
            instance = instance_id,
            rule = rule_id,
            "rule test refused: no live broker"
        );
        return Err(ApiError::NoLiveBroker);
    };
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    rule_reports::start_test(&state.db, &request_id, &rule_id, &node_id).await?;
    // Subscribe before the broker can answer, so its answer always wakes us.
    let mut waiter = state.feeds.rule_tests();
    let command = Command::TestRule {
        instance_id: instance_id.clone(),
        rule_id: rule_id.clone(),
        request_id: request_id.clone(),
        node_id: node_id.clone(),
        min_version,
    };
    db::commands::insert(&state.db, &command).await?;
    let secs = state.config.rule_test_timeout_secs;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(r) = rule_reports::test_result(&state.db, &request_id).await? {
            outcome(if r.delivered { "delivered" } else { "failed" });
            return Ok(Json(RuleTestResult {
                node_id,
                delivered: r.delivered,
                status: r.status,
                latency_ms: r.latency_ms,
                error: r.error,
            }));
        }
        if waiter.wait_until(deadline).await != Wake::Changed {
            break;
        }
    }
    outcome("timeout");
    tracing::warn!(
        instance = instance_id,
        rule = rule_id,
        node = node_id,
        secs,
        "rule test timed out"
    );
    Err(ApiError::RuleTestTimeout { node_id, secs })
}

#[utoipa::path(get, path = "/api/v1/instances/{instanceId}/rules/{ruleId}/dead-letters", operation_id = "ListRuleDeadLetters",
    tag = "rules", params(("instanceId" = String, Path), ("ruleId" = String, Path)), security(("bearer" = []), ("acs3" = [])),
    responses((status = 200, body = DeadLetterList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_rule_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<DeadLetterList>> {
    caller.require_instance(&instance_id)?;
    instances::quotas(&state.db, &instance_id).await?;
    if !rules::exists(&state.db, &instance_id, &rule_id).await? {
        return Err(ApiError::NotFound("rule"));
    }
    let rows = rule_reports::dead_letters(&state.db, &rule_id).await?;
    Ok(Json(DeadLetterList {
        dead_letters: rows
            .into_iter()
            .map(|r| DeadLetter {
                node_id: r.node_id,
                at: DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default(),
                status: r.status,
                error: r.error,
                topic: r.topic,
                client_id: r.client_id,
                msg_id: r.msg_id,
                body_head: r.body_head,
            })
            .collect(),
    }))
}
