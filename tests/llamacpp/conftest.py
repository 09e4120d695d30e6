"""Fixtures that run the real llama-server (built by scripts/llama-server.sh) and the proxy.

The binary and model are found through ``INFERMETER_LLAMA_SERVER`` and
``INFERMETER_LLAMA_MODEL``, else through the ``paths.env`` the script writes into its
cache. When they are missing the tests skip, naming the script, except under ``CI``:
there a missing model server is a broken pipeline, so the tests fail instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import ChildProcess, ChildServer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "llama-server.sh"
MODEL_ALIAS = "smollm2"
# One thread, not two: on this 2-core machine the proxy, the test client and other
# suites compete for the cores, and ggml's two workers then spin-wait on each other.
# Measured at load average ~5: 32 tokens took median 1.16 s (max 6.8 s) with -t 2,
# median 0.54 s (max 0.63 s) with -t 1.
THREADS = 1
# ggml's AMX weight repacking segfaults (ggml_backend_amx_mul_mat, in the warm-up run) on hosts
# whose CPU has AMX but whose kernel or VM does not let a process use it; without repacking
# the plain CPU kernels run everywhere.
SERVER_ENV = {"LLAMA_ARG_REPACK": "false"}


@dataclass(frozen=True)
class LlamaPaths:
    binary: Path
    model: Path


def _script_version() -> str:
    # The script is the single place the llama.cpp version is named; its cache key follows it.
    match = re.search(r'^LLAMA_CPP_PYTHON_VERSION="([^"]+)"', SCRIPT.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no LLAMA_CPP_PYTHON_VERSION in {SCRIPT}")
    return match.group(1)


def _paths_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "infermeter" / f"llama-server-{_script_version()}" / "paths.env"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def find_llama_paths() -> LlamaPaths | str:
    """The binary and model to use, or the reason they cannot be found."""
    binary = os.environ.get("INFERMETER_LLAMA_SERVER")
    model = os.environ.get("INFERMETER_LLAMA_MODEL")
    paths_file = _paths_file()
    if not (binary and model) and paths_file.is_file():
        recorded = _read_env_file(paths_file)
        binary = binary or recorded.get("LLAMA_SERVER_BIN")
        model = model or recorded.get("LLAMA_MODEL")
    hint = f"run `bash {SCRIPT.relative_to(REPO)}` to build llama-server and fetch the model"
    if not binary or not model:
        return f"llama-server not found (no INFERMETER_LLAMA_SERVER/INFERMETER_LLAMA_MODEL, no {paths_file}); {hint}"
    if not os.access(binary, os.X_OK):
        return f"llama-server binary {binary} is missing or not executable; {hint}"
    if not Path(model).is_file():
        return f"model {model} is missing; {hint}"
    return LlamaPaths(Path(binary), Path(model))


@pytest.fixture(scope="session")
def llama_paths() -> LlamaPaths:
    found = find_llama_paths()
    if isinstance(found, str):
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set, so not skipping: {found}", pytrace=False)
        pytest.skip(found)
    return found


class LlamaServer(ChildServer):
    """One llama-server process on a free loopback port, its log in ``log``."""

    def __init__(self, paths: LlamaPaths, log: Path, parallel: int = 2) -> None:
        super().__init__([
            str(paths.binary), "-m", str(paths.model), "--alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", "{port}",
            "-c", "4096", "-np", str(parallel), "-t", str(THREADS), "--metrics", "--no-webui",
        ], ready_path="/health", log=log, ready_timeout=60.0, env=SERVER_ENV)  # fmt: skip


def _proxy(upstream: str, *flags: str) -> ChildProcess:
    return ChildProcess(["serve", "--upstream", upstream, "--port", "{port}", *flags])


@pytest.fixture(scope="package")
def llama_server(llama_paths: LlamaPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-server with two slots, shared by this package's tests (each measures deltas)."""
    with LlamaServer(llama_paths, tmp_path_factory.mktemp("llama") / "server.log", parallel=2) as server:
        yield server


@pytest.fixture(scope="package")
def proxy(llama_server: LlamaServer) -> Iterator[ChildProcess]:
    with _proxy(llama_server.url) as child:
        yield child


@pytest.fixture(scope="package")
def proxy_inject(llama_server: LlamaServer) -> Iterator[ChildProcess]:
    """A second proxy in front of the same server, with --inject-usage."""
    with _proxy(llama_server.url, "--inject-usage", "true") as child:
        yield child


@pytest.fixture()
def llama_server_np1(llama_paths: LlamaPaths, tmp_path: Path) -> Iterator[LlamaServer]:
    """llama-server with a single slot, so a second request has to queue."""
    with LlamaServer(llama_paths, tmp_path / "server-np1.log", parallel=1) as server:
        yield server


@pytest.fixture()
def proxy_np1(llama_server_np1: LlamaServer) -> Iterator[ChildProcess]:
    with _proxy(llama_server_np1.url) as child:
        yield child
