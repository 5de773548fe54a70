"""The application ``fastio run --workers 2`` serves in tests/integration/test_workers*.py.

Every handler says which worker process answered (its PID), so the tests can check that the
clients are spread over the workers and that rooms, acknowledgements and disconnects cross them.
"""

from __future__ import annotations

import os

import fastio

sio = fastio.AsyncServer(cors_allowed_origins="*")


@sio.event
async def connect(sid, environ, auth):
    await sio.enter_room(sid, "all")


@sio.event
async def whoami(sid):
    """The worker's PID and this client's Socket.IO and Engine.IO ids."""
    return {"pid": os.getpid(), "sid": sid}


@sio.event
async def echo(sid, data):
    return data


@sio.event
async def join(sid, room):
    await sio.enter_room(sid, room)
    return os.getpid()


@sio.event
async def put_in(sid, other_sid, room):
    """Put another client (maybe of another worker) in ``room``."""
    await sio.enter_room(other_sid, room)
    return True


@sio.event
async def take_out(sid, other_sid, room):
    await sio.leave_room(other_sid, room)
    return True


@sio.event
async def tell(sid, room, data):
    """Emit ``told`` to ``room`` from this worker; returns once it is published."""
    await sio.emit("told", {"data": data, "by": os.getpid()}, to=room)
    return os.getpid()


@sio.event
async def close(sid, room):
    await sio.close_room(room)
    return True


@sio.event
async def ask(sid, other_sid):
    """Call ``question`` on another client (maybe of another worker) and return its answer."""
    answer = await sio.call("question", {"from": os.getpid()}, to=other_sid, timeout=5)
    # A tuple would be acknowledged as several arguments; one list keeps them together.
    return list(answer) if isinstance(answer, tuple) else answer


@sio.event
async def kick(sid, other_sid):
    await sio.disconnect(other_sid)
    return True


@sio.event
async def crash(sid):
    """End this worker abruptly (the master starts it again)."""
    os._exit(3)
