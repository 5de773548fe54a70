"""What ``fetch_sockets()`` returns: Node's ``RemoteSocket``, a socket's identity and state with
the operations that can be carried out on it from anywhere in the cluster."""
from __future__ import annotations

from typing import Any, Hashable

__all__ = ["RemoteSocket"]


class RemoteSocket:
    """One socket selected by an operator.

    ``sid``, ``namespace``, ``rooms`` (a set, its own sid room included), ``data`` (the dict the
    application keeps on the socket: for a socket of this server it is the socket's own dict, so
    changes stay) and ``handshake`` (Node's handshake fields: ``headers``, ``time``, ``address``,
    ``xdomain``, ``secure``, ``issued``, ``url``, ``query``, ``auth``).  The operations go through
    the server that fetched it (and its client manager)."""

    __slots__ = ("server", "sid", "namespace", "rooms", "data", "handshake")

    def __init__(self, server: Any, sid: str, namespace: str, rooms: set[Hashable], data: dict[str, Any],
                 handshake: dict[str, Any]) -> None:
        self.server = server
        self.sid = sid
        self.namespace = namespace
        self.rooms = rooms
        self.data = data
        self.handshake = handshake

    @property
    def id(self) -> str:
        """Node's name for ``sid``."""
        return self.sid

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this socket."""
        await self.server.of(self.namespace).to(self.sid).emit(event, *args)

    async def join(self, room: Hashable | list[Hashable]) -> None:
        """Make this socket join ``room`` (one or several)."""
        await self.server.of(self.namespace).in_(self.sid).sockets_join(room)

    async def leave(self, room: Hashable) -> None:
        """Make this socket leave ``room``."""
        await self.server.of(self.namespace).in_(self.sid).sockets_leave(room)

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket from its namespace (``close``: its whole connection)."""
        await self.server.of(self.namespace).in_(self.sid).disconnect_sockets(close)

    def __repr__(self) -> str:
        return f"RemoteSocket(sid={self.sid!r}, namespace={self.namespace!r}, rooms={self.rooms!r})"
