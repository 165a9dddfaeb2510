//! Python tests run against a server started here: `tests/python/test_acs3_reference.py` signs
//! requests with the reference ACS3 signer of the PyPI package `alibabacloud-tea-openapi`. Python and
//! the packages of tests/requirements.txt are required (scripts/test installs them): never skipped.

use crate::server::TestServer;

/// Runs the Python tests at `target` (relative to the repository) with `env`.
pub async fn run_pytest(target: &str, env: Vec<(&'static str, String)>) -> String {
    test_support::python::run_pytest(format!("{}/../{target}", env!("CARGO_MANIFEST_DIR")), env).await
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
