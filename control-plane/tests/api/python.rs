//! Python tests run against a server started here: `tests/python/test_acs3_reference.py` signs
//! requests with the reference ACS3 signer of the PyPI package `alibabacloud-tea-openapi`. Python and
//! the packages of tests/requirements.txt are required (scripts/test installs them): never skipped.

use std::process::Command;

use crate::server::TestServer;

/// Runs `python3 -m pytest` on `target` (relative to the repository) with `env`; panics with the
/// output unless every test passed and none was skipped. Returns the output.
pub async fn run_pytest(target: &str, env: Vec<(&'static str, String)>) -> String {
    let path = format!("{}/../{target}", env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &path])
            .envs(env)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} (install Python 3 and tests/requirements.txt): {e}"))
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(!text.contains("skipped"), "the Python tests must not skip:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_signer_is_accepted() {
    let s = TestServer::start().await;
    let id = s.create_instance("python").await;
    s.create_topic(&id, "T").await;
    let key = s.create_access_key(&[&id]).await;
    run_pytest(
        "control-plane/tests/python/test_acs3_reference.py",
        vec![
            ("CP_URL", s.base.clone()),
            ("CP_INSTANCE_ID", id),
            ("CP_ACCESS_KEY_ID", key.0),
            ("CP_ACCESS_KEY_SECRET", key.1),
        ],
    )
    .await;
}
