//! MQTT over WebSocket (docs/spec.md 3.1): an HTTP/1.1 upgrade on `/mqtt` that echoes the `mqtt`
//! subprotocol (browsers and MQTT.js refuse the connection otherwise), then the same MQTT service
//! runs over the WebSocket transport.

use std::io;

use ntex::http::{self, HttpService, Request, Response, error::DispatchError, h1, header};
use ntex::io::{Filter, Io, Layer};
use ntex::{Service, ws};

pub const PATH: &str = "/mqtt";

/// The HTTP service of a WebSocket listener; upgraded connections go to `mqtt`.
pub fn http_service<F: Filter>(mqtt: crate::mqtt::Entry) -> impl Service<(), Io<F>, Res = (), Error = DispatchError> {
    HttpService::new(async |_| Ok::<_, io::Error>(Response::NotFound().body("MQTT over WebSocket is served at /mqtt")))
        .h1_control(async move |msg: h1::Control<_, _>| {
            let ack = match msg {
                h1::Control::Upgrade(ctl) => {
                    let (ack, io, req, codec) = ctl.handle();
                    let io = upgrade(io, req, codec).await?;
                    mqtt.spawn(io.boxed());
                    ack
                }
                _ => msg.ack(),
            };
            Ok::<_, io::Error>(ack)
        })
}

/// Answers the handshake and switches the connection to the WebSocket transport.
async fn upgrade<F: Filter>(
    io: Io<F>,
    req: Request,
    codec: h1::Codec,
) -> Result<Io<Layer<ws::WsTransport, F>>, io::Error> {
    if req.path() != PATH {
        return Err(io::Error::other("websocket path is not /mqtt"));
    }
    let mut res = ws::handshake(req.head()).map_err(|e| io::Error::other(format!("websocket handshake: {e:?}")))?;
    let wants_mqtt = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "mqtt"));
    if wants_mqtt {
        res.header(header::SEC_WEBSOCKET_PROTOCOL, "mqtt");
    }
    io.send(
        h1::Message::Item((res.build().drop_body(), http::body::BodySize::Empty)),
        &codec,
    )
    .await?;
    Ok(ws::WsTransport::create(io, ws::Codec::new()))
}
