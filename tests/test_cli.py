"""The command line: every flag has an env var, bad values stop the start with one line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from proxy.cli import SERVE_FLAGS, SIM_FLAGS, build_parser, main
from proxy.config import ConfigError, Settings


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, flag", [
    (["--upstream", "ftp://x"], "--upstream"),
    (["--upstream", "http://user:hunter2@127.0.0.1:8000"], "--upstream"),
    (["--port", "70000"], "--port"),
    (["--port", "eighty"], "--port"),
    (["--read-timeout", "-1"], "--read-timeout"),
    (["--collectors", "system,disk"], "--collectors"),
    (["--upstream-client", "curl"], "--upstream-client"),
    (["--max-models", "0"], "--max-models"),
])
def test_bad_serve_values_fail_with_one_line(args: list[str], flag: str) -> None:
    result = _run("serve", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr


def test_env_var_names_the_flag_it_set() -> None:
    result = _run("serve", env={"INFERMETER_READ_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert "--read-timeout (from INFERMETER_READ_TIMEOUT)" in result.stderr


def test_every_serve_flag_maps_to_a_setting_and_an_env_var() -> None:
    fields = {f.name for f in dataclasses.fields(Settings) if f.init}
    assert {f.replace("-", "_") for f in SERVE_FLAGS} == fields
    assert build_parser().parse_args(["serve"]).command == "serve"
    help_text = _run("serve", "--help").stdout
    for flag in SERVE_FLAGS:
        assert f"--{flag}" in help_text and "INFERMETER_" + flag.upper().replace("-", "_") in help_text
    sim_help = _run("simulate", "--help").stdout
    for flag in SIM_FLAGS:
        assert "INFERMETER_SIM_" + flag.upper().replace("-", "_") in sim_help


def test_simulator_rejects_bad_values() -> None:
    assert main(["simulate", "--tbt", "-1"]) == 2


def test_settings_reject_equal_ports() -> None:
    with pytest.raises(ConfigError, match="--metrics-port"):
        Settings(port=9000, metrics_port=9000)


def test_load_drives_requests_through_a_proxy(sim: object, proxy: object) -> None:
    from tests.support.metrics import scrape
    url = proxy.url  # type: ignore[attr-defined]
    result = _run("load", "--target", url, "--concurrency", "2", "--duration", "1.5")
    assert result.returncode == 0, result.stderr
    m = scrape(url)
    assert m.get("infermeter_requests_total", outcome="completed") >= 2
    assert m.get("infermeter_requests_total", code="200") == m.get("infermeter_requests_total")


def test_demo_shows_live_numbers() -> None:
    result = _run("demo", "--port", "0", "--duration", "4", "--interval", "1.5", "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("req/s")]
    assert len(lines) >= 2, result.stdout
    # By the second summary the simulator's 150 ms first token shows up as a real TTFT.
    assert "TTFT p50    -  " not in lines[-1] and "metrics: http://127.0.0.1:" in result.stdout


def test_switches_work_bare_and_with_a_value() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--inject-usage"]).inject_usage == "true"
    assert parser.parse_args(["serve", "--observe", "false"]).observe == "false"
    assert main(["serve", "--inject-usage", "maybe"]) == 2


def test_help_names_each_value_and_shows_its_default() -> None:
    help_text = " ".join(_run("serve", "--help").stdout.split())
    assert "--read-timeout SECONDS" in help_text and "INFERMETER_READ_TIMEOUT; default 600.0]" in help_text
    assert "--upstream URL" in help_text and "default http://127.0.0.1:8000]" in help_text
    assert "--max-request-bytes BYTES" in help_text and "--max-models N" in help_text
    assert "--inject-usage [BOOL]" in help_text and "default false]" in help_text
    assert " VALUE" not in help_text
    sim_help = " ".join(_run("simulate", "--help").stdout.split())
    assert "--ttft SECONDS" in sim_help and "default 0.2]" in sim_help
