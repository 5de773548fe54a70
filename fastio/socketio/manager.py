"""The in-memory client manager: who is connected where, rooms, emits and acknowledgement ids.

Membership and fan-out live in the compiled ``RoomTable``; an emit encodes its packet once and
the table hands the same frames to every recipient.  The manager has python-socketio's ``AsyncManager`` interface (``connect``, ``disconnect``,
``enter_room``, ``emit``, ``trigger_callback``, ``rooms``, the ``basic_*`` methods, ...), so a
subclass written against python-socketio's documentation works: when a subclass outside fastio
overrides ``emit``, ``connect``, ``disconnect`` or ``enter_room``, the server's calls go through
that override (started eagerly: an override that does not suspend runs to completion at once).
Without overrides the server uses the synchronous fast paths (``emit_now``, ``add_socket``,
``remove_socket``, ``enter_room_now``).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Hashable

from fastio._core.packet import EVENT, encode
from fastio._core.rooms import RoomTable
from fastio.base.util import start_eagerly
from fastio.socketio.operators import BroadcastFlags
from fastio.socketio.remote_socket import RemoteSocket

__all__ = ["AsyncManager", "Socket", "RoomsView"]

default_logger = logging.getLogger("fastio.socketio")

# Acknowledgement ids come from one counter for the whole process, as Node's come from one per
# namespace: a broadcast shares one id among its recipients, which can then never collide with
# an id a recipient's own emits use.
_ack_ids = itertools.count(1)


class Socket:
    """One client's membership of one namespace (created at CONNECT, not per message)."""

    __slots__ = ("sid", "namespace", "conn", "client", "_session", "callbacks", "connected", "auth", "issued",
                 "_data", "pid", "recovered", "start_seq")

    def __init__(self, sid: str, namespace: str, conn: Any, client: Any) -> None:
        self.sid = sid
        self.namespace = namespace
        self.conn = conn
        self.client = client
        # Created on first use: most sockets never store a session or wait for an ack.
        self._session: dict[str, Any] | None = None
        self.callbacks: dict[int, Callable[..., Any]] | None = None
        self.connected = False
        self.auth: Any = None
        self.issued = 0.0
        self._data: dict[str, Any] | None = None
        # Connection state recovery: the private session id (None when recovery is off), whether
        # this socket took over a lost session, and the packet log's position when it connected.
        self.pid: str | None = None
        self.recovered = False
        self.start_seq = 0

    @property
    def data(self) -> dict[str, Any]:
        """Anything the application keeps on the socket (Node's ``socket.data``); it is what
        ``fetch_sockets()`` shows as ``data``."""
        if self._data is None:
            self._data = {}
        return self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        """Replace the data dictionary."""
        self._data = value

    @property
    def session(self) -> dict[str, Any]:
        """The user session of this socket."""
        if self._session is None:
            self._session = {}
        return self._session

    @session.setter
    def session(self, value: dict[str, Any]) -> None:
        """Replace the session dictionary."""
        self._session = value

    @property
    def eio_sid(self) -> str:
        """The Engine.IO session id of the connection carrying this socket."""
        return self.conn.sid

    def add_callback(self, callback: Callable[..., Any]) -> int:
        """Register an acknowledgement callback; returns its ack id."""
        ack_id = next(_ack_ids)
        if self.callbacks is None:
            self.callbacks = {}
        self.callbacks[ack_id] = callback
        return ack_id


def event_args(event: str, data: Any) -> list[Any]:
    """python-socketio's argument rule: None -> none, a tuple -> several, anything else -> one."""
    if data is None:
        return [event]
    if type(data) is tuple:
        return [event, *data]
    return [event, data]


def _is_many(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


class _NamespaceRooms(Mapping):  # type: ignore[type-arg]
    """``manager.rooms[namespace]``: room -> {sid: eio_sid}, read from the compiled table.

    Keys are python-socketio's: ``None`` (everyone), each member's sid (its own room) and every
    named room.  Each lookup builds a fresh ``{sid: eio_sid}`` dict: changing it changes nothing.
    """

    __slots__ = ("_table", "_namespace")

    def __init__(self, table: RoomTable, namespace: str) -> None:
        self._table = table
        self._namespace = namespace

    def _raw(self) -> dict[Any, dict[str, Any]]:
        return self._table.get(self._namespace) or {None: {}}

    def __getitem__(self, room: Any) -> RoomMembers:
        raw = self._raw()
        members = raw.get(room)
        if members:
            return RoomMembers((sid, conn.sid) for sid, conn in members.items())
        if isinstance(room, str):
            conn = raw[None].get(room)
            if conn is not None:
                return RoomMembers({room: conn.sid})
        raise KeyError(room)

    def __iter__(self) -> Iterator[Any]:
        raw = self._raw()
        everyone = raw[None]
        if everyone:
            yield None
        yield from list(everyone)
        for room in list(raw):
            if room is not None and room not in everyone:
                yield room

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, room: object) -> bool:
        raw = self._raw()
        return bool(raw.get(room)) or (isinstance(room, str) and room in raw[None])

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class RoomMembers(dict):  # type: ignore[type-arg]
    """One room's members, ``{sid: eio_sid}``; ``inverse`` is ``{eio_sid: sid}``, as the bidict
    python-socketio keeps per room offers."""

    @property
    def inverse(self) -> dict[str, str]:
        """The same members keyed by Engine.IO session id."""
        return {eio_sid: sid for sid, eio_sid in self.items()}


class RoomsView(Mapping):  # type: ignore[type-arg]
    """``manager.rooms`` shaped as python-socketio's: ``rooms[namespace][room] -> {sid: eio_sid}``.

    A read-only view over the compiled ``RoomTable`` (which emits go through, untouched by this
    view).  The table's own methods (``members``, ``enter``, ``leave``, ``fanout``, ...) remain
    reachable through it, for code written against earlier fastio versions.
    """

    __slots__ = ("table",)

    def __init__(self, table: RoomTable) -> None:
        self.table = table

    def __getitem__(self, namespace: str) -> _NamespaceRooms:
        raw = self.table.get(namespace) if isinstance(namespace, str) else None
        if not raw or not raw.get(None):
            raise KeyError(namespace)
        return _NamespaceRooms(self.table, namespace)

    def __iter__(self) -> Iterator[str]:
        return iter([ns for ns in self.table if self.table.get(ns).get(None)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)

    def __repr__(self) -> str:
        return repr({ns: dict(rooms.items()) for ns, rooms in self.items()})


def _definer(cls: type, name: str) -> type | None:
    """The class whose ``name`` ``cls`` uses."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _defined_outside_fastio(cls: type, name: str) -> bool:
    """True when the implementation of ``name`` that ``cls`` uses comes from outside fastio."""
    klass = _definer(cls, name)
    return klass is not None and not klass.__module__.startswith("fastio.")


class AsyncManager:
    """Tracks connected clients and rooms for one server, in this process.

    Membership lives in the compiled ``RoomTable`` (``room_table``); ``rooms`` is the same data
    as python-socketio shows it.  The server calls the synchronous methods (``add_socket``,
    ``remove_socket``, ``emit_now``, ``enter_room_now``); python-socketio's coroutine methods
    (``connect``, ``disconnect``, ``emit``, ``enter_room``, ...) do the same work and are what
    subclasses override.
    """

    def __init__(self) -> None:
        self.server: Any = None
        self.logger: logging.Logger | None = None
        # The packet encoder: the server sets its serializer's (default: JSON text packets).
        self.encode: Callable[..., Any] = encode
        self.room_table = RoomTable()
        self.rooms = RoomsView(self.room_table)
        self.sockets: dict[str, dict[str, Socket]] = {}
        # Acknowledgements expected from clients this process does not hold (pub/sub managers):
        # sid -> {ack id: callback}.
        self.callbacks: dict[str, dict[int, Callable[..., Any]]] = {}
        self.pending_connect: dict[str, list[str]] = {}
        self.pending_disconnect: dict[str, list[str]] = {}
        self._ack_id = 0
        self._arriving: dict[tuple[str, str], Socket] = {}
        # Namespaces whose emits are reported to ``server.notify_outgoing`` (on_any_outgoing).
        self.outgoing_namespaces: set[str] = set()
        # Broadcast acknowledgements awaited: ack id -> (namespace, sids yet to answer, callback).
        self.broadcast_acks: dict[int, tuple[str, set[str], Callable[[Any], None]]] = {}
        # The Admin UI's hooks (fastio.socketio.admin), None unless the server is instrumented.
        self.admin: Any = None
        # Connection state recovery's packet log and lost sessions (fastio.socketio.recovery), set
        # by the server when the option is on: then every broadcast is logged, once per emit.
        self.recovery: Any = None
        cls = type(self)
        self._emit_hook = _defined_outside_fastio(cls, "emit")
        self._connect_hook = _defined_outside_fastio(cls, "connect") or _defined_outside_fastio(cls, "pre_connect")
        self._disconnect_hook = _defined_outside_fastio(cls, "disconnect")
        self._enter_hook = _defined_outside_fastio(cls, "enter_room")
        # Emits stay in this process and nobody overrides them: emit_now fans out directly.
        self._local_fanout = False
        self._update_fast_path()

    # True while a cluster manager's publish queue is full: ``AsyncServer.emit`` then awaits
    # ``publish_room()`` before emitting (backpressure).  Never true for this manager.
    publish_full = False

    async def publish_room(self) -> None:
        """Wait until a message can be queued for the other servers (a cluster manager with a
        bounded publish queue overrides this); returns at once here."""

    def set_server(self, server: Any) -> None:
        """Attach to the Socket.IO server."""
        self.server = server

    def set_recovery(self, store: Any) -> None:
        """Log every broadcast in ``store`` (a ``fastio.socketio.recovery.RecoveryStore``), or
        stop logging with None."""
        self.recovery = store
        self._update_fast_path()

    def _update_fast_path(self) -> None:
        self._local_fanout = (not self._emit_hook and _definer(type(self), "_emit") is AsyncManager
                              and not self.outgoing_namespaces and self.recovery is None)

    def initialize(self) -> None:
        """Called once before the first client connects; subclasses start their work here."""

    def _get_logger(self) -> logging.Logger:
        """The manager's logger: ``logger=`` if given, else the server's, else fastio's."""
        if self.logger:
            return self.logger
        if self.server is not None:
            return self.server.logger  # type: ignore[no-any-return]
        return default_logger

    def get_namespaces(self) -> list[str]:
        """Namespaces with connected clients."""
        return [ns for ns, socks in self.sockets.items() if socks]

    def get_participants(self, namespace: str, room: Any) -> Iterator[tuple[str, str]]:
        """(sid, eio_sid) of every member of ``room`` (or of any of several rooms)."""
        if _is_many(room):
            members: dict[str, Any] = {}
            for r in room:
                members.update(self.room_table.members(namespace, r))
        else:
            members = self.room_table.members(namespace, room)
        for sid, conn in members.items():
            yield sid, conn.sid

    # -- connection bookkeeping (the server's calls) -----------------------------------------------

    def add_socket(self, sock: Socket) -> None:
        """Register a socket the server created at CONNECT: it joins the everyone room (and so
        its own sid room).  A subclass's ``connect`` override, if any, is called for it."""
        if self._connect_hook:
            self._arriving[(sock.conn.sid, sock.namespace)] = sock
            self._run_hook(self.connect(sock.conn.sid, sock.namespace))
            return
        self._register(sock)

    def remove_socket(self, sock: Socket) -> None:
        """Forget a socket: it leaves every room, in O(its rooms).  A subclass's ``disconnect``
        override, if any, is called for it."""
        if self._disconnect_hook:
            if self.get_socket(sock.sid, sock.namespace) is sock:
                self._run_hook(self.disconnect(sock.sid, sock.namespace, ignore_queue=True))
            self._arriving.pop((sock.conn.sid, sock.namespace), None)
            sock.connected = False
            return
        self._unregister(sock)

    def _register(self, sock: Socket) -> None:
        self.sockets.setdefault(sock.namespace, {})[sock.sid] = sock
        self.room_table.enter(sock.namespace, None, sock.sid, sock.conn)  # its own sid room is implicit

    def _unregister(self, sock: Socket) -> None:
        socks = self.sockets.get(sock.namespace)
        if socks is not None and socks.get(sock.sid) is sock:
            del socks[sock.sid]
            if not socks:
                del self.sockets[sock.namespace]  # no per-namespace leftovers keyed on client input
            self.room_table.leave_all(sock.namespace, sock.sid)
        sock.connected = False
        self.callbacks.pop(sock.sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if pending:
                self._unmark(pending, sock.sid, sock.namespace)

    def _run_hook(self, coro: Any) -> None:
        result = start_eagerly(coro)
        if isinstance(result, asyncio.Task):
            result.add_done_callback(self._check_hook)

    def _check_hook(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._get_logger().error("error in a client manager method", exc_info=task.exception())

    def get_socket(self, sid: str, namespace: str) -> Socket | None:
        """The socket of ``sid`` in ``namespace``."""
        socks = self.sockets.get(namespace)
        return socks.get(sid) if socks is not None else None

    def is_connected(self, sid: str, namespace: str) -> bool:
        """True if ``sid`` is connected to ``namespace`` (and neither connecting nor leaving)."""
        sock = self.get_socket(sid, namespace)
        if sock is None or not sock.connected:
            return False
        if self.pending_connect or self.pending_disconnect:
            return not (sid in self.pending_connect.get(namespace, ()) or
                        sid in self.pending_disconnect.get(namespace, ()))
        return True

    def is_pre_connected(self, sid: str, namespace: str) -> bool:
        """True if ``sid`` was registered by ``pre_connect`` and ``connect`` has not followed."""
        return sid in self.pending_connect.get(namespace, ()) and self.get_socket(sid, namespace) is not None

    def sid_from_eio_sid(self, eio_sid: str, namespace: str) -> str | None:
        """The Socket.IO sid of an Engine.IO session in ``namespace``."""
        if self.server is None:
            return None
        sock = self.server.socket_of_eio_session(eio_sid, namespace)
        return sock.sid if sock is not None else None

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        """The Engine.IO session id carrying ``sid``."""
        sock = self.get_socket(sid, namespace)
        return sock.conn.sid if sock is not None else None

    def is_sid_room(self, namespace: str, room: Any) -> bool:
        """True if ``room`` is the sid of a client of ``namespace`` (its own room)."""
        return isinstance(room, str) and self.room_table.conn_of(namespace, room) is not None

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """True if ``sid`` can be disconnected from ``namespace`` by this process."""
        return self.is_connected(sid, namespace)

    # -- python-socketio's connection API ----------------------------------------------------------

    def _socket_for(self, eio_sid: str, namespace: str) -> Socket | None:
        """The socket to register for ``eio_sid``: the one the server is connecting, or a new one
        on the live Engine.IO session (python-socketio's ``manager.connect(eio_sid, ns)``)."""
        sock = self._arriving.pop((eio_sid, namespace), None)
        if sock is not None:
            return sock
        if self.server is None:
            raise RuntimeError("the manager is not attached to a server")
        conn = self.server.eio.sockets.get(eio_sid)
        client = conn.ext if conn is not None else None
        if client is None or namespace in client.sockets:
            return None
        sock = Socket(self.server.eio.generate_id(), namespace, conn, client)
        client.sockets[namespace] = sock
        sock.connected = True
        return sock

    async def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        """Register a client connection to ``namespace``, marked as connecting until
        ``connect`` confirms it; returns its sid (None if already connected)."""
        sock = self._socket_for(eio_sid, namespace)
        if sock is None:
            return None
        self._register(sock)
        self.pending_connect.setdefault(namespace, []).append(sock.sid)
        return sock.sid

    async def connect(self, sid: str, namespace: str) -> str | None:
        """Register a client as connected to ``namespace``; returns its sid.

        ``sid`` is the sid ``pre_connect`` returned, or an Engine.IO session id for a connection
        in one step (python-socketio's convention)."""
        if not self.is_pre_connected(sid, namespace):
            if (sid, namespace) not in self._arriving and self.get_socket(sid, namespace) is not None:
                return sid
            new_sid = await self.pre_connect(sid, namespace)
            if new_sid is None:
                return None
            sid = new_sid
        self._unmark(self.pending_connect, sid, namespace)
        return sid

    def pre_disconnect(self, sid: str, namespace: str) -> str | None:
        """Mark ``sid`` as leaving (``is_connected`` is then False); returns its eio_sid."""
        self.pending_disconnect.setdefault(namespace, []).append(sid)
        return self.eio_sid_from_sid(sid, namespace)

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Forget ``sid`` in ``namespace``: rooms, pending acknowledgements, its socket."""
        self.basic_disconnect(sid, namespace, **kwargs)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """``disconnect`` in this process only, synchronously."""
        sock = self.get_socket(sid, namespace)
        if sock is None:
            self.callbacks.pop(sid, None)
            self._unmark(self.pending_connect, sid, namespace)
            self._unmark(self.pending_disconnect, sid, namespace)
            return
        client = sock.client
        if client is not None and client.sockets.get(namespace) is sock:
            del client.sockets[namespace]
        self._unregister(sock)

    @staticmethod
    def _unmark(pending: dict[str, list[str]], sid: str, namespace: str) -> None:
        sids = pending.get(namespace)
        if sids and sid in sids:
            sids.remove(sid)
            if not sids:
                del pending[namespace]

    # -- rooms -------------------------------------------------------------------------------------

    def enter_room_now(self, sid: str, namespace: str, room: Any) -> None:
        """Add ``sid`` to ``room`` (synchronous; a subclass's ``enter_room`` override, if any,
        is called instead)."""
        if self._enter_hook:
            self._run_hook(self.enter_room(sid, namespace, room))
            return
        self._enter(sid, namespace, room)

    def _enter(self, sid: str, namespace: str, room: Any) -> None:
        sock = self.get_socket(sid, namespace)
        if sock is None:
            raise KeyError("sid %s is not connected to namespace %s" % (sid, namespace))
        self.room_table.enter(namespace, room, sid, sock.conn)
        if self.admin is not None:
            self.admin.room_joined(namespace, room, sid)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room``."""
        self._enter(sid, namespace, room)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove ``sid`` from ``room``."""
        self.basic_leave_room(sid, namespace, room)

    async def close_room(self, room: Any, namespace: str) -> None:
        """Remove every member from ``room``."""
        self.basic_close_room(room, namespace)

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """python-socketio's synchronous ``enter_room``; raises ValueError for a sid that is not
        connected or a room that is another client's sid."""
        if sid != room and self.is_sid_room(namespace, room):
            raise ValueError("cannot enter a sid room")
        if self.get_socket(sid, namespace) is None:
            raise ValueError("sid is not connected to requested namespace")
        self._enter(sid, namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """python-socketio's synchronous ``leave_room``."""
        if self.room_table.leave(namespace, room, sid) and self.admin is not None:
            self.admin.room_left(namespace, room, sid)

    def basic_close_room(self, room: Any, namespace: str) -> None:
        """python-socketio's synchronous ``close_room``; a sid room cannot be closed."""
        if self.is_sid_room(namespace, room):
            raise ValueError("cannot close a sid room")
        left = self.room_table.close_room(namespace, room)
        if self.admin is not None:
            for sid in left:
                self.admin.room_left(namespace, room, sid)

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """Rooms ``sid`` is in, its own sid room included."""
        return self.room_table.rooms_of(namespace, sid)

    # -- emitting ----------------------------------------------------------------------------------

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                 ignore_queue: bool = False) -> int:
        """Encode once and queue to every recipient; returns how many were addressed (0 when a
        subclass's ``emit`` override handles it).

        ``ignore_queue``: this process's clients only (meaningful for pub/sub managers)."""
        if self._local_fanout and callback is None:
            # The common case, inline: one encode, the compiled fan-out (with the built-in codec,
            # the arguments are built and encoded there too).
            if self.encode is encode:
                return self.room_table.emit_event(namespace, room, skip_sid, event, data)
            return self.room_table.fanout(namespace, room, skip_sid,
                                          self.encode(EVENT, namespace, event_args(event, data)))
        if self._emit_hook:
            self._run_hook(self.emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                     callback=callback, ignore_queue=ignore_queue))
            return 0
        return self._emit(event, data, namespace, room, skip_sid, callback, ignore_queue)

    def _emit(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
              callback: Callable[..., Any] | None, ignore_queue: bool) -> int:
        return self.emit_local(event, data, namespace, room, skip_sid, callback)

    def emit_local(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None) -> int:
        """Deliver to this process's recipients only: one encode, the compiled fan-out."""
        args = event_args(event, data)
        if callback is None:
            store = self.recovery
            if store is not None and namespace not in self.outgoing_namespaces:
                # Logged once with its offset (the last argument); no work per recipient.
                args.append(store.next_offset())
                enc = self.encode(EVENT, namespace, args)
                store.record(namespace, room, None, skip_sid, enc)
                return self.room_table.fanout(namespace, room, skip_sid, enc)
            if namespace in self.outgoing_namespaces:
                return self.broadcast_local(namespace, args, room, None, BroadcastFlags(), skip_sid)
            return self.room_table.fanout(namespace, room, skip_sid, self.encode(EVENT, namespace, args))
        # An acknowledgement id is per recipient, so each gets its own packet.
        skip = set(skip_sid) if _is_many(skip_sid) else {skip_sid}
        rooms = room if _is_many(room) else [room]
        seen: set[str] = set()
        n = 0
        for r in rooms:
            for sid, conn in self.room_table.members(namespace, r).items():
                if sid in seen or sid in skip:
                    continue
                seen.add(sid)
                sock = self.get_socket(sid, namespace)
                if sock is None:
                    continue
                conn.send_packet(self.encode(EVENT, namespace, args, sock.add_callback(callback)))
                n += 1
                if namespace in self.outgoing_namespaces:
                    self._report(namespace, [sid], args)
        return n

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """Emit an event to one client, a room, several rooms or everyone in ``namespace``
        (python-socketio's manager signature; ``ignore_queue`` may be given)."""
        self._emit(event, data, namespace or "/", to if to is not None else room, skip_sid, callback,
                   bool(kwargs.get("ignore_queue")))

    def _generate_ack_id(self, sid: str, callback: Callable[..., Any]) -> int:
        """Register an acknowledgement callback expected from a client of another process."""
        self._ack_id += 1
        self.callbacks.setdefault(sid, {})[self._ack_id] = callback
        return self._ack_id

    def discard_callback(self, sid: str, namespace: str, callback: Callable[..., Any]) -> None:
        """Forget ``callback`` wherever it waits for ``sid``'s acknowledgement (a call that
        timed out)."""
        sock = self.get_socket(sid, namespace)
        if sock is not None and sock.callbacks:
            for ack_id, cb in list(sock.callbacks.items()):
                if cb is callback:
                    del sock.callbacks[ack_id]
        acks = self.callbacks.get(sid)
        if acks:
            for ack_id, cb in list(acks.items()):
                if cb is callback:
                    del acks[ack_id]
            if not acks:
                del self.callbacks[sid]

    async def trigger_callback(self, sid: str, id: int, data: Any) -> None:
        """Run the acknowledgement callback ``id`` of ``sid`` with the arguments ``data``."""
        cb = None
        acks = self.callbacks.get(sid)
        if acks:
            cb = acks.pop(id, None)
            if not acks:
                del self.callbacks[sid]
        if cb is None:
            for socks in self.sockets.values():
                sock = socks.get(sid)
                if sock is not None and sock.callbacks:
                    cb = sock.callbacks.pop(id, None)
                    if cb is not None:
                        break
        if cb is None:
            self._get_logger().warning("Unknown callback received, ignoring.")
            return
        result = cb(*data)
        if asyncio.iscoroutine(result):
            await result

    # -- Node's adapter operations -----------------------------------------------------------------
    # What the broadcast operators (``sio.to(...)``, ``sio.of(...)``) ask of the manager.  This
    # in-memory manager carries them out for this process; a cluster manager overrides them to
    # reach every server too (and ``flags.local`` tells it not to).

    def watch_outgoing(self, namespace: str, on: bool = True) -> None:
        """Tell the fan-out that ``namespace`` has outgoing listeners (``on_any_outgoing``): its
        emits then report the sids they reached to ``server.notify_outgoing``."""
        if on:
            self.outgoing_namespaces.add(namespace)
        else:
            self.outgoing_namespaces.discard(namespace)
        self._update_fast_path()

    def _report(self, namespace: str, reached: list[str] | None, args: list[Any]) -> None:
        if reached and self.server is not None:
            self.server.notify_outgoing(namespace, reached, args)

    def broadcast_local(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags,
                        skip: Any = None) -> int:
        """Send the event ``args`` (``[event, *arguments]``) to this process's sockets of
        ``namespace`` in any of ``to`` (None: all) and in none of ``exclude``: one encode, the
        compiled fan-out (volatile: left out where the transport cannot take it now).  Returns
        how many were reached.

        With connection state recovery on, a broadcast that is not volatile carries its offset
        as its last argument and is logged once, with its rooms (never per recipient)."""
        reached: list[str] | None = [] if namespace in self.outgoing_namespaces else None
        store = self.recovery
        if store is not None and not flags.volatile:
            args = [*args, store.next_offset()]
            enc = self.encode(EVENT, namespace, args)
            store.record(namespace, to, exclude, skip, enc)
        else:
            enc = self.encode(EVENT, namespace, args)
        if not flags.compress:
            enc.no_compress = True
        n = self.room_table.broadcast(namespace, to, exclude, skip, enc, flags.volatile, reached)
        self._report(namespace, reached, args)
        return n  # type: ignore[no-any-return]

    async def broadcast(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags) -> None:
        """Node's ``adapter.broadcast``: every server's selected sockets get the event (this
        manager has only this server's)."""
        self.broadcast_local(namespace, args, to, exclude, flags)

    def broadcast_with_ack_local(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags,
                                 on_answer: Callable[[Any], None], ack_id: int | None = None) -> tuple[int, int]:
        """``broadcast_local`` with one acknowledgement id shared by every recipient (one
        encode): each recipient's first answer argument goes to ``on_answer``, once per
        recipient.  Returns ``(ack_id, how many were reached)``."""
        if ack_id is None:
            ack_id = next(_ack_ids)
        reached: list[str] = []
        enc = self.encode(EVENT, namespace, args, ack_id)
        if not flags.compress:
            enc.no_compress = True
        self.room_table.broadcast(namespace, to, exclude, None, enc, flags.volatile, reached)
        if reached:
            self.broadcast_acks[ack_id] = (namespace, set(reached), on_answer)
        if namespace in self.outgoing_namespaces:
            self._report(namespace, reached, args)
        return ack_id, len(reached)

    async def broadcast_with_ack(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags,
                                 client_count: Callable[[int], None], on_answer: Callable[[Any], None]) -> int:
        """Node's ``adapter.broadcastWithAck``: each server reports how many clients it reached
        (``client_count``, once per server) and every client's answer goes to ``on_answer``.
        Returns the acknowledgement id (for ``forget_broadcast_ack``)."""
        ack_id, n = self.broadcast_with_ack_local(namespace, args, to, exclude, flags, on_answer)
        client_count(n)
        return ack_id

    def forget_broadcast_ack(self, ack_id: int) -> None:
        """Stop waiting for the answers to broadcast ``ack_id`` (done or timed out)."""
        self.broadcast_acks.pop(ack_id, None)

    def broadcast_answer(self, sid: str, namespace: str, ack_id: int, args: list[Any]) -> bool:
        """A client answered broadcast ``ack_id``: True if that answer was awaited (each
        recipient's first answer counts, anyone else's is ignored)."""
        pending = self.broadcast_acks.get(ack_id)
        if pending is None or pending[0] != namespace or sid not in pending[1]:
            return False
        pending[1].discard(sid)
        if not pending[1]:
            del self.broadcast_acks[ack_id]
        pending[2](args[0] if args else None)
        return True

    async def server_count(self) -> int:
        """How many servers share this manager's rooms (Node's ``serverCount``): 1 here."""
        return 1

    def select_local(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None) -> list[Socket]:
        """This process's sockets of ``namespace`` in any of ``to`` and none of ``exclude``."""
        socks = self.sockets.get(namespace) or {}
        out = []
        for sid in self.room_table.select(namespace, to, exclude):
            sock = socks.get(sid)
            if sock is not None and sock.connected:
                out.append(sock)
        return out

    def remote_socket(self, sock: Socket) -> RemoteSocket:
        """``sock`` as ``fetch_sockets`` shows it."""
        return RemoteSocket(self.server, sock.sid, sock.namespace,
                            set(self.room_table.rooms_of(sock.namespace, sock.sid)), sock.data,
                            handshake(sock))

    async def fetch_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                            flags: BroadcastFlags) -> list[RemoteSocket]:
        """Node's ``adapter.fetchSockets``: the selected sockets of every server."""
        return [self.remote_socket(sock) for sock in self.select_local(namespace, to, exclude)]

    async def add_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """Node's ``adapter.addSockets``: the selected sockets join ``rooms``."""
        for sock in self.select_local(namespace, to, exclude):
            for room in rooms:
                self.enter_room_now(sock.sid, namespace, room)

    async def del_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """Node's ``adapter.delSockets``: the selected sockets leave ``rooms``."""
        for sock in self.select_local(namespace, to, exclude):
            for room in rooms:
                self.basic_leave_room(sock.sid, namespace, room)

    async def disconnect_sockets(self, namespace: str, to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags, close: bool) -> None:
        """Node's ``adapter.disconnectSockets``: the selected sockets are disconnected from
        ``namespace``; with ``close``, their connections are closed."""
        for sock in self.select_local(namespace, to, exclude):
            await self.server.disconnect_socket(sock, close)

    async def server_side_emit(self, namespace: str, args: list[Any]) -> None:
        """Node's ``adapter.serverSideEmit``: the event ``args`` goes to the other servers'
        ``on_server_side`` handlers.  There are none here, so it reaches nobody."""

    async def server_side_emit_with_ack(self, namespace: str, args: list[Any], timeout: float | None) -> list[Any]:
        """``server_side_emit`` that waits for each other server's acknowledgement and returns
        them: ``[]`` here, where there are no other servers."""
        return []


def handshake(sock: Socket) -> dict[str, Any]:
    """Node's ``socket.handshake`` for ``sock``, built from its connection's environ."""
    environ = sock.conn.environ or {}
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_") and isinstance(value, str)}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    query_string = environ.get("QUERY_STRING", "")
    query: dict[str, str] = {}
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            query[name] = value
    issued = sock.issued or time.time()
    return {
        "headers": headers,
        # JavaScript's Date.prototype.toString() of the connection time, in UTC
        "time": time.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(issued)),
        "address": environ.get("REMOTE_ADDR", ""),
        "xdomain": "HTTP_ORIGIN" in environ,
        "secure": environ.get("wsgi.url_scheme") in ("https", "wss"),
        "issued": int(issued * 1000),
        "url": environ.get("RAW_URI") or environ.get("PATH_INFO", "") + ("?" + query_string if query_string else ""),
        "query": query,
        "auth": sock.auth if sock.auth is not None else {},
    }
