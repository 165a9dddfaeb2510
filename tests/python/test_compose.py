"""docker-compose.yml is for users (no Docker engine runs here): check that it parses, that every
service the README names exists (and the other way round), and that it is complete: builds point at
Dockerfiles that exist, stateful services keep their data in volumes, every service has a health check,
and every variable it needs is in docker/env.example. The cluster: three NATS nodes with JetStream and
routes between them, three brokers joined to them, and HAProxy (docker/haproxy.cfg, the file scripts/dev
and the end-to-end test use too) in front of the brokers on 1883 and 8883 (TLS passed through)."""

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TLS_OVERRIDE = yaml.safe_load((ROOT / "docker/compose.tls.yml").read_text())
HAPROXY_CFG = (ROOT / "docker/haproxy.cfg").read_text()
BROKERS = sorted(s for s in SERVICES if s.startswith("broker-"))
NATS = sorted(s for s in SERVICES if s.startswith("nats-"))


def readme_compose_section():
    text = (ROOT / "README.md").read_text()
    return text.split("## Docker compose", 1)[1].split("\n## ", 1)[0]


def readme_services():
    return {m.group(1) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|", readme_compose_section(), re.M)}


def test_readme_names_exactly_the_compose_services():
    assert readme_services() == set(SERVICES)


def test_three_brokers_behind_one_control_plane():
    assert BROKERS == ["broker-1", "broker-2", "broker-3"]
    for b in BROKERS:
        env = SERVICES[b]["environment"]
        assert env["BROKER_CONTROL_PLANE_URL"] == "http://control-plane:8080"
        assert env["BROKER_NODE_ID"] == b
        assert f"{b}:" in SERVICES["control-plane"]["environment"]["CP_BROKER_NODES"]
        # Clients reach the brokers through HAProxy only; the HTTP listener stays on the host's loopback.
        assert all(p.startswith("127.0.0.1:") for p in SERVICES[b]["ports"]), b
    assert SERVICES["control-plane"]["environment"]["CP_MQTT_ENDPOINTS"].endswith(":-tcp://localhost:1883}")


def test_images_are_pinned():
    for name, svc in SERVICES.items():
        if "build" not in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
    # NATS: the same minor version as Debian 12's nats-server (2.9.10), which the tests run.
    for n in NATS:
        assert re.fullmatch(r"nats:2\.9\.\d+-alpine[\d.]*", SERVICES[n]["image"]), n
    assert re.fullmatch(r"haproxy:\d+\.\d+\.\d+(-alpine)?", SERVICES["haproxy"]["image"])


def nats_args(name):
    svc = SERVICES[name]
    assert svc["entrypoint"] == ["/bin/sh", "-c"], name
    words = shlex.split(svc["command"][0].replace("$$", "$"))
    assert words[:2] == ["exec", "nats-server"], name
    args, i = {}, 2
    while i < len(words):
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            args[words[i]] = words[i + 1]
            i += 2
        else:
            args[words[i]] = True
            i += 1
    return args


def test_three_nats_nodes_with_jetstream_and_routes():
    assert NATS == ["nats-1", "nats-2", "nats-3"]
    declared = set(COMPOSE["volumes"])
    for n in NATS:
        args = nats_args(n)
        env = SERVICES[n]["environment"]
        assert env["NATS_SERVER_NAME"] == n and args["--server_name"] == "$NATS_SERVER_NAME"
        assert args["--jetstream"] is True
        # JetStream's files (sessions, inboxes, retained messages) live in the node's own volume.
        store = args["--store_dir"]
        assert [v for v in SERVICES[n]["volumes"] if v.split(":")[1] == store] == [f"{n}-data:{store}"]
        assert f"{n}-data" in declared
        assert args["--cluster_name"] == "mqtt"
        assert args["--cluster"].endswith("@0.0.0.0:6222")
        routes = args["--routes"].split(",")
        assert [r.rsplit("@", 1)[1] for r in routes] == [f"{m}:6222" for m in NATS]
        assert all(r.startswith("nats://route:$NATS_ROUTE_PASSWORD@") for r in routes)
        assert args["--user"] == "mqtt" and args["--pass"] == "$NATS_PASSWORD"
        assert env["NATS_PASSWORD"].startswith("${NATS_PASSWORD:?")
        assert env["NATS_ROUTE_PASSWORD"].startswith("${NATS_ROUTE_PASSWORD:?")


def test_brokers_join_the_nats_cluster():
    for b in BROKERS:
        env = SERVICES[b]["environment"]
        urls = env["BROKER_CLUSTER_NATS_URL"].split(",")
        assert urls == [f"nats://{n}:4222" for n in NATS]
        assert env["BROKER_CLUSTER_NATS_USER"] == "mqtt"
        assert env["BROKER_CLUSTER_NATS_PASSWORD"] == "${NATS_PASSWORD}"
        for n in NATS:
            assert n in SERVICES[b]["depends_on"]


def test_haproxy_in_front_of_the_brokers():
    lb = SERVICES["haproxy"]
    assert sorted(lb["ports"]) == ["1883:1883", "8883:8883"]
    assert "./docker/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    env = lb["environment"]
    assert env["MQTT_BIND"] == ":1883" and env["MQTT_TLS_BIND"] == ":8883"
    for i, b in enumerate(BROKERS, 1):
        assert env[f"BROKER_{i}"] == f"{b}:1883"
        assert env[f"BROKER_{i}_TLS"] == f"{b}:8883"
    # Every address the configuration reads is set (the optional ones are inside `.if defined(...)`).
    used = set(re.findall(r'"\$\{([A-Z0-9_]+)\}"', HAPROXY_CFG))
    assert used <= set(env), used - set(env)
    assert "mode tcp" in HAPROXY_CFG
    port = env["HEALTH_BIND"].rsplit(":", 1)[1]
    assert any(f"127.0.0.1:{port}/healthz" in part for part in lb["healthcheck"]["test"])


def test_tls_override_enables_the_brokers_tls_listeners():
    lb_env = SERVICES["haproxy"]["environment"]
    assert set(TLS_OVERRIDE["services"]) == set(BROKERS)
    for i, b in enumerate(BROKERS, 1):
        env = TLS_OVERRIDE["services"][b]["environment"]
        assert env["BROKER_TLS_LISTEN"].endswith(":" + lb_env[f"BROKER_{i}_TLS"].rsplit(":", 1)[1])
        mount = TLS_OVERRIDE["services"][b]["volumes"][0].split(":")
        assert env["BROKER_TLS_CERT"].startswith(mount[1] + "/") and env["BROKER_TLS_KEY"].startswith(mount[1] + "/")


def test_readme_describes_the_cluster():
    section = readme_compose_section()
    for needle in ["NATS", "JetStream", "HAProxy", "docker/haproxy.cfg", "1883", "8883", "docker/compose.tls.yml",
                   "NATS_ROUTE_PASSWORD"]:
        assert needle in section, needle


def test_builds_use_existing_dockerfiles():
    for name, svc in SERVICES.items():
        if "build" in svc:
            dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            assert dockerfile.read_text().count("FROM ") >= 2, f"{name}: not a multi-stage build"


def test_state_lives_in_volumes_and_every_service_has_a_health_check():
    declared = set(COMPOSE["volumes"])
    for name in ["postgres", *NATS, *BROKERS]:
        mounts = [v.split(":")[0] for v in SERVICES[name]["volumes"]]
        assert mounts and all(m in declared for m in mounts), name
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc, f"{name} has no health check"


def test_every_variable_is_in_the_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)(?::[?-][^}]*)?\}", text))
    example = {line.split("=", 1)[0] for line in (ROOT / "docker/env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    optional = set(re.findall(r"\$\{([A-Z0-9_]+):-", text))
    assert needed - optional <= example
