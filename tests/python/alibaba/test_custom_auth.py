"""Custom authentication through the official SDK, with each signature: identities, permissions and the
connect blacklist (Add/Update/Delete/Query...). Connecting with these identities is tested with real
MQTT clients against a broker in `tests/e2e/custom_auth.rs`."""

from alibabacloud_onsmqtt20200420 import models as m
from conftest import refusal, sdk_client


def ok(answer):
    body = answer.body
    assert answer.status_code == 200 and body.request_id, body
    assert (body.code, body.success) == (200, True), body
    return body


def test_identities(sdk, signer, env):
    user = f"fleet-{signer}"
    client = f"pump-{signer}"
    ok(sdk.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.instance, username=user, secret="s3cret", identity_type="USER", sign_mode="ORIGIN")))
    ok(sdk.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.instance, username=client, secret="k", identity_type="CLIENT", client_id=f"dev-{signer}",
        sign_mode="SIGNED")))

    # Usernames are unique across the service: another instance cannot take one.
    other = sdk_client(env.other_ak, env.other_secret, signer)
    e = refusal(lambda: other.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.other_instance, username=user, secret="x", identity_type="USER", sign_mode="ORIGIN")))
    assert (e.status_code, e.code) == (400, "ParameterCheckFailed")
    e = refusal(lambda: sdk.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.instance, username="no-client", secret="x", identity_type="CLIENT", sign_mode="ORIGIN")))
    assert e.code == "InvalidParameter.ClientId"
    e = refusal(lambda: sdk.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.instance, username="bad-mode", secret="x", identity_type="USER", sign_mode="PLAIN")))
    assert e.code == "InvalidParameter.SignMode"
    e = refusal(lambda: sdk.add_custom_auth_identity(m.AddCustomAuthIdentityRequest(
        instance_id=env.instance, username="a|b", secret="x", identity_type="USER", sign_mode="ORIGIN")))
    assert e.code == "InvalidParameter.Username"

    found = ok(sdk.query_custom_auth_identity(m.QueryCustomAuthIdentityRequest(
        instance_id=env.instance, username=client, size=10))).data.results
    assert len(found) == 1
    r = found[0]
    assert (r.username, r.identity_type, r.client_id, r.sign_mode) == (client, "CLIENT", f"dev-{signer}", "SIGNED")
    assert r.secret is None, "secrets are never returned"

    ok(sdk.update_custom_auth_identity(m.UpdateCustomAuthIdentityRequest(
        instance_id=env.instance, username=user, secret="new", identity_type="USER", sign_mode="SIGNED")))
    by_type = ok(sdk.query_custom_auth_identity(m.QueryCustomAuthIdentityRequest(
        instance_id=env.instance, identity_type="USER", size=100))).data.results
    assert {i.username: i.sign_mode for i in by_type}[user] == "SIGNED"

    # Paging: one per page, NextToken until the end.
    seen, token = [], None
    while True:
        page = ok(sdk.query_custom_auth_identity(m.QueryCustomAuthIdentityRequest(
            instance_id=env.instance, size=1, next_token=token))).data
        seen += [i.username for i in page.results]
        token = page.next_token
        if not token:
            break
    assert {user, client} <= set(seen) and len(seen) == len(set(seen))

    ok(sdk.delete_custom_auth_identity(m.DeleteCustomAuthIdentityRequest(
        instance_id=env.instance, username=client, identity_type="CLIENT", client_id=f"dev-{signer}")))
    e = refusal(lambda: sdk.delete_custom_auth_identity(m.DeleteCustomAuthIdentityRequest(
        instance_id=env.instance, username=client, identity_type="CLIENT")))
    assert e.code == "InvalidParameter.Username"
    e = refusal(lambda: sdk.update_custom_auth_identity(m.UpdateCustomAuthIdentityRequest(
        instance_id=env.instance, username=client, secret="x", identity_type="USER", sign_mode="ORIGIN")))
    assert e.code == "InvalidParameter.Username"


def test_permissions(sdk, signer, env):
    who = f"perm-{signer}"

    def permission(topic, action="PUB_SUB", effect="ALLOW", identity_type="USER"):
        return dict(instance_id=env.instance, identity=who, identity_type=identity_type, topic=topic,
                    permit_action=action, effect=effect)

    ok(sdk.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(**permission("T/#"))))
    ok(sdk.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(**permission("T/secret/+", "SUB", "DENY"))))
    e = refusal(lambda: sdk.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(**permission("T/#"))))
    assert e.code == "ParameterCheckFailed"
    e = refusal(lambda: sdk.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(**permission("T/#/x"))))
    assert e.code == "InvalidParameter.Topic"
    e = refusal(lambda: sdk.add_custom_auth_permission(m.AddCustomAuthPermissionRequest(**permission("T/y", "ALL"))))
    assert e.code == "InvalidParameter.PermitAction"

    ok(sdk.update_custom_auth_permission(m.UpdateCustomAuthPermissionRequest(**permission("T/#", "PUB"))))
    listed = ok(sdk.query_custom_auth_permission(m.QueryCustomAuthPermissionRequest(
        instance_id=env.instance, identity=who, identity_type="USER", size=100))).data.results
    assert sorted((p.topic, p.permit_action, p.effect, p.identity_type) for p in listed) == [
        ("T/#", "PUB", "ALLOW", "USER"), ("T/secret/+", "SUB", "DENY", "USER")]
    e = refusal(lambda: sdk.update_custom_auth_permission(m.UpdateCustomAuthPermissionRequest(**permission("T/none"))))
    assert e.code == "InvalidParameter.Topic"

    ok(sdk.delete_custom_auth_permission(m.DeleteCustomAuthPermissionRequest(
        instance_id=env.instance, identity=who, identity_type="USER", topic="T/secret/+")))
    listed = ok(sdk.query_custom_auth_permission(m.QueryCustomAuthPermissionRequest(
        instance_id=env.instance, identity=who, size=100))).data.results
    assert [p.topic for p in listed] == ["T/#"]


def test_connect_blacklist(sdk, signer, env):
    client = f"stolen-{signer}"
    ok(sdk.add_custom_auth_connect_black(m.AddCustomAuthConnectBlackRequest(instance_id=env.instance, client_id=client)))
    e = refusal(lambda: sdk.add_custom_auth_connect_black(
        m.AddCustomAuthConnectBlackRequest(instance_id=env.instance, client_id=client)))
    assert e.code == "ParameterCheckFailed"
    found = ok(sdk.query_custom_auth_connect_black(m.QueryCustomAuthConnectBlackRequest(
        instance_id=env.instance, client_id=client, size=10))).data.results
    assert [(r.client_id, r.effect, r.permit_action) for r in found] == [(client, "DENY", "CONNECT")]
    ok(sdk.delete_custom_auth_connect_black(
        m.DeleteCustomAuthConnectBlackRequest(instance_id=env.instance, client_id=client)))
    assert ok(sdk.query_custom_auth_connect_black(m.QueryCustomAuthConnectBlackRequest(
        instance_id=env.instance, client_id=client, size=10))).data.results == []


def test_another_instances_custom_auth_is_out_of_reach(sdk, env):
    e = refusal(lambda: sdk.add_custom_auth_connect_black(
        m.AddCustomAuthConnectBlackRequest(instance_id=env.other_instance, client_id="x")))
    assert e.code == "InstancePermissionCheckFailed"
    e = refusal(lambda: sdk.query_custom_auth_identity(
        m.QueryCustomAuthIdentityRequest(instance_id=env.other_instance, size=10)))
    assert e.code == "InstancePermissionCheckFailed"
