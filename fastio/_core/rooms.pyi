"""Rooms and fan-out.

``RoomTable`` keeps namespace -> room -> members and namespace -> member -> rooms, so joining,
leaving and a member's disconnect are O(its rooms).  ``fanout`` resolves the recipients of one
emit and hands each the same ``Encoded`` in C: no task, no encode and no Python object per
recipient; the connection queues the shared frames and writes once per loop iteration.

Following python-socketio, every member of a namespace is in room ``None`` (everyone) and in
the room named by its own sid.
"""
from typing import Any, Hashable, Iterable

from fastio._core.conn import Conn
from fastio._core.packet import Encoded

class RoomTable:
    """Room membership of every Socket.IO client, by namespace."""
    volatile_limit: int
    """A volatile packet is dropped for a connection with this many bytes queued or more
    (64 KiB by default), as well as for a paused WebSocket or a long-polling session with no
    poll waiting."""
    def __init__(self) -> None: ...
    def enter(self, namespace: str, room: Hashable, sid: str, conn: Conn) -> None:
        """Add ``sid`` (carried by ``conn``) to ``room``.

        Room ``None`` (everyone) and the room named by the member's own sid are implicit: they
        cost no per-member dictionary or set, which matters for idle connections."""
    def leave(self, namespace: str, room: Hashable, sid: str) -> bool:
        """Remove ``sid`` from a named ``room``; True if it was there."""
    def leave_all(self, namespace: str, sid: str) -> list[Any]:
        """Remove ``sid`` from every room of ``namespace``; returns the rooms it left."""
    def close_room(self, namespace: str, room: Hashable) -> list[str]:
        """Remove every member from a named ``room``; returns the sids that were in it."""
    def rooms_of(self, namespace: str, sid: str) -> list[Any]:
        """Rooms ``sid`` is in (its own sid room included, the everyone room excluded)."""
    def members(self, namespace: str, room: Hashable = None) -> dict[str, Conn]:
        """{sid: Conn} of ``room`` (a copy); a sid names its own one-member room."""
    def conn_of(self, namespace: str, sid: str) -> Conn | None:
        """The connection carrying ``sid`` in ``namespace``, or None."""
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
    def emit_event(self, namespace: str, to: Hashable | Iterable[Hashable] | None, skip: str | Iterable[str] | None,
                   event: str, data: Any) -> int:
        """``fanout`` of an EVENT packet encoded with the built-in JSON codec: ``data`` is
        python-socketio's emit argument (None: no argument, a tuple: several, else one)."""
    def fanout(self, namespace: str, to: Hashable | Iterable[Hashable] | None, skip: str | Iterable[str] | None,
               enc: Encoded) -> int:
        """Queue ``enc`` for every member of ``to`` (None: everyone; a room; or a list of rooms),
        except the sids in ``skip`` (None, a sid, or a list of sids).  Returns the count."""
    def broadcast(self, namespace: str, to: Hashable | Iterable[Hashable] | None,
                  exclude: Hashable | Iterable[Hashable] | None, skip: str | Iterable[str] | None,
                  enc: Encoded, volatile: bool = False, reached: list[str] | None = None) -> int:
        """Queue ``enc`` for every member of ``to`` (None: everyone; a room or sid; or several)
        who is in none of the ``exclude`` rooms (a sid names its own room) and is not one of
        the ``skip`` sids.  With ``volatile``, a recipient whose transport cannot take the packet
        now is left out (never queued).  The sids reached are appended to ``reached`` when given.
        Returns how many were reached."""
    def select(self, namespace: str, to: Hashable | Iterable[Hashable] | None,
               exclude: Hashable | Iterable[Hashable] | None, skip: str | Iterable[str] | None = None) -> list[str]:
        """The sids ``broadcast`` would address (``to`` minus ``exclude`` minus ``skip``), once each."""
