"""What the integrations (ASGI, aiohttp) share: a request object the engine understands, and a
WebSocket that carries an Engine.IO session over a framework's message-based WebSocket API.

The native server frames WebSocket messages itself; a framework frames them for us, so the
session hands this transport whole messages (``ws_messages``) and each connection has one writer
that passes them to the framework in order.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from fastio._core.conn import Conn, WSTransport
from fastio._core.eio import MESSAGE
from fastio.base.util import start_eagerly

__all__ = ["BridgeRequest", "BridgeWebSocket"]

Sender = Callable[[Any], Awaitable[None]]

CLOSE_NORMAL = 1000             # WebSocket close codes (RFC 6455 7.4.1)
CLOSE_PROTOCOL_ERROR = 1002


class BridgeRequest:
    """An HTTP request from a framework, with the interface the engine serves."""

    def __init__(self, method: str, path: str, query_string: bytes, headers: list[tuple[bytes, bytes]],
                 body: bytes, client: tuple[str, int] | None, server: tuple[str, int] | None,
                 upgrade: bool, environ: dict[str, Any], http_version: str = "1.1",
                 scheme: str = "http") -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.client = client
        self.server = server
        self.upgrade = upgrade
        self.environ = environ
        self.http_version = http_version
        self.scheme = scheme
        self.url = quote(path).encode() + (b"?" + query_string if query_string else b"")
        self.keep_alive = True
        self.responded = False
        self.on_abort: Callable[[Any], None] | None = None
        self.response: asyncio.Future[tuple[int, list[Any], bytes]] = asyncio.get_running_loop().create_future()
        self.websocket: BridgeWebSocket | None = None

    def header(self, name: bytes, default: Any = None) -> Any:
        """The value of header ``name`` (lower-case bytes), or ``default``."""
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def respond(self, status: int, headers: list[Any], body: bytes = b"") -> None:
        """Deliver the response (the framework sends it)."""
        if self.responded:
            return
        self.responded = True
        if not self.response.done():
            self.response.set_result((status, headers, bytes(body)))

    def accept_websocket(self, conn: Conn | None, probe: bool, extra_headers: list[Any] | None = None) -> "BridgeWebSocket | None":
        """Accept the WebSocket; it carries ``conn`` (``probe``: an upgrade still being probed)."""
        if self.responded:
            return None
        self.responded = True
        ws = BridgeWebSocket(conn, probe)
        self.websocket = ws
        if not self.response.done():
            self.response.set_result((101, extra_headers or [], b""))
        return ws


class BridgeWebSocket(WSTransport):
    """A framework WebSocket carrying an Engine.IO session.

    ``attach(send_text, send_bytes, close)`` connects it to the framework once accepted; inbound
    messages go to ``receive_text`` / ``receive_bytes``.
    """

    def __init__(self, conn: Conn | None, probe: bool) -> None:
        super().__init__()
        self.conn = conn
        self.probing = probe
        self.closed = False
        self.ws_messages = True
        self._out: collections.deque[Any] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self._writing = False
        self._send_text: Callable[[str], Awaitable[None]] | None = None
        self._send_bytes: Callable[[bytes], Awaitable[None]] | None = None
        self._close: Callable[[int], Awaitable[Any]] | None = None
        self._asgi_send: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.done = asyncio.get_running_loop().create_future()
        self.ws_paused = False

    def attach(self, send_text: Callable[[str], Awaitable[None]], send_bytes: Callable[[bytes], Awaitable[None]],
               close: Callable[[int], Awaitable[Any]]) -> None:
        """Connect to the framework's send/close coroutines and start writing."""
        self._send_text = send_text
        self._send_bytes = send_bytes
        self._close = close
        self._kick()

    def attach_asgi(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Connect to an ASGI ``send`` directly (one ASGI message per WebSocket message)."""
        self._asgi_send = send
        # The text/bytes/close callables are not used in ASGI mode (the writer builds ASGI
        # messages itself); attach() only needs them set to start writing.
        any_send: Any = send
        self.attach(any_send, any_send, any_send)

    # -- WSTransport --------------------------------------------------------------------------

    def ws_send_messages(self, messages: list[Any]) -> None:
        """Queue whole messages from the engine: ``str`` is text, ``bytes`` binary."""
        if self.closed:
            return
        self._out.extend(messages)
        self._kick()

    def ws_close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close after what is queued has been sent."""
        if self.closed:
            return
        self.closed = True
        self._out.append(("close", code))
        self._kick()

    def ws_answer_probe(self, conn: Conn) -> None:
        """Queue "3probe", then have the session end its pending long poll."""
        self._out.append("3probe")
        # The noop that lets the pending long poll return must reach the client after
        # "3probe": sent earlier, the client polls again and waits on that poll instead.
        self._out.append(("call", conn.end_poll))
        self._kick()

    # -- inbound ------------------------------------------------------------------------------

    def receive_text(self, text: str) -> None:
        """A text message from the peer."""
        data = text.encode("utf-8")
        if not data:
            self._fail()
            return
        conn = self.conn
        if self.probing:
            if conn is None:
                self.ws_close(CLOSE_NORMAL)
            elif conn.on_probe_packet(self, data):
                self.probing = False
        elif conn is not None:
            conn.on_packet(data[0] - 0x30, data[1:], False)  # the type digit, then the data

    def receive_bytes(self, data: bytes) -> None:
        """A binary message from the peer."""
        if self.conn is not None and not self.probing:
            self.conn.on_packet(MESSAGE, bytes(data), True)

    def lost(self, reason: str = "transport close") -> None:
        """The framework's WebSocket ended."""
        self.closed = True
        conn = self.conn
        if conn is not None and not self.probing and conn.ws is self:
            conn.close(reason, False)
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self) -> None:
        self.ws_close(CLOSE_PROTOCOL_ERROR)
        conn = self.conn
        if conn is not None and not self.probing and conn.ws is self:
            conn.close("transport error", False)

    # -- writer -------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._send_text is None or not self._out or self._writing:
            return
        if self._writer is None or self._writer.done():
            # Servers' send() usually completes without suspending (the transport takes the
            # bytes), so the writer runs eagerly and becomes a task only if a send has to wait.
            self._writing = True
            try:
                result = start_eagerly(self._write_all())
            finally:
                self._writing = False
            if isinstance(result, asyncio.Task):
                # The framework's send has to wait (a slow reader): the session keeps its output
                # queued, counted against max_write_buffer, until the writer has caught up.
                self._writer = result
                self.ws_paused = True
            else:
                self._writer = None

    async def _write_all(self) -> None:
        out = self._out
        assert self._send_text is not None and self._send_bytes is not None and self._close is not None
        asgi = self._asgi_send
        try:
            while out:
                item = out.popleft()
                if asgi is not None:
                    # ASGI: build the message here, saving a coroutine per message.
                    if type(item) is str:
                        await asgi({"type": "websocket.send", "text": item})
                        continue
                    if type(item) is bytes:
                        await asgi({"type": "websocket.send", "bytes": item})
                        continue
                    if item[0] == "call":
                        item[1]()
                        continue
                    await asgi({"type": "websocket.close", "code": item[1]})
                    self.lost("transport close")
                    return
                if type(item) is str:
                    await self._send_text(item)
                elif type(item) is bytes:
                    await self._send_bytes(item)
                elif item[0] == "call":
                    item[1]()
                else:
                    await self._close(item[1])
                    self.lost("transport close")
                    return
        except Exception:
            self.lost("transport error")
        finally:
            if self.ws_paused:
                self.ws_paused = False
                conn = self.conn
                if conn is not None and not self.closed and not self.probing and conn.ws is self:
                    conn.resume()

