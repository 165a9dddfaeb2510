"""What the dialect refuses, as the official SDK sees it: a wrong secret, an unknown AccessKey, a
replayed nonce, a stale timestamp, an instance the key is not bound to, and every action of the SDK
that is not supported here (compared with docs/alibaba-compat.md)."""

import datetime
import re
from pathlib import Path

import pytest
from alibabacloud_onsmqtt20200420 import models as m
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils
from darabonba.runtime import RuntimeOptions

from conftest import ENV, refusal, sdk_client

ROOT = Path(__file__).resolve().parents[3]


def query_token(client, instance=None):
    return client.query_token(m.QueryTokenRequest(instance_id=instance or ENV.instance, token="x"))


def test_wrong_secret(signer):
    e = refusal(lambda: query_token(sdk_client(secret="not-the-secret", signer=signer)))
    assert (e.status_code, e.code) == (400, "SignatureDoesNotMatch")


def test_unknown_access_key(signer):
    e = refusal(lambda: query_token(sdk_client(ak="LTAInotakeyatall000000", signer=signer)))
    assert (e.status_code, e.code) == (404, "InvalidAccessKeyId.NotFound")


def test_instance_the_key_is_not_bound_to(sdk):
    for instance in [ENV.other_instance, "mqtt-doesnotexist0"]:
        e = refusal(lambda: query_token(sdk, instance))
        assert (e.status_code, e.code) == (400, "InstancePermissionCheckFailed")
    e = refusal(lambda: sdk.apply_token(
        m.ApplyTokenRequest(instance_id=ENV.other_instance, resources="T/#", actions="R", expire_time=1)
    ))
    assert e.code == "InstancePermissionCheckFailed"


def test_a_nonce_is_accepted_once(sdk, signer, monkeypatch):
    nonce = f"replayed-nonce-{signer}"
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: nonce))
    assert query_token(sdk).body.token_status is False
    e = refusal(lambda: query_token(sdk))
    assert (e.status_code, e.code) == (400, "SignatureNonceUsed")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_a_stale_timestamp_is_refused(sdk, monkeypatch, minutes):
    """20 minutes off is outside both windows (15 minutes for v1, the configured 5 for ACS3)."""
    stale = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: stale.strftime("%Y-%m-%dT%H:%M:%SZ")))
    e = refusal(lambda: query_token(sdk))
    assert (e.status_code, e.code) == (400, "InvalidTimeStamp.Expired")


def sdk_actions():
    """Every action the official SDK's client can call (its `action='...'` parameters)."""
    import alibabacloud_onsmqtt20200420.client as client_module

    return sorted(set(re.findall(r"action='(\w+)'", Path(client_module.__file__).read_text())))


def documented_status():
    """Action -> status word from the table of the section "Actions" of docs/alibaba-compat.md."""
    text = (ROOT / "docs/alibaba-compat.md").read_text()
    section = text.split("\n## Actions\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", section, re.M))


def call_action(action, signer):
    client = sdk_client(signer=signer)
    params = open_api_models.Params(
        action=action, version="2020-04-20", protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    request = open_api_models.OpenApiRequest(query={"InstanceId": ENV.instance})
    return client.call_api(params, request, RuntimeOptions())


def test_every_sdk_action_is_documented_and_answers_as_documented(signer):
    actions = sdk_actions()
    assert len(actions) >= 50, actions
    documented = documented_status()
    assert sorted(documented) == actions, "docs/alibaba-compat.md must list exactly the SDK's actions"
    for action in actions:
        status = documented[action]
        assert status in {"supported", "differs", "unsupported"}, (action, status)
        if status == "unsupported":
            e = refusal(lambda: call_action(action, signer))
            assert (e.status_code, e.code) == (404, "ApiNotSupport"), action
            prefix = "The specified API is not supported: "
            why = e.data["Message"].removeprefix(prefix)
            assert e.data["Message"].startswith(prefix) and len(why) > 20, (action, e.data)


def test_unknown_action_and_wrong_version():
    e = refusal(lambda: call_action("NoSuchAction", "v1"))
    assert (e.status_code, e.code) == (404, "InvalidAction.NotFound")
    client = sdk_client()
    params = open_api_models.Params(
        action="ListInstances", version="2019-01-01", protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    e = refusal(lambda: client.call_api(params, open_api_models.OpenApiRequest(), RuntimeOptions()))
    assert (e.status_code, e.code) == (400, "InvalidVersion")
