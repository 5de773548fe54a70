"""The applications ``fastio run --workers 2`` serves in tests/integration/test_workers.py.

``sio`` uses the default manager (the workers share emits through the master); ``redis_sio``
the Redis manager on the channel named by FASTIO_TEST_CHANNEL. Every handler says which worker
process answered (its PID), so the tests can check that the clients are spread over the workers
and that rooms, acknowledgements and disconnects cross them.
"""

from __future__ import annotations

import os

import fastio
import fastio.engineio


def build(server: fastio.AsyncServer) -> fastio.AsyncServer:
    @server.event
    async def connect(sid, environ, auth):
        await server.enter_room(sid, "all")

    @server.event
    async def whoami(sid):
        """The worker's PID and this client's sid."""
        return {"pid": os.getpid(), "sid": sid}

    @server.event
    async def put_in(sid, other_sid, room):
        """Put another client (maybe of another worker) in ``room``."""
        await server.enter_room(other_sid, room)
        return True

    @server.event
    async def take_out(sid, other_sid, room):
        await server.leave_room(other_sid, room)
        return True

    @server.event
    async def tell(sid, room, data):
        """Emit ``told`` to ``room`` from this worker; returns once it is published."""
        await server.emit("told", {"data": data, "by": os.getpid()}, to=room)
        return os.getpid()

    @server.event
    async def close(sid, room):
        await server.close_room(room)
        return True

    @server.event
    async def ask(sid, other_sid):
        """Call ``question`` on another client (maybe of another worker), return its answer."""
        answer = await server.call("question", {"from": os.getpid()}, to=other_sid, timeout=5)
        # A tuple would be acknowledged as several arguments; one list keeps them together.
        return list(answer) if isinstance(answer, tuple) else answer

    @server.event
    async def kick(sid, other_sid):
        await server.disconnect(other_sid)
        return True

    @server.event
    async def cluster_ops(sid):
        """Node's operators across the workers, from this worker."""
        return {"pid": os.getpid(), "servers": await server.server_count(),
                "sids": sorted(await server.all_sockets()),
                "fetched": sorted(s.sid for s in await server.fetch_sockets()),
                "server_side": await server.server_side_emit_with_ack("pid"),
                "acks": sorted(await server.to("all").timeout(5).emit_with_ack("question", "ack"))}

    server.on_server_side("pid", lambda: os.getpid())

    @server.event
    async def crash(sid):
        """End this worker abruptly (the master starts it again)."""
        os._exit(3)

    return server


sio = build(fastio.AsyncServer(cors_allowed_origins="*"))

redis_sio = build(fastio.AsyncServer(
    cors_allowed_origins="*",
    client_manager=fastio.AsyncRedisManager(
        "redis://127.0.0.1:6379/0", channel=os.environ.get("FASTIO_TEST_CHANNEL", "fastio-workers"))))

# An Engine.IO server alone: it echoes every message, prefixed with the worker's PID.
eio = fastio.engineio.AsyncServer(cors_allowed_origins="*")


@eio.on("message")
async def eio_message(sid, data):
    await eio.send(sid, "%d:%s" % (os.getpid(), data))
