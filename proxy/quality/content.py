"""What an answer said, kept only as far as the checks need it, filled delta by delta.

The format extractors (``extract.py``) call ``text``, ``reasoning``, ``refusal`` and
``call`` with the pieces the tap's parse already produced. Memory is bounded whatever
the answer's length:

- the repetition tail: the last ``WINDOW`` to ``2 * WINDOW`` characters of text and
  reasoning (``repetition.WINDOW``), only when that check is on;
- the answer's text, only when a check or the judge needs it (JSON was asked for, or the
  exchange was sampled for evaluation), and the tool calls' argument text: together at
  most ``limit`` characters (``KEEP_LIMIT``); past it the text stops growing and
  ``overflow`` is set, so a JSON check on it is ``skipped``, not guessed;
- at most ``MAX_CALLS`` tool calls; later ones are counted in ``calls_dropped``.

A plain stream with no JSON asked for costs one method call and a list append per delta.
"""

from __future__ import annotations

from typing import Any

from proxy.quality.repetition import WINDOW

KEEP_LIMIT = 16 * 1024
MAX_CALLS = 16


class Call:
    """One tool call: its name once known, and its arguments (text deltas, or a parsed value)."""

    __slots__ = ("name", "parts", "value", "truncated")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.parts: list[str] = []
        self.value: Any = None
        self.truncated = False

    @property
    def arguments(self) -> str:
        return "".join(self.parts)


class Content:
    __slots__ = ("answered", "refused", "overflow", "calls", "calls_dropped",
                 "_tail", "_tail_size", "_keep", "_kept", "_budget")

    def __init__(self, *, tail: bool, keep: bool, limit: int = KEEP_LIMIT) -> None:
        # Output content seen: text, a refusal or a tool call (reasoning alone is not an answer).
        self.answered = False
        self.refused = False
        self.overflow = False
        self.calls: dict[Any, Call] = {}
        self.calls_dropped = 0
        self._tail: list[str] | None = [] if tail else None
        self._tail_size = 0
        self._keep = keep
        self._kept: list[str] = []
        # Characters of answer text and tool-call arguments that may still be kept.
        self._budget = limit

    def text(self, piece: str) -> None:
        self.answered = True
        if self._tail is not None:
            self._add_tail(piece)
        if self._keep:
            self._keep_text(piece)

    def reasoning(self, piece: str) -> None:
        if self._tail is not None:
            self._add_tail(piece)

    def refusal(self, piece: str) -> None:
        self.answered = self.refused = True

    def call(self, key: Any, name: Any, arguments: Any) -> None:
        """A tool call's name (when this piece states it) and a piece of its argument text."""
        self.answered = True
        call = self._call(key, name)
        if call is None or type(arguments) is not str or not arguments:
            return
        if len(arguments) > self._budget:
            call.truncated = True
            self._budget = 0
            return
        self._budget -= len(arguments)
        call.parts.append(arguments)

    def call_value(self, key: Any, name: Any, value: Any) -> None:
        """A tool call whose arguments came whole and already parsed (Ollama, Anthropic bodies)."""
        self.answered = True
        call = self._call(key if key is not None else len(self.calls) + self.calls_dropped, name)
        if call is not None:
            call.value = value

    def kept_text(self) -> str | None:
        """The answer's text as kept; None when it outgrew the limit or was not kept."""
        if not self._keep or self.overflow:
            return None
        return "".join(self._kept)

    def partial_text(self) -> str:
        """As much of the answer's text as was kept (for the judge: a long answer is cut)."""
        return "".join(self._kept)

    def tail(self) -> str:
        return "".join(self._tail)[-WINDOW:] if self._tail else ""

    def _call(self, key: Any, name: Any) -> Call | None:
        call = self.calls.get(key)
        if call is None:
            if len(self.calls) >= MAX_CALLS:
                self.calls_dropped += 1
                return None
            call = self.calls[key] = Call(None)
        if call.name is None and type(name) is str and name:
            call.name = name
        return call

    def _add_tail(self, piece: str) -> None:
        tail = self._tail
        assert tail is not None
        tail.append(piece)
        self._tail_size += len(piece)
        if self._tail_size > 2 * WINDOW:
            # Joined once per WINDOW characters: amortised, a few bytes per delta.
            kept = "".join(tail)[-WINDOW:]
            tail[:] = [kept]
            self._tail_size = len(kept)

    def _keep_text(self, piece: str) -> None:
        if len(piece) > self._budget:
            self._kept.append(piece[: self._budget])
            self._budget = 0
            self.overflow = True
            return
        self._budget -= len(piece)
        self._kept.append(piece)
