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
from fastio._core.wsframe import WebSocketError, deflate_payload, inflate_payload
from fastio.engineio.client_http import json_body

__all__ = ["WSListener", "open_websocket", "accept_deflate_answer", "MAX_FRAME_SIZE", "DEFLATE_OFFER",
           "DEFLATE_THRESHOLD"]

#: The largest frame accepted from the server, unless ``max_frame_size`` is given.
MAX_FRAME_SIZE = 100 * 1024 * 1024

#: The permessage-deflate offer (RFC 7692): no context takeover either way, so the connection
#: holds no zlib state (fastio's process-wide streams do the work).
DEFLATE_OFFER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
#: Messages smaller than this go uncompressed unless ``permessage_deflate`` says otherwise.
DEFLATE_THRESHOLD = 1024

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

    def __init__(self, logger: logging.Logger, on_disconnected: Callable[["WSListener"], None],
                 deflate: Any = False) -> None:
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
        self._fragments_compressed = False
        #: permessage-deflate, once negotiated: the window bits messages are deflated with
        #: (0: not negotiated), the smallest message compressed, the largest inflated.
        self.deflate_wbits = 0
        self.deflate_threshold = DEFLATE_THRESHOLD
        self.max_message = MAX_FRAME_SIZE
        #: What offered permessage-deflate (``permessage_deflate``); the reason its answer was
        #: refused, if it was.
        self.deflate_offered = deflate
        self.deflate_error: str | None = None

    # picows callbacks

    def on_ws_connected(self, transport: Any) -> None:
        """picows: the handshake succeeded."""
        self.transport = transport
        if self.deflate_offered:
            # Here, not after ws_connect returns: the server's first frames may be compressed
            # and arrive with the 101.
            answer = transport.response.headers.get("Sec-WebSocket-Extensions")
            if answer:
                try:
                    self.deflate_wbits = accept_deflate_answer(answer)
                except ValueError as exc:
                    # RFC 7692 5: a client fails the connection on an answer it cannot take.
                    self.deflate_error = str(exc)
                    self._fail(transport, WSCloseCode.PROTOCOL_ERROR, self.deflate_error)
                    return
                if isinstance(self.deflate_offered, dict):
                    self.deflate_threshold = int(self.deflate_offered.get("threshold", DEFLATE_THRESHOLD))

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        """picows: one frame arrived."""
        try:
            msg_type = frame.msg_type
            if frame.rsv2 or frame.rsv3 or (frame.rsv1 and (
                    not self.deflate_wbits or msg_type is not WSMsgType.TEXT and msg_type is not WSMsgType.BINARY)):
                # RFC 7692 6.1: RSV1 only on the first frame of a data message, and only
                # once permessage-deflate is negotiated.
                self._fail(transport, WSCloseCode.PROTOCOL_ERROR, "unexpected reserved bit")
            elif msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
                data = frame.get_payload_as_bytes()
                if frame.fin:
                    self._complete(transport, data, msg_type is WSMsgType.BINARY, frame.rsv1)
                else:
                    self._fragments = [data]
                    self._fragments_binary = msg_type is WSMsgType.BINARY
                    self._fragments_compressed = frame.rsv1
            elif msg_type is WSMsgType.CONTINUATION:
                if self._fragments is not None:
                    self._fragments.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        data = b"".join(self._fragments)
                        self._fragments = None
                        self._complete(transport, data, self._fragments_binary, self._fragments_compressed)
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

    def _fail(self, transport: Any, code: WSCloseCode, reason: str) -> None:
        self.logger.warning("closing the WebSocket: %s", reason)
        if not transport.is_close_frame_sent:
            transport.send_close(code, reason.encode())
        transport.disconnect()

    def _complete(self, transport: Any, data: bytes, binary: bool, compressed: bool) -> None:
        if compressed:
            try:
                data = inflate_payload(data, self.max_message)
            except WebSocketError as exc:
                # 1009 past max_frame_size (a small frame may inflate to gigabytes), 1007 for
                # data that is not deflate.
                self._fail(transport, WSCloseCode(exc.code), exc.reason)
                return
            if not binary:
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(transport, WSCloseCode.INVALID_TEXT, "invalid UTF-8 in text message")
                    return
        self._message(data, binary)

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
            kind = WSMsgType.BINARY if binary else WSMsgType.TEXT
            if self.deflate_wbits and len(data) >= self.deflate_threshold:
                self.transport.send(kind, deflate_payload(data, self.deflate_wbits), rsv1=True)
            else:
                self.transport.send(kind, data)

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
                          ``ssl_context``; ``permessage_deflate`` (True, or a dict with
                          ``threshold``, as Node's ``perMessageDeflate``) offers compression
                          (docs/compression.md).
    :param timeout: seconds allowed for the handshake.
    """
    extra = dict(extra_options)
    headers = list(headers)
    user_headers = extra.pop("headers", None) or {}
    deflate = extra.pop("permessage_deflate", False)
    items = user_headers.items() if hasattr(user_headers, "items") else user_headers
    headers += [(str(k), str(v)) for k, v in items]
    options: dict[str, Any] = {
        "extra_headers": headers,
        "websocket_handshake_timeout": timeout,
        "max_frame_size": MAX_FRAME_SIZE,
        "logger_name": "client",
    }
    if deflate:
        headers.append(("Sec-WebSocket-Extensions", DEFLATE_OFFER))
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
        _, listener = await ws_connect(lambda: _listener(logger, on_disconnected, deflate, options), url,
                                       **options)
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
    if listener.deflate_error is not None:
        raise exceptions.ConnectionError(f"WebSocket connection to {url} failed: {listener.deflate_error}")
    return listener


def _listener(logger: logging.Logger, on_disconnected: Callable[[WSListener], None], deflate: Any,
              options: dict[str, Any]) -> WSListener:
    listener = WSListener(logger, on_disconnected, deflate)
    # An inflated message is bounded like a frame.
    listener.max_message = int(options["max_frame_size"])
    return listener


def accept_deflate_answer(answer: str) -> int:
    """The window bits to deflate with, from the server's ``Sec-WebSocket-Extensions`` answer
    to :data:`DEFLATE_OFFER`; ``ValueError`` when the answer is not one the offer allows."""
    name, *params = [p.strip() for p in answer.split(";")]
    if name.lower() != "permessage-deflate" or "," in answer:
        raise ValueError(f"unexpected extension answer {answer!r}")
    wbits = 15
    seen: set[str] = set()
    for param in params:
        key, _, value = param.partition("=")
        key = key.strip().lower()
        value = value.strip().strip('"')
        if key in seen:
            raise ValueError(f"repeated parameter in {answer!r}")
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover") and not value:
            continue
        if key == "server_max_window_bits" and value.isdigit() and 8 <= int(value) <= 15:
            continue            # any window: the inflater uses the largest
        if key == "client_max_window_bits" and value.isdigit() and 9 <= int(value) <= 15:
            wbits = int(value)
            continue
        raise ValueError(f"unacceptable parameter {param!r} in {answer!r}")
    if "server_no_context_takeover" not in seen:
        # It was asked for; without it the server may refer back to earlier messages.
        raise ValueError(f"the answer {answer!r} keeps the server's context")
    return wbits
