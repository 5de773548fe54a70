"""Connection state recovery (Node's ``connectionStateRecovery``) with fastio's AsyncClient.

A connection is broken from the server side without a Socket.IO DISCONNECT (the Engine.IO
session closed with "transport error", as when the network drops); the client reconnects on its
own, sends its ``pid`` and last offset, and gets its sid, rooms, data and every broadcast it
missed, in order and once.  The server's clock of the recovery store is replaced by a counter
the tests move, so expiry needs no sleeping.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastio
from fastio.socketio.recovery import ENTRY_OVERHEAD, RecoveryOptions, RecoveryStore

pytestmark = pytest.mark.timeout(30)

DELAY = 0.02


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Received(list):  # type: ignore[type-arg]
    """What a handler received, in order; ``until(n)`` waits for the n-th item."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def add(self, *args: Any) -> None:
        self.append(args)
        self.changed.set()

    async def until(self, n: int, timeout: float = 10) -> None:
        while len(self) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout)


def build(make_sio: Any, events: Received, serializer: str = "default", **recovery: Any) -> tuple[Any, Clock]:
    recovery.setdefault("max_disconnection_duration", 60)
    sio = make_sio(connection_state_recovery=recovery, serializer=serializer)
    clock = Clock()
    sio.recovery.clock = clock

    @sio.event
    async def connect(sid, environ, auth):
        recovered = sio.is_recovered(sid)
        events.add("connect", sid, recovered)
        if not recovered:
            await sio.enter_room(sid, "room")
            sio.socket_data(sid)["name"] = "ann"
            await sio.save_session(sid, {"user": 7})

    @sio.event
    async def disconnect(sid, reason):
        events.add("disconnect", sid, reason)

    return sio, clock


def new_client(got: Received, connected: asyncio.Queue, serializer: str = "default") -> fastio.AsyncClient:
    client = fastio.AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY, handle_sigint=False,
                                serializer=serializer)
    client.on("n", got.add)

    @client.event
    def connect():
        connected.put_nowait((client.get_sid(), client.recovered, list(got)))

    return client


def break_connection(sio: Any, sid: str) -> None:
    """The transport fails under the socket (no DISCONNECT packet either way)."""
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    sio.eio.sockets[eio_sid].close("transport error", False)


class Peer:
    """A client of the test server (:func:`new_client`): what it received (``got``) and, at each
    of its connections, (sid, recovered, what it had received by then) in ``connected``.
    ``async with Peer() as peer:`` disconnects it at the end."""

    def __init__(self, serializer: str = "default") -> None:
        self.got = Received()
        self.connected: asyncio.Queue = asyncio.Queue()
        self.client = new_client(self.got, self.connected, serializer)

    async def connect(self, url: str, transports: tuple[str, ...] = ("websocket",)) -> tuple[str, bool]:
        """Connect; return the sid and whether the connection was a recovery."""
        await self.client.connect(url, transports=list(transports))
        sid, recovered, _ = await self.connected.get()
        return sid, recovered

    async def __aenter__(self) -> "Peer":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.client.disconnect()

    async def reconnected(self) -> tuple[str, bool, list[Any]]:
        """The next connection (the client reconnects by itself): sid, recovered, and what it had
        received by the time its connect handler ran."""
        return await asyncio.wait_for(self.connected.get(), 10)


async def receive_then_lose(sio: Any, peer: Peer, sid: str, **to: Any) -> None:
    """Broadcast ``n`` 0 (``to`` as given), wait until ``peer`` got it (it then holds an
    offset), and break its connection."""
    await sio.emit("n", 0, **to)
    await peer.got.until(1)
    break_connection(sio, sid)


@pytest.mark.parametrize("transports,serializer", [(["websocket"], "default"), (["polling"], "default"),
                                                    (["websocket"], "msgpack")])
async def test_lost_connection_is_recovered_with_missed_packets(make_sio, serve_sio, transports, serializer):
    events = Received()
    sio, clock = build(make_sio, events, serializer)
    srv = await serve_sio(sio)
    async with Peer(serializer) as peer:
        sid, recovered = await peer.connect(srv.url, transports)
        assert not recovered and not peer.client.recovered
        await receive_then_lose(sio, peer, sid, to="room")
        assert events[-1] == ("disconnect", sid, "transport error")
        clock.now += 30  # within the window
        # meanwhile: to its room, to everyone, to its sid, and what it must not get
        await sio.emit("n", 1, to="room")
        await sio.emit("n", 2)
        await sio.emit("n", 3, to=sid)
        await sio.emit("n", {"blob": b"\x00bin"}, to="room")  # binary attachments are kept too
        await sio.to("other").emit("n", "not for it")
        await sio.except_("room").emit("n", "not for it")
        await sio.emit("n", "skipped", skip_sid=sid)
        await sio.volatile.emit("n", "volatile")
        await sio.emit("n", (4, "two args"), room=["room", "other"])
        sid2, recovered, before_connect = await peer.reconnected()
        assert (sid2, recovered) == (sid, True)
        assert peer.client.recovered and peer.client.is_recovered("/")
        # replayed before the connect handler ran, in order, the offsets taken off
        assert before_connect == [(0,), (1,), (2,), (3,), ({"blob": b"\x00bin"},), (4, "two args")]
        assert events[-1] == ("connect", sid, True)
        assert set(sio.rooms(sid)) == {sid, "room"}
        assert sio.socket_data(sid) == {"name": "ann"}
        assert await sio.get_session(sid) == {"user": 7}
        await sio.emit("n", 5, to="room")
        await peer.got.until(7)
        assert peer.got == [(0,), (1,), (2,), (3,), ({"blob": b"\x00bin"},), (4, "two args"), (5,)]


async def test_expired_session_gives_a_fresh_one(make_sio, serve_sio):
    events = Received()
    sio, clock = build(make_sio, events, max_disconnection_duration=5)
    srv = await serve_sio(sio)
    async with Peer() as peer:
        sid, _ = await peer.connect(srv.url)
        await sio.emit("n", 0)
        await peer.got.until(1)
        # The clock moves past the window before the client is back.
        clock.now += 6
        break_connection(sio, sid)
        clock.now += 6
        await sio.emit("n", 1)
        sid2, recovered, _ = await peer.reconnected()
        assert sid2 != sid and not recovered and not peer.client.recovered
        assert events[-1] == ("connect", sid2, False)
        assert sio.socket_data(sid2) == {"name": "ann"}  # set again by the handler: a fresh socket
        assert peer.got == [(0,)]  # nothing replayed
        assert sio.recovery.sessions == {}


async def test_voluntary_disconnect_keeps_nothing(make_sio, serve_sio):
    events = Received()
    sio, _ = build(make_sio, events)
    srv = await serve_sio(sio)
    peer = Peer()
    client = peer.client
    sid, _ = await peer.connect(srv.url)
    await client.disconnect()
    await events.until(2)
    assert events[-1] == ("disconnect", sid, "client disconnect")
    assert sio.recovery.sessions == {}
    # a server-side disconnect is voluntary too
    peer = Peer()
    client = peer.client
    sid, _ = await peer.connect(srv.url)
    await sio.disconnect(sid)
    assert sio.recovery.sessions == {}
    await client.disconnect()


@pytest.mark.parametrize("skip", [True, False])
async def test_middlewares_skipped_or_run_for_recovered_sockets(make_sio, serve_sio, skip):
    events = Received()
    sio, _ = build(make_sio, events, skip_middlewares=skip)
    seen: list[Any] = []

    def middleware(sid, environ, auth):
        seen.append((sid, sio.is_recovered(sid)))

    sio.use(middleware)
    srv = await serve_sio(sio)
    async with Peer() as peer:
        sid, _ = await peer.connect(srv.url)
        await receive_then_lose(sio, peer, sid)
        sid2, recovered, _ = await peer.reconnected()
        assert sid2 == sid and recovered
        first = seen[0]
        assert first[1] is False
        if skip:
            assert seen == [first]
        else:
            assert seen == [first, (sid, True)]
        assert sio.socket_data(sid) == {"name": "ann"}


async def test_broadcasts_while_a_recovered_socket_is_in_its_middleware_are_not_lost(make_sio, serve_sio):
    events = Received()
    sio, _ = build(make_sio, events, skip_middlewares=False)
    gate = asyncio.Event()
    waiting = Received()

    async def middleware(sid, environ, auth):
        if sio.is_recovered(sid):
            waiting.add(sid)
            await gate.wait()

    sio.use(middleware)
    srv = await serve_sio(sio)
    async with Peer() as peer:
        sid, _ = await peer.connect(srv.url)
        await receive_then_lose(sio, peer, sid, to="room")
        await sio.emit("n", 1, to="room")
        await waiting.until(1)  # the client is back, its middleware runs
        await sio.emit("n", 2, to="room")
        gate.set()
        sid2, recovered, before_connect = await peer.reconnected()
        assert (sid2, recovered) == (sid, True)
        assert before_connect == [(0,), (1,), (2,)]


async def test_connect_packet_carries_pid_and_acks_carry_no_offset(make_sio, serve_sio):
    events = Received()
    sio, _ = build(make_sio, events)
    srv = await serve_sio(sio)
    answers = Received()

    @sio.event
    async def ask(sid):
        answers.add(await sio.call("q", to=sid))

    async with Peer() as peer:
        peer.client.on("q", lambda *args: list(args))
        await peer.connect(srv.url)
        assert peer.client._pids["/"]  # the CONNECT answer had a pid
        await peer.client.emit("ask")
        await answers.until(1)
        assert answers == [([],)]  # the event with an ack id got no offset argument
        assert len(sio.recovery.log) == 0
        await sio.emit("n", 1)
        assert len(sio.recovery.log) == 1
        await sio.volatile.emit("n", 2)
        assert len(sio.recovery.log) == 1


async def test_offset_older_than_the_log_gives_a_fresh_session(make_sio, serve_sio):
    events = Received()
    sio, _ = build(make_sio, events, max_packets=2)
    srv = await serve_sio(sio)
    async with Peer() as peer:
        sid, _ = await peer.connect(srv.url)
        await receive_then_lose(sio, peer, sid)
        for i in range(1, 4):  # three missed, two kept: one is lost, so no recovery
            await sio.emit("n", i)
        assert len(sio.recovery.log) == 2
        sid2, recovered, _ = await peer.reconnected()
        assert sid2 != sid and not recovered
        assert peer.got == [(0,)]


# -- the store alone ------------------------------------------------------------------------------


class FakeEncoded:
    def __init__(self, n: int) -> None:
        self.message = b"x" * n
        self.attachments: list[bytes] = []


def test_store_bounds_packets_bytes_and_sessions():
    clock = Clock()
    entry = 2 * 100 + ENTRY_OVERHEAD
    store = RecoveryStore(RecoveryOptions(max_disconnection_duration=10, max_packets=100, max_bytes=5 * entry,
                                          max_sessions=2), clock)
    for _ in range(50):
        store.record("/", None, None, None, FakeEncoded(100))
    assert store.log_bytes == 5 * entry and len(store.log) == 5
    store.options.max_bytes = 1 << 30
    for _ in range(200):
        store.record("/", None, None, None, FakeEncoded(1))
    assert len(store.log) == 100
    for i in range(3):
        store.persist(f"p{i}", f"s{i}", "/", [f"s{i}"], {}, {}, 0)
    assert list(store.sessions) == ["p1", "p2"]
    clock.now += 11
    store.record("/", None, None, None, FakeEncoded(1))
    assert len(store.log) == 1  # the older entries passed the window
    assert store.restore("/", "p2", None) is None  # expired


def test_store_replay_filters_by_rooms_and_namespace():
    store = RecoveryStore(RecoveryOptions())
    start = store.next_seq - 1
    entries = {}
    for name, ns, to, exclude, skip in [
        ("all", "/", None, None, None),
        ("other-ns", "/chat", None, None, None),
        ("room", "/", "r", None, None),
        ("rooms", "/", ["x", "r"], None, None),
        ("not-room", "/", "x", None, None),
        ("except", "/", None, "r", None),
        ("skip", "/", None, None, "s1"),
        ("skip-other", "/", None, None, ["s2"]),
        ("own", "/", "s1", None, None),
    ]:
        enc = FakeEncoded(1)
        entries[id(enc)] = name
        store.record(ns, to, exclude, skip, enc)
    store.persist("p", "s1", "/", ["s1", "r"], {"d": 1}, None, start)
    assert store.restore("/chat", "p", None) is None  # another namespace's pid
    store.persist("p", "s1", "/", ["s1", "r"], {"d": 1}, None, start)
    session, after = store.restore("/", "p", None)  # no offset: from its connection on
    assert session.sid == "s1" and session.data == {"d": 1} and after == start
    missed = store.missed("/", session.rooms, after)
    assert [entries[id(e)] for e in missed] == ["all", "room", "rooms", "skip-other", "own"]
    assert store.restore("/", "p", None) is None  # once only
    store.persist("p", "s1", "/", ["s1", "r"], None, None, start)
    offset = "%s.%x" % (store.token, start + 3)  # it had "room"
    session, after = store.restore("/", "p", offset)
    assert [entries[id(e)] for e in store.missed("/", session.rooms, after)] == ["rooms", "skip-other", "own"]
    # an offset from before the socket connected (a client keeping an earlier session's) counts
    # from the connection on
    store.persist("p", "s1", "/", ["s1", "r"], None, None, start + 4)
    session, after = store.restore("/", "p", "%s.%x" % (store.token, start + 1))
    assert after == start + 4
    assert [entries[id(e)] for e in store.missed("/", session.rooms, after)] == ["skip-other", "own"]
    for bad in ("nope", "00000000.1", "%s.zz" % store.token, "%s.%x" % (store.token, store.next_seq), 5):
        store.persist("p", "s1", "/", ["s1"], None, None, start)
        assert store.restore("/", "p", bad) is None, bad


def test_options_from_node_names():
    opts = RecoveryOptions.from_option({"maxDisconnectionDuration": 2000, "skipMiddlewares": False})
    assert opts.max_disconnection_duration == 2 and opts.skip_middlewares is False
    assert RecoveryOptions.from_option(None) is None
    assert RecoveryOptions.from_option(True).max_disconnection_duration == 120
    with pytest.raises(ValueError):
        RecoveryOptions(max_disconnection_duration=0)


async def test_recovered_client_saw_what_a_connected_twin_saw(make_sio, serve_sio):
    """A client that loses its connection in the middle of a stream of broadcasts (to its rooms,
    to everyone, to other rooms, excluding rooms) ends with exactly the events of an identical
    client that stayed connected: nothing lost, nothing twice, same order."""
    import random

    events = Received()
    sio, _ = build(make_sio, events)

    @sio.event
    async def rooms(sid, names):
        for name in names:
            await sio.enter_room(sid, name)

    srv = await serve_sio(sio)
    rng = random.Random(7)
    peer, twin_peer = Peer(), Peer()
    (lost, client), (twin, other) = (peer.got, peer.client), (twin_peer.got, twin_peer.client)
    try:
        sid, _ = await peer.connect(srv.url)
        await twin_peer.connect(srv.url)
        for c in (client, other):
            await c.call("rooms", ["a", "b"])
        targets = [dict(to="a"), dict(to="b"), dict(), dict(to=["a", "z"]), dict(to="z"),
                   dict(to="room", skip_sid="nobody")]
        n = 0

        async def burst(count: int) -> None:
            nonlocal n
            for _ in range(count):
                target = rng.choice(targets)
                if rng.random() < 0.2:
                    await sio.except_("b").emit("n", n)  # neither gets these
                else:
                    await sio.emit("n", n, **target)
                n += 1

        await burst(20)
        await twin.until(1)
        before = len(lost)
        break_connection(sio, sid)
        await burst(40)  # no await inside suspends: all of it happens while the client is away
        sid2, recovered, at_connect = await peer.reconnected()
        assert sid2 == sid and recovered
        assert len(at_connect) > before  # some were replayed
        await burst(20)
        await sio.emit("n", "end")
        while not twin or twin[-1] != ("end",):
            await twin.until(len(twin) + 1)
        while not lost or lost[-1] != ("end",):
            await lost.until(len(lost) + 1)
        assert list(lost) == list(twin)
        assert len(set(lost)) == len(lost)
    finally:
        await client.disconnect()
        await other.disconnect()


def test_sync_server_takes_the_option():
    sio = fastio.Server(connection_state_recovery={"max_disconnection_duration": 3})
    try:
        assert sio.async_server.recovery_options.max_disconnection_duration == 3
        assert sio.is_recovered("unknown") is False
    finally:
        sio.shutdown()
