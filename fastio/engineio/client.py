"""Engine.IO v4 client: the session, from handshake to close.

This module is the session's state machine (``disconnected`` -> ``connecting`` -> ``connected``
-> ``disconnecting`` -> ``disconnected``), as the JavaScript ``engine.io-client`` runs it:

- upgrade: with both transports allowed, polling connects first; a WebSocket is then opened with
  the sid and probed (``2probe`` / ``3probe``), polling is paused (the in-flight GET and POST
  finish), ``5`` is sent, and whatever was queued meanwhile goes out on the WebSocket. A failed
  probe leaves polling running.
- heartbeat: PINGs are answered with PONGs; no PING for ``pingInterval + pingTimeout`` closes
  the connection with ``'transport error'``.

The transports are modules of their own: ``client_polling`` (over ``client_http``, or
``client_aiohttp`` for a user's ``http_session``), ``client_ws`` (picows), and ``client_endpoint``
(URLs, headers, cookies). Most users want :class:`fastio.AsyncClient` (Socket.IO); this class
has python-engineio's ``AsyncClient`` interface for direct Engine.IO use.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
from typing import Any, Callable

from fastio import exceptions
from fastio._core import eio
from fastio._core.packet import configure_json, json_module
from fastio.base.handlers import fit_args, registrar
from fastio.base.util import AsyncioHelpers, make_logger
from fastio.base.util import keep as keep_task
from fastio.engineio.client_aiohttp import AiohttpRequests
from fastio.engineio.client_endpoint import Endpoint
from fastio.engineio.client_http import HTTPConnection, Requests
from fastio.engineio.client_polling import Polling
from fastio.engineio.client_ws import WSListener, open_websocket

__all__ = ["AsyncClient"]

_VALID_TRANSPORTS = ("polling", "websocket")

_PROBE = eio.encode_packet(eio.PING, b"probe")
_PROBE_ANSWER = (eio.PONG, b"probe")
_UPGRADE = eio.encode_packet(eio.UPGRADE)
_CLOSE = eio.encode_packet(eio.CLOSE)


class AsyncClient(AsyncioHelpers):
    """An Engine.IO v4 client for asyncio, with python-engineio's ``AsyncClient`` interface.

    :param logger: a ``logging.Logger``, or True/False for INFO/ERROR logging.
    :param json: a JSON module with ``dumps``/``loads`` to use instead of orjson (process-wide).
    :param request_timeout: seconds allowed for the handshake, each POST, the WebSocket handshake
                            and the upgrade probe (default 5).
    :param http_session: an aiohttp client object (or a callable returning one) to send the
                         polling requests through, e.g. for proxies or custom certificates.
                         Without it fastio's own HTTP/1.1 client is used.
    :param ssl_verify: False to accept any server certificate.
    :param handle_sigint: accepted for compatibility; interrupts are handled by the Socket.IO
                          client.
    :param websocket_extra_options: extra keywords for ``picows.ws_connect`` (for example
                                    ``max_frame_size``, ``proxy``, ``local_addr``); ``headers``
                                    is added to the handshake headers and ``ssl`` (an SSLContext)
                                    replaces the default TLS context.
    :param timestamp_requests: add a ``t=`` cache-busting parameter to every request.
    """

    event_names = ["connect", "disconnect", "message"]

    class reason:
        """Disconnection reasons."""
        #: Client-initiated disconnection.
        CLIENT_DISCONNECT = "client disconnect"
        #: Server-initiated disconnection.
        SERVER_DISCONNECT = "server disconnect"
        #: Transport error.
        TRANSPORT_ERROR = "transport error"

    def __init__(self, logger: logging.Logger | bool = False, json: Any = None,
                 request_timeout: float = 5, http_session: Any = None, ssl_verify: bool = True,
                 handle_sigint: bool = True, websocket_extra_options: dict[str, Any] | None = None,
                 timestamp_requests: bool = True) -> None:
        if json is not None:
            configure_json(json)
        self.logger = make_logger("fastio.engineio.client", logger)
        self.request_timeout = request_timeout
        self.http_session = http_session
        self.ssl_verify = ssl_verify
        self.handle_sigint = handle_sigint
        self.websocket_extra_options = dict(websocket_extra_options or {})
        self.timestamp_requests = timestamp_requests
        self.handlers: dict[str, Callable[..., Any]] = {}

        self.state = "disconnected"
        self.sid: str | None = None
        self.upgrades: list[str] | None = None
        self.ping_interval: float | None = None
        self.ping_timeout: float | None = None
        self.max_payload = 1_000_000
        self.transports: list[str] | None = None
        self.current_transport: str | None = None

        # hooks for the Socket.IO layer: raw message bytes, and the close reason
        self.message_sink: Callable[[bytes, bool], None] | None = None
        self.close_sink: Callable[[str], None] | None = None

        self._endpoint: Endpoint | None = None
        self._ssl_context: ssl_module.SSLContext | None = None
        self._polling: Polling | None = None
        self._ws: WSListener | None = None
        self._probe: WSListener | None = None
        self._closed: asyncio.Event | None = None
        self._upgrade_settled: asyncio.Event | None = None
        self._upgrade_task: asyncio.Task[Any] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None

    # -- public API ------------------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """True: this client runs on asyncio."""
        return True

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register a handler for ``'connect'``, ``'message'`` or ``'disconnect'``."""
        if event not in self.event_names:
            raise ValueError("Invalid event")

        return registrar(lambda h: self.handlers.__setitem__(event, h), handler)

    def transport(self) -> str | None:
        """``'polling'`` or ``'websocket'``."""
        return self.current_transport

    async def connect(self, url: str, headers: dict[str, str] | None = None,
                      transports: str | list[str] | None = None,
                      engineio_path: str = "engine.io") -> None:
        """Connect; raises ``fastio.exceptions.ConnectionError`` when the server cannot be reached
        or refuses (the second argument is the server's JSON error body, if any)."""
        if self.state != "disconnected":
            raise ValueError("Client is not in a disconnected state")
        if transports is not None:
            if isinstance(transports, str):
                transports = [transports]
            transports = [t for t in transports if t in _VALID_TRANSPORTS]
            if not transports:
                raise ValueError("No valid transports provided")
        self.transports = list(transports or _VALID_TRANSPORTS)
        self._endpoint = Endpoint(url, engineio_path, headers, self.timestamp_requests)
        self._ssl_context = self._endpoint.ssl_context(self.ssl_verify)
        self._closed = asyncio.Event()
        self._upgrade_settled = asyncio.Event()
        self.sid = None
        self.current_transport = None
        self.state = "connecting"
        try:
            if self.transports[0] == "polling":
                await self._connect_polling()
            else:
                await self._connect_websocket()
        except BaseException:
            self._teardown()
            self.state = "disconnected"
            self.sid = None
            raise

    async def wait(self) -> None:
        """Wait until the connection ends."""
        if self._closed is not None and self.state != "disconnected":
            await self._closed.wait()

    async def send(self, data: Any) -> None:
        """Send a message: str as text, bytes as binary, anything else as JSON text."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            if self.state == "connected":
                self.send_items([(bytes(data), True)])
                await self._drain()
            return
        if not isinstance(data, str):
            data = json_module().dumps(data)
        await self.send_message(eio.encode_packet(eio.MESSAGE, data), ())

    async def disconnect(self, abort: bool = False, reason: str | None = None) -> None:
        """Close the connection (the server gets a CLOSE packet)."""
        if self.state != "connected":
            return
        self.state = "disconnecting"
        await self._cancel_upgrade()
        if self.current_transport == "websocket" and self._ws is not None:
            # as the JavaScript client: queued frames, then the closing handshake
            self._ws.close()
        elif self._polling is not None:
            await self._polling.close(_CLOSE, abort, self.request_timeout)
        self._close(reason or self.reason.CLIENT_DISCONNECT)

    # -- used by the Socket.IO client ------------------------------------------------------

    async def send_message(self, message: bytes, attachments: Any) -> None:
        """Send an Engine.IO MESSAGE (``message`` is an encoded packet, ``b"4..."``) and binary
        attachments as one unit: nothing else goes between them."""
        if self.state != "connected":
            return
        if attachments:
            self.send_items([(message, False)] + [(a, True) for a in attachments])
        else:
            self.send_items([(message, False)])
        await self._drain()

    async def send_binary_message(self, payload: bytes) -> None:
        """Send one binary Engine.IO MESSAGE (a packet of a binary serializer such as msgpack)."""
        if self.state != "connected":
            return
        self.send_items([(payload, True)])
        await self._drain()

    def send_items(self, items: list[tuple[bytes, bool]]) -> None:
        """Queue Engine.IO messages, each ``(packet bytes, binary)``, on the current transport
        in order, without waiting (nothing else goes between them)."""
        ws = self._ws
        if self.current_transport == "websocket" and ws is not None:
            for data, binary in items:
                ws.send(data, binary)
        elif self._polling is not None:
            self._polling.send(items)

    async def wait_upgrade(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until a pending upgrade succeeded or failed."""
        task = self._upgrade_task
        if task is not None and not task.done() and self._upgrade_settled is not None:
            try:
                await asyncio.wait_for(self._upgrade_settled.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _drain(self) -> None:
        ws = self._ws
        if ws is not None and ws.paused and self.current_transport == "websocket":
            await ws.drain()

    # -- connection set-up -----------------------------------------------------------------

    def _make_http(self) -> Requests:
        if self.http_session is not None:
            return AiohttpRequests(self.http_session, self.ssl_verify)
        assert self._endpoint is not None
        return HTTPConnection(self._endpoint, self._ssl_context)

    def _apply_open(self, payload: bytes) -> None:
        try:
            info = json_module().loads(payload)
            self.sid = str(info["sid"])
            self.upgrades = list(info.get("upgrades") or [])
            self.ping_interval = int(info["pingInterval"]) / 1000.0
            self.ping_timeout = int(info["pingTimeout"]) / 1000.0
            self.max_payload = int(info.get("maxPayload") or 0) or 1_000_000
        except (ValueError, KeyError, TypeError) as exc:
            raise exceptions.ConnectionError(f"invalid OPEN packet from the server: {exc}") from None

    async def _connect_polling(self) -> None:
        assert self._endpoint is not None and self._upgrade_settled is not None
        polling = self._polling = Polling(self, self._endpoint, self._make_http(), self._make_http(),
                                          self._receive, self._transport_error)
        packets = await polling.handshake()
        self._apply_open(packets[0][1])
        self.logger.info("Polling connection accepted, sid %s", self.sid)
        self.current_transport = "polling"
        self.state = "connected"
        self._reset_ping_timer()
        await self._fire_connect()
        for ptype, data, binary in packets[1:]:
            self._receive(ptype, data, binary)
        if self.state != "connected":
            return
        polling.start()
        if "websocket" in (self.upgrades or ()) and "websocket" in (self.transports or ()):
            self._upgrade_task = keep_task(asyncio.ensure_future(self._upgrade()))
        else:
            self._upgrade_settled.set()

    async def _connect_websocket(self) -> None:
        assert self._endpoint is not None and self._upgrade_settled is not None
        url = self._endpoint.url("websocket", None)
        self.logger.info("Attempting WebSocket connection to %s", url)
        listener = self._ws = await self._open_ws(url)
        try:
            data, binary = await listener.next_message(self.request_timeout)
        except (asyncio.TimeoutError, ConnectionResetError) as exc:
            raise exceptions.ConnectionError(f"no OPEN packet from the server: {exc!r}") from None
        ptype, payload = self._decode_text(data) if not binary else (None, b"")
        if ptype != eio.OPEN:
            raise exceptions.ConnectionError("no OPEN packet from the server")
        self._apply_open(payload)
        self.logger.info("WebSocket connection accepted, sid %s", self.sid)
        self.current_transport = "websocket"
        self.state = "connected"
        self._upgrade_settled.set()
        self._reset_ping_timer()
        await self._fire_connect()
        if self.state == "connected":
            listener.attach(self._on_ws_message)

    async def _open_ws(self, url: str) -> WSListener:
        assert self._endpoint is not None
        return await open_websocket(url, self._endpoint.request_headers(), self.websocket_extra_options,
                                    self.request_timeout, self._ssl_context, self.logger,
                                    self._ws_disconnected)

    async def _fire_connect(self) -> None:
        handler = self.handlers.get("connect")
        if handler is None:
            return
        try:
            result = handler()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self.logger.exception("connect handler error")
            raise exceptions.ConnectionError(f"Connect handler failed: {exc}") from exc

    # -- the upgrade -----------------------------------------------------------------------

    async def _upgrade(self) -> None:
        assert self._endpoint is not None and self._polling is not None
        polling = self._polling
        listener: WSListener | None = None
        upgraded = False
        try:
            url = self._endpoint.url("websocket", self.sid)
            self.logger.info("Attempting WebSocket upgrade to %s", url)
            try:
                listener = await self._open_ws(url)
            except exceptions.ConnectionError as exc:
                self.logger.warning("WebSocket upgrade failed: %s", exc.args[0])
                return
            if self.state != "connected":
                return
            self._probe = listener
            listener.send(_PROBE)
            data, binary = await listener.next_message(self.request_timeout)
            if binary or self._decode_text(data) != _PROBE_ANSWER:
                self.logger.warning("WebSocket upgrade failed: unexpected probe answer %r", data[:32])
                return
            await polling.pause(self.request_timeout)
            if self.state != "connected" or listener.closed:
                return
            listener.send(_UPGRADE)
            self._ws = listener
            self._probe = None
            self.current_transport = "websocket"
            upgraded = True
            for item, is_binary in polling.take_queued():
                listener.send(item, is_binary)
            polling.stop()
            self._polling = None
            self.logger.info("WebSocket upgrade was successful")
            listener.attach(self._on_ws_message)
        except (asyncio.TimeoutError, ConnectionResetError, OSError) as exc:
            self.logger.warning("WebSocket upgrade failed: %r", exc)
        finally:
            if not upgraded:
                self._probe = None
                if listener is not None:
                    listener.close()
                if polling.paused:
                    polling.resume()
            if self._upgrade_settled is not None:
                self._upgrade_settled.set()

    async def _cancel_upgrade(self) -> None:
        task = self._upgrade_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: B902 - cancelled on purpose
                pass

    # -- receiving -------------------------------------------------------------------------

    def _decode_text(self, data: bytes) -> tuple[int | None, bytes]:
        """A text message's packet type and data; type None (and a warning) if it has none."""
        try:
            return eio.decode_packet(data)
        except ValueError as exc:
            self.logger.warning("Received an invalid packet: %s", exc)
            return None, b""

    def _on_ws_message(self, data: bytes, binary: bool) -> None:
        if self.state != "connected":
            return
        if binary:
            self._deliver(data, True)
        elif data:
            ptype, payload = self._decode_text(data)
            if ptype is not None:
                self._receive(ptype, payload, False)

    def _receive(self, ptype: int, data: bytes, binary: bool) -> None:
        if binary:
            self._deliver(data, True)
        elif ptype == eio.MESSAGE:
            self._deliver(data, False)
        elif ptype == eio.PING:
            self.send_items([(eio.encode_packet(eio.PONG, data), False)])
            self._reset_ping_timer()
        elif ptype == eio.CLOSE:
            self.logger.info("Server closed the connection")
            self._close(self.reason.SERVER_DISCONNECT)
        elif ptype not in (eio.NOOP, eio.PONG, eio.UPGRADE, eio.OPEN):
            self.logger.warning("Received unexpected packet of type %s", ptype)

    def _deliver(self, data: bytes, binary: bool) -> None:
        sink = self.message_sink
        if sink is not None:
            sink(data, binary)
            return
        handler = self.handlers.get("message")
        if handler is not None:
            self._call_handler("message", handler, data if binary else data.decode("utf-8"))

    def _call_handler(self, event: str, handler: Callable[..., Any], *args: Any) -> None:
        try:
            # a disconnect handler of the older form takes no reason
            result = handler(*fit_args(handler, args, 1 if event == "disconnect" else 0))
        except Exception:
            self.logger.exception("%s handler error", event)
            return
        if inspect.isawaitable(result):
            async def finish() -> None:
                try:
                    await result
                except Exception:
                    self.logger.exception("%s handler error", event)
            keep_task(asyncio.ensure_future(finish()))

    # -- heartbeat and closing -------------------------------------------------------------

    def _reset_ping_timer(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        delay = (self.ping_interval or 25) + (self.ping_timeout or 20)
        self._ping_timer = asyncio.get_running_loop().call_later(delay, self._ping_expired)

    def _ping_expired(self) -> None:
        self._ping_timer = None
        if self.state == "connected":
            self.logger.warning("No PING from the server for %.1f s, closing",
                                (self.ping_interval or 0) + (self.ping_timeout or 0))
            self._close(self.reason.TRANSPORT_ERROR)

    def _transport_error(self, message: str) -> None:
        """The polling transport failed (``message`` says how): the connection ends."""
        self.logger.warning("%s", message)
        self._close(self.reason.TRANSPORT_ERROR)

    def _ws_disconnected(self, listener: WSListener) -> None:
        """The WebSocket ``listener`` carries lost its connection."""
        if listener is self._ws and self.state == "connected" and self.current_transport == "websocket":
            self.logger.info("WebSocket connection closed")
            self._close(self.reason.TRANSPORT_ERROR)

    def _teardown(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        task = self._upgrade_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
        self._upgrade_task = None
        if self._polling is not None:
            self._polling.stop()
            self._polling = None
        for listener in (self._ws, self._probe):
            if listener is not None:
                listener.close()
        self._ws = self._probe = None
        if self._upgrade_settled is not None:
            self._upgrade_settled.set()

    def _close(self, reason: str) -> None:
        """End the connection (once): release everything, then report ``reason``."""
        if self.state == "disconnected":
            return
        self.state = "disconnected"
        self._teardown()
        self.sid = None
        if self._closed is not None:
            self._closed.set()
        self.logger.info("Engine.IO connection closed: %s", reason)
        if self.close_sink is not None:
            self.close_sink(reason)
        handler = self.handlers.get("disconnect")
        if handler is not None:
            self._call_handler("disconnect", handler, reason)
