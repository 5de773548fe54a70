"""The Socket.IO v5 server: python-socketio's ``AsyncServer`` API on fastio's compiled core.

Packets are decoded by the compiled ``Decoder`` (binary attachments put back in place), handlers
start eagerly (no task unless a handler suspends, so one client's events start in arrival order),
and every emit is encoded once and fanned out by the compiled room table.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
import types
from typing import Any, Callable, Iterable, Union
from urllib.parse import parse_qs

from fastio import exceptions
from fastio._core.dispatch import CompiledEvents
from fastio._core.packet import (
    ACK, BINARY_ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT,
    Decoder, PartialBudgetError, configure_json, encode,
)
from fastio.base.handlers import SERVER_OPTIONAL_ARGS, HandlerRegistry
from fastio.base.util import SessionContext, keep, make_logger, start_eagerly, then
from fastio.engineio.server import AsyncServer as EngineIOServer
from fastio.socketio.manager import AsyncManager, Socket
from fastio.socketio.namespace import AsyncNamespace
from fastio.socketio.operators import BroadcastOperator, NamespaceOperator, RoomSpec
from fastio.socketio.packet_class import packet_class_codec
from fastio.socketio.recovery import RECOVERABLE_REASONS, RecoveryOptions, Session, store_for
from fastio.socketio.remote_socket import RemoteSocket

__all__ = ["AsyncServer", "NamespaceKey"]

#: A namespace name, or a parent of dynamic namespaces: a compiled regular expression (searched,
#: as JavaScript's ``RegExp.test``) or a callable ``(name, auth) -> bool`` (sync or async).
NamespaceKey = Union[str, Any]

# Node's reserved event names: an application cannot emit them.
RESERVED_EVENTS = frozenset(("connect", "connect_error", "disconnect", "disconnecting", "newListener",
                             "removeListener"))

_Coroutine = types.CoroutineType
_Task = asyncio.Task


class _Client:
    """Socket.IO state of one Engine.IO connection."""

    __slots__ = ("conn", "decoder", "sockets", "environ", "connecting")

    def __init__(self, conn: Any, decoder: Decoder) -> None:
        self.conn = conn
        self.decoder = decoder
        self.sockets: dict[str, Socket] = {}
        self.environ = conn.environ
        # Namespaces whose CONNECT is still in the middleware or a namespace check.
        self.connecting: set[str] | None = None


class _V3Connect:
    """A CONNECT of a Socket.IO v4 client (socket.io-client 2.x): the one to "/" it gets on
    open without asking, or one it sent, its query still in the namespace."""

    __slots__ = ("namespace", "data")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.data = None


def _v3_connect_error(error: dict[str, Any]) -> Any:
    """A CONNECT_ERROR's payload for a Socket.IO v4 client (socket.io-client 2.x): the error's
    ``data``, else its message (Node's ``socket._error(err.data || err.message)``)."""
    return error.get("data") or error.get("message")


def _is_parent(key: Any) -> bool:
    """True for a parent of dynamic namespaces (a regex or a callable), False for a name."""
    return not isinstance(key, str) and (hasattr(key, "search") or callable(key))


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
    :param namespaces: namespaces accepted without handlers, or ``'*'`` for any; beside names the
                       list may hold parents of dynamic namespaces: compiled regular expressions
                       and callables ``(name, auth) -> bool`` (sync or async).
    :param cleanup_empty_child_namespaces: forget a dynamic (child) namespace when its last
                                           socket leaves, as Node's option of that name.
    :param connect_timeout: seconds an Engine.IO connection may stay without joining any
                            namespace before it is closed (Node's ``connectTimeout``, 45 s);
                            None turns it off.  One sweep per server, no timer per connection.
    :param max_attachments: most binary attachments one packet may announce (10, as in Node).
    :param connection_state_recovery: Node's ``connectionStateRecovery``: a dict with
                                      ``max_disconnection_duration`` (seconds, 120) and
                                      ``skip_middlewares`` (True), plus fastio's bounds
                                      ``max_packets``, ``max_bytes``, ``max_sessions``
                                      (``fastio.socketio.recovery.RecoveryOptions``); True for
                                      the defaults, None (default) for off.  A client that lost
                                      its connection and comes back in time gets its sid, rooms,
                                      data and missed broadcasts back; ``is_recovered(sid)``
                                      tells.  See docs/recovery.md.
    :param kwargs: Engine.IO options (``ping_interval``, ``cors_allowed_origins``, ...,
                   ``engineio_logger``, and ``socketio_path``, default ``'socket.io'``).
    """

    reason = EngineIOServer.reason
    reserved_events = ["connect", "disconnect"]
    optional_args = SERVER_OPTIONAL_ARGS

    def __init__(self, client_manager: AsyncManager | None = None, logger: logging.Logger | bool = False,
                 serializer: str | type = "default", json: Any = None, async_handlers: bool = True,
                 always_connect: bool = False, namespaces: list[str] | str | None = None,
                 max_attachments: int = 10, cleanup_empty_child_namespaces: bool = False,
                 connect_timeout: float | None = 45, connection_state_recovery: Any = None,
                 **kwargs: Any) -> None:
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
        self.eio.on("connect", self._handle_eio_connect)
        self.eio.close_sink = self._handle_eio_close
        self.eio.eio3_message_sink = self._on_eio3_message
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
        #: The recovery options (None: off) and the packet log and lost sessions they bound.
        self.recovery_options = RecoveryOptions.from_option(connection_state_recovery)
        self.recovery = store_for(self.manager, self.recovery_options) if self.recovery_options is not None else None
        if self.recovery is not None:
            self.manager.set_recovery(self.recovery)
        # Lost sessions being restored while their middlewares run, by sid.
        self._recovering: dict[str, Session] = {}
        self.manager_initialized = False
        self.environ: dict[str, Any] = _EnvironView(self.eio)
        self.cleanup_empty_child_namespaces = cleanup_empty_child_namespaces
        self.connect_timeout = connect_timeout
        # New connections in arrival order with their connect deadline (all share one timeout,
        # so the deque stays sorted); one task sweeps it.
        self._connect_deadlines: collections.deque[tuple[float, str]] = collections.deque()
        self._connect_sweeper: asyncio.Task[None] | None = None
        # Node's server features, by namespace (or parent of dynamic namespaces):
        self.middlewares: dict[Any, list[Callable[..., Any]]] = {}
        self.event_middlewares: dict[Any, list[tuple[Callable[..., Any], Callable[..., Any] | None]]] = {}
        self.any_listeners: dict[Any, list[Callable[..., Any]]] = {}
        self.outgoing_listeners: dict[Any, list[Callable[..., Any]]] = {}
        self.server_side_handlers: dict[Any, dict[str, Callable[..., Any]]] = {}
        # Dynamic namespaces created so far: name -> the parent that accepted it.
        self.child_namespaces: dict[str, Any] = {}
        # Names given to ``of()``: as in Node, naming a namespace creates it.
        self.declared_namespaces: set[str] = set()
        # socket_data() of sockets still in their connection middlewares, by sid.
        self._arriving_data: dict[str, dict[str, Any]] = {}
        # Keys of event_middlewares and any_listeners: the hot path looks no further when empty.
        self._event_hooks: set[Any] = set()
        # The Admin UI's hooks (fastio.socketio.admin), None unless instrument() was called.
        self.admin: Any = None
        # Messages reach the compiled sink first: plain events go from there straight to their
        # handler; everything else comes back to the methods it is given.
        self.eio.message_sink = CompiledEvents(
            self, self.handlers, self.reserved_events, self._event_hooks, start_eagerly, self._encode,
            self._on_eio_message, self._dispatch_packet, self._handle_event, self._parse_error,
            self._partial_packet, self._send_ack, self._after_task, self._handler_error)

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
        if self.manager.publish_full and not ignore_queue:
            await self.manager.publish_room()  # a cluster manager's full publish queue: backpressure
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
        """Emit to one client and wait for its acknowledgement; raises ``TimeoutError``.

        ``to`` may be a room, as in python-socketio: every member is asked and the first answer
        is returned.  Every answer: ``await sio.to(room).timeout(s).emit_with_ack(...)``."""
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
            raise exceptions.TimeoutError() from None
        finally:
            # With a room, the first answer wins (python-socketio's behaviour): the others'
            # callbacks are dropped rather than kept until those clients disconnect.
            ns = namespace or "/"
            members = list(self.manager.room_table.select(ns, target, None))
            if isinstance(target, str) and target not in members:
                members.append(target)  # a pub/sub manager keeps a room's callback under the room
            for member in members or [target]:
                self.manager.discard_callback(member, ns, callback)
        return args if len(args) > 1 else args[0] if len(args) == 1 else None


    # -- Node's server API: middleware, catch-alls, operators ---------------------------------------

    def use(self, middleware: Callable[[str, dict[str, Any], Any], Any], namespace: NamespaceKey = None) -> None:
        """Add a connection middleware (Node's ``namespace.use``): ``middleware(sid, environ, auth)``,
        sync or async, runs for every CONNECT to ``namespace`` (default ``'/'``; a parent of
        dynamic namespaces applies to its children), in the order added, before the connect
        handler.  Raising ``fastio.exceptions.ConnectionRefusedError(message, data)`` (or any
        exception: its text is the message) refuses the connection with a CONNECT_ERROR carrying
        ``message`` and ``data``, as Node's ``next(err)``; the later middlewares and the connect
        handler do not run."""
        self.middlewares.setdefault(namespace or "/", []).append(middleware)

    def use_events(self, middleware: Callable[[str, str, list[Any]], Any], namespace: NamespaceKey = None,
                   on_error: Callable[[str, BaseException], Any] | None = None) -> None:
        """Add an incoming-event middleware (Node's ``socket.use``): ``middleware(sid, event, args)``,
        sync or async, runs for every event a client of ``namespace`` sends, in the order added,
        before its handler; ``args`` is the event's argument list, which it may change.  Raising
        drops the event (its handler does not run, no acknowledgement is sent) and calls
        ``on_error(sid, exc)`` if given, else logs the exception."""
        self.event_middlewares.setdefault(namespace or "/", []).append((middleware, on_error))
        self._event_hooks.add(namespace or "/")

    def on_any(self, listener: Callable[..., Any], namespace: NamespaceKey = None) -> None:
        """Call ``listener(sid, event, *args)`` for every event a client of ``namespace`` sends,
        before the event middlewares and the handler (Node's ``socket.onAny``)."""
        self.any_listeners.setdefault(namespace or "/", []).append(listener)
        self._event_hooks.add(namespace or "/")

    def on_any_outgoing(self, listener: Callable[..., Any], namespace: NamespaceKey = None) -> None:
        """Call ``listener(sid, event, *args)`` for every event sent to a client of ``namespace``,
        broadcasts included, once per recipient (Node's ``socket.onAnyOutgoing``).  This costs
        a Python call per recipient, so only namespaces with a listener pay it."""
        key = namespace or "/"
        self.outgoing_listeners.setdefault(key, []).append(listener)
        for name in ([key] if isinstance(key, str) else self._children(key)):
            self.manager.watch_outgoing(name)

    def socket_data(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The dict the application keeps on a socket (Node's ``socket.data``), shown by
        ``fetch_sockets()``; connection middlewares may fill it before the socket exists."""
        sock = self.manager.get_socket(sid, namespace or "/")
        if sock is not None:
            return sock.data
        arriving = self._arriving_data.get(sid)
        if arriving is None:
            raise KeyError("Session is disconnected")
        return arriving

    def is_recovered(self, sid: str, namespace: str | None = None) -> bool:
        """True when the socket ``sid`` took over a session lost within
        ``max_disconnection_duration`` (Node's ``socket.recovered``): it kept its sid, rooms and
        data, and received the broadcasts it missed.  Usable from the connection middlewares and
        the connect handler on."""
        sock = self.manager.get_socket(sid, namespace or "/")
        if sock is not None:
            return bool(sock.recovered)
        session = self._recovering.get(sid)
        return session is not None and session.namespace == (namespace or "/")

    def notify_outgoing(self, namespace: str, sids: list[str], args: list[Any]) -> None:
        """Called by the manager after an emit in ``namespace`` reached ``sids``: the outgoing
        listeners see each one."""
        listeners = self.outgoing_listeners.get(namespace)
        if listeners is None:
            listeners = self.outgoing_listeners.get(self.child_namespaces.get(namespace))
        for listener in listeners or ():
            for sid in sids:
                try:
                    result = listener(sid, *args)
                    if type(result) is _Coroutine:
                        self._watch(start_eagerly(result))
                except Exception:
                    self.logger.exception("error in an outgoing listener")

    def on_server_side(self, event: str, handler: Callable[..., Any] | None = None,
                       namespace: NamespaceKey = None) -> Any:
        """Handle ``event`` sent by another server of the cluster with ``server_side_emit``
        (Node's ``io.on(event)`` for server-side events): ``handler(*args)``; its return value
        is the acknowledgement of ``server_side_emit_with_ack``.  Without ``handler`` this is a
        decorator."""
        def store(h: Callable[..., Any]) -> Callable[..., Any]:
            self.server_side_handlers.setdefault(namespace or "/", {})[event] = h
            return h

        return store(handler) if handler is not None else store

    async def trigger_server_side_event(self, namespace: str, event: str, args: list[Any]) -> Any:
        """Run the ``on_server_side`` handler of ``event`` (a cluster manager calls this when
        another server's ``server_side_emit`` arrives); returns its result (None without one)."""
        handlers = self.server_side_handlers.get(namespace) or self.server_side_handlers.get(
            self.child_namespaces.get(namespace)) or {}
        handler = handlers.get(event)
        if handler is None:
            return None
        result = handler(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def check_event_name(self, event: str) -> None:
        """Raise ValueError for Node's reserved event names (``connect``, ``disconnect``, ...)."""
        if event in RESERVED_EVENTS:
            raise ValueError(f'"{event}" is a reserved event name')

    async def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        """Send ``event`` to the ``on_server_side`` handlers of the other servers of the cluster
        (Node's ``serverSideEmit``); with one process it reaches nobody."""
        self.check_event_name(event)
        await self.manager.server_side_emit(namespace, [event, *args])

    async def server_side_emit_with_ack(self, event: str, *args: Any, namespace: str = "/",
                                        timeout: float | None = None) -> list[Any]:
        """``server_side_emit`` and wait for every other server's answer (Node's
        ``serverSideEmitWithAck``); ``[]`` with one process."""
        self.check_event_name(event)
        return await self.manager.server_side_emit_with_ack(namespace, [event, *args], timeout)  # type: ignore[no-any-return]

    def of(self, namespace: NamespaceKey) -> NamespaceOperator:
        """The operators, middleware and handlers of one namespace (Node's ``io.of``); a regex or
        a callable ``(name, auth) -> bool`` declares a parent of dynamic namespaces.  As in Node,
        naming a namespace here makes clients able to connect to it."""
        if isinstance(namespace, str):
            self.declared_namespaces.add(namespace)
        return NamespaceOperator(self, namespace)

    def to(self, room: RoomSpec) -> BroadcastOperator:
        """Select the sockets of ``'/'`` in ``room`` (one or several; a sid is a room)."""
        return BroadcastOperator(self).to(room)

    def in_(self, room: RoomSpec) -> BroadcastOperator:
        """The same as ``to`` (Node's ``in``)."""
        return self.to(room)

    def except_(self, room: RoomSpec) -> BroadcastOperator:
        """Select every socket of ``'/'`` except those in ``room`` (one or several)."""
        return BroadcastOperator(self).except_(room)

    @property
    def volatile(self) -> BroadcastOperator:
        """A volatile broadcast to ``'/'`` (see ``BroadcastOperator.volatile``)."""
        return BroadcastOperator(self).volatile

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast to this server's clients of ``'/'`` only."""
        return BroadcastOperator(self).local

    def compress(self, flag: bool) -> BroadcastOperator:
        """A broadcast to ``'/'`` with Node's compress flag."""
        return BroadcastOperator(self).compress(flag)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast to ``'/'`` whose ``emit_with_ack`` waits at most ``seconds``."""
        return BroadcastOperator(self).timeout(seconds)

    async def fetch_sockets(self) -> list[RemoteSocket]:
        """Every socket of ``'/'`` (Node's ``io.fetchSockets``)."""
        return await BroadcastOperator(self).fetch_sockets()

    async def all_rooms(self, namespace: str = "/") -> set[Any]:
        """The rooms of ``namespace`` with a member in any server of the cluster (Node's
        ``adapter.allRooms()``); ``sio.manager.rooms`` holds this process's."""
        return await self.of(namespace).all_rooms()

    async def all_sockets(self) -> set[str]:
        """The sids of every socket of ``'/'`` in the cluster (Node's ``allSockets``);
        ``await sio.in_(room).all_sockets()`` for a room's."""
        return await BroadcastOperator(self).all_sockets()

    async def server_count(self) -> int:
        """How many servers the cluster has, this one included (Node's ``serverCount``)."""
        return await self.manager.server_count()  # type: ignore[no-any-return]

    async def sockets_join(self, room: RoomSpec) -> None:
        """Every socket of ``'/'`` joins ``room``."""
        await BroadcastOperator(self).sockets_join(room)

    async def sockets_leave(self, room: RoomSpec) -> None:
        """Every socket of ``'/'`` leaves ``room``."""
        await BroadcastOperator(self).sockets_leave(room)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of ``'/'`` (``close``: their whole connections)."""
        await BroadcastOperator(self).disconnect_sockets(close)

    async def disconnect_socket(self, sock: Socket, close: bool = False) -> None:
        """Disconnect one socket of this process (the manager's ``disconnect_sockets``); with
        ``close``, every namespace of its connection is disconnected, then the connection closed."""
        if not close:
            await self.disconnect(sock.sid, sock.namespace, ignore_queue=True)
            return
        conn = sock.conn
        for other in list(sock.client.sockets.values()):
            await self.disconnect(other.sid, other.namespace, ignore_queue=True)
        conn.close(self.reason.SERVER_DISCONNECT, True)

    def _children(self, parent: Any) -> list[str]:
        return [name for name, p in self.child_namespaces.items() if p is parent]

    def namespaces_of(self, key: NamespaceKey) -> list[str]:
        """The concrete namespaces ``key`` names: itself, or a parent's current children."""
        return [key] if isinstance(key, str) else self._children(key)

    def find_handler(self, event: str, namespace: str,
                     args: tuple[Any, ...]) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """As ``HandlerRegistry.find_handler``; a dynamic namespace falls back to its parent's."""
        handler, fitted = super().find_handler(event, namespace, args)
        if handler is None and self.child_namespaces:
            parent = self.child_namespaces.get(namespace)
            if parent is not None:
                return super().find_handler(event, parent, args)
        return handler, fitted

    def _watch(self, result: Any) -> None:
        if isinstance(result, asyncio.Task):
            result.add_done_callback(self._check_task)

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
        if self._connect_sweeper is not None:
            self._connect_sweeper.cancel()
            self._connect_deadlines.clear()
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
        conn.ext = client = _Client(conn, self._new_decoder())
        if self.admin is not None:
            self.admin.client_opened()
        if conn.eio3:
            # Socket.IO v4 (Engine.IO v3 clients): the client is in "/" as soon as it opens.
            self._handle_connect(client, _V3Connect("/"))
        if self.connect_timeout:
            loop = asyncio.get_running_loop()
            # The sid, not the connection: a closed connection is not kept alive until its deadline.
            self._connect_deadlines.append((loop.time() + self.connect_timeout, eio_sid))
            if self._connect_sweeper is None or self._connect_sweeper.done():
                self._connect_sweeper = keep(loop.create_task(self._sweep_connect_timeouts()))

    async def _sweep_connect_timeouts(self) -> None:
        """Close each connection that has joined no namespace by its deadline (Node's
        ``connectTimeout``)."""
        loop = asyncio.get_running_loop()
        pending = self._connect_deadlines
        while pending:
            deadline, eio_sid = pending[0]
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            pending.popleft()
            conn = self.eio.sockets.get(eio_sid)
            if conn is None or conn.closed:
                continue
            client = conn.ext
            if client is not None and not client.sockets and not client.connecting:
                self.logger.info("%s: no namespace joined within %s s, closing", conn.sid, self.connect_timeout)
                conn.close(self.reason.SERVER_DISCONNECT, True)

    def _handle_eio_close(self, conn: Any, reason: str) -> None:
        client = conn.ext
        if client is None:
            return
        recoverable = reason in RECOVERABLE_REASONS
        for sock in list(client.sockets.values()):
            self._drop_socket(sock, reason, recoverable)
        conn.ext = None

    # -- Socket.IO packets (hot path) ---------------------------------------------------------------

    def _on_eio_message(self, conn: Any, data: bytes, binary: bool) -> None:
        # The Python path of every message; the compiled sink (self.eio.message_sink) takes
        # plain text events itself and hands everything else here or to the steps below.
        client: _Client | None = conn.ext
        if client is None:
            return
        try:
            pkt = client.decoder.feed_binary(data) if binary else client.decoder.feed_text(data)
        except ValueError as exc:
            self._parse_error(conn, exc)
            return
        if pkt is None:
            self._partial_packet(conn)
            return
        if conn.partial_deadline:
            conn.partial_deadline = 0.0
        self._dispatch_packet(client, pkt)

    def _parse_error(self, conn: Any, exc: ValueError) -> None:
        self.logger.warning("%s: parse error: %s", conn.sid, exc)
        if isinstance(exc, PartialBudgetError):
            conn.set_close_code(1008, "too much partial message data")
        conn.close("parse error", False)

    def _partial_packet(self, conn: Any) -> None:
        # A binary packet waiting for its attachments: the heartbeat sweep closes the
        # session if they are not all in within partial_message_timeout.
        if not conn.partial_deadline and self.eio.partial_message_timeout > 0:
            conn.partial_deadline = time.monotonic() + self.eio.partial_message_timeout

    def _dispatch_packet(self, client: _Client, pkt: Any) -> None:
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
            self.logger.warning("%s: unexpected packet type %d", client.conn.sid, ptype)
            client.conn.close("parse error", False)

    def _on_eio3_message(self, conn: Any, data: bytes, binary: bool) -> None:
        # Socket.IO v4 puts a CONNECT's query in its namespace ("0/chat?token=x,"); the packet
        # decoder drops it, so such a CONNECT is read here.  Everything else is v5's.
        if not binary and data[:2] == b"0/" and conn.ext is not None:
            namespace = data[1:].partition(b",")[0]
            if b"?" in namespace:
                try:
                    text = namespace.decode("utf-8")
                except UnicodeDecodeError:
                    conn.close("parse error", False)
                    return
                self._handle_connect(conn.ext, _V3Connect(text))
                return
        self._on_eio_message(conn, data, binary)

    def _handle_event(self, client: _Client, pkt: Any, args: list[Any] | None = None) -> None:
        # ``args``: the arguments as the event middlewares left them (then they have run).
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
        if args is None:
            if self._event_hooks:
                key: Any = namespace if namespace in self._event_hooks else self.child_namespaces.get(namespace)
                if key is not None and key in self._event_hooks:
                    self._event_with_hooks(client, sock, key, pkt, event, data[1:])
                    return
            args = data[1:]
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('received event "%s" from %s [%s]', event, sock.sid, namespace)
        if self.admin is not None:
            self.admin.event_received(sock, data)
        handlers = self.handlers.get(namespace)
        handler = handlers.get(event) if handlers is not None else None
        try:
            if handler is not None:
                result = handler(sock.sid, *args)
            else:
                result = self._call(event, namespace, (sock.sid, *args))
                if result is self.not_handled:
                    return
            if type(result) is _Coroutine:
                result = start_eagerly(result)
        except (Exception, asyncio.CancelledError):
            # (a handler cancelled before its first await must not reach the transport)
            self._handler_error(event)
            return
        ack_id = pkt.id
        if type(result) is _Task:
            self._after_task(client, namespace, ack_id, result)
        elif ack_id is not None:
            self._send_ack(client.conn, namespace, ack_id, result)

    def _after_task(self, client: _Client, namespace: str, ack_id: int | None, task: asyncio.Task[Any]) -> None:
        """A handler suspended: acknowledge (or log its error) when its task ends."""
        if ack_id is not None:
            conn = client.conn

            def send_ack(r: Any) -> None:
                self._send_ack(conn, namespace, ack_id, r)

            then(task, send_ack, self._log_handler_error)
        else:
            task.add_done_callback(self._check_task)

    def _handler_error(self, event: str) -> None:
        """Log the exception a handler of ``event`` raised (called from its except block)."""
        self.logger.exception('error in handler of event "%s"', event)

    def _event_with_hooks(self, client: _Client, sock: Socket, key: Any, pkt: Any, event: str,
                          args: list[Any]) -> None:
        """Node's ``onevent``: the catch-all listeners, then the event middlewares, then the handler."""
        for listener in self.any_listeners.get(key, ()):
            try:
                result = listener(sock.sid, event, *args)
                if type(result) is _Coroutine:
                    self._watch(start_eagerly(result))
            except Exception:
                self.logger.exception("error in an on_any listener")
        fns = self.event_middlewares.get(key)
        if not fns:
            self._handle_event(client, pkt, args)
            return
        failure: list[Callable[..., Any] | None] = [None]

        async def run() -> None:
            for fn, on_error in fns:
                failure[0] = on_error
                result = fn(sock.sid, event, args)
                if inspect.isawaitable(result):
                    await result

        def passed(_: Any) -> None:
            if sock.connected:
                self._handle_event(client, pkt, args)

        def rejected(exc: BaseException) -> None:
            on_error = failure[0]
            if on_error is None:
                self.logger.info('event "%s" from %s rejected by middleware: %r', event, sock.sid, exc)
                return
            try:
                result = on_error(sock.sid, exc)
                if type(result) is _Coroutine:
                    self._watch(start_eagerly(result))
            except Exception:
                self.logger.exception("error in an event middleware's on_error")

        try:
            result = start_eagerly(run())
        except Exception as exc:
            rejected(exc)
            return
        then(result, passed, rejected)

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
            if self.manager.broadcast_acks and self.manager.broadcast_answer(sock.sid, sock.namespace,
                                                                             pkt.id, pkt.data):
                return
            self.logger.warning("%s: unknown acknowledgement id %s", sock.sid, pkt.id)
            return
        try:
            start_eagerly(cb(*pkt.data))
        except Exception:
            self.logger.exception("error in acknowledgement callback")

    def _handle_connect(self, client: _Client, pkt: Any) -> None:
        namespace = pkt.namespace
        conn = client.conn
        auth = pkt.data
        if conn.eio3 and "?" in namespace:
            # Socket.IO v4 has no auth payload: the query in the namespace takes its place.
            namespace, _, qs = namespace.partition("?")
            auth = {k: v[-1] for k, v in parse_qs(qs).items()}
        if namespace in client.sockets or (client.connecting and namespace in client.connecting):
            self.logger.warning("%s: already connected to %s", conn.sid, namespace)
            return
        if (namespace in self.handlers or namespace in self.namespace_handlers or self.namespaces == "*"
                or namespace in self.namespaces or namespace in self.declared_namespaces
                or namespace in self.child_namespaces):
            self._admit(client, namespace, auth)
            return
        parents = self._parents()
        if not parents:
            self._invalid_namespace(conn, namespace)
            return
        self._connecting(client, namespace, True)

        def matched(parent: Any) -> None:
            self._connecting(client, namespace, False)
            if conn.closed:
                return
            if parent is None:
                self._invalid_namespace(conn, namespace)
                return
            # Node's ParentNamespace.createChild: the child gets the parent's handlers and middleware.
            self.child_namespaces.setdefault(namespace, parent)
            if parent in self.outgoing_listeners:
                self.manager.watch_outgoing(namespace)
            self._admit(client, namespace, auth)

        def failed(exc: BaseException) -> None:
            self._connecting(client, namespace, False)
            self.logger.error("namespace check failed", exc_info=exc)
            if not conn.closed:
                self._invalid_namespace(conn, namespace)

        then(start_eagerly(self._match_parent(parents, namespace, auth)), matched, failed)

    def _invalid_namespace(self, conn: Any, namespace: str) -> None:
        self.logger.info("%s: CONNECT_ERROR for unknown namespace %s", conn.sid, namespace)
        conn.send_packet(self._encode(CONNECT_ERROR, namespace, {"message": "Invalid namespace"}))

    def _parents(self) -> list[Any]:
        """Every parent of dynamic namespaces, in the order Node checks them (registration)."""
        seen: list[Any] = []
        sources: list[Iterable[Any]] = [self.namespaces if isinstance(self.namespaces, list) else [],
                                        self.handlers, self.namespace_handlers, self.middlewares,
                                        self.event_middlewares, self.any_listeners, self.outgoing_listeners,
                                        self.server_side_handlers]
        for source in sources:
            for key in source:
                if _is_parent(key) and all(key is not k for k in seen):
                    seen.append(key)
        return seen

    @staticmethod
    async def _match_parent(parents: list[Any], name: str, auth: Any) -> Any:
        for parent in parents:
            if hasattr(parent, "search"):
                if parent.search(name):
                    return parent
                continue
            ok = parent(name, auth)
            if inspect.isawaitable(ok):
                ok = await ok
            if ok:
                return parent
        return None

    @staticmethod
    def _connecting(client: _Client, namespace: str, on: bool) -> None:
        if on:
            if client.connecting is None:
                client.connecting = set()
            client.connecting.add(namespace)
        elif client.connecting is not None:
            client.connecting.discard(namespace)

    def _admit(self, client: _Client, namespace: str, auth: Any) -> None:
        """Run the connection middlewares, then connect (Node's ``namespace._add``)."""
        restored = None
        if client.conn.eio3:
            # socket.io-client 2.x makes its socket ids this way itself (as Node's server does);
            # it has no connection state recovery.
            sid = client.conn.sid if namespace == "/" else namespace + "#" + client.conn.sid
        else:
            if self.recovery is not None and isinstance(auth, dict) and "pid" in auth:
                restored = self.recovery.restore(namespace, auth.get("pid"), auth.get("offset"))
                if inspect.isawaitable(restored):
                    # A store shared by a fleet (a cluster manager's): looked up, then admitted.
                    self._admit_after(client, namespace, auth, restored)
                    return
            self._admit_restored(client, namespace, auth, restored)
            return
        self._admit_sid(client, namespace, auth, sid, None)

    def _admit_after(self, client: _Client, namespace: str, auth: Any, lookup: Any) -> None:
        conn = client.conn
        self._connecting(client, namespace, True)

        def found(restored: Any) -> None:
            self._connecting(client, namespace, False)
            if not conn.closed:
                self._admit_restored(client, namespace, auth, restored)

        def lost(exc: BaseException) -> None:
            self.logger.warning("%s: looking up a lost session failed: %r", conn.sid, exc)
            found(None)

        try:
            result = start_eagerly(lookup)
        except Exception as exc:
            lost(exc)
            return
        then(result, found, lost)

    def _admit_restored(self, client: _Client, namespace: str, auth: Any,
                        restored: tuple[Session, Any] | None) -> None:
        if restored is not None:
            self.logger.info("%s: connection state recovered for %s", client.conn.sid, restored[0].sid)
        sid = restored[0].sid if restored is not None else self.eio.generate_id()
        self._admit_sid(client, namespace, auth, sid, restored)

    def _admit_sid(self, client: _Client, namespace: str, auth: Any, sid: str,
                   restored: tuple[Session, Any] | None) -> None:
        fns = self.middlewares.get(namespace)
        if fns is None and self.child_namespaces:
            fns = self.middlewares.get(self.child_namespaces.get(namespace))
        if not fns or (restored is not None and self.recovery_options.skip_middlewares):  # type: ignore[union-attr]
            self._accept(client, namespace, sid, auth, restored=restored)
            return
        conn = client.conn
        self._connecting(client, namespace, True)
        # What the middlewares store with socket_data(sid) becomes the socket's data.
        data: dict[str, Any] = {}
        if restored is not None:
            if isinstance(restored[0].data, dict):
                data = restored[0].data
            self._recovering[sid] = restored[0]
        self._arriving_data[sid] = data

        def passed(_: Any) -> None:
            self._connecting(client, namespace, False)
            self._arriving_data.pop(sid, None)
            self._recovering.pop(sid, None)
            if not conn.closed:
                self._accept(client, namespace, sid, auth, data, restored)

        def refused(exc: BaseException) -> None:
            self._connecting(client, namespace, False)
            self._arriving_data.pop(sid, None)
            self._recovering.pop(sid, None)
            if isinstance(exc, exceptions.ConnectionRefusedError):
                error = dict(exc.error_args)
            elif isinstance(exc, Exception):
                # Node: next(new Error(msg)) -> {"message": msg, "data": err.data}
                error = {"message": str(exc)}
                data = getattr(exc, "data", None)
                if data is not None:
                    error["data"] = data
            else:
                raise exc
            self.logger.info("%s: connection to %s refused by middleware: %s", conn.sid, namespace, error)
            if not conn.closed:
                conn.send_packet(self._encode(CONNECT_ERROR, namespace,
                                              _v3_connect_error(error) if conn.eio3 else error))

        try:
            result = start_eagerly(self._run_middlewares(list(fns), sid, client.environ, auth or None))
        except Exception as exc:
            refused(exc)
            return
        then(result, passed, refused)

    @staticmethod
    async def _run_middlewares(fns: list[Callable[..., Any]], sid: str, environ: Any, auth: Any) -> None:
        for fn in fns:
            result = fn(sid, environ, auth)
            if inspect.isawaitable(result):
                await result

    def _accept(self, client: _Client, namespace: str, sid: str, auth: Any,
                data: dict[str, Any] | None = None,
                restored: tuple[Session, Any] | None = None) -> None:
        conn = client.conn
        if namespace in client.sockets:
            return
        store = self.recovery
        missed: list[Any] | None = None
        if restored is not None and store is not None:
            # Listed now, not before the middlewares: what was broadcast meanwhile is included.
            if self.manager.get_socket(sid, namespace) is None:
                missed = store.missed(namespace, restored[0].rooms, restored[1])
            if missed is None:
                # the sid is in use again, or the log moved past its offset: a fresh session
                self.logger.info("%s: session %s could not be recovered", conn.sid, sid)
                restored = None
                sid = self.eio.generate_id()
        sock = Socket(sid, namespace, conn, client)
        sock.auth = auth
        if data:
            sock.data = data
        sock.issued = time.time()
        connect_data: dict[str, Any] = {"sid": sid}
        if store is not None:
            if restored is not None:
                session = restored[0]
                sock.pid = session.pid
                sock.recovered = True
                if not data and session.data is not None:
                    sock.data = session.data
                if session.session is not None:
                    sock.session = session.session
            else:
                sock.pid = store.new_pid()
            # Where a replay for this socket may start: everything after it was sent on it.
            sock.start_seq = restored[1] if restored is not None else store.position()
            connect_data["pid"] = sock.pid
        client.sockets[namespace] = sock
        self.manager.add_socket(sock)
        sock.connected = True
        if restored is not None:
            # As Node: its rooms back, then the packets it missed, before anything newer.
            for room in restored[0].rooms:
                if room != sid:
                    self.manager.enter_room_now(sid, namespace, room)
            for enc in missed or ():
                conn.send_packet(enc)
        if self.always_connect:
            conn.send_packet(self._encode(CONNECT, namespace, None if conn.eio3 else connect_data))
        fail_reason: dict[str, Any] = {"message": "Connection rejected by server"}

        def finish(success: Any) -> None:
            if conn.closed or client.sockets.get(namespace) is not sock:
                return
            if success is False:
                if self.always_connect:
                    conn.send_packet(self._encode(DISCONNECT, namespace, fail_reason))
                else:
                    conn.send_packet(self._encode(CONNECT_ERROR, namespace,
                                                  _v3_connect_error(fail_reason) if conn.eio3 else fail_reason))
                self.logger.info("%s: connection to %s refused: %s", conn.sid, namespace, fail_reason)
                client.sockets.pop(namespace, None)
                self.manager.remove_socket(sock)
            else:
                if not self.always_connect:
                    conn.send_packet(self._encode(CONNECT, namespace, None if conn.eio3 else connect_data))
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

    def _drop_socket(self, sock: Socket, reason: str, recoverable: bool = False) -> None:
        """A socket leaves its namespace: disconnect handler, then forget it.  ``recoverable``:
        the connection was lost, not left, so its state is kept for recovery (when on)."""
        if not sock.connected:
            return
        store = self.recovery
        if recoverable and store is not None and sock.pid is not None:
            store.persist(sock.pid, sock.sid, sock.namespace, self.manager.get_rooms(sock.sid, sock.namespace),
                          sock.data, sock.session, sock.start_seq)
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
        if (self.cleanup_empty_child_namespaces and sock.namespace in self.child_namespaces
                and not self.manager.sockets.get(sock.namespace)):
            del self.child_namespaces[sock.namespace]

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
