//! A whole system for one test: control plane, N brokers, an operator API client and the fixture.

use tempfile::TempDir;

use crate::{Api, Broker, ControlPlane, Fixture};

pub struct System {
    pub brokers: Vec<Broker>,
    pub cp: ControlPlane,
    pub api: Api,
    pub fx: Fixture,
    /// Logs and data of every process; kept on failure via `keep()` when debugging.
    pub dir: TempDir,
}

pub const NODE_SECRET: &str = "e2e-node-secret-0123456789abcdef";

impl System {
    pub async fn up(brokers: usize) -> Self {
        Self::up_with(brokers, &[]).await
    }

    /// As `up`, with more command-line arguments for every broker (e.g. `--cluster-nats-url`).
    pub async fn up_with(brokers: usize, broker_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("e2e-").tempdir().expect("temp dir");
        let names: Vec<String> = (1..=brokers).map(|i| format!("node-{i}")).collect();
        let nodes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), NODE_SECRET)).collect();
        let cp = ControlPlane::start(dir.path(), &nodes).await;
        let api = Api::login(&cp).await;
        let fx = Fixture::create(&api).await;
        let brokers = names
            .iter()
            .map(|n| Broker::start_with(dir.path(), &cp.url, n, NODE_SECRET, broker_args))
            .collect();
        let sys = Self {
            brokers,
            cp,
            api,
            fx,
            dir,
        };
        sys.api
            .wait_in_sync(&names.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        sys
    }

    pub fn broker(&self) -> &Broker {
        &self.brokers[0]
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.brokers.iter().map(|b| b.node_id.clone()).collect()
    }

    /// Waits until the control plane shows every broker's link to NATS up (from their heartbeats).
    pub async fn wait_cluster_links_up(&self) {
        for _ in 0..200 {
            let list = self.api.brokers().await;
            let brokers = list["brokers"].as_array().cloned().unwrap_or_default();
            if brokers.len() == self.brokers.len() && brokers.iter().all(|b| b["clusterLink"] == "up") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "cluster links not all up: {} ({})",
            self.api.brokers().await,
            self.logs_hint()
        );
    }

    /// Prints where the logs are; call from a test before asserting on something flaky to debug.
    pub fn logs_hint(&self) -> String {
        format!("logs under {}", self.dir.path().display())
    }
}
