"""Several fastio processes' worth of servers share emits through a real Redis (127.0.0.1:6379)."""
import asyncio
import uuid

import pytest
import socketio as pysio

import fastio

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _server(channel):
    mgr = fastio.AsyncRedisManager(REDIS_URL, channel=channel)
    sio = fastio.AsyncServer(client_manager=mgr)

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "r")

    @sio.event
    async def shout(sid, data):
        await sio.emit("news", data, to="r", skip_sid=sid)

    @sio.event
    async def direct(sid, target, data):
        await sio.emit("news", data, to=target)

    @sio.event
    async def close(sid):
        await sio.close_room("r")

    try:
        await asyncio.wait_for(mgr.ready(), 5)
    except (OSError, asyncio.TimeoutError) as exc:
        pytest.fail("these tests need Redis on 127.0.0.1:6379: %r" % (exc,))
    return sio, await fastio.serve(sio, "127.0.0.1", 0)


async def _client(url, inbox):
    c = pysio.AsyncClient()
    c.on("news", lambda data: inbox.put_nowait(data))
    await c.connect(url, transports=["websocket"])
    return c


@pytest.mark.timeout(30)
async def test_emits_reach_clients_of_other_servers():
    channel = "fastio-test-" + uuid.uuid4().hex
    (sio1, srv1), (sio2, srv2) = await _server(channel), await _server(channel)
    inbox_a, inbox_b, inbox_c = asyncio.Queue(), asyncio.Queue(), asyncio.Queue()
    a = await _client(srv1.url, inbox_a)
    b = await _client(srv2.url, inbox_b)
    c = await _client(srv2.url, inbox_c)
    try:
        # a room broadcast from server 1 reaches the room's members on server 2, not the sender
        await a.emit("shout", {"n": 1, "bin": b"\x00\x01"})
        assert await asyncio.wait_for(inbox_b.get(), 5) == {"n": 1, "bin": b"\x00\x01"}
        assert await asyncio.wait_for(inbox_c.get(), 5) == {"n": 1, "bin": b"\x00\x01"}
        # to=sid of a client connected to the other server
        await a.emit("direct", (b.get_sid(), "only b"))
        assert await asyncio.wait_for(inbox_b.get(), 5) == "only b"
        # close_room empties the room everywhere: a later room broadcast reaches nobody...
        await a.emit("close")
        await a.emit("direct", (c.get_sid(), "marker"))
        assert await asyncio.wait_for(inbox_c.get(), 5) == "marker"
        await b.emit("shout", "after close")
        # ...which the next direct message, sent after it from the same client, proves
        await b.emit("direct", (c.get_sid(), "marker 2"))
        assert await asyncio.wait_for(inbox_c.get(), 5) == "marker 2"
        assert inbox_a.empty()
    finally:
        for client in (a, b, c):
            await client.disconnect()
        await srv1.close()
        await srv2.close()
