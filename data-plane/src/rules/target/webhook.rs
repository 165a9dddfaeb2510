//! HTTP(S) webhook target: one POST per delivery, the JSON envelope (or the raw payload with its
//! metadata in `x-mq-*` headers), signed with HMAC-SHA256 over `<timestamp>.<body>` when the rule
//! has a secret. 2xx is delivered; 5xx, 408, 429, timeouts and connection failures are retried;
//! any other answer (redirects are not followed) dead-letters the delivery. Connections go only
//! to addresses the target policy allows (`http`, `guard`).

use std::time::Duration;

use common::rules::{self as contract, TargetPolicy, WebhookFormat};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::http::{Client, Failure};
use super::{Attempt, Outcome, Target};
use crate::core::seam::BoxFuture;
use crate::rules::record::{Item, user_properties};

pub struct Webhook {
    format: WebhookFormat,
    secret: Option<String>,
    client: Client,
}

impl Webhook {
    pub fn new(
        url: &str,
        format: WebhookFormat,
        secret: Option<String>,
        timeout_ms: u64,
        policy: TargetPolicy,
    ) -> Self {
        let timeout = Duration::from_millis(timeout_ms.clamp(100, 60_000));
        Self {
            format,
            secret,
            client: Client::new(url, policy, timeout),
        }
    }

    /// The body and its headers for one delivery.
    fn request(&self, a: &Attempt<'_>) -> Result<(Vec<u8>, HeaderMap), String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("mq-broker/", env!("CARGO_PKG_VERSION"))),
        );
        let mut put = |name: &'static str, value: &str| -> Result<(), String> {
            let v =
                HeaderValue::from_bytes(value.as_bytes()).map_err(|_| format!("{name} cannot be a header value"))?;
            headers.insert(HeaderName::from_static(name), v);
            Ok(())
        };
        put(contract::HEADER_RULE, a.rule_id)?;
        put(contract::HEADER_INSTANCE, a.instance_id)?;
        let body = match (self.format, a.item) {
            (WebhookFormat::Raw, Item::Message(m)) => {
                put(contract::HEADER_TOPIC, &m.topic)?;
                put(contract::HEADER_CLIENT_ID, &m.publisher)?;
                put(contract::HEADER_MSG_ID, &m.id.to_string())?;
                put(contract::HEADER_QOS, &m.qos.level().to_string())?;
                put(contract::HEADER_RETAIN, if m.retain { "true" } else { "false" })?;
                put(contract::HEADER_TIME, &m.id.time_ms().to_string())?;
                let props = user_properties(m);
                if !props.is_empty() {
                    put(
                        contract::HEADER_USER_PROPERTIES,
                        &serde_json::to_string(&props).unwrap_or_default(),
                    )?;
                }
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                m.payload.to_vec()
            }
            (_, item) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                item.json_body(a.rule_id, a.instance_id)
            }
        };
        let now = common::time::now_ms();
        headers.insert(
            HeaderName::from_static(contract::HEADER_TIMESTAMP),
            HeaderValue::from(now),
        );
        if let Some(secret) = &self.secret {
            let sig = contract::webhook_signature(secret.as_bytes(), now, &body);
            headers.insert(
                HeaderName::from_static(contract::HEADER_SIGNATURE),
                HeaderValue::from_str(&sig).map_err(|e| e.to_string())?,
            );
        }
        Ok((body, headers))
    }

    async fn post(&self, a: Attempt<'_>) -> Outcome {
        let (body, headers) = match self.request(&a) {
            Ok(r) => r,
            Err(e) => return refused(None, e),
        };
        match self.client.post(headers, body).await {
            Ok(status) => classify(status),
            Err(Failure::Refused(r)) => refused(None, r.to_string()),
            Err(Failure::Unusable(e)) => refused(None, e),
            // Never the URL: it may carry a token in its path or query.
            Err(Failure::Transient(e)) => retry(None, e),
        }
    }
}

fn refused(status: Option<u16>, error: String) -> Outcome {
    Outcome::Refused { status, error }
}

fn retry(status: Option<u16>, error: String) -> Outcome {
    Outcome::Retry { status, error }
}

/// What an HTTP status means for the delivery.
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { status: Some(status) },
        408 | 429 | 500..=599 => retry(Some(status), format!("HTTP {status}")),
        _ => refused(Some(status), format!("HTTP {status}")),
    }
}

impl Target for Webhook {
    fn send<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.post(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decide_between_delivered_retried_and_refused() {
        assert!(matches!(classify(204), Outcome::Delivered { .. }));
        for s in [408, 429, 500, 503] {
            assert!(matches!(classify(s), Outcome::Retry { .. }), "{s}");
        }
        for s in [301, 400, 401, 404, 410] {
            assert!(matches!(classify(s), Outcome::Refused { .. }), "{s}");
        }
    }
}
