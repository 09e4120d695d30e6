"""The collector policy is applied after start-up and undone at shutdown."""

from __future__ import annotations

import gc

import httpx

from proxy.simulator import SimConfig, create_app
from tests.support.servers import ThreadServer


def test_freeze_applies_while_serving_and_restores_after() -> None:
    before = gc.get_threshold()
    with ThreadServer(create_app(SimConfig(ttft=0, tbt=0, output_tokens=3))) as server:
        # What start-up left alive is frozen: full collections no longer walk it.
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == before
        assert gc.isenabled()
        assert httpx.get(server.url + "/health").status_code == 200
    assert gc.get_freeze_count() == 0


def test_gc_freeze_off_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with ThreadServer(create_app(SimConfig(gc_freeze=False))):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
