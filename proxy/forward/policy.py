"""What both upstream transports decide alike, written once: which requests may be sent
twice, how long an idle connection is kept, how a target becomes bytes, and what each
failure says.

The messages name the upstream URL: they go to the proxy's log and the request log, and
to a client only when the operator opts in (``--expose-upstream-errors``).
"""

from __future__ import annotations

# A request that may be sent again when a reused connection closes without answering:
# a POST replayed is a second generation on the GPU (RFC 9110 section 9.2.2; Go's transport).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Below the 5 s keep-alive timeout of uvicorn-based servers (vLLM and others): an idle
# connection is dropped before the server drops it, so a POST rarely meets a closing one.
IDLE_EXPIRY = 4.0


def encode_target(path: str) -> bytes:
    """The request target's bytes. ASGI servers decode ``raw_path`` as latin-1, so that
    gives back the client's own bytes; a decoded path with characters beyond latin-1
    (an embedder's) goes as UTF-8."""
    try:
        return path.encode("latin-1")
    except UnicodeEncodeError:
        return path.encode("utf-8")


def describe(error: BaseException | None) -> str:
    if error is None:
        return "connection closed"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- messages: each names the upstream and says what happened -------------------------


def connect_timeout(url: str, seconds: float) -> str:
    return f"no connection to upstream {url} within {seconds:g} s"


def cannot_connect(url: str, error: BaseException) -> str:
    return f"cannot connect to upstream {url}: {describe(error)}"


def pool_busy(url: str, connections: int, seconds: float) -> str:
    return f"all {connections} connections to upstream {url} stayed busy for {seconds:g} s"


def head_timeout(url: str, seconds: float) -> str:
    return f"upstream {url} sent no response headers within {seconds:g} s"


def failed_before_headers(url: str, error: BaseException | None) -> str:
    return f"upstream {url} failed before sending response headers: {describe(error)}"


def not_replayed(url: str, method: str) -> str:
    return f"upstream {url} closed a kept-alive connection without answering; a {method} is not sent twice"


def read_stall(url: str, seconds: float) -> str:
    return f"upstream {url} sent nothing for {seconds:g} s mid-response"


def broke_off(url: str, error: BaseException | None) -> str:
    return f"upstream {url} broke off the response: {describe(error)}"
