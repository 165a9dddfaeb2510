//! A throwaway PostgreSQL cluster for the tests, unless `DATABASE_URL` is set. Under cargo-nextest
//! every test is its own process, so one cluster is shared by all of them: it lives in a fixed
//! directory under the system temp dir (keyed by this crate's path), is started at most once under a
//! file lock, and is reused by later processes and later runs. Each test gets its own database.
//! Stop it with `pg_ctl -D <dir> stop` (the directory is printed in the panic messages below).
//!
//! A test that stops PostgreSQL (an outage) must not stop the shared cluster under the other tests:
//! it starts an `OwnCluster` instead.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::net::free_port;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL server binary, as the `postgres` user when we are root (initdb and postgres
/// refuse to run as root).
fn pg(program: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install the PostgreSQL server binaries): {e}"))
}

fn cluster_dir() -> PathBuf {
    let key = hex::encode(&Sha256::digest(env!("CARGO_MANIFEST_DIR").as_bytes())[..6]);
    std::env::temp_dir().join(format!("control-plane-test-pg-{key}"))
}

fn running(dir: &Path) -> Option<u16> {
    let port: u16 = fs::read_to_string(dir.join("port")).ok()?.trim().parse().ok()?;
    let status = pg("pg_ctl", &["status", "-D", dir.to_str()?]);
    status.status.success().then_some(port)
}

fn ensure_postgres_user() {
    let exists = Command::new("id")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let ok = Command::new("useradd")
            .args(["--system", "postgres"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot create the 'postgres' system user needed to run PostgreSQL as root"
        );
    }
}

fn start_cluster(dir: &Path) -> u16 {
    if !dir.join("PG_VERSION").exists() {
        init_cluster(dir);
    }
    let port = free_port();
    start_on(dir, port);
    fs::write(dir.join("port"), port.to_string()).unwrap();
    port
}

fn init_cluster(dir: &Path) {
    let d = dir.to_str().unwrap();
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    if is_root() {
        ensure_postgres_user();
        let ok = Command::new("chown")
            .args(["-R", "postgres:", d])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot chown {d} to postgres");
    }
    let out = pg(
        "initdb",
        &["-D", d, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
    );
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_on(dir: &Path, port: u16) {
    let d = dir.to_str().unwrap();
    let opts = format!(
        "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 \
         -c min_wal_size=32MB -c max_wal_size=64MB"
    );
    let log = format!("{d}/server.log");
    let out = pg("pg_ctl", &["start", "-w", "-t", "60", "-D", d, "-l", &log, "-o", &opts]);
    assert!(
        out.status.success(),
        "pg_ctl start failed: {} {} (log: {log})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// URL of a server where we may create databases.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let dir = cluster_dir();
    let lock_path = dir.with_extension("lock");
    let lock = File::options()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .unwrap();
    lock.lock().expect("lock the test cluster");
    let port = running(&dir).unwrap_or_else(|| start_cluster(&dir));
    lock.unlock().ok();
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// Creates a fresh database on the shared cluster (or `DATABASE_URL`) and returns its URL.
pub async fn fresh_database() -> String {
    fresh_database_on(&admin_url()).await
}

/// Creates a fresh database on the server of `admin` and returns its URL.
pub async fn fresh_database_on(admin: &str) -> String {
    let admin = admin.to_string();
    // The creating process's ID is in the name, so that later tests can drop what ended tests left.
    let name = format!("test_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let conn = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL");
    // Only on servers of our own: on a user's `DATABASE_URL` other machines' tests may share it.
    if std::env::var("DATABASE_URL").ok().as_deref() != Some(admin.as_str()) {
        drop_databases_of_ended_tests(&conn).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&conn)
        .await
        .expect("create test database");
    conn.close().await;
    // Swap the database name, keeping any `?options` of a user-supplied DATABASE_URL.
    let (url, options) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(u, o)| (u, Some(o)));
    let (base, _) = url.rsplit_once('/').expect("database URL has a path");
    match options {
        Some(o) => format!("{base}/{name}?{o}"),
        None => format!("{base}/{name}"),
    }
}

/// Drops the databases of test processes that have ended. Each database costs about 8 MB on disk and
/// a full run creates hundreds: kept, they once filled a CI machine's disk. A database whose process
/// still runs is left alone; errors (another test dropping the same one first) do not matter.
async fn drop_databases_of_ended_tests(conn: &sqlx::PgPool) {
    let names: Vec<String> = sqlx::query_scalar("select datname from pg_database where datname like 'test\\_%\\_%'")
        .fetch_all(conn)
        .await
        .unwrap_or_default();
    for name in names {
        let Some(pid) = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop database if exists {name} with (force)"
        )))
        .execute(conn)
        .await;
    }
}

/// A PostgreSQL cluster of one test's own (initdb'd into a fresh directory), which the test may stop
/// and start again on the same port to simulate an outage. Stopped and deleted on drop.
pub struct OwnCluster {
    dir: PathBuf,
    port: u16,
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("control-plane-own-pg-{}", uuid::Uuid::new_v4().simple()));
        init_cluster(&dir);
        let port = free_port();
        start_on(&dir, port);
        Self { dir, port }
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are terminated, nothing is lost).
    pub fn stop(&self) {
        let out = pg(
            "pg_ctl",
            &["stop", "-w", "-m", "fast", "-D", self.dir.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        start_on(&self.dir, self.port);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = pg("pg_ctl", &["stop", "-m", "immediate", "-D", self.dir.to_str().unwrap()]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
