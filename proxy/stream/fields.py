"""Small writers from parsed JSON values into a ``StreamSummary``, shared by the formats.

Servers disagree on details (a null here, a string there), so a value of another type
than the one a field holds is ignored rather than guessed at. A number of the right kind
that no server could mean is another matter: it is rejected and counted as a parse
error, never exported (docs/metrics.md, "What a server may report"):

- a token count is an integer from 0 to ``MAX_TOKENS``, and the cached part of the
  input is at most the input;
- a phase is a finite duration from 0 to ``MAX_PHASE_SECONDS``.

These run only on the fields that carry usage or timings (once per request, or once per
usage chunk for servers that repeat it), never per token event.
"""

from __future__ import annotations

from typing import Any

from proxy.stream.base import StreamSummary

# llama.cpp counts tokens in 32-bit signed integers and the largest context windows are
# about 10M tokens: a larger count is a broken or hostile server, and one such value
# would dwarf every later increase of a counter.
MAX_TOKENS = 2**31 - 1
# A phase of one request longer than a day is not a measurement; 1e308 ms would make a
# histogram's _sum useless for good.
MAX_PHASE_SECONDS = 86_400.0


def set_model(summary: StreamSummary, value: Any) -> None:
    """Keep the first model name the response states (every chunk repeats it)."""
    if summary.model is None and type(value) is str and value:
        summary.model = value


def set_finish(summary: StreamSummary, reason: str) -> None:
    """Record a finish reason from FINISH_REASONS; an error is final and is not overwritten."""
    if summary.finish_reason != "error":
        summary.finish_reason = reason


def count(summary: StreamSummary, value: Any) -> int | None:
    """A token count as the server wrote it, or None when it wrote none. A number that is
    not an integer from 0 to MAX_TOKENS (-1, 2.5, 2**64-1, 1e308) is None and a parse error."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    _impossible(summary, value)
    return None


def _impossible(summary: StreamSummary, value: Any) -> None:
    """``value`` failed a count's bounds: an error if it is a number at all (absent, null, a
    string or a bool is not a count, and is ignored)."""
    kind = type(value)
    if kind is int or kind is float:
        summary.parse_errors += 1


# The setters repeat count()'s test inline: with vLLM's continuous usage they run on every
# chunk, and a call less per field is what keeps that free (bench/tap_micro.py).
def set_input(summary: StreamSummary, value: Any) -> None:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        summary.input_tokens = value
        cached = summary.cached_input_tokens
        if cached is not None and cached > value:
            # The cached part came first (llama.cpp's timings) and is larger than the
            # whole: one of the two is wrong, and input is the count everything rests on.
            summary.cached_input_tokens = None
            summary.parse_errors += 1
    elif value is not None:
        kind = type(value)
        if kind is int or kind is float:
            # The server stated an impossible input: a cached count, before or after,
            # has nothing to be held to.
            summary.parse_errors += 1
            summary.input_rejected = True
            summary.cached_input_tokens = None


def set_output(summary: StreamSummary, value: Any) -> None:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        summary.output_tokens = value
    elif value is not None:
        _impossible(summary, value)


def set_cached(summary: StreamSummary, value: Any) -> None:
    """The cached part of the input. Kept when the input is not (yet) known, as llama.cpp's
    OpenAI streams without usage state ``cache_n`` alone; never above a known input."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        known = summary.input_tokens
        if known is None:
            if not summary.input_rejected:
                summary.cached_input_tokens = value
        elif value > known:
            summary.parse_errors += 1
        else:
            summary.cached_input_tokens = value
    elif value is not None:
        _impossible(summary, value)


def set_reasoning(summary: StreamSummary, value: Any) -> None:
    # Not held to reasoning <= output: xAI, for one, counts reasoning outside
    # completion_tokens.
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        summary.reasoning_output_tokens = value
    elif value is not None:
        _impossible(summary, value)


def set_phase(summary: StreamSummary, phase: str, value: Any, per_second: float) -> None:
    """Record a phase (one of PHASES) the server timed, ``value`` in its own unit, of which
    ``per_second`` make a second. A number outside 0 to MAX_PHASE_SECONDS (negative, 1e308)
    is a parse error; anything but a number is ignored."""
    if type(value) is int or type(value) is float:
        seconds = value / per_second
        if 0 <= seconds <= MAX_PHASE_SECONDS:
            phases = summary.phases
            if phases is None:
                phases = summary.phases = {}
            phases[phase] = seconds
        else:
            summary.parse_errors += 1


def openai_details(summary: StreamSummary, usage: Any, inp: str, out: str) -> None:
    """Cached and reasoning counts from OpenAI-style usage details: ``usage[inp].cached_tokens``
    and ``usage[out].reasoning_tokens`` (``prompt_tokens_details``/``completion_tokens_details``
    in chat, ``input_tokens_details``/``output_tokens_details`` in Responses)."""
    details = usage.get(inp)
    if type(details) is dict:
        set_cached(summary, details.get("cached_tokens"))
    details = usage.get(out)
    if type(details) is dict:
        set_reasoning(summary, details.get("reasoning_tokens"))
