"""The native server's per-connection protocol: HTTP/1.1 (httptools) that can become a WebSocket."""
import asyncio
from typing import Any, Callable

from fastio._core.conn import Conn, WSTransport
from fastio._core.contract import ConnectionHost

def status_line(status: int) -> bytes:
    """The HTTP/1.1 status line for ``status``, CRLF included."""

class Request:
    """One parsed HTTP request on a native connection."""
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
        """True once the connection is gone."""
    def respond(self, status: int, headers: list[tuple[Any, Any]], body: bytes | str = b"") -> None:
        """Send a complete response."""
    def start_response(self, status: int, headers: list[tuple[Any, Any]]) -> None:
        """Begin a chunked response."""
    def write(self, data: bytes) -> None:
        """Send one chunk."""
    def end(self) -> None:
        """Finish a chunked response."""
    def accept_websocket(self, conn: Conn | None, probe: bool, extra_headers: list[Any] | None = None) -> "HttpProtocol | None":
        """Answer 101 and switch the connection to WebSocket frames carrying ``conn``."""

class HttpProtocol(WSTransport, asyncio.Protocol):
    """asyncio protocol for one TCP connection of the native server."""
    app: ConnectionHost
    peername: Any
    sockname: Any
    probing: bool
    conn: Conn | None
    max_body: int
    max_message: int
    closed: bool
    def __init__(self, app: ConnectionHost, max_body: int = 1_000_000, max_message: int = 1_000_000) -> None: ...
    def close_transport(self) -> None:
        """Close this connection (a WebSocket with 1001)."""
