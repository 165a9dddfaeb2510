//! Paths of the workspace binaries under test, built on demand when they are missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

static BUILD: Once = Once::new();

/// `target/<profile>/<name>`, next to this test binary's `deps/` folder.
pub fn path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps");
    let bin = dir.join(name);
    if bin.exists() && std::env::var_os("E2E_REBUILD").is_none() {
        // `cargo nextest run --workspace` has built every binary already. Building again with other
        // package flags could unify features differently and rebuild dependencies in each test.
        return bin;
    }
    BUILD.call_once(|| {
        // `-p e2e` alone does not build the binaries (set E2E_REBUILD=1 to force it after a change).
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "control-plane", "-p", "data-plane"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the control plane and broker failed");
    });
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}
