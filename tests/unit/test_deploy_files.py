"""The deployment files say what they mean: the compose stack names real,
pinned images, runs paycore commands that paycore's own CLI accepts, with
environment variables paycore's config reads, and mounts files that exist;
the Dockerfile is multi-stage, non-root, health-checked; the Grafana
provisioning matches the dashboard.

There is no container engine on the test machines, so the compose file is
checked by parsing it, not by running it; the Prometheus rules and config are
checked by promtool in tests/integration/test_prometheus.py.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from paycore import cli
from paycore import config as config_mod

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PAYCORE_SERVICES = [n for n, s in SERVICES.items() if s.get("image") == "paycore:local"]


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message} with the defaults, and a placeholder for required ones."""
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: f"<{m.group(1)}>", value)


def test_the_stack_has_every_part():
    assert {"postgres", "kafka", "sim", "paycore", "settlement", "prometheus", "grafana"} <= set(SERVICES)


def test_images_are_real_and_pinned():
    expected = {"postgres": "postgres:", "kafka": "apache/kafka:", "prometheus": "prom/prometheus:",
                "grafana": "grafana/grafana:"}
    for name, prefix in expected.items():
        image = SERVICES[name]["image"]
        assert image.startswith(prefix), image
        tag = image.split(":", 1)[1]
        assert tag and tag != "latest" and re.match(r"v?\d+", tag), image
    for name in PAYCORE_SERVICES:
        assert SERVICES[name]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    for name in ("sim", "sim-keys"):   # the simulators come from their own target, never the paycore image
        assert SERVICES[name]["build"] == {"context": "..", "dockerfile": "Dockerfile", "target": "simulators"}
        assert SERVICES[name]["image"] == "paycore-simulators:local"
    assert (DEPLOY / SERVICES["paycore"]["build"]["context"] / "Dockerfile").is_file()


def test_kafka_runs_in_kraft_mode_without_zookeeper():
    env = SERVICES["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
    assert not any("ZOOKEEPER" in k for k in env)
    assert "zookeeper" not in SERVICES
    assert SERVICES["paycore"]["environment"]["PAYCORE_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_paycore_runs_several_workers():
    cmd = [interpolate(str(c)) for c in SERVICES["paycore"]["command"]]
    assert cmd[0] == "serve" and int(cmd[cmd.index("--workers") + 1]) >= 2


def _argv(service: dict) -> list[str]:
    entry = service.get("entrypoint")
    cmd = [interpolate(str(c)) for c in service["command"]]
    return cmd if entry is None else [*entry, *cmd]


def test_paycore_commands_are_accepted_by_the_paycore_cli(monkeypatch):
    seen = []
    for module, fn in (("paycore.cli.serve", "cmd_serve"), ("paycore.cli.ops", "cmd_consume")):
        monkeypatch.setattr(importlib.import_module(module), fn, lambda args, fn=fn: seen.append((fn, args)) or 0)
    for name in ("paycore", "settlement"):
        assert "entrypoint" not in SERVICES[name]   # the image's: python -m paycore.cli
        assert cli.main(_argv(SERVICES[name])) == 0
    assert [s[0] for s in seen] == ["cmd_serve", "cmd_consume"]
    assert seen[1][1].metrics_port == 9400


def test_simulator_commands_are_accepted_by_devstack_compose(monkeypatch):
    from devstack import compose as dc
    seen = []
    monkeypatch.setattr(dc, "cmd_config", lambda args: seen.append(("config", args)) or 0)

    async def serve(args):
        seen.append(("serve", args))
        return 0
    monkeypatch.setattr(dc, "_serve", serve)
    for name in ("sim-keys", "sim"):
        argv = _argv(SERVICES[name])
        assert argv[:3] == ["python", "-m", "devstack.compose"]
        assert dc.main(argv[3:]) == 0
    (_, keys), (_, sim) = seen
    assert keys.out == SERVICES["paycore"]["environment"]["PAYCORE_CONFIG"]
    assert keys.sim_host == "sim" and sim.bind == "0.0.0.0" and keys.base_port == sim.base_port


def test_paycore_environment_is_what_the_config_reads():
    env = {k: interpolate(str(v)) for k, v in SERVICES["paycore"]["environment"].items()}
    cfg = config_mod.from_dict({}, env)
    assert cfg.database.url.startswith("postgresql://paycore:") and cfg.database.url.endswith("@postgres:5432/paycore")
    assert cfg.kafka.bootstrap == "kafka:9092" and cfg.kafka.idempotence is True
    assert cfg.security.master_key.get() == "<PAYCORE_MASTER_KEY>"
    assert cfg.server.public_base_url == "http://paycore:8080" and cfg.server.log_level == "INFO"
    known = {"PAYCORE_CONFIG", "PAYCORE_DATABASE_URL", "PAYCORE_KAFKA_BOOTSTRAP", "PAYCORE_KAFKA_IDEMPOTENCE",
             "PAYCORE_MASTER_KEY", "PAYCORE_PUBLIC_URL", "PAYCORE_LOG_LEVEL"}
    assert set(env) <= known, set(env) - known
    assert "PAYCORE_HOST=0.0.0.0" in (REPO / "Dockerfile").read_text().replace(" ", "")


def test_mounted_files_exist():
    for name in ("prometheus", "grafana"):
        for vol in SERVICES[name]["volumes"]:
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), vol
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for f in prom["rule_files"]:
        assert (DEPLOY / "prometheus" / f).is_file()
    jobs = {j["job_name"] for j in prom["scrape_configs"]}
    assert {"paycore", "paycore-settlement"} <= jobs


def test_grafana_provisioning_matches_the_dashboard():
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    uids = {d["uid"] for d in ds if d["type"] == "prometheus"}
    assert any(d["url"] == "http://prometheus:9090" for d in ds)
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/paycore.yml").read_text())["providers"]
    path = prov[0]["options"]["path"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["grafana"]["volumes"] if v.startswith("./")}
    assert (DEPLOY / mounts[path] / "paycore.json").is_file()
    dash = json.loads((DEPLOY / "grafana/dashboards/paycore.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] in uids and t["expr"].strip()


def test_dockerfile_is_multistage_non_root_and_health_checked():
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"(?m)^FROM ", text)[1:]
    assert len(stages) >= 2
    final = stages[-1]
    assert "COPY --from=build" in final
    users = re.findall(r"(?m)^USER (\S+)", final)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"(?m)^HEALTHCHECK .*", final) and "/healthz" in final
    assert not re.search(r"gcc|build-essential|apt-get install", final), "no build tools in the final image"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


@pytest.mark.parametrize("name", ["paycore", "settlement", "sim"])
def test_long_running_services_restart_and_are_health_checked(name):
    s = SERVICES[name]
    assert s["restart"] == "unless-stopped"
    hc = s.get("healthcheck")
    assert hc is None or not hc.get("disable"), "paycore uses the image's HEALTHCHECK; others their own"
