"""Custom authentication end to end with Alibaba's official SDK and paho-mqtt: a backend creates identities,
permissions and a blacklist entry through `alibabacloud-onsmqtt20200420` (endpoint changed only), and
devices connect to a real broker with paho in both sign modes. Run by the Rust test
`custom_auth::official_sdk_identities_and_paho_devices` (tests/e2e), which starts PostgreSQL, the control
plane and a broker and passes the variables below.
"""

import base64
import hashlib
import hmac
import os
import queue
import time
import urllib.parse
import uuid

import paho.mqtt.client as mqtt
import pytest
from alibabacloud_onsmqtt20200420 import models as m
from alibabacloud_onsmqtt20200420.client import Client
from alibabacloud_tea_openapi import models as open_api_models

VARIABLES = ["CP_URL", "CP_INSTANCE_ID", "CP_ACCESS_KEY_ID", "CP_ACCESS_KEY_SECRET", "MQTT_PORT", "PARENT_TOPIC"]
_missing = [v for v in VARIABLES if v not in os.environ]
if _missing:
    raise pytest.UsageError("run through `cargo nextest run -p e2e custom_auth` (missing " + ", ".join(_missing) + ")")

INSTANCE = os.environ["CP_INSTANCE_ID"]
PARENT = os.environ["PARENT_TOPIC"]
PORT = int(os.environ["MQTT_PORT"])


def sdk(signer):
    config = open_api_models.Config(
        access_key_id=os.environ["CP_ACCESS_KEY_ID"],
        access_key_secret=os.environ["CP_ACCESS_KEY_SECRET"],
        endpoint=urllib.parse.urlparse(os.environ["CP_URL"]).netloc,
        protocol="http",
    )
    if signer == "v1":
        config.signature_algorithm = "v2"
    return Client(config)


def signed(secret, client_id):
    return base64.b64encode(hmac.new(secret.encode(), client_id.encode(), hashlib.sha1).digest()).decode()


class Device:
    """A paho client that records its CONNACK, messages and disconnect."""

    def __init__(self, client_id, username, password):
        self.connack = queue.Queue()
        self.messages = queue.Queue()
        self.gone = queue.Queue()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        c.username_pw_set(username, password)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        c.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        c.on_disconnect = lambda _c, _u, _f, rc, _p: self.gone.put(rc)
        self.client = c

    def connect(self):
        """The CONNACK's reason code (0 when accepted). The network loop runs here until the CONNACK
        and in paho's thread only after an acceptance (a refused client would retry in it)."""
        self.client.connect("127.0.0.1", PORT, keepalive=30)
        deadline = time.time() + 10
        while self.connack.empty():
            assert time.time() < deadline, "no CONNACK within 10 s"
            self.client.loop(timeout=0.05)
        rc = self.connack.get()
        if rc.is_failure:
            self.client.disconnect()
        else:
            self.client.loop_start()
        return rc

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def until_accepted(client_id, username, password):
    """Retries until the identity has reached the broker (the promise is about a second)."""
    deadline = time.time() + 10
    while True:
        d = Device(client_id, username, password)
        rc = d.connect()
        if not rc.is_failure:
            return d
        assert time.time() < deadline, f"{username} still refused: {rc}"
        time.sleep(0.05)


def not_authorized(client_id, username, password):
    rc = Device(client_id, username, password).connect()
    return rc.is_failure and rc.getName() == "Not authorized"


@pytest.mark.parametrize("signer", ["acs3", "v1"])
def test_identities_from_the_sdk_connect_with_paho_in_both_sign_modes(signer):
    api = sdk(signer)
    sfx = uuid.uuid4().hex[:8]
    fleet, pump, pump_client = f"py-fleet-{sfx}", f"py-pump-{sfx}", f"pump-{sfx}"
    api.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(
        instance_id=INSTANCE, identity=fleet, identity_type="USER", topic=f"{PARENT}/{sfx}/#",
        permit_action="PUB_SUB", effect="ALLOW"))
    api.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(
        instance_id=INSTANCE, identity=pump_client, identity_type="CLIENT", topic=f"{PARENT}/{sfx}/+",
        permit_action="PUB", effect="ALLOW"))
    api.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=INSTANCE, username=fleet, secret="fleet-secret", identity_type="USER", sign_mode="ORIGIN"))
    api.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=INSTANCE, username=pump, secret="pump-secret", identity_type="CLIENT",
        client_id=pump_client, sign_mode="SIGNED"))

    # ORIGIN: the password is the secret; any client ID.
    watcher = until_accepted(f"watcher-{sfx}", fleet, "fleet-secret")
    watcher.client.subscribe(f"{PARENT}/{sfx}/#", qos=1)
    # SIGNED: the password is Base64(HMAC-SHA1(secret, clientId)), for its own client ID only.
    device = until_accepted(pump_client, pump, signed("pump-secret", pump_client))
    assert not_authorized(pump_client, pump, "pump-secret")
    assert not_authorized(f"other-{sfx}", pump, signed("pump-secret", f"other-{sfx}"))
    assert not_authorized(f"watcher-{sfx}", fleet, "wrong")

    time.sleep(0.3)  # the SUBACK
    device.client.publish(f"{PARENT}/{sfx}/temp", b"21.5", qos=1).wait_for_publish(timeout=10)
    assert watcher.messages.get(timeout=10) == (f"{PARENT}/{sfx}/temp", b"21.5")

    # The blacklist, set through the SDK, disconnects the live client.
    api.add_custom_auth_connect_black(m.AddCustomAuthConnectBlackRequest(instance_id=INSTANCE, client_id=pump_client))
    device.gone.get(timeout=10)
    device.client.loop_stop()
    assert not_authorized(pump_client, pump, signed("pump-secret", pump_client))
    watcher.close()
