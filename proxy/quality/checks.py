"""The response checks of DESIGN.md section 15, for one response: watch it, then judge it.

``ResponseChecks`` is made per request when checks are on and the endpoint has an
extractor. Its ``observe`` goes on the tap's summary: the format calls it with every
object it parsed, and the extractor hands the pieces to a ``Content``. When the response
is over, ``results`` gives one ``(check, result)`` per check that applies:

- ``empty``: every answer; ``fail`` when it had no text, refusal or tool call;
- ``json``: when the request asked for JSON; the answer must parse, and match the schema
  when one was given. ``skipped`` when the text outgrew ``content.KEEP_LIMIT``, the
  schema is one the validator cannot use, or the document parses but is too long to
  validate on the event loop (``SCHEMA_LIMIT``); a refusal is not judged;
- ``tool_arguments``: one result per tool call (up to ``content.MAX_CALLS``): the joined
  arguments must parse as a JSON object, name a tool the request declared (when it
  declared any) and match that tool's schema;
- ``repetition``: every answer; ``fail`` when the tail is a loop (``repetition.py``).
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.quality import schemas
from proxy.quality.content import Call, Content
from proxy.quality.expect import Expect
from proxy.quality.extract import EXTRACTORS, Extractor
from proxy.quality.repetition import loop_period
from proxy.stream.base import StreamSummary

EMPTY, JSON, TOOL_ARGUMENTS, REPETITION = "empty", "json", "tool_arguments", "repetition"
CHECKS = (EMPTY, JSON, TOOL_ARGUMENTS, REPETITION)
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
RESULTS = (PASS, FAIL, SKIPPED)

Result = tuple[str, str]

# python-jsonschema validates about a kilobyte per millisecond on this 2-core machine
# (871 B: 0.7 ms, 13.6 KB: 10 ms, docs/quality.md), on the event loop when the answer
# ends. A longer document is checked for syntax only (orjson, microseconds), and its
# schema result is skipped, so one answer cannot stall every stream for long.
SCHEMA_LIMIT = 8 * 1024


def parse_checks(value: str) -> frozenset[str]:
    """``--checks``: ``all``, ``none``, or a comma-separated list of CHECKS."""
    names = {part.strip() for part in value.split(",") if part.strip()}
    if names == {"all"}:
        return frozenset(CHECKS)
    if names == {"none"} or not names:
        return frozenset()
    unknown = names - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))}; choose from all, none, {', '.join(CHECKS)}")
    return frozenset(names)


class ResponseChecks:
    __slots__ = ("content", "expect", "enabled", "errors", "watched", "body", "_extract")

    def __init__(self, extractor: Extractor, enabled: frozenset[str], expect: Expect | None, keep: bool = False) -> None:
        self.expect = expect
        self.enabled = enabled
        wants_json = expect is not None and expect.json and JSON in enabled
        self.content = Content(tail=REPETITION in enabled, keep=keep or wants_json)
        # Objects the extractor could not read; the tap's own parse errors are not touched.
        self.errors = 0
        # A tap's summary calls ``observe`` (set by the hub): without one, nothing was read.
        self.watched = False
        # The request body of an exchange sampled for the judge; None when not sampled.
        self.body: bytes | None = None
        self._extract = extractor

    @classmethod
    def create(cls, endpoint: str, enabled: frozenset[str], expect: Expect | None,
               keep: bool = False) -> ResponseChecks | None:
        """Checks for a response on ``endpoint``; None when none apply there."""
        extractor = EXTRACTORS.get(endpoint)
        if extractor is None or not (enabled or keep):
            return None
        return cls(extractor, enabled, expect, keep)

    def watch(self, summary: StreamSummary) -> None:
        """Read the answer the tap of ``summary`` parses."""
        self.watched = True
        summary.observer = self.observe

    def observe(self, obj: Any) -> None:
        try:
            self._extract(self.content, obj)
        except Exception:  # an odd shape must not reach the tap, whose parse errors it would inflate
            self.errors += 1

    def results(self) -> list[Result]:
        enabled = self.enabled
        content = self.content
        out: list[Result] = []
        if EMPTY in enabled:
            out.append((EMPTY, PASS if content.answered else FAIL))
        expect = self.expect
        if JSON in enabled and expect is not None and expect.json and not content.refused:
            out.append((JSON, _json_result(content.kept_text(), expect.schema)))
        if TOOL_ARGUMENTS in enabled and content.calls:
            tools = expect.tools if expect is not None else None
            out.extend((TOOL_ARGUMENTS, _call_result(call, tools)) for call in content.calls.values())
        if REPETITION in enabled:
            out.append((REPETITION, FAIL if loop_period(content.tail()) is not None else PASS))
        return out


def failed(results: list[Result]) -> list[str]:
    """The checks that failed, each named once, in CHECKS order (the log line's ``checks_failed``)."""
    names = {check for check, result in results if result == FAIL}
    return [check for check in CHECKS if check in names]


def _json_result(text: str | None, schema: Any) -> str:
    if text is None:
        return SKIPPED
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return FAIL
    if schema is not None and len(text) > SCHEMA_LIMIT:
        return SKIPPED
    return _schema_result(schema, document)


def _call_result(call: Call, tools: dict[str, Any] | None) -> str:
    if call.truncated:
        return SKIPPED
    if call.parts:
        arguments = call.arguments
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return FAIL
        if len(arguments) > SCHEMA_LIMIT:
            return SKIPPED if type(value) is dict else FAIL
    else:
        # No argument text at all: SDKs read that as no arguments, {} (Anthropic sends none
        # for a tool without parameters); a parsed value (Ollama) is taken as it came.
        value = call.value if call.value is not None else {}
        if type(value) is str:  # a server that sends Ollama-style calls with string arguments
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return FAIL
    if type(value) is not dict:
        return FAIL
    if tools is None or call.name is None:
        return PASS
    if call.name not in tools:
        return FAIL  # a tool the request never offered
    return _schema_result(tools[call.name], value)


def _schema_result(schema: Any, document: Any) -> str:
    if schema is None:
        return PASS
    valid = schemas.validate(schema, document)
    if valid is None:
        return SKIPPED
    return PASS if valid else FAIL
