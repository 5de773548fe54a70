"""A fastio server and a Node socket.io server (``@socket.io/redis-adapter`` 8.3.0) in one Redis
fleet, with ``AsyncNodeRedisManager``; ``@socket.io/redis-emitter`` 5.1.0 publishes to it too.

tests/interop/node/redis_fleet.mjs runs the Node server, a socket.io-client on each server and
the emitter.  Redis must run at 127.0.0.1:6379 (REDIS_URL overrides); each test uses its own
random key, so tests never see each other's traffic.
"""
from __future__ import annotations

import asyncio
import base64
import os
import secrets
from typing import Any, AsyncIterator

import pytest

import fastio
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(60)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Fleet:
    def __init__(self, sio: fastio.AsyncServer, mgr: fastio.AsyncNodeRedisManager, node: NodeProcess,
                 ready: dict[str, Any]) -> None:
        self.sio = sio
        self.mgr = mgr
        self.node = node
        self.node_id: str = ready["nodeId"]
        self.py_id: str = ready["pyId"]
        self._ids = 0
        self.mode = "classic"

    async def command(self, cmd: str, reply: str = "done", **fields: Any) -> dict[str, Any]:
        self._ids += 1
        await self.node.send(cmd, id=self._ids, **fields)
        return await self.node.expect(reply, id=self._ids)

    async def seen(self, name: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The first event ``name`` with ``fields`` the script printed, whenever it came (events
        of the two clients interleave, so the order of ``expect`` cannot be relied on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hits = self.node.seen(name, **fields)
            if hits:
                return hits[0]
            await self.node.expect(name, timeout=max(0.01, deadline - loop.time()))

    async def received(self, who: str, ev: str, timeout: float = 10) -> dict[str, Any]:
        """The first event ``ev`` that client ``who`` got (waiting for it if needed)."""
        return await self.seen("recv", timeout, who=who, ev=ev)

    def not_received(self, who: str, ev: str) -> bool:
        return not self.node.seen("recv", who=who, ev=ev)


MODES = {"classic": {}, "sharded": {"sharded": True},
         "sharded-private": {"sharded": True, "subscription_mode": "dynamic-private"}}


@pytest.fixture(params=list(MODES))
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    key = "fleet-" + secrets.token_hex(6)
    options = MODES[request.param]
    mgr = fastio.AsyncNodeRedisManager(REDIS_URL, key=key, requests_timeout=3,
                                       redis_options={"client_name": key}, **options)
    sio = fastio.AsyncServer(client_manager=mgr)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        for room in (auth or {}).get("rooms") or ():
            await sio.enter_room(sid, room)
        sio.manager.get_socket(sid, "/").data["who"] = "py"

    @sio.on_server_side("sse")
    def sse(arg: Any) -> str:
        seen_sse.append(arg)
        return f"py-ack:{arg}"

    seen_sse: list[Any] = []
    sio.seen_sse = seen_sse  # type: ignore[attr-defined]
    server = await fastio.serve(sio, host="127.0.0.1", port=0)
    try:
        await mgr.ready("/")
        config = {"key": key, "redisUrl": REDIS_URL, "fastioUrl": f"http://127.0.0.1:{server.port}",
                  "timeoutMs": 50000}
        if options.get("sharded"):
            config["sharded"] = options.get("subscription_mode", "dynamic")
        async with NodeProcess("redis_fleet.mjs", config) as node:
            ready = await node.expect("ready", timeout=20)
            # Node does not wait for its subscriptions: wait until Redis counts both servers.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while await mgr.server_count() < 2 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            if options.get("sharded"):
                # ... nor for the room channels of its client's rooms (fastio's are checked too).
                for room, count in (("r1", 2), ("nodeonly", 1), ("pyonly", 1)):
                    channel = f"{key}#/#{room}#"
                    while (int((await mgr.redis.pubsub_shardnumsub(channel))[0][1]) < count
                           and loop.time() < deadline):
                        await asyncio.sleep(0.01)
            fleet = Fleet(sio, mgr, node, ready)
            fleet.mode = request.param
            yield fleet
    finally:
        await server.close()
        await mgr.aclose()


async def settle(fleet: Fleet) -> None:
    """One round trip through Redis both ways: what was published before has been received."""
    await fleet.command("emit", ev="mark", args=[])
    await fleet.received("py", "mark")
    await fleet.sio.emit("mark2")
    await fleet.received("node", "mark2")


async def test_emit_from_node_reaches_both(fleet: Fleet) -> None:
    await fleet.command("emit", ev="all", args=["x", {"k": 1}])
    await fleet.command("emit", to="pyonly", ev="room", args=[1])
    await fleet.command("emit", to="r1", **{"except": "pyonly"}, ev="exc", args=[2])
    await fleet.command("emit", ev="bin", args=[{"b64": base64.b64encode(b"\x01\x02\x03").decode()}])
    for who in ("node", "py"):
        assert (await fleet.received(who, "all"))["args"] == ["x", {"k": 1}]
        assert (await fleet.received(who, "bin"))["args"] == [{"b64": "AQID"}]
    assert (await fleet.received("py", "room"))["args"] == [1]
    assert (await fleet.received("node", "exc"))["args"] == [2]
    await settle(fleet)
    assert fleet.not_received("node", "room")
    assert fleet.not_received("py", "exc")


async def test_emit_from_fastio_reaches_both(fleet: Fleet) -> None:
    await fleet.sio.emit("all", {"a": [1, 2]})
    await fleet.sio.to("nodeonly").emit("room", "n")
    await fleet.sio.to("r1").except_("nodeonly").emit("exc", 3)
    await fleet.sio.emit("bin", b"\x00\xff")
    await fleet.sio.to("r1").volatile.emit("vol", 1)
    await fleet.sio.local.emit("loc", 1)
    for who in ("node", "py"):
        assert (await fleet.received(who, "all"))["args"] == [{"a": [1, 2]}]
        assert (await fleet.received(who, "bin"))["args"] == [{"b64": "AP8="}]
    assert (await fleet.received("node", "room"))["args"] == ["n"]
    assert (await fleet.received("py", "exc"))["args"] == [3]
    assert (await fleet.received("py", "loc"))["args"] == [1]
    assert (await fleet.received("py", "vol"))["args"] == [1]  # volatile: Node may drop it while writing
    await settle(fleet)
    assert fleet.not_received("py", "room")
    assert fleet.not_received("node", "exc")
    assert fleet.not_received("node", "loc")


async def test_fetch_sockets_both_ways(fleet: Fleet) -> None:
    fetched = (await fleet.command("fetch", "fetched", to="r1"))["sockets"]
    by_id = {s["id"]: s for s in fetched}
    assert set(by_id) == {fleet.node_id, fleet.py_id}
    assert set(by_id[fleet.py_id]["rooms"]) == {fleet.py_id, "r1", "pyonly"}
    assert by_id[fleet.py_id]["data"] == {"who": "py"}
    assert by_id[fleet.py_id]["auth"] == {"rooms": ["r1", "pyonly"]}
    sockets = await fleet.sio.in_("r1").fetch_sockets()
    assert {s.sid for s in sockets} == {fleet.node_id, fleet.py_id}
    remote = next(s for s in sockets if s.sid == fleet.node_id)
    assert remote.rooms == {fleet.node_id, "r1", "nodeonly"} and remote.data == {"who": "node"}
    assert {s.sid for s in await fleet.sio.in_("pyonly").fetch_sockets()} == {fleet.py_id}
    if fleet.mode == "classic":  # the sharded adapter has no allRooms request
        rooms = set((await fleet.command("allRooms", "allRooms"))["rooms"])
        assert {"pyonly", "nodeonly", "r1", fleet.py_id} <= rooms


async def test_server_side_emit_with_ack_both_ways(fleet: Fleet) -> None:
    replies = (await fleet.command("sseAck", "sseAck", ev="sse", args=["from-node"]))["replies"]
    assert replies == ["py-ack:from-node"]
    assert await fleet.sio.server_side_emit_with_ack("sse", "from-py", timeout=3) == ["node-ack:from-py"]
    assert await fleet.seen("sse", arg="from-py")
    await fleet.sio.server_side_emit("sse", "plain")
    assert await fleet.seen("sse", arg="plain")
    await fleet.command("sse", ev="sse", args=["no-ack"])
    await settle(fleet)
    assert fleet.sio.seen_sse == ["from-node", "no-ack"]  # type: ignore[attr-defined]


async def test_broadcast_with_ack_collects_from_both(fleet: Fleet) -> None:
    replies = (await fleet.command("ack", "acked", to="r1", ev="ackme", args=["p"]))["replies"]
    assert replies == ["node-ack", "py-ack"]
    answers = await fleet.sio.to("r1").timeout(3).emit_with_ack("ackme", "q")
    assert sorted(answers) == ["node-ack", "py-ack"]
    answers = await fleet.sio.to("nodeonly").timeout(3).emit_with_ack("ackme", "q")
    assert answers == ["node-ack"]
    # An emit with a callback to a client of the Node server (a BROADCAST request to its sid).
    assert await fleet.sio.call("ackme", "c", to=fleet.node_id, timeout=3) == "node-ack"


async def node_sees(fleet: Fleet, room: str, expected: set[str]) -> None:
    """Wait until Node's fetchSockets of ``room`` finds ``expected`` (a room operation published
    by fastio is applied by the Node server when it arrives there)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while {s["id"] for s in (await fleet.command("fetch", "fetched", to=room))["sockets"]} != expected:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_rooms_operations_both_ways(fleet: Fleet) -> None:
    await fleet.command("socketsJoin", to="r1", room="joined-by-node")
    await settle(fleet)
    assert "joined-by-node" in fleet.sio.manager.get_rooms(fleet.py_id, "/")
    await fleet.sio.in_("r1").sockets_join("joined-by-py")
    await node_sees(fleet, "joined-by-py", {fleet.node_id, fleet.py_id})
    if fleet.mode != "classic":
        # Both servers subscribe the room's channel when it gets members (Node without waiting).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        channel = f"{fleet.mgr.key}#/#joined-by-py#"
        while int((await fleet.mgr.redis.pubsub_shardnumsub(channel))[0][1]) < 2:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
    await fleet.command("emit", to="joined-by-py", ev="jp", args=[])
    assert (await fleet.received("node", "jp"))["args"] == []
    assert (await fleet.received("py", "jp"))["args"] == []
    await fleet.sio.in_("r1").sockets_leave("joined-by-py")
    await node_sees(fleet, "joined-by-py", set())
    await fleet.command("emit", to="joined-by-py", ev="jp2", args=[])
    await settle(fleet)
    assert fleet.not_received("node", "jp2") and fleet.not_received("py", "jp2")


async def test_emitter_reaches_fastio_clients(fleet: Fleet) -> None:
    if fleet.mode != "classic":
        pytest.skip("@socket.io/redis-emitter 5.1.0 publishes in the classic format only")
    await fleet.command("emitter", op="emit", ev="e-all", args=[1, "two"])
    await fleet.command("emitter", op="emit", to="pyonly", ev="e-room", args=[{"b64": "AQ=="}])
    await fleet.command("emitter", op="join", to="pyonly", room="e-joined")
    await settle(fleet)
    assert (await fleet.received("py", "e-all"))["args"] == [1, "two"]
    assert (await fleet.received("node", "e-all"))["args"] == [1, "two"]
    assert (await fleet.received("py", "e-room"))["args"] == [{"b64": "AQ=="}]
    assert "e-joined" in fleet.sio.manager.get_rooms(fleet.py_id, "/")
    await fleet.command("emitter", op="leave", to="pyonly", room="e-joined")
    await settle(fleet)
    assert "e-joined" not in fleet.sio.manager.get_rooms(fleet.py_id, "/")
    await fleet.command("emitter", op="disconnect", to="pyonly")
    assert (await fleet.seen("disconnected", who="py"))["reason"] == "io server disconnect"
    assert fleet.not_received("node", "e-room")


class GatedRedis:
    """Stands in for the publishing connection: every publish waits until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[str] = []

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.gate.wait()
        self.sent.append(channel)

    def pipeline(self, transaction: bool = False) -> "GatedPipeline":
        return GatedPipeline(self)

    async def aclose(self) -> None:
        pass


class GatedPipeline:
    def __init__(self, redis: GatedRedis) -> None:
        self.redis = redis
        self.channels: list[str] = []

    def publish(self, channel: str, payload: bytes) -> None:
        self.channels.append(channel)

    async def execute(self) -> None:
        await self.redis.gate.wait()
        self.redis.sent.extend(self.channels)


async def test_publish_queue_is_bounded() -> None:
    from fastio.socketio.operators import BroadcastFlags

    mgr = fastio.AsyncNodeRedisManager(REDIS_URL, key="q-" + secrets.token_hex(4), queue_size=2)
    real, mgr.redis = mgr.redis, GatedRedis()
    try:
        mgr.emit_now("a", None, "/")          # taken by the writer, which then waits on Redis
        await asyncio.sleep(0)
        mgr.emit_now("b", None, "/")
        mgr.emit_now("c", None, "/")          # the queue is full now
        mgr.emit_now("d", None, "/")          # sio.emit cannot wait: dropped and counted
        assert mgr.dropped == 1 and len(mgr.queue_snapshot()) == 2
        waiting = asyncio.ensure_future(mgr.broadcast("/", ["e"], ["r"], None, BroadcastFlags()))
        sio = fastio.AsyncServer(client_manager=mgr)
        emitting = asyncio.ensure_future(sio.emit("f", to="s"))
        for _ in range(5):
            await asyncio.sleep(0)
        # Awaited emits wait for room (backpressure): nothing more was queued.
        assert not waiting.done() and not emitting.done() and len(mgr.queue_snapshot()) == 2
        mgr.redis.gate.set()
        await asyncio.wait_for(asyncio.gather(waiting, emitting), 5)
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(mgr.redis.sent[-2:]) == [f"{mgr.key}#/#r#", f"{mgr.key}#/#s#"]
        assert len(mgr.redis.sent) == 5 and mgr.dropped == 1
    finally:
        await real.aclose()


async def test_resubscribes_after_losing_redis(fleet: Fleet) -> None:
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        # The manager's subscriber connection (named after the fleet's key) is killed by Redis.
        subscribers = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == fleet.mgr.key]
        assert len(subscribers) == 1
        await admin.client_kill_filter(_id=subscribers[0]["id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while fleet.mgr.namespaces["/"].subscribed.is_set() and loop.time() < deadline:
            await asyncio.sleep(0.01)  # no event tells the connection is gone before the listener sees it
        await asyncio.wait_for(fleet.mgr.ready("/"), 10)
        await fleet.command("emit", ev="after", args=[1])
        assert (await fleet.received("py", "after"))["args"] == [1]
    finally:
        await admin.aclose()
