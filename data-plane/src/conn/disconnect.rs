//! The end of a connection, whatever ended it: the will message (now, later, or not at all), the
//! `tcpclean` event, and the mailbox closed so the delivery task ends and releases the session.

use super::Conn;
use super::context::Ending;
use crate::core::wills::DeferredWill;
use crate::events::CloseReason;
use crate::metrics;

/// Runs once, when the protocol side of the connection is dropped.
pub(super) fn finish(conn: &Conn) {
    let ctx = &conn.ctx;
    if let Some(will) = conn.will.borrow_mut().take()
        && !conn.clean_disconnect.get()
    {
        let taken_over = ctx.ending.get() == Some(Ending::TakenOver);
        let deferred = DeferredWill {
            instance_id: ctx.instance_id.to_string(),
            client_id: ctx.client_id.to_string(),
            due_at_ms: common::time::now_ms() + i64::from(will.delay_secs) * 1000,
            msg: will.msg,
            expiry_secs: will.expiry_secs,
            credential: ctx.credential.borrow().clone(),
        };
        let broker = ctx.broker.clone();
        if will.delay_secs == 0 {
            super::drive(async move { broker.fire_will(deferred).await });
        } else if taken_over {
            // The connection that took over is within the delay: it cancels the will (MQTT 5, 3.1.3.2.2).
            metrics::will("cancelled");
        } else {
            super::drive(async move { broker.defer_will(deferred).await });
        }
    }
    ctx.closed_event(close_reason(conn));
    metrics::disconnected();
    // Ends the delivery task, which then releases the session.
    ctx.mailbox.close();
}

/// Why the connection ended, most specific first: what the broker decided, then a clean
/// DISCONNECT, then what the protocol side saw; a connection that simply went away was closed by
/// the client.
fn close_reason(conn: &Conn) -> CloseReason {
    let ctx = &conn.ctx;
    match ctx.ending.get() {
        Some(Ending::TakenOver) => CloseReason::ClientIdConflict,
        Some(Ending::Kicked) => CloseReason::ClosedByServer,
        Some(Ending::Expired | Ending::Withdrawn) => CloseReason::NotAuthorized,
        None if conn.clean_disconnect.get() => CloseReason::DisconnectedByClient,
        None => ctx.close_reason.get().unwrap_or(CloseReason::ClosedByClient),
    }
}
