"""Bounded ``model`` label values (DESIGN.md section 6, label rules)."""

from __future__ import annotations

MAX_MODEL_CHARS = 128
OVERFLOW = "other"
UNKNOWN = "unknown"


class ModelLabels:
    """Cuts names to 128 characters and admits at most ``limit`` distinct ones; later
    names become ``other`` so a client cannot grow the series count without bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, name: str | None, admit: bool = True) -> str:
        """The label for ``name``; a name not seen before takes a slot only if ``admit``."""
        if not name:
            return UNKNOWN
        label = name[:MAX_MODEL_CHARS]
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
