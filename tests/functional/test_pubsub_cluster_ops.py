"""Node's operators across the processes of a python-socketio-format pub/sub manager: two fastio
servers on one channel (Redis at 127.0.0.1:6379, RabbitMQ at 127.0.0.1:5672), fastio clients
on each, every operation checked from each server; a python-socketio server on the same Redis
channel ignores fastio's messages; the bounded publish queue; heartbeats."""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

import fastio
from fastio.socketio.operators import BroadcastTimeoutError
from pubsub_bus import Bus, BusManager
from pysio_peer import close_pubsub_manager, serve_room_server, stop_asgi, until_heard

pytestmark = pytest.mark.timeout(60)

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _redis(channel: str, **kwargs: Any) -> fastio.AsyncPubSubManager:
    return fastio.AsyncRedisManager(REDIS_URL, channel=channel, **kwargs)


def _aiopika(channel: str, **kwargs: Any) -> fastio.AsyncPubSubManager:
    pytest.importorskip("aio_pika")
    return fastio.AsyncAioPikaManager(AMQP_URL, channel=channel, **kwargs)


async def _until(predicate: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _server(mgr: fastio.AsyncPubSubManager, index: int) -> tuple[fastio.AsyncServer, Any, asyncio.Queue]:
    sio = fastio.AsyncServer(client_manager=mgr)
    server_events: asyncio.Queue = asyncio.Queue()

    @sio.event
    async def connect(sid, environ, auth):
        sio.socket_data(sid)["name"] = auth["name"]
        for room in auth["rooms"]:
            await sio.enter_room(sid, room)

    @sio.on_server_side("hello")
    async def hello(arg):
        server_events.put_nowait(("hello", arg))
        return {"from": index, "arg": arg, "bin": b"\x01"}

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    try:
        await asyncio.wait_for(mgr.ready(), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        await srv.close()
        pytest.fail("this test needs its broker (Redis 127.0.0.1:6379 / RabbitMQ 127.0.0.1:5672): %r" % (exc,))
    return sio, srv, server_events


class Client:
    """A fastio client that answers ``q`` with ``<name>:<arg>`` (``slow`` only when released)."""

    def __init__(self, name: str, rooms: list[str]) -> None:
        self.name = name
        self.rooms = rooms
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.gone = asyncio.Event()
        self.release = asyncio.Event()
        self.c = fastio.AsyncClient(reconnection=False)
        self.c.on("news", lambda *args: self.inbox.put_nowait(args))
        self.c.on("q", lambda x: f"{self.name}:{x}")
        self.c.on("disconnect", lambda *args: self.gone.set())

        async def slow(x):
            if self.name.endswith("2"):
                await self.release.wait()
            return f"{self.name}:{x}"

        self.c.on("slow", slow)

    async def connect(self, url: str) -> Client:
        await self.c.connect(url, auth={"name": self.name, "rooms": self.rooms}, transports=["websocket"])
        return self

    @property
    def sid(self) -> str:
        return self.c.get_sid()


async def _shutdown(clients: Any, servers: Any, managers: Any) -> None:
    """Disconnect the clients (releasing their slow answers), then close the servers and the
    managers; ``None`` in any of them (not started) is passed over."""
    for c in clients:
        if c is not None:
            c.release.set()
            await c.c.disconnect()
    for srv in servers:
        if srv is not None:
            await srv.close()
    for m in managers:
        if m is not None:
            await m.aclose()


@pytest.mark.parametrize("make_manager", [_redis, _aiopika], ids=["redis", "aiopika"])
async def test_operators_reach_every_process(make_manager):
    channel = "fastio-test-" + uuid.uuid4().hex
    m1, m2 = make_manager(channel), make_manager(channel)
    (sio1, srv1, ev1), (sio2, srv2, ev2) = await _server(m1, 1), await _server(m2, 2)
    a1, a2 = await Client("a1", ["r"]).connect(srv1.url), await Client("a2", ["r", "vip"]).connect(srv1.url)
    b1, b2 = await Client("b1", ["r"]).connect(srv2.url), await Client("b2", ["r", "vip"]).connect(srv2.url)
    clients = {c.sid: c for c in (a1, a2, b1, b2)}
    try:
        await _until(lambda: m1.peers and m2.peers)  # they know each other from their heartbeats
        assert set(m1.peers) == {m2.host_id} and set(m2.peers) == {m1.host_id}
        for sio, other_side in ((sio1, (b1, b2)), (sio2, (a1, a2))):
            assert await sio.server_count() == 2
            # fetch_sockets: every process's sockets, with rooms, data and handshake
            found = {s.sid: s for s in await sio.fetch_sockets()}
            assert set(found) == set(clients)
            remote = found[other_side[1].sid]
            assert remote.rooms == {"r", "vip", remote.sid}
            assert remote.data == {"name": other_side[1].name}
            assert remote.handshake["auth"] == {"name": other_side[1].name, "rooms": ["r", "vip"]}
            assert remote.handshake["query"]["EIO"] == "4"
            assert {s.sid for s in await sio.in_("r").except_("vip").fetch_sockets()} == {a1.sid, b1.sid}
            assert [s.sid for s in await sio.local.in_("vip").fetch_sockets()] == [
                (a2 if sio is sio1 else b2).sid]
            # all_sockets (cluster-wide ids and count of a room) and all_rooms
            assert await sio.in_("vip").all_sockets() == {a2.sid, b2.sid}
            assert len(await sio.all_sockets()) == 4
            assert await sio.all_rooms() == {"r", "vip", *clients}
            # sockets_join / sockets_leave with to/except, applied everywhere before the next request
            await sio.in_("r").except_("vip").sockets_join(["joined", "j2"])
            assert await sio.in_("joined").all_sockets() == {a1.sid, b1.sid}
            await sio.in_("j2").sockets_leave("j2")
            assert await sio.in_("j2").all_sockets() == set()
            await sio.in_("joined").sockets_leave("joined")
            assert "joined" not in await sio.all_rooms()
            # a RemoteSocket of the other process: emit, join, leave
            await remote.emit("news", "direct", b"\x02")
            assert await asyncio.wait_for(other_side[1].inbox.get(), 5) == ("direct", b"\x02")
            await remote.join("solo")
            assert await sio.in_("solo").all_sockets() == {remote.sid}
            await remote.leave("solo")
            assert await sio.in_("solo").all_sockets() == set()
            # emit_with_ack to a room: one answer per client of every process, without waiting
            # for the timeout
            started = asyncio.get_running_loop().time()
            answers = await sio.to("r").timeout(10).emit_with_ack("q", "x")
            assert sorted(answers) == ["a1:x", "a2:x", "b1:x", "b2:x"]
            assert asyncio.get_running_loop().time() - started < 5
            assert await sio.to("vip").except_(a2.sid).timeout(10).emit_with_ack("q", "y") == ["b2:y"]
            # ...and with a client that does not answer in time: the answers so far
            with pytest.raises(BroadcastTimeoutError) as info:
                await sio.to("r").timeout(1).emit_with_ack("slow", "z")
            assert sorted(info.value.responses) == ["a1:z", "b1:z"]  # a2 and b2 are slow
            for c in clients.values():
                c.release.set()
                c.release = asyncio.Event()
        # server_side_emit: the OTHER process's handler runs; with ack, its answers come back
        await sio1.server_side_emit("hello", 1)
        assert await asyncio.wait_for(ev2.get(), 5) == ("hello", 1)
        assert await sio1.server_side_emit_with_ack("hello", 2) == [{"from": 2, "arg": 2, "bin": b"\x01"}]
        assert await sio2.server_side_emit_with_ack("hello", 3) == [{"from": 1, "arg": 3, "bin": b"\x01"}]
        assert await asyncio.wait_for(ev2.get(), 5) == ("hello", 2)
        assert await asyncio.wait_for(ev1.get(), 5) == ("hello", 3)
        assert ev1.empty() and ev2.empty()
        # disconnect_sockets from server 2 reaches server 1's clients too
        await sio2.in_("vip").disconnect_sockets()
        await asyncio.wait_for(a2.gone.wait(), 5)
        await asyncio.wait_for(b2.gone.wait(), 5)
        assert {s.sid for s in await sio1.fetch_sockets()} == {a1.sid, b1.sid}
        # a RemoteSocket's disconnect
        remote_b1 = [s for s in await sio1.fetch_sockets() if s.sid == b1.sid][0]
        await remote_b1.disconnect()
        await asyncio.wait_for(b1.gone.wait(), 5)
        assert await sio2.all_sockets() == {a1.sid}
        assert m1.dropped == m2.dropped == 0
    finally:
        await _shutdown(clients.values(), (srv1, srv2), (m1, m2))


async def test_room_emit_with_callback_runs_the_callback_once():
    """The issue: a room emit with a callback to 2 local + 2 remote clients ran the callback 3
    times over AsyncRedisManager.  As python-socketio's pub/sub managers do, it runs once, with
    the first answer; the later answers (local and remote) are ignored."""
    channel = "fastio-test-" + uuid.uuid4().hex
    m1, m2 = _redis(channel), _redis(channel)
    (sio1, srv1, _), (sio2, srv2, _) = await _server(m1, 1), await _server(m2, 2)
    finished: list[str] = []

    @sio1.event
    async def answered(sid):
        finished.append(sid)

    @sio2.event
    async def answered(sid):  # noqa: F811 - server 2's handler
        # published after server 2 sent this client's acknowledgement back to server 1
        await sio2.server_side_emit("answered", sid)

    sio1.on_server_side("answered", lambda sid: finished.append(sid))
    clients = [await Client(name, ["r"]).connect(srv.url)
               for name, srv in (("a1", srv1), ("a2", srv1), ("b1", srv2), ("b2", srv2))]
    for c in clients:
        def q(x, c=c):
            # the acknowledgement is sent when this returns; "answered" follows it on the wire
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(c.c.emit("answered")))
            return f"{c.name}:{x}"
        c.c.on("q", q)
    calls: list[Any] = []
    try:
        await _until(lambda: m1.peers and m2.peers)
        for round_ in range(3):
            finished.clear()
            await sio1.emit("q", round_, to="r", callback=lambda answer: calls.append(answer))
            await _until(lambda: len(finished) == 4)
            assert len(calls) == round_ + 1
            assert calls[-1] in {f"{c.name}:{round_}" for c in clients}
        assert m1.callbacks == {}
        # to one client of the other process: its answer, once
        await sio1.emit("q", "one", to=clients[3].sid, callback=lambda answer: calls.append(answer))
        await _until(lambda: len(calls) == 4)
        assert calls[-1] == "b2:one"
    finally:
        await _shutdown(clients, (srv1, srv2), (m1, m2))


async def test_python_socketio_server_on_the_channel_ignores_fastio_messages():
    """A python-socketio 5.18 server on the same Redis channel: fastio's operator messages do
    not disturb it (no error logged), it still gets emits, and fastio's requests do not wait for
    it (it sends no heartbeat, so it is not counted)."""
    import socketio as pysio

    channel = "fastio-test-" + uuid.uuid4().hex
    m1, m2 = _redis(channel, requests_timeout=8), _redis(channel, requests_timeout=8)
    (sio1, srv1, _), (sio2, srv2, ev2) = await _server(m1, 1), await _server(m2, 2)
    problems: list[str] = []
    seen_methods: set[str] = set()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                problems.append(record.getMessage())
            elif record.getMessage().startswith("pubsub message: "):
                seen_methods.add(record.getMessage().split(": ", 1)[1])

    plog = logging.getLogger("fastio-test-python-socketio-" + channel)
    plog.setLevel(logging.DEBUG)
    plog.addHandler(Collect())
    pmgr = pysio.AsyncRedisManager(REDIS_URL, channel=channel)
    psio, userver, task, pport = await serve_room_server(pmgr, logger=plog)
    p_inbox: asyncio.Queue = asyncio.Queue()
    p_client = pysio.AsyncClient()
    p_client.on("news", lambda *args: p_inbox.put_nowait(args))
    p_client.on("q", lambda x: "python-socketio:" + x)
    await p_client.connect("http://127.0.0.1:%d" % pport, transports=["websocket"])
    a = await Client("a", ["r"]).connect(srv1.url)
    b = await Client("b", ["r"]).connect(srv2.url)
    try:
        # python-socketio's listener starts with its first client: wait until it hears fastio
        await until_heard(lambda: sio1.emit("news", "probe", to=p_client.get_sid()), p_inbox, ("probe",), 200, 0.05)
        await _until(lambda: m1.peers and m2.peers)
        assert await sio1.server_count() == 2  # python-socketio's process is not counted
        started = asyncio.get_running_loop().time()
        assert {s.sid for s in await sio1.fetch_sockets()} == {a.sid, b.sid}
        await sio1.in_("r").sockets_join("more")
        assert await sio1.in_("more").all_sockets() == {a.sid, b.sid}
        assert await sio1.all_rooms() >= {"r", "more"}
        assert await sio1.server_side_emit_with_ack("hello", 1) == [{"from": 2, "arg": 1, "bin": b"\x01"}]
        assert sorted(await sio1.to("r").timeout(8).emit_with_ack("q", "x")) == ["a:x", "b:x"]
        await sio1.in_("nobody").disconnect_sockets()
        # none of these waited for python-socketio's process (requests_timeout is 8 s)
        assert asyncio.get_running_loop().time() - started < 4
        # python-socketio still gets fastio's emits (its clients in room "r" too), and the
        # operator emit of fastio reaches it as an ordinary emit
        await sio1.emit("news", "after", to="r")
        assert await asyncio.wait_for(p_inbox.get(), 5) == ("after",)
        await sio2.to("r").except_(a.sid).emit("news", "op")
        assert await asyncio.wait_for(p_inbox.get(), 5) == ("op",)
        await psio.emit("news", "from python-socketio", to="r")
        assert await asyncio.wait_for(a.inbox.get(), 5) == ("after",)
        assert await asyncio.wait_for(a.inbox.get(), 5) == ("from python-socketio",)
        assert problems == []
        # python-socketio's listener did receive fastio's messages (it logs each method at debug)
        await _until(lambda: {"fastio:fetch_sockets", "fastio:response", "fastio:sockets_join",
                              "fastio:broadcast_ack", "fastio:server_side_emit"} <= seen_methods)
    finally:
        await p_client.disconnect()
        await _shutdown((a, b), (srv1, srv2), (m1, m2))
        await stop_asgi(userver, task)
        await close_pubsub_manager(pmgr)


class GatedManager(BusManager):
    """A bus manager whose backend publishes only while ``gate`` is set."""

    def __init__(self, bus: Bus, **kwargs: Any) -> None:
        super().__init__(bus, **kwargs)
        self.gate = asyncio.Event()

    async def _publish(self, data: Any) -> None:
        await self.gate.wait()
        await super()._publish(data)


async def _spin(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_publish_queue_backpressure_and_drops():
    bus = Bus()
    seen: asyncio.Queue = asyncio.Queue()
    bus.queues.append(seen)
    mgr = GatedManager(bus, channel="c", queue_size=2)
    sio = fastio.AsyncServer(client_manager=mgr)
    assert not mgr.publish_full
    await sio.emit("e", 1)           # taken by the writer, which waits at the gate
    await _spin()
    await sio.emit("e", 2)
    await sio.emit("e", 3)
    assert mgr.publish_full and mgr.queue_snapshot() == ["emit", "emit"]
    # emits and operators wait while the queue is full...
    waiting = [asyncio.create_task(sio.emit("e", 4)), asyncio.create_task(sio.to("x").emit("e", 5)),
               asyncio.create_task(mgr.emit("e", 6))]
    await _spin()
    assert not any(t.done() for t in waiting)
    # ...a path that cannot wait drops its message, counted
    mgr.emit_now("e", "dropped", "/")
    assert mgr.dropped == 1 and mgr.queue_snapshot() == ["emit", "emit"]
    # ...as does the reply to another process's request
    await mgr._handle_message(mgr.json.dumps({"method": "fastio:all_sockets", "host_id": "other",
                                              "request_id": "r1", "namespace": "/"}))
    assert mgr.dropped == 2 and mgr.queue_snapshot() == ["emit", "emit"]
    mgr.gate.set()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    got = []
    while len(got) < 6:
        got.append(mgr.json.loads(await asyncio.wait_for(seen.get(), 5)))
    assert [m["data"] for m in got] == [[1], [2], [3], [4], [5], [6]]
    assert seen.empty() and mgr.dropped == 2
    with pytest.raises(ValueError):
        GatedManager(bus, queue_size=0)


async def test_python_socketio_constructor_arguments_still_work():
    log = logging.getLogger("fastio-test-ctor")
    mgr = fastio.AsyncRedisManager(REDIS_URL, "chan", True, log, None, {"socket_timeout": 3})
    assert (mgr.channel, mgr.write_only, mgr.logger, mgr.redis_options) == ("chan", True, log, {"socket_timeout": 3})
    assert mgr.queue_size == 1024 and mgr.requests_timeout == 5.0
    await mgr.emit("e", "to nobody")   # a write-only emitter publishes and returns
    await mgr.aclose()
    # older python-socketio versions' order: (url, channel, write_only, logger, redis_options)
    old = fastio.AsyncRedisManager(REDIS_URL, "chan", True, log, {"socket_timeout": 4})
    assert old.redis_options == {"socket_timeout": 4} and not isinstance(old.json, dict)
    await old.aclose()
    pika = pytest.importorskip("aio_pika")
    assert pika
    amgr = fastio.AsyncAioPikaManager(AMQP_URL, "chan", True, log, queue_size=8)
    assert (amgr.channel, amgr.write_only, amgr.queue_size) == ("chan", True, 8)


async def test_requests_stop_waiting_for_a_process_that_went_away():
    """A process that says goodbye is forgotten at once; one that falls silent is forgotten
    after heartbeat_timeout, and a request waiting for it completes then, without it."""
    bus = Bus()
    opts = dict(channel="c", heartbeat_interval=0.05, heartbeat_timeout=0.3, requests_timeout=10)
    m1, m2 = BusManager(bus, **opts), BusManager(bus, **opts)
    sio1, sio2 = fastio.AsyncServer(client_manager=m1), fastio.AsyncServer(client_manager=m2)
    for m in (m1, m2):
        m.initialize()
        await m.ready()
    try:
        await _until(lambda: m1.peers and m2.peers)
        assert await sio1.fetch_sockets() == []
        await m2.aclose()                  # says goodbye
        await _until(lambda: not m1.peers)
        # a process that only ever sent a heartbeat (then fell silent) is waited for until it expires
        await m1._handle_message(m1.json.dumps({"method": "fastio:heartbeat", "host_id": "silent"}))
        assert "silent" in m1.peers
        started = asyncio.get_running_loop().time()
        assert await sio1.all_rooms() == set()
        assert await sio1.server_side_emit_with_ack("anything") == []
        assert asyncio.get_running_loop().time() - started < 3
        assert not m1.peers
    finally:
        await m1.aclose()
        await m2.aclose()


async def test_redis_burst_goes_through_a_small_queue_in_order():
    """Many emits through a queue of 16: they wait for room, go in pipelines, arrive in order."""
    channel = "fastio-test-" + uuid.uuid4().hex
    m1, m2 = _redis(channel, queue_size=16), _redis(channel)
    (sio1, srv1, _), (sio2, srv2, _) = await _server(m1, 1), await _server(m2, 2)
    b = await Client("b", ["r"]).connect(srv2.url)
    try:
        await asyncio.gather(*(sio1.emit("news", i, to="r") for i in range(300)),
                             *(sio1.to("r").emit("news", 1000 + i) for i in range(100)))
        got = [(await asyncio.wait_for(b.inbox.get(), 5))[0] for _ in range(400)]
        assert [n for n in got if n < 1000] == list(range(300))
        assert [n for n in got if n >= 1000] == list(range(1000, 1100))
        assert m1.dropped == 0
    finally:
        await _shutdown((b,), (srv1, srv2), (m1, m2))


async def test_redis_connection_loss_resubscribes():
    """The listener's connection is killed (on a Redis server of this test's own): the manager
    subscribes again, announces itself again, and emits and requests work as before."""
    import shutil
    import socket
    import subprocess

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "redis://127.0.0.1:%d/0" % port
    m1 = m2 = srv1 = srv2 = b = None
    try:
        import redis.asyncio as aioredis
        admin = aioredis.Redis.from_url(url)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                await admin.ping()
                break
            except Exception:
                assert asyncio.get_running_loop().time() < deadline, "redis-server did not start"
                await asyncio.sleep(0.05)
        m1 = fastio.AsyncRedisManager(url, channel="c")
        m2 = fastio.AsyncRedisManager(url, channel="c")
        (sio1, srv1, _), (sio2, srv2, _) = await _server(m1, 1), await _server(m2, 2)
        b = await Client("b", ["r"]).connect(srv2.url)
        await _until(lambda: m1.peers and m2.peers)
        # kill every subscriber connection (both listeners)
        assert await admin.client_kill_filter(_type="pubsub") >= 2
        await asyncio.wait_for(m2.ready(), 10)
        # re-subscribed: emits from server 1 reach server 2's client again
        if not await until_heard(lambda: sio1.emit("news", "again", to="r"), b.inbox, ("again",), 200, 0.05):
            pytest.fail("no emit came through after the connection loss")
        assert await sio1.all_sockets() == {b.sid}
        await admin.aclose()
    finally:
        await _shutdown((b,), (srv1, srv2), (m1, m2))
        proc.terminate()
        proc.wait(10)
