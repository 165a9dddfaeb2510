//! Process wiring: store, snapshot, housekeeping, the HTTP side thread, and the MQTT listeners'
//! worker threads, one per core. Returns when the broker stops (SIGTERM / SIGINT).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ntex::SharedCfg;
use ntex::time::Seconds;
use ntex_mqtt::{MqttServiceConfig, QoS};

use crate::config::Config;
use crate::core::{Broker, Limits, Parts};
use crate::directory::Directories;
use crate::http;
use crate::listeners::{self, Listener, Transport};
use crate::mqtt::v3;
use crate::store::FjallStore;

/// Read buffer of a connection (ntex's default is 16 KiB). massif at 1,000 idle connections found
/// about one read buffer live per connection (held by the connection or ntex's buffer cache; which
/// one holds it we did not pin down): 4 KiB buffers hold 10 KiB less heap per connection, and p2p /
/// fan-out throughput did not drop (a larger frame grows the buffer in steps of this size).
const READ_BUF_HIGH: usize = 4 * 1024 - 24;
const READ_BUF_LOW: usize = 512 + 24;

fn mqtt_config(cfg: &Config) -> SharedCfg {
    SharedCfg::new("MQTT")
        .add(ntex::io::IoConfig::new().set_read_buf(READ_BUF_HIGH, READ_BUF_LOW, 128))
        .add(
            // The MQTT 5 side (ntex-mqtt's server); MQTT 3.1.1 takes its limits from `v3::Limits`.
            MqttServiceConfig::new()
                .set_max_qos(QoS::ExactlyOnce)
                // Frames above this are refused by the codec before any buffering (10 MB attacks).
                .set_max_size(cfg.max_frame_size)
                .set_max_send(cfg.max_inflight)
                .set_max_receive(cfg.max_inflight)
                .set_connect_timeout(Seconds(10))
                .set_handshake_timeout(Seconds(10)),
        )
        .into()
}

pub fn run(cfg: Config) -> anyhow::Result<()> {
    // Before the store opens and the snapshot loads: what they count at start-up must reach /metrics.
    let prometheus = http::recorder()?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store = FjallStore::open_shared(&cfg.data_dir).context("opening the store")?;
    let dev_instance = cfg.dev_listen.map(|_| cfg.dev_instance.clone());
    let dirs = Directories::new(dev_instance);
    let link = crate::sync::LinkConfig::from_config(&cfg)?;
    match &link {
        // Linked: the snapshot file is only a cache; a missing or broken one must not stop the start.
        Some(_) => crate::sync::lkg::load(&dirs, &cfg.snapshot),
        None => dirs.apply_file(&cfg.snapshot).context("loading the snapshot")?,
    }
    let (parts, cluster) = match cfg.cluster()? {
        None => {
            let (parts, restored) =
                Parts::embedded(store.clone()).context("restoring sessions and retained messages")?;
            tracing::info!(sessions = restored, "persistent sessions restored");
            (parts, None)
        }
        Some(cluster_cfg) => {
            // The cluster's NATS clients and tasks run on a runtime of their own, for the life of
            // the process.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cluster")
                .enable_all()
                .build()
                .context("starting the cluster runtime")?;
            let (parts, cluster) = rt
                .block_on(crate::cluster::join(cluster_cfg))
                .context("joining the cluster")?;
            std::mem::forget(rt);
            (parts, Some(cluster))
        }
    };
    let limits = Limits {
        max_inflight: cfg.max_inflight,
        max_queued: cfg.max_queued_messages,
        max_queued_bytes: cfg.max_queued_bytes,
    };
    let broker = Arc::new(Broker::new(dirs, parts, limits));
    let node_id = cfg.node_id.clone().unwrap_or_default();
    crate::rules::Rules::start(&store, &node_id, cfg.rule_settings())?.attach(&broker);
    if cfg.trace_max_bytes > 0 {
        let dir = cfg.data_dir.join("trace");
        broker.set_tracer(crate::trace::Tracer::start(&dir, cfg.trace_max_bytes).context("opening the trace store")?);
    }
    broker.expire_offline_messages();

    let reload = link.is_none().then(|| cfg.snapshot.clone());
    http::spawn(
        cfg.http_listen,
        broker.clone(),
        reload,
        prometheus.clone(),
        cluster.clone(),
    )?;
    if let Some(link) = link {
        crate::sync::spawn(link, broker.clone(), prometheus, cluster)?;
    }

    let workers = cfg.workers.max(1);
    let tls = match (cfg.tls_listen.or(cfg.wss_listen), &cfg.tls_cert, &cfg.tls_key) {
        (None, _, _) => None,
        (Some(_), Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        (Some(_), _, _) => anyhow::bail!("TLS listeners need tls_cert and tls_key"),
    };
    let bind = |addr: SocketAddr, transport: Transport| -> anyhow::Result<Listener> {
        Listener::bind(addr, workers, transport).with_context(|| format!("binding {addr}"))
    };
    let mut listeners = Vec::new();
    let l = bind(cfg.listen, Transport::Mqtt { dev: false })?;
    tracing::info!(addr = %l.local_addr()?, "mqtt listener");
    listeners.push(l);
    if let Some(addr) = cfg.ws_listen {
        let l = bind(addr, Transport::WebSocket)?;
        tracing::info!(addr = %l.local_addr()?, path = crate::ws::PATH, "mqtt websocket listener");
        listeners.push(l);
    }
    if let (Some(addr), Some(tls)) = (cfg.tls_listen, &tls) {
        let l = bind(addr, Transport::Tls(tls.clone()))?;
        tracing::info!(addr = %l.local_addr()?, "mqtt tls listener");
        listeners.push(l);
    }
    if let (Some(addr), Some(tls)) = (cfg.wss_listen, &tls) {
        let l = bind(addr, Transport::SecureWebSocket(tls.clone()))?;
        tracing::info!(addr = %l.local_addr()?, path = crate::ws::PATH, "mqtt secure websocket listener");
        listeners.push(l);
    }
    if let Some(addr) = cfg.dev_listen {
        let l = bind(addr, Transport::Mqtt { dev: true })?;
        tracing::warn!(addr = %l.local_addr()?, instance = %cfg.dev_instance, "DEVELOPMENT listener without authentication");
        listeners.push(l);
    }

    let sys = ntex::rt::System::build().name("broker").build(ntex::rt::DefaultRuntime);
    let io_cfg = mqtt_config(&cfg);
    let housekeeping_secs = cfg.housekeeping_secs;
    let limits = v3::Limits {
        max_frame: cfg.max_frame_size,
        max_inflight: cfg.max_inflight,
    };
    let mut workers = sys.block_on(async move {
        let workers = listeners::start(listeners, &broker, limits, &io_cfg);
        ntex::rt::spawn(broker.clone().run_will_timer());
        let housekeeping = Duration::from_secs(housekeeping_secs.max(1));
        let sweeper = broker.clone();
        ntex::rt::spawn(async move {
            loop {
                sweeper.expire_sessions().await;
                let b = sweeper.clone();
                // Retention touches the disk: keep it off the workers.
                let _ = ntex::rt::spawn_blocking(move || b.expire_offline_messages()).await;
                ntex::time::sleep(housekeeping).await;
            }
        });
        let signal = stop_signal().await?;
        tracing::info!(signal, "stopping: the workers close their connections");
        for worker in &workers {
            worker.stop();
        }
        Ok::<_, anyhow::Error>(workers)
    })?;
    for worker in &mut workers {
        let _ = worker.join();
    }
    tracing::info!("mqtt server stopped");
    crate::core::offline::OfflineQueue::flush(store.as_ref()).context("final store flush")?;
    Ok(())
}

/// Waits for SIGTERM or SIGINT and names it.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
