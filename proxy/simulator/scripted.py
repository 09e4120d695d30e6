"""A fixed output text instead of the generated words: for answers with a known shape.

``x-sim-output`` (a request header, the text as a JSON string, for one request) or ``SimConfig.output_text``
(every request: ``simulate --output-text``, e.g. a judge that always answers a verdict)
replace the vocabulary's words with the given text, cut into tokens at word starts (a
token is a word with the whitespace before it, as the vocabulary's are). Tests use it
for answers the checks must judge: invalid JSON, JSON against a schema, a loop, an
empty answer (an empty text: zero tokens).
"""

from __future__ import annotations

import re

import orjson

_TOKEN = re.compile(r"\s*\S+|\s+$")


class ScriptedText:
    """The ``Vocabulary`` interface over one fixed text."""

    __slots__ = ("_texts", "_json", "first_json", "first_text")

    def __init__(self, text: str) -> None:
        self._texts: list[str] = _TOKEN.findall(text)
        self._json = [orjson.dumps(t) for t in self._texts]
        self.first_text = self._texts[0] if self._texts else ""
        self.first_json = orjson.dumps(self.first_text)

    @property
    def count(self) -> int:
        return len(self._texts)

    def json(self, i: int) -> bytes:
        return self._json[i]

    def text(self, i: int) -> str:
        return self._texts[i]

    def token_id(self, i: int) -> bytes:
        return str(1000 + i).encode()

    def joined(self, n: int) -> str:
        return "".join(self._texts[:n])
