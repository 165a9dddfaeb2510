//! Runs the paho-mqtt scenario in `tests/python/` (pytest) against a real broker. Python and its
//! packages come from tests/requirements.txt; a missing interpreter or package fails the test.

use std::process::Command;

use crate::support::*;
use common::token::TokenAction;

#[test]
fn alibaba_style_scenario_with_paho() {
    let b = BrokerProc::start(&snapshot());
    let rw = token(INST, TokenAction::RW, &["T/#"], now_ms() + 3_600_000, "py-rw");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", dir])
        .env("MQTT_HOST", "127.0.0.1")
        .env("MQTT_PORT", b.port.to_string())
        .env("MQTT_WS_PORT", b.ws_port.to_string())
        .env("MQTT_TLS_PORT", b.tls_port.to_string())
        .env("MQTT_WSS_PORT", b.wss_port.to_string())
        .env("MQTT_TLS_CA", fixture("ca.pem"))
        .env("MQTT_INSTANCE", INST)
        .env("MQTT_AK", AK)
        .env("MQTT_SK", SK)
        .env("MQTT_GROUP", GROUP)
        .env("MQTT_PARENT", "T")
        .env("MQTT_TOKEN_RW", rw)
        .env("MQTT_DC_ID", DC_ID)
        .env("MQTT_DC_SECRET", DC_SECRET)
        .env("MQTT_DC_CLIENT_ID", format!("{GROUP}@@@dev1"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    // pytest exits 0 with zero tests collected only if something is badly wrong; insist on 7 passes.
    assert!(
        stdout.contains("7 passed"),
        "unexpected pytest result:\n{stdout}\n{stderr}"
    );
}
