//! Python tests run from Rust tests against parts the Rust test started: Python and the packages of
//! tests/requirements.txt are required (scripts/test installs them in `.venv`, first on PATH), and
//! the Python tests are never skipped.

use std::process::Command;

/// Runs `python3 -m pytest` (or `$PYTHON`) on `path` with `env`; panics with the output unless
/// every test passed and none was skipped. Returns the output.
pub async fn run_pytest(path: String, env: Vec<(&'static str, String)>) -> String {
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
