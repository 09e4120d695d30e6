"""Bounded label values: ``model`` (DESIGN.md section 6, label rules) and the cap ``tenant`` shares."""

from __future__ import annotations

MAX_MODEL_CHARS = 128
OVERFLOW = "other"
UNKNOWN = "unknown"


class AdmittedLabels:
    """At most ``limit`` distinct values of one label, first come, never evicted; later
    values become ``other`` so a client cannot grow the series count without bound.

    ``--workers`` shares the admission list by overriding ``_learned`` and ``_take``
    (proxy.workers.models); models and tenants (proxy.metrics.tenants) are both capped so."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def admitted(self, label: str, admit: bool) -> str:
        """``label`` if it holds a slot, or takes a free one now (only if ``admit``); else ``other``."""
        if label in self._seen or self._learned(label):
            return label
        if not admit or len(self._seen) >= self.limit:
            return OVERFLOW
        return label if self._take(label) else OVERFLOW

    def _learned(self, label: str) -> bool:
        """Whether ``label`` was admitted elsewhere since we last looked (one process: never)."""
        return False

    def _take(self, label: str) -> bool:
        """Admit ``label`` into a free slot; False if the slots ran out meanwhile."""
        self._seen.add(label)
        return True


class ModelLabels(AdmittedLabels):
    """Cuts names to 128 characters and admits at most ``limit`` distinct ones."""

    def __call__(self, name: str | None, admit: bool = True) -> str:
        """The label for ``name``; a name not seen before takes a slot only if ``admit``."""
        if not name:
            return UNKNOWN
        label = name[:MAX_MODEL_CHARS]
        return label if label in self._seen else self.admitted(label, admit)
