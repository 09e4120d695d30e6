"""The tenant label's cap: who takes a slot, and what never does (one process and shared)."""

from __future__ import annotations

from pathlib import Path

from proxy.metrics.tenants import INVALID, NONE, OTHER, TenantLabels
from proxy.tenants.names import is_tenant_name, tenant_value
from proxy.workers.models import SharedTenantLabels


def test_values_are_cut_checked_and_empty_is_none() -> None:
    assert tenant_value(b"  team-a  ") == "team-a"
    assert tenant_value(b"x" * 65) == "x" * 64
    assert tenant_value(b"a/b") == INVALID and tenant_value("é".encode()) == INVALID
    assert tenant_value(b"") == NONE and tenant_value(b"   ") == NONE
    assert is_tenant_name("key:0a1b2c3d") and not is_tenant_name("none") and not is_tenant_name("a b")


def test_only_an_ok_answer_takes_a_slot_and_reserved_values_never_do() -> None:
    labels = TenantLabels(2)
    for value in (NONE, INVALID, OTHER):
        assert labels.label_for(value, ok=True) == value
    assert labels.label_for("probe", ok=False) == OTHER
    assert labels.label_for("a", ok=True) == "a"
    assert labels.label_for("a", ok=False) == "a"  # admitted: kept on any answer
    assert labels.label_for("probe", ok=False) == OTHER
    assert labels.label_for("b", ok=True) == "b"
    assert labels.label_for("c", ok=True) == OTHER
    assert labels.label_for(NONE, ok=True) == NONE  # still itself once the slots are gone


def test_workers_share_the_slots(tmp_path: Path) -> None:
    path = str(tmp_path / "tenants")
    a, b = SharedTenantLabels(2, path), SharedTenantLabels(2, path)
    try:
        assert a.label_for("t1", ok=True) == "t1"
        assert b.label_for(NONE, ok=True) == NONE
        assert b.label_for("t2", ok=True) == "t2"
        assert a.label_for("t3", ok=True) == OTHER and b.label_for("t3", ok=True) == OTHER
        assert a.label_for("t2", ok=False) == "t2" and b.label_for("t1", ok=False) == "t1"
    finally:
        a.close()
        b.close()
