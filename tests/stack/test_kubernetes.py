"""The Kubernetes examples: the sidecar's wiring inside the pod, scraping, autoscaling."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack.tools import REPO, require

K8S = REPO / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc]


def one(name: str, kind: str) -> dict[str, Any]:
    found = [doc for doc in documents(name) if doc["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}"
    return found[0]


DEPLOYMENT = one("vllm-infermeter.yaml", "Deployment")
POD = DEPLOYMENT["spec"]["template"]
CONTAINERS = {c["name"]: c for c in POD["spec"]["containers"]}


def port(container: str, name: str | int) -> int:
    if isinstance(name, int):
        return name
    ports = {p["name"]: p["containerPort"] for p in CONTAINERS[container].get("ports", [])}
    assert name in ports, f"{container} has no port named {name}"
    return int(ports[name])


def test_manifests_parse_and_name_their_api() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in documents(path.name):
            if path.name != "prometheus-adapter-values.yaml":
                assert doc.get("apiVersion") and doc.get("kind"), path.name


def test_kustomization_lists_existing_files() -> None:
    for resource in one("kustomization.yaml", "Kustomization")["resources"]:
        assert (K8S / resource).is_file(), resource


def test_sidecar_relays_to_vllm_in_the_same_pod() -> None:
    assert {"vllm", "infermeter"} <= set(CONTAINERS)
    args = CONTAINERS["infermeter"]["args"]
    assert args[0] == "serve"
    upstream = args[args.index("--upstream") + 1]
    assert upstream == f"http://127.0.0.1:{port('vllm', 'vllm')}"
    vllm_args = CONTAINERS["vllm"]["args"]
    assert vllm_args[vllm_args.index("--port") + 1] == str(port("vllm", "vllm"))
    assert CONTAINERS["vllm"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert POD["spec"]["shareProcessNamespace"] is True, "the sidecar reads vLLM's process"


def test_sidecar_probes_and_security() -> None:
    sidecar = CONTAINERS["infermeter"]
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert port("infermeter", sidecar["readinessProbe"]["httpGet"]["port"]) == 8100
    assert sidecar["securityContext"]["runAsNonRoot"] is True


def test_service_sends_clients_through_the_sidecar() -> None:
    service = one("vllm-infermeter.yaml", "Service")
    assert service["spec"]["selector"].items() <= POD["metadata"]["labels"].items()
    assert [port("infermeter", p["targetPort"]) for p in service["spec"]["ports"]] == [8100]


def test_pod_monitor_and_annotations_scrape_the_sidecar() -> None:
    monitor = one("podmonitor.yaml", "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert port("infermeter", endpoint["port"]) == 8100 and endpoint["path"] == "/metrics"
    # The engine's own /metrics too, at the engine's port, as a job of its own.
    engine = monitor["spec"]["podMetricsEndpoints"][1]
    assert port("vllm", engine["port"]) == 8000 and engine["path"] == "/metrics"
    assert {"targetLabel": "job", "replacement": "vllm-engine"} in engine["relabelings"]
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == 8100 and annotations["prometheus.io/path"] == "/metrics"


def test_autoscalers_target_the_deployment_on_in_flight() -> None:
    hpa = one("hpa-prometheus-adapter.yaml", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "infermeter_requests_in_flight"
    adapter = documents("prometheus-adapter-values.yaml")[0]["rules"]["custom"][0]
    assert adapter["name"]["as"] == "infermeter_requests_in_flight"
    keda = one("keda-scaledobject.yaml", "ScaledObject")
    assert keda["spec"]["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert "infermeter_requests_in_flight" in keda["spec"]["triggers"][0]["metadata"]["query"]


def autoscaling_queries() -> list[str]:
    keda = one("keda-scaledobject.yaml", "ScaledObject")
    found = [t["metadata"]["query"] for t in keda["spec"]["triggers"]]
    for rule in documents("prometheus-adapter-values.yaml")[0]["rules"]["custom"]:
        found.append(rule["seriesQuery"])
        # What prometheus-adapter builds for one pod of the HPA's query.
        found.append(rule["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod")
                     .replace("<<.Series>>", "infermeter_requests_in_flight")
                     .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"vllm-.*"'))
    return found


def test_autoscaling_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses PromQL offline only inside rule files: wrap each query in one.
    rules = {"groups": [{"name": "autoscaling", "rules": [
        {"record": f"autoscaling:query{i}", "expr": query} for i, query in enumerate(autoscaling_queries())]}]}
    path = tmp_path / "autoscaling.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run([str(require("promtool")), "check", "rules", str(path)], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["vllm-infermeter.yaml", "podmonitor.yaml", "hpa-prometheus-adapter.yaml",
                                  "keda-scaledobject.yaml", "prometheus-adapter-values.yaml"])
def test_readme_explains_each_file(name: str) -> None:
    assert name in (K8S / "README.md").read_text(encoding="utf-8")
