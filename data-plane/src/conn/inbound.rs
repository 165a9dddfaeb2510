//! What a client sends after CONNECT: PUBLISH (system topics included), SUBSCRIBE, UNSUBSCRIBE and
//! DISCONNECT, checked against its credentials and its instance's quotas.

use common::qos::QoS;
use common::sync::TraceAction;
use common::token::TokenError;
use ntex_bytes::{ByteString, Bytes};

use super::Conn;
use super::order::Turn;
use crate::auth::Denied;
use crate::core::{PublishRefusal, SubscribeRefusal, subscriptions::SubOptions};
use crate::directory::Instance;
use crate::events::EventType;
use crate::message::{Message, Properties};
use crate::metrics::{self, Packet};
use crate::sys;

/// Why a PUBLISH or SUBSCRIBE was refused; the adapters map it to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown parent topic or not covered by the credentials: v3 disconnects *(compat)*.
    NotAuthorized,
    /// Malformed or over-long topic / filter.
    TopicInvalid,
    /// Message larger than the instance allows.
    TooLarge,
    /// A per-client or per-instance quota.
    Quota,
    /// The message could not be stored: it is not acknowledged.
    Unavailable,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::NotAuthorized => "not_authorized",
            Self::TopicInvalid => "topic_invalid",
            Self::TooLarge => "too_large",
            Self::Quota => "quota",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A PUBLISH as received, independent of the protocol version.
pub struct Inbound {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties; None for v3.1.1 and property-less v5 publishes (boxed: this travels in
    /// every PUBLISH handler's future, which ntex allocates per packet, and a smaller one stays in
    /// the allocator's thread-local cache).
    pub props: Option<Box<Properties>>,
}

impl Conn {
    /// Sends `$SYS/tokenInvalidNotice` ahead of the refusal of a token client.
    fn token_refused(&self, err: TokenError, kind: &str) {
        self.ctx
            .sink
            .send_notice(sys::INVALID_NOTICE, sys::invalid_notice(err.notice_code(), kind).into());
        self.notice_pending.set(true);
    }

    fn denied(&self, d: Denied) -> Refusal {
        match d {
            Denied::TopicInvalid => Refusal::TopicInvalid,
            Denied::NotAuthorized => Refusal::NotAuthorized,
            Denied::Token(err, kind) => {
                self.token_refused(err, kind.as_str());
                Refusal::NotAuthorized
            }
        }
    }

    /// Checks and routes a PUBLISH (the caller acknowledges only after this returns Ok).
    /// This PUBLISH's place among the client's: take it when its packet arrives, before waiting
    /// for its payload.
    pub fn publish_turn(&self) -> Turn {
        self.publish_order.take()
    }

    pub async fn on_publish(&self, p: Inbound, turn: Turn) -> Result<(), Refusal> {
        metrics::message(false, p.qos);
        self.ctx.counters.received();
        let topic = p.topic.clone();
        let res = self.check_and_route(p, turn).await;
        if self.notice_pending.take() {
            // The refusal closes the connection; the notice must leave first.
            ntex::time::sleep(sys::NOTICE_FLUSH).await;
        }
        if let Err(r) = res {
            metrics::refused(Packet::Publish, r.label());
            tracing::info!(client_id = %self.ctx.client_id, topic = %topic, refusal = ?r, "publish refused");
        }
        res
    }

    async fn check_and_route(&self, p: Inbound, turn: Turn) -> Result<(), Refusal> {
        let ctx = &self.ctx;
        let inst = ctx.instance().ok_or(Refusal::NotAuthorized)?;
        if p.topic.starts_with("$SYS/") {
            return self.on_sys(&inst, &p.topic, &p.payload).await;
        }
        if p.payload.len() > inst.quotas.max_message_size as usize {
            return Err(Refusal::TooLarge);
        }
        let allowed = ctx.credential.borrow().may_publish(&inst, &ctx.client_id, &p.topic);
        allowed.map_err(|d| self.denied(d))?;
        let wait = ctx.broker.throttle(&inst, 1);
        if !wait.is_zero() {
            // Boxed: a rare state that would otherwise enlarge every PUBLISH's future.
            let ms = wait.as_millis().min(u128::from(u32::MAX)) as u32;
            Box::pin(ntex::time::sleep(ntex::time::Millis(ms))).await;
        }
        let mut msg = Message::new(p.topic, p.payload, p.qos, p.retain).published_by(ctx.client_id.clone());
        msg.props = p.props;
        let msg_id = msg.id;
        // Routed in the order the client sent its messages, whichever handler got here first.
        turn.ready().await;
        let routing = ctx.broker.publish(&inst, msg);
        turn.finish();
        let routed = routing.await.map_err(|e| match e {
            PublishRefusal::RetainedQuota => Refusal::Quota,
            PublishRefusal::Unavailable(e) => {
                tracing::error!(client_id = %ctx.client_id, error = %e, "publish not stored: not acknowledged");
                Refusal::Unavailable
            }
        })?;
        if let Some(tracer) = ctx.broker.tracer() {
            tracer.record(&ctx.instance_id, msg_id, &ctx.client_id, TraceAction::PubMqtt);
        }
        // Deliveries count against the instance rate too (in + out), slowing later publishers.
        if routed.total() > 0 {
            ctx.broker.throttle(&inst, routed.total() as u32);
        }
        Ok(())
    }

    async fn on_sys(&self, inst: &Instance, topic_name: &str, payload: &[u8]) -> Result<(), Refusal> {
        let ctx = &self.ctx;
        match topic_name {
            sys::ENABLE_ORDER => Ok(()),
            sys::UPLOAD_TOKEN if ctx.credential.borrow().mode == crate::auth::Mode::Token => {
                let dir = ctx.broker.dirs.load();
                let uploaded = {
                    let mut credential = ctx.credential.borrow_mut();
                    let key_id = credential.key_id.clone();
                    credential
                        .tokens
                        .upload(&dir, inst, &key_id, payload, common::time::now_ms())
                };
                match uploaded {
                    Ok(()) => {
                        ctx.mailbox.wake();
                        self.drop_uncovered_subscriptions(inst).await;
                        Ok(())
                    }
                    Err((err, kind)) => {
                        self.token_refused(err, &kind);
                        Err(Refusal::NotAuthorized)
                    }
                }
            }
            _ => Err(Refusal::NotAuthorized),
        }
    }

    /// A replaced token may cover less than the one before: subscriptions it no longer covers end.
    async fn drop_uncovered_subscriptions(&self, inst: &Instance) {
        let ctx = &self.ctx;
        let uncovered: Vec<String> = ctx
            .broker
            .subscriptions_of(&ctx.instance_id, &ctx.client_id)
            .into_iter()
            .filter(|raw| {
                ctx.credential
                    .borrow()
                    .may_subscribe(inst, &ctx.client_id, raw)
                    .is_err()
            })
            .collect();
        for raw in uncovered {
            ctx.broker.unsubscribe(&ctx.instance_id, &ctx.client_id, &raw).await;
            ctx.event_with(EventType::Unsubscribe, vec![raw.clone()]);
            metrics::refused(Packet::Subscribe, "not_covered_after_upload");
            tracing::info!(client_id = %ctx.client_id, filter = %raw, "subscription ended: the uploaded token does not cover it");
        }
    }

    /// Checks and records one SUBSCRIBE filter; returns the granted QoS.
    pub async fn on_subscribe(&self, raw: &str, opts: SubOptions) -> Result<QoS, Refusal> {
        let res = self.check_subscribe(raw, opts).await;
        if let Err(r) = res {
            metrics::refused(Packet::Subscribe, r.label());
            tracing::info!(client_id = %self.ctx.client_id, filter = raw, refusal = ?r, "subscribe refused");
        }
        res
    }

    async fn check_subscribe(&self, raw: &str, opts: SubOptions) -> Result<QoS, Refusal> {
        let ctx = &self.ctx;
        let inst = ctx.instance().ok_or(Refusal::NotAuthorized)?;
        let allowed = ctx.credential.borrow().may_subscribe(&inst, &ctx.client_id, raw);
        allowed.map_err(|d| self.denied(d))?;
        let subscribed = ctx
            .broker
            .subscribe(&inst, &ctx.client_id, raw, opts)
            .await
            .map_err(|e| match e {
                SubscribeRefusal::TooManySubscriptions | SubscribeRefusal::TooManyWildcards => Refusal::Quota,
                SubscribeRefusal::Unavailable(_) => Refusal::Unavailable,
            })?;
        for out in subscribed.retained {
            let _ = ctx.mailbox.push(out);
        }
        ctx.event_with(EventType::Subscribe, vec![raw.to_string()]);
        Ok(opts.qos)
    }

    /// Removes a subscription; false when the client did not hold it.
    pub async fn on_unsubscribe(&self, raw: &str) -> bool {
        let ctx = &self.ctx;
        let held = ctx.broker.unsubscribe(&ctx.instance_id, &ctx.client_id, raw).await;
        if held {
            ctx.event_with(EventType::Unsubscribe, vec![raw.to_string()]);
        }
        held
    }

    /// The client sent DISCONNECT; `with_will` (MQTT 5 reason 0x04) asks for the will anyway.
    pub fn on_disconnect_packet(&self, with_will: bool) {
        self.clean_disconnect.set(true);
        if !with_will {
            self.will.borrow_mut().take();
        }
        self.ctx.event(EventType::Disconnect);
    }
}
