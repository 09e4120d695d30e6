"""The client-facing HTTP/1.1 edge: uvicorn's httptools protocol with the limits nginx keeps.

uvicorn bounds none of a request head: one connection could send a 168 MB header (RSS
grew by 237 MB and /healthz took 8 s) or 100,000 headers, and all of it was forwarded
upstream. Here, as nginx's ``large_client_header_buffers`` and Envoy's header limits do,
the request line, each header, the whole head and the header count are bounded; the
first limit crossed is answered at once (414 for the line, 431 otherwise) and the
connection closes. A head must also arrive within a deadline (slowloris), and a body
may not pause longer than --body-timeout, read by the app or not. Request trailers are
dropped (they would otherwise join the headers the relay forwards), and a
Transfer-Encoding other than plain ``chunked``, or one on HTTP/1.0, is refused as nginx
refuses it (501, 400): two framings one hop may read differently are a smuggling risk.

Pipelined requests are parsed one at a time, as nginx does: the next waits unparsed
(and the connection unread) until the response before it is done, so one connection
holds one request, not thousands. Only a request's first byte resets the idle clock.

``refusals`` holds the checks and answers; ``protocol`` the connection's state machine.
"""

from proxy.edge.protocol import EdgeProtocol, edge_protocol

__all__ = ["EdgeProtocol", "edge_protocol"]
