//! One MQTT 3.1.1 connection of the load generator, from a chosen loopback source address, with
//! the credentials of the broker under test (none, Alibaba Signature or Alibaba Token).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{Codec, ConnectReturnCode, Login, Packet};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Framed;

pub type Conn = Framed<TcpStream, Codec>;

/// How clients authenticate. Signature passwords are computed per client ID; Token clients share one
/// token minted for the run.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Signature {
        access_key: String,
        secret: String,
        instance: String,
    },
    Token {
        access_key: String,
        instance: String,
        token: String,
    },
}

impl Auth {
    fn login(&self, client_id: &str) -> Option<Login> {
        match self {
            Auth::None => None,
            Auth::Signature {
                access_key,
                secret,
                instance,
            } => Some(Login::new(
                format!("Signature|{access_key}|{instance}"),
                common::signing::mqtt_password(secret, client_id),
            )),
            Auth::Token {
                access_key,
                instance,
                token,
            } => Some(Login::new(
                format!("Token|{access_key}|{instance}"),
                format!("RW|{token}"),
            )),
        }
    }
}

/// Where and how to connect: client number `n` connects to `addrs[n % addrs.len()]` (several
/// brokers of a cluster take turns); `source_ips` spreads connections over 127.0.0.x when one
/// address's ephemeral ports would not be enough.
#[derive(Clone, Debug)]
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    pub auth: Auth,
    pub source_ips: Vec<IpAddr>,
}

const MAX_PACKET: usize = 1 << 20;

impl Target {
    /// Connects client number `n` and waits for a successful CONNACK. Returns the session-present flag.
    pub async fn connect(&self, n: usize, client_id: &str, clean_session: bool) -> Result<(Conn, bool)> {
        let socket = TcpSocket::new_v4()?;
        // bind() to port 0 must pick a port no other socket holds, TIME_WAIT ones included: after
        // a previous run left tens of thousands of those, the search made the generator itself the
        // bottleneck (1,000-15,000 connects/s from one run to the next). connect() alone may reuse
        // such ports (per destination, tcp_tw_reuse on loopback), so bind only to spread the
        // connections over several source addresses, and then with SO_REUSEADDR.
        if self.source_ips.len() > 1 {
            let ip = self.source_ips[n % self.source_ips.len()];
            socket.set_reuseaddr(true)?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("bind {ip}"))?;
        }
        let addr = self.addrs[n % self.addrs.len()];
        let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Framed::new(
            stream,
            Codec {
                max_incoming_size: MAX_PACKET,
                max_outgoing_size: MAX_PACKET,
            },
        );
        let mut connect = rumqttc::Connect::new(client_id);
        connect.keep_alive = 120;
        connect.clean_session = clean_session;
        connect.login = self.auth.login(client_id);
        conn.send(Packet::Connect(connect)).await?;
        match tokio::time::timeout(Duration::from_secs(30), conn.next()).await {
            Ok(Some(Ok(Packet::ConnAck(ack)))) if ack.code == ConnectReturnCode::Success => {
                Ok((conn, ack.session_present))
            }
            Ok(Some(Ok(Packet::ConnAck(ack)))) => bail!("{client_id}: connection refused: {:?}", ack.code),
            Ok(Some(Ok(other))) => bail!("{client_id}: expected CONNACK, got {other:?}"),
            Ok(Some(Err(e))) => bail!("{client_id}: {e}"),
            Ok(None) => bail!("{client_id}: connection closed before CONNACK"),
            Err(_) => bail!("{client_id}: no CONNACK within 30 s"),
        }
    }
}

/// Subscribes to `filters` at QoS 1 and waits for the SUBACK; refused filters are an error.
pub async fn subscribe(conn: &mut Conn, filters: &[String]) -> Result<()> {
    let mut sub = rumqttc::Subscribe::new_many(
        filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), rumqttc::QoS::AtLeastOnce)),
    );
    sub.pkid = 1;
    conn.send(Packet::Subscribe(sub)).await?;
    match tokio::time::timeout(Duration::from_secs(30), conn.next()).await {
        Ok(Some(Ok(Packet::SubAck(ack)))) => {
            if ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
            {
                bail!("subscription refused: {filters:?}");
            }
            Ok(())
        }
        // Scenarios subscribe on clean sessions only, so nothing else may arrive first.
        Ok(Some(Ok(other))) => bail!("expected SUBACK, got {other:?}"),
        Ok(Some(Err(e))) => bail!("{e}"),
        Ok(None) => bail!("connection closed before SUBACK"),
        Err(_) => bail!("no SUBACK within 30 s"),
    }
}

/// Sends DISCONNECT and closes the socket.
pub async fn disconnect(mut conn: Conn) {
    let _ = conn.send(Packet::Disconnect).await;
    let _ = conn.close().await;
}
