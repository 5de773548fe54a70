"""Node socket.io's server features in fastio, each exercised with the official socket.io-client
(Node, tests/interop/node/sio_client.mjs): event middleware and catch-alls, the broadcast
operators, broadcast acknowledgements, fetch_sockets and the socket operations, server-side
emits, dynamic namespaces and volatile packets."""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

import fastio
from fastio.socketio.operators import BroadcastTimeoutError

pytestmark = pytest.mark.timeout(60)


async def client(node_sio, srv, name: str, *, mode: str = "websocket", auth: Any = None,
                 nsp: str = "/", **config: Any):
    spec: dict[str, Any] = {"name": nsp, "nsp": nsp}
    if auth is not None:
        spec["auth"] = auth
    proc = await node_sio({"url": srv.url, "transports": ["polling"] if mode == "polling" else ["websocket"],
                           "sockets": [spec], **config}, name=name)
    return proc


async def connected(proc, nsp: str = "/") -> str:
    return (await proc.expect("connect", socket=nsp))["id"]


async def ask(proc, event: str, *args: Any, id: str, nsp: str = "/", timeout_ms: int | None = None) -> Any:
    extra = {"timeoutMs": timeout_ms} if timeout_ms else {}
    await proc.send("emit", socket=nsp, name=event, args=list(args), ack=True, id=id, **extra)
    reply = await proc.expect(("ack", "ack_error"), id=id)
    return reply["args"][0] if reply["event"] == "ack" else {"error": reply["error"]}


async def test_event_middleware_and_on_any(make_sio, serve_sio, node_sio, event_log):
    sio = make_sio()
    seen: list[tuple[str, str]] = []

    sio.on_any(lambda sid, event, *args: seen.append(("any", event)))

    def stamp(sid: str, event: str, args: list[Any]) -> None:
        seen.append(("mw1", event))
        args.append("stamped")

    async def gate(sid: str, event: str, args: list[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(("mw2", event))
        if event == "forbidden":
            raise PermissionError("not allowed")

    sio.use_events(stamp)
    sio.use_events(gate, on_error=lambda sid, exc: event_log.add("rejected", sid=sid, error=str(exc)))

    @sio.on("echo")
    def echo(sid: str, *args: Any) -> list[Any]:
        seen.append(("handler", "echo"))
        return list(args)

    @sio.on("forbidden")
    def forbidden(sid: str, *args: Any) -> str:  # never called: the middleware rejects it
        event_log.add("forbidden handler")
        return "no"

    srv = await serve_sio(sio)
    proc = await client(node_sio, srv, "c")
    sid = await connected(proc)
    assert await ask(proc, "echo", 1, id="e1") == [1, "stamped"]
    assert await ask(proc, "forbidden", id="f1", timeout_ms=300) == {"error": "operation has timed out"}
    assert await event_log.expect("rejected") == {"kind": "rejected", "sid": sid, "error": "not allowed"}
    assert not event_log.all("forbidden handler")
    # Node's order: the catch-all, then the middlewares in order, then the handler
    assert seen == [("any", "echo"), ("mw1", "echo"), ("mw2", "echo"), ("handler", "echo"),
                    ("any", "forbidden"), ("mw1", "forbidden"), ("mw2", "forbidden")]


async def test_operators_deliver_to_the_selection(make_sio, serve_sio, node_sio):
    sio = make_sio()
    outgoing: list[tuple[str, str, tuple[Any, ...]]] = []

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, auth["room"])
        sio.manager.get_socket(sid, "/").data["name"] = auth["name"]

    srv = await serve_sio(sio)
    procs = {}
    sids = {}
    for name, room in (("a", "red"), ("b", "red"), ("c", "blue")):
        procs[name] = await client(node_sio, srv, name, auth={"room": room, "name": name})
        sids[name] = await connected(procs[name])
    sio.on_any_outgoing(lambda sid, event, *args: outgoing.append((sid, event, args)))

    await sio.to("red").except_(sids["b"]).emit("one", 1, {"x": 2})          # a
    await sio.in_(["red", "blue"]).except_("blue").emit("two")                # a, b
    await sio.except_("red").emit("three", [3])                               # c
    await sio.emit("four", to="red", skip_sid=sids["a"])                      # b (keyword style)
    await sio.to("blue").to(sids["a"]).emit("five")                           # a, c
    await sio.of("/").local.compress(False).emit("six")                       # everyone
    for name in "abc":
        await procs[name].send("emit", name="done", args=[])
    got = {}
    for name in "abc":
        events = []
        while True:
            ev = await procs[name].expect("ev")
            if ev["type"] == "six":
                break
            events.append((ev["type"], ev["args"]))
        got[name] = events
    assert got == {
        "a": [("one", [1, {"x": 2}]), ("two", []), ("five", [])],
        "b": [("two", []), ("four", [])],
        "c": [("three", [[3]]), ("five", [])],
    }
    sent = sorted((sid, event) for sid, event, _ in outgoing)
    expected = [(sids["a"], "one"), (sids["a"], "two"), (sids["b"], "two"), (sids["c"], "three"),
                (sids["b"], "four"), (sids["a"], "five"), (sids["c"], "five")]
    expected += [(sids[n], "six") for n in "abc"]
    assert sent == sorted(expected)
    assert (sids["a"], "one", (1, {"x": 2})) in outgoing


async def test_broadcast_ack_answers_and_timeout(make_sio, serve_sio, node_sio, raw_ws):
    sio = make_sio()

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "room")

    srv = await serve_sio(sio)
    fast = await client(node_sio, srv, "fast", acks={"q": ["fast-answer", "ignored second"]})
    slow_mode = await client(node_sio, srv, "poll", mode="polling", acks={"q": [{"n": 2}]})
    await connected(fast)
    await connected(slow_mode)
    answers = await sio.timeout(5).to("room").emit_with_ack("q", 1)
    assert sorted(map(str, answers)) == sorted(["fast-answer", str({"n": 2})])
    # without a timeout it waits for every answer
    assert len(await sio.to("room").emit_with_ack("q", 2)) == 2
    # nobody selected: [] at once
    assert await sio.to("nobody").timeout(0.1).emit_with_ack("q") == []
    # python-socketio's call(to=room) returns the first answer (kept for compatibility)
    first = await sio.call("q", 4, to="room", timeout=5)
    assert first in (("fast-answer", "ignored second"), {"n": 2})
    # a client that does not answer (a raw WebSocket): the error carries the answers received
    mute = await raw_ws.open(srv.port)
    await mute.eio_open()
    await mute.sio_connect()
    with pytest.raises(BroadcastTimeoutError) as info:
        await sio.timeout(0.3).to("room").emit_with_ack("q", 3)
    assert str(info.value) == "operation has timed out"
    assert sorted(map(str, info.value.responses)) == sorted(["fast-answer", str({"n": 2})])
    assert isinstance(info.value, fastio.exceptions.TimeoutError)
    assert sio.manager.broadcast_acks == {}     # nothing left waiting
    # answers that arrive after the timeout are ignored
    assert (await mute.recv_event())[0] == "q"


async def test_fetch_sockets_and_socket_operations(make_sio, serve_sio, node_sio):
    sio = make_sio()
    chat = sio.of("/chat")

    async def identify(sid, environ, auth):
        await asyncio.sleep(0)
        sio.socket_data(sid, "/chat")["user"] = auth["user"]   # before the socket exists

    chat.use(identify)

    srv = await serve_sio(sio)
    a = await client(node_sio, srv, "a", nsp="/chat", auth={"user": "ann"}, query={"v": "1"})
    b = await client(node_sio, srv, "b", nsp="/chat", auth={"user": "bob"})
    sid_a = await connected(a, "/chat")
    sid_b = await connected(b, "/chat")

    sockets = {s.sid: s for s in await chat.fetch_sockets()}
    assert set(sockets) == {sid_a, sid_b}
    ann = sockets[sid_a]
    assert ann.id == sid_a and ann.namespace == "/chat"
    assert ann.rooms == {sid_a}
    assert ann.data == {"user": "ann"}
    assert ann.handshake["auth"] == {"user": "ann"}
    assert ann.handshake["query"]["v"] == "1" and ann.handshake["query"]["EIO"] == "4"
    assert ann.handshake["address"] == "127.0.0.1"
    assert isinstance(ann.handshake["issued"], int) and "host" in ann.handshake["headers"]
    ann.data["seen"] = True   # the socket's own dict: the change stays
    assert (await chat.in_(sid_a).fetch_sockets())[0].data == {"user": "ann", "seen": True}
    assert await sio.fetch_sockets() == []          # '/' has nobody

    await ann.join(["x", "y"])
    await chat.except_(sid_a).sockets_join("y")
    assert sorted(s.sid for s in await chat.in_("y").fetch_sockets()) == sorted([sid_a, sid_b])
    await chat.in_("y").sockets_leave("y")
    assert await chat.in_("y").fetch_sockets() == []
    assert sio.rooms(sid_a, "/chat") == [sid_a, "x"] or sorted(sio.rooms(sid_a, "/chat")) == sorted([sid_a, "x"])
    await ann.leave("x")
    await ann.emit("hi", "ann")
    assert (await a.expect("ev", socket="/chat"))["args"] == ["ann"]

    await chat.in_(sid_b).disconnect_sockets()
    assert (await b.expect("disconnect", socket="/chat"))["reason"] == "io server disconnect"
    await ann.disconnect(close=True)
    assert (await a.expect("disconnect", socket="/chat"))["reason"] == "io server disconnect"
    await a.expect("close")
    assert await chat.fetch_sockets() == []


async def test_server_side_emit_without_other_servers(make_sio):
    sio = make_sio()
    got = []

    @sio.on_server_side("hello")
    def hello(*args):
        got.append(args)
        return "hi back"

    await sio.server_side_emit("hello", 1, 2)
    assert got == []                       # no other server: it reaches nobody, not even itself
    assert await sio.server_side_emit_with_ack("hello", 1) == []
    assert await sio.of("/").timeout(1).fetch_sockets() == []
    # what a cluster manager calls when another server's emit arrives
    assert await sio.trigger_server_side_event("/", "hello", [3]) == "hi back"
    assert got == [(3,)]
    with pytest.raises(ValueError):
        await sio.server_side_emit("connect")


async def test_dynamic_namespaces(make_sio, serve_sio, node_sio, event_log):
    async def allowed(name: str, auth: Any) -> bool:
        await asyncio.sleep(0)
        return name.startswith("/team-") and auth.get("ok") is True

    sio = make_sio(namespaces=[allowed], cleanup_empty_child_namespaces=True)
    rooms = sio.of(re.compile(r"^/room-\d+$"))

    @rooms.on("connect")
    def room_connect(sid, environ, auth):
        event_log.add("room connect", sid=sid)

    @rooms.on("where")
    def where(sid):
        return "room"

    rooms.use(lambda sid, environ, auth: None if auth.get("ok") else (_ for _ in ()).throw(
        fastio.exceptions.ConnectionRefusedError("not ok")))

    @sio.on("where", namespace=allowed)
    def team_where(sid):
        return "team"

    srv = await serve_sio(sio)
    r1 = await client(node_sio, srv, "r1", nsp="/room-1", auth={"ok": True})
    await connected(r1, "/room-1")
    await event_log.expect("room connect")
    assert await ask(r1, "where", id="w1", nsp="/room-1") == "room"
    refused = await client(node_sio, srv, "r2", nsp="/room-2", auth={"ok": False})
    assert (await refused.expect("connect_error", socket="/room-2"))["message"] == "not ok"
    bad = await client(node_sio, srv, "bad", nsp="/room-x", auth={"ok": True})
    assert (await bad.expect("connect_error", socket="/room-x"))["message"] == "Invalid namespace"
    t = await client(node_sio, srv, "t", nsp="/team-a", auth={"ok": True})
    await connected(t, "/team-a")
    assert await ask(t, "where", id="w2", nsp="/team-a") == "team"
    assert sio.child_namespaces == {"/room-1": rooms.namespace, "/room-2": rooms.namespace, "/team-a": allowed}

    # the parent's operators reach every child
    await rooms.emit("all-rooms", 1)
    assert (await r1.expect("ev", socket="/room-1"))["type"] == "all-rooms"
    assert [s.namespace for s in await rooms.fetch_sockets()] == ["/room-1"]

    # the last socket of a child leaves: the child is forgotten
    await r1.send("disconnect", socket="/room-1")
    await r1.expect("disconnect", socket="/room-1")
    for _ in range(100):
        if "/room-1" not in sio.child_namespaces:
            break
        await asyncio.sleep(0.01)
    assert "/room-1" not in sio.child_namespaces and "/team-a" in sio.child_namespaces


async def test_volatile_is_dropped_behind_unsent_output(make_sio, serve_sio, node_sio):
    sio = make_sio()
    srv = await serve_sio(sio)
    proc = await client(node_sio, srv, "c")
    sid = await connected(proc)
    await sio.volatile.emit("v1")                      # the WebSocket can take it: delivered
    sio.manager.room_table.volatile_limit = 1000
    await sio.emit("big", "x" * 2000, to=sid)          # queued, not yet written (same iteration)
    await sio.volatile.to(sid).emit("v2")              # behind 2 kB of unsent output: dropped
    await sio.emit("after", to=sid)
    types = []
    while not types or types[-1] != "after":
        types.append((await proc.expect("ev"))["type"])
    assert types == ["v1", "big", "after"]


async def test_volatile_needs_a_waiting_poll(make_sio, serve_sio):
    import aiohttp

    sio = make_sio()
    srv = await serve_sio(sio)
    base = f"{srv.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            eio_sid = json.loads((await resp.read())[1:])["sid"]
        url = f"{base}&sid={eio_sid}"
        async with http.post(url, data=b"40") as resp:
            assert resp.status == 200
        async with http.get(url) as resp:
            assert (await resp.read()).startswith(b"40")
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        # no poll waiting: a volatile packet is dropped, an ordinary one is queued
        await sio.volatile.emit("dropped")
        await sio.to(sid).emit("queued")
        async with http.get(url) as resp:
            assert await resp.read() == b'42["queued"]'
        # a poll waiting: the volatile packet answers it
        poll = asyncio.ensure_future(http.get(url))
        conn = sio.eio.sockets[eio_sid]
        for _ in range(500):
            if conn.poll_waiter is not None:
                break
            await asyncio.sleep(0.01)
        assert conn.poll_waiter is not None
        await sio.volatile.emit("delivered")
        resp = await poll
        assert await resp.read() == b'42["delivered"]'
        resp.release()
