//! The memory floor of a connection loop of our own: one task per connection that reads packets
//! with ntex-mqtt's v3 codec on ntex's `Io` and answers CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ,
//! with nothing else per connection (no sessions, no routing, no ntex-mqtt service pipeline).
//! Whatever a real broker built this way keeps per connection comes on top of what this one holds.
//! Usage: floor ADDR [WORKERS]

use ntex::io::Io;
use ntex::service::fn_service;
use ntex_mqtt::v3::codec::{Codec, ConnectAckReason, Decoded, Encoded, Packet, SubscribeReturnCode};

// The broker's allocator, so that the two compare.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The broker's read-buffer sizes (data-plane/src/server.rs).
const READ_BUF_HIGH: usize = 4 * 1024 - 24;
const READ_BUF_LOW: usize = 512 + 24;

async fn serve(io: Io) -> Result<(), std::io::Error> {
    let codec = Codec::default();
    while let Ok(Some(decoded)) = io.recv(&codec).await {
        let Decoded::Packet(packet, _) = decoded else {
            continue; // PUBLISH: nothing to route here.
        };
        let answer = match packet {
            Packet::Connect(_) => Packet::ConnectAck(ntex_mqtt::v3::codec::ConnectAck {
                session_present: false,
                return_code: ConnectAckReason::ConnectionAccepted,
            }),
            Packet::Subscribe {
                packet_id,
                topic_filters,
            } => Packet::SubscribeAck {
                packet_id,
                status: topic_filters
                    .iter()
                    .map(|(_, qos)| SubscribeReturnCode::Success(*qos))
                    .collect(),
            },
            Packet::Unsubscribe { packet_id, .. } => Packet::UnsubscribeAck { packet_id },
            Packet::PingRequest => Packet::PingResponse,
            Packet::Disconnect => break,
            _ => continue,
        };
        if io.send(Encoded::Packet(answer), &codec).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[ntex::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().expect("usage: floor ADDR [WORKERS]").parse().expect("ADDR");
    let workers = args.next().map_or(2, |w| w.parse().expect("WORKERS"));
    let cfg =
        ntex::SharedCfg::new("FLOOR").add(ntex::io::IoConfig::new().set_read_buf(READ_BUF_HIGH, READ_BUF_LOW, 128));
    let listener = ntex::server::create_tcp_listener(addr, 4096)?;
    ntex::server::build()
        .workers(workers)
        .listen("floor", listener, cfg, async |_| fn_service(serve))?
        .run()
        .await
}
