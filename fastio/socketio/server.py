"""The Socket.IO v5 server: python-socketio's ``AsyncServer`` API on fastio's compiled core.

Packets are decoded by the compiled ``Decoder`` (binary attachments put back in place), handlers
start eagerly (no task unless a handler suspends, so one client's events start in arrival order),
and every emit is encoded once and fanned out by the compiled room table.
"""
from __future__ import annotations

import asyncio
import logging
import types
from typing import Any, Callable

from fastio import exceptions
from fastio._core.packet import (
    ACK, BINARY_ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT,
    Decoder, configure_json, encode,
)
from fastio.base.handlers import SERVER_OPTIONAL_ARGS, HandlerRegistry
from fastio.base.util import SessionContext, make_logger, start_eagerly, then
from fastio.engineio.server import AsyncServer as EngineIOServer
from fastio.socketio.manager import AsyncManager, Socket
from fastio.socketio.namespace import AsyncNamespace
from fastio.socketio.packet_class import packet_class_codec

__all__ = ["AsyncServer"]

_Coroutine = types.CoroutineType
_Task = asyncio.Task


class _Client:
    """Socket.IO state of one Engine.IO connection."""

    __slots__ = ("conn", "decoder", "sockets", "environ")

    def __init__(self, conn: Any, decoder: Decoder) -> None:
        self.conn = conn
        self.decoder = decoder
        self.sockets: dict[str, Socket] = {}
        self.environ = conn.environ


class AsyncServer(HandlerRegistry):
    """A Socket.IO server with python-socketio's ``AsyncServer`` interface.

    :param client_manager: the client manager; fastio's in-memory ``AsyncManager`` by default.
    :param logger: a ``logging.Logger``, or True/False for INFO/ERROR logging of Socket.IO events.
    :param serializer: ``"default"`` (JSON text packets with binary attachments), ``"msgpack"``
                       (python-socketio's msgpack packets, Node's ``socket.io-msgpack-parser``;
                       ``pip install msgpack``), or a python-socketio style packet class (a
                       ``socketio.packet.Packet`` subclass with its own ``encode``/``decode``).
    :param json: a module with ``dumps``/``loads`` used instead of orjson.
    :param async_handlers: accepted for compatibility; handlers always start eagerly and go on
                           as tasks only when they suspend.
    :param always_connect: send the CONNECT before the connect handler runs.
    :param namespaces: namespaces accepted without handlers, or ``'*'`` for any.
    :param max_attachments: most binary attachments one packet may announce (10, as in Node).
    :param kwargs: Engine.IO options (``ping_interval``, ``cors_allowed_origins``, ...,
                   ``engineio_logger``, and ``socketio_path``, default ``'socket.io'``).
    """

    reason = EngineIOServer.reason
    reserved_events = ["connect", "disconnect"]
    optional_args = SERVER_OPTIONAL_ARGS

    def __init__(self, client_manager: AsyncManager | None = None, logger: logging.Logger | bool = False,
                 serializer: str | type = "default", json: Any = None, async_handlers: bool = True,
                 always_connect: bool = False, namespaces: list[str] | str | None = None,
                 max_attachments: int = 10, **kwargs: Any) -> None:
        engineio_logger = kwargs.pop("engineio_logger", None)
        if engineio_logger is not None:
            kwargs["logger"] = engineio_logger
        if serializer == "default":
            self._encode: Callable[..., Any] = encode
            self._new_decoder: Callable[[], Any] = lambda: Decoder(self.max_attachments,
                                                                   self.eio.max_http_buffer_size)
        elif serializer == "msgpack":
            from fastio.socketio.msgpack import MsgpackDecoder, msgpack_encoder

            self._encode = msgpack_encoder()
            self._new_decoder = lambda: MsgpackDecoder(self.eio.max_http_buffer_size)
        elif isinstance(serializer, type):
            if json is not None:
                # python-socketio gives the packet class the server's JSON module too
                setattr(serializer, "json", json)
            self._encode, self._new_decoder = packet_class_codec(
                serializer, lambda: self.max_attachments, lambda: self.eio.max_http_buffer_size)
        else:
            raise ValueError('serializer must be "default", "msgpack" or a packet class')
        self.serializer = serializer
        if json is not None:
            configure_json(json)
            kwargs["json"] = json
        path = kwargs.pop("socketio_path", None)
        kwargs.setdefault("engineio_path", path or "socket.io")
        self.eio = EngineIOServer(**kwargs)
        self.eio.message_sink = self._on_eio_message
        self.eio.on("connect", self._handle_eio_connect)
        self.eio.close_sink = self._handle_eio_close
        self.logger = make_logger("fastio.socketio", logger)
        self.async_handlers = async_handlers
        self.always_connect = always_connect
        self.namespaces = namespaces or ["/"]
        self.max_attachments = max_attachments
        self.init_handlers()
        self.not_handled = object()
        self.manager = client_manager if client_manager is not None else AsyncManager()
        self.manager.set_server(self)
        self.manager.encode = self._encode
        self.manager_initialized = False
        self.environ: dict[str, Any] = _EnvironView(self.eio)
        # The Admin UI's hooks (fastio.socketio.admin), None unless instrument() was called.
        self.admin: Any = None

    # -- registration ----------------------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """Always True."""
        return True

    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """Serve one HTTP request under the Socket.IO path: python-socketio's
        ``AsyncServer.handle_request``, delegating to the Engine.IO server
        (``fastio.engineio.AsyncServer.handle_request``: a fastio request object; the returned
        awaitable is already complete, so ``await sio.handle_request(req)`` works too)."""
        return self.eio.handle_request(*args, **kwargs)

    def attach(self, app: Any, socketio_path: str = "socket.io") -> None:
        """Serve Socket.IO from an aiohttp ``web.Application`` under ``/<socketio_path>/``."""
        self.eio.attach(app, socketio_path)
        # A pub/sub manager listens from the application's start-up, not from the first client.
        app.on_startup.append(self._start_manager_with_app)

    async def _start_manager_with_app(self, app: Any) -> None:
        self.initialize_manager()

    def register_namespace(self, namespace_handler: AsyncNamespace) -> None:
        """Register a class-based namespace."""
        if not isinstance(namespace_handler, AsyncNamespace):
            raise ValueError("Not a namespace instance")
        namespace_handler.server = self
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler

    # -- emitting --------------------------------------------------------------------------------

    async def emit(self, event: str, data: Any = None, to: Any = None, room: Any = None,
                   skip_sid: Any = None, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None, ignore_queue: bool = False) -> None:
        """Emit an event to one client (``to=sid``), a room, several rooms, or everyone.

        ``data`` is one argument, or a tuple for several; bytes anywhere in it travel as binary.
        """
        if self.admin is not None:
            self.admin.event_sent(event, data, namespace or "/", to if to is not None else room, skip_sid)
        self.manager.emit_now(event, data, namespace or "/", to if to is not None else room,
                              skip_sid, callback, ignore_queue)

    async def send(self, data: Any, to: Any = None, room: Any = None, skip_sid: Any = None,
                   namespace: str | None = None, callback: Callable[..., Any] | None = None,
                   ignore_queue: bool = False) -> None:
        """Emit a ``message`` event."""
        await self.emit("message", data, to=to, room=room, skip_sid=skip_sid,
                        namespace=namespace, callback=callback, ignore_queue=ignore_queue)

    async def call(self, event: str, data: Any = None, to: Any = None, sid: str | None = None,
                   namespace: str | None = None, timeout: float | None = 60,
                   ignore_queue: bool = False) -> Any:
        """Emit to one client and wait for its acknowledgement; raises ``TimeoutError``."""
        if to is None and sid is None:
            raise ValueError("Cannot use call() to broadcast.")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def callback(*args: Any) -> None:
            if not fut.done():
                fut.set_result(args)

        target: Any = to or sid
        await self.emit(event, data, to=target, namespace=namespace, callback=callback, ignore_queue=ignore_queue)
        try:
            args = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.manager.discard_callback(target, namespace or "/", callback)
            raise exceptions.TimeoutError() from None
        return args if len(args) > 1 else args[0] if len(args) == 1 else None

    # -- rooms and sessions ------------------------------------------------------------------------

    async def enter_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Add a client to a room (with a pub/sub manager, also a client of another process)."""
        namespace = namespace or "/"
        if self.manager.get_socket(sid, namespace) is not None:
            self.manager.enter_room_now(sid, namespace, room)
        else:
            await self.manager.enter_room(sid, namespace, room)

    async def leave_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Remove a client from a room."""
        await self.manager.leave_room(sid, namespace or "/", room)

    async def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        await self.manager.close_room(room, namespace or "/")

    def rooms(self, sid: str, namespace: str | None = None) -> list[Any]:
        """Rooms a client is in."""
        return self.manager.get_rooms(sid, namespace or "/")

    def _socket(self, sid: str, namespace: str | None) -> Socket:
        sock = self.manager.get_socket(sid, namespace or "/")
        if sock is None:
            raise KeyError("Session is disconnected")
        return sock

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The client's session dictionary for a namespace."""
        return self._socket(sid, namespace).session

    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Store the client's session dictionary."""
        self._socket(sid, namespace).session = session

    def session(self, sid: str, namespace: str | None = None) -> SessionContext:
        """Async context manager over a client's session, saved on exit."""
        return SessionContext(lambda: self.get_session(sid, namespace),
                              lambda s: self.save_session(sid, s, namespace))

    def socket_of_eio_session(self, eio_sid: str, namespace: str) -> Socket | None:
        """The socket that the Engine.IO session ``eio_sid`` has in ``namespace``, if any."""
        conn = self.eio.sockets.get(eio_sid)
        client: _Client | None = conn.ext if conn is not None else None
        return client.sockets.get(namespace) if client is not None else None

    def transport(self, sid: str, namespace: str | None = None) -> str:
        """'websocket' or 'polling'."""
        return self._socket(sid, namespace).conn.transport

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The environ of the client's connection."""
        sock = self.manager.get_socket(sid, namespace or "/")
        return sock.conn.environ if sock is not None else None

    async def disconnect(self, sid: str, namespace: str | None = None, ignore_queue: bool = False) -> None:
        """Disconnect a client from a namespace (it receives a DISCONNECT packet)."""
        namespace = namespace or "/"
        sock = self.manager.get_socket(sid, namespace)
        if sock is None or not sock.connected:
            if not ignore_queue:
                # A pub/sub manager asks the process the client is connected to.
                await self.manager.can_disconnect(sid, namespace)
            return
        self.logger.info("Disconnecting %s [%s]", sid, namespace)
        sock.conn.send_packet(self._encode(DISCONNECT, namespace))
        self._drop_socket(sock, self.reason.SERVER_DISCONNECT)

    async def shutdown(self) -> None:
        """Close every connection and stop background work."""
        self.logger.info("Socket.IO is shutting down")
        await self.eio.shutdown()
        aclose = getattr(self.manager, "aclose", None)
        if aclose is not None:
            await aclose()

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Run ``target(*args, **kwargs)`` as an asyncio task."""
        return self.eio.start_background_task(target, *args, **kwargs)

    async def sleep(self, seconds: float = 0) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(seconds)

    def instrument(self, auth: Any = None, mode: str = "development", read_only: bool = False,
                   server_id: str | None = None, namespace: str = "/admin",
                   server_stats_interval: float = 2) -> Any:
        """Serve the Socket.IO Admin UI's protocol on ``namespace``; returns the
        ``fastio.socketio.admin.InstrumentedAsyncServer`` (see there for the options)."""
        from fastio.socketio.admin import InstrumentedAsyncServer

        return InstrumentedAsyncServer(self, auth=auth, mode=mode, read_only=read_only, server_id=server_id,
                                       namespace=namespace, server_stats_interval=server_stats_interval)

    # -- Engine.IO events ------------------------------------------------------------------------

    def initialize_manager(self) -> None:
        """Start the client manager (a pub/sub manager's listener) unless already started; the
        hosts call it when the server starts, and the first connection does otherwise."""
        if not self.manager_initialized:
            self.manager_initialized = True
            self.manager.initialize()

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        self.initialize_manager()
        conn = self.eio.sockets[eio_sid]
        conn.ext = _Client(conn, self._new_decoder())
        if self.admin is not None:
            self.admin.client_opened()

    def _handle_eio_close(self, conn: Any, reason: str) -> None:
        client = conn.ext
        if client is None:
            return
        for sock in list(client.sockets.values()):
            self._drop_socket(sock, reason)
        conn.ext = None

    # -- Socket.IO packets (hot path) ---------------------------------------------------------------

    def _on_eio_message(self, conn: Any, data: bytes, binary: bool) -> None:
        client: _Client | None = conn.ext
        if client is None:
            return
        try:
            pkt = client.decoder.feed_binary(data) if binary else client.decoder.feed_text(data)
        except ValueError as exc:
            self.logger.warning("%s: parse error: %s", conn.sid, exc)
            conn.close("parse error", False)
            return
        if pkt is None:
            return
        ptype = pkt.type
        if ptype == EVENT or ptype == BINARY_EVENT:
            self._handle_event(client, pkt)
        elif ptype == ACK or ptype == BINARY_ACK:
            self._handle_ack(client, pkt)
        elif ptype == CONNECT:
            self._handle_connect(client, pkt)
        elif ptype == DISCONNECT:
            sock = client.sockets.get(pkt.namespace)
            if sock is not None:
                self._drop_socket(sock, self.reason.CLIENT_DISCONNECT)
        else:
            self.logger.warning("%s: unexpected packet type %d", conn.sid, ptype)
            conn.close("parse error", False)

    def _handle_event(self, client: _Client, pkt: Any) -> None:
        namespace = pkt.namespace
        sock = client.sockets.get(namespace)
        if sock is None or not sock.connected:
            self.logger.warning("%s is not connected to namespace %s", client.conn.sid, namespace)
            return
        data = pkt.data
        event = data[0]
        if event in self.reserved_events:
            # A client cannot fire the server's connect/disconnect handlers.
            self.logger.warning("%s: ignoring a client event named %r", sock.sid, event)
            return
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('received event "%s" from %s [%s]', event, sock.sid, namespace)
        if self.admin is not None:
            self.admin.event_received(sock, data)
        handlers = self.handlers.get(namespace)
        handler = handlers.get(event) if handlers is not None else None
        try:
            if handler is not None:
                result = handler(sock.sid, *data[1:])
            else:
                result = self._call(event, namespace, (sock.sid, *data[1:]))
                if result is self.not_handled:
                    return
            if type(result) is _Coroutine:
                result = start_eagerly(result)
        except (Exception, asyncio.CancelledError):
            # (a handler cancelled before its first await must not reach the transport)
            self.logger.exception('error in handler of event "%s"', event)
            return
        ack_id = pkt.id
        if type(result) is _Task:
            if ack_id is not None:
                conn = client.conn

                def send_ack(r: Any) -> None:
                    self._send_ack(conn, namespace, ack_id, r)

                then(result, send_ack, self._log_handler_error)
            else:
                result.add_done_callback(self._check_task)
        elif ack_id is not None:
            self._send_ack(client.conn, namespace, ack_id, result)

    def _send_ack(self, conn: Any, namespace: str, ack_id: int, r: Any) -> None:
        if r is self.not_handled:
            return
        args = [] if r is None else list(r) if type(r) is tuple else [r]
        conn.send_packet(self._encode(ACK, namespace, args, ack_id))

    def _handle_ack(self, client: _Client, pkt: Any) -> None:
        sock = client.sockets.get(pkt.namespace)
        if sock is None:
            return
        cb = sock.callbacks.pop(pkt.id, None) if sock.callbacks else None
        if cb is None:
            self.logger.warning("%s: unknown acknowledgement id %s", sock.sid, pkt.id)
            return
        try:
            start_eagerly(cb(*pkt.data))
        except Exception:
            self.logger.exception("error in acknowledgement callback")

    def _handle_connect(self, client: _Client, pkt: Any) -> None:
        namespace = pkt.namespace
        conn = client.conn
        if namespace in client.sockets:
            self.logger.warning("%s: already connected to %s", conn.sid, namespace)
            return
        if not (namespace in self.handlers or namespace in self.namespace_handlers
                or self.namespaces == "*" or namespace in self.namespaces):
            self.logger.info("%s: CONNECT_ERROR for unknown namespace %s", conn.sid, namespace)
            conn.send_packet(self._encode(CONNECT_ERROR, namespace, {"message": "Invalid namespace"}))
            return
        sid = self.eio.generate_id()
        sock = Socket(sid, namespace, conn, client)
        client.sockets[namespace] = sock
        self.manager.add_socket(sock)
        sock.connected = True
        if self.always_connect:
            conn.send_packet(self._encode(CONNECT, namespace, {"sid": sid}))
        auth = pkt.data
        fail_reason: dict[str, Any] = {"message": "Connection rejected by server"}

        def finish(success: Any) -> None:
            if conn.closed or client.sockets.get(namespace) is not sock:
                return
            if success is False:
                if self.always_connect:
                    conn.send_packet(self._encode(DISCONNECT, namespace, fail_reason))
                else:
                    conn.send_packet(self._encode(CONNECT_ERROR, namespace, fail_reason))
                self.logger.info("%s: connection to %s refused: %s", conn.sid, namespace, fail_reason)
                client.sockets.pop(namespace, None)
                self.manager.remove_socket(sock)
            else:
                if not self.always_connect:
                    conn.send_packet(self._encode(CONNECT, namespace, {"sid": sid}))
                self.logger.info("%s connected to %s", sid, namespace)
                if self.admin is not None:
                    self.admin.socket_connected(sock)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, exceptions.ConnectionRefusedError):
                fail_reason.clear()
                fail_reason.update(exc.error_args)
            elif isinstance(exc, ConnectionRefusedError):
                fail_reason.clear()
                fail_reason["message"] = "Connection refused by server"
            else:
                self.logger.error("connect handler failed", exc_info=exc)
            finish(False)

        try:
            result = self._call("connect", namespace, (sid, client.environ, auth or None))
            if result is self.not_handled:
                result = None
            result = start_eagerly(result)
        except BaseException as exc:  # noqa: B902 - refusals are exceptions too
            if not isinstance(exc, Exception):
                raise
            failed(exc)
            return
        then(result, finish, failed)

    def _drop_socket(self, sock: Socket, reason: str) -> None:
        """A socket leaves its namespace: disconnect handler, then forget it."""
        if not sock.connected:
            return
        sock.connected = False
        client = sock.client
        if client.sockets.get(sock.namespace) is sock:
            del client.sockets[sock.namespace]
        try:
            result = self._call("disconnect", sock.namespace, (sock.sid, reason))
            if result is not self.not_handled:
                result = start_eagerly(result)
                if isinstance(result, asyncio.Task):
                    result.add_done_callback(self._check_task)
        except Exception:
            self.logger.exception("error in disconnect handler")
        if self.admin is not None:
            self.admin.socket_disconnected(sock, reason)
        self.manager.remove_socket(sock)
        sock.callbacks = None

    def _call(self, event: str, namespace: str, args: tuple[Any, ...]) -> Any:
        """Call the handler of ``event`` with python-socketio's resolution order and arguments
        (``not_handled`` when there is none)."""
        handler, args = self.find_handler(event, namespace, args)
        if handler is None:
            return self.not_handled
        return handler(*args)

    def _log_handler_error(self, exc: BaseException) -> None:
        self.logger.error("error in event handler", exc_info=exc)

    def _check_task(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log_handler_error(task.exception())  # type: ignore[arg-type]


class _EnvironView(dict):  # type: ignore[type-arg]
    """``sio.environ[eio_sid]`` as in python-socketio, read from the live sessions."""

    def __init__(self, eio: EngineIOServer) -> None:
        super().__init__()
        self._eio = eio

    def __getitem__(self, key: str) -> Any:
        conn = self._eio.sockets.get(key)
        if conn is None:
            raise KeyError(key)
        return conn.environ

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        conn = self._eio.sockets.get(key)
        return conn.environ if conn is not None else default

    def __contains__(self, key: object) -> bool:
        return key in self._eio.sockets
