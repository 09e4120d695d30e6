"""The image, built from the working tree with podman and run for real: who it runs as, what
it serves, a stream timed through it, its HEALTHCHECK for every command, a clean quick stop,
and its size and contents (printed in the run's "container image" section)."""

from __future__ import annotations

import contextlib
import re
import time

import openai
import pytest

from tests.container.base import dockerfile_base
from tests.container.conftest import REPORT
from tests.container.podman import Container, inspect, run
from tests.support.metrics import after_requests, scrape
from tests.support.sdk import closing
from tests.support.wait import eventually

# The first test builds the image: minutes on a busy machine, from a cold cache.
pytestmark = pytest.mark.timeout(1800)

DEAD_UPSTREAM = "http://127.0.0.1:9"
SIM = ["simulate", "--port", "8000", "--ttft", "0.05", "--tbt", "0.01", "--jitter", "0", "--output-tokens", "20"]


def test_size_and_contents(image: str) -> None:
    size = int(str(inspect(image, kind="image")[0]["Size"]))
    base = int(str(inspect(dockerfile_base(), kind="image")[0]["Size"]))
    listing = run("run", "--rm", "--entrypoint", "sh", image, "-c",
                  "du -sk /opt/venv; du -sk /opt/venv/lib/python3*/site-packages/* | sort -rn; ls /opt/venv/bin").stdout
    venv_kb = int(listing.split()[0])
    packages = re.findall(r"^(\d+)\s+/opt/venv/lib/python3[.\d]*/site-packages/(\S+)$", listing, re.MULTILINE)
    largest = ", ".join(f"{name} {int(kb) / 1024:.0f}" for kb, name in packages[:8])
    REPORT.append(f"image size {size / 1e6:.0f} MB: base {base / 1e6:.0f} MB + virtual environment {venv_kb / 1024:.0f} MiB "
                  f"({len(packages)} entries in site-packages; largest, MiB: {largest})")
    names = {name for _, name in packages} | set(listing.split())
    installers = {n for n in names if re.match(r"(pip|setuptools|pkg_resources|_distutils_hack|wheel)\b", n)}
    assert not installers, f"the runtime venv still carries installers: {sorted(installers)}"
    assert "infermeter" in names and "proxy" in names
    # What the image adds to its base: the venv. A guard against a heavy dependency slipping in.
    assert venv_kb < 100 * 1024, listing


def test_carries_its_healthcheck(image: str) -> None:
    """Built in Docker's format: podman's default (OCI) has no HEALTHCHECK and drops it."""
    healthcheck = inspect(image, kind="image")[0].get("Healthcheck")
    assert isinstance(healthcheck, dict) and healthcheck["Test"] == ["CMD", "python", "-m", "proxy.healthcheck"]


def test_runs_as_uid_10001_with_a_group_of_its_own(image: str) -> None:
    with Container(["serve", "--upstream", DEAD_UPSTREAM], port=8100) as proxy:
        proxy.wait_answers("/healthz")
        status = proxy.exec("cat", "/proc/1/status")
        assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), status
        assert re.search(r"^Gid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), status
        assert proxy.exec("getent", "group", "10001").strip() == "infermeter:x:10001:"
        assert proxy.exec("getent", "passwd", "10001").split(":")[:4] == ["infermeter", "x", "10001", "10001"]


def test_serves_and_times_an_sdk_stream(image: str, network: str) -> None:
    with Container(SIM, network=network, alias="llm"), \
            Container(["serve", "--upstream", "http://llm:8000", "--collectors", "upstream"], port=8100,
                      network=network) as proxy:
        proxy.wait_answers("/healthz")
        proxy.wait_answers("/readyz")  # the upstream probe found the simulator
        before = scrape(proxy.url)
        client = closing(openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0))
        stream = client.chat.completions.create(model="demo-model", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens == 20
        delta = after_requests(proxy.url, before, 1) - before
        labels = {"endpoint": "chat_completions", "model": "demo-model"}
        assert delta.get("infermeter_requests_total", outcome="completed", code="200", **labels) == 1
        assert delta.get("infermeter_time_to_first_token_seconds_count", **labels) == 1
        # The simulator waits 50 ms before the first token: the proxy's clock saw at least that.
        assert delta.get("infermeter_time_to_first_token_seconds_sum", **labels) >= 0.045
        assert delta.get("infermeter_time_between_tokens_seconds_count", **labels) == 19
        assert delta.get("infermeter_tokens_total", type="output", **labels) == 20


@pytest.mark.parametrize(("args", "env", "asked"), [
    (["serve", "--port", "18100", "--upstream", DEAD_UPSTREAM], {}, "http://127.0.0.1:18100/healthz"),
    (["serve", "--upstream", DEAD_UPSTREAM], {"INFERMETER_PORT": "18101"}, "http://127.0.0.1:18101/healthz"),
    (["serve", "--upstream", DEAD_UPSTREAM, "--admin-prefix", "/infermeter"], {}, "http://127.0.0.1:8100/infermeter/healthz"),
    (["simulate"], {}, "http://127.0.0.1:8000/health"),
    (["load", "--target", DEAD_UPSTREAM], {}, "infermeter load (pid 1) is running"),
], ids=["serve-port-flag", "serve-port-variable", "serve-admin-prefix", "simulate", "load"])
def test_healthcheck_run_passes(image: str, args: list[str], env: dict[str, str], asked: str) -> None:
    with Container(args, env=env) as container:
        assert eventually(lambda: container.healthcheck().returncode == 0, 60, step=1), container.logs()
        health = container.state()["Health"]
        assert isinstance(health, dict) and health["Status"] == "healthy"
        assert asked in str(health["Log"]), health


@pytest.mark.parametrize(("args", "started"), [
    (["serve", "--upstream", "http://llm:8000"], "Uvicorn running on"),
    (SIM, "Uvicorn running on"),
    (["load", "--target", "http://llm:8000", "--concurrency", "4"], "streams against"),
    (["demo"], "infermeter demo:"),
], ids=["serve", "simulate", "load", "demo"])
def test_stop_is_clean_and_quick(image: str, network: str, args: list[str], started: str) -> None:
    """``podman stop`` sends SIGTERM to PID 1, and kills 10 s later: each command exits 0 at once.
    The load is stopped with its streams open."""
    with Container(SIM, network=network, alias="llm") if args[0] == "load" else contextlib.nullcontext(), \
            Container(args, network=network) as container:
        assert eventually(lambda: started in container.logs(), 60, step=0.5), container.logs()
        if args[0] == "load":
            time.sleep(1)  # streams of 20 tokens at 10 ms: some are open at any moment
        took, code = container.stop(grace=10)
        REPORT.append(f"podman stop {args[0]}: {took:.2f} s, exit {code}")
        assert code == 0, container.logs()
        assert took <= 2.0, f"podman stop took {took:.1f} s"
