"""Engine.IO client: the WebSocket transport, on picows.

:func:`open_websocket` runs the handshake (the user's picows options applied, a refusal turned
into ``ConnectionError`` with the server's JSON body); the :class:`WSListener` it returns turns
frames into whole messages (fragments joined) and hands them to a sink, keeping those that arrive
before a sink is attached (the OPEN packet, the probe answer) for :meth:`WSListener.next_message`.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
from typing import Any, Callable

from picows import WSCloseCode, WSListener as PicowsListener, WSMsgType, ws_connect

from fastio import exceptions
from fastio.engineio.client_http import json_body

__all__ = ["WSListener", "open_websocket", "MAX_FRAME_SIZE"]

#: The largest frame accepted from the server, unless ``max_frame_size`` is given.
MAX_FRAME_SIZE = 100 * 1024 * 1024

#: ``ws_connect`` keywords (picows) and ``loop.create_connection`` keywords it forwards.
_WS_OPTIONS = frozenset(inspect.signature(ws_connect).parameters) - {"ws_listener_factory", "url", "kwargs"}
_CONNECTION_OPTIONS = frozenset({
    "family", "proto", "flags", "local_addr", "server_hostname", "happy_eyeballs_delay",
    "interleave", "ssl_handshake_timeout", "ssl_shutdown_timeout",
})


class WSListener(PicowsListener):  # type: ignore[misc]
    """picows callbacks of one WebSocket; hands complete messages to a sink.

    :param logger: where errors in frame handling are reported.
    :param on_disconnected: called with this listener when its connection is gone.
    """

    def __init__(self, logger: logging.Logger, on_disconnected: Callable[["WSListener"], None]) -> None:
        super().__init__()
        self.logger = logger
        self.on_disconnected = on_disconnected
        self.transport: Any = None
        self.sink: Callable[[bytes, bool], None] | None = None
        self.pending: list[tuple[bytes, bool]] = []
        self.closed = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_binary = False

    # picows callbacks

    def on_ws_connected(self, transport: Any) -> None:
        """picows: the handshake succeeded."""
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        """picows: one frame arrived."""
        try:
            msg_type = frame.msg_type
            if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
                data = frame.get_payload_as_bytes()
                if frame.fin:
                    self._message(data, msg_type is WSMsgType.BINARY)
                else:
                    self._fragments = [data]
                    self._fragments_binary = msg_type is WSMsgType.BINARY
            elif msg_type is WSMsgType.CONTINUATION:
                if self._fragments is not None:
                    self._fragments.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        data = b"".join(self._fragments)
                        self._fragments = None
                        self._message(data, self._fragments_binary)
            elif msg_type is WSMsgType.CLOSE:
                if not transport.is_close_frame_sent:
                    transport.send_close(WSCloseCode.OK)
                transport.disconnect()
        except Exception:  # a bad frame must not take picows down
            self.logger.exception("error handling a WebSocket frame")

    def on_ws_disconnected(self, transport: Any) -> None:
        """picows: the connection is gone."""
        self.closed = True
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.on_disconnected(self)

    def pause_writing(self) -> None:
        """picows: the transport's write buffer is above its high-water mark."""
        self.paused = True

    def resume_writing(self) -> None:
        """picows: the transport's write buffer drained."""
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # used by the client

    def _message(self, data: bytes, binary: bool) -> None:
        if self.sink is not None:
            self.sink(data, binary)
        else:
            self.pending.append((data, binary))
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_message(self, timeout: float | None) -> tuple[bytes, bool]:
        """The next message received before a sink is attached, as ``(data, binary)``.

        ``asyncio.TimeoutError`` after ``timeout``; ``ConnectionResetError`` when the connection
        closes first.
        """
        if not self.pending:
            if self.closed:
                raise ConnectionResetError("WebSocket closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
            if not self.pending:
                raise ConnectionResetError("WebSocket closed")
        return self.pending.pop(0)

    def attach(self, sink: Callable[[bytes, bool], None]) -> None:
        """Hand every later message to ``sink``, after those already received."""
        self.sink = sink
        pending, self.pending = self.pending, []
        for data, binary in pending:
            if self.sink is not sink:
                break
            sink(data, binary)

    def send(self, data: bytes, binary: bool = False) -> None:
        """Send one message (a text frame unless ``binary``); nothing once closed."""
        if not self.closed:
            self.transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self.paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def close(self) -> None:
        """Start the closing handshake (queued frames go first) and drop the connection."""
        if not self.closed and self.transport is not None:
            try:
                if not self.transport.is_close_frame_sent:
                    self.transport.send_close(WSCloseCode.OK)
                self.transport.disconnect()
            except Exception:  # already gone
                pass


async def open_websocket(url: str, headers: list[tuple[str, str]], extra_options: dict[str, Any],
                         timeout: float, ssl_context: ssl_module.SSLContext | None,
                         logger: logging.Logger,
                         on_disconnected: Callable[[WSListener], None]) -> WSListener:
    """Open a WebSocket to ``url``; ``ConnectionError`` (with the server's JSON body) on failure.

    :param headers: the handshake's headers; ``extra_options["headers"]`` is added to them.
    :param extra_options: ``websocket_extra_options``: picows and ``create_connection`` keywords
                          (others are logged and ignored); ``ssl`` (an SSLContext) replaces
                          ``ssl_context``.
    :param timeout: seconds allowed for the handshake.
    """
    extra = dict(extra_options)
    headers = list(headers)
    user_headers = extra.pop("headers", None) or {}
    items = user_headers.items() if hasattr(user_headers, "items") else user_headers
    headers += [(str(k), str(v)) for k, v in items]
    options: dict[str, Any] = {
        "extra_headers": headers,
        "websocket_handshake_timeout": timeout,
        "max_frame_size": MAX_FRAME_SIZE,
        "logger_name": "client",
    }
    if ssl_context is not None:
        options["ssl_context"] = ssl_context
    ssl_option = extra.pop("ssl", None)
    if isinstance(ssl_option, ssl_module.SSLContext):
        options["ssl_context"] = ssl_option
    for key, value in extra.items():
        if key in _WS_OPTIONS or key in _CONNECTION_OPTIONS:
            options[key] = value
        else:
            logger.warning("websocket_extra_options: %r is not a picows option, ignored", key)
    try:
        _, listener = await ws_connect(lambda: WSListener(logger, on_disconnected), url, **options)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        response = getattr(exc, "response", None)
        if response is not None:
            body = getattr(exc, "raw_body", None) or getattr(response, "body", None) or b""
            raise exceptions.ConnectionError(
                f"Unexpected status code {int(response.status)} in server response",
                json_body(body)) from None
        raise exceptions.ConnectionError(f"WebSocket connection to {url} failed: {exc!r}") from None
    assert isinstance(listener, WSListener)
    return listener
