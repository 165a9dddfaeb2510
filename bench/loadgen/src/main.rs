//! `loadgen`: drives an MQTT broker with Alibaba-style clients (`GID_x@@@dev-N`, per-client Signature
//! or Token credentials) and reports throughput, latency, loss and broker cost as one JSON line.
//! The `rules` scenario also receives what the broker's rules deliver (`sinks`).

mod clients;
mod conn;
mod payload;
mod proc_stats;
mod report;
mod scenarios;
mod sinks;
mod tracker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use common::quotas::Quotas;
use common::rules::{NatsEndpoint, OutboxLimits, RuleConfig, RuleSource, RuleTarget, TargetPolicy, WebhookFormat};
use common::snapshot::{AccessKeyGrant, InstanceConfig, Snapshot, SnapshotContent};
use common::token::{TokenAction, TokenClaims, TokenSigner};

#[derive(Parser)]
#[command(about = "Alibaba-style MQTT load generator (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and print its report as JSON.
    Run(RunArgs),
    /// Write a broker snapshot with the benchmark instance, its AccessKey and token key.
    Snapshot(SnapshotArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    P2p,
    Fanout,
    Fanin,
    Qos0,
    Connstorm,
    /// Connections each subscribed to a topic of its own, left idle: broker memory per connection.
    Idle,
    Offline,
    /// p2p; the rule targets' receivers run here when `--rule-webhook-listen`/`--rule-nats` are given.
    Rules,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum AuthMode {
    None,
    Signature,
    Token,
}

#[derive(clap::Args)]
struct Credentials {
    #[arg(long, default_value = "mqtt-bench0000001")]
    instance: String,
    #[arg(long, default_value = "LTAIbenchaccesskey")]
    access_key: String,
    #[arg(long, default_value = "bench-secret-not-for-production")]
    secret: String,
    /// Hex seed of the token signing key (the snapshot carries its public key).
    #[arg(
        long,
        default_value = "0101010101010101010101010101010101010101010101010101010101010101"
    )]
    token_seed: String,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Broker address; only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:1883")]
    addr: SocketAddr,
    #[arg(long, value_enum, default_value = "signature")]
    auth: AuthMode,
    #[command(flatten)]
    creds: Credentials,
    #[arg(long, default_value = "GID_bench")]
    group: String,
    #[arg(long, default_value = "bench")]
    parent: String,
    /// Clients on the "many" side of the scenario.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages per publisher (per subscriber for the offline drain).
    #[arg(long, default_value_t = 100)]
    messages: u32,
    /// QoS 1 messages in flight per publisher.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Total messages per second over all publishers; 0 = unpaced.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Upper bound of the measured phase in seconds.
    #[arg(long, default_value_t = 120)]
    time_limit: u64,
    /// Broker process to read CPU and memory from; repeat it for a cluster (figures are summed).
    #[arg(long)]
    broker_pid: Vec<u32>,
    /// Where subscribers connect (another broker of a cluster; repeated, the subscribers take turns
    /// over the brokers); default: `--addr`, like publishers.
    #[arg(long)]
    sub_addr: Vec<SocketAddr>,
    /// Pause between connecting the subscribers and connecting the publishers, in milliseconds
    /// (a cluster's brokers learn of other brokers' sessions and subscriptions through NATS).
    #[arg(long, default_value_t = 0)]
    settle_ms: u64,
    /// Deliver p2p without subscriptions (our broker); otherwise receivers subscribe to their p2p topic.
    #[arg(long)]
    native_p2p: bool,
    /// Source addresses 127.0.0.1 .. 127.0.0.N (each gives about 28,000 ephemeral ports).
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Receive the webhook rule's requests (`POST /hook`) on this loopback address (`rules`).
    #[arg(long)]
    rule_webhook_listen: Option<SocketAddr>,
    /// Receive the NATS rule's messages from this NATS server (`rules`).
    #[arg(long)]
    rule_nats: Option<String>,
    #[arg(long, default_value = "bench.rules")]
    rule_nats_subject: String,
}

#[derive(clap::Args)]
struct SnapshotArgs {
    #[command(flatten)]
    creds: Credentials,
    #[arg(long, default_value = "GID_bench")]
    group: String,
    #[arg(long, default_value = "bench")]
    parent: String,
    #[arg(long)]
    out: PathBuf,
    /// Adds an outflow rule for `<parent>/p2p/#` to this webhook URL (JSON, signed).
    #[arg(long)]
    rule_webhook: Option<String>,
    /// Adds an outflow rule for `<parent>/p2p/#` to a subject of this NATS server (core NATS).
    #[arg(long)]
    rule_nats: Option<String>,
    #[arg(long, default_value = "bench.rules")]
    rule_nats_subject: String,
}

/// The outflow rules the snapshot gets: every p2p message to the webhook and to NATS.
fn bench_rules(a: &SnapshotArgs) -> Vec<RuleConfig> {
    let rule = |n: u8, target: RuleTarget| RuleConfig {
        id: format!("rule-{n:016x}"),
        name: format!("bench rule {n}"),
        enabled: true,
        source: RuleSource::Outflow {
            topic_filters: vec![format!("{}/p2p/#", a.parent)],
            group_ids: vec![],
        },
        target,
        outbox: OutboxLimits::default(),
    };
    let mut rules = Vec::new();
    if let Some(url) = &a.rule_webhook {
        let target = RuleTarget::Webhook {
            url: url.clone(),
            format: WebhookFormat::Json,
            secret: Some("bench-hook-secret".into()),
            timeout_ms: 5_000,
        };
        rules.push(rule(1, target));
    }
    if let Some(url) = &a.rule_nats {
        let target = RuleTarget::Nats {
            nats: NatsEndpoint {
                urls: vec![url.clone()],
                user: None,
                password: None,
                token: None,
                creds: None,
            },
            subject: a.rule_nats_subject.clone(),
            jetstream: false,
        };
        rules.push(rule(2, target));
    }
    rules
}

fn seed(hex_seed: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex_seed).context("token seed is not hex")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("token seed must be 32 bytes"))
}

fn write_snapshot(a: SnapshotArgs) -> Result<()> {
    let signer = TokenSigner::from_seed("bench", &seed(&a.creds.token_seed)?);
    let quotas = Quotas {
        max_connections: 1_000_000,
        max_messages_per_second: 100_000_000,
        max_subscriptions_per_client: 100,
        max_wildcard_subscriptions_per_parent_topic: 100_000,
        ..Quotas::default()
    };
    let instance = InstanceConfig {
        rules: bench_rules(&a),
        id: a.creds.instance,
        name: "bench".into(),
        quotas,
        reject_duplicate_client_id: false,
        parent_topics: vec![a.parent],
        group_ids: vec![a.group],
        access_keys: vec![AccessKeyGrant {
            access_key_id: a.creds.access_key,
            access_key_secret: a.creds.secret,
            enabled: true,
        }],
        device_credentials: vec![],
        revoked_tokens: vec![],
        custom_auth: Default::default(),
    };
    let content = SnapshotContent {
        // The benchmark's webhook receiver runs on this machine.
        rule_policy: TargetPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        token_keys: vec![signer.public_key().clone()],
        instances: vec![instance],
    };
    let snapshot = Snapshot::new(1, content);
    snapshot.validate()?;
    std::fs::write(&a.out, serde_json::to_vec_pretty(&snapshot)?)?;
    Ok(())
}

async fn run(a: RunArgs) -> Result<()> {
    if !a.addr.ip().is_loopback() || a.sub_addr.iter().any(|s| !s.ip().is_loopback()) {
        bail!("loadgen only talks to loopback addresses");
    }
    let c = a.creds;
    let auth = match a.auth {
        AuthMode::None => conn::Auth::None,
        AuthMode::Signature => conn::Auth::Signature {
            access_key: c.access_key,
            secret: c.secret,
            instance: c.instance,
        },
        AuthMode::Token => {
            let signer = TokenSigner::from_seed("bench", &seed(&c.token_seed)?);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let token = signer.sign(&TokenClaims {
                jti: format!("bench-{now}"),
                iid: c.instance.clone(),
                ak: c.access_key.clone(),
                res: vec![format!("{}/#", a.parent)],
                act: TokenAction::RW,
                iat_ms: now,
                exp_ms: now + 3_600_000,
            });
            conn::Auth::Token {
                access_key: c.access_key,
                instance: c.instance,
                token,
            }
        }
    };
    let source_ips = (1..=a.source_ips.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let target = conn::Target {
        addrs: vec![a.addr],
        auth,
        source_ips,
    };
    let settings = scenarios::Settings {
        sub_target: conn::Target {
            addrs: if a.sub_addr.is_empty() {
                vec![a.addr]
            } else {
                a.sub_addr
            },
            ..target.clone()
        },
        target,
        settle: Duration::from_millis(a.settle_ms),
        group: a.group,
        parent: a.parent,
        clients: a.clients,
        messages: a.messages,
        window: a.window.max(1),
        rate: a.rate,
        time_limit: Duration::from_secs(a.time_limit),
        broker_pids: a.broker_pid,
        native_p2p: a.native_p2p,
        connect_concurrency: a.connect_concurrency.max(1),
    };
    let report = match a.scenario {
        Scenario::P2p => scenarios::p2p(&settings).await?,
        Scenario::Fanout => scenarios::fanout(&settings).await?,
        Scenario::Fanin => scenarios::fanin(&settings).await?,
        Scenario::Qos0 => scenarios::qos0(&settings).await?,
        Scenario::Connstorm => scenarios::connstorm(&settings, false).await?,
        Scenario::Idle => scenarios::connstorm(&settings, true).await?,
        Scenario::Offline => scenarios::offline(&settings).await?,
        Scenario::Rules => {
            let mut sinks = Vec::new();
            if let Some(listen) = a.rule_webhook_listen {
                if !listen.ip().is_loopback() {
                    bail!("the webhook receiver only listens on loopback addresses");
                }
                sinks.push(sinks::Sink::webhook(listen).await?);
            }
            if let Some(url) = &a.rule_nats {
                sinks.push(sinks::Sink::nats(url, &a.rule_nats_subject).await?);
            }
            scenarios::rules(&settings, &sinks).await?
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Snapshot(a) => write_snapshot(a),
        Command::Run(a) => {
            // One load generator thread per core: it shares the machine with the broker under test.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(run(a))
        }
    }
}
