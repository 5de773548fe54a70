"""The handlers of the room server the client-manager tests run: every client joins one room, a
client's ``shout`` reaches that room, and handlers that act on a client which may be connected
to another process; and the end of such a test, its clients disconnected and servers closed."""
from __future__ import annotations

from typing import Any, Iterable


def add_room_handlers(sio: Any, room: str = "r", skip_sender: bool = True) -> None:
    """Put every connecting client of ``sio`` into ``room``; a client's ``shout`` is emitted as
    ``news`` to the room, to its other members only when ``skip_sender``."""

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, room)

    @sio.event
    async def shout(sid, data):
        await sio.emit("news", data, to=room, skip_sid=sid if skip_sender else None)


def add_remote_control_handlers(sio: Any) -> None:
    """Handlers of ``sio`` whose target client may be connected to another process:
    ``join_remote``/``leave_remote`` (target, room), ``to_room`` (room, data) emitted as
    ``news``, ``kick`` (target) and ``ask`` (target, question), which answers with the
    target's acknowledgement of a ``question`` event."""

    @sio.event
    async def join_remote(sid, target, room):
        await sio.enter_room(target, room)

    @sio.event
    async def leave_remote(sid, target, room):
        await sio.leave_room(target, room)

    @sio.event
    async def to_room(sid, room, data):
        await sio.emit("news", data, to=room)

    @sio.event
    async def kick(sid, target):
        await sio.disconnect(target)

    @sio.event
    async def ask(sid, target, question):
        return await sio.call("question", question, to=target, timeout=5)


async def disconnect_and_close(clients: Iterable[Any], servers: Iterable[Any]) -> None:
    """Disconnect every client of ``clients``, then close every server of ``servers``, in
    order."""
    for client in clients:
        await client.disconnect()
    for server in servers:
        await server.close()
