"""``sio.instrument()``: the Socket.IO Admin UI's protocol, checked with Socket.IO clients.

An admin client (fastio's AsyncClient, logged in as the UI does) watches a fastio server on the
native server while ordinary clients (python-socketio's AsyncClient) connect, join rooms, send
and receive events; then the admin's commands (join, leave, emit, _disconnect) act on them.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
import socketio as pysio

import fastio

AUTH = {"username": "admin", "password": "s3cret"}


class Watcher:
    """Every event an admin client receives, in order, with a way to wait for one."""

    def __init__(self) -> None:
        self.client = fastio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.changed = asyncio.Event()
        self.errors: list[Any] = []
        self.client.on("connect_error", self.errors.append, namespace="/admin")

        @self.client.on("*", namespace="/admin")
        def any_event(event: str, *args: Any) -> None:
            self.events.append((event, args))
            self.changed.set()

    async def connect(self, url: str, auth: Any = AUTH, **kwargs: Any) -> None:
        await self.client.connect(url, namespaces=["/admin"], auth=auth, wait_timeout=10, **kwargs)

    async def wait(self, event: str, pred: Callable[..., bool] = lambda *a: True, timeout: float = 10) -> tuple:
        """The args of the first ``event`` (received so far or next) for which ``pred(*args)``."""
        async def scan() -> tuple:
            start = 0
            while True:
                for name, args in self.events[start:]:
                    if name == event and pred(*args):
                        return args
                start = len(self.events)
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def make_server(**instrument: Any) -> tuple[fastio.AsyncServer, Any]:
    sio = fastio.AsyncServer(namespaces=["/", "/chat"])

    @sio.on("connect", namespace="/chat")
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, "lobby", namespace="/chat")

    @sio.on("hello", namespace="/chat")
    async def hello(sid, data):
        await sio.emit("hi", {"to": data}, to=sid, namespace="/chat")
        return "ok"

    instrument.setdefault("auth", AUTH)
    admin = sio.instrument(**instrument)
    return sio, admin


@pytest.fixture
async def served():
    """``srv, admin = await served(**instrument_options)``: an instrumented server on port 0."""
    running: list[tuple[Any, Any]] = []
    clients: list[Any] = []

    async def factory(**instrument: Any) -> tuple[str, fastio.AsyncServer, Any]:
        sio, admin = make_server(**instrument)
        server = await fastio.serve(sio, "127.0.0.1", 0)
        running.append((server, admin))
        return f"http://127.0.0.1:{server.port}", sio, admin

    factory.clients = clients  # type: ignore[attr-defined]
    yield factory
    for client in reversed(clients):
        await asyncio.wait_for(client.disconnect(), 5)
    for server, admin in reversed(running):
        await admin.shutdown()
        await asyncio.wait_for(server.close(), 10)


@pytest.mark.timeout(60)
async def test_admin_client_sees_sockets_rooms_and_events(served):
    url, sio, admin = await served(server_stats_interval=0.2)
    early = pysio.AsyncClient(reconnection=False)
    served.clients.append(early)
    await early.connect(url, namespaces=["/"], transports=["websocket"], wait_timeout=10)

    watcher = Watcher()
    served.clients.append(watcher.client)
    await watcher.connect(url)

    # First come the session id (to log in again without the password) and the features.
    session_id = (await watcher.wait("session"))[0]
    assert isinstance(session_id, str) and session_id
    (config,) = await watcher.wait("config")
    assert set(config["supportedFeatures"]) == {"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE",
                                                "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"}
    (stats,) = await watcher.wait("server_stats")
    assert stats["serverId"] and stats["hostname"] and isinstance(stats["pid"], int)
    assert stats["clientsCount"] == 2 and stats["pollingClientsCount"] == 1  # the admin polls first
    counts = {n["name"]: n["socketsCount"] for n in stats["namespaces"]}
    assert counts == {"/": 1, "/chat": 0, "/admin": 1}

    (sockets,) = await watcher.wait("all_sockets")
    by_nsp = {s["nsp"]: s for s in sockets}
    assert set(by_nsp) == {"/", "/admin"}
    early_sock = by_nsp["/"]
    assert early_sock["id"] == early.get_sid("/")
    assert early_sock["clientId"] == early.eio.sid
    assert early_sock["transport"] == "websocket"
    assert early_sock["rooms"] == [early_sock["id"]]
    hs = early_sock["handshake"]
    assert hs["address"] == "127.0.0.1" and hs["query"]["EIO"] == "4" and hs["query"]["transport"] == "websocket"
    assert hs["url"].startswith("/socket.io/") and hs["secure"] is False and hs["issued"] > 0
    assert "user-agent" in hs["headers"] or "host" in hs["headers"]

    # The admin client itself started on polling: its upgrade is reported at a stats tick.
    admin_sid = watcher.client.get_sid("/admin")
    assert by_nsp["/admin"]["id"] == admin_sid and by_nsp["/admin"]["transport"] == "polling"
    (update,) = await watcher.wait("socket_updated", lambda u: u["id"] == admin_sid)
    assert update == {"id": admin_sid, "nsp": "/admin", "transport": "websocket"}

    # A client connects to /chat, where the connect handler puts it in "lobby", then talks.
    chat = pysio.AsyncClient(reconnection=False)
    served.clients.append(chat)
    received: asyncio.Queue[Any] = asyncio.Queue()
    chat.on("hi", received.put_nowait, namespace="/chat")
    await chat.connect(url, namespaces=["/chat"], transports=["websocket"], wait_timeout=10)
    chat_sid = chat.get_sid("/chat")
    sock, when = await watcher.wait("socket_connected", lambda s, t: s["id"] == chat_sid)
    assert sock["nsp"] == "/chat" and sorted(sock["rooms"]) == sorted([chat_sid, "lobby"])
    assert when.endswith("Z") and "T" in when

    assert await chat.call("hello", "world", namespace="/chat", timeout=10) == "ok"
    assert await asyncio.wait_for(received.get(), 10) == {"to": "world"}
    nsp, sid, args, _ = await watcher.wait("event_received", lambda n, s, a, t: s == chat_sid)
    assert (nsp, args) == ("/chat", ["hello", "world"])
    nsp, sid, args, _ = await watcher.wait("event_sent", lambda n, s, a, t: s == chat_sid)
    assert (nsp, args) == ("/chat", ["hi", {"to": "world"}])

    # Rooms entered and left by the application.
    await sio.enter_room(chat_sid, "vip", namespace="/chat")
    assert (await watcher.wait("room_joined", lambda n, r, s, t: r == "vip"))[:3] == ("/chat", "vip", chat_sid)
    await sio.leave_room(chat_sid, "vip", namespace="/chat")
    assert (await watcher.wait("room_left", lambda n, r, s, t: r == "vip"))[:3] == ("/chat", "vip", chat_sid)

    # The periodic statistics count the connections and the packets.
    (stats,) = await watcher.wait("server_stats", lambda s: any(e["type"] == "packetsOut"
                                                                for e in s["aggregatedEvents"]))
    types = {e["type"] for e in stats["aggregatedEvents"]}
    assert {"packetsIn", "bytesIn", "packetsOut", "bytesOut"} <= types
    sent = sum(e["count"] for e in stats["aggregatedEvents"] if e["type"] == "bytesOut")
    assert sent >= len('42/chat,["hi",{"to":"world"}]')
    assert {n["name"]: n["socketsCount"] for n in stats["namespaces"]}["/chat"] == 1

    # A client that goes away is reported with its reason, after leaving its rooms.
    await chat.disconnect()
    nsp, sid, reason, _ = await watcher.wait("socket_disconnected", lambda n, s, r, t: s == chat_sid)
    # (python-socketio's client may close the connection before its DISCONNECT is read)
    assert nsp == "/chat" and reason in ("client disconnect", "transport close")
    assert await watcher.wait("room_left", lambda n, r, s, t: r == "lobby" and s == chat_sid)

    # The session id logs in again without the password.
    again = Watcher()
    served.clients.append(again.client)
    await again.connect(url, auth={"sessionId": session_id})
    await again.wait("config")


@pytest.mark.timeout(60)
async def test_admin_commands_join_leave_emit_disconnect(served):
    url, sio, admin = await served()
    watcher = Watcher()
    served.clients.append(watcher.client)
    await watcher.connect(url)
    await watcher.wait("all_sockets")

    a, b = pysio.AsyncClient(reconnection=False), pysio.AsyncClient(reconnection=False)
    served.clients += [a, b]
    got: asyncio.Queue[Any] = asyncio.Queue()
    a.on("news", lambda *args: got.put_nowait(("a", args)), namespace="/chat")
    b.on("news", lambda *args: got.put_nowait(("b", args)), namespace="/chat")
    for c in (a, b):
        await c.connect(url, namespaces=["/chat"], wait_timeout=10)
    sid_a, sid_b = a.get_sid("/chat"), b.get_sid("/chat")
    for sid in (sid_a, sid_b):
        await watcher.wait("socket_connected", lambda s, t, sid=sid: s["id"] == sid)

    # join: one socket (the filter is its id), then everyone in the namespace.
    await watcher.client.emit("join", ("/chat", "blue", sid_a), namespace="/admin")
    await watcher.wait("room_joined", lambda n, r, s, t: (r, s) == ("blue", sid_a))
    assert "blue" in sio.rooms(sid_a, namespace="/chat") and "blue" not in sio.rooms(sid_b, namespace="/chat")
    await watcher.client.emit("join", ("/chat", "green"), namespace="/admin")
    for sid in (sid_a, sid_b):
        await watcher.wait("room_joined", lambda n, r, s, t, sid=sid: (r, s) == ("green", sid))

    # emit to a room
    await watcher.client.emit("emit", ("/chat", "blue", "news", 1, "two"), namespace="/admin")
    assert await asyncio.wait_for(got.get(), 10) == ("a", (1, "two"))
    await watcher.wait("event_sent", lambda n, s, args, t: s == sid_a and args == ["news", 1, "two"])

    # leave
    await watcher.client.emit("leave", ("/chat", "green", sid_b), namespace="/admin")
    await watcher.wait("room_left", lambda n, r, s, t: (r, s) == ("green", sid_b))
    assert "green" not in sio.rooms(sid_b, namespace="/chat") and "green" in sio.rooms(sid_a, namespace="/chat")

    # _disconnect: the sockets of room "blue" only
    gone = asyncio.Event()
    a.on("disconnect", lambda *args: gone.set(), namespace="/chat")
    await watcher.client.emit("_disconnect", ("/chat", False, "blue"), namespace="/admin")
    await asyncio.wait_for(gone.wait(), 10)
    _, _, reason, _ = await watcher.wait("socket_disconnected", lambda n, s, r, t: s == sid_a)
    assert reason == "server disconnect"
    assert sio.manager.is_connected(sid_b, "/chat") and not sio.manager.is_connected(sid_a, "/chat")

    # _disconnect with close: the whole connection goes
    await watcher.client.emit("_disconnect", ("/chat", True, sid_b), namespace="/admin")
    await watcher.wait("socket_disconnected", lambda n, s, r, t: s == sid_b)
    await asyncio.wait_for(_until(lambda: b.eio.sid is None or not b.connected), 10)


async def _until(pred: Callable[[], bool]) -> None:
    while not pred():
        await asyncio.sleep(0.01)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth", [{"username": "admin", "password": "wrong"}, None,
                                  {"sessionId": "not-given-by-the-server"}])
async def test_wrong_credentials_are_refused(served, auth):
    url, sio, admin = await served()
    watcher = Watcher()
    with pytest.raises(fastio.exceptions.ConnectionError) as info:
        await watcher.connect(url, auth=auth)
    assert "/admin" in str(info.value)
    assert watcher.errors == [{"message": "invalid credentials"}]
    assert not sio.manager.sockets.get("/admin")


@pytest.mark.timeout(30)
async def test_read_only_production_mode(served):
    """Production mode reports statistics only; read_only refuses the commands."""
    url, sio, admin = await served(mode="production", read_only=True, server_stats_interval=0.1,
                                   server_id="eu-1", auth=lambda a: a == {"token": "t"})
    watcher = Watcher()
    served.clients.append(watcher.client)
    await watcher.connect(url, auth={"token": "t"})
    (config,) = await watcher.wait("config")
    assert config["supportedFeatures"] == ["AGGREGATED_EVENTS"]
    other = pysio.AsyncClient(reconnection=False)
    served.clients.append(other)
    await other.connect(url, namespaces=["/chat"], wait_timeout=10)
    (stats,) = await watcher.wait("server_stats", lambda s: s["clientsCount"] == 2)
    assert stats["serverId"] == "eu-1"
    await watcher.client.emit("join", ("/chat", "x"), namespace="/admin")
    await watcher.wait("server_stats", lambda s: s["clientsCount"] == 2)  # a round trip later
    assert sio.rooms(other.get_sid("/chat"), namespace="/chat") == [other.get_sid("/chat"), "lobby"]
    assert not {"all_sockets", "socket_connected", "room_joined", "event_received"} & set(watcher.names())


@pytest.mark.timeout(30)
async def test_async_auth_and_node_style_basic_auth(served):
    async def check(auth):
        await asyncio.sleep(0)
        return auth == {"key": 1}

    url, sio, admin = await served(auth=check)
    ok = Watcher()
    served.clients.append(ok.client)
    await ok.connect(url, auth={"key": 1})
    await ok.wait("config")

    url, sio, admin = await served(auth={"type": "basic", "username": "u", "password": "p"})
    ok = Watcher()
    served.clients.append(ok.client)
    await ok.connect(url, auth={"username": "u", "password": "p"})
    await ok.wait("config")
    with pytest.raises(fastio.exceptions.ConnectionError):
        await Watcher().connect(url, auth={"username": "u", "password": "x"})


def test_auth_must_be_given():
    sio = fastio.AsyncServer()
    with pytest.raises(ValueError):
        sio.instrument()
    with pytest.raises(ValueError):
        sio.instrument(auth=False, mode="staging")
    assert sio.admin is None and sio.manager.admin is None
    admin = sio.instrument(auth=False)
    assert sio.admin is admin and sio.manager.admin is admin
    admin.uninstrument()
    assert sio.admin is None and sio.manager.admin is None



@pytest.mark.timeout(30)
async def test_bcrypt_hash_of_the_npm_package(served):
    """The npm package's basic auth stores a bcrypt hash: checked with bcrypt when installed,
    and without it instrument() says what is missing."""
    hashed = "$2a$04$kfIzNeVtE7rFBDK6dElYZuI3DOL747DKIQQpSSDpZ3Is86l3i4dU6"  # bcryptjs: "pa55", cost 4
    auth = {"type": "basic", "username": "u", "password": hashed}
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="bcrypt"):
            fastio.AsyncServer().instrument(auth=auth)
        return
    url, sio, admin = await served(auth=auth)
    ok = Watcher()
    served.clients.append(ok.client)
    await ok.connect(url, auth={"username": "u", "password": "pa55"})
    await ok.wait("config")
    with pytest.raises(fastio.exceptions.ConnectionError):
        await Watcher().connect(url, auth={"username": "u", "password": hashed})
