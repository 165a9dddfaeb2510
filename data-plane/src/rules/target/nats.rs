//! NATS target: the JSON body on a subject of the user's NATS server, core (delivered once the
//! server confirmed it received it: a flush) or JetStream (delivered when a stream acknowledged
//! it; `Nats-Msg-Id` lets the stream drop the duplicates a retry may send). The connection is
//! made at the first delivery and kept; a failure is retried.

use async_nats::HeaderMap;
use common::rules::{self as contract, NatsEndpoint};
use tokio::sync::Mutex;

use super::{Attempt, Outcome, Target};
use crate::core::seam::BoxFuture;

pub struct NatsTarget {
    endpoint: NatsEndpoint,
    subject: String,
    jetstream: bool,
    client: Mutex<Option<async_nats::Client>>,
}

/// Connects to a user's NATS server with the endpoint's credentials.
pub async fn connect(endpoint: &NatsEndpoint, name: &str) -> Result<async_nats::Client, String> {
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(std::time::Duration::from_secs(3))
        .max_reconnects(None);
    if let (Some(u), Some(p)) = (&endpoint.user, &endpoint.password) {
        o = o.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &endpoint.token {
        o = o.token(t.clone());
    }
    if let Some(c) = &endpoint.creds {
        o = o.credentials(c).map_err(|e| format!("NATS credentials: {e}"))?;
    }
    o.connect(endpoint.urls.clone())
        .await
        .map_err(|e| format!("NATS connect: {e}"))
}

impl NatsTarget {
    pub fn new(endpoint: NatsEndpoint, subject: String, jetstream: bool) -> Self {
        Self {
            endpoint,
            subject,
            jetstream,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<async_nats::Client, String> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.endpoint, "mq-broker rule target").await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    fn message(a: &Attempt<'_>) -> (HeaderMap, bytes::Bytes) {
        let body = a.item.json_body(a.rule_id, a.instance_id);
        let mut headers = HeaderMap::new();
        headers.insert(contract::HEADER_RULE, a.rule_id);
        headers.insert(contract::HEADER_INSTANCE, a.instance_id);
        if let Some(id) = a.item.msg_id() {
            headers.insert("Nats-Msg-Id", format!("{}.{id}", a.rule_id).as_str());
            headers.insert(contract::HEADER_MSG_ID, id.as_str());
        }
        (headers, body.into())
    }

    /// Publishes back to back on one connection (NATS keeps their order), then waits once: for
    /// the flush (core) or for each acknowledgement in order (JetStream). A failure answers
    /// `Retry` for that item and stops; JetStream drops the duplicates a retry of items after it
    /// may send (`Nats-Msg-Id`).
    async fn publish_all(&self, attempts: Vec<Attempt<'_>>) -> Vec<Outcome> {
        let retry = |error: String| Outcome::Retry { status: None, error };
        let client = match self.client().await {
            Ok(c) => c,
            Err(error) => return vec![retry(error)],
        };
        let mut out = Vec::with_capacity(attempts.len());
        if self.jetstream {
            let js = async_nats::jetstream::new(client);
            let mut acks = Vec::with_capacity(attempts.len());
            let mut publish_error = None;
            for a in &attempts {
                let (headers, body) = Self::message(a);
                match js.publish_with_headers(self.subject.clone(), headers, body).await {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        publish_error = Some(format!("JetStream: {e}"));
                        break;
                    }
                }
            }
            for ack in acks {
                match ack.await {
                    Ok(_) => out.push(Outcome::Delivered { status: None }),
                    Err(e) => {
                        out.push(retry(format!("JetStream: {e}")));
                        return out;
                    }
                }
            }
            out.extend(publish_error.map(retry));
            return out;
        }
        for a in &attempts {
            let (headers, body) = Self::message(a);
            if let Err(e) = client.publish_with_headers(self.subject.clone(), headers, body).await {
                return vec![retry(format!("NATS publish: {e}"))];
            }
        }
        match client.flush().await {
            Ok(()) => out.extend(attempts.iter().map(|_| Outcome::Delivered { status: None })),
            Err(e) => out.push(retry(format!("NATS flush: {e}"))),
        }
        out
    }
}

impl Target for NatsTarget {
    fn send<'a>(&'a self, attempt: Attempt<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut out = self.publish_all(vec![attempt]).await;
            out.pop().unwrap_or(Outcome::Retry {
                status: None,
                error: "nothing sent".into(),
            })
        })
    }

    fn send_all<'a>(&'a self, attempts: Vec<Attempt<'a>>) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(self.publish_all(attempts))
    }
}
