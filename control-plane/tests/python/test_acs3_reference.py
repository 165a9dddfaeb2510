"""Our ACS3-HMAC-SHA256 verification against Alibaba's reference signer (PyPI alibabacloud-tea-openapi).

Run by the Rust integration test `python::reference_signer_is_accepted`, which starts the control
plane and passes CP_URL, CP_INSTANCE_ID, CP_ACCESS_KEY_ID and CP_ACCESS_KEY_SECRET.
"""

import hashlib
import json
import os
import types
import urllib.error
import urllib.parse
import urllib.request

from alibabacloud_tea_openapi.client import Client
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi import utils_models as open_api_models
from darabonba.runtime import RuntimeOptions

URL = os.environ["CP_URL"]
INSTANCE = os.environ["CP_INSTANCE_ID"]
AK_ID = os.environ["CP_ACCESS_KEY_ID"]
AK_SECRET = os.environ["CP_ACCESS_KEY_SECRET"]
HOST = urllib.parse.urlparse(URL).netloc


def signed(method, pathname, query=None, body=None, secret=AK_SECRET, nonce=None):
    """Signs with the SDK's own helpers (`Utils.get_authorization`) and sends with urllib."""
    payload = json.dumps(body).encode() if body is not None else b""
    headers = {
        "host": HOST,
        "x-acs-date": Utils.get_timestamp(),
        "x-acs-signature-nonce": nonce or Utils.get_nonce(),
        "x-acs-content-sha256": hashlib.sha256(payload).hexdigest(),
        "x-acs-action": "Test",
        "x-acs-version": "2020-04-20",
        "accept": "application/json",
    }
    if body is not None:
        headers["content-type"] = "application/json; charset=utf-8"
    request = types.SimpleNamespace(method=method, pathname=pathname, query=query or {}, headers=headers)
    headers["Authorization"] = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], AK_ID, secret
    )
    url = URL + pathname + ("?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else "")
    req = urllib.request.Request(url, data=payload if body is not None else None, method=method)
    for k, v in headers.items():
        if k != "host":
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as res:
            text = res.read().decode()
            return res.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def test_reference_signer_get_and_post():
    status, body = signed("GET", f"/api/v1/instances/{INSTANCE}/topics")
    assert status == 200, body
    assert [t["topic"] for t in body["topics"]] == ["T"]
    status, body = signed("POST", f"/api/v1/instances/{INSTANCE}/groups", body={"groupId": "GID_python"})
    assert status == 201, body


def test_reference_signer_with_query_string():
    query = {"groupId": "GID_python", "pageSize": "10", "pageNo": "1"}
    status, body = signed("GET", f"/api/v1/instances/{INSTANCE}/device-credentials", query=query)
    assert status == 200, body
    assert body["total"] == 0


def test_wrong_secret_and_replay_are_refused():
    status, body = signed("GET", f"/api/v1/instances/{INSTANCE}/topics", secret="wrong")
    assert status == 401 and body["code"] == "SignatureDoesNotMatch", body
    nonce = Utils.get_nonce()
    assert signed("GET", f"/api/v1/instances/{INSTANCE}/topics", nonce=nonce)[0] == 200
    status, body = signed("GET", f"/api/v1/instances/{INSTANCE}/topics", nonce=nonce)
    assert status == 401 and body["code"] == "NonceReplayed", body


def test_official_sdk_client_applies_a_token():
    """The SDK's generic client (endpoint override, ROA style) calls ApplyToken end to end."""
    config = open_api_models.Config(
        access_key_id=AK_ID, access_key_secret=AK_SECRET, endpoint=HOST, protocol="http"
    )
    client = Client(config)
    params = open_api_models.Params(
        action="ApplyToken",
        version="2020-04-20",
        protocol="HTTP",
        pathname=f"/api/v1/instances/{INSTANCE}/tokens",
        method="POST",
        auth_type="AK",
        style="ROA",
        req_body_type="json",
        body_type="json",
    )
    import time

    expire = int(time.time() * 1000) + 3_600_000
    request = open_api_models.OpenApiRequest(body={"resources": "T/#", "actions": "R", "expireTime": expire})
    result = client.call_api(params, request, RuntimeOptions())
    assert result["statusCode"] == 200, result
    assert result["body"]["expireTime"] == expire
    assert result["body"]["token"].count(".") == 2
