"""Several fastio processes' worth of servers share emits through a real Redis (127.0.0.1:6379)."""
import asyncio
import uuid

import pytest
import socketio as pysio

import fastio
from pysio_peer import (check_emits_and_acks_cross, close_pubsub_manager, fence, serve_room_server, stop_asgi,
                        until_heard)
from room_server import add_remote_control_handlers, add_room_handlers, disconnect_and_close

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _server(channel):
    mgr = fastio.AsyncRedisManager(REDIS_URL, channel=channel)
    sio = fastio.AsyncServer(client_manager=mgr)
    add_room_handlers(sio)

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
        await disconnect_and_close((a, b, c), (srv1, srv2))


async def _remote_control_server(channel):
    """A server whose handlers act on clients that may be connected to another process."""
    sio, srv = await _server(channel)
    add_remote_control_handlers(sio)
    return sio, srv


@pytest.mark.timeout(30)
async def test_rooms_disconnects_and_acks_for_clients_of_another_process():
    channel = "fastio-test-" + uuid.uuid4().hex
    (sio1, srv1), (sio2, srv2) = await _remote_control_server(channel), await _remote_control_server(channel)
    inbox_a, inbox_b = asyncio.Queue(), asyncio.Queue()
    a = await _client(srv1.url, inbox_a)
    b = await _client(srv2.url, inbox_b)
    b_gone = asyncio.Event()
    b.on("disconnect", lambda *reason: b_gone.set())
    b.on("question", lambda q: {"answer": q.upper(), "bin": b"\x07"})
    try:
        b_sid = b.get_sid()
        # server 1 puts server 2's client into a room, and a room emit from server 1 reaches it
        assert await a.call("join_remote", (b_sid, "vip"), timeout=5) is None
        await a.emit("to_room", ("vip", "for vips"))
        assert await asyncio.wait_for(inbox_b.get(), 5) == "for vips"
        assert "vip" in sio2.rooms(b_sid)
        # ...and takes it out again
        await a.call("leave_remote", (b_sid, "vip"), timeout=5)
        await a.emit("to_room", ("vip", "after leave"))
        await a.emit("to_room", (b_sid, "marker"))
        assert await asyncio.wait_for(inbox_b.get(), 5) == "marker"
        assert "vip" not in sio2.rooms(b_sid)
        # call() on a client of the other process: the acknowledgement comes back through Redis
        assert await a.call("ask", (b_sid, "why?"), timeout=10) == {"answer": "WHY?", "bin": b"\x07"}
        # disconnect() of a client of the other process
        await a.emit("kick", b_sid)
        await asyncio.wait_for(b_gone.wait(), 5)
        assert inbox_a.empty()
    finally:
        await disconnect_and_close((a, b), (srv1, srv2))


@pytest.mark.timeout(30)
async def test_python_socketio_emitter_process_reaches_fastio_clients():
    """python-socketio's documented way to emit from a worker: a write-only Redis manager."""
    channel = "fastio-test-" + uuid.uuid4().hex
    sio, srv = await _server(channel)
    inbox = asyncio.Queue()
    c = await _client(srv.url, inbox)
    external = pysio.AsyncRedisManager(REDIS_URL, channel=channel, write_only=True)
    try:
        await external.emit("news", {"from": "worker", "blob": b"\x00\xff"}, room="r")
        assert await asyncio.wait_for(inbox.get(), 5) == {"from": "worker", "blob": b"\x00\xff"}
        c.on("pair", lambda x, y: inbox.put_nowait((x, y)))
        await external.emit("pair", ("two", "args"), room=c.get_sid())
        assert await asyncio.wait_for(inbox.get(), 5) == ("two", "args")
        await external.emit("news", "to everyone")
        assert await asyncio.wait_for(inbox.get(), 5) == "to everyone"
    finally:
        await c.disconnect()
        await srv.close()
        await external.redis.aclose()


@pytest.mark.timeout(60)
async def test_fastio_and_python_socketio_servers_share_a_channel():
    """A python-socketio server (under uvicorn) and a fastio server on one Redis channel: each
    one's emits reach the other's clients."""
    channel = "fastio-test-" + uuid.uuid4().hex
    fsio, fsrv = await _server(channel)
    pmgr = pysio.AsyncRedisManager(REDIS_URL, channel=channel)
    psio, userver, task, pport = await serve_room_server(pmgr)
    f_inbox, p_inbox = asyncio.Queue(), asyncio.Queue()
    f_client = await _client(fsrv.url, f_inbox)
    p_client = await _client("http://127.0.0.1:%d" % pport, p_inbox)
    try:
        # python-socketio's listener starts with its first client; wait until it hears us
        await until_heard(lambda: fsio.emit("news", "probe", to="r"), p_inbox, "probe", 100, 0.1)
        await fence(lambda m: fsio.emit("news", m, to="r"), (f_inbox, p_inbox), 5)
        # room emits both ways, and an acknowledgement across the two implementations
        await check_emits_and_acks_cross(fsio, psio, f_inbox, p_client, p_inbox, 5)
    finally:
        await disconnect_and_close((f_client, p_client), (fsrv,))
        await stop_asgi(userver, task)
        await close_pubsub_manager(pmgr)


@pytest.mark.timeout(30)
async def test_room_callbacks_sets_ignore_queue_and_timeouts_across_processes():
    channel = "fastio-test-" + uuid.uuid4().hex
    (sio1, srv1), (sio2, srv2) = await _server(channel), await _server(channel)
    inbox_a, inbox_b = asyncio.Queue(), asyncio.Queue()
    a = await _client(srv1.url, inbox_a)
    b = await _client(srv2.url, inbox_b)
    a.on("q", lambda x: "a:" + x)
    b.on("q", lambda x: "b:" + x)
    try:
        # an emit with a callback to a room reaches its members in both processes; the callback
        # runs once, with the first answer (python-socketio's pub/sub behaviour; the count is
        # checked in test_pubsub_cluster_ops.py)
        acks = asyncio.Queue()
        await sio1.emit("q", "hi", to="r", callback=lambda ans: acks.put_nowait(ans))
        assert await asyncio.wait_for(acks.get(), 5) in {"a:hi", "b:hi"}
        # rooms and skip_sid given as sets cross too
        await sio1.emit("news", "set", to={"r"}, skip_sid=frozenset({a.get_sid()}))
        assert await asyncio.wait_for(inbox_b.get(), 5) == "set"
        # ignore_queue: this process's clients only
        await sio1.emit("news", "local only", to="r", ignore_queue=True)
        assert await asyncio.wait_for(inbox_a.get(), 5) == "local only"
        await sio1.emit("news", "marker", to=b.get_sid())
        assert await asyncio.wait_for(inbox_b.get(), 5) == "marker"
        # a call to a client of the other process that never answers times out and is forgotten
        release = asyncio.Event()

        async def slow():
            await release.wait()       # answers only after the caller gave up

        b.on("silent", slow)
        with pytest.raises(fastio.exceptions.TimeoutError):
            await sio1.call("silent", to=b.get_sid(), timeout=0.5)
        assert sio1.manager.callbacks == {}
        release.set()
        assert inbox_a.empty() and inbox_b.empty()
    finally:
        await disconnect_and_close((a, b), (srv1, srv2))


def test_sentinel_urls_parse_as_python_socketio_parses_them():
    from socketio.redis_manager import parse_redis_sentinel_url as theirs

    from fastio.socketio.redis_manager import parse_redis_sentinel_url as ours

    for url in ("redis+sentinel://h1:26379,h2:26380/2/mymaster", "redis+sentinel://user:pw@h1:1234/0",
                "redis+sentinel://:secret@[::1]:26379", "valkey+sentinel://h:1/3/svc"):
        assert ours(url) == theirs(url)
    with pytest.raises(ValueError):
        ours("redis://h:1/0")
    # a Sentinel URL gives a master client for the service (the channel name when none is given)
    mgr = fastio.AsyncRedisManager("redis+sentinel://127.0.0.1:26379/0/mymaster", write_only=True)
    assert mgr.redis.connection_pool.service_name == "mymaster"
    mgr = fastio.AsyncRedisManager("redis+sentinel://127.0.0.1:26379/0", channel="chan", write_only=True)
    assert mgr.redis.connection_pool.service_name == "chan"
    with pytest.raises(ValueError):
        fastio.AsyncRedisManager("http://127.0.0.1/")


@pytest.mark.timeout(30)
async def test_valkey_url_and_logger(caplog):
    """``valkey://`` URLs use the valkey package (a Valkey client speaks to Redis as well), and
    ``logger=`` receives the manager's messages; the subscription starts at initialize(),
    before any client connects."""
    pytest.importorskip("valkey")
    import logging

    channel = "fastio-test-" + uuid.uuid4().hex
    log = logging.getLogger("fastio-test-valkey-manager")
    log.setLevel(logging.INFO)
    mgr = fastio.AsyncRedisManager("valkey://127.0.0.1:6379/0", channel=channel, logger=log)
    assert type(mgr.redis).__module__.startswith("valkey")
    sio = fastio.AsyncServer(client_manager=mgr)
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    with caplog.at_level(logging.INFO, logger=log.name):
        mgr.initialize()
        await asyncio.wait_for(mgr.ready(), 5)  # subscribed with no client connected yet
    assert any(r.name == log.name and "aioredis backend initialized" in r.getMessage() for r in caplog.records)
    inbox = asyncio.Queue()
    c = await _client(srv.url, inbox)
    other = fastio.AsyncRedisManager(REDIS_URL, channel=channel, write_only=True)
    try:
        await other.emit("news", {"via": "redis client", "b": b"\x00"})
        assert await asyncio.wait_for(inbox.get(), 5) == {"via": "redis client", "b": b"\x00"}
    finally:
        await c.disconnect()
        await srv.close()
        await other.aclose()


@pytest.mark.timeout(30)
async def test_subclass_overriding_emit_of_the_redis_manager():
    """A python-socketio style subclass: its emit override sees the server's emits and its
    super().emit() still publishes to the other processes."""
    seen = []

    class Tagging(fastio.AsyncRedisManager):
        async def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None, to=None,
                       **kwargs):
            seen.append((event, to or room))
            await super().emit(event, {"tagged": data}, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)

    channel = "fastio-test-" + uuid.uuid4().hex
    mgr = Tagging(REDIS_URL, channel=channel)
    sio1 = fastio.AsyncServer(client_manager=mgr)
    srv1 = await fastio.serve(sio1, "127.0.0.1", 0)
    await asyncio.wait_for(mgr.ready(), 5)
    sio2, srv2 = await _server(channel)
    inbox = asyncio.Queue()
    c = await _client(srv2.url, inbox)
    try:
        await sio1.emit("news", "hello", to="r")
        assert await asyncio.wait_for(inbox.get(), 5) == {"tagged": "hello"}
        assert seen == [("news", "r")]
    finally:
        await c.disconnect()
        await srv1.close()
        await srv2.close()
