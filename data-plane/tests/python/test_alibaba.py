"""Alibaba-style scenario with paho-mqtt, as an existing Alibaba Cloud MQTT client would run it.

The Rust test `python_alibaba.rs` starts the broker and passes its address and the fixture
credentials in MQTT_* environment variables; tokens are minted there with the real signer.
"""

import base64
import hashlib
import hmac
import os
import queue
import threading

import paho.mqtt.client as mqtt

HOST = os.environ["MQTT_HOST"]
PORT = int(os.environ["MQTT_PORT"])
WS_PORT = int(os.environ["MQTT_WS_PORT"])
TLS_PORT = int(os.environ["MQTT_TLS_PORT"])
WSS_PORT = int(os.environ["MQTT_WSS_PORT"])
TLS_CA = os.environ["MQTT_TLS_CA"]
INSTANCE = os.environ["MQTT_INSTANCE"]
AK = os.environ["MQTT_AK"]
SK = os.environ["MQTT_SK"]
GROUP = os.environ["MQTT_GROUP"]
PARENT = os.environ["MQTT_PARENT"]
TIMEOUT = 10


def signature(secret, client_id):
    """Base64(HMAC-SHA1(secret, clientId)), exactly as the Alibaba demos compute it."""
    digest = hmac.new(secret.encode(), client_id.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Session:
    """A connected paho client that collects received messages in a queue."""

    def __init__(self, client_id, username, password, websocket=False, tls=False):
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.reason = None
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            transport="websockets" if websocket else "tcp",
        )
        if websocket:
            self.client.ws_set_options(path="/mqtt")
        if tls:
            # Verifies the server certificate (localhost / 127.0.0.1) against the test CA.
            self.client.tls_set(ca_certs=TLS_CA)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        port = {(False, False): PORT, (True, False): WS_PORT, (False, True): TLS_PORT, (True, True): WSS_PORT}[
            (websocket, tls)
        ]
        self.client.connect(HOST, port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason = reason_code
        self.connected.set()

    def subscribe(self, topic, qos=0):
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(TIMEOUT), "no SUBACK"

    def receive(self, n):
        return [self.messages.get(timeout=TIMEOUT) for _ in range(n)]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_signature_mode_parent_topic_and_p2p():
    client_id = f"{GROUP}@@@d1"
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature(SK, client_id))
    assert not s.reason.is_failure, s.reason
    s.subscribe(PARENT, 0)
    for i in range(10):
        s.client.publish(PARENT, f"msg-{i}", qos=0)
    got = s.receive(10)
    assert sorted(m.payload.decode() for m in got) == sorted(f"msg-{i}" for i in range(10))
    assert all(m.topic == PARENT for m in got)
    s.close()

    # P2P to its own client id, on a fresh connection without any subscription.
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature(SK, client_id))
    p2p = f"{PARENT}/p2p/{client_id}"
    for i in range(10):
        s.client.publish(p2p, f"p2p-{i}", qos=1)
    got = s.receive(10)
    assert [m.payload.decode() for m in got] == [f"p2p-{i}" for i in range(10)]
    assert all(m.topic == p2p for m in got)
    s.close()


def test_token_mode():
    client_id = f"{GROUP}@@@d2"
    s = Session(client_id, f"Token|{AK}|{INSTANCE}", f"RW|{os.environ['MQTT_TOKEN_RW']}")
    assert not s.reason.is_failure, s.reason
    s.subscribe(f"{PARENT}/tok/#", 1)
    for i in range(10):
        s.client.publish(f"{PARENT}/tok/a", f"t-{i}", qos=1)
    assert len(s.receive(10)) == 10
    s.close()


def test_device_credential_mode():
    client_id = os.environ["MQTT_DC_CLIENT_ID"]
    s = Session(
        client_id,
        f"DeviceCredential|{os.environ['MQTT_DC_ID']}|{INSTANCE}",
        signature(os.environ["MQTT_DC_SECRET"], client_id),
    )
    assert not s.reason.is_failure, s.reason
    s.subscribe(f"{PARENT}/dc", 1)
    s.client.publish(f"{PARENT}/dc", "hello", qos=1)
    assert s.receive(1)[0].payload == b"hello"
    s.close()


def test_wrong_signature_is_refused_with_code_5():
    client_id = f"{GROUP}@@@d3"
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature("wrong", client_id))
    # CONNACK return code 5, which paho reports as "Not authorized".
    assert s.reason.is_failure
    assert s.reason == "Not authorized", s.reason
    s.client.loop_stop()


def test_websocket_listener():
    client_id = f"{GROUP}@@@ws1"
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature(SK, client_id), websocket=True)
    assert not s.reason.is_failure, s.reason
    s.subscribe(f"{PARENT}/ws", 1)
    for i in range(10):
        s.client.publish(f"{PARENT}/ws", f"ws-{i}", qos=1)
    assert [m.payload.decode() for m in s.receive(10)] == [f"ws-{i}" for i in range(10)]
    s.close()


def test_tls_listener():
    client_id = f"{GROUP}@@@tls1"
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature(SK, client_id), tls=True)
    assert not s.reason.is_failure, s.reason
    s.subscribe(f"{PARENT}/tls", 1)
    s.client.publish(f"{PARENT}/tls", "secure", qos=1)
    assert s.receive(1)[0].payload == b"secure"
    s.close()


def test_secure_websocket_listener():
    client_id = f"{GROUP}@@@wss1"
    s = Session(client_id, f"Signature|{AK}|{INSTANCE}", signature(SK, client_id), websocket=True, tls=True)
    assert not s.reason.is_failure, s.reason
    s.subscribe(f"{PARENT}/wss", 1)
    s.client.publish(f"{PARENT}/wss", "wss", qos=1)
    assert s.receive(1)[0].payload == b"wss"
    s.close()
