"""Connection state recovery with the official socket.io-client (Node, 4.8.x).

tests/interop/node/sio_recovery_client.mjs closes its Engine.IO transport by force
(``socket.io.engine.close()``: no Socket.IO DISCONNECT), and its Manager reconnects.  The server
emits the packets the client will miss from its disconnect handler, before the client can be
back, so the test needs no timing.  socket.io-client hands the offset to listeners as the last
argument, so every replayed or live broadcast arrives as ``[value, offset]``.

``test_recovery_matches_node_server`` runs the same client scenario against Node's socket.io
server with ``connectionStateRecovery`` (tests/interop/node/sio_recovery_server.mjs) and checks
that the client sees the same thing from both.
"""
from __future__ import annotations

from typing import Any

import pytest

import fastio
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(60)

SCRIPT = "sio_recovery_client.mjs"
TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"]}


class Served:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def serve_sio():
    """Factory: ``srv = await serve_sio(sio)`` serves ``sio`` on port 0 until the test ends."""
    servers: list[Any] = []

    async def factory(sio: Any) -> Served:
        server = await fastio.serve(sio, "127.0.0.1", 0)
        servers.append(server)
        return Served(server)

    yield factory
    for server in servers:
        await server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build(log: list[Any], missed: bool = True, **recovery: Any) -> tuple[Any, Clock]:
    recovery.setdefault("max_disconnection_duration", 60)
    sio = fastio.AsyncServer(cors_allowed_origins="*", connection_state_recovery=recovery)
    clock = Clock()
    sio.recovery.clock = clock
    state = {"missed": missed}

    @sio.event
    async def connect(sid, environ, auth):
        log.append(("connect", sid, sio.is_recovered(sid)))
        if not sio.is_recovered(sid):
            await sio.enter_room(sid, "room")
            sio.socket_data(sid)["name"] = "ann"

    @sio.event
    async def disconnect(sid, reason):
        log.append(("disconnect", sid, reason))
        if state["missed"]:
            state["missed"] = False
            # what happens while the client is away
            await sio.emit("n", 1, to="room")
            await sio.emit("n", 2)
            await sio.emit("n", 3, to=sid)
            await sio.to("other").emit("n", "not for it")
            await sio.volatile.emit("n", "volatile")
            await sio.emit("n", 4, room="room", skip_sid="someone else")

    return sio, clock


async def start(srv: Any, mode: str) -> NodeProcess:
    proc = NodeProcess(SCRIPT, {"url": srv.url, "transports": TRANSPORTS[mode], "timeoutMs": 30000})
    await proc.start()
    return proc


def values(proc: NodeProcess) -> list[Any]:
    return [e["args"][0] for e in proc.seen("ev", type="n")]


@pytest.mark.parametrize("mode", ["websocket", "polling"])
async def test_node_client_recovers_missed_packets(serve_sio, mode):
    log: list[Any] = []
    sio, clock = build(log)
    srv = await serve_sio(sio)
    proc = await start(srv, mode)
    try:
        first = await proc.expect("connect")
        assert first["recovered"] is False
        sid = first["id"]
        await sio.emit("n", 0, to="room")
        ev = await proc.expect("ev", type="n")
        assert ev["args"][0] == 0 and isinstance(ev["args"][1], str)  # the offset, last
        await proc.send("drop")
        await proc.expect("disconnect")
        clock.now += 30
        for value in (1, 2, 3, 4):  # replayed, in order, before "connect"
            ev = await proc.expect("ev", type="n")
            assert ev["args"][0] == value and isinstance(ev["args"][1], str)
        again = await proc.expect("connect")
        assert again["recovered"] is True and again["id"] == sid
        assert log[-1] == ("connect", sid, True)
        assert log[-2][0] == "disconnect" and log[-2][2] in ("transport close", "client disconnect")
        assert set(sio.rooms(sid)) == {sid, "room"}
        assert sio.socket_data(sid) == {"name": "ann"}
        await sio.emit("n", 5, to="room")
        await proc.expect("ev", type="n")
        assert values(proc) == [0, 1, 2, 3, 4, 5]  # nothing lost, nothing twice
        offsets = [e["args"][-1] for e in proc.seen("ev", type="n")]
        assert len(set(offsets)) == 6
    finally:
        await proc.aclose()


async def test_node_client_fresh_session_after_voluntary_disconnect_or_expiry(serve_sio):
    log: list[Any] = []
    sio, clock = build(log, missed=False, max_disconnection_duration=5)
    srv = await serve_sio(sio)
    proc = await start(srv, "websocket")
    try:
        sid = (await proc.expect("connect"))["id"]
        await sio.emit("n", 0)
        await proc.expect("ev", type="n")
        # voluntary: socket.disconnect() then socket.connect() (it still sends its pid)
        await proc.send("disconnect")
        await proc.expect("disconnect", reason="io client disconnect")
        await proc.send("connect")
        again = await proc.expect("connect")
        assert again["recovered"] is False and again["id"] != sid
        sid = again["id"]
        await sio.emit("n", 10)
        await proc.expect("ev", type="n")
        await sio.emit("n", 11, skip_sid=sid)  # never this session's
        # lost, but back after max_disconnection_duration
        clock.now += 6
        await proc.send("drop")
        await proc.expect("disconnect")
        clock.now += 6
        late = await proc.expect("connect")
        assert late["recovered"] is False and late["id"] != sid
        # lost once more: socket.io-client still sends the offset of "10" (from the session
        # before), yet recovers, and gets nothing from before this session ("11")
        await proc.send("drop")
        await proc.expect("disconnect")
        back = await proc.expect("connect")
        assert back["recovered"] is True and back["id"] == late["id"]
        await sio.emit("n", 12)
        await proc.expect("ev", type="n")
        assert values(proc) == [0, 10, 12]
    finally:
        await proc.aclose()


def normalized(proc: NodeProcess, first_id: str) -> list[tuple[Any, ...]]:
    """What the client saw, without the ids and offsets that differ between servers."""
    out: list[tuple[Any, ...]] = []
    for e in proc.events:
        kind = e.get("event")
        if kind == "connect":
            out.append(("connect", e["recovered"], e["id"] == first_id))
        elif kind == "disconnect":
            out.append(("disconnect", e["reason"]))
        elif kind == "ev":
            args = e["args"]
            out.append(("ev", e["type"], args[0], len(args), isinstance(args[-1], str)))
    return out


async def recovery_scenario(url: str, emit_room: Any, mode: str) -> list[tuple[Any, ...]]:
    proc = NodeProcess(SCRIPT, {"url": url, "transports": TRANSPORTS[mode], "timeoutMs": 30000})
    await proc.start()
    try:
        first = await proc.expect("connect")
        await emit_room(0)
        await proc.expect("ev", type="n")
        await proc.send("drop")
        await proc.expect("disconnect")
        await proc.expect("connect")
        await emit_room(5)
        while (await proc.expect("ev", type="n"))["args"][0] != 5:
            pass
        return normalized(proc, first["id"])
    finally:
        await proc.aclose()


@pytest.mark.parametrize("mode", ["websocket", "polling"])
async def test_recovery_matches_node_server(serve_sio, mode):
    """The same client scenario against Node's socket.io server (connectionStateRecovery on)
    and fastio's: the client sees the same events, in the same order, with offsets in the same
    places, the same recovered flags and the same disconnect reasons."""
    log: list[Any] = []
    sio, _ = build(log)
    srv = await serve_sio(sio)

    async def fastio_emit(value: Any) -> None:
        await sio.emit("n", value, to="room")

    fastio_seen = await recovery_scenario(srv.url, fastio_emit, mode)
    async with NodeProcess("sio_recovery_server.mjs", {"timeoutMs": 30000}) as node:
        port = (await node.expect("listening"))["port"]

        async def node_emit(value: Any) -> None:
            await node.send("emit_room", value=value)

        node_seen = await recovery_scenario(f"http://127.0.0.1:{port}", node_emit, mode)
    assert fastio_seen == node_seen
    assert ("connect", True, True) in node_seen
