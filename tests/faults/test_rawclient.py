"""The raw client reads one response at a time, whatever arrives with it (issue 19: a
pipelined response that came in the same segment as the one before it was lost)."""

from __future__ import annotations

import socket

import pytest

from tests.faults.rawclient import read_response

NO_CONTENT = b'HTTP/1.1 204 No Content\r\netag: "v1"\r\n\r\n'
CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntok\r\n0\r\n\r\n"
SIZED = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.mark.parametrize("first", [NO_CONTENT, CHUNKED, SIZED], ids=["204", "chunked", "content-length"])
def test_responses_in_one_segment_are_read_one_by_one(first: bytes) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(first + CHUNKED + SIZED)
        assert read_response(ours, 2) == first
        assert read_response(ours, 2) == CHUNKED
        assert read_response(ours, 2) == SIZED


def test_a_response_split_across_writes_is_read_whole() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(CHUNKED[:20])
        theirs.sendall(CHUNKED[20:] + SIZED[:5])
        assert read_response(ours, 2) == CHUNKED
        theirs.sendall(SIZED[5:])
        assert read_response(ours, 2) == SIZED


def test_what_came_before_the_peer_closed() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.sendall(SIZED[:-1])
        theirs.close()
        assert read_response(ours, 2) == SIZED[:-1]
