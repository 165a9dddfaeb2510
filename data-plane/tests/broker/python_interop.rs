//! The client interoperability cases of `tests/python/test_interop.py` (the Eclipse Paho
//! interoperability tests' cases, with paho-mqtt, for MQTT 3.1.1 and MQTT 5) against the
//! development listener.

use crate::support::*;

#[test]
fn paho_interoperability_cases_v311_and_v5() {
    let b = BrokerProc::start_with_dev(&snapshot());
    let env = [
        ("MQTT_HOST", "127.0.0.1".to_string()),
        ("MQTT_DEV_PORT", b.dev_port.unwrap().to_string()),
    ];
    pytest("test_interop.py", &env, 22);
}
