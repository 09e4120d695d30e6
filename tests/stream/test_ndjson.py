"""Line splitting and the NDJSON tap: chunk boundaries, CRLF, blank lines, the size limit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.stream import ollama
from proxy.stream.lines import LineBuffer
from proxy.stream.ndjson import NDJSONTap
from tests.stream.cases import run, split


def lines_of(*chunks: bytes, cr: bool = False, limit: int = 1 << 20) -> tuple[list[bytes], int]:
    buffer = LineBuffer(cr=cr, limit=limit)
    out = [line for chunk in chunks for line in buffer.feed(chunk)]
    tail = buffer.flush()
    if tail is not None:
        out.append(tail)
    return out, buffer.dropped


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"{}"]), max_size=40),
    points=st.lists(st.integers(0, 120), max_size=20),
    cr=st.booleans(),
)
def test_lines_match_a_whole_body_split(pieces: list[bytes], points: list[int], cr: bool) -> None:
    body = b"".join(pieces)
    normalized = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if cr else body
    expected = normalized.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert lines_of(*split(body, [p for p in points if p <= len(body)]), cr=cr) == (expected, 0)


def test_limit_drops_long_lines_whatever_the_chunking() -> None:
    body = b"short\n" + b"L" * 30 + b"\nnext\n" + b"M" * 30
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))], split(body, [3, 8, 20])):
        assert lines_of(*chunks, limit=10) == ([b"short", b"next"], 2)


def test_blank_lines_and_crlf_are_tolerated() -> None:
    body = b'\n{"model":"m","response":"a","done":false}\r\n\r\n  \n{"model":"m","response":"","done":true,"eval_count":1}'
    tap = NDJSONTap(ollama.on_line)
    summary = run(tap, [body])
    assert (summary.token_events, summary.output_tokens, summary.finish_reason, summary.parse_errors) == (1, 1, "other", 0)


def test_oversized_ndjson_line_counts_a_parse_error() -> None:
    tap = NDJSONTap(ollama.on_line, limit=64)
    body = b'{"response":"' + b"x" * 100 + b'","done":false}\n{"response":"ok","done":false}\n'
    summary = run(tap, split(body, [10, 70, 120]))
    assert (summary.token_events, summary.parse_errors) == (1, 1)
