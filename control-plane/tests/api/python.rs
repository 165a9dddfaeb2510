//! Runs `tests/python/test_acs3_reference.py`, which signs requests with the reference ACS3 signer of
//! the PyPI package `alibabacloud-tea-openapi`, against a server started here. Python and the
//! package are required (scripts/test installs them from tests/requirements.txt): never skipped.

use std::process::Command;

use crate::server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_signer_is_accepted() {
    let s = TestServer::start().await;
    let id = s.create_instance("python").await;
    s.create_topic(&id, "T").await;
    let key = s.create_access_key(&[&id]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/test_acs3_reference.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = tokio::task::spawn_blocking({
        let base = s.base.clone();
        move || {
            Command::new(&python)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", script])
                .env("CP_URL", base)
                .env("CP_INSTANCE_ID", &id)
                .env("CP_ACCESS_KEY_ID", &key.0)
                .env("CP_ACCESS_KEY_SECRET", &key.1)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {python} (install Python 3 and tests/requirements.txt): {e}"))
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(!text.contains("skipped"), "the Python test must not skip:\n{text}");
}
