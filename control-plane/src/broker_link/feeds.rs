//! Wakes long-polls. One PostgreSQL `LISTEN` connection per process (not one per waiting request)
//! turns `config_version`, `broker_commands` and `rule_tests` notifications into ticks of tokio watch channels;
//! waiting requests re-read the database on every tick. Any replica's change wakes every replica.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::db::{COMMANDS_CHANNEL, CONFIG_CHANNEL, RULE_TESTS_CHANNEL};

/// Ticks, not values: a waiter only learns "look again". That keeps the fan-out correct after a lost
/// connection, when we cannot know what was missed.
#[derive(Clone)]
pub struct Feeds {
    config: watch::Sender<u64>,
    commands: watch::Sender<u64>,
    /// Brokers' answers to TestRule.
    rule_tests: watch::Sender<u64>,
    closing: watch::Sender<bool>,
}

/// What a long-poll waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    Changed,
    TimedOut,
    /// The server is shutting down: answer now so graceful shutdown is not held up by long-polls.
    Closing,
}

impl Default for Feeds {
    fn default() -> Self {
        Self {
            config: watch::channel(0).0,
            commands: watch::channel(0).0,
            rule_tests: watch::channel(0).0,
            closing: watch::channel(false).0,
        }
    }
}

impl Feeds {
    pub fn config(&self) -> Waiter {
        self.waiter(&self.config)
    }

    pub fn commands(&self) -> Waiter {
        self.waiter(&self.commands)
    }

    pub fn rule_tests(&self) -> Waiter {
        self.waiter(&self.rule_tests)
    }

    fn waiter(&self, feed: &watch::Sender<u64>) -> Waiter {
        Waiter {
            feed: feed.subscribe(),
            closing: self.closing.subscribe(),
        }
    }

    /// Ends every current and future wait at once.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn wake_all(&self) {
        self.config.send_modify(|t| *t += 1);
        self.commands.send_modify(|t| *t += 1);
        self.rule_tests.send_modify(|t| *t += 1);
    }

    /// Listens until the task is aborted, reconnecting after errors.
    pub async fn run(self, database_url: String, acquire_timeout: Duration) {
        // Its own one-connection pool: the listener must not hold one of the API pool's connections.
        // The short acquire timeout makes a reconnection after a database outage fail fast and retry,
        // so notifications flow again about a second after PostgreSQL is back.
        let pool = match crate::db::pool_options(1, acquire_timeout).connect_lazy(&database_url) {
            Ok(pool) => pool,
            Err(e) => {
                tracing::error!(error = %e, "bad database URL; long-polls will only wake on their timeout");
                return;
            }
        };
        loop {
            if let Err(e) = self.listen(&pool).await {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
            }
            // Notifications sent while we were not listening are lost: let every waiter look again.
            self.wake_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn listen(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([CONFIG_CHANNEL, COMMANDS_CHANNEL, RULE_TESTS_CHANNEL])
            .await?;
        self.wake_all();
        loop {
            match listener.try_recv().await? {
                Some(n) if n.channel() == CONFIG_CHANNEL => self.config.send_modify(|t| *t += 1),
                Some(n) if n.channel() == COMMANDS_CHANNEL => self.commands.send_modify(|t| *t += 1),
                Some(n) if n.channel() == RULE_TESTS_CHANNEL => self.rule_tests.send_modify(|t| *t += 1),
                Some(_) => {}
                // Reconnected (sqlx listens again by itself), but anything in between is lost.
                None => self.wake_all(),
            }
        }
    }
}

/// One request's subscription. Created before the request reads the database, so a change committed
/// between that read and the wait still wakes it.
pub struct Waiter {
    feed: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
}

impl Waiter {
    pub async fn wait_until(&mut self, deadline: tokio::time::Instant) -> Wake {
        if *self.closing.borrow() {
            return Wake::Closing;
        }
        tokio::select! {
            r = self.feed.changed() => if r.is_ok() { Wake::Changed } else { Wake::Closing },
            _ = self.closing.wait_for(|c| *c) => Wake::Closing,
            () = tokio::time::sleep_until(deadline) => Wake::TimedOut,
        }
    }
}
