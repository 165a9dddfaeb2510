"""Set-up shared by the tests of Alibaba's API dialect (the RPC actions at `/` and the legacy token
server). They need a running control plane: the Rust test `alibaba::official_sdk_and_legacy_token_server`
(`cargo nextest run -p control-plane alibaba`) starts one on a fresh database, creates two instances
(each with parent topic `T` and group `GID_sdk`), an AccessKey bound to each, reports the client
`GID_sdk@@@online` of the first as connected, reports a history of seven events of `GID_sdk@@@traced`
(a clean session, a refused CONNECT, a keep-alive timeout, a close without reason) one second apart from
`CP_TRACE_BEGIN_MS`, and runs pytest here with the variables below.
"""

import os
import time
import urllib.parse
from dataclasses import dataclass

import pytest
from alibabacloud_onsmqtt20200420.client import Client as OnsMqttClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils

VARIABLES = [
    "CP_URL",
    "CP_INSTANCE_ID",
    "CP_OTHER_INSTANCE_ID",
    "CP_ACCESS_KEY_ID",
    "CP_ACCESS_KEY_SECRET",
    "CP_OTHER_ACCESS_KEY_ID",
    "CP_OTHER_ACCESS_KEY_SECRET",
    "CP_ONLINE_CLIENT_ID",
    "CP_TRACED_CLIENT_ID",
    "CP_TRACE_BEGIN_MS",
]
_missing = [v for v in VARIABLES if v not in os.environ]
if _missing:
    raise pytest.UsageError(
        "these tests need a running control plane: run them with "
        "`cargo nextest run -p control-plane alibaba` (missing " + ", ".join(_missing) + ")"
    )


@dataclass(frozen=True)
class Env:
    url: str
    host: str
    instance: str
    other_instance: str
    ak: str
    secret: str
    other_ak: str
    other_secret: str
    online_client: str
    traced_client: str
    trace_begin_ms: int


ENV = Env(
    url=os.environ["CP_URL"],
    host=urllib.parse.urlparse(os.environ["CP_URL"]).netloc,
    instance=os.environ["CP_INSTANCE_ID"],
    other_instance=os.environ["CP_OTHER_INSTANCE_ID"],
    ak=os.environ["CP_ACCESS_KEY_ID"],
    secret=os.environ["CP_ACCESS_KEY_SECRET"],
    other_ak=os.environ["CP_OTHER_ACCESS_KEY_ID"],
    other_secret=os.environ["CP_OTHER_ACCESS_KEY_SECRET"],
    online_client=os.environ["CP_ONLINE_CLIENT_ID"],
    traced_client=os.environ["CP_TRACED_CLIENT_ID"],
    trace_begin_ms=int(os.environ["CP_TRACE_BEGIN_MS"]),
)

# The two signatures of the official SDK: its default (ACS3-HMAC-SHA256) and `signature_algorithm='v2'`,
# which is the v1 RPC signature (HMAC-SHA1 over the sorted parameters).
SIGNERS = {"acs3": None, "v1": "v2"}


def sdk_client(ak=None, secret=None, signer="acs3"):
    """The official OnsMqtt 2020-04-20 client pointed at our control plane: only endpoint and keys change."""
    config = open_api_models.Config(
        access_key_id=ak or ENV.ak,
        access_key_secret=secret or ENV.secret,
        endpoint=ENV.host,
        protocol="http",
    )
    if SIGNERS[signer]:
        config.signature_algorithm = SIGNERS[signer]
    return OnsMqttClient(config)


@pytest.fixture
def env():
    return ENV


@pytest.fixture(params=sorted(SIGNERS))
def signer(request):
    return request.param


# What each signer calls in the SDK to sign (alibabacloud_tea_openapi.utils.Utils).
SIGNING_FUNCTION = {"acs3": "get_authorization", "v1": "get_rpcsignature"}


@pytest.fixture
def sdk(signer, monkeypatch):
    """The SDK client with this signer; the test fails unless the SDK really signed that way."""
    calls = []
    name = SIGNING_FUNCTION[signer]
    real = getattr(Utils, name)

    def spy(*args):
        calls.append(name)
        return real(*args)

    monkeypatch.setattr(Utils, name, staticmethod(spy))
    yield sdk_client(signer=signer)
    assert calls, f"the SDK did not sign with {name}"


def now_ms():
    return int(time.time() * 1000)


def refusal(call):
    """Runs `call`, which must fail with the SDK's exception for an error answer; returns it."""
    with pytest.raises(Exception) as info:
        call()
    e = info.value
    assert getattr(e, "code", None), f"not an API error: {e!r}"
    assert e.data["RequestId"] and e.data["HostId"] == ENV.host, e.data
    assert e.data["Code"] == e.code and e.data["Message"], e.data
    return e
