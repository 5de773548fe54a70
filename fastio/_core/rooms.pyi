"""Rooms and fan-out: namespace -> room -> members, member -> rooms; one Encoded to many."""
from typing import Any, Hashable, Iterable

from fastio._core.conn import Conn
from fastio._core.packet import Encoded

class RoomTable:
    """Room membership of every Socket.IO client, by namespace."""
    def __init__(self) -> None: ...
    def enter(self, namespace: str, room: Hashable, sid: str, conn: Conn) -> None:
        """Add ``sid`` (carried by ``conn``) to ``room``."""
    def leave(self, namespace: str, room: Hashable, sid: str) -> bool:
        """Remove ``sid`` from ``room``; True if it was there."""
    def leave_all(self, namespace: str, sid: str) -> list[Any]:
        """Remove ``sid`` from every room of ``namespace``; returns the rooms it left."""
    def close_room(self, namespace: str, room: Hashable) -> list[str]:
        """Remove every member of ``room``; returns their sids."""
    def rooms_of(self, namespace: str, sid: str) -> list[Any]:
        """Rooms ``sid`` is in (its own sid room included, the everyone room excluded)."""
    def members(self, namespace: str, room: Hashable = None) -> dict[str, Conn]:
        """A copy of {sid: Conn} for ``room``."""
    def conn_of(self, namespace: str, sid: str) -> Conn | None:
        """The connection carrying ``sid``."""
    def __getitem__(self, namespace: str) -> dict[Any, dict[str, Conn]]:
        """{room: {sid: Conn}} of ``namespace`` (python-socketio's ``manager.rooms[ns]``)."""
    def get(self, namespace: str, default: Any = None) -> Any:
        """{room: {sid: Conn}} of ``namespace``, or ``default``."""
    def __contains__(self, namespace: object) -> bool: ...
    def __iter__(self) -> Any: ...
    def namespaces(self) -> list[str]:
        """Namespaces with members."""
    def room_names(self, namespace: str) -> list[Any]:
        """Rooms of ``namespace`` with at least one member."""
    def fanout(self, namespace: str, to: Hashable | Iterable[Hashable] | None, skip: str | Iterable[str] | None,
               enc: Encoded) -> int:
        """Queue ``enc`` to every member of ``to`` except ``skip``; returns the count."""
