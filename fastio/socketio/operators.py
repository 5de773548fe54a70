"""Node socket.io's broadcast operators: ``sio.to(room).except_(other).volatile.emit(...)``.

An operator is an immutable description of a set of sockets (the rooms addressed, the rooms
left out, in one namespace) and of how to deliver to them (volatile, compress, local, timeout).
Each chained call returns a new operator; the operations (``emit``, ``emit_with_ack``,
``fetch_sockets``, ``sockets_join``, ``sockets_leave``, ``disconnect_sockets``) are carried
out by the server's client manager, which a cluster manager extends to every server.

Node's names in snake_case; ``in_`` and ``except_`` where the word is reserved in Python.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, Union

from fastio import exceptions

if TYPE_CHECKING:
    from fastio.socketio.remote_socket import RemoteSocket

__all__ = ["BroadcastFlags", "BroadcastOperator", "BroadcastTimeoutError", "NamespaceOperator", "RoomSpec"]

#: One room, or several (a list, tuple or set of rooms); a sid names its own room.
RoomSpec = Union[Hashable, Iterable[Hashable]]


class BroadcastTimeoutError(exceptions.TimeoutError):
    """Some clients did not acknowledge a broadcast within its ``timeout`` (Node's
    ``"operation has timed out"`` error); ``responses`` holds the answers that did arrive, in
    arrival order."""

    def __init__(self, responses: list[Any]) -> None:
        super().__init__("operation has timed out")
        self.responses = responses


@dataclass(frozen=True)
class BroadcastFlags:
    """How a broadcast is delivered (Node's ``BroadcastFlags``)."""

    volatile: bool = False
    """Left out for a client whose transport cannot take it now; never queued."""
    compress: bool = True
    """Whether the packet may be compressed (Node's ``compress`` flag)."""
    local: bool = False
    """This server's clients only, not the rest of the cluster."""
    timeout: float | None = None
    """Seconds to wait for acknowledgements (``emit_with_ack``)."""


def _as_set(rooms: RoomSpec) -> frozenset[Hashable]:
    if isinstance(rooms, (list, tuple, set, frozenset)):
        return frozenset(rooms)
    return frozenset((rooms,))  # type: ignore[arg-type]


class BroadcastOperator:
    """The sockets of ``namespace`` in any of ``rooms`` (all of them when empty) and in none of
    ``except_rooms``, with delivery ``flags``.  Obtained from ``sio.to()``, ``sio.in_()``,
    ``sio.except_()``, the flag properties, or ``sio.of(namespace)``."""

    __slots__ = ("server", "namespace", "rooms", "except_rooms", "flags")

    def __init__(self, server: Any, namespace: Any = "/", rooms: frozenset[Hashable] = frozenset(),
                 except_rooms: frozenset[Hashable] = frozenset(),
                 flags: BroadcastFlags = BroadcastFlags()) -> None:
        self.server = server
        self.namespace = namespace
        self.rooms = rooms
        self.except_rooms = except_rooms
        self.flags = flags

    def _with(self, rooms: frozenset[Hashable] | None = None, except_rooms: frozenset[Hashable] | None = None,
              flags: BroadcastFlags | None = None) -> BroadcastOperator:
        return BroadcastOperator(self.server, self.namespace, self.rooms if rooms is None else rooms,
                                 self.except_rooms if except_rooms is None else except_rooms,
                                 self.flags if flags is None else flags)

    # -- selecting ---------------------------------------------------------------------------------

    def to(self, room: RoomSpec) -> BroadcastOperator:
        """Also address ``room`` (one or several; a sid is a room): rooms add up (union)."""
        return self._with(rooms=self.rooms | _as_set(room))

    def in_(self, room: RoomSpec) -> BroadcastOperator:
        """The same as ``to`` (Node's ``in``)."""
        return self.to(room)

    def except_(self, room: RoomSpec) -> BroadcastOperator:
        """Leave out every socket in ``room`` (one or several; a sid is a room)."""
        return self._with(except_rooms=self.except_rooms | _as_set(room))

    # -- delivery flags ----------------------------------------------------------------------------

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for a client that cannot take it now (no poll waiting, a paused or
        backed-up WebSocket) instead of queueing it."""
        return self._with(flags=replace(self.flags, volatile=True))

    @property
    def local(self) -> BroadcastOperator:
        """This server's clients only (with a pub/sub manager, nothing is published)."""
        return self._with(flags=replace(self.flags, local=True))

    def compress(self, flag: bool) -> BroadcastOperator:
        """Set Node's compress flag: with ``compress(False)`` the packet goes uncompressed even
        on a WebSocket that negotiated permessage-deflate (docs/compression.md)."""
        return self._with(flags=replace(self.flags, compress=bool(flag)))

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Wait at most ``seconds`` for the acknowledgements of ``emit_with_ack``."""
        return self._with(flags=replace(self.flags, timeout=seconds))

    # -- operations --------------------------------------------------------------------------------

    def _target(self) -> tuple[list[Hashable] | None, list[Hashable] | None]:
        return (list(self.rooms) or None), (list(self.except_rooms) or None)

    def _names(self) -> list[str]:
        # A parent of dynamic namespaces stands for its children (Node's ParentNamespace).
        return self.server.namespaces_of(self.namespace)  # type: ignore[no-any-return]

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (each one argument, as in Node) to the selected sockets:
        one encode, one compiled fan-out."""
        self.server.check_event_name(event)
        to, exclude = self._target()
        admin = self.server.admin
        for name in self._names():
            if admin is not None:
                # The Admin UI counts recipients from rooms and skipped sids: the except rooms'
                # members are the skipped ones.
                skipped = self.server.manager.room_table.select(name, exclude, None) if exclude else None
                admin.event_sent(event, args[0] if len(args) == 1 else args, name, to, skipped)
            await self.server.manager.broadcast(name, [event, *args], to, exclude, self.flags)

    async def send(self, *args: Any) -> None:
        """Emit a ``message`` event."""
        await self.emit("message", *args)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit and wait for every selected client's acknowledgement; returns their answers (the
        first argument of each) in arrival order.

        With ``timeout(seconds)``, a client that has not answered in time makes this raise
        ``BroadcastTimeoutError`` whose ``responses`` are the answers received.  Without a
        timeout it waits for all of them.  Node's ``io.timeout(ms).emitWithAck()``."""
        self.server.check_event_name(event)
        if not isinstance(self.namespace, str):
            raise ValueError("emit_with_ack needs a namespace name, not a parent of dynamic namespaces")
        to, exclude = self._target()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        responses: list[Any] = []
        state = {"expected": 0, "servers": 0, "server_count": -1}

        def complete() -> None:
            # ">=": a cluster manager counts a server that went away meanwhile as one that
            # reached no client.
            if (not done.done() and state["server_count"] >= 0 and state["servers"] >= state["server_count"]
                    and len(responses) == state["expected"]):
                done.set_result(None)

        def client_count(n: int) -> None:
            state["expected"] += n
            state["servers"] += 1
            complete()

        def on_answer(answer: Any) -> None:
            if not done.done():
                responses.append(answer)
                complete()

        manager = self.server.manager
        ack_id = await manager.broadcast_with_ack(self.namespace, [event, *args], to, exclude, self.flags,
                                                  client_count, on_answer)
        state["server_count"] = 1 if self.flags.local else await manager.server_count()
        complete()
        try:
            if self.flags.timeout is None:
                await done
            else:
                await asyncio.wait_for(asyncio.shield(done), self.flags.timeout)
        except asyncio.TimeoutError:
            raise BroadcastTimeoutError(list(responses)) from None
        finally:
            manager.forget_broadcast_ack(ack_id)
        return list(responses)

    async def fetch_sockets(self) -> list[RemoteSocket]:
        """The selected sockets, as ``RemoteSocket`` objects (``sid``, ``rooms``, ``data``,
        ``handshake``, and ``emit``/``join``/``leave``/``disconnect``)."""
        to, exclude = self._target()
        out: list[RemoteSocket] = []
        for name in self._names():
            out += await self.server.manager.fetch_sockets(name, to, exclude, self.flags)
        return out

    async def all_sockets(self) -> set[str]:
        """The sids of the selected sockets, in every server of the cluster (Node's
        ``allSockets``); with ``local``, of this server.  ``len()`` of it is a cluster-wide
        count of a room."""
        to, exclude = self._target()
        manager = self.server.manager
        out: set[str] = set()
        for name in self._names():
            ask = getattr(manager, "all_sockets", None)
            if ask is not None:
                out |= await ask(name, to, exclude, self.flags)
            else:
                out |= {s.sid for s in await manager.fetch_sockets(name, to, exclude, self.flags)}
        return out

    async def sockets_join(self, room: RoomSpec) -> None:
        """Make the selected sockets join ``room`` (one or several)."""
        to, exclude = self._target()
        for name in self._names():
            await self.server.manager.add_sockets(name, to, exclude, self.flags, list(_as_set(room)))

    async def sockets_leave(self, room: RoomSpec) -> None:
        """Make the selected sockets leave ``room`` (one or several)."""
        to, exclude = self._target()
        for name in self._names():
            await self.server.manager.del_sockets(name, to, exclude, self.flags, list(_as_set(room)))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets from the namespace; with ``close``, close their whole
        connection (every namespace it carries)."""
        to, exclude = self._target()
        for name in self._names():
            await self.server.manager.disconnect_sockets(name, to, exclude, self.flags, close)

    def __repr__(self) -> str:
        return (f"BroadcastOperator(namespace={self.namespace!r}, rooms={set(self.rooms)!r}, "
                f"except_rooms={set(self.except_rooms)!r}, flags={self.flags!r})")



class NamespaceOperator(BroadcastOperator):
    """``sio.of(namespace)``: the namespace's operators (every socket of it, until narrowed with
    ``to``/``except_``), and its middleware, handlers and server-side events.  ``namespace`` may be
    a parent of dynamic namespaces (a regex or a callable), standing for all its children."""

    __slots__ = ()

    def __init__(self, server: Any, namespace: Any) -> None:
        super().__init__(server, namespace)

    @property
    def name(self) -> Any:
        """The namespace (or the parent)."""
        return self.namespace

    def use(self, middleware: Callable[..., Any]) -> NamespaceOperator:
        """``sio.use(middleware, namespace)``; returns self, for chaining."""
        self.server.use(middleware, self.namespace)
        return self

    def use_events(self, middleware: Callable[..., Any],
                   on_error: Callable[[str, BaseException], Any] | None = None) -> NamespaceOperator:
        """``sio.use_events(middleware, namespace, on_error)``; returns self."""
        self.server.use_events(middleware, self.namespace, on_error)
        return self

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """``sio.on(event, handler, namespace)``: a client event handler (decorator without handler)."""
        return self.server.on(event, handler, namespace=self.namespace)

    def event(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: a handler named after the function, in this namespace."""
        return self.server.on(handler.__name__, handler, namespace=self.namespace)  # type: ignore[no-any-return]

    def on_any(self, listener: Callable[..., Any]) -> NamespaceOperator:
        """``sio.on_any(listener, namespace)``; returns self."""
        self.server.on_any(listener, self.namespace)
        return self

    def on_any_outgoing(self, listener: Callable[..., Any]) -> NamespaceOperator:
        """``sio.on_any_outgoing(listener, namespace)``; returns self."""
        self.server.on_any_outgoing(listener, self.namespace)
        return self

    def on_server_side(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """``sio.on_server_side(event, handler, namespace)``."""
        return self.server.on_server_side(event, handler, namespace=self.namespace)

    async def all_rooms(self) -> set[Any]:
        """The rooms of this namespace with a member in any server of the cluster, sid rooms
        included (Node's ``adapter.allRooms()``); with ``local``, of this server.  A manager
        that cannot ask the others answers for this server."""
        if not isinstance(self.namespace, str):
            raise ValueError("all_rooms needs a namespace name, not a parent of dynamic namespaces")
        manager = self.server.manager
        ask = getattr(manager, "all_rooms", None)
        if ask is not None and not self.flags.local:
            return await ask(self.namespace)  # type: ignore[no-any-return]
        rooms: set[Any] = set(manager.room_table.room_names(self.namespace))
        rooms.update((manager.sockets.get(self.namespace) or {}).keys())
        rooms.discard(None)
        return rooms

    async def server_count(self) -> int:
        """How many servers share the cluster, this one included (Node's
        ``adapter.serverCount()``; 1 with the in-memory manager)."""
        return await self.server.manager.server_count()  # type: ignore[no-any-return]

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """``sio.server_side_emit(event, *args, namespace=...)``."""
        await self.server.server_side_emit(event, *args, namespace=self.namespace)

    async def server_side_emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """``sio.server_side_emit_with_ack(event, *args, namespace=..., timeout=...)``, with this
        operator's timeout."""
        return await self.server.server_side_emit_with_ack(  # type: ignore[no-any-return]
            event, *args, namespace=self.namespace, timeout=self.flags.timeout)
