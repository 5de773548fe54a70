"""The native server's per-connection protocol: HTTP/1.1 (httptools) that can become a WebSocket."""
import asyncio
from typing import Any, Callable, Iterable

from fastio._core.conn import Conn, WSTransport
from fastio._core.contract import ConnectionHost

def status_line(status: int) -> bytes:
    """The HTTP/1.1 status line for ``status``, CRLF included."""

class Limits:
    """Bounds in size and time shared by every connection of one server (docs/reliability.md).

    A timeout of 0 (or less) disables it.  Defaults follow Node's http server where it has one."""
    max_header_size: int
    """Bytes of a request line and headers together (65,536); past it: 431 (414 when the URL
    alone is too long), refused while the head is still arriving."""
    max_write_buffer: int
    """Bytes of responses a peer may leave unread before its connection is aborted (the
    native server sets the engine's ``max_write_buffer``, 16 MiB)."""
    headers_timeout: float
    """Seconds a request's head may take, from its first byte (or from the accept for a new
    connection): 60.  Past it: 408 and the connection is aborted."""
    request_timeout: float
    """Seconds a whole request may take from its first byte, and a peer that does not read its
    responses may stall them: 300."""
    keep_alive_timeout: float
    """Seconds an idle keep-alive connection is kept: 5."""
    upgrade_timeout: float
    """Seconds a WebSocket upgrade may take: from the upgrade request to the 101, and for an
    upgrade from polling until the client's upgrade packet: 10."""
    close_timeout: float
    """Seconds a closing connection may take to send what is left before it is aborted: 5."""
    shutting_down: bool
    """Set while the server shuts down: closes wait for the shutdown deadline instead."""
    websocket_compression: bool
    """Whether a WebSocket upgrade that offers permessage-deflate gets it (False; the native
    server sets the engine's ``websocket_compression``)."""
    compression_threshold: int
    """The smallest data message, in bytes, sent compressed on such a WebSocket (1,024, as
    Node's ``perMessageDeflate.threshold``)."""
    def __init__(self, max_header_size: int = 65536, max_write_buffer: int = 16777216,
                 headers_timeout: float = 60.0, request_timeout: float = 300.0,
                 keep_alive_timeout: float = 5.0, upgrade_timeout: float = 10.0,
                 close_timeout: float = 5.0, websocket_compression: bool = False,
                 compression_threshold: int = 1024) -> None: ...
    def shortest_timeout(self) -> float:
        """The shortest enabled timeout (0.0 if none is)."""

def expired(connections: Iterable["HttpProtocol"], now: float) -> list["HttpProtocol"]:
    """The connections whose deadline is at or before ``now`` (``time.monotonic()``): one pass
    of the server's sweep, in C."""

class Request:
    """One parsed HTTP request on a native connection, answered once with ``respond`` (or a
    streamed response: ``start_response``, ``write``..., ``end``)."""
    method: str
    url: bytes
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    upgrade: bool
    http_version: str
    responded: bool
    streaming: bool
    ended: bool
    on_abort: Callable[["Request"], Any] | None
    environ: dict[str, Any] | None
    """Set by a host that builds the environ itself (``ASGIApp.uvicorn_ws``); else None."""
    def header(self, name: bytes, default: Any = None) -> Any:
        """The value of header ``name`` (lower-case bytes), or ``default``."""
    @property
    def client(self) -> tuple[str, int] | None:
        """(host, port) of the peer."""
    @property
    def server(self) -> tuple[str, int] | None:
        """(host, port) the connection was accepted on."""
    @property
    def protocol(self) -> "HttpProtocol":
        """The connection's protocol object."""
    @property
    def closed(self) -> bool:
        """True once the connection carrying this request is gone or closing."""
    def respond(self, status: int, headers: list[tuple[Any, Any]], body: bytes | str = b"") -> None:
        """Send the response.  ``headers`` is a list of (name, value) pairs, str or bytes;
        Content-Length is added."""
    def start_response(self, status: int, headers: list[tuple[Any, Any]]) -> None:
        """Begin a streamed response (chunked transfer encoding); follow with ``write`` and ``end``."""
    def write(self, data: bytes) -> None:
        """Send one chunk of a streamed response."""
    def end(self) -> None:
        """Finish a streamed response."""
    def accept_websocket(self, conn: Conn | None, probe: bool, extra_headers: list[Any] | None = None) -> "HttpProtocol | None":
        """Answer 101 and switch the connection to WebSocket frames carrying ``conn``.

        ``probe``: an upgrade from polling, not the session's transport until the client's
        upgrade packet (see ``Conn.on_probe_packet``).  Returns the protocol (a ``WSTransport``),
        or None if the request was already answered."""

class HttpProtocol(WSTransport, asyncio.Protocol):
    """asyncio protocol for one TCP connection of the native server.

    Requests are served one at a time in arrival order (pipelined requests wait their turn
    behind a long poll), iteratively and a bounded number per loop iteration; nothing more is
    read while the peer leaves its responses unread.  A WebSocket upgrade switches the same
    object to RFC 6455 frames; it then carries an Engine.IO session as its ``WSTransport``.
    ``max_body`` bounds a request body (a larger Content-Length gets 413 before the body is
    read), ``max_message`` a WebSocket message (1,000,000 bytes each by default); ``limits``
    the rest (a shared default ``Limits()`` if None)."""
    app: ConnectionHost
    peername: Any
    sockname: Any
    probing: bool
    conn: Conn | None
    max_body: int
    max_message: int
    closed: bool
    limits: Limits
    deadline: float
    """When the server's sweep ends this connection (``time.monotonic()``); 0.0: no deadline."""
    def __init__(self, app: ConnectionHost, max_body: int = ..., max_message: int = ...,
                 limits: Limits | None = None) -> None: ...
    def close_transport(self) -> None:
        """Close this connection gracefully (a WebSocket with 1001): what is buffered is sent first."""
    def abort(self) -> None:
        """Close this connection at once, dropping whatever is still buffered for it."""
    def timed_out(self) -> None:
        """The connection passed its deadline: a request still arriving gets 408; then abort."""
