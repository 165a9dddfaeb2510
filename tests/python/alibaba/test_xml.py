"""`Format=XML`: answers and errors in XML, for tools that ask for it. The request is signed with the
SDK's own v1 signer (`Utils.get_rpcsignature`) and sent as a plain GET."""

import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from alibabacloud_tea_openapi.utils import Utils

from conftest import ENV, now_ms


def signed_get(action, secret=ENV.secret, **params):
    query = {
        "Action": action,
        "Version": "2020-04-20",
        "Format": "XML",
        "AccessKeyId": ENV.ak,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": Utils.get_nonce(),
        "Timestamp": Utils.get_timestamp(),
        **params,
    }
    query["Signature"] = Utils.get_rpcsignature(query, "GET", secret)
    url = f"{ENV.url}/?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url) as res:
            return res.status, res.headers["content-type"], ET.fromstring(res.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], ET.fromstring(e.read())


def test_success_in_xml():
    status, ctype, root = signed_get(
        "ApplyToken", InstanceId=ENV.instance, Resources="T/#", Actions="R", ExpireTime=str(now_ms() + 120_000)
    )
    assert (status, root.tag) == (200, "ApplyTokenResponse"), ET.tostring(root)
    assert ctype.startswith("application/xml")
    assert root.findtext("RequestId") and root.findtext("Token").count(".") == 2


def test_lists_repeat_their_element():
    status, _, root = signed_get(
        "BatchQuerySessionByClientIds",
        InstanceId=ENV.instance,
        **{"ClientIdList.1": ENV.online_client, "ClientIdList.2": "GID_sdk@@@away"},
    )
    assert status == 200, ET.tostring(root)
    items = root.findall("OnlineStatusList")
    assert [(i.findtext("ClientId"), i.findtext("OnlineStatus")) for i in items] == [
        (ENV.online_client, "true"),
        ("GID_sdk@@@away", "false"),
    ]


def test_error_in_xml():
    status, ctype, root = signed_get("ListInstances", secret="not-the-secret")
    assert (status, root.tag) == (400, "Error")
    assert ctype.startswith("application/xml")
    assert root.findtext("Code") == "SignatureDoesNotMatch"
    assert root.findtext("RequestId") and root.findtext("HostId") == ENV.host and root.findtext("Message")
