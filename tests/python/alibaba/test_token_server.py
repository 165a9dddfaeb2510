"""The legacy token server (`/token/apply`, `/token/revoke`, `/token/query`) with a client written
here from Alibaba's public documentation of it, not from our code:

- parameters are sent as a form; `signature` is Base64(HMAC-SHA1(AccessKeySecret, S)) where S is the
  signed parameters as `key=value`, sorted by key, joined with `&`, unencoded, and the comma-separated
  values of a parameter sorted;
- apply signs actions, expireTime, instanceId, resources and serviceName (`mq`) and also sends
  accessKey and proxyType (`MQTT`); revoke and query sign `token`;
- every answer is JSON {success, message, code, tokenData}: 200 success, 400 bad parameters, 407
  signature refused, 409 token not created, 410 not revoked, 1 forged, 2 expired, 3 revoked.
"""

import base64
import hashlib
import hmac
import json
import urllib.parse
import urllib.request

from conftest import ENV, now_ms

SIGNED_BY = {
    "apply": ["actions", "expireTime", "instanceId", "resources", "serviceName"],
    "revoke": ["token"],
    "query": ["token"],
}


def signature(params, secret, sort_values=True):
    pairs = []
    for key in sorted(params):
        value = params[key]
        if sort_values:
            value = ",".join(sorted(value.split(",")))
        pairs.append(f"{key}={value}")
    digest = hmac.new(secret.encode(), "&".join(pairs).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def call(method, params, ak=ENV.ak, secret=ENV.secret, sort_values=True, sig=None):
    signed = {k: v for k, v in params.items() if k in SIGNED_BY[method]}
    form = {**params, "accessKey": ak, "signature": sig or signature(signed, secret, sort_values)}
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{ENV.url}/token/{method}", data=data)) as res:
        assert res.status == 200
        return json.loads(res.read())


def apply(resources="T/b,T/a/#", actions="W,R", expire_time=None, instance=ENV.instance, **kw):
    params = {
        "actions": actions,
        "resources": resources,
        "expireTime": str(expire_time or now_ms() + 3_600_000),
        "instanceId": instance,
        "serviceName": "mq",
        "proxyType": "MQTT",
    }
    return call("apply", params, **kw)


def test_apply_query_revoke():
    answer = apply()
    assert (answer["success"], answer["code"]) == (True, 200), answer
    token = answer["tokenData"]
    assert token.count(".") == 2
    assert call("query", {"token": token})["code"] == 200
    assert call("revoke", {"token": token}) == {"success": True, "message": "success", "code": 200}
    answer = call("query", {"token": token})
    assert (answer["success"], answer["code"]) == (False, 3)


def test_values_signed_as_sent_are_accepted_too():
    assert apply(sort_values=False)["code"] == 200


def test_refusals():
    assert apply(secret="not-the-secret")["code"] == 407
    assert apply(ak="LTAInotakeyatall000000")["code"] == 407
    assert apply(expire_time=now_ms() + 1000)["code"] == 400
    assert apply(resources="Nope/#")["code"] == 400
    # The key is not bound to that instance: no token.
    assert apply(instance=ENV.other_instance)["code"] == 409
    forged = call("query", {"token": "a.b.c"})
    assert (forged["success"], forged["code"]) == (False, 1)
    assert call("revoke", {"token": "a.b.c"})["code"] == 1
    assert call("query", {"token": "x"}, secret="not-the-secret")["code"] == 407


def test_a_signed_apply_is_accepted_once():
    expire = now_ms() + 600_000
    assert apply(expire_time=expire)["code"] == 200
    replay = apply(expire_time=expire)
    assert (replay["success"], replay["code"]) == (False, 407), replay


def test_a_token_of_another_instance_cannot_be_revoked_with_this_key():
    other = apply(instance=ENV.other_instance, ak=ENV.other_ak, secret=ENV.other_secret)
    assert other["code"] == 200, other
    assert call("revoke", {"token": other["tokenData"]})["code"] == 410
    assert call("query", {"token": other["tokenData"]}, ak=ENV.other_ak, secret=ENV.other_secret)["code"] == 200
