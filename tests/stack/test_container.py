"""The Dockerfile (hadolint and its promises) and docker-compose.yml (a real Compose binary)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.stack.tools import REPO, require

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
GPU_OVERRIDE = "deploy/compose/nvidia-gpu.yml"
PROFILES = ("vllm", "ollama", "llamacpp")


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = require("docker-compose")
    # Only what interpolation needs: a developer's UPSTREAM_URL must not change the result.
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    return subprocess.run([str(binary), *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


def resolved(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = compose(*args, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_hadolint_finds_nothing() -> None:
    binary = require("hadolint")
    result = subprocess.run([str(binary), "--failure-threshold", "info", "Dockerfile"], check=False, cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) == 2 and all("-slim" in image for image in stages), "multi-stage on a slim base"
    assert "pip install --no-cache-dir" in DOCKERFILE
    # The runtime venv carries no installers (pip removes itself last).
    assert re.search(r"pip uninstall --yes .*setuptools pip$", DOCKERFILE, re.MULTILINE)
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert user == ["10001:10001"]
    # ... with a group of its own that has that gid (useradd --user-group picked 999), not a system id.
    assert re.search(r"groupadd --gid 10001 infermeter", DOCKERFILE)
    assert re.search(r"useradd --uid 10001 --gid 10001 ", DOCKERFILE) and "--system" not in DOCKERFILE
    assert re.search(r"^EXPOSE 8100$", DOCKERFILE, re.MULTILINE)
    # One check for every command, finding the port the process really uses (not a fixed :8100/healthz).
    assert re.search(r'^HEALTHCHECK .*\n +CMD \["python", "-m", "proxy.healthcheck"\]$', DOCKERFILE, re.MULTILINE)
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)[0].startswith("docker.io/library/python:"), \
        "fully qualified, as podman needs without a TTY"
    assert re.search(r'^ENTRYPOINT \["infermeter"\]$', DOCKERFILE, re.MULTILINE)
    assert re.search(r'^CMD \["serve"\]$', DOCKERFILE, re.MULTILINE)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    copied = {src for line in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE) for src in line.split()}
    assert {src.split("/")[0] for src in copied} == {"pyproject.toml", "README.md", "proxy"}
    for name in {src.split("/")[0] for src in copied}:
        assert f"!{name}" in ignore or f"!{name}/" in ignore, f"{name} is excluded from the build context"


@pytest.mark.parametrize("args", [(), *(("--profile", p) for p in PROFILES), ("-f", "docker-compose.yml", "-f", GPU_OVERRIDE, "--profile", "vllm")],
                         ids=["default", *PROFILES, "nvidia-gpu-override"])
def test_compose_config_is_valid(args: tuple[str, ...]) -> None:
    result = compose(*args, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_default_stack_is_simulator_proxy_prometheus_grafana() -> None:
    services = resolved()["services"]
    assert set(services) == {"simulator", "infermeter", "load", "prometheus", "grafana", "jaeger"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["simulator"]["command"][:5] == ["simulate", "--host", "0.0.0.0", "--port", "8000"]
    command = services["infermeter"]["command"]
    assert command[0] == "serve" and command[command.index("--upstream") + 1] == "http://simulator:8000"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    depends = {name: {k: v["condition"] for k, v in s.get("depends_on", {}).items()} for name, s in services.items()}
    assert depends["infermeter"] == {"simulator": "service_healthy", "jaeger": "service_started"}
    assert services["infermeter"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    assert depends["prometheus"] == {"infermeter": "service_healthy"}
    assert depends["load"] == {"infermeter": "service_healthy"}
    assert services["load"]["command"] == ["load", "--target", "http://infermeter:8100"]
    assert depends["grafana"] == {"prometheus": "service_healthy"}


def test_dependencies_are_default_services() -> None:
    """podman-compose 1.6 looks every dependency up among the running services and crashes
    (KeyError) on one whose profile is off, ``required: false`` or not."""
    services = resolved()["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services and spec.get("required", True), f"{name} depends on {dependency}"


def test_images_are_fully_qualified() -> None:
    """podman resolves no short names without a TTY to ask on (prom/prometheus)."""
    services = resolved(*(arg for p in PROFILES for arg in ("--profile", p)))["services"]
    for name, service in services.items():
        registry = service["image"].split("/", 1)[0]
        assert "/" in service["image"] and ("." in registry or registry == "localhost"), f"{name}: {service['image']}"
    own = [s for s in services.values() if s.get("build")]
    assert {s["image"] for s in own} == {"localhost/infermeter:local"}
    assert resolved(env={"INFERMETER_IMAGE": "ghcr.io/x/infermeter:1"})["services"]["load"]["image"] == "ghcr.io/x/infermeter:1"


def test_ports_are_published_on_loopback() -> None:
    """The stack starts with Grafana's admin / admin: nothing listens beyond the host unless asked."""
    for address, env in (("127.0.0.1", None), ("0.0.0.0", {"PUBLISH_ADDRESS": "0.0.0.0"})):
        services = resolved(env=env)["services"]
        published = [port for s in services.values() for port in s.get("ports", [])]
        assert len(published) == 4 and all(port["host_ip"] == address for port in published), published


def test_own_services_use_the_image_healthcheck() -> None:
    services = resolved()["services"]
    for name in ("simulator", "infermeter", "load"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-m", "proxy.healthcheck"], name


def test_upstream_url_switches_the_upstream() -> None:
    services = resolved("--profile", "vllm", env={"UPSTREAM_URL": "http://vllm:8000"})["services"]
    command = services["infermeter"]["command"]
    assert command[command.index("--upstream") + 1] == "http://vllm:8000"
    assert "vllm" in services


def test_profiles_add_real_servers() -> None:
    services = resolved(*(arg for p in PROFILES for arg in ("--profile", p)))["services"]
    for name in PROFILES:
        assert services[name]["profiles"] == [name]
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(v["target"] == "/models" for v in services["llamacpp"]["volumes"]), "llama.cpp needs a mounted model"
    assert services["llamacpp"]["image"].startswith("ghcr.io/ggml-org/llama.cpp:")


def test_gpu_override_gives_the_sidecar_the_gpu() -> None:
    infermeter = resolved("-f", "docker-compose.yml", "-f", GPU_OVERRIDE)["services"]["infermeter"]
    assert "gpu" in infermeter["environment"]["INFERMETER_COLLECTORS"].split(",")
    assert infermeter["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_grafana_mounts_match_provisioning() -> None:
    grafana = resolved()["services"]["grafana"]
    mounts = {v["target"]: v["source"] for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == str(REPO / "dashboards" / "grafana" / "provisioning")
    provider = yaml.safe_load((REPO / "dashboards/grafana/provisioning/dashboards/infermeter.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == str(REPO / "dashboards" / "grafana" / "dashboards")
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/") and (REPO / "dashboards/grafana/dashboards" / home[len(path) + 1:]).is_file()
    assert {"GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"} <= set(grafana["environment"])
    datasource = yaml.safe_load((REPO / "dashboards/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    jaeger = datasource["datasources"][1]
    assert jaeger["type"] == "jaeger" and jaeger["url"] == "http://jaeger:16686"
    (link,) = datasource["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"]
    assert (link["name"], link["datasourceUid"]) == ("trace_id", jaeger["uid"])


def test_prometheus_scrapes_the_compose_sidecar() -> None:
    prometheus = resolved()["services"]["prometheus"]
    mounts = {v["target"]: v["source"] for v in prometheus["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/prometheus"] == str(REPO / "dashboards" / "prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO / "dashboards/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["infermeter"]["static_configs"] == [{"targets": ["infermeter:8100"]}]
    # Each engine's own /metrics at its own port; the simulator's always, the others while
    # their profile runs (DNS finds the service).
    assert jobs["engine-simulator"]["static_configs"] == [{"targets": ["simulator:8000"]}]
    services = resolved(*(arg for p in PROFILES for arg in ("--profile", p)))["services"]
    for name, port in (("vllm", 8000), ("llamacpp", 8080)):
        (sd,) = jobs[f"engine-{name}"]["dns_sd_configs"]
        assert sd["names"] == [name] and sd["port"] == port and name in services
    assert "--metrics" in services["llamacpp"]["command"], "llama-server exports /metrics only with --metrics"
