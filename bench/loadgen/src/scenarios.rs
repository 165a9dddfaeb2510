//! The benchmark scenarios: p2p, fan-out, fan-in (shared subscription), QoS 0 throughput,
//! connection storm, offline drain, and p2p with the broker's rules delivering every message to a
//! webhook and a NATS subject as well. Each returns a `Report`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rumqttc::QoS;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::clients::{self, Pace};
use crate::conn::{self, Conn, Target};
use crate::proc_stats;
use crate::report::{CpuWindow, Report};
use crate::sinks::Sink;
use crate::tracker::Tracker;

/// Settings shared by every scenario.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where publishers (and every client of the other scenarios) connect.
    pub target: Target,
    /// Where the subscribers of p2p, fanout, fanin and qos0 connect, and where offline's sessions
    /// return (another broker of a cluster, or `target`).
    pub sub_target: Target,
    /// Pause after the subscribers connected (offline: left), before the publishers connect.
    pub settle: Duration,
    pub group: String,
    pub parent: String,
    pub clients: usize,
    pub messages: u32,
    pub window: usize,
    pub rate: f64,
    pub time_limit: Duration,
    /// Broker processes whose CPU and memory are measured (summed).
    pub broker_pids: Vec<u32>,
    /// Our broker delivers `<parent>/p2p/<clientId>` without a subscription; other brokers need one.
    pub native_p2p: bool,
    pub connect_concurrency: usize,
}

impl Settings {
    fn client_id(&self, role: &str, n: usize) -> String {
        format!("{}@@@{role}-{n}", self.group)
    }

    fn pace(&self, qos: QoS, publishers: usize) -> Pace {
        Pace {
            qos,
            window: self.window,
            rate: self.rate / publishers as f64,
        }
    }
}

/// Connects `ids` to `s.target` with bounded concurrency, optionally subscribing each to its filters.
async fn connect_all(s: &Settings, ids: Vec<(usize, String, Vec<String>)>, clean: bool) -> Result<Vec<Conn>> {
    connect_all_to(s, &s.target, ids, clean).await
}

/// Connects subscribers to `s.sub_target`, then waits `s.settle`.
async fn connect_subscribers(s: &Settings, ids: Vec<(usize, String, Vec<String>)>) -> Result<Vec<Conn>> {
    let conns = connect_all_to(s, &s.sub_target, ids, true).await?;
    tokio::time::sleep(s.settle).await;
    Ok(conns)
}

async fn connect_all_to(
    s: &Settings,
    target: &Target,
    ids: Vec<(usize, String, Vec<String>)>,
    clean: bool,
) -> Result<Vec<Conn>> {
    let conns = connect_each(s, target, ids, clean).await?;
    Ok(conns.into_iter().map(|(c, _)| c).collect())
}

/// Connects (and subscribes) every client, `connect_concurrency` at a time; each connection with
/// its CONNACK's session-present flag.
async fn connect_each(
    s: &Settings,
    target: &Target,
    ids: Vec<(usize, String, Vec<String>)>,
    clean: bool,
) -> Result<Vec<(Conn, bool)>> {
    let mut conns: Vec<Option<(Conn, bool)>> = (0..ids.len()).map(|_| None).collect();
    let mut pending = FuturesUnordered::new();
    let mut iter = ids.into_iter().enumerate();
    loop {
        while pending.len() < s.connect_concurrency {
            let Some((slot, (n, id, filters))) = iter.next() else {
                break;
            };
            let target = target.clone();
            pending.push(async move {
                let (mut c, present) = target.connect(n, &id, clean).await?;
                if !filters.is_empty() {
                    conn::subscribe(&mut c, &filters).await.with_context(|| id.clone())?;
                }
                anyhow::Ok((slot, (c, present)))
            });
        }
        match pending.next().await {
            Some(result) => {
                let (slot, c) = result?;
                conns[slot] = Some(c);
            }
            None => break,
        }
    }
    Ok(conns.into_iter().map(|c| c.expect("every slot connected")).collect())
}

/// Runs publishers and subscribers that are already connected; measures from the common start
/// until the subscribers and every sink (rule targets, which get every published message) are done.
async fn exchange(
    s: &Settings,
    name: &str,
    publishers: Vec<(Conn, String)>,
    subscribers: Vec<Conn>,
    per_subscriber: u64,
    qos: QoS,
    sinks: &[Sink],
) -> Result<Report> {
    let published = publishers.len() as u64 * s.messages as u64;
    let deadline = Instant::now() + s.time_limit;
    let pace = s.pace(qos, publishers.len());
    let start_line = Arc::new(Barrier::new(publishers.len() + subscribers.len() + 1));
    let idle = if qos == QoS::AtMostOnce {
        Duration::from_secs(2)
    } else {
        s.time_limit
    };
    let mut receivers = Vec::new();
    for mut c in subscribers {
        let start_line = start_line.clone();
        receivers.push(tokio::spawn(async move {
            start_line.wait().await;
            clients::receive(&mut c, per_subscriber, deadline, idle).await
        }));
    }
    let mut senders = Vec::new();
    for (i, (mut c, topic)) in publishers.into_iter().enumerate() {
        let (start_line, count) = (start_line.clone(), s.messages);
        senders.push(tokio::spawn(async move {
            start_line.wait().await;
            clients::publish(&mut c, i as u32, &topic, count, pace, deadline).await?;
            anyhow::Ok(c)
        }));
    }
    start_line.wait().await;
    let cpu = CpuWindow::start(&s.broker_pids);
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut total = Tracker::default();
    let expected = per_subscriber * receivers.len() as u64;
    for r in receivers {
        match r.await? {
            Ok(t) => total.merge(t),
            Err(e) => errors.push(e.to_string()),
        }
    }
    for sink in sinks {
        sink.wait(published, deadline, Duration::from_secs(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for p in senders {
        match p.await? {
            Ok(c) => conn::disconnect(c).await,
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut report = Report::from_tracker(name, expected, &total, elapsed);
    report.broker_cpu_pct = cpu.percent(elapsed);
    report.broker_peak_rss = proc_stats::memory(&s.broker_pids).map(|m| m.1);
    report.rule_targets = sinks.iter().map(|k| k.report(published)).collect();
    errors.truncate(10);
    report.errors = errors;
    Ok(report)
}

/// N publishers each send to their own subscriber through `<parent>/p2p/<clientId>`.
pub async fn p2p(s: &Settings) -> Result<Report> {
    p2p_with(s, "p2p", &[]).await
}

/// p2p, with the broker's rules (`loadgen snapshot --rule-webhook/--rule-nats`) sending every
/// message to `sinks` too; without sinks the same load with nothing else to deliver.
pub async fn rules(s: &Settings, sinks: &[Sink]) -> Result<Report> {
    p2p_with(s, "rules", sinks).await
}

async fn p2p_with(s: &Settings, name: &str, sinks: &[Sink]) -> Result<Report> {
    let n = s.clients;
    let subs: Vec<_> = (0..n)
        .map(|i| {
            let id = s.client_id("sub", i);
            let filters = if s.native_p2p {
                vec![]
            } else {
                vec![format!("{}/p2p/{id}", s.parent)]
            };
            (i, id, filters)
        })
        .collect();
    let subscribers = connect_subscribers(s, subs).await?;
    let pubs: Vec<_> = (0..n).map(|i| (n + i, s.client_id("pub", i), vec![])).collect();
    let publishers = connect_all(s, pubs, true).await?;
    let publishers = publishers
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, format!("{}/p2p/{}", s.parent, s.client_id("sub", i))))
        .collect();
    exchange(
        s,
        name,
        publishers,
        subscribers,
        s.messages as u64,
        QoS::AtLeastOnce,
        sinks,
    )
    .await
}

/// One publisher, N subscribers of the same topic.
pub async fn fanout(s: &Settings) -> Result<Report> {
    let topic = format!("{}/fanout", s.parent);
    let subs: Vec<_> = (0..s.clients)
        .map(|i| (i, s.client_id("sub", i), vec![topic.clone()]))
        .collect();
    let subscribers = connect_subscribers(s, subs).await?;
    let publisher = connect_all(s, vec![(s.clients, s.client_id("pub", 0), vec![])], true).await?;
    let publishers = publisher.into_iter().map(|c| (c, topic.clone())).collect();
    exchange(
        s,
        "fanout",
        publishers,
        subscribers,
        s.messages as u64,
        QoS::AtLeastOnce,
        &[],
    )
    .await
}

/// N publishers into one shared-subscription group with one member.
pub async fn fanin(s: &Settings) -> Result<Report> {
    let topic = format!("{}/fanin", s.parent);
    let share = vec![format!("$share/bench/{topic}")];
    let subscriber = connect_subscribers(s, vec![(0, s.client_id("sub", 0), share)]).await?;
    let pubs: Vec<_> = (0..s.clients).map(|i| (i + 1, s.client_id("pub", i), vec![])).collect();
    let publishers = connect_all(s, pubs, true)
        .await?
        .into_iter()
        .map(|c| (c, topic.clone()))
        .collect();
    let expected = s.messages as u64 * s.clients as u64;
    exchange(s, "fanin", publishers, subscriber, expected, QoS::AtLeastOnce, &[]).await
}

/// QoS 0 raw throughput: one publisher, one subscriber; losses are reported, not failures.
pub async fn qos0(s: &Settings) -> Result<Report> {
    let topic = format!("{}/qos0", s.parent);
    let mut subscriber = connect_all_to(s, &s.sub_target, vec![(0, s.client_id("sub", 0), vec![])], true).await?;
    let sub = rumqttc::Subscribe::new(topic.clone(), QoS::AtMostOnce);
    subscribe_qos0(&mut subscriber[0], sub).await?;
    tokio::time::sleep(s.settle).await;
    let publisher = connect_all(s, vec![(1, s.client_id("pub", 0), vec![])], true).await?;
    let publishers = publisher.into_iter().map(|c| (c, topic.clone())).collect();
    exchange(
        s,
        "qos0",
        publishers,
        subscriber,
        s.messages as u64,
        QoS::AtMostOnce,
        &[],
    )
    .await
}

async fn subscribe_qos0(c: &mut Conn, mut sub: rumqttc::Subscribe) -> Result<()> {
    use futures_util::SinkExt;
    sub.pkid = 1;
    c.send(rumqttc::Packet::Subscribe(sub)).await?;
    match tokio::time::timeout(Duration::from_secs(30), c.next()).await {
        Ok(Some(Ok(rumqttc::Packet::SubAck(_)))) => Ok(()),
        other => anyhow::bail!("expected SUBACK, got {other:?}"),
    }
}

/// Connect rate with authentication, then broker memory per idle connection; `subscribed`: each
/// client also subscribes to a topic of its own (scenario "idle": what a device costs at rest).
pub async fn connstorm(s: &Settings, subscribed: bool) -> Result<Report> {
    let before = proc_stats::memory(&s.broker_pids).map(|m| m.0);
    let ids: Vec<_> = (0..s.clients)
        .map(|i| {
            let filters = match subscribed {
                true => vec![format!("{}/idle/{i}", s.parent)],
                false => vec![],
            };
            (i, s.client_id("idle", i), filters)
        })
        .collect();
    let cpu = CpuWindow::start(&s.broker_pids);
    let started = Instant::now();
    let conns = connect_all(s, ids, true).await?;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the broker settle (buffers shrink, allocator returns memory) before reading its size.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_stats::memory(&s.broker_pids);
    let mut report = Report {
        scenario: if subscribed { "idle" } else { "connstorm" }.into(),
        elapsed_s: elapsed,
        ..Default::default()
    };
    report.expected = s.clients as u64;
    report.delivered = conns.len() as u64;
    report.connects_per_s = Some(conns.len() as f64 / elapsed.max(1e-9));
    report.broker_cpu_pct = cpu.percent(elapsed);
    report.broker_peak_rss = after.map(|m| m.1);
    if let (Some(before), Some((now, _))) = (before, after) {
        report.bytes_per_idle_conn = Some(now.saturating_sub(before) as f64 / conns.len().max(1) as f64);
    }
    let mut closing = FuturesUnordered::new();
    for c in conns {
        closing.push(conn::disconnect(c));
        if closing.len() >= s.connect_concurrency {
            closing.next().await;
        }
    }
    while closing.next().await.is_some() {}
    Ok(report)
}

/// N persistent subscribers go away, each gets `messages` queued, then all return and drain. They
/// subscribe and the messages are published on `s.target`; they return to `s.sub_target` (another
/// broker of a cluster: the sessions and their queues must follow them there).
pub async fn offline(s: &Settings) -> Result<Report> {
    let topic = |i: usize| format!("{}/drain/{i}", s.parent);
    let subs: Vec<_> = (0..s.clients)
        .map(|i| (i, s.client_id("drain", i), vec![topic(i)]))
        .collect();
    for c in connect_all(s, subs, false).await? {
        conn::disconnect(c).await;
    }
    // In a cluster the sessions' subscriptions reach the other brokers' index through NATS.
    tokio::time::sleep(s.settle).await;
    let deadline = Instant::now() + s.time_limit;
    let mut publisher = connect_all(s, vec![(0, s.client_id("pub", 0), vec![])], true)
        .await?
        .remove(0);
    let pace = s.pace(QoS::AtLeastOnce, 1);
    for i in 0..s.clients {
        clients::publish(&mut publisher, i as u32, &topic(i), s.messages, pace, deadline).await?;
    }
    conn::disconnect(publisher).await;

    let cpu = CpuWindow::start(&s.broker_pids);
    let started = Instant::now();
    let ids: Vec<_> = (0..s.clients).map(|i| (i, s.client_id("drain", i), vec![])).collect();
    let returning = connect_each(s, &s.sub_target, ids, false).await?;
    let mut receivers = Vec::new();
    for (i, (mut c, present)) in returning.into_iter().enumerate() {
        let per = s.messages as u64;
        receivers.push(tokio::spawn(async move {
            let t = clients::receive(&mut c, per, deadline, Duration::from_secs(10)).await;
            conn::disconnect(c).await;
            (i, present, t)
        }));
    }
    let mut total = Tracker::default();
    let mut errors = Vec::new();
    for r in receivers {
        match r.await? {
            (i, present, Ok(t)) => {
                // Say who came up short: a lost message is a defect to chase, not a number.
                if t.unique() < s.messages as u64 {
                    let id = s.client_id("drain", i);
                    let session = if present { "resumed" } else { "not resumed" };
                    errors.push(format!(
                        "{id}: {} of {} messages, session {session}",
                        t.unique(),
                        s.messages
                    ));
                }
                total.merge(t);
            }
            (_, _, Err(e)) => errors.push(e.to_string()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = Report::from_tracker("offline", s.messages as u64 * s.clients as u64, &total, elapsed);
    report.broker_cpu_pct = cpu.percent(elapsed);
    report.broker_peak_rss = proc_stats::memory(&s.broker_pids).map(|m| m.1);
    errors.truncate(10);
    report.errors = errors;
    Ok(report)
}
