"""docker-compose.yml is for users (no Docker engine runs here): check that it parses, that every
service the README names exists (and the other way round), and that it is complete: builds point at
Dockerfiles that exist, stateful services keep their data in volumes, every service has a health check,
and every variable it needs is in docker/env.example."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def readme_services():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Docker compose", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|", section, re.M)}


def test_readme_names_exactly_the_compose_services():
    assert readme_services() == set(SERVICES)


def test_two_brokers_behind_one_control_plane():
    brokers = [s for s in SERVICES if s.startswith("broker-")]
    assert len(brokers) == 2
    for b in brokers:
        env = SERVICES[b]["environment"]
        assert env["BROKER_CONTROL_PLANE_URL"] == "http://control-plane:8080"
        assert env["BROKER_NODE_ID"] == b
        assert f"{b}:" in SERVICES["control-plane"]["environment"]["CP_BROKER_NODES"]


def test_builds_use_existing_dockerfiles():
    for name, svc in SERVICES.items():
        if "build" in svc:
            dockerfile = ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            assert dockerfile.read_text().count("FROM ") >= 2, f"{name}: not a multi-stage build"


def test_state_lives_in_volumes_and_every_service_has_a_health_check():
    declared = set(COMPOSE["volumes"])
    for name in ["postgres", "broker-1", "broker-2"]:
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
