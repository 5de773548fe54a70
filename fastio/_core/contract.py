"""The calls the compiled core makes into Python, declared in one place.

The core (``fastio._core``) holds no reference to a Python class: it calls methods on two objects
it is given.  A ``Conn`` calls its ``handler`` (the Engine.IO server, :class:`EngineCallbacks`);
a native ``HttpProtocol`` calls its ``app`` (a router, :class:`ConnectionHost`).  These protocols
are the whole of that surface; the core calls nothing else, and tests check that it reaches no
private name.  A class that implements one of them can be handed to the core in place of fastio's
own (the unit tests and ``bench/micro.py`` do so with small fakes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover - types only
    from fastio._core.conn import Conn, WSTransport
    from fastio._core.protocol import HttpProtocol, Request

__all__ = ["MessageSink", "CloseSink", "EngineCallbacks", "ConnectionHost"]

MessageSink = Callable[["Conn", bytes, bool], Any]
"""Receives each Engine.IO message of a session: ``(conn, data, binary)``.  ``data`` is the raw
payload (UTF-8 bytes for a text message)."""

CloseSink = Callable[["Conn", str], Any]
"""Told once when a session ends: ``(conn, reason)``."""


class EngineCallbacks(Protocol):
    """What a ``Conn`` calls on its ``handler``: the Engine.IO server that owns the session."""

    message_sink: MessageSink
    """Read once, when the ``Conn`` is made: where its messages go."""

    heartbeat_interval: float
    """Seconds between the server's pings (the ping interval plus its grace period)."""

    ping_timeout: float
    """Seconds a client has to answer a ping; an Engine.IO v3 client (``Conn.eio3``), which
    sends the pings, must send the next one within ``heartbeat_interval + ping_timeout``."""

    def answer_poll(self, conn: Conn, req: Request, body: bytes) -> None:
        """Send ``body`` (an encoded payload) as the response to the waiting long poll ``req``."""

    def conn_closed(self, conn: Conn, reason: str) -> None:
        """The session ended (called once, after its last write)."""

    def overflow(self, conn: Conn) -> None:
        """The session's queued output passed its ``max_buffer``: the peer does not read."""

    def protocol_error(self, conn: Conn, message: str) -> None:
        """The peer sent a packet the protocol does not allow."""

    def message_error(self, conn: Conn, exc: BaseException) -> None:
        """The message sink raised ``exc``; the session goes on."""

    def probe_started(self, conn: Conn) -> None:
        """A WebSocket probe of this polling session was answered (``3probe`` on its way)."""

    def conn_upgraded(self, conn: Conn, ws: WSTransport) -> None:
        """The client sent the upgrade packet on ``ws``: the session moves from long-polling to it
        (called by ``Conn.on_probe_packet``, for every transport, just before ``conn.upgrade``)."""


class ConnectionHost(Protocol):
    """What a native ``HttpProtocol`` calls on its ``app``."""

    local_addr: tuple[str, int] | None
    """The address requests report as their server (None: the socket's own)."""

    def handle_request(self, req: Request) -> None:
        """Serve one parsed request; it must be answered once, now or later."""

    def connection_opened(self, proto: HttpProtocol) -> None:
        """A TCP connection was accepted."""

    def connection_closed(self, proto: HttpProtocol) -> None:
        """A TCP connection ended."""

    def log_exception(self, message: str, exc: BaseException) -> None:
        """``handle_request`` raised; the request was answered with 500."""

    def log_ws_error(self, proto: HttpProtocol, code: int, reason: str) -> None:
        """The peer broke the WebSocket protocol; the connection closes with ``code``."""
