//! Rules (docs/rules.md): data outflow, client status notifications and data inflow, run by the
//! broker that accepted the message or saw the connection event. The hot path only appends to a
//! rule's durable, bounded outbox (`outbox`) and wakes its sender (`sender`), which drains it into
//! the rule's target (`target`) on the rules runtime, a thread of its own: a slow or dead target
//! costs publishers nothing but the append. `Rules` owns the outboxes, each rule's state and
//! tasks, and keeps the tasks in step with the snapshot.

pub mod compiled;
pub mod dead;
pub mod guard;
pub mod inflow;
pub mod outbox;
pub mod record;
pub mod sender;
pub mod state;
pub mod target;
mod testing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use anyhow::Context;
use common::rules::{OutboxLimits, RuleConfig, RuleKind, RuleStats, StatusEvent, TargetPolicy};
use common::sync::{ClientEvent, ClientEventType};

use self::dead::DeadLetters;
use self::outbox::{Appended, Outbox};
use self::sender::{Sender, Settings};
use self::state::{RuleState, Usage};
use crate::core::Broker;
use crate::core::seam::SeamError;
use crate::directory::Instance;
use crate::message::Message;
use crate::store::FjallStore;

struct Running {
    config: RuleConfig,
    policy: TargetPolicy,
    task: tokio::task::JoinHandle<()>,
}

pub struct Rules {
    node_id: String,
    outbox: Arc<Outbox>,
    settings: Settings,
    pub dead: Arc<DeadLetters>,
    rt: tokio::runtime::Handle,
    states: RwLock<HashMap<String, Arc<RuleState>>>,
    /// What each rule left in its outbox when the broker started, until the rule is seen.
    restored: Mutex<HashMap<String, Usage>>,
    running: Mutex<HashMap<String, Running>>,
    /// Every rule id of the last applied snapshot (a rule that leaves it has its outbox deleted).
    known: Mutex<Option<HashSet<String>>>,
    broker: OnceLock<Weak<Broker>>,
}

impl Rules {
    /// Opens the outboxes and starts the rules runtime (a thread of its own, for the life of the
    /// process). Senders start once `attach` gave them the broker and its snapshot.
    pub fn start(store: &FjallStore, node_id: &str, settings: Settings) -> anyhow::Result<Arc<Self>> {
        let (outbox, restored) = Outbox::open(store).context("opening the rule outboxes")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rules")
            .enable_all()
            .build()
            .context("starting the rules runtime")?;
        let handle = rt.handle().clone();
        std::mem::forget(rt);
        Ok(Arc::new(Self {
            node_id: node_id.to_string(),
            outbox: Arc::new(outbox),
            settings,
            dead: Arc::new(DeadLetters::default()),
            rt: handle,
            states: RwLock::new(HashMap::new()),
            restored: Mutex::new(restored),
            running: Mutex::new(HashMap::new()),
            known: Mutex::new(None),
            broker: OnceLock::new(),
        }))
    }

    /// Hooks the rules into the broker (publish path, status events) and follows its snapshots.
    pub fn attach(self: &Arc<Self>, broker: &Arc<Broker>) {
        let _ = self.broker.set(Arc::downgrade(broker));
        broker.set_rules(self.clone());
        let (rules, b) = (Arc::downgrade(self), Arc::downgrade(broker));
        broker.events.set_hook(Box::new(move |ev| {
            let status = matches!(
                ev.event_type,
                ClientEventType::Connect | ClientEventType::Disconnect | ClientEventType::Tcpclean
            );
            if status
                && let (Some(rules), Some(broker)) = (rules.upgrade(), b.upgrade())
                && let Some(inst) = broker.dirs.load().instances.get(&ev.instance_id)
                && !inst.rules.status.is_empty()
            {
                rules.on_event(inst, ev);
            }
        }));
        let mut changed = broker.dirs.watch();
        let (rules, b) = (self.clone(), Arc::downgrade(broker));
        self.rt.spawn(async move {
            loop {
                let Some(broker) = b.upgrade() else { return };
                rules.reconcile(&broker);
                drop(broker);
                if changed.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn state(&self, rule_id: &str, instance_id: &str, limits: OutboxLimits) -> Arc<RuleState> {
        if let Some(st) = self.states.read().unwrap_or_else(|p| p.into_inner()).get(rule_id) {
            return st.clone();
        }
        let mut states = self.states.write().unwrap_or_else(|p| p.into_inner());
        states
            .entry(rule_id.to_string())
            .or_insert_with(|| {
                let usage = self
                    .restored
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(rule_id)
                    .unwrap_or_default();
                Arc::new(RuleState::new(rule_id, instance_id, limits, usage))
            })
            .clone()
    }

    /// The publish path: appends the message to the outbox of every outflow rule of the instance
    /// it matches; QoS 1/2 appends are durable when this returns (an error: do not acknowledge).
    pub fn on_publish(&self, inst: &Instance, msg: &Message) -> Result<(), SeamError> {
        let mut record: Option<Vec<u8>> = None;
        let qos0 = msg.qos.level() == 0;
        let mut durable = false;
        for m in inst
            .rules
            .outflow
            .iter()
            .filter(|m| m.matches(&msg.topic, &msg.publisher))
        {
            let st = self.state(&m.groups.rule_id, &inst.id, m.groups.limits);
            st.matched();
            let rec = record.get_or_insert_with(|| record::encode_message(msg));
            match self.outbox.append(&st, rec, qos0) {
                Ok(Appended::Stored) => {
                    durable |= !qos0;
                    st.wake.notify_one();
                }
                Ok(Appended::DroppedQos0) => {}
                Err(e) => {
                    crate::metrics::store_error("rule_outbox");
                    tracing::error!(rule = %st.rule_id, error = %e, "cannot append to a rule outbox");
                    return Err(SeamError::Store(e.to_string()));
                }
            }
        }
        if durable {
            self.outbox.persist().map_err(|e| SeamError::Store(e.to_string()))?;
        }
        Ok(())
    }

    /// A client's connect, disconnect or tcpclean: to every status rule of the instance covering
    /// the client, durable before this returns.
    pub fn on_event(&self, inst: &Instance, ev: &ClientEvent) {
        let event_type = match ev.event_type {
            ClientEventType::Connect => "connect",
            ClientEventType::Disconnect => "disconnect",
            ClientEventType::Tcpclean => "tcpclean",
            _ => return,
        };
        let status = StatusEvent {
            client_id: ev.client_id.clone(),
            time: ev.time,
            event_type: event_type.into(),
            channel_id: ev.channel_id.clone(),
            client_ip: ev.client_ip.clone(),
        };
        let rec = record::encode_status(&status);
        let mut stored = false;
        for m in inst.rules.status.iter().filter(|m| m.covers(&ev.client_id)) {
            let st = self.state(&m.rule_id, &inst.id, m.limits);
            st.matched();
            match self.outbox.append(&st, &rec, false) {
                Ok(_) => {
                    stored = true;
                    st.wake.notify_one();
                }
                Err(e) => {
                    crate::metrics::store_error("rule_outbox");
                    tracing::error!(rule = %st.rule_id, error = %e, "cannot append a status event");
                }
            }
        }
        if stored && let Err(e) = self.outbox.persist() {
            tracing::error!(error = %e, "cannot persist the rule outboxes");
        }
    }

    /// Starts, restarts and stops rule tasks to match the broker's current snapshot.
    fn reconcile(&self, broker: &Arc<Broker>) {
        let dir = broker.dirs.load();
        let policy = dir.rule_policy;
        let mut all = HashSet::new();
        let mut desired: HashMap<String, (String, RuleConfig)> = HashMap::new();
        for inst in dir.instances.values() {
            for cfg in &inst.rules.configs {
                all.insert(cfg.id.clone());
                if cfg.enabled {
                    desired.insert(cfg.id.clone(), (inst.id.clone(), cfg.clone()));
                }
            }
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|id, r| {
            let keep = desired
                .get(id)
                .is_some_and(|(_, cfg)| *cfg == r.config && r.policy == policy);
            if !keep {
                // Items being sent stay in the outbox: the next task sends them again.
                r.task.abort();
            }
            keep
        });
        for (id, (instance_id, cfg)) in desired {
            if running.contains_key(&id) {
                continue;
            }
            let task = match cfg.source.kind() {
                RuleKind::Inflow => {
                    let st = self.state(&id, &instance_id, cfg.outbox);
                    inflow::spawn(&self.rt, cfg.clone(), instance_id, Arc::downgrade(broker), st)
                }
                RuleKind::Outflow | RuleKind::Status => {
                    let st = self.state(&id, &instance_id, cfg.outbox);
                    *st.limits.lock().unwrap_or_else(|p| p.into_inner()) = cfg.outbox;
                    let sender = Sender {
                        outbox: self.outbox.clone(),
                        state: st,
                        target: target::build(&cfg, policy, Arc::downgrade(broker)),
                        settings: self.settings,
                        dead: self.dead.clone(),
                    };
                    self.rt.spawn(sender.run())
                }
            };
            tracing::info!(rule = %id, kind = ?cfg.source.kind(), "rule running");
            running.insert(
                id,
                Running {
                    config: cfg,
                    policy,
                    task,
                },
            );
        }
        drop(running);
        // Rules deleted since the last snapshot: their outboxes go too.
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = known.as_ref() {
            for gone in before.difference(&all) {
                let st = self.states.write().unwrap_or_else(|p| p.into_inner()).remove(gone);
                if let Some(st) = st {
                    match self.outbox.purge(&st) {
                        Ok(n) => tracing::info!(rule = %gone, purged = n, "rule deleted: outbox removed"),
                        Err(e) => tracing::error!(rule = %gone, error = %e, "cannot remove a deleted rule's outbox"),
                    }
                }
            }
        }
        // Outboxes of rules deleted while this broker was down: gone once a real configuration
        // (not the empty one of a broker still waiting for its first snapshot) no longer has them.
        if dir.version > 0 {
            let orphans: Vec<String> = {
                let mut restored = self.restored.lock().unwrap_or_else(|p| p.into_inner());
                let ids: Vec<String> = restored.keys().filter(|id| !all.contains(*id)).cloned().collect();
                for id in &ids {
                    restored.remove(id);
                }
                ids
            };
            for id in orphans {
                let st = RuleState::new(&id, "", OutboxLimits::default(), Usage::default());
                match self.outbox.purge(&st) {
                    Ok(n) => tracing::info!(rule = %id, purged = n, "outbox of a deleted rule removed"),
                    Err(e) => tracing::error!(rule = %id, error = %e, "cannot remove a deleted rule's outbox"),
                }
            }
        }
        *known = Some(all);
    }

    /// Per-rule figures of this broker, for the heartbeat and `/rules`.
    pub fn stats(&self) -> Vec<RuleStats> {
        let states = self.states.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<RuleStats> = states.values().map(|s| s.stats()).collect();
        out.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        out
    }

    /// The rules runtime (for work that must run where deliveries run).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    fn broker(&self) -> Weak<Broker> {
        self.broker.get().cloned().unwrap_or_default()
    }
}
