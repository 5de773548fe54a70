"""A fastio server and a Node socket.io server (``@socket.io/redis-adapter`` 8.3.0) in one Redis
fleet, with ``AsyncNodeRedisManager``; ``@socket.io/redis-emitter`` 5.1.0 publishes to it too.

tests/interop/node/redis_fleet.mjs runs the Node server, a socket.io-client on each server and
the emitter.  Redis must run at 127.0.0.1:6379 (REDIS_URL overrides); each test uses its own
random key, so tests never see each other's traffic.
"""
from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any, AsyncIterator

import pytest

import fastio
from fleetkit import (ScriptFleet, check_bounded_queue, check_broadcast_with_ack, check_emit_from_fastio,
                      check_emit_from_node, check_fetch_sockets, check_rooms_join_leave, check_server_side_emit,
                      settle, until)
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(60)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Fleet(ScriptFleet):
    def __init__(self, sio: fastio.AsyncServer, mgr: fastio.AsyncNodeRedisManager, node: NodeProcess,
                 ready: dict[str, Any]) -> None:
        super().__init__(sio, node, ready)
        self.mgr = mgr
        self.mode = "classic"


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


async def test_emit_from_node_reaches_both(fleet: Fleet) -> None:
    await check_emit_from_node(fleet)


async def test_emit_from_fastio_reaches_both(fleet: Fleet) -> None:
    await fleet.sio.to("r1").volatile.emit("vol", 1)
    await check_emit_from_fastio(fleet)
    assert (await fleet.received("py", "vol"))["args"] == [1]  # volatile: Node may drop it while writing


async def test_fetch_sockets_both_ways(fleet: Fleet) -> None:
    await check_fetch_sockets(fleet)
    if fleet.mode == "classic":  # the sharded adapter has no allRooms request
        rooms = set((await fleet.command("allRooms", "allRooms"))["rooms"])
        assert {"pyonly", "nodeonly", "r1", fleet.py_id} <= rooms


async def test_server_side_emit_with_ack_both_ways(fleet: Fleet) -> None:
    await check_server_side_emit(fleet, fleet.sio.seen_sse)  # type: ignore[attr-defined]


async def test_broadcast_with_ack_collects_from_both(fleet: Fleet) -> None:
    await check_broadcast_with_ack(fleet)


async def test_rooms_operations_both_ways(fleet: Fleet) -> None:
    async def subscribed() -> bool:
        channel = f"{fleet.mgr.key}#/#joined-by-py#"
        return int((await fleet.mgr.redis.pubsub_shardnumsub(channel))[0][1]) >= 2

    async def after_join() -> None:
        # Both servers subscribe the room's channel when it gets members (Node without waiting).
        await until(subscribed, 5, "both servers to subscribe the room's channel")

    await check_rooms_join_leave(fleet, after_join if fleet.mode != "classic" else None)
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
    mgr = fastio.AsyncNodeRedisManager(REDIS_URL, key="q-" + secrets.token_hex(4), queue_size=2)
    real, mgr.redis = mgr.redis, GatedRedis()
    try:
        await check_bounded_queue(mgr, mgr.redis.gate.set)
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
