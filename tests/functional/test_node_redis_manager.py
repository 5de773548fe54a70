"""Two fastio servers in one fleet with ``AsyncNodeRedisManager`` (the protocol of Node's
``@socket.io/redis-adapter``) on the Redis at 127.0.0.1:6379 (REDIS_URL overrides), with
python-socketio clients.  Each test uses its own random key."""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Any, AsyncIterator

import msgpack
import pytest
import redis.asyncio as aioredis
import socketio as pysio

import fastio
from fastio.socketio.operators import BroadcastTimeoutError

pytestmark = pytest.mark.timeout(30)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Pair:
    def __init__(self) -> None:
        self.key = "pair-" + secrets.token_hex(6)
        self.servers: list[tuple[fastio.AsyncServer, Any]] = []
        self.clients: list[pysio.AsyncClient] = []
        self.inboxes: list[asyncio.Queue[Any]] = []
        self.sse: list[Any] = []


MODES = {"classic": {}, "sharded": {"sharded": True},
         "sharded-private": {"sharded": True, "subscription_mode": "dynamic-private"},
         "sharded-static": {"sharded": True, "subscription_mode": "static"}}


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    p = Pair()
    options = MODES[getattr(request, "param", "classic")]
    try:
        for index in range(2):
            mgr = fastio.AsyncNodeRedisManager(REDIS_URL, key=p.key, requests_timeout=2, **options)
            sio = fastio.AsyncServer(client_manager=mgr)

            @sio.event
            async def connect(sid: str, environ: Any, auth: Any, sio: fastio.AsyncServer = sio) -> None:
                for room in auth["rooms"]:
                    await sio.enter_room(sid, room)

            @sio.on_server_side("sse")
            def sse(arg: Any, index: int = index) -> str:
                p.sse.append((index, arg))
                return f"{index}:{arg}"

            srv = await fastio.serve(sio, "127.0.0.1", 0)
            await mgr.ready("/")
            p.servers.append((sio, srv))
        for index, rooms in ((0, ["r", "a"]), (1, ["r", "b"])):
            c = pysio.AsyncClient(reconnection=False)
            inbox: asyncio.Queue[Any] = asyncio.Queue()
            c.on("*", lambda event, *args, inbox=inbox: inbox.put_nowait((event, list(args))))
            c.on("ask", lambda *args, index=index: f"answer-{index}")
            await c.connect(p.servers[index][1].url, auth={"rooms": rooms}, transports=["websocket"])
            p.clients.append(c)
            p.inboxes.append(inbox)
        yield p
    finally:
        for c in p.clients:
            await c.disconnect()
        for sio, srv in p.servers:
            await srv.close()
            await sio.manager.aclose()


async def next_event(inbox: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(inbox.get(), 10)


@pytest.mark.parametrize("pair", list(MODES), indirect=True)
async def test_broadcasts_rooms_and_requests_between_fastio_servers(pair: Pair) -> None:
    (sio0, _), (sio1, _) = pair.servers
    await sio0.to("b").emit("to-b", b"\x01", {"x": 1})
    assert await next_event(pair.inboxes[1]) == ("to-b", [b"\x01", {"x": 1}])
    await sio1.to("r").except_("a").emit("not-a")
    assert await next_event(pair.inboxes[1]) == ("not-a", [])
    await sio0.emit("all", 7)
    assert await next_event(pair.inboxes[0]) == ("all", [7])
    assert await next_event(pair.inboxes[1]) == ("all", [7])
    assert pair.inboxes[0].empty()  # "not-a" never reached client 0

    sids = {s.sid for s in await sio0.in_("r").fetch_sockets()}
    assert sids == {pair.clients[0].get_sid(), pair.clients[1].get_sid()}

    await sio0.in_("b").sockets_join("joined")
    # The other server applies the join when the request arrives (and, in the dynamic sharded
    # modes, then subscribes the room's channel): wait for both before emitting to the room.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while {s.sid for s in await sio0.in_("joined").fetch_sockets()} != {pair.clients[1].get_sid()}:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    mgr1 = sio1.manager
    if mgr1.sharded and mgr1.subscription_mode != "static":
        while not int((await mgr1.redis.pubsub_shardnumsub(f"{pair.key}#/#joined#"))[0][1]):
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
    await sio0.to("joined").emit("j")
    assert await next_event(pair.inboxes[1]) == ("j", [])

    assert await sio0.server_side_emit_with_ack("sse", "q", timeout=2) == ["1:q"]
    assert pair.sse == [(1, "q")]  # not the sender's own handler

    # An emit with a callback (and call) to a client of the other server.
    assert await sio0.call("ask", to=pair.clients[1].get_sid(), timeout=2) == "answer-1"
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await sio1.emit("ask", to=pair.clients[0].get_sid(), callback=got.set_result)
    assert await asyncio.wait_for(got, 5) == "answer-0"

    answers = await sio0.to("r").timeout(2).emit_with_ack("ask")
    assert sorted(answers) == ["answer-0", "answer-1"]

    await sio0.in_("b").disconnect_sockets()
    for _ in range(200):
        if not pair.clients[1].connected:
            break
        await asyncio.sleep(0.01)
    assert not pair.clients[1].connected
    assert {s.sid for s in await sio1.fetch_sockets()} == {pair.clients[0].get_sid()}


async def test_room_message_dropped_before_decoding(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    (sio0, _), _ = pair.servers
    publisher = aioredis.Redis.from_url(REDIS_URL)
    try:
        caplog.set_level(logging.ERROR)
        # Not msgpack at all: a node with no member of the room never looks at it.
        await publisher.publish(f"{pair.key}#/#nobody-here#", b"\xc1 not msgpack")
        await publisher.publish(f"{pair.key}#/#a#", msgpack.packb(
            ["other", {"type": 2, "data": ["ok", 1], "nsp": "/"}, {"rooms": ["a"], "except": [], "flags": {}}]))
        assert await next_event(pair.inboxes[0]) == ("ok", [1])
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # The same bytes on a room that has a member here are decoded (and fail).
        await publisher.publish(f"{pair.key}#/#a#", b"\xc1 not msgpack")
        await publisher.publish(f"{pair.key}#/#a#", msgpack.packb(
            ["other", {"type": 5, "data": ["ok2"]}, {"rooms": ["a"], "except": [], "flags": {}}]))
        assert await next_event(pair.inboxes[0]) == ("ok2", [])  # type 5 and no nsp: "/"
        assert [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await publisher.aclose()


async def test_sharded_room_channels_follow_the_rooms() -> None:
    key = "rooms-" + secrets.token_hex(6)
    mgr = fastio.AsyncNodeRedisManager(REDIS_URL, key=key, sharded=True)
    mgr.room_sweep_interval = 0.05
    sio = fastio.AsyncServer(client_manager=mgr)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        await sio.enter_room(sid, "lobby")

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    admin = aioredis.Redis.from_url(REDIS_URL)
    c = pysio.AsyncClient(reconnection=False)
    try:
        await mgr.ready("/")
        await c.connect(srv.url, transports=["websocket"])
        channel = f"{key}#/#lobby#"

        async def subscribers() -> int:
            return int((await admin.pubsub_shardnumsub(channel))[0][1])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await subscribers() != 1 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert await subscribers() == 1  # subscribed when the room got its first member
        await sio.leave_room(c.get_sid(), "lobby")
        deadline = loop.time() + 5
        while await subscribers() != 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert await subscribers() == 0  # unsubscribed by the sweep once empty
    finally:
        await c.disconnect()
        await srv.close()
        await mgr.aclose()
        await admin.aclose()


async def test_server_side_emit_with_ack_times_out_with_partial_answers(pair: Pair) -> None:
    (sio0, _), (sio1, _) = pair.servers
    # A third subscriber that never answers (as a server without a handler calling back).
    silent = aioredis.Redis.from_url(REDIS_URL)
    pubsub = silent.pubsub()
    await pubsub.subscribe(f"{pair.key}-request#/#")
    await pubsub.get_message(timeout=5)  # the subscription is confirmed
    try:
        with pytest.raises(BroadcastTimeoutError) as info:
            await sio0.server_side_emit_with_ack("sse", "slow", timeout=0.5)
        assert info.value.responses == ["1:slow"]
    finally:
        await pubsub.aclose()
        await silent.aclose()
