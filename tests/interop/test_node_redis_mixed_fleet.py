"""A mixed fleet on one Redis: two Node socket.io servers with ``@socket.io/redis-adapter`` 8.3
and two fastio servers with ``AsyncNodeRedisManager``, two socket.io-client (Node) clients on
each server.  Every operation is started from every one of the four servers and checked on all
eight clients (or from the other servers): broadcasts (to all, to a room, with except, binary),
broadcasts with acknowledgements, fetchSockets, socketsJoin/socketsLeave/disconnectSockets,
serverSideEmit with acks and allRooms; and ``@socket.io/redis-emitter`` reaches the clients of
every server (classic).  Classic and sharded mode.

Then a Redis restart: the fleet runs on a redis-server started by the test on a free port, which
is killed (by its PID) and started again on the same port; every server must subscribe again
and broadcasts must flow both ways.  What is lost while Redis is away (checked below):

* an emit of a fastio server reaches its own clients; its publish fails (twice) and is dropped,
  so the other servers' clients never get it;
* an emit of a Node server: node-redis keeps the PUBLISH in its offline queue and sends it once
  it has reconnected, so it reaches the servers that have subscribed again by then (which ones
  is a race, so this is not asserted).  Classic adapter: its own clients get it at once.
  Sharded adapter (socket.io-adapter's ClusterAdapter): its own clients get it only when the
  publish has succeeded, that is after Redis is back;
* whatever was published while a server was not subscribed is never delivered to it (Redis
  pub/sub keeps nothing).

The two fastio servers run in the test's process, each with its own manager (its own uid and
Redis connections): to the fleet they are two servers.  Each Node process runs one Node server
and the four clients of its server and of one fastio server (tests/interop/node/redis_fleet.mjs).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
from typing import Any, AsyncIterator

import pytest

import fastio
from fleetkit import until
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(60)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SERVERS = ("n1", "n2", "f1", "f2")
#: the clients: two on each server, named <server><a|b>
CLIENTS = tuple(f"{server}{half}" for server in SERVERS for half in "ab")
MODES = {"classic": {}, "sharded": {"sharded": True}}


class Server:
    """One server of the fleet, Node or fastio, driven the same way."""

    name: str

    async def emit(self, ev: str, *args: Any, to: str | None = None, exclude: str | None = None) -> None:
        raise NotImplementedError

    async def emit_with_ack(self, ev: str, *args: Any, to: str | None = None) -> list[Any]:
        raise NotImplementedError

    async def fetch(self, to: str | None = None) -> dict[str, set[str]]:
        """socket id -> rooms of the sockets ``to`` selects in the whole fleet."""
        raise NotImplementedError

    async def join(self, to: str, room: str) -> None:
        raise NotImplementedError

    async def leave(self, to: str, room: str) -> None:
        raise NotImplementedError

    async def disconnect(self, to: str) -> None:
        raise NotImplementedError

    async def sse_with_ack(self, arg: str) -> list[Any]:
        raise NotImplementedError

    async def all_rooms(self) -> set[str]:
        raise NotImplementedError


class NodeServer(Server):
    def __init__(self, name: str, proc: NodeProcess) -> None:
        self.name = name
        self.proc = proc

    async def command(self, cmd: str, reply: str = "done", **fields: Any) -> dict[str, Any]:
        return await self.proc.command(cmd, reply, **fields)

    @staticmethod
    def _wire(args: tuple[Any, ...]) -> list[Any]:
        return [{"b64": base64.b64encode(a).decode()} if isinstance(a, bytes) else a for a in args]

    async def emit(self, ev: str, *args: Any, to: str | None = None, exclude: str | None = None) -> None:
        fields: dict[str, Any] = {"to": to, "except": exclude}
        await self.command("emit", ev=ev, args=self._wire(args), **fields)

    async def emit_with_ack(self, ev: str, *args: Any, to: str | None = None) -> list[Any]:
        return (await self.command("ack", "acked", ev=ev, args=self._wire(args), to=to))["replies"]

    async def fetch(self, to: str | None = None) -> dict[str, set[str]]:
        sockets = (await self.command("fetch", "fetched", to=to))["sockets"]
        return {s["id"]: set(s["rooms"]) for s in sockets}

    async def join(self, to: str, room: str) -> None:
        await self.command("socketsJoin", to=to, room=room)

    async def leave(self, to: str, room: str) -> None:
        await self.command("socketsLeave", to=to, room=room)

    async def disconnect(self, to: str) -> None:
        await self.command("disconnectSockets", to=to, close=True)

    async def sse_with_ack(self, arg: str) -> list[Any]:
        return (await self.command("sseAck", "sseAck", ev="sse", args=[arg]))["replies"]

    async def all_rooms(self) -> set[str]:
        return set((await self.command("allRooms", "allRooms"))["rooms"])


class FastioServer(Server):
    def __init__(self, name: str, sio: fastio.AsyncServer, mgr: fastio.AsyncNodeRedisManager) -> None:
        self.name = name
        self.sio = sio
        self.mgr = mgr

    def _op(self, to: str | None = None, exclude: str | None = None) -> Any:
        op: Any = self.sio.of("/")
        if to is not None:
            op = op.to(to)
        if exclude is not None:
            op = op.except_(exclude)
        return op

    async def emit(self, ev: str, *args: Any, to: str | None = None, exclude: str | None = None) -> None:
        await self._op(to, exclude).emit(ev, *args)

    async def emit_with_ack(self, ev: str, *args: Any, to: str | None = None) -> list[Any]:
        return sorted(await self._op(to).timeout(3).emit_with_ack(ev, *args))

    async def fetch(self, to: str | None = None) -> dict[str, set[str]]:
        return {s.sid: set(s.rooms) for s in await self._op(to).fetch_sockets()}

    async def join(self, to: str, room: str) -> None:
        await self._op(to).sockets_join(room)

    async def leave(self, to: str, room: str) -> None:
        await self._op(to).sockets_leave(room)

    async def disconnect(self, to: str) -> None:
        await self._op(to).disconnect_sockets(close=True)

    async def sse_with_ack(self, arg: str) -> list[Any]:
        return await self.sio.of("/").server_side_emit_with_ack("sse", arg)

    async def all_rooms(self) -> set[str]:
        return await self.mgr.all_rooms("/")


class Fleet:
    def __init__(self, servers: dict[str, Server], hosts: dict[str, NodeProcess], ids: dict[str, str],
                 mode: str) -> None:
        self.servers = servers
        self.hosts = hosts          # client name -> the Node process that runs it
        self.ids = ids              # client name -> socket id
        self.mode = mode
        self.managers = [s.mgr for s in servers.values() if isinstance(s, FastioServer)]

    async def event(self, who: str, name: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The first event ``name`` about client ``who`` its Node process printed, whenever it
        came (the events of several clients interleave: ``expect``'s order cannot be used)."""
        return await self.hosts[who].first(name, timeout=timeout, who=who, **fields)

    async def received(self, who: str, ev: str, timeout: float = 10) -> list[Any]:
        """The arguments of the first event ``ev`` client ``who`` got (waiting for it)."""
        return (await self.event(who, "recv", timeout, ev=ev))["args"]  # type: ignore[no-any-return]

    async def all_received(self, ev: str, clients: tuple[str, ...] = CLIENTS) -> list[list[Any]]:
        return [await self.received(who, ev) for who in clients]

    def got(self, who: str, ev: str) -> bool:
        return bool(self.hosts[who].seen("recv", who=who, ev=ev))

    async def settle(self) -> None:
        """A broadcast from every server reached every client: what each server published
        before has arrived wherever it was going (Redis keeps each connection's order)."""
        mark = "mark-" + secrets.token_hex(3)
        for server in self.servers.values():
            await server.emit(f"{mark}-{server.name}")
        for server in self.servers.values():
            await self.all_received(f"{mark}-{server.name}")


def fastio_server(name: str, url: str, key: str, options: dict[str, Any],
                  logger: logging.Logger | None = None) -> FastioServer:
    mgr = fastio.AsyncNodeRedisManager(url, key=key, requests_timeout=3, logger=logger, **options)
    sio = fastio.AsyncServer(client_manager=mgr)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        for room in (auth or {}).get("rooms") or ():
            await sio.enter_room(sid, room)

    @sio.on_server_side("sse")
    def sse(arg: Any) -> str:
        return f"{name}-ack:{arg}"

    return FastioServer(name, sio, mgr)


@contextlib.asynccontextmanager
async def start_fleet(url: str, mode: str, logger: logging.Logger | None = None) -> AsyncIterator[Fleet]:
    key = "mixed-" + secrets.token_hex(6)
    options = MODES[mode]
    fast = {name: fastio_server(name, url, key, options, logger) for name in ("f1", "f2")}
    async with contextlib.AsyncExitStack() as stack:
        ports = {}
        for name, server in fast.items():
            native = await fastio.serve(server.sio, host="127.0.0.1", port=0)
            stack.push_async_callback(server.mgr.aclose)
            stack.push_async_callback(native.close)
            ports[name] = native.port
            await server.mgr.ready("/")
        procs: dict[str, NodeProcess] = {}
        for node, py in (("n1", "f1"), ("n2", "f2")):
            config: dict[str, Any] = {
                "key": key, "redisUrl": url, "name": node, "timeoutMs": 58000,
                "clients": [{"who": f"{host}{half}", "url": "self" if host == node else
                             f"http://127.0.0.1:{ports[host]}", "rooms": [f"{host}{half}", half]}
                            for host in (node, py) for half in "ab"]}
            if options.get("sharded"):
                config["sharded"] = "dynamic"
            procs[node] = await stack.enter_async_context(NodeProcess("redis_fleet.mjs", config, name=node))
            stack.push_async_callback(_quit, procs[node])  # runs first: the script ends by itself
        ids: dict[str, str] = {}
        hosts: dict[str, NodeProcess] = {}
        for node, proc in procs.items():
            ready = await proc.expect("ready", timeout=20)
            ids.update(ready["ids"])
            hosts.update({who: proc for who in ready["ids"]})
        servers: dict[str, Server] = {name: NodeServer(name, procs[name]) for name in ("n1", "n2")}
        servers.update(fast)
        fleet = Fleet(servers, hosts, ids, mode)
        # Node does not wait for its subscriptions: wait until Redis counts the four servers
        # (and, sharded, the four members of rooms "a" and "b" on their room channels).
        mgr = fast["f1"].mgr
        await until(lambda: _count_is(mgr.server_count(), 4), 10, "four servers")
        if options.get("sharded"):
            for room in ("a", "b"):
                await until(lambda: _shard_count_is(mgr, f"{key}#/#{room}#", 4), 10, f"room {room}")
        yield fleet


async def _quit(proc: NodeProcess) -> None:
    with contextlib.suppress(Exception):
        await proc.send("quit")
        await proc.expect("exit", timeout=2)


async def _count_is(count: Any, expected: int) -> bool:
    return await count == expected


async def _shard_count_is(mgr: fastio.AsyncNodeRedisManager, channel: str, expected: int) -> bool:
    return int((await mgr.redis.pubsub_shardnumsub(channel))[0][1]) >= expected


@pytest.fixture(params=list(MODES))
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    async with start_fleet(REDIS_URL, request.param) as fleet:
        yield fleet


async def test_broadcasts_from_every_server(fleet: Fleet) -> None:
    for origin in fleet.servers.values():
        o = origin.name
        await origin.emit(f"room-{o}", o, to="a")
        await origin.emit(f"exc-{o}", {"o": o}, exclude="a")
        await origin.emit(f"bin-{o}", b"\x00\x01" + o.encode())
        await origin.emit(f"all-{o}", o, [1, {"k": None}])
    for origin in fleet.servers.values():
        o = origin.name
        # The last emit of an origin reached everyone: the ones before it have arrived too.
        assert await fleet.all_received(f"all-{o}") == [[o, [1, {"k": None}]]] * 8
        assert await fleet.all_received(f"bin-{o}") == [[{"b64": base64.b64encode(b"\x00\x01" + o.encode())
                                                          .decode()}]] * 8
        for who in CLIENTS:
            assert fleet.got(who, f"room-{o}") == who.endswith("a"), (o, who)
            assert fleet.got(who, f"exc-{o}") == who.endswith("b"), (o, who)
        assert await fleet.received("f2b", f"exc-{o}") == [{"o": o}]


async def test_broadcast_with_ack_from_every_server(fleet: Fleet) -> None:
    for origin in fleet.servers.values():
        assert await origin.emit_with_ack("ackme", origin.name) == sorted(f"{who}-ack" for who in CLIENTS)
        assert await origin.emit_with_ack("ackme", 1, to="b") == sorted(f"{who}-ack" for who in CLIENTS
                                                                         if who.endswith("b"))


async def test_fetch_sockets_from_every_server(fleet: Fleet) -> None:
    expected = {fleet.ids[who]: {fleet.ids[who], who, who[-1]} for who in CLIENTS}
    for origin in fleet.servers.values():
        assert await origin.fetch() == expected, origin.name
        assert set(await origin.fetch("a")) == {fleet.ids[who] for who in CLIENTS if who.endswith("a")}


async def test_server_side_emit_with_ack_from_every_server(fleet: Fleet) -> None:
    for origin in fleet.servers.values():
        replies = await origin.sse_with_ack(f"from-{origin.name}")
        assert sorted(replies) == sorted(f"{other}-ack:from-{origin.name}" for other in SERVERS if other != origin.name)


@pytest.mark.parametrize("fleet", ["classic"], indirect=True)  # the sharded adapter has no allRooms
async def test_all_rooms_from_every_server(fleet: Fleet) -> None:
    expected = {"a", "b", *CLIENTS, *fleet.ids.values()}
    for origin in fleet.servers.values():
        assert await origin.all_rooms() == expected, origin.name


async def test_room_operations_from_every_server(fleet: Fleet) -> None:
    servers = list(fleet.servers.values())
    # Each server moves a client of the next server (Node -> Node -> fastio -> fastio -> Node).
    for i, origin in enumerate(servers):
        target = f"{servers[(i + 1) % 4].name}a"
        room = f"joined-by-{origin.name}"
        await origin.join(target, room)
        for checker in servers:  # Node applies its own operation when its message comes back
            await until(lambda: _fetch_is(checker, room, {fleet.ids[target]}), 5, f"{room} on {checker.name}")
        if fleet.mode != "classic":  # the room's channel: subscribed by the target's server
            mgr = fleet.managers[0]
            channel = f"{mgr.key}#/#{room}#"
            await until(lambda: _shard_count_is(mgr, channel, 1), 5, channel)
        await origin.emit(f"in-{room}", 1, to=room)
        assert await fleet.received(target, f"in-{room}") == [1]
        await origin.leave(target, room)
        for checker in servers:
            await until(lambda: _fetch_is(checker, room, set()), 5, f"{room} left on {checker.name}")
        await origin.emit(f"after-{room}", 1, to=room)
    await fleet.settle()
    assert not any(fleet.got(who, f"after-joined-by-{s.name}") for who in CLIENTS for s in servers)
    assert all(fleet.got(f"{servers[(i + 1) % 4].name}a", f"in-joined-by-{s.name}") for i, s in enumerate(servers))

    # disconnectSockets: each server disconnects the "b" client of the server before it.
    for i, origin in enumerate(servers):
        victim = f"{servers[i - 1].name}b"
        await origin.disconnect(victim)
        assert (await fleet.event(victim, "disconnected"))["reason"] == "io server disconnect"
    for origin in servers:
        await until(lambda: _count_is(_len(origin.fetch()), 4), 5, f"four sockets left on {origin.name}")
    assert {e["who"] for proc in {id(p): p for p in fleet.hosts.values()}.values()
            for e in proc.seen("disconnected")} == {f"{s}b" for s in SERVERS}


@pytest.mark.parametrize("fleet", ["classic"], indirect=True)  # the emitter 5.1 is classic only
async def test_emitter_reaches_every_server(fleet: Fleet) -> None:
    node = fleet.servers["n1"]
    assert isinstance(node, NodeServer)
    await node.command("emitter", op="emit", ev="e-all", args=[1, {"b64": "AQI="}])
    await node.command("emitter", op="emit", to="b", ev="e-b", args=["b"])
    await node.command("emitter", op="join", to="b", room="e-joined")
    await node.command("emitter", op="emit", ev="e-last", args=[])
    assert await fleet.all_received("e-all") == [[1, {"b64": "AQI="}]] * 8
    await fleet.all_received("e-last")
    for who in CLIENTS:
        assert fleet.got(who, "e-b") == who.endswith("b"), who
    expected = {fleet.ids[who] for who in CLIENTS if who.endswith("b")}
    for checker in fleet.servers.values():
        await until(lambda: _fetch_is(checker, "e-joined", expected), 5, f"e-joined on {checker.name}")


async def _fetch_is(server: Server, room: str, expected: set[str]) -> bool:
    return set(await server.fetch(room)) == expected


async def _len(coro: Any) -> int:
    return len(await coro)


# -- a Redis restart in the middle ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of this test on its own port (never the machine's), ended by its PID."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("this test needs redis-server on PATH", pytrace=False)
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                assert self.proc.poll() is None, "redis-server exited"
                assert loop.time() < deadline, "redis-server did not start"
                await asyncio.sleep(0.02)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            await asyncio.get_running_loop().run_in_executor(None, self.proc.wait)
        self.proc = None


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def subscribers_back(admin: Any, key: str, mode: str) -> bool:
    """Every server is subscribed: classic, four connections subscribed as a classic server is
    (one pattern, three channels); sharded, four subscribers of the main channel and of the
    channels of rooms "a" and "b" (one member on each server)."""
    try:
        if mode == "classic":
            clients = await admin.client_list(_type="pubsub")
            return sum(1 for c in clients if int(c.get("psub", 0)) == 1 and int(c.get("sub", 0)) == 3) == 4
        for channel in (f"{key}#/#", f"{key}#/#a#", f"{key}#/#b#"):
            if int((await admin.pubsub_shardnumsub(channel))[0][1]) != 4:
                return False
        return True
    except Exception:
        return False


@pytest.mark.parametrize("mode", list(MODES))
async def test_redis_restart_in_the_middle(mode: str) -> None:
    import redis.asyncio as aioredis

    redis = OwnRedis()
    await redis.start()
    logger = logging.getLogger("fastio.test.mixed-fleet")
    records = Records()
    logger.addHandler(records)
    admin = aioredis.Redis.from_url(redis.url)
    try:
        async with start_fleet(redis.url, mode, logger) as fleet:
            key = fleet.managers[0].key
            assert await subscribers_back(admin, key, mode)
            await fleet.settle()
            n1, f1 = fleet.servers["n1"], fleet.servers["f1"]

            await redis.kill()
            assert isinstance(f1, FastioServer)
            await until(lambda: _false(f1.mgr.namespaces["/"].subscribed.is_set()), 5, "f1 sees the loss")
            # And n1's publishing connection: until node-redis has seen the close, a publish is
            # written to the dead socket and fails (the sharded adapter then delivers locally at
            # once, the classic one leaves an unhandled rejection) instead of waiting in its queue.
            assert isinstance(n1, NodeServer)
            await n1.proc.first("redisError", conn="pub")
            await f1.emit("during-f1", 1)
            await n1.emit("during-n1", 2)
            for who in ("f1a", "f1b"):
                assert await fleet.received(who, "during-f1") == [1]
            if mode == "classic":  # the classic adapter delivers here first, then publishes
                for who in ("n1a", "n1b"):
                    assert await fleet.received(who, "during-n1") == [2]
            # fastio's publish failed twice: that broadcast is lost for the rest of the fleet.
            await until(lambda: _true(any("attempt 2" in m for m in records.messages)), 20,
                             "the failed publish")

            if mode != "classic":
                # The sharded adapter (socket.io-adapter's ClusterAdapter) delivers to its own
                # clients only once its publish succeeded: nothing while Redis is away.
                assert not fleet.got("n1a", "during-n1") and not fleet.got("n1b", "during-n1")
            await redis.start()  # the same port
            for server in fleet.servers.values():
                if isinstance(server, FastioServer):
                    await asyncio.wait_for(server.mgr.ready("/"), 15)
            await until(lambda: subscribers_back(admin, key, mode), 15, "every server subscribed again")
            # Broadcasts flow again both ways, from every server to every client.
            await fleet.settle()
            await fleet.settle()
            for who in CLIENTS:
                if not who.startswith("f1"):
                    assert not fleet.got(who, "during-f1"), who
            if mode != "classic":
                # node-redis kept the publish in its offline queue and sent it on reconnecting.
                for who in ("n1a", "n1b"):
                    assert await fleet.received(who, "during-n1") == [2]
            # Requests work again too.
            assert sorted(await f1.sse_with_ack("back")) == ["f2-ack:back", "n1-ack:back", "n2-ack:back"]
            assert sorted(await n1.sse_with_ack("back")) == ["f1-ack:back", "f2-ack:back", "n2-ack:back"]
    finally:
        logger.removeHandler(records)
        await admin.aclose()
        await redis.kill()


async def _true(value: bool) -> bool:
    return value


async def _false(value: bool) -> bool:
    return not value
