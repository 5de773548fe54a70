"""AsyncAioPikaManager through a real RabbitMQ (127.0.0.1:5672, guest/guest): fastio servers share
emits, rooms, disconnects and acknowledgements, and interoperate with python-socketio's own
AsyncAioPikaManager on the same exchange."""
import asyncio
import contextlib
import uuid

import pytest
import socketio as pysio

import fastio
from pysio_peer import (check_emits_and_acks_cross, close_pubsub_manager, fence, serve_room_server, stop_asgi,
                        until_heard)
from room_server import add_remote_control_handlers, add_room_handlers, disconnect_and_close

aio_pika = pytest.importorskip("aio_pika")

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
async def exchange():
    """A fresh exchange name, deleted afterwards."""
    name = "fastio-test-" + uuid.uuid4().hex
    try:
        conn = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except (OSError, asyncio.TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        pytest.fail("these tests need RabbitMQ on 127.0.0.1:5672: %r" % (exc,))
    yield name
    async with conn:
        channel = await conn.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(name)


async def _server(exchange):
    mgr = fastio.AsyncAioPikaManager(AMQP_URL, channel=exchange)
    sio = fastio.AsyncServer(client_manager=mgr)
    add_room_handlers(sio)
    add_remote_control_handlers(sio)
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    await asyncio.wait_for(mgr.ready(), 10)
    return sio, srv


async def _client(url):
    c = pysio.AsyncClient()
    inbox = asyncio.Queue()
    c.on("news", lambda data: inbox.put_nowait(data))
    await c.connect(url, transports=["websocket"])
    return c, inbox


@pytest.mark.timeout(60)
async def test_fastio_servers_share_an_exchange(exchange):
    (sio1, srv1), (sio2, srv2) = await _server(exchange), await _server(exchange)
    a, inbox_a = await _client(srv1.url)
    b, inbox_b = await _client(srv2.url)
    b.on("q", lambda x: {"answer": x.upper(), "bin": b"\x07"})
    gone = asyncio.Event()
    b.on("disconnect", lambda *reason: gone.set())
    try:
        await a.emit("shout", {"n": 1, "bin": b"\x00\x01"})
        assert await asyncio.wait_for(inbox_b.get(), 10) == {"n": 1, "bin": b"\x00\x01"}
        # an acknowledgement from a client of the other process
        assert await sio1.call("q", "why", to=b.get_sid(), timeout=10) == {"answer": "WHY", "bin": b"\x07"}
        # a room change for a client of the other process, then a room emit that reaches it
        await a.call("join_remote", (b.get_sid(), "vip"), timeout=10)
        await sio1.emit("news", "vips", to="vip")
        assert await asyncio.wait_for(inbox_b.get(), 10) == "vips"
        await a.emit("kick", b.get_sid())
        await asyncio.wait_for(gone.wait(), 10)
        assert inbox_a.empty()
    finally:
        await disconnect_and_close((a, b), (srv1, srv2))


@pytest.mark.timeout(60)
async def test_python_socketio_write_only_emitter_reaches_fastio_clients(exchange):
    sio, srv = await _server(exchange)
    c, inbox = await _client(srv.url)
    external = pysio.AsyncAioPikaManager(AMQP_URL, channel=exchange, write_only=True)
    try:
        await external.emit("news", {"from": "worker", "blob": b"\x00\xff"}, room="r")
        assert await asyncio.wait_for(inbox.get(), 10) == {"from": "worker", "blob": b"\x00\xff"}
        # and fastio's own write-only manager, without a server
        emitter = fastio.AsyncAioPikaManager(AMQP_URL, channel=exchange, write_only=True)
        await emitter.emit("news", "from fastio's emitter", room=c.get_sid())
        assert await asyncio.wait_for(inbox.get(), 10) == "from fastio's emitter"
        await emitter.aclose()
    finally:
        await c.disconnect()
        await srv.close()
        if external.publisher_connection is not None:
            await external.publisher_connection.close()


@pytest.mark.timeout(90)
async def test_fastio_and_python_socketio_servers_share_an_exchange(exchange):
    """A python-socketio server (under uvicorn) and a fastio server on one exchange: a room emit
    from either reaches the other's clients, and an acknowledgement crosses."""
    fsio, fsrv = await _server(exchange)
    pmgr = pysio.AsyncAioPikaManager(AMQP_URL, channel=exchange)
    psio, userver, task, pport = await serve_room_server(pmgr)
    f_client, f_inbox = await _client(fsrv.url)
    p_client, p_inbox = await _client("http://127.0.0.1:%d" % pport)
    try:
        # python-socketio's listener starts with its first client; wait until it hears us
        await until_heard(lambda: fsio.emit("news", "probe", to="r"), p_inbox, "probe", 100, 0.1)
        await fence(lambda m: fsio.emit("news", m, to="r"), (f_inbox, p_inbox), 10)
        # room emits both ways, and acknowledgements across the two implementations, both ways
        await check_emits_and_acks_cross(fsio, psio, f_inbox, p_client, p_inbox, 10)
        f_client.on("question", lambda q: q + "?")
        assert await psio.call("question", "ok", to=f_client.get_sid(), timeout=10) == "ok?"
    finally:
        await disconnect_and_close((f_client, p_client), (fsrv,))
        await stop_asgi(userver, task)
        await close_pubsub_manager(pmgr)
