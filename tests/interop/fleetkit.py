"""Plumbing shared by the tests of mixed fleets: fastio servers and a Node socket.io server on
one Redis (pub/sub with ``AsyncNodeRedisManager``, or a stream with
``AsyncNodeRedisStreamsManager``), driven through one Node script
(tests/interop/node/redis_fleet.mjs or streams_fleet.mjs).

Both scripts run a client "node" on the Node server (rooms r1, nodeonly) and a client "py" on
a fastio server (rooms r1, pyonly), print what the clients get as "recv" events and answer
the same commands (tests/interop/node/fleet_common.mjs); the checks below work on either fleet.
"""
from __future__ import annotations

import asyncio
import base64
import inspect
from typing import Any, Awaitable, Callable

import fastio
from nodeproc import NodeProcess


async def until(check: Callable[[], Any], timeout: float = 10, what: str = "condition",
                interval: float = 0.01) -> None:
    """Poll ``check`` (a function returning a bool or an awaitable of one) until it is true,
    failing after ``timeout`` seconds (no event tells the test sooner)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)


class ScriptFleet:
    """A fleet seen through its Node script: ``sio`` is the fastio server of client "py"."""

    def __init__(self, sio: fastio.AsyncServer, node: NodeProcess, ready: dict[str, Any]) -> None:
        self.sio = sio
        self.node = node
        self.node_id: str = ready["nodeId"]
        self.py_id: str = ready["pyId"]

    async def command(self, cmd: str, reply: str = "done", **fields: Any) -> dict[str, Any]:
        """Run command ``cmd`` in the script and return its ``reply`` event."""
        return await self.node.command(cmd, reply, **fields)

    async def seen(self, name: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """The first event ``name`` with ``fields`` the script printed, whenever it came (events
        of the clients interleave, so the order of ``expect`` cannot be relied on)."""
        return await self.node.first(name, timeout=timeout, **fields)

    async def received(self, who: str, ev: str, timeout: float = 10) -> dict[str, Any]:
        """The first event ``ev`` that client ``who`` got (waiting for it if needed)."""
        return await self.seen("recv", timeout, who=who, ev=ev)

    def not_received(self, who: str, ev: str) -> bool:
        """True when client ``who`` has not got ``ev`` (so far)."""
        return not self.node.seen("recv", who=who, ev=ev)

    def order(self, who: str) -> list[str]:
        """The names of the events client ``who`` got, in the order it got them."""
        return [e["ev"] for e in self.node.events if e.get("event") == "recv" and e.get("who") == who]


async def settle(fleet: ScriptFleet) -> None:
    """One round trip through Redis both ways: what was published before has been received."""
    await fleet.command("emit", ev="mark", args=[])
    await fleet.received("py", "mark")
    await fleet.sio.emit("mark2")
    await fleet.received("node", "mark2")


async def node_fetches(fleet: ScriptFleet, room: str, expected: set[str], what: str) -> None:
    """Wait until Node's fetchSockets of ``room`` finds ``expected`` (a room operation published
    by fastio is applied by the Node server when it arrives there)."""
    async def check() -> bool:
        fetched = (await fleet.command("fetch", "fetched", to=room))["sockets"]
        return {s["id"] for s in fetched} == expected
    await until(check, 5, what)


# -- checks both fleets run ---------------------------------------------------------------------


async def check_emit_from_node(fleet: ScriptFleet) -> None:
    """Broadcasts of the Node server (to all, to a room, with except, binary) reach the clients
    of both servers, and only those they are for."""
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


async def check_emit_from_fastio(fleet: ScriptFleet) -> None:
    """Broadcasts of the fastio server (to all, to a room, with except, binary, local) reach the
    clients of both servers, and only those they are for; what the caller emitted before has
    been received once this returns (it ends with :func:`settle`)."""
    await fleet.sio.emit("all", {"a": [1, 2]})
    await fleet.sio.to("nodeonly").emit("room", "n")
    await fleet.sio.to("r1").except_("nodeonly").emit("exc", 3)
    await fleet.sio.emit("bin", b"\x00\xff")
    await fleet.sio.local.emit("loc", 1)
    for who in ("node", "py"):
        assert (await fleet.received(who, "all"))["args"] == [{"a": [1, 2]}]
        assert (await fleet.received(who, "bin"))["args"] == [{"b64": "AP8="}]
    assert (await fleet.received("node", "room"))["args"] == ["n"]
    assert (await fleet.received("py", "exc"))["args"] == [3]
    assert (await fleet.received("py", "loc"))["args"] == [1]
    await settle(fleet)
    assert fleet.not_received("py", "room")
    assert fleet.not_received("node", "exc")
    assert fleet.not_received("node", "loc")


async def check_fetch_sockets(fleet: ScriptFleet) -> None:
    """fetchSockets of Node finds fastio's socket (rooms, data, auth) and fastio's finds Node's."""
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


async def check_server_side_emit(fleet: ScriptFleet, seen_sse: list[Any]) -> None:
    """serverSideEmit, with and without acks, both ways; ``seen_sse`` is what fastio's "sse"
    handler was called with."""
    replies = (await fleet.command("sseAck", "sseAck", ev="sse", args=["from-node"]))["replies"]
    assert replies == ["py-ack:from-node"]
    assert await fleet.sio.server_side_emit_with_ack("sse", "from-py", timeout=3) == ["node-ack:from-py"]
    assert await fleet.seen("sse", arg="from-py")
    await fleet.sio.server_side_emit("sse", "plain")
    assert await fleet.seen("sse", arg="plain")
    await fleet.command("sse", ev="sse", args=["no-ack"])
    await settle(fleet)
    assert seen_sse == ["from-node", "no-ack"]


async def check_broadcast_with_ack(fleet: ScriptFleet) -> None:
    """Broadcasts with acknowledgements collect the answers of the clients of both servers."""
    replies = (await fleet.command("ack", "acked", to="r1", ev="ackme", args=["p"]))["replies"]
    assert replies == ["node-ack", "py-ack"]
    answers = await fleet.sio.to("r1").timeout(3).emit_with_ack("ackme", "q")
    assert sorted(answers) == ["node-ack", "py-ack"]
    answers = await fleet.sio.to("nodeonly").timeout(3).emit_with_ack("ackme", "q")
    assert answers == ["node-ack"]
    # An emit with a callback to a client of the Node server (a request to its sid).
    assert await fleet.sio.call("ackme", "c", to=fleet.node_id, timeout=3) == "node-ack"


async def check_rooms_join_leave(fleet: ScriptFleet,
                                 after_join: Callable[[], Awaitable[None]] | None = None) -> None:
    """socketsJoin from Node reaches fastio's socket; sockets_join/sockets_leave from fastio
    reach Node's (its fetchSockets), and a broadcast to the joined room reaches both clients.
    ``after_join`` runs once Node has applied fastio's sockets_join."""
    await fleet.command("socketsJoin", to="r1", room="joined-by-node")
    await settle(fleet)
    assert "joined-by-node" in fleet.sio.manager.get_rooms(fleet.py_id, "/")
    await fleet.sio.in_("r1").sockets_join("joined-by-py")
    await node_fetches(fleet, "joined-by-py", {fleet.node_id, fleet.py_id}, "Node to apply sockets_join")
    if after_join is not None:
        await after_join()
    await fleet.command("emit", to="joined-by-py", ev="jp", args=[])
    assert (await fleet.received("node", "jp"))["args"] == []
    assert (await fleet.received("py", "jp"))["args"] == []
    await fleet.sio.in_("r1").sockets_leave("joined-by-py")
    await node_fetches(fleet, "joined-by-py", set(), "Node to apply sockets_leave")


async def check_bounded_queue(mgr: Any, open_gate: Callable[[], None]) -> None:
    """Drive ``mgr`` (queue_size=2, its Redis connection replaced by one that publishes only
    once ``open_gate`` was called) through a full publish queue: "a" is taken by the writer,
    "b" and "c" fill the queue, "d" (from a path that cannot wait) is dropped and counted; a
    broadcast "e" to room "r" and an emit "f" to room "s" wait for room (backpressure) and go
    once the gate opens.  The caller checks what was published."""
    from fastio.socketio.operators import BroadcastFlags

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
    open_gate()
    await asyncio.wait_for(asyncio.gather(waiting, emitting), 5)
    for _ in range(5):
        await asyncio.sleep(0)
