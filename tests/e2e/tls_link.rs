//! The broker's link to the control plane over https, through a TLS-terminating proxy whose
//! certificate comes from a private CA: trusted with `--control-plane-ca`, refused without it.

use std::time::Duration;

use rumqttc::QoS;
use test_support::mqtt;

use e2e::system::NODE_SECRET;
use e2e::tls_proxy::TEST_CA;
use e2e::{Api, Broker, ControlPlane, Fixture, TlsProxy};

#[tokio::test]
async fn brokers_link_over_https_only_when_they_trust_the_certificate() {
    let dir = tempfile::Builder::new().prefix("e2e-tls-").tempdir().unwrap();
    let nodes = [("node-ca", NODE_SECRET), ("node-no-ca", NODE_SECRET)];
    let cp = ControlPlane::start(dir.path(), &nodes).await;
    let api = Api::login(&cp).await;
    let fx = Fixture::create(&api).await;
    let proxy = TlsProxy::start(cp.port).await;

    let trusting = Broker::start_with(
        dir.path(),
        &proxy.url(),
        "node-ca",
        NODE_SECRET,
        &["--control-plane-ca", TEST_CA],
    );
    let _untrusting = Broker::start(dir.path(), &proxy.url(), "node-no-ca", NODE_SECRET);
    api.wait_in_sync(&["node-ca"]).await;

    // The configuration arrived over TLS: a client of the instance gets a message through.
    let (sub, mut ev, _) = mqtt::connect(fx.signature_opts(&fx.client_id("tls-sub"), trusting.mqtt_port))
        .await
        .unwrap();
    sub.subscribe(format!("{}/tls", fx.parent), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt::suback(&mut ev).await;
    sub.publish(format!("{}/tls", fx.parent), QoS::AtLeastOnce, false, "over https")
        .await
        .unwrap();
    assert_eq!(&mqtt::collect(&mut ev, 1, 10).await[0].payload[..], b"over https");

    // The other broker does not trust the proxy's certificate: it never gets the configuration.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let brokers = api.brokers().await;
    let state = brokers["brokers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["nodeId"] == "node-no-ca")
        .map(|b| b["state"].clone());
    assert_ne!(state, Some("in_sync".into()), "{brokers}");
}
