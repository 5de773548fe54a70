"""serializer="msgpack" with python-socketio's AsyncClient(serializer="msgpack")."""
import asyncio

import pytest
import socketio as pysio

import fastio

PAYLOAD = {"a": 1, "blob": b"\x00\x01" * 3000, "nested": [b"x", {"y": b"\xff"}], "f": 1.5, "none": None}


@pytest.fixture
async def server():
    sio = fastio.AsyncServer(serializer="msgpack")

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "all")
        await sio.save_session(sid, {"auth": auth})

    @sio.event
    async def echo(sid, *args):
        await sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
        return args

    @sio.event
    async def shout(sid, data):
        await sio.emit("news", data, to="all", skip_sid=sid)

    @sio.event
    async def whoami(sid):
        return (await sio.get_session(sid))["auth"]

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    yield sio, srv
    await srv.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], None])
async def test_events_acks_and_binary(server, transports):
    sio, srv = server
    c = pysio.AsyncClient(serializer="msgpack")
    got = asyncio.Queue()
    c.on("echo", lambda *a: got.put_nowait(a))
    c.on("ask", lambda q: {"answer": q, "bin": b"\x07"})
    await c.connect(srv.url, transports=transports, auth={"user": "u1"})
    try:
        assert await c.call("echo", PAYLOAD, timeout=10) == PAYLOAD
        assert await asyncio.wait_for(got.get(), 10) == (PAYLOAD,)
        assert await c.call("echo", ("two", b"\x02"), timeout=10) == ("two", b"\x02")
        assert await c.call("whoami", timeout=10) == {"user": "u1"}
        assert await sio.call("ask", "q", to=c.get_sid(), timeout=10) == {"answer": "q", "bin": b"\x07"}
        if transports is None:
            assert c.transport() == "websocket"
    finally:
        if transports == ["polling"]:
            # python-engineio's client ends a polling session by waiting for its pending poll
            # (up to the ping interval); abort instead
            await c.eio.disconnect(abort=True)
        else:
            await c.disconnect()


@pytest.mark.timeout(30)
async def test_broadcast_reaches_every_other_client(server):
    sio, srv = server
    inboxes = [asyncio.Queue() for _ in range(3)]
    clients = []
    for q in inboxes:
        c = pysio.AsyncClient(serializer="msgpack")
        c.on("news", lambda d, q=q: q.put_nowait(d))
        await c.connect(srv.url, transports=["websocket"])
        clients.append(c)
    try:
        await clients[0].emit("shout", {"hello": b"\x01"})
        for q in inboxes[1:]:
            assert await asyncio.wait_for(q.get(), 10) == {"hello": b"\x01"}
        await sio.emit("news", "from server")
        for q in inboxes:
            assert await asyncio.wait_for(q.get(), 10) == "from server"
        assert inboxes[0].empty()
    finally:
        for c in clients:
            await c.disconnect()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], None])
async def test_fastio_client_with_msgpack(server, transports):
    sio, srv = server
    c = fastio.AsyncClient(serializer="msgpack", reconnection=False)
    c.on("ask", lambda q: {"answer": q, "bin": b"\x07"})
    await c.connect(srv.url, transports=transports, auth={"user": "f1"})
    try:
        assert await c.call("echo", PAYLOAD, timeout=10) == PAYLOAD
        assert await c.call("whoami", timeout=10) == {"user": "f1"}
        assert await sio.call("ask", "q", to=c.get_sid(), timeout=10) == {"answer": "q", "bin": b"\x07"}
    finally:
        await c.disconnect()


def test_serializers_are_checked():
    with pytest.raises(ValueError):
        fastio.AsyncServer(serializer="cbor")
    with pytest.raises(ValueError):
        fastio.AsyncClient(serializer="cbor")
