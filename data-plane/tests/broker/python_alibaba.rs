//! Runs the paho-mqtt scenario `tests/python/test_alibaba.py` (pytest) against a real broker.

use crate::support::*;
use common::token::TokenAction;

#[test]
fn alibaba_style_scenario_with_paho() {
    let b = BrokerProc::start(&snapshot());
    let rw = token(INST, TokenAction::RW, &["T/#"], now_ms() + 3_600_000, "py-rw");
    let env = [
        ("MQTT_HOST", "127.0.0.1".to_string()),
        ("MQTT_PORT", b.port.to_string()),
        ("MQTT_WS_PORT", b.ws_port.to_string()),
        ("MQTT_TLS_PORT", b.tls_port.to_string()),
        ("MQTT_WSS_PORT", b.wss_port.to_string()),
        ("MQTT_TLS_CA", fixture("ca.pem").display().to_string()),
        ("MQTT_INSTANCE", INST.to_string()),
        ("MQTT_AK", AK.to_string()),
        ("MQTT_SK", SK.to_string()),
        ("MQTT_GROUP", GROUP.to_string()),
        ("MQTT_PARENT", "T".to_string()),
        ("MQTT_TOKEN_RW", rw),
        ("MQTT_DC_ID", DC_ID.to_string()),
        ("MQTT_DC_SECRET", DC_SECRET.to_string()),
        ("MQTT_DC_CLIENT_ID", format!("{GROUP}@@@dev1")),
    ];
    pytest("test_alibaba.py", &env, 7);
}
