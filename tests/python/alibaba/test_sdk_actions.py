"""Every supported action through the official SDK `alibabacloud-onsmqtt20200420`, once with each
signature (ACS3-HMAC-SHA256 and the v1 HMAC-SHA1 RPC signature): parameters and answers are the SDK's
own models, so a field we name differently from Alibaba shows up here as a None."""

import re

from alibabacloud_onsmqtt20200420 import models as m
from conftest import now_ms, refusal, sdk_client


def test_apply_query_and_revoke_a_token(sdk, env):
    expire = now_ms() + 3_600_000
    applied = sdk.apply_token(
        m.ApplyTokenRequest(instance_id=env.instance, resources="T/#,T/a/+", actions="R,W", expire_time=expire)
    )
    assert applied.status_code == 200
    token = applied.body.token
    assert token and applied.body.request_id
    query = m.QueryTokenRequest(instance_id=env.instance, token=token)
    assert sdk.query_token(query).body.token_status is True
    revoked = sdk.revoke_token(m.RevokeTokenRequest(instance_id=env.instance, token=token))
    assert revoked.body.request_id
    assert sdk.query_token(query).body.token_status is False
    # A token of nonsense is not valid either.
    assert sdk.query_token(m.QueryTokenRequest(instance_id=env.instance, token="x.y.z")).body.token_status is False


def test_apply_token_validation_is_the_rest_apis(sdk, env):
    e = refusal(lambda: sdk.apply_token(
        m.ApplyTokenRequest(instance_id=env.instance, resources="T/#", actions="R", expire_time=now_ms() + 1000)
    ))
    assert (e.status_code, e.code) == (400, "InvalidParameter.ExpireTime")
    e = refusal(lambda: sdk.apply_token(
        m.ApplyTokenRequest(instance_id=env.instance, resources="Nope/#", actions="R", expire_time=now_ms() + 120_000)
    ))
    assert e.code == "InvalidParameter.Resources"
    e = refusal(lambda: sdk.apply_token(m.ApplyTokenRequest(instance_id=env.instance, actions="R", expire_time=1)))
    assert e.code == "InvalidParameter.Resources"
    e = refusal(lambda: sdk.revoke_token(m.RevokeTokenRequest(instance_id=env.instance, token="unknown")))
    assert e.code == "InvalidParameter.Token"


def test_group_ids(sdk, signer, env):
    group = f"GID_{signer}_group"
    assert sdk.create_group_id(m.CreateGroupIdRequest(instance_id=env.instance, group_id=group)).body.request_id
    e = refusal(lambda: sdk.create_group_id(m.CreateGroupIdRequest(instance_id=env.instance, group_id=group)))
    assert (e.status_code, e.code) == (400, "GroupIdAlreadyExsited")
    e = refusal(lambda: sdk.create_group_id(m.CreateGroupIdRequest(instance_id=env.instance, group_id="bad")))
    assert e.code == "InvalidParameter.GroupId"

    listed = sdk.list_group_id(m.ListGroupIdRequest(instance_id=env.instance)).body
    by_name = {g.group_id: g for g in listed.data}
    assert {"GID_sdk", group} <= set(by_name)
    g = by_name[group]
    assert g.instance_id == env.instance and g.independent_naming is True and g.tags == []
    assert abs(g.create_time - now_ms()) < 60_000 and g.update_time >= g.create_time
    # Nothing has tags here: a tag filter matches nothing.
    tagged = m.ListGroupIdRequest(instance_id=env.instance, tags='[{"key":"k","value":"v"}]')
    assert sdk.list_group_id(tagged).body.data == []

    assert sdk.delete_group_id(m.DeleteGroupIdRequest(instance_id=env.instance, group_id=group)).body.request_id
    e = refusal(lambda: sdk.delete_group_id(m.DeleteGroupIdRequest(instance_id=env.instance, group_id=group)))
    assert e.code == "InvalidParameter.GroupId"


def test_device_credentials(sdk, signer, env):
    client_id = f"GID_sdk@@@{signer}-device"
    first = sdk.register_device_credential(
        m.RegisterDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ).body.device_credential
    assert first.client_id == client_id and first.instance_id == env.instance
    assert first.device_access_key_id.startswith("DC.") and first.device_access_key_secret.startswith("DC.")
    assert abs(first.create_time - now_ms()) < 60_000 and first.update_time >= first.create_time

    # Registering again replaces the credential (Alibaba: the one returned last is valid).
    second = sdk.register_device_credential(
        m.RegisterDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ).body.device_credential
    assert second.device_access_key_id != first.device_access_key_id
    got = sdk.get_device_credential(
        m.GetDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ).body.device_credential
    assert (got.device_access_key_id, got.device_access_key_secret) == (
        second.device_access_key_id,
        second.device_access_key_secret,
    )

    refreshed = sdk.refresh_device_credential(
        m.RefreshDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ).body.device_credential
    assert refreshed.device_access_key_id == second.device_access_key_id
    assert refreshed.device_access_key_secret != second.device_access_key_secret

    e = refusal(lambda: sdk.register_device_credential(
        m.RegisterDeviceCredentialRequest(instance_id=env.instance, client_id="GID_nope@@@x")
    ))
    assert e.code == "InvalidParameter.ClientId"

    assert sdk.un_register_device_credential(
        m.UnRegisterDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ).body.request_id
    e = refusal(lambda: sdk.get_device_credential(
        m.GetDeviceCredentialRequest(instance_id=env.instance, client_id=client_id)
    ))
    assert (e.status_code, e.code) == (400, "InvalidParameter.ClientId")


def test_list_device_credential_client_ids_pages_with_next_token(sdk, signer, env):
    group = f"GID_{signer}_list"
    sdk.create_group_id(m.CreateGroupIdRequest(instance_id=env.instance, group_id=group))
    expected = [f"{group}@@@d{i}" for i in range(3)]
    for client_id in expected:
        sdk.register_device_credential(m.RegisterDeviceCredentialRequest(instance_id=env.instance, client_id=client_id))

    seen, token, pages = [], None, 0
    while True:
        request = m.ListDeviceCredentialClientIdRequest(
            instance_id=env.instance, group_id=group, page_size="2", next_token=token
        )
        page = sdk.list_device_credential_client_id(request).body.device_credential_client_id_list
        pages += 1
        assert (page.page_size, page.total) == ("2", "3")
        assert page.page_no == str(pages)
        seen += page.client_id_list
        token = page.next_token
        if not token:
            break
    assert (seen, pages) == (expected, 2)
    second = sdk.list_device_credential_client_id(
        m.ListDeviceCredentialClientIdRequest(instance_id=env.instance, group_id=group, page_no="2", page_size="2")
    ).body.device_credential_client_id_list
    assert second.client_id_list == expected[2:] and second.next_token is None
    e = refusal(lambda: sdk.list_device_credential_client_id(
        m.ListDeviceCredentialClientIdRequest(instance_id=env.instance, group_id=group, page_size="500")
    ))
    assert e.code == "InvalidParameter.PageSize"
    sdk.delete_group_id(m.DeleteGroupIdRequest(instance_id=env.instance, group_id=group))


def test_sessions(sdk, env):
    online = sdk.query_session_by_client_id(
        m.QuerySessionByClientIdRequest(instance_id=env.instance, client_id=env.online_client)
    ).body
    assert online.online_status is True and online.request_id
    offline = sdk.query_session_by_client_id(
        m.QuerySessionByClientIdRequest(instance_id=env.instance, client_id="GID_sdk@@@away")
    ).body
    assert offline.online_status is False

    batch = sdk.batch_query_session_by_client_ids(
        m.BatchQuerySessionByClientIdsRequest(
            instance_id=env.instance, client_id_list=["GID_sdk@@@away", env.online_client]
        )
    ).body.online_status_list
    assert [(s.client_id, s.online_status) for s in batch] == [("GID_sdk@@@away", False), (env.online_client, True)]
    e = refusal(lambda: sdk.batch_query_session_by_client_ids(
        m.BatchQuerySessionByClientIdsRequest(instance_id=env.instance, client_id_list=[f"GID_sdk@@@{i}" for i in range(11)])
    ))
    assert e.code == "InvalidParameter.ClientIdList"


def test_close_connection(sdk, env):
    closed = sdk.close_connection(m.CloseConnectionRequest(instance_id=env.instance, client_id=env.online_client)).body
    assert (closed.code, closed.success, closed.message) == (200, True, "operation success.")
    e = refusal(lambda: sdk.close_connection(m.CloseConnectionRequest(instance_id=env.instance, client_id="GID_sdk@@@away")))
    assert e.code == "InvalidParameter.ClientId"


def test_send_message(sdk, env):
    # Spaces, '+', '&', '=', '*', '~', '/' and non-ASCII text, signed and sent as the SDK does.
    payload = "hello world + 1&2=3 *~/ ünïcödé"
    sent = sdk.send_message(m.SendMessageRequest(instance_id=env.instance, mqtt_topic="T/p2p/GID_sdk@@@x", payload=payload))
    assert re.fullmatch(r"[0-9A-F]{32}", sent.body.msg_id), sent.body.msg_id
    e = refusal(lambda: sdk.send_message(m.SendMessageRequest(instance_id=env.instance, mqtt_topic="T/#", payload="x")))
    assert e.code == "InvalidParameter.MqttTopic"


def test_list_instances_shows_the_bound_instances_only(sdk, env):
    body = sdk.list_instances(m.ListInstancesRequest()).body
    assert (body.code, body.success, body.message) == ("200", "true", "operation success.")
    assert [i.instance_id for i in body.instances] == [env.instance]
    instance = body.instances[0]
    assert instance.instance_name == "alibaba" and instance.instance_status == 5 and instance.mqtt_tags == []
    assert instance.create_time > 0
    other = sdk_client(env.other_ak, env.other_secret, signer="acs3").list_instances(m.ListInstancesRequest()).body
    assert [i.instance_id for i in other.instances] == [env.other_instance]
