"""The in-memory client manager: who is connected where, rooms, emits and acknowledgement ids.

Membership and fan-out live in the compiled ``RoomTable``; an emit encodes its packet once and
the table hands the same frames to every recipient.  The method names follow python-socketio's
``AsyncManager`` so code that reaches into ``sio.manager`` keeps working.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from fastio._core.packet import EVENT, encode
from fastio._core.rooms import RoomTable

__all__ = ["AsyncManager", "Socket"]


class Socket:
    """One client's membership of one namespace (created at CONNECT, not per message)."""

    __slots__ = ("sid", "namespace", "conn", "client", "_session", "callbacks", "_last_id", "connected")

    def __init__(self, sid: str, namespace: str, conn: Any, client: Any) -> None:
        self.sid = sid
        self.namespace = namespace
        self.conn = conn
        self.client = client
        # Created on first use: most sockets never store a session or wait for an ack.
        self._session: dict[str, Any] | None = None
        self.callbacks: dict[int, Callable[..., Any]] | None = None
        self._last_id = 0
        self.connected = False

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
        self._last_id += 1
        if self.callbacks is None:
            self.callbacks = {}
        self.callbacks[self._last_id] = callback
        return self._last_id


def event_args(event: str, data: Any) -> list[Any]:
    """python-socketio's argument rule: None -> none, a tuple -> several, anything else -> one."""
    if data is None:
        return [event]
    if type(data) is tuple:
        return [event, *data]
    return [event, data]


class AsyncManager:
    """Tracks connected clients and rooms for one server, in this process."""

    def __init__(self) -> None:
        self.server: Any = None
        # The packet encoder: the server sets its serializer's (default: JSON text packets).
        self.encode: Callable[..., Any] = encode
        self.rooms = RoomTable()
        self.sockets: dict[str, dict[str, Socket]] = {}

    def set_server(self, server: Any) -> None:
        """Attach to the Socket.IO server."""
        self.server = server

    def initialize(self) -> None:
        """Called once before the first client connects."""

    def get_namespaces(self) -> list[str]:
        """Namespaces with connected clients."""
        return [ns for ns, socks in self.sockets.items() if socks]

    def get_participants(self, namespace: str, room: Any) -> Iterator[tuple[str, str]]:
        """(sid, eio_sid) of every member of ``room``."""
        for sid, conn in self.rooms.members(namespace, room).items():
            yield sid, conn.sid

    # -- connection bookkeeping ------------------------------------------------------------------

    def add_socket(self, sock: Socket) -> None:
        """Register a socket: it joins the everyone room (and so its own sid room)."""
        self.sockets.setdefault(sock.namespace, {})[sock.sid] = sock
        self.rooms.enter(sock.namespace, None, sock.sid, sock.conn)  # its own sid room is implicit

    def remove_socket(self, sock: Socket) -> None:
        """Forget a socket: it leaves every room, in O(its rooms)."""
        socks = self.sockets.get(sock.namespace)
        if socks is not None:
            socks.pop(sock.sid, None)
        self.rooms.leave_all(sock.namespace, sock.sid)
        sock.connected = False

    def get_socket(self, sid: str, namespace: str) -> Socket | None:
        """The socket of ``sid`` in ``namespace``."""
        socks = self.sockets.get(namespace)
        return socks.get(sid) if socks is not None else None

    def is_connected(self, sid: str, namespace: str) -> bool:
        """True if ``sid`` is connected to ``namespace``."""
        sock = self.get_socket(sid, namespace)
        return sock is not None and sock.connected

    def sid_from_eio_sid(self, eio_sid: str, namespace: str) -> str | None:
        """The Socket.IO sid of an Engine.IO session in ``namespace``."""
        sock = self.server.socket_of_eio_session(eio_sid, namespace)
        return sock.sid if sock is not None else None

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        """The Engine.IO session id carrying ``sid``."""
        sock = self.get_socket(sid, namespace)
        return sock.conn.sid if sock is not None else None

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """True if ``sid`` can be disconnected from ``namespace``."""
        return self.is_connected(sid, namespace)

    # -- rooms -------------------------------------------------------------------------------------

    def enter_room_now(self, sid: str, namespace: str, room: Any) -> None:
        """Add ``sid`` to ``room`` (synchronous)."""
        sock = self.get_socket(sid, namespace)
        if sock is None:
            raise KeyError("sid %s is not connected to namespace %s" % (sid, namespace))
        self.rooms.enter(namespace, room, sid, sock.conn)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room``."""
        self.enter_room_now(sid, namespace, room)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove ``sid`` from ``room``."""
        self.rooms.leave(namespace, room, sid)

    async def close_room(self, room: Any, namespace: str) -> None:
        """Remove every member from ``room``."""
        self.rooms.close_room(namespace, room)

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """Rooms ``sid`` is in, its own sid room included."""
        return self.rooms.rooms_of(namespace, sid)

    # -- emitting ----------------------------------------------------------------------------------

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                 ignore_queue: bool = False) -> int:
        """Encode once and queue to every recipient; returns how many were addressed.

        ``ignore_queue``: this process's clients only (meaningful for pub/sub managers)."""
        args = event_args(event, data)
        if callback is None:
            return self.rooms.fanout(namespace, room, skip_sid, self.encode(EVENT, namespace, args))
        # An acknowledgement id is per recipient, so each gets its own packet.
        skip = set(skip_sid) if isinstance(skip_sid, (list, tuple, set)) else {skip_sid}
        rooms = room if isinstance(room, (list, tuple, set)) else [room]
        seen: set[str] = set()
        n = 0
        for r in rooms:
            for sid, conn in self.rooms.members(namespace, r).items():
                if sid in seen or sid in skip:
                    continue
                seen.add(sid)
                sock = self.get_socket(sid, namespace)
                if sock is None:
                    continue
                conn.send_packet(self.encode(EVENT, namespace, args, sock.add_callback(callback)))
                n += 1
        return n

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """Emit an event (python-socketio's manager signature)."""
        self.emit_now(event, data, namespace, to if to is not None else room, skip_sid, callback)

    def discard_callback(self, sid: str, namespace: str, callback: Callable[..., Any]) -> None:
        """Forget ``callback`` wherever it waits for ``sid``'s acknowledgement (a call that
        timed out)."""
        sock = self.get_socket(sid, namespace)
        if sock is not None and sock.callbacks:
            for ack_id, cb in list(sock.callbacks.items()):
                if cb is callback:
                    del sock.callbacks[ack_id]

    async def trigger_callback(self, sid: str, id: int, data: list[Any]) -> None:
        """Run the acknowledgement callback ``id`` of ``sid``."""
        for socks in self.sockets.values():
            sock = socks.get(sid)
            if sock is not None:
                cb = sock.callbacks.pop(id, None) if sock.callbacks else None
                if cb is not None:
                    cb(*data)
                return
