"""Creates (once) a demo instance with a parent topic, a group and an AccessKey through the REST API,
and prints copy-paste mosquitto_sub/mosquitto_pub commands with Signature-mode passwords.
Usage: demo.py CONTROL_PLANE_URL ADMIN_PASSWORD STATE_FILE MQTT_PORT (standard library only)."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import sys
import urllib.error
import urllib.request


def call(base, method, path, token=None, body=None):
    req = urllib.request.Request(base + "/api/v1" + path, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(req, data, timeout=10) as res:
            text = res.read()
            return res.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ensure_demo(base, token, state_file):
    if os.path.exists(state_file):
        state = json.load(open(state_file))
        if call(base, "GET", f"/instances/{state['instanceId']}", token)[0] == 200:
            return state
    status, inst = call(base, "POST", "/instances", token, {"name": "demo", "description": "created by scripts/dev"})
    if status == 409:
        _, listing = call(base, "GET", "/instances", token)
        inst = next(i for i in listing["instances"] if i["name"].lower() == "demo")
    elif status >= 300:
        raise SystemExit(f"creating the demo instance failed: {inst}")
    iid = inst["instanceId"]
    call(base, "POST", f"/instances/{iid}/topics", token, {"topic": "demo"})
    call(base, "POST", f"/instances/{iid}/groups", token, {"groupId": "GID_demo"})
    status, ak = call(base, "POST", "/access-keys", token, {"description": "demo (scripts/dev)", "instanceIds": [iid]})
    if status >= 300:
        raise SystemExit(f"creating the demo AccessKey failed: {ak}")
    state = {"instanceId": iid, "accessKeyId": ak["accessKeyId"], "accessKeySecret": ak["accessKeySecret"]}
    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    return state


def password(secret, client_id):
    return base64.b64encode(hmac.new(secret.encode(), client_id.encode(), hashlib.sha1).digest()).decode()


def main(base, admin_password, state_file, mqtt_port):
    status, login = call(base, "POST", "/login", body={"username": "admin", "password": admin_password})
    if status != 200:
        raise SystemExit(f"login failed: {login}")
    s = ensure_demo(base, login["token"], state_file)
    user = f"Signature|{s['accessKeyId']}|{s['instanceId']}"
    sub, pub = "GID_demo@@@listener", "GID_demo@@@sender"
    hint = "" if shutil.which("mosquitto_pub") else "   (apt-get install mosquitto-clients)"
    print(f"""
  Demo instance {s['instanceId']}: parent topic 'demo', group 'GID_demo', AccessKey {s['accessKeyId']}
  (secret in {state_file}). Get a message through{hint}:

    mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -V mqttv311 -q 1 -t 'demo/#' -i '{sub}' \\
      -u '{user}' -P '{password(s['accessKeySecret'], sub)}'

    mosquitto_pub -h 127.0.0.1 -p {mqtt_port} -V mqttv311 -q 1 -t demo/hello -m 'hello' -i '{pub}' \\
      -u '{user}' -P '{password(s['accessKeySecret'], pub)}'
""")


if __name__ == "__main__":
    main(*sys.argv[1:5])
