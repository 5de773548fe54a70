"""fastio servers and a Node socket.io server (``@socket.io/redis-streams-adapter`` 0.2.3) in one
Redis Streams fleet, with ``AsyncNodeRedisStreamsManager``; and connection state recovery across
the fleet's servers, both ways.

tests/interop/node/streams_fleet.mjs runs the Node server and socket.io-clients.  Redis must run
at 127.0.0.1:6379 (REDIS_URL overrides); each test uses its own stream and session key prefix,
so tests never see each other's traffic.  A client is moved from one server to another by a TCP
proxy in the test, re-pointed while the connection is cut: socket.io-client recovers a session
only when its own Manager reconnects.
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
from typing import Any, AsyncIterator

import orjson
import pytest

import fastio
from fleetkit import (ScriptFleet, check_bounded_queue, check_broadcast_with_ack, check_emit_from_fastio,
                      check_emit_from_node, check_fetch_sockets, check_rooms_join_leave, check_server_side_emit,
                      until)
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(60)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
OFFSET = re.compile(r"[0-9]+-[0-9]+")


class Member:
    """One fastio server of the fleet."""

    def __init__(self, sio: fastio.AsyncServer, mgr: fastio.AsyncNodeRedisStreamsManager, server: Any) -> None:
        self.sio = sio
        self.mgr = mgr
        self.server = server
        self.port: int = server.port
        self.seen_sse: list[Any] = []


async def start_member(stream: str, prefix: str, recovery: bool, name: str) -> Member:
    mgr = fastio.AsyncNodeRedisStreamsManager(REDIS_URL, stream_name=stream, session_key_prefix=prefix,
                                              requests_timeout=3, redis_options={"client_name": name})
    sio = fastio.AsyncServer(client_manager=mgr, connection_state_recovery=True if recovery else None)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        if sio.is_recovered(sid):
            return
        for room in (auth or {}).get("rooms") or ():
            await sio.enter_room(sid, room)
        sio.manager.get_socket(sid, "/").data["who"] = "py"

    server = await fastio.serve(sio, host="127.0.0.1", port=0)
    member = Member(sio, mgr, server)

    @sio.on_server_side("sse")
    def sse(arg: Any) -> str:
        member.seen_sse.append(arg)
        return f"py-ack:{arg}"

    await mgr.ready("/")
    return member


async def stop_member(member: Member) -> None:
    await member.server.close()
    await member.mgr.aclose()


def counts(mgr: fastio.AsyncNodeRedisStreamsManager, n: int) -> Any:
    """A check for ``until``: ``mgr`` counts ``n`` servers."""
    async def check() -> bool:
        return await mgr.server_count() == n
    return check


class Fleet(ScriptFleet):
    def __init__(self, members: list[Member], node: NodeProcess, ready: dict[str, Any], stream: str,
                 prefix: str) -> None:
        super().__init__(members[0].sio, node, ready)
        self.members = members
        self.py = members[0]
        self.mgr = members[0].mgr
        self.node_port: int = ready["port"]
        self.stream = stream
        self.prefix = prefix


async def open_fleet(members: int, recovery: bool) -> tuple[list[Member], str, str]:
    stream = "streams-" + secrets.token_hex(6)
    prefix = f"sess-{secrets.token_hex(4)}:"
    started = [await start_member(stream, prefix, recovery, f"{stream}-{i}") for i in range(members)]
    return started, stream, prefix


async def close_fleet(members: list[Member], stream: str, prefix: str) -> None:
    for member in members:
        await stop_member(member)
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        await admin.delete(stream, *keys)
    finally:
        await admin.aclose()


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    members, stream, prefix = await open_fleet(1, recovery=False)
    try:
        config = {"streamName": stream, "sessionKeyPrefix": prefix, "redisUrl": REDIS_URL,
                  "fastioUrl": f"http://127.0.0.1:{members[0].port}", "timeoutMs": 50000}
        async with NodeProcess("streams_fleet.mjs", config) as node:
            ready = await node.expect("ready", timeout=20)
            # Both servers count each other (heartbeats read from the stream).
            await until(counts(members[0].mgr, 2), what="fastio to hear from Node")
            fleet = Fleet(members, node, ready, stream, prefix)

            async def node_counts() -> bool:
                # Node reads from "$" once its adapter exists: the heartbeat fastio answered its
                # INITIAL_HEARTBEAT with may have come before; any entry of fastio's counts.
                await members[0].sio.server_side_emit("hello")
                return (await fleet.command("serverCount", "serverCount"))["count"] == 2
            await until(node_counts, what="Node to hear from fastio")
            yield fleet
    finally:
        await close_fleet(members, stream, prefix)


async def test_emit_from_node_reaches_both(fleet: Fleet) -> None:
    await check_emit_from_node(fleet)


async def test_emit_from_fastio_reaches_both(fleet: Fleet) -> None:
    await fleet.sio.emit("skip", 4, skip_sid=fleet.py_id)
    await check_emit_from_fastio(fleet)
    assert (await fleet.received("node", "skip"))["args"] == [4]
    assert fleet.not_received("py", "skip")


async def test_fetch_sockets_both_ways(fleet: Fleet) -> None:
    await check_fetch_sockets(fleet)


async def test_server_side_emit_with_ack_both_ways(fleet: Fleet) -> None:
    await check_server_side_emit(fleet, fleet.py.seen_sse)


async def test_broadcast_with_ack_collects_from_both(fleet: Fleet) -> None:
    await check_broadcast_with_ack(fleet)


async def test_rooms_operations_both_ways(fleet: Fleet) -> None:
    await check_rooms_join_leave(fleet)
    await fleet.sio.in_("nodeonly").disconnect_sockets()
    assert (await fleet.seen("nodeDisconnect", id=fleet.node_id))["reason"] == "server namespace disconnect"


async def test_server_count_follows_heartbeats_and_close(fleet: Fleet) -> None:
    assert await fleet.mgr.server_count() == 2
    other = await start_member(fleet.stream, fleet.prefix, False, fleet.stream + "-extra")
    try:
        # Its INITIAL_HEARTBEAT is answered by both: everyone counts three.
        await until(counts(other.mgr, 3), what="the new server to count the fleet")
        await until(counts(fleet.mgr, 3), what="the first server to count the new one")
    finally:
        await stop_member(other)
    # ADAPTER_CLOSE: the others forget it at once.
    await until(counts(fleet.mgr, 2), what="ADAPTER_CLOSE to be read")

    async def node_counts() -> bool:
        return (await fleet.command("serverCount", "serverCount"))["count"] == 2
    await until(node_counts, what="Node to forget the closed server")


async def test_reader_resumes_after_losing_redis(fleet: Fleet) -> None:
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        # Every connection of the manager (named after the stream) is killed by Redis; an entry
        # appended meanwhile is read once the reader is back, from the last id it read.
        name = fleet.stream + "-0"
        clients = [c for c in await admin.client_list() if c.get("name") == name]
        assert clients
        for client in clients:
            await admin.client_kill_filter(_id=client["id"])
        await fleet.command("emit", ev="during", args=[1])
        assert (await fleet.received("py", "during"))["args"] == [1]
        await fleet.sio.emit("after", 2)
        assert (await fleet.received("node", "after"))["args"] == [2]
    finally:
        await admin.aclose()


# -- connection state recovery across servers ---------------------------------------------------


class Proxy:
    """A TCP proxy whose upstream can change: ``cut`` ends every relayed connection, ``hold``
    keeps new ones waiting until ``release``."""

    def __init__(self) -> None:
        self.upstream = 0
        self.open = asyncio.Event()
        self.open.set()
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.open.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.pairs.discard(pair)

    def cut(self) -> None:
        for a, b in list(self.pairs):
            a.transport.abort()
            b.transport.abort()

    async def close(self) -> None:
        self.cut()
        self.open.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def recovery_fleet() -> AsyncIterator[tuple[Fleet, Proxy]]:
    members, stream, prefix = await open_fleet(2, recovery=True)
    proxy = Proxy()
    await proxy.start()
    try:
        config = {"streamName": stream, "sessionKeyPrefix": prefix, "redisUrl": REDIS_URL,
                  "fastioUrl": f"http://127.0.0.1:{members[0].port}", "timeoutMs": 50000, "recovery": True}
        async with NodeProcess("streams_fleet.mjs", config) as node:
            ready = await node.expect("ready", timeout=20)
            for member in members:
                await until(counts(member.mgr, 3), what="every server to count the fleet")
            yield Fleet(members, node, ready, stream, prefix), proxy
    finally:
        await proxy.close()
        await close_fleet(members, stream, prefix)


async def stream_order(fleet: Fleet, *events: str) -> list[str]:
    """Which of ``events`` the fleet's stream holds broadcasts of, in stream order."""
    entries = await fleet.mgr.redis.xrange(fleet.stream, "-", "+")
    datas = [fields.get(b"data", b"") for _, fields in entries if fields.get(b"type") == b"3"]
    # JSON, or base64 msgpack when the broadcast holds binary (names stay readable in msgpack).
    texts = [d if d[:1] == b"{" else base64.b64decode(d) for d in datas]
    return [event for text in texts for event in events if event.encode() in text]


async def stream_holds(fleet: Fleet, *events: str) -> bool:
    """True when every event name appears in a broadcast entry of the fleet's stream."""
    return set(await stream_order(fleet, *events)) == set(events)


@pytest.mark.parametrize("origin,target", [("fastio", "node"), ("fastio", "fastio"), ("node", "fastio")])
async def test_session_recovered_on_another_server(recovery_fleet: tuple[Fleet, Proxy], origin: str,
                                                   target: str) -> None:
    fleet, proxy = recovery_fleet
    # A fastio origin is the first fastio server, a fastio target the second one.
    origin_port = fleet.members[0].port if origin == "fastio" else fleet.node_port
    target_port = fleet.members[1].port if target == "fastio" else fleet.node_port
    first_sio = fleet.members[0].sio
    target_sio = fleet.members[1].sio if target == "fastio" else None

    proxy.upstream = origin_port
    await fleet.command("recClient", url=f"http://127.0.0.1:{proxy.port}", rooms=["r1", "rec-room"])
    first = await fleet.node.expect("recConnect")
    assert first["recovered"] is False
    sid = first["sid"]

    # A broadcast before the cut: the client then holds its offset (the stream entry id).
    if origin == "fastio":
        await first_sio.to("rec-room").emit("before", 0)
    else:
        await fleet.command("emit", to="rec-room", ev="before", args=[0])
    before = await fleet.received("rec", "before")
    assert before["args"][0] == 0 and OFFSET.fullmatch(before["args"][-1])

    # The connection breaks; the client's reconnection waits at the proxy, now pointed at the target.
    proxy.open.clear()
    proxy.upstream = target_port
    proxy.cut()
    assert (await fleet.node.expect("recDisconnect"))["reason"] == "transport close"

    async def persisted() -> bool:
        return bool([key async for key in fleet.mgr.redis.scan_iter(match=fleet.prefix + "*")])
    await until(persisted, what="the lost session to be stored in Redis")

    # Missed while away: from a fastio server and from Node, to its room and to everyone; and
    # one to a room it is not in.
    await first_sio.to("rec-room").emit("missed-py", 1, b"\x07")
    await fleet.command("emit", to="rec-room", ev="missed-node", args=[2])
    await fleet.members[1].sio.emit("missed-all", 3)
    await first_sio.to("elsewhere").emit("not-mine", 4)
    await until(lambda: stream_holds(fleet, "missed-py", "missed-node", "missed-all", "not-mine"),
                what="the broadcasts to be in the stream")
    proxy.open.set()

    second = await fleet.node.expect("recConnect")
    assert second == {"event": "recConnect", "sid": sid, "recovered": True}
    got_py = await fleet.received("rec", "missed-py")
    got_node = await fleet.received("rec", "missed-node")
    got_all = await fleet.received("rec", "missed-all")
    assert got_py["args"][:2] == [1, {"b64": "Bw=="}] and OFFSET.fullmatch(got_py["args"][-1])
    assert got_node["args"][0] == 2 and OFFSET.fullmatch(got_node["args"][-1])
    assert got_all["args"][0] == 3
    # In the stream's order (the three servers appended them concurrently).
    missed = ("missed-py", "missed-node", "missed-all")
    order = fleet.order("rec")
    assert [ev for ev in order if ev in missed] == await stream_order(fleet, *missed)
    assert order.count("missed-py") == 1 and order.count("before") == 1

    # On the target: the same sid, its rooms and data back.
    if target == "node":
        fetched = (await fleet.command("fetch", "fetched", to="rec-room"))["sockets"]
        mine = [s for s in fetched if s["id"] == sid]
        assert len(mine) == 1
        assert set(mine[0]["rooms"]) == {sid, "r1", "rec-room"} and mine[0]["data"] == {"who": "py"}
    else:
        assert target_sio is not None
        assert target_sio.is_recovered(sid)
        assert set(target_sio.manager.get_rooms(sid, "/")) == {sid, "r1", "rec-room"}
        expected = {"who": "py"} if origin == "fastio" else {"who": "node"}
        assert target_sio.manager.get_socket(sid, "/").data == expected

    # Live again: a broadcast to its room reaches it (and only once).
    await first_sio.to("rec-room").emit("live", 5)
    assert (await fleet.received("rec", "live"))["args"][0] == 5
    await fleet.command("emit", ev="mark", args=[])
    await fleet.received("rec", "mark")
    assert fleet.not_received("rec", "not-mine")
    assert fleet.order("rec").count("live") == 1


async def test_session_recovered_without_an_offset(recovery_fleet: tuple[Fleet, Proxy]) -> None:
    # A client that received no broadcast has no offset to send: fastio replays from where the
    # stream stood when the socket connected (Node would give it a fresh session).
    fleet, proxy = recovery_fleet
    first, second = fleet.members
    proxy.upstream = first.port
    await fleet.command("recClient", url=f"http://127.0.0.1:{proxy.port}", rooms=["rec-room"])
    sid = (await fleet.node.expect("recConnect"))["sid"]
    proxy.open.clear()
    proxy.upstream = second.port
    proxy.cut()
    await fleet.node.expect("recDisconnect")

    async def persisted() -> bool:
        return bool([key async for key in fleet.mgr.redis.scan_iter(match=fleet.prefix + "*")])
    await until(persisted, what="the lost session to be stored in Redis")
    await first.sio.to("rec-room").emit("missed", 1)
    await until(lambda: stream_holds(fleet, "missed"), what="the broadcast to be in the stream")
    proxy.open.set()
    again = await fleet.node.expect("recConnect")
    assert again["sid"] == sid and again["recovered"] is True
    got = await fleet.received("rec", "missed")
    assert got["args"][0] == 1 and OFFSET.fullmatch(got["args"][-1])
    assert second.sio.is_recovered(sid)
    assert set(second.sio.manager.get_rooms(sid, "/")) == {sid, "rec-room"}


async def test_unknown_or_trimmed_offset_gives_a_fresh_session(recovery_fleet: tuple[Fleet, Proxy]) -> None:
    fleet, proxy = recovery_fleet
    sio = fleet.members[1].sio
    store = sio.recovery
    # A session stored by fastio, asked for with an offset the stream never had.
    store.persist("pid-x", "sid-x", "/", ["sid-x", "a"], {"k": 1}, None, "0-0")
    await until(lambda: fleet.mgr.redis.exists(fleet.prefix + "pid-x"), what="the session to be stored")
    assert await store.restore("/", "pid-x", "1-1") is None
    # ... and taken once: the lookup deleted it.
    assert not await fleet.mgr.redis.exists(fleet.prefix + "pid-x")
    assert await store.restore("/", "nope", "1-0") is None
    assert await store.restore("/", "pid-x", "not-an-offset") is None


class GatedPipeline:
    """Stands in for the appending connection's pipeline: ``execute`` waits until ``gate`` is set."""

    def __init__(self, gate: asyncio.Event, appended: list[dict[str, Any]]) -> None:
        self.gate = gate
        self.appended = appended
        self.batch: list[dict[str, Any]] = []

    def xadd(self, name: str, fields: dict[str, Any], maxlen: int, approximate: bool) -> None:
        self.batch.append(fields)

    async def execute(self) -> list[bytes]:
        await self.gate.wait()
        start = len(self.appended)
        self.appended.extend(self.batch)
        return [f"1-{start + i}".encode() for i in range(len(self.batch))]


async def test_publish_queue_is_bounded() -> None:
    mgr = fastio.AsyncNodeRedisStreamsManager(REDIS_URL, stream_name="q-" + secrets.token_hex(4), queue_size=2)
    gate = asyncio.Event()
    appended: list[dict[str, Any]] = []
    real = mgr.redis
    mgr.redis = type("Gated", (), {"pipeline": lambda self, transaction=False: GatedPipeline(gate, appended),
                                   "aclose": lambda self: real.aclose()})()
    try:
        await check_bounded_queue(mgr, gate.set)
        events = [orjson.loads(f["data"])["packet"]["data"][0] for f in appended if f["type"] == "3"]
        assert events == ["a", "b", "c", "e", "f"] and mgr.dropped == 1
    finally:
        await real.aclose()


async def test_session_whose_offset_was_trimmed_is_not_recovered() -> None:
    stream = "trim-" + secrets.token_hex(4)
    mgr = fastio.AsyncNodeRedisStreamsManager(REDIS_URL, stream_name=stream, max_len=10,
                                              session_key_prefix=stream + ":")
    sio = fastio.AsyncServer(client_manager=mgr, connection_state_recovery=True)
    try:
        await mgr.ready("/")
        store = sio.recovery
        first = (await mgr.redis.xadd(stream, {"uid": "x", "nsp": "/", "type": "2"})).decode()
        store.persist("pid-t", "sid-t", "/", ["sid-t"], {}, None, first)
        store.persist("pid-u", "sid-u", "/", ["sid-u"], {}, None, first)

        async def stored() -> bool:
            return await mgr.redis.exists(stream + ":pid-t", stream + ":pid-u") == 2
        await until(stored, what="the sessions to be stored")
        restored = await store.restore("/", "pid-u", first)
        assert restored is not None and restored[0].sid == "sid-u"  # the offset is still there
        # MAXLEN ~ 10 trims whole nodes of the stream (100 entries each by default).
        for i in range(300):
            await sio.emit("tick", i)
        await until(lambda: _gone(mgr, stream, first), what="the first entry to be trimmed")
        assert await store.restore("/", "pid-t", first) is None
    finally:
        await mgr.redis.delete(stream)
        await mgr.aclose()


async def _gone(mgr: fastio.AsyncNodeRedisStreamsManager, stream: str, entry_id: str) -> bool:
    return not await mgr.redis.xrange(stream, entry_id, entry_id)
