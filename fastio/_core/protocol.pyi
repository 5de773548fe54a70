"""The native server's per-connection protocol: HTTP/1.1 (httptools) that can become a WebSocket."""
import asyncio
from typing import Any, Callable

from fastio._core.conn import Conn, WSTransport
from fastio._core.contract import ConnectionHost

def status_line(status: int) -> bytes:
    """The HTTP/1.1 status line for ``status``, CRLF included."""

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
        """True once the connection carrying this request is gone."""
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
    behind a long poll).  A WebSocket upgrade switches the same object to RFC 6455 frames; it then
    carries an Engine.IO session as its ``WSTransport``.  ``max_body`` bounds a request body,
    ``max_message`` a WebSocket message (1,000,000 bytes each by default)."""
    app: ConnectionHost
    peername: Any
    sockname: Any
    probing: bool
    conn: Conn | None
    max_body: int
    max_message: int
    closed: bool
    def __init__(self, app: ConnectionHost, max_body: int = ..., max_message: int = ...) -> None: ...
    def close_transport(self) -> None:
        """Close this connection (a WebSocket with 1001)."""
