"""The SSE framer against the WHATWG event-stream rules, and against a whole-body reference."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.stream.sse import SSEFramer
from tests.stream.cases import split


def frame(*chunks: bytes, limit: int = 1 << 20) -> tuple[list[tuple[bytes, bytes]], int]:
    framer = SSEFramer(limit)
    events = [event for chunk in chunks for event in framer.feed(chunk)]
    events += framer.close()
    return events, framer.dropped


def reference(body: bytes) -> list[tuple[bytes, bytes]]:
    """A direct, non-incremental reading of the standard (plus our two documented departures)."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    lines = re.split(rb"\r\n|\r|\n", body)
    events: list[tuple[bytes, bytes]] = []
    data: list[bytes] = []
    event = b""
    for line in lines:
        if not line:
            if data:
                events.append((event or b"message", b"\n".join(data)))
            data, event = [], b""
            continue
        if line.startswith(b":"):
            continue
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value
        elif field == b"error":
            event = b"error"
            data.append(value)
    if data:
        events.append((event or b"message", b"\n".join(data)))
    return events


def test_fields_comments_and_defaults() -> None:
    body = (
        b": keep-alive comment\n"
        b"data: first\n\n"
        b"event: update\nid: 7\nretry: 1000\nunknown: x\ndata:no space\ndata:  two spaces\n\n"
        b"data\n\n"
        b"event: ignored because no data\n\n"
        b"data: after reset\n\n"
    )
    assert frame(body)[0] == [
        (b"message", b"first"),
        (b"update", b"no space\n two spaces"),
        (b"message", b""),
        (b"message", b"after reset"),
    ]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert frame(b"data: a\ndata: b\ndata:\ndata: c\n\n")[0] == [(b"message", b"a\nb\n\nc")]


def test_crlf_cr_and_cr_split_before_lf() -> None:
    expected = [(b"message", b"x"), (b"e", b"y")]
    assert frame(b"data: x\r\n\r\nevent: e\r\ndata: y\r\n\r\n")[0] == expected
    assert frame(b"data: x\r\revent: e\rdata: y\r\r")[0] == expected
    # "\r" ends one chunk and "\n" opens the next: one line end, not two.
    assert frame(b"data: x\r", b"\n\r", b"\nevent: e\r", b"\ndata: y\r", b"", b"\n\r", b"\n")[0] == expected


def test_bom_is_stripped_only_at_the_start() -> None:
    assert frame(b"\xef\xbb", b"\xbfdata: a\n\n")[0] == [(b"message", b"a")]


def test_error_field_is_an_error_event() -> None:
    body = b'error: {"code":400,"message":"context exceeded"}\n\n'
    assert frame(body)[0] == [(b"error", b'{"code":400,"message":"context exceeded"}')]


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    assert frame(b"data: a\n\ndata: b")[0] == [(b"message", b"a"), (b"message", b"b")]
    assert frame(b"data: a\n\ndata: b\n")[0] == [(b"message", b"a"), (b"message", b"b")]


def test_oversized_line_is_dropped_and_counted_once() -> None:
    big = b"data: " + b"x" * 100 + b"\n\n"
    body = b"data: a\n\n" + big + b"data: b\n\n"
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))], split(body, [20, 50])):
        assert frame(*chunks, limit=64) == ([(b"message", b"a"), (b"message", b"b")], 1)


def test_oversized_event_is_dropped_and_counted_once() -> None:
    lines = b"".join(b"data: " + b"y" * 20 + b"\n" for _ in range(10))
    body = b"data: a\n\n" + lines + b"\ndata: b\n\n"
    assert frame(body, limit=64) == ([(b"message", b"a"), (b"message", b"b")], 1)


def test_unterminated_oversized_line_is_not_held() -> None:
    framer = SSEFramer(64)
    for _ in range(1000):
        framer.feed(b"z" * 50)
    assert len(framer._lines._buf) == 0
    assert framer.dropped == 1
    assert framer.feed(b"\ndata: ok\n\n") == [(b"message", b"ok")]


SSE_PIECES = st.sampled_from(
    [b"data:", b"data: ", b"event:", b"error:", b"id:", b": c", b":", b" ", b"x", b"{}", b"\n", b"\r", b"\r\n", b"\n\n"]
)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(SSE_PIECES, max_size=40), points=st.lists(st.integers(0, 400), max_size=20))
def test_matches_reference_under_any_chunking(pieces: list[bytes], points: list[int]) -> None:
    body = b"".join(pieces)
    expected = reference(body)
    assert frame(body)[0] == expected
    assert frame(*split(body, [p for p in points if p <= len(body)]))[0] == expected
