"""Client interoperability cases against the development listener, for MQTT 3.1.1 and MQTT 5.

The cases of the Eclipse Paho interoperability tests (client_test.py), written for paho-mqtt 2.1 (no
conformance suite is published on PyPI): basic, retained messages, offline message queueing, will
message, zero-length client ID, overlapping subscriptions, keepalive, redelivery on reconnect,
$-topics, unsubscribe and subscribe failure. Each runs once per protocol version.

The Rust test `python_interop.rs` starts the broker with its development listener and passes its
address in MQTT_HOST / MQTT_DEV_PORT.
"""

import queue
import socket
import struct
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

HOST = "127.0.0.1"
PORT = 0
TIMEOUT = 10
# The topics and filters of the Paho interoperability tests.
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")


def setup_module():
    import os

    global HOST, PORT
    HOST = os.environ["MQTT_HOST"]
    PORT = int(os.environ["MQTT_DEV_PORT"])


@pytest.fixture(params=[mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def version(request):
    return request.param


def fresh(name):
    """A client ID of its own per test run (sessions of earlier cases stay apart)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Client:
    """A connected paho client collecting what it receives."""

    def __init__(self, version, client_id, clean=True, will=None, keepalive=60, expiry=None):
        self.version = version
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.subacks = queue.Queue()
        self.unsubacks = queue.Queue()
        self.acked = queue.Queue()
        kwargs = {} if version == mqtt.MQTTv5 else {"clean_session": clean}
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=version,
            **kwargs,
        )
        if will:
            self.client.will_set(*will)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        self.client.on_unsubscribe = lambda c, u, mid, codes, props: self.unsubacks.put(codes)
        self.client.on_publish = lambda c, u, mid, code, props: self.acked.put(mid)
        if version == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if clean and expiry is None else (expiry or 300)
            self.client.connect(HOST, PORT, keepalive, clean_start=clean, properties=props)
        else:
            self.client.connect(HOST, PORT, keepalive)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.flags, self.reason, self.connack_props = flags, reason_code, properties
        self.connected.set()

    def subscribe(self, filters, properties=None):
        """Subscribes [(filter, qos)] and returns the SUBACK's reason codes."""
        self.client.subscribe(filters, properties=properties)
        return self.subacks.get(timeout=TIMEOUT)

    def unsubscribe(self, filters):
        self.client.unsubscribe(filters)
        return self.unsubacks.get(timeout=TIMEOUT)

    def publish(self, topic, payload, qos=0, retain=False):
        """Publishes and waits until it is acknowledged (QoS 1/2) or written (QoS 0)."""
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def receive(self, n):
        return [self.messages.get(timeout=TIMEOUT) for _ in range(n)]

    def until(self, payload):
        """Messages up to and including the one with `payload` (a marker)."""
        got = []
        while True:
            msg = self.messages.get(timeout=TIMEOUT)
            got.append(msg)
            if msg.payload == payload:
                return got

    def drop(self):
        """Ends the TCP connection without DISCONNECT (the will fires)."""
        self.client.loop_stop()
        self.client.socket().close()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def marker(sub, topic="TopicA/marker"):
    """Publishes a marker the subscriber receives last: returns what it got before it."""
    payload = uuid.uuid4().hex.encode()
    p = Client(mqtt.MQTTv311, fresh("marker"))
    p.publish(topic, payload, 1)
    p.close()
    return [m for m in sub.until(payload) if m.payload != payload]


def values(codes):
    """SUBACK / UNSUBACK reason codes as numbers."""
    return [int(c.value) for c in codes]


def clear_retained(c):
    for t in TOPICS:
        c.publish(t, b"", 1, retain=True)


def raw_connect(version, client_id, keepalive, clean=True, will=None):
    """A CONNECT written by hand (for what paho does not send): returns the open socket."""

    def s(text):
        b = text.encode() if isinstance(text, str) else text
        return struct.pack("!H", len(b)) + b

    flags = 0x02 if clean else 0
    payload = s(client_id)
    props = b"\x00" if version == mqtt.MQTTv5 else b""
    if will:
        topic, message = will
        flags |= 0x04 | 0x08  # will, QoS 1
        payload += (b"\x00" if version == mqtt.MQTTv5 else b"") + s(topic) + s(message)
    level = 5 if version == mqtt.MQTTv5 else 4
    var = s("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive) + props
    body = var + payload
    assert len(body) < 128
    sock = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    return sock


def test_basic(version):
    c = Client(version, fresh("basic"))
    assert values(c.subscribe([(TOPICS[0], 2)])) == [2]
    for qos in (0, 1, 2):
        c.publish(TOPICS[0], f"qos {qos}".encode(), qos)
    got = c.receive(3)
    assert sorted(m.payload for m in got) == [b"qos 0", b"qos 1", b"qos 2"]
    assert sorted(m.qos for m in got) == [0, 1, 2]
    c.close()


def test_retained_messages(version):
    c = Client(version, fresh("retained"))
    clear_retained(c)
    c.publish(TOPICS[1], b"qos 0", 0, retain=True)
    c.publish(TOPICS[2], b"qos 1", 1, retain=True)
    c.publish(TOPICS[3], b"qos 2", 2, retain=True)
    # The QoS 0 publish is only written: make sure it was handled before subscribing.
    c.publish(TOPICS[0], b"sync", 1)
    c.subscribe([(WILDTOPICS[5], 2)])
    got = marker(c, "TopicA/marker")
    assert sorted(m.payload for m in got) == [b"qos 0", b"qos 1", b"qos 2"]
    assert all(m.retain for m in got)
    c.close()

    c = Client(version, fresh("retained"))
    clear_retained(c)
    c.subscribe([(WILDTOPICS[5], 2)])
    assert marker(c, "TopicA/marker") == [], "retained messages were cleared"
    c.close()


def test_offline_message_queueing(version):
    cid = fresh("offline")
    c = Client(version, cid, clean=False, expiry=300)
    c.subscribe([(WILDTOPICS[5], 2)])
    c.close()
    p = Client(version, fresh("offline-pub"))
    for qos, topic in ((0, TOPICS[1]), (1, TOPICS[2]), (2, TOPICS[3])):
        p.publish(topic, f"qos {qos}".encode(), qos)
    p.close()
    c = Client(version, cid, clean=False, expiry=300)
    assert c.flags.session_present
    got = marker(c, "TopicA/marker")
    # QoS 0 messages may or may not be queued (this broker keeps QoS 1 and 2).
    assert [m.payload for m in got] in ([b"qos 1", b"qos 2"], [b"qos 0", b"qos 1", b"qos 2"])
    c.close()
    Client(version, cid, clean=True).close()


def test_will_message(version):
    sub = Client(version, fresh("will-sub"))
    sub.subscribe([(TOPICS[2], 2)])
    w = Client(version, fresh("will"), will=(TOPICS[2], b"client not disconnected", 2, False), keepalive=2)
    w.drop()
    got = sub.receive(1)
    assert (got[0].topic, got[0].payload) == (TOPICS[2], b"client not disconnected")
    sub.close()


def test_zero_length_client_id(version):
    if version == mqtt.MQTTv5:
        c = Client(version, "")
        assert not c.reason.is_failure
        assert c.connack_props.AssignedClientIdentifier
        c.close()
        return
    c = Client(version, "", clean=True)
    assert not c.reason.is_failure
    c.close()
    # cleanSession=0 without a client ID is refused: paho will not send it, so by hand. The broker
    # answers CONNACK 2 or closes the connection.
    sock = raw_connect(version, "", 60, clean=False)
    answer = sock.recv(4)
    assert answer in (b"", b"\x20\x02\x00\x02"), answer
    sock.close()


def test_overlapping_subscriptions(version):
    c = Client(version, fresh("overlap"))
    if version == mqtt.MQTTv5:
        # One copy, carrying the identifiers of every matching subscription.
        for sub_id, f, qos in ((1, WILDTOPICS[6], 2), (2, WILDTOPICS[0], 1), (3, WILDTOPICS[1], 0)):
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
            c.subscribe([(f, qos)], properties=props)
    else:
        c.subscribe([(WILDTOPICS[6], 2), (WILDTOPICS[0], 1)])
    c.publish(TOPICS[3], b"overlapping topic filters", 2)
    got = marker(c, "TopicA/marker")
    assert len(got) == 1 and got[0].qos == 2, [(m.payload, m.qos) for m in got]
    if version == mqtt.MQTTv5:
        assert sorted(got[0].properties.SubscriptionIdentifier) == [1, 2, 3]
    c.close()


def test_keepalive(version):
    sub = Client(version, fresh("keepalive-sub"))
    sub.subscribe([(TOPICS[4], 2)])
    # CONNECT with keep alive 2 s and a will, then silence (no PINGREQ).
    started = time.monotonic()
    sock = raw_connect(version, fresh("keepalive"), 2, will=(TOPICS[4], b"keepalive expiry"))
    got = sub.receive(1)
    assert got[0].payload == b"keepalive expiry"
    assert time.monotonic() - started >= 2
    sock.close()
    sub.close()


def test_redelivery_on_reconnect(version):
    cid = fresh("redelivery")
    c = Client(version, cid, clean=False, expiry=300)
    c.subscribe([(WILDTOPICS[6], 2)])
    # Paused: nothing it is sent is read, so nothing is acknowledged; then the connection is lost.
    c.client.loop_stop()
    p = Client(version, fresh("redelivery-pub"))
    p.publish(TOPICS[1], b"qos 1", 1)
    p.publish(TOPICS[3], b"qos 2", 2)
    p.close()
    c.drop()
    c = Client(version, cid, clean=False, expiry=300)
    got = c.receive(2)
    assert sorted(m.payload for m in got) == [b"qos 1", b"qos 2"]
    c.close()
    Client(version, cid, clean=True).close()


def test_dollar_topics(version):
    c = Client(version, fresh("dollar"))
    c.subscribe([(WILDTOPICS[5], 2), (WILDTOPICS[2], 2)])
    c.publish("$" + TOPICS[1], b"dollar", 1)
    assert marker(c, "TopicA/marker") == [], "first-level wildcards match no $ topic"
    c.close()


def test_unsubscribe(version):
    c = Client(version, fresh("unsubscribe"))
    c.subscribe([(TOPICS[1], 2), (TOPICS[2], 2), (TOPICS[3], 2)])
    codes = c.unsubscribe([TOPICS[1], TOPICS[2]])
    if version == mqtt.MQTTv5:
        assert values(codes) == [0, 0]
        assert values(c.unsubscribe(["never/subscribed"])) == [0x11]
    for t in TOPICS[1:4]:
        c.publish(t, t.encode(), 1)
    got = marker(c, TOPICS[3])
    assert [m.payload for m in got] == [TOPICS[3].encode()]
    c.close()


def test_subscribe_failure(version):
    # The development listener refuses $SYS filters (the broker's own topics).
    c = Client(version, fresh("subfail"))
    assert values(c.subscribe([("$SYS/#", 1)]))[0] >= 0x80
    # The connection stays usable.
    c.subscribe([(TOPICS[0], 1)])
    c.publish(TOPICS[0], b"still here", 1)
    assert c.receive(1)[0].payload == b"still here"
    c.close()
