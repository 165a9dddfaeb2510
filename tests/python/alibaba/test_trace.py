"""QueryMqttTraceDevice through the official SDK with each signature: a client's connects, DISCONNECTs and
connection ends in Alibaba's Action / ActionCode / ActionInfo words, oldest first unless Reverse, paged."""

from alibabacloud_onsmqtt20200420 import models as m
from conftest import now_ms, refusal

EXPECTED = [
    ("connect", "accepted", "ch-t1"),
    ("disconnect", "disconnected by client", "ch-t1"),
    ("close", "disconnected by client", "ch-t1"),
    ("close", "not authorized", "ch-t2"),
    ("connect", "accepted", "ch-t3"),
    ("close", "no heart", "ch-t3"),
    ("close", "closed by client", "ch-t4"),
]


def query(sdk, env, **kw):
    args = dict(instance_id=env.instance, client_id=env.traced_client, begin_time=env.trace_begin_ms,
                end_time=now_ms(), current_page=1, page_size=100, mqtt_region_id="cn-hangzhou")
    args.update(kw)
    return sdk.query_mqtt_trace_device(m.QueryMqttTraceDeviceRequest(**args)).body


def test_device_trace_in_alibabas_words(sdk, env):
    body = query(sdk, env)
    assert (body.total, body.current_page, body.page_size) == (7, 1, 100)
    got = [(d.action, d.action_info, d.channel_id) for d in body.device_info_list]
    assert got == EXPECTED
    assert all(d.action_code == f"mqtt.trace.action.{d.action}" for d in body.device_info_list)
    first = body.device_info_list[0].time
    assert len(first) == 23 and first[4] == "-" and first[10] == " " and first[19] == ".", first

    newest_first = query(sdk, env, reverse=True, page_size=2)
    assert [d.channel_id for d in newest_first.device_info_list] == ["ch-t4", "ch-t3"]
    assert newest_first.total == 7
    page_two = query(sdk, env, current_page=2, page_size=3)
    assert [(d.action, d.action_info, d.channel_id) for d in page_two.device_info_list] == EXPECTED[3:6]
    # The time range: from the fifth event on.
    later = query(sdk, env, begin_time=env.trace_begin_ms + 4000)
    assert [d.channel_id for d in later.device_info_list] == ["ch-t3", "ch-t3", "ch-t4"]


def test_device_trace_refusals(sdk, env):
    e = refusal(lambda: query(sdk, env, page_size=101))
    assert e.code == "InvalidParameter.PageSize"
    e = refusal(lambda: query(sdk, env, current_page=0))
    assert e.code == "InvalidParameter.CurrentPage"
    e = refusal(lambda: sdk.query_mqtt_trace_device(m.QueryMqttTraceDeviceRequest(
        instance_id=env.instance, client_id=env.traced_client, current_page=1, page_size=10)))
    assert e.code == "InvalidParameter.BeginTime"
    e = refusal(lambda: query(sdk, env, instance_id=env.other_instance))
    assert e.code == "InstancePermissionCheckFailed"
