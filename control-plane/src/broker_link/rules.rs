//! What brokers report about rules besides their heartbeat figures: `POST dead-letters` (deliveries
//! a target refused for good, kept per rule for ListRuleDeadLetters) and `POST command-results`
//! (a broker's answer to a TestRule command, which the waiting TestRule request picks up).
//!
//! Dead letters are never refused for their content: over-long text is cut (a letter is a
//! diagnosis, and refusing it would lose it); only a batch of more than `MAX_LETTERS` is refused.

use axum::extract::State;
use axum::http::StatusCode;
use common::rules::{DeadLetterBatch, TestResult};

use crate::auth::node::Node;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Most dead letters per batch.
pub(crate) const MAX_LETTERS: usize = 1000;
/// Longest error text, topic, client ID and message ID kept, in characters.
const MAX_TEXT_CHARS: usize = 1024;
/// Longest body head kept: 4 KiB in Base64.
const MAX_BODY_HEAD_CHARS: usize = 4096usize.div_ceil(3) * 4;

fn cut(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

pub async fn dead_letters(
    State(state): State<AppState>,
    node: Node,
    ApiJson(mut batch): ApiJson<DeadLetterBatch>,
) -> ApiResult<StatusCode> {
    if batch.letters.len() > MAX_LETTERS {
        tracing::warn!(
            node = node.id,
            letters = batch.letters.len(),
            "dead-letter batch refused: too many"
        );
        return Err(ApiError::invalid("letters", format!("at most {MAX_LETTERS} per batch")));
    }
    for l in &mut batch.letters {
        cut(&mut l.error, MAX_TEXT_CHARS);
        for field in [&mut l.topic, &mut l.client_id, &mut l.msg_id].into_iter().flatten() {
            cut(field, MAX_TEXT_CHARS);
        }
        if let Some(head) = &mut l.body_head {
            cut(head, MAX_BODY_HEAD_CHARS);
        }
    }
    let stored = db::rule_reports::add_dead_letters(&state.db, &node.id, &batch.letters).await?;
    let ignored = batch.letters.len() as u64 - stored;
    if ignored > 0 {
        crate::metrics::rule_reports_ignored("dead_letter", ignored);
        tracing::info!(node = node.id, ignored, "dead letters of unknown rules ignored");
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn command_results(
    State(state): State<AppState>,
    node: Node,
    ApiJson(result): ApiJson<TestResult>,
) -> ApiResult<StatusCode> {
    if result.node_id != node.id {
        tracing::warn!(
            node = node.id,
            claimed = result.node_id,
            "command result refused: another node's"
        );
        return Err(ApiError::invalid("nodeId", "is not the node the credentials belong to"));
    }
    if !db::rule_reports::finish_test(&state.db, &node.id, &result).await? {
        // Late (the test was purged), answered twice, or not asked of this node: nobody waits for it.
        crate::metrics::rule_reports_ignored("test_result", 1);
        tracing::info!(node = node.id, request = result.request_id, "rule test result ignored");
    }
    Ok(StatusCode::NO_CONTENT)
}
