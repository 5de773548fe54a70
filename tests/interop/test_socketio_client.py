"""The official socket.io-client (Node, 4.8.x) against fastio's Socket.IO server.

Each test serves a fastio ``AsyncServer`` in-process on port 0 and drives
tests/interop/node/sio_client.mjs (one Manager, i.e. one Engine.IO
connection, with one socket per namespace). Binary values cross the JSON
lines as {"$bin": base64}.

What socket.io-client reports, as these tests expect it:

* a namespace disconnected by the server: "io server disconnect";
* ``socket.disconnect()``: "io client disconnect" (the server's handler
  gets "client disconnect");
* a refused CONNECT: ``connect_error`` with ``err.message`` and ``err.data``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastio
from clientkit import FINAL_TRANSPORT, MODES, answer_clients, client_config, from_wire, to_wire
from nodeproc import NodeProcesses, UnorderedNodeProcess
from eventlog import EventLog as Log

pytestmark = pytest.mark.timeout(60)

SCRIPT = "sio_client.mjs"
EVENT_TIMEOUT = 10.0


SioProc = UnorderedNodeProcess


def build_server(log: Log, **options: Any) -> Any:
    sio = fastio.AsyncServer(cors_allowed_origins="*", **options)

    @sio.event
    async def connect(sid, environ, auth):
        log.add("connect", ns="/", sid=sid, auth=auth)
        if isinstance(auth, dict) and "refuse" in auth:
            raise fastio.exceptions.ConnectionRefusedError(auth["refuse"], {"code": 42, "hint": "try again"})
        if isinstance(auth, dict) and auth.get("return_false"):
            return False

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", ns="/", sid=sid, reason=reason)

    answer_clients(sio, log, three="pair", echo="nested", shout=("ping_me", "pong_you"))

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return True

    @sio.event
    async def shout(sid, room, text):
        await sio.emit("shouted", {"from": sid, "text": text}, room=room, skip_sid=sid)
        return "ok"

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid, environ, auth):
        log.add("connect", ns="/chat", sid=sid, auth=auth)
        if isinstance(auth, dict) and "refuse_chat" in auth:
            raise fastio.exceptions.ConnectionRefusedError(auth["refuse_chat"], ["a", 1])

    @sio.on("disconnect", namespace="/chat")
    async def chat_disconnect(sid, reason):
        log.add("disconnect", ns="/chat", sid=sid, reason=reason)

    @sio.on("nested", namespace="/chat")
    async def chat_nested(sid, data):
        log.add("nested", ns="/chat", sid=sid, data=data)
        return data, {"ns": "/chat", "bin": b"\x00chat"}

    @sio.on("msg", namespace="/chat")
    async def chat_msg(sid, text):
        log.add("msg", ns="/chat", sid=sid, text=text)
        return "chat:" + text

    return sio


class Env:
    def __init__(self) -> None:
        self.log = Log()
        self.sio: Any = None
        self.server: Any = None
        self.procs = NodeProcesses()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def start(self, **options: Any) -> "Env":
        self.sio = build_server(self.log, **options)
        self.server = await fastio.serve(self.sio, "127.0.0.1", 0)
        return self

    async def client(self, mode: str = "websocket", **config: Any) -> SioProc:
        return await self.procs.start(SioProc(SCRIPT, client_config(self.url, mode, 40000, **config)))

    async def connected(self, mode: str = "websocket", ns: str = "/", **config: Any) -> tuple[SioProc, str]:
        """A client whose socket on ``ns`` is connected (and upgraded in "upgrade" mode)."""
        proc = await self.client(mode, **config)
        ev = await proc.expect("connect", socket=ns)
        if mode == "upgrade":
            await proc.expect("upgrade", transport="websocket")
        return proc, ev["id"]

    async def stop(self) -> None:
        await self.procs.aclose()
        if self.server is not None:
            await asyncio.wait_for(self.server.close(), 10)


@pytest.fixture
async def env(node_ready):
    e = Env()
    await e.start()
    yield e
    await e.stop()


# -----------------------------------------------------------------------------
# namespaces
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_namespaces_multiplexed_on_one_manager(env, mode):
    proc, root_sid = await env.connected(
        mode, sockets=[{"nsp": "/"}, {"nsp": "/chat"}, {"nsp": "/nowhere"}]
    )
    chat_sid = (await proc.expect("connect", socket="/chat"))["id"]
    err = await proc.expect("connect_error", socket="/nowhere")
    assert err["message"] == "Invalid namespace"
    assert (await env.log.expect("connect", ns="/"))["sid"] == root_sid
    assert (await env.log.expect("connect", ns="/chat"))["sid"] == chat_sid
    assert root_sid != chat_sid
    # one Engine.IO connection carries both namespaces
    assert len(env.sio.eio.sockets) == 1
    eio_sid = next(iter(env.sio.eio.sockets))
    assert env.sio.manager.eio_sid_from_sid(root_sid, "/") == eio_sid
    assert env.sio.manager.eio_sid_from_sid(chat_sid, "/chat") == eio_sid

    await proc.send("emit", socket="/chat", name="msg", args=["hello"], ack=True, id=1)
    assert (await proc.expect("ack", id=1))["args"] == ["chat:hello"]
    await proc.send("emit", socket="/", name="add", args=[1, 2], ack=True, id=2)
    assert (await proc.expect("ack", id=2))["args"] == [3]
    await env.log.expect("msg", ns="/chat", sid=chat_sid, text="hello")

    await env.sio.emit("news", "to chat", namespace="/chat")
    await env.sio.emit("news", "to root", namespace="/")
    assert (await proc.expect("ev", socket="/chat", type="news"))["args"] == ["to chat"]
    assert (await proc.expect("ev", socket="/", type="news"))["args"] == ["to root"]
    assert not proc.seen("ev", socket="/nowhere")
    assert env.sio.transport(root_sid) == FINAL_TRANSPORT[mode]


# -----------------------------------------------------------------------------
# auth and rejection
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_auth_payload_reaches_connect(env, mode):
    auth = {"token": "abc", "n": 1, "list": [1, "two"], "nested": {"x": None}}
    proc, sid = await env.connected(mode, sockets=[{"nsp": "/", "auth": auth}, {"nsp": "/chat"}])
    ev = await env.log.expect("connect", ns="/", sid=sid)
    assert ev["auth"] == auth
    await proc.expect("connect", socket="/chat")
    # socket.io-client sends no auth object -> the handler gets None
    assert (await env.log.expect("connect", ns="/chat"))["auth"] is None


@pytest.mark.parametrize("mode", MODES)
async def test_rejection_with_data(env, mode):
    proc = await env.client(mode, sockets=[{"nsp": "/", "auth": {"refuse": "not allowed"}}])
    err = await proc.expect("connect_error", socket="/")
    assert err["message"] == "not allowed"
    assert err["data"] == {"code": 42, "hint": "try again"}
    assert not proc.seen("connect")
    await env.log.expect("connect", ns="/")
    assert not env.log.all("disconnect")


async def test_rejection_by_returning_false_and_per_namespace(env):
    proc = await env.client(
        "websocket",
        sockets=[
            {"name": "bad", "nsp": "/", "auth": {"return_false": True}},
        ],
    )
    err = await proc.expect("connect_error", socket="bad")
    assert err["message"] == "Connection rejected by server"
    assert err["data"] is None

    # a namespace can refuse while another one on the same connection is fine
    proc2, _ = await env.connected(
        "websocket", sockets=[{"nsp": "/"}, {"nsp": "/chat", "auth": {"refuse_chat": "chat closed"}}]
    )
    err = await proc2.expect("connect_error", socket="/chat")
    assert err["message"] == "chat closed"
    assert err["data"] == ["a", 1]
    await proc2.send("emit", name="add", args=[2, 2], ack=True, id="after")
    assert (await proc2.expect("ack", id="after"))["args"] == [4]


# -----------------------------------------------------------------------------
# acknowledgements
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_acks_both_directions(env, mode):
    proc, sid = await env.connected(mode, acks={"question": ["answer", 42], "empty": []})
    # client -> server: emitWithAck resolves with the handler's return value
    await proc.send("emit", name="add", args=[40, 2], ack=True, id="a1")
    assert (await proc.expect("ack", id="a1"))["args"] == [42]
    # a tuple return value gives several ack arguments (callback form)
    await proc.send("emit", name="pair", args=["first"], ack=True, callback=True, id="a2")
    assert (await proc.expect("ack", id="a2"))["args"] == ["first", "second", {"third": 3}]
    # with socket.timeout() the answer comes in time
    await proc.send("emit", name="add", args=[1, 1], ack=True, timeoutMs=5000, id="a3")
    assert (await proc.expect("ack", id="a3"))["args"] == [2]

    # server -> client: sio.call gets the client's ack callback arguments
    assert await env.sio.call("question", {"q": "?"}, to=sid, timeout=5) == ("answer", 42)
    assert (await proc.expect("ev", type="question"))["acked"] is True
    assert await env.sio.call("empty", to=sid, timeout=5) is None
    # an echoed ack with one argument
    assert await env.sio.call("echo_me", {"v": [1, 2]}, to=sid, timeout=5) == {"v": [1, 2]}

    # sio.emit(callback=...)
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    await env.sio.emit("echo_me", ("x", 1), to=sid, callback=lambda *a: got.set_result(a))
    assert await asyncio.wait_for(got, 5) == ("x", 1)


async def test_emit_without_ack_and_server_reply(env):
    proc, sid = await env.connected("websocket")
    await proc.send("emit", name="ping_me", args=["hello"], id="e1")
    await proc.expect("emitted", id="e1")
    await env.log.expect("ping_me", sid=sid, text="hello")
    ev = await proc.expect("ev", type="pong_you")
    assert ev["args"] == ["HELLO"] and ev["acked"] is False


# -----------------------------------------------------------------------------
# binary
# -----------------------------------------------------------------------------

NESTED = {
    "name": "photo",
    "blob": bytes(range(256)),
    "parts": [b"\x00", {"deep": b"\xff" * 2000, "n": 2}, [b"x", "y"]],
    "empty": b"",
}


@pytest.mark.parametrize("mode", MODES)
async def test_nested_binary_both_directions(env, mode):
    await nested_binary_round_trips(env, mode)


async def nested_binary_round_trips(env: Env, mode: str, **client_config: Any) -> None:
    """Binary at several depths both ways: events, acks, and a server call() answered with it."""
    proc, sid = await env.connected(mode, **client_config)
    # client -> server (Buffers inside objects and arrays); the ack echoes it back
    await proc.send("emit", name="nested", args=[to_wire(NESTED)], ack=True, id="b1")
    back = await proc.expect("ack", id="b1")
    seen = await env.log.expect("nested", sid=sid)
    assert seen["data"] == NESTED
    assert isinstance(seen["data"]["parts"][1]["deep"], bytes)
    assert from_wire(back["args"]) == [NESTED]

    # server -> client as an event, binary at several depths and arguments
    await env.sio.emit("files", (NESTED, [b"\x01\x02", {"b": b"\x03"}]), to=sid)
    ev = await proc.expect("ev", type="files")
    assert from_wire(ev["args"]) == [NESTED, [b"\x01\x02", {"b": b"\x03"}]]

    # server -> client with an ack carrying the binary back (client echoes)
    payload = {"img": b"\x89PNG\r\n\x1a\n" * 512, "list": [b"a", b"b"]}
    assert await env.sio.call("echo_bin", payload, to=sid, timeout=5) == payload


# -----------------------------------------------------------------------------
# rooms
# -----------------------------------------------------------------------------


async def test_room_broadcast_with_skip_sid(env):
    clients = []
    for mode in ("websocket", "polling", "upgrade"):
        clients.append(await env.connected(mode))
    for i, (proc, _) in enumerate(clients):
        await proc.send("emit", name="join", args=["room1"], ack=True, id=f"j{i}")
        await proc.expect("ack", id=f"j{i}")
    (a, sa), (b, sb), (c, sc) = clients

    await env.sio.emit("news", {"n": 1}, room="room1", skip_sid=sa)
    for proc in (b, c):
        assert (await proc.expect("ev", type="news"))["args"] == [{"n": 1}]
    # per-connection order: the marker arriving first proves "a" got no news
    await env.sio.emit("marker", 1, to=sa)
    await a.expect("ev", type="marker")
    assert not a.seen("ev", type="news")

    # a client's broadcast skips the sender
    await a.send("emit", name="shout", args=["room1", "hi"], ack=True, id="s1")
    assert (await a.expect("ack", id="s1"))["args"] == ["ok"]
    for proc in (b, c):
        assert (await proc.expect("ev", type="shouted"))["args"] == [{"from": sa, "text": "hi"}]
    await env.sio.emit("marker", 2, to=sa)
    await a.expect("ev", type="marker", args=[2])
    assert not a.seen("ev", type="shouted")

    # skip_sid as a list
    await env.sio.emit("news", {"n": 2}, room="room1", skip_sid=[sa, sb])
    assert (await c.expect("ev", type="news"))["args"] == [{"n": 2}]
    await env.sio.emit("marker", 3, room="room1")
    for proc in (a, b, c):
        await proc.expect("ev", type="marker", args=[3])
    assert len(b.seen("ev", type="news")) == 1
    assert not a.seen("ev", type="news")


# -----------------------------------------------------------------------------
# transports
# -----------------------------------------------------------------------------


async def test_polling_only(env):
    proc, sid = await env.connected("polling")
    opened = await proc.expect("open")
    assert opened["transport"] == "polling"
    await proc.send("emit", name="add", args=[1, 2], ack=True, id=1)
    await proc.expect("ack", id=1)
    assert env.sio.transport(sid) == "polling"
    await proc.send("state")
    assert (await proc.expect("state"))["transport"] == "polling"
    assert not proc.seen("upgrade")


async def test_websocket_only(env):
    proc, sid = await env.connected("websocket")
    assert (await proc.expect("open"))["transport"] == "websocket"
    assert env.sio.transport(sid) == "websocket"
    await proc.send("emit", name="add", args=[1, 2], ack=True, id=1)
    await proc.expect("ack", id=1)


async def test_upgrade(env):
    proc, sid = await env.connected("upgrade", emitOnConnect=[{"socket": "/", "name": "add", "args": [5, 5], "ack": True, "id": "early"}])
    assert (await proc.expect("open"))["transport"] == "polling"
    assert (await proc.expect("ack", id="early"))["args"] == [10]
    # after the upgrade, traffic flows over the WebSocket both ways
    for i in range(5):
        await proc.send("emit", name="add", args=[i, i], ack=True, id=f"u{i}")
        assert (await proc.expect("ack", id=f"u{i}"))["args"] == [2 * i]
    assert env.sio.transport(sid) == "websocket"
    await env.sio.emit("news", "after upgrade", to=sid)
    assert (await proc.expect("ev", type="news"))["args"] == ["after upgrade"]
    await proc.send("state")
    assert (await proc.expect("state"))["transport"] == "websocket"


# -----------------------------------------------------------------------------
# disconnects
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_server_side_disconnect(env, mode):
    proc, sid = await env.connected(mode, sockets=[{"nsp": "/"}, {"nsp": "/chat"}])
    chat_sid = (await proc.expect("connect", socket="/chat"))["id"]
    # one namespace only: the other stays usable
    await env.sio.disconnect(chat_sid, namespace="/chat")
    assert (await proc.expect("disconnect", socket="/chat"))["reason"] == "io server disconnect"
    assert (await env.log.expect("disconnect", ns="/chat", sid=chat_sid))["reason"] == "server disconnect"
    await proc.send("emit", name="add", args=[3, 4], ack=True, id="still")
    assert (await proc.expect("ack", id="still"))["args"] == [7]
    # the client may come back to the namespace on the same connection
    await proc.send("connect", socket="/chat")
    again = (await proc.expect("connect", socket="/chat"))["id"]
    assert again != chat_sid
    assert (await env.log.expect("connect", ns="/chat", sid=again))
    await proc.send("emit", socket="/chat", name="msg", args=["back"], ack=True, id="back")
    assert (await proc.expect("ack", id="back"))["args"] == ["chat:back"]

    await env.sio.disconnect(sid)
    assert (await proc.expect("disconnect", socket="/"))["reason"] == "io server disconnect"
    assert (await env.log.expect("disconnect", ns="/", sid=sid))["reason"] == "server disconnect"
    assert env.sio.manager.get_socket(sid, "/") is None


@pytest.mark.parametrize("mode", MODES)
async def test_client_side_disconnect(env, mode):
    proc, sid = await env.connected(mode, sockets=[{"nsp": "/"}, {"nsp": "/chat"}])
    chat_sid = (await proc.expect("connect", socket="/chat"))["id"]
    await proc.send("disconnect", socket="/chat")
    assert (await proc.expect("disconnect", socket="/chat"))["reason"] == "io client disconnect"
    assert (await env.log.expect("disconnect", ns="/chat", sid=chat_sid))["reason"] == "client disconnect"
    # "/" is unaffected
    await proc.send("emit", name="add", args=[1, 1], ack=True, id="ok")
    assert (await proc.expect("ack", id="ok"))["args"] == [2]
    await proc.send("disconnect", socket="/")
    assert (await proc.expect("disconnect", socket="/"))["reason"] == "io client disconnect"
    assert (await env.log.expect("disconnect", ns="/", sid=sid))["reason"] == "client disconnect"


async def test_reconnect_namespace_after_client_disconnect(env):
    proc, sid = await env.connected("websocket", sockets=[{"nsp": "/"}, {"nsp": "/chat"}])
    first = (await proc.expect("connect", socket="/chat"))["id"]
    await proc.send("disconnect", socket="/chat")
    await env.log.expect("disconnect", ns="/chat", sid=first)
    await proc.send("connect", socket="/chat")
    second = (await proc.expect("connect", socket="/chat"))["id"]
    assert second != first
    await proc.send("emit", socket="/chat", name="msg", args=["again"], ack=True, id="m")
    assert (await proc.expect("ack", id="m"))["args"] == ["chat:again"]


# -----------------------------------------------------------------------------
# payloads and shutdown
# -----------------------------------------------------------------------------

UNICODE = {"fr": "héllo wörld", "emoji": "🌍🚀 and 𝄞", "cjk": "日本語", "rs": "a\x1eb", "q": '"\\/'}


@pytest.mark.parametrize("mode", MODES)
async def test_unicode_large_payloads_and_bursts(env, mode):
    proc, sid = await env.connected(mode)
    await proc.send("emit", name="pair", args=[UNICODE], ack=True, callback=True, id="u")
    assert (await proc.expect("ack", id="u"))["args"] == [UNICODE, "second", {"third": 3}]
    big = "é🌍x" * 100_000  # 700 kB of UTF-8 (socket.io-client does not escape it)
    await proc.send("emit", name="pair", args=[big], ack=True, id="big")
    assert (await proc.expect("ack", id="big"))["args"] == [big]
    # server -> client: 300 emits in one go arrive complete and in order
    for i in range(300):
        await env.sio.emit("seq", i, to=sid)
    await env.sio.emit("seq_end", to=sid)
    await proc.expect("ev", type="seq_end")
    assert [e["args"][0] for e in proc.seen("ev", type="seq")] == list(range(300))
    assert not proc.seen("disconnect")


async def test_server_shutdown_disconnects_every_client(env):
    procs = [await env.connected(mode) for mode in MODES]
    await env.server.close()
    env.server = None
    for proc, sid in procs:
        ev = await proc.expect("disconnect", socket="/")
        assert ev["reason"] in ("transport close", "io server disconnect"), ev
        assert (await env.log.expect("disconnect", sid=sid))["reason"] == "server disconnect"


async def test_order_is_kept_across_the_upgrade(node_ready):
    """Both directions keep flowing, in order, while the client moves from
    polling to websocket: the server streams from its connect handler, the
    client bursts as soon as it is connected."""
    log = Log()
    sio = fastio.AsyncServer(cors_allowed_origins="*")
    got: list[int] = []
    total = 2000
    sent: list[int] = []

    @sio.event
    async def connect(sid, environ, auth):
        async def stream():
            # emit until well after the server has switched to websocket
            i = before = after = 0
            while after < 300 and i < 50_000:
                await sio.emit("seq", i, to=sid)
                i += 1
                if sio.transport(sid) == "websocket":
                    after += 1
                else:
                    before += 1
                await asyncio.sleep(0)  # let the transports run between emits
            sent.extend((i, before))
            await sio.emit("seq_end", to=sid)

        sio.start_background_task(stream)

    @sio.event
    async def up(sid, i):
        got.append(i)
        if i == total - 1:
            log.add("all_up")

    server = await fastio.serve(sio, "127.0.0.1", 0)
    proc = SioProc(SCRIPT, {
        "url": f"http://127.0.0.1:{server.port}",
        "transports": ["polling", "websocket"],
        "timeoutMs": 40000,
        "emitOnConnect": [{"cmd": "burst", "name": "up", "count": total}],
    })
    try:
        await proc.start()
        await proc.expect("connect", socket="/")
        await proc.expect("upgrade", transport="websocket", timeout=20)
        await proc.expect("ev", type="seq_end", timeout=20)
        assert [e["args"][0] for e in proc.seen("ev", type="seq")] == list(range(sent[0]))
        # the stream really spanned the upgrade
        assert sent[1] > 0, "the server was on websocket before its first emit"
        await log.expect("all_up", timeout=20)
        assert got == list(range(total))
        assert not proc.seen("disconnect")
    finally:
        await proc.aclose()
        await server.close()


@pytest.mark.parametrize("mode", MODES)
async def test_binary_in_a_custom_namespace(env, mode):
    proc, _ = await env.connected(mode, sockets=[{"nsp": "/"}, {"nsp": "/chat"}])
    chat_sid = (await proc.expect("connect", socket="/chat"))["id"]
    await proc.send("emit", socket="/chat", name="nested", args=[to_wire(NESTED)], ack=True, callback=True, id="c1")
    reply = await proc.expect("ack", socket="/chat", id="c1")
    assert from_wire(reply["args"]) == [NESTED, {"ns": "/chat", "bin": b"\x00chat"}]
    assert (await env.log.expect("nested", ns="/chat", sid=chat_sid))["data"] == NESTED
    await env.sio.emit("files", [b"\x01", {"k": b"\x02"}], to=chat_sid, namespace="/chat")
    ev = await proc.expect("ev", socket="/chat", type="files")
    assert from_wire(ev["args"]) == [[b"\x01", {"k": b"\x02"}]]
    answer = await env.sio.call("echo_bin", {"b": b"\xfe" * 3000}, to=chat_sid, namespace="/chat", timeout=5)
    assert answer == {"b": b"\xfe" * 3000}
    assert not proc.seen("ev", socket="/", type="files")


@pytest.mark.parametrize("mode", MODES)
async def test_heartbeat_keeps_the_connection(node_ready, mode):
    log = Log()
    sio = build_server(log, ping_interval=0.2, ping_timeout=0.5)
    server = await fastio.serve(sio, "127.0.0.1", 0)
    proc = SioProc(SCRIPT, client_config(f"http://127.0.0.1:{server.port}", mode, 40000))
    try:
        await proc.start()
        sid = (await proc.expect("connect", socket="/"))["id"]
        # several heartbeats go by (~1 s): the server pings, the client answers
        for n in range(1, 6):
            await proc.expect("ping", count=n, timeout=5)
        await proc.send("emit", name="add", args=[2, 3], ack=True, id="hb")
        assert (await proc.expect("ack", id="hb"))["args"] == [5]
        assert not proc.seen("disconnect")
        assert not log.all("disconnect")
        assert sio.transport(sid) == FINAL_TRANSPORT[mode]
        # a client that stops answering is dropped with "ping timeout"
        proc.pause()
        try:
            assert (await log.expect("disconnect", sid=sid, timeout=5))["reason"] == "ping timeout"
        finally:
            proc.resume()
    finally:
        await proc.aclose()
        await server.close()
