"""Alibaba's message-trace actions through the official SDK (both signatures) on records real brokers
wrote: QueryMqttTraceMessagePublish, QueryMqttTraceMessageSubscribe and QueryMqttTraceMessageOfClient.
Run by the Rust test `message_trace::a_message_is_traced_from_its_publisher_to_every_receiver_on_every_broker`
(tests/e2e), which publishes the message and passes the variables below."""

import os
import time
import urllib.parse

import pytest
from alibabacloud_onsmqtt20200420 import models as m
from alibabacloud_onsmqtt20200420.client import Client
from alibabacloud_tea_openapi import models as open_api_models

VARIABLES = ["CP_URL", "CP_INSTANCE_ID", "CP_ACCESS_KEY_ID", "CP_ACCESS_KEY_SECRET", "TRACE_MSG_ID",
             "TRACE_PUBLISHER", "TRACE_LIVE", "TRACE_AWAY"]
_missing = [v for v in VARIABLES if v not in os.environ]
if _missing:
    raise pytest.UsageError("run through `cargo nextest run -p e2e message_trace` (missing " + ", ".join(_missing) + ")")

ENV = {v: os.environ[v] for v in VARIABLES}


@pytest.fixture(params=["acs3", "v1"])
def sdk(request):
    config = open_api_models.Config(
        access_key_id=ENV["CP_ACCESS_KEY_ID"], access_key_secret=ENV["CP_ACCESS_KEY_SECRET"],
        endpoint=urllib.parse.urlparse(ENV["CP_URL"]).netloc, protocol="http")
    if request.param == "v1":
        config.signature_algorithm = "v2"
    return Client(config)


def span():
    now = int(time.time() * 1000)
    return dict(instance_id=ENV["CP_INSTANCE_ID"], begin_time=now - 600_000, end_time=now + 1000,
                mqtt_region_id="cn-hangzhou")


def test_publish(sdk):
    body = sdk.query_mqtt_trace_message_publish(m.QueryMqttTraceMessagePublishRequest(
        msg_id=ENV["TRACE_MSG_ID"], **span())).body
    assert body.request_id
    [pub] = body.message_trace_lists
    assert (pub.action, pub.action_code, pub.action_info) == (
        "pub_mqtt", "mqtt.trace.action.msg.pub.mqtt", "Pub From Mqtt Client")
    assert (pub.client_id, pub.msg_id) == (ENV["TRACE_PUBLISHER"], ENV["TRACE_MSG_ID"])
    assert len(pub.time) == 23, pub.time


def test_subscribe(sdk):
    body = sdk.query_mqtt_trace_message_subscribe(m.QueryMqttTraceMessageSubscribeRequest(
        msg_id=ENV["TRACE_MSG_ID"], current_page=1, page_size=10, **span())).body
    assert (body.total, body.current_page, body.page_size) == (2, 1, 10)
    got = sorted((t.action, t.action_code, t.action_info, t.client_id) for t in body.message_trace_lists)
    assert got == [
        ("push_offline", "mqtt.trace.action.msg.push.offline", "Push Offline Msg To Mqtt Client", ENV["TRACE_AWAY"]),
        ("sub", "mqtt.trace.action.msg.sub", "Push To Mqtt Client", ENV["TRACE_LIVE"]),
    ]
    one = sdk.query_mqtt_trace_message_subscribe(m.QueryMqttTraceMessageSubscribeRequest(
        msg_id=ENV["TRACE_MSG_ID"], client_id=ENV["TRACE_LIVE"], current_page=1, page_size=10, **span())).body
    assert [t.client_id for t in one.message_trace_lists] == [ENV["TRACE_LIVE"]]


def test_of_client(sdk):
    body = sdk.query_mqtt_trace_message_of_client(m.QueryMqttTraceMessageOfClientRequest(
        client_id=ENV["TRACE_AWAY"], current_page=1, page_size=10, reverse=True, **span())).body
    assert body.total >= 1
    first = body.message_of_client_list[-1]
    assert (first.action, first.msg_id) == ("push_offline", ENV["TRACE_MSG_ID"])


def test_refusals(sdk):
    from alibabacloud_tea_openapi.exceptions import ClientException  # noqa: F401 (the SDK's error type)
    with pytest.raises(Exception) as info:
        sdk.query_mqtt_trace_message_publish(m.QueryMqttTraceMessagePublishRequest(msg_id="nothex", **span()))
    assert info.value.code == "InvalidParameter.MsgId"
    with pytest.raises(Exception) as info:
        sdk.query_mqtt_trace_message_of_client(m.QueryMqttTraceMessageOfClientRequest(
            client_id=ENV["TRACE_AWAY"], current_page=1, page_size=101, **span()))
    assert info.value.code == "InvalidParameter.PageSize"
