"""python-socketio's AsyncClient (the reference client) against fastio.

Every scenario runs the real client over real sockets against fastio's
native server. Transport modes, where a test is parametrized:

* ``polling``   -- transports=["polling"]
* ``websocket`` -- transports=["websocket"]
* ``upgrade``   -- the client's default: polling first, then the upgrade
                   to websocket (python-engineio finishes it inside connect()).
"""

from __future__ import annotations

import asyncio

import pytest
import socketio as pysocketio

import fastio
from connection_log import log_connections

pytestmark = pytest.mark.timeout(60)

MODES = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": None,
}
FINAL_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}

NESTED = {
    "name": "file.bin",
    "blob": bytes(range(256)),
    "parts": [b"", b"\x00", {"deep": b"\xff" * 1000, "n": 1}],
    "meta": {"size": 3, "tags": ["a", "b"]},
}


def build_server(make_sio, log, **options):
    """A server with handlers on "/" and "/chat" recording into ``log``."""
    sio = make_sio(**options)

    @sio.event
    async def connect(sid, environ, auth):
        log.add("connect", ns="/", sid=sid, auth=auth, environ=environ)
        if isinstance(auth, dict):
            if "refuse" in auth:
                raise fastio.exceptions.ConnectionRefusedError(auth["refuse"], {"why": "refused on purpose"})
            if auth.get("return_false"):
                return False
            if "user" in auth:
                await sio.save_session(sid, {"user": auth["user"]})
        return None

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", ns="/", sid=sid, reason=reason)

    @sio.event
    async def echo(sid, *args):
        return args

    @sio.event
    async def add(sid, a, b):
        return a + b

    @sio.event
    async def pair(sid):
        return "a", "b"

    @sio.event
    async def nothing(sid):
        return None

    @sio.event
    async def nested(sid, data):
        log.add("nested", sid=sid, data=data)
        return data

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return sorted(str(r) for r in sio.rooms(sid))

    @sio.event
    async def leave(sid, room):
        await sio.leave_room(sid, room)
        return sorted(str(r) for r in sio.rooms(sid))

    @sio.event
    async def shout(sid, room, text):
        await sio.emit("shouted", {"from": sid, "text": text}, room=room, skip_sid=sid)
        return "sent"

    @sio.event
    async def whoami(sid):
        session = await sio.get_session(sid)
        return session.get("user")

    @sio.event
    async def rename(sid, name):
        async with sio.session(sid) as session:
            old = session.get("user")
            session["user"] = name
        return old

    @sio.event
    async def ask_me(sid, question):
        # the server asks the client back while handling the client's event
        answer = await sio.call("question", question, to=sid, timeout=5)
        return {"client said": answer}

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid, environ, auth):
        log.add("connect", ns="/chat", sid=sid, auth=auth)
        if isinstance(auth, dict) and "refuse_chat" in auth:
            raise fastio.exceptions.ConnectionRefusedError(auth["refuse_chat"])

    @sio.on("disconnect", namespace="/chat")
    async def chat_disconnect(sid, reason):
        log.add("disconnect", ns="/chat", sid=sid, reason=reason)

    @sio.on("msg", namespace="/chat")
    async def chat_msg(sid, text):
        log.add("msg", ns="/chat", sid=sid, text=text)
        return "chat:" + text

    @sio.on("whoami", namespace="/chat")
    async def chat_whoami(sid):
        return (await sio.get_session(sid, namespace="/chat")).get("user", "nobody")

    return sio


@pytest.fixture
async def server(make_sio, event_log, serve_sio):
    sio = build_server(make_sio, event_log)
    srv = await serve_sio(sio)
    srv.log = event_log
    return srv


def client_with_log(py_client, make_log, namespaces=("/",)):
    """A client whose handlers for "news", "shouted", "marker", "question",
    "bin_back", connect_error and disconnect record into ``client.log``."""
    client = py_client()
    log = make_log()
    client.log = log
    for ns in namespaces:

        def bind(ns):
            @client.on("connect", namespace=ns)
            async def on_connect():
                log.add("connect", ns=ns)

            @client.on("connect_error", namespace=ns)
            async def on_connect_error(data):
                log.add("connect_error", ns=ns, data=data)

            @client.on("disconnect", namespace=ns)
            async def on_disconnect(reason):
                log.add("disconnect", ns=ns, reason=reason)

            for name in ("news", "shouted", "marker", "nested_push"):

                def bind_event(name):
                    async def handler(*args):
                        log.add(name, ns=ns, args=list(args))

                    client.on(name, handler, namespace=ns)

                bind_event(name)

            @client.on("question", namespace=ns)
            async def on_question(q):
                log.add("question", ns=ns, q=q)
                return "answer to " + str(q)

            @client.on("two_answers", namespace=ns)
            async def on_two(q):
                return q, "second"

            @client.on("bin_back", namespace=ns)
            async def on_bin_back(data):
                log.add("bin_back", ns=ns, data=data)
                return data

        bind(ns)
    return client


async def connect(client, srv, mode, namespaces=None, **kwargs):
    await client.connect(srv.url, transports=MODES[mode], namespaces=namespaces, wait_timeout=5, **kwargs)


# -----------------------------------------------------------------------------
# namespaces
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_namespaces_share_one_connection(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    await connect(client, server, mode, namespaces=["/", "/chat"])
    root = await server.log.expect("connect", ns="/")
    chat = await server.log.expect("connect", ns="/chat")
    assert root["sid"] != chat["sid"], "each namespace gets its own Socket.IO sid"
    assert client.get_sid("/") == root["sid"]
    assert client.get_sid("/chat") == chat["sid"]
    sio = server.sio
    # one Engine.IO connection carries both namespaces
    assert len(sio.eio.sockets) == 1
    eio_sid = client.eio.sid
    assert sio.manager.eio_sid_from_sid(root["sid"], "/") == eio_sid
    assert sio.manager.eio_sid_from_sid(chat["sid"], "/chat") == eio_sid

    # events are routed by namespace, both ways
    assert await client.call("msg", "hi", namespace="/chat", timeout=5) == "chat:hi"
    assert await client.call("add", (2, 3), timeout=5) == 5
    await server.log.expect("msg", ns="/chat", sid=chat["sid"], text="hi")
    await sio.emit("news", "for chat", namespace="/chat")
    await sio.emit("news", "for root")
    got_chat = await client.log.expect("news", ns="/chat")
    got_root = await client.log.expect("news", ns="/")
    assert got_chat["args"] == ["for chat"]
    assert got_root["args"] == ["for root"]
    assert sio.transport(root["sid"]) == FINAL_TRANSPORT[mode]
    assert client.transport() == FINAL_TRANSPORT[mode]


async def test_unknown_namespace_is_refused(server, py_client, make_log):
    client = client_with_log(py_client, make_log, namespaces=("/nope",))
    with pytest.raises(pysocketio.exceptions.ConnectionError):
        await client.connect(server.url, namespaces=["/nope"], wait_timeout=5)
    err = await client.log.expect("connect_error", ns="/nope")
    assert err["data"] == {"message": "Invalid namespace"}


async def test_server_disconnect_of_one_namespace_keeps_the_other(server, py_client, make_log):
    client = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    await connect(client, server, "websocket", namespaces=["/", "/chat"])
    chat = await server.log.expect("connect", ns="/chat")
    await server.sio.disconnect(chat["sid"], namespace="/chat")
    assert (await client.log.expect("disconnect", ns="/chat"))["reason"] == "server disconnect"
    assert (await server.log.expect("disconnect", ns="/chat"))["reason"] == "server disconnect"
    # "/" still works on the same connection
    assert await client.call("add", (1, 1), timeout=5) == 2
    assert not server.log.all("disconnect", ns="/")


# -----------------------------------------------------------------------------
# auth, environ, rejection
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_auth_payload_and_environ(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    auth = {"token": "s3cret", "n": 7, "nested": {"ok": True}}
    await connect(client, server, mode, auth=auth, headers={"X-Custom-Header": "hello"})
    ev = await server.log.expect("connect", ns="/")
    assert ev["auth"] == auth
    environ = ev["environ"]
    assert environ["HTTP_X_CUSTOM_HEADER"] == "hello"
    assert environ["PATH_INFO"].startswith("/socket.io")
    assert "EIO=4" in environ["QUERY_STRING"]
    assert server.sio.get_environ(ev["sid"]) is environ or server.sio.get_environ(ev["sid"]) == environ


async def test_connect_without_auth_gets_none(server, py_client, make_log):
    client = client_with_log(py_client, make_log)
    await connect(client, server, "websocket")
    ev = await server.log.expect("connect", ns="/")
    assert ev["auth"] is None


@pytest.mark.parametrize("mode", list(MODES))
async def test_rejection_with_data(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    with pytest.raises(pysocketio.exceptions.ConnectionError) as info:
        await connect(client, server, mode, auth={"refuse": "go away"})
    assert "/" in str(info.value)
    err = await client.log.expect("connect_error", ns="/")
    assert err["data"] == {"message": "go away", "data": {"why": "refused on purpose"}}
    assert not client.connected
    # a refused client never reaches the disconnect handler
    assert not server.log.all("disconnect")


async def test_rejection_by_returning_false(server, py_client, make_log):
    client = client_with_log(py_client, make_log)
    with pytest.raises(pysocketio.exceptions.ConnectionError):
        await connect(client, server, "websocket", auth={"return_false": True})
    err = await client.log.expect("connect_error", ns="/")
    assert err["data"] == {"message": "Connection rejected by server"}


async def test_rejection_in_one_namespace(server, py_client, make_log):
    client = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    with pytest.raises(pysocketio.exceptions.ConnectionError) as info:
        await connect(client, server, "websocket", namespaces=["/", "/chat"], auth={"refuse_chat": "chat is closed"})
    assert "failed to connect: /chat" in str(info.value)
    chat_err = await client.log.expect("connect_error", ns="/chat")
    assert chat_err["data"] == {"message": "chat is closed"}


# -----------------------------------------------------------------------------
# acknowledgements
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_acks_both_directions(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    await connect(client, server, mode)
    sid = (await server.log.expect("connect"))["sid"]

    # client -> server: the handler's return value is the ack
    assert await client.call("add", (20, 22), timeout=5) == 42
    assert await client.call("pair", timeout=5) == ("a", "b")
    assert await client.call("nothing", timeout=5) is None
    assert await client.call("echo", {"x": [1, 2, None]}, timeout=5) == {"x": [1, 2, None]}
    assert await client.call("echo", ("one", 2, 3.5, True), timeout=5) == ("one", 2, 3.5, True)

    # emit with a callback
    got = asyncio.get_running_loop().create_future()
    await client.emit("add", (1, 2), callback=lambda *a: got.set_result(a))
    assert await asyncio.wait_for(got, 5) == (3,)

    # server -> client: sio.call waits for the client handler's return value
    assert await server.sio.call("question", 6 * 7, to=sid, timeout=5) == "answer to 42"
    assert await server.sio.call("two_answers", "q", to=sid, timeout=5) == ("q", "second")

    # sio.emit with callback=
    cb = asyncio.get_running_loop().create_future()
    await server.sio.emit("question", "cb", to=sid, callback=lambda *a: cb.set_result(a))
    assert await asyncio.wait_for(cb, 5) == ("answer to cb",)

    # a server handler that calls the client back before answering
    assert await client.call("ask_me", "nested?", timeout=5) == {"client said": "answer to nested?"}


async def test_server_call_times_out(server, py_client, make_log):
    client = client_with_log(py_client, make_log)
    never = asyncio.Event()

    @client.on("stall")
    async def stall():
        await never.wait()

    await connect(client, server, "websocket")
    sid = (await server.log.expect("connect"))["sid"]
    with pytest.raises(fastio.exceptions.TimeoutError):
        await server.sio.call("stall", to=sid, timeout=0.3)
    # the connection is fine afterwards
    assert await client.call("add", (1, 2), timeout=5) == 3
    never.set()


# -----------------------------------------------------------------------------
# binary
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_nested_binary_both_directions(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    await connect(client, server, mode)
    sid = (await server.log.expect("connect"))["sid"]

    # client -> server and back as the ack
    back = await client.call("nested", NESTED, timeout=5)
    seen = await server.log.expect("nested", sid=sid)
    assert seen["data"] == NESTED
    assert isinstance(seen["data"]["blob"], bytes)
    assert isinstance(seen["data"]["parts"][2]["deep"], bytes)
    assert back == NESTED

    # server -> client as an event
    await server.sio.emit("nested_push", (NESTED, [b"\x01\x02", "text"]), to=sid)
    pushed = await client.log.expect("nested_push")
    assert pushed["args"] == [NESTED, [b"\x01\x02", "text"]]

    # server -> client with sio.call; the client acks with the binary it got
    answer = await server.sio.call("bin_back", {"img": b"\x89PNG\r\n" * 100, "list": [b"a", b"b"]}, to=sid, timeout=5)
    assert answer == {"img": b"\x89PNG\r\n" * 100, "list": [b"a", b"b"]}

    # binary as top-level arguments
    assert await client.call("echo", (b"\x00", "x", b"\x01" * 70000), timeout=5) == (b"\x00", "x", b"\x01" * 70000)


# -----------------------------------------------------------------------------
# rooms
# -----------------------------------------------------------------------------


async def test_room_broadcast_with_skip_sid(server, py_client, make_log):
    clients = []
    sids = []
    for mode in ("websocket", "polling", "upgrade"):
        c = client_with_log(py_client, make_log)
        await connect(c, server, mode)
        clients.append(c)
        sids.append(c.get_sid("/"))
    for c in clients:
        rooms = await c.call("join", "room1", timeout=5)
        assert "room1" in rooms
    a, b, c = clients
    sio = server.sio

    await sio.emit("news", {"n": 1}, room="room1", skip_sid=sids[0])
    for other in (b, c):
        assert (await other.log.expect("news"))["args"] == [{"n": 1}]
    # what the first client gets after the broadcast proves it skipped the news
    await sio.emit("marker", "m1", to=sids[0])
    await a.log.expect("marker")
    assert a.log.all("news") == []

    # skip_sid as a list
    await sio.emit("news", {"n": 2}, room="room1", skip_sid=[sids[0], sids[1]])
    assert (await c.log.expect("news"))["args"] == [{"n": 2}]
    for who, sid in ((a, sids[0]), (b, sids[1])):
        await sio.emit("marker", "m2", to=sid)
        await who.log.expect("marker", args=["m2"])
    assert a.log.all("news") == [] and len(b.log.all("news")) == 1

    # a client's own broadcast skips the sender
    assert await a.call("shout", ("room1", "hello"), timeout=5) == "sent"
    for other in (b, c):
        assert (await other.log.expect("shouted"))["args"] == [{"from": sids[0], "text": "hello"}]
    await sio.emit("marker", "m3", to=sids[0])
    await a.log.expect("marker", args=["m3"])
    assert a.log.all("shouted") == []

    # leave_room and close_room are honoured
    assert "room1" not in await b.call("leave", "room1", timeout=5)
    await sio.emit("news", {"n": 3}, room="room1")
    for who in (a, c):
        assert (await who.log.expect("news"))["args"] == [{"n": 3}]
    await sio.emit("marker", "m4", to=sids[1])
    await b.log.expect("marker", args=["m4"])
    assert len(b.log.all("news")) == 1

    await sio.close_room("room1")
    assert "room1" not in sio.rooms(sids[0])
    await sio.emit("news", {"n": 4}, room="room1")
    await sio.emit("marker", "m5")  # everyone in "/"
    for who in clients:
        await who.log.expect("marker", args=["m5"])
        assert {"n": 4} not in [e["args"][0] for e in who.log.all("news")]


# -----------------------------------------------------------------------------
# disconnects
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_server_side_disconnect(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    await connect(client, server, mode)
    sid = (await server.log.expect("connect"))["sid"]
    await server.sio.disconnect(sid)
    assert (await server.log.expect("disconnect", sid=sid))["reason"] == "server disconnect"
    assert (await client.log.expect("disconnect", ns="/"))["reason"] == "server disconnect"
    assert server.sio.manager.get_socket(sid, "/") is None


@pytest.mark.parametrize("mode", list(MODES))
async def test_client_side_disconnect(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    await connect(client, server, mode, namespaces=["/", "/chat"])
    root = (await server.log.expect("connect", ns="/"))["sid"]
    chat = (await server.log.expect("connect", ns="/chat"))["sid"]
    await client.disconnect()
    # Over polling the client's DISCONNECT packets reach the server. Over
    # websocket python-engineio closes the socket before its write task has
    # sent them (python-socketio's own server then reports "transport close"
    # too), so either reason is right there; the strict check for websocket
    # is test_disconnect_packets_over_websocket below.
    expected = {"client disconnect"} if FINAL_TRANSPORT[mode] == "polling" else {"client disconnect", "transport close"}
    assert (await server.log.expect("disconnect", sid=root))["reason"] in expected
    assert (await server.log.expect("disconnect", sid=chat))["reason"] in expected
    assert (await client.log.expect("disconnect", ns="/"))["reason"] == "client disconnect"
    assert server.sio.manager.get_socket(root, "/") is None


async def test_disconnect_packets_over_websocket(server, raw_ws):
    ws = await raw_ws.open(server.port)
    root = await ws.sio_connect("/")
    chat = await ws.sio_connect("/chat")
    ws.send_text("41/chat,")
    assert (await server.log.expect("disconnect", sid=chat))["reason"] == "client disconnect"
    # "/" is still connected on the same WebSocket
    ws.emit("add", 2, 2, ack_id=7)
    assert await ws.recv_text() == "437[4]"
    ws.send_text("41")
    assert (await server.log.expect("disconnect", sid=root))["reason"] == "client disconnect"
    # then the Engine.IO close packet ends the connection
    ws.send_text("1")
    await ws.wait_closed()


async def test_transport_close_when_the_client_vanishes(server, py_client, make_log):
    client = client_with_log(py_client, make_log)
    await connect(client, server, "websocket")
    sid = (await server.log.expect("connect"))["sid"]
    # drop the WebSocket without any Socket.IO or Engine.IO goodbye
    await client.eio.ws.close()
    reason = (await server.log.expect("disconnect", sid=sid))["reason"]
    assert reason in ("transport close", "transport error")


# -----------------------------------------------------------------------------
# sessions
# -----------------------------------------------------------------------------


async def test_sessions(server, py_client, make_log):
    alice = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    bob = client_with_log(py_client, make_log)
    await connect(alice, server, "websocket", namespaces=["/", "/chat"], auth={"user": "alice"})
    await connect(bob, server, "polling", auth={"user": "bob"})
    assert await alice.call("whoami", timeout=5) == "alice"
    assert await bob.call("whoami", timeout=5) == "bob"
    # sessions are per namespace
    assert await alice.call("whoami", namespace="/chat", timeout=5) == "nobody"
    # the session() context manager saves what it changed
    assert await alice.call("rename", "alicia", timeout=5) == "alice"
    assert await alice.call("whoami", timeout=5) == "alicia"
    assert await bob.call("whoami", timeout=5) == "bob"
    # and the server can read and write it directly
    sid = alice.get_sid("/")
    assert (await server.sio.get_session(sid))["user"] == "alicia"
    await server.sio.save_session(sid, {"user": "ALICE"})
    assert await alice.call("whoami", timeout=5) == "ALICE"


# -----------------------------------------------------------------------------
# class-based namespaces and catch-all handlers
# -----------------------------------------------------------------------------


async def test_async_namespace_class(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio()
    log = event_log

    class Game(fastio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            log.add("connect", sid=sid, auth=auth)
            await self.save_session(sid, {"score": 0})

        async def on_disconnect(self, sid, reason):
            log.add("disconnect", sid=sid, reason=reason)

        async def on_score(self, sid, points):
            async with self.session(sid) as s:
                s["score"] += points
                return s["score"]

        async def on_join(self, sid, table):
            await self.enter_room(sid, table)
            await self.emit("news", f"{sid} sat down", room=table, skip_sid=sid)
            return self.rooms(sid)

        def on_sync_echo(self, sid, data):
            return data

        async def on_ask(self, sid):
            return await self.call("question", "from the namespace", to=sid, timeout=5)

        async def on_kick(self, sid):
            await self.disconnect(sid)

    sio.register_namespace(Game("/game"))
    srv = await serve_sio(sio)

    p1 = client_with_log(py_client, make_log, namespaces=("/game",))
    p2 = client_with_log(py_client, make_log, namespaces=("/game",))
    await p1.connect(srv.url, namespaces=["/game"], auth={"p": 1}, wait_timeout=5)
    await p2.connect(srv.url, namespaces=["/game"], transports=["polling"], wait_timeout=5)
    s1 = (await log.expect("connect", auth={"p": 1}))["sid"]
    s2 = (await log.expect("connect", auth=None))["sid"]
    assert await p1.call("score", 5, namespace="/game", timeout=5) == 5
    assert await p1.call("score", 3, namespace="/game", timeout=5) == 8
    assert await p2.call("score", 1, namespace="/game", timeout=5) == 1
    assert await p1.call("sync_echo", [1, b"\x02"], namespace="/game", timeout=5) == [1, b"\x02"]
    assert await p1.call("ask", namespace="/game", timeout=5) == "answer to from the namespace"
    assert "t1" in await p1.call("join", "t1", namespace="/game", timeout=5)
    await p2.call("join", "t1", namespace="/game", timeout=5)
    assert (await p1.log.expect("news", ns="/game"))["args"] == [f"{s2} sat down"]
    await p2.emit("kick", namespace="/game")
    assert (await log.expect("disconnect", sid=s2))["reason"] == "server disconnect"
    assert (await p2.log.expect("disconnect", ns="/game"))["reason"] == "server disconnect"
    await p1.disconnect()
    # p1 is on websocket: see test_client_side_disconnect for the two reasons
    assert (await log.expect("disconnect", sid=s1))["reason"] in ("client disconnect", "transport close")


async def test_catch_all_event_handler(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio()
    log = event_log

    @sio.event
    async def known(sid, x):
        log.add("known", x=x)
        return "known"

    @sio.on("*")
    async def any_event(event, sid, *args):
        log.add("any", event=event, sid=sid, args=list(args))
        return f"caught {event}"

    srv = await serve_sio(sio)
    client = client_with_log(py_client, make_log)
    await client.connect(srv.url, wait_timeout=5)
    sid = client.get_sid("/")
    assert await client.call("known", 1, timeout=5) == "known"
    assert await client.call("whatever", ("a", b"\x00"), timeout=5) == "caught whatever"
    ev = await log.expect("any", event="whatever")
    assert ev["sid"] == sid and ev["args"] == ["a", b"\x00"]
    # the explicit handler wins; connect/disconnect are never routed to "*"
    assert [e["event"] for e in log.all("any")] == ["whatever"]
    await client.emit("no_ack", {"k": "v"})
    assert (await log.expect("any", event="no_ack"))["args"] == [{"k": "v"}]


async def test_catch_all_namespace_handlers(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio(namespaces="*")
    log = event_log

    @sio.on("connect", namespace="*")
    async def any_connect(namespace, sid, environ, auth):
        log.add("connect", ns=namespace, sid=sid)

    @sio.on("*", namespace="*")
    async def any_event(event, namespace, sid, *args):
        log.add("event", ns=namespace, event=event, args=list(args))
        return f"{namespace}:{event}"

    srv = await serve_sio(sio)
    client = client_with_log(py_client, make_log, namespaces=("/dyn1", "/dyn2"))
    await client.connect(srv.url, namespaces=["/dyn1", "/dyn2"], wait_timeout=5)
    await log.expect("connect", ns="/dyn1")
    await log.expect("connect", ns="/dyn2")
    assert await client.call("hello", 1, namespace="/dyn1", timeout=5) == "/dyn1:hello"
    assert await client.call("bye", namespace="/dyn2", timeout=5) == "/dyn2:bye"
    assert (await log.expect("event", ns="/dyn1"))["args"] == [1]


# -----------------------------------------------------------------------------
# payloads: unicode, size, ordering
# -----------------------------------------------------------------------------

UNICODE = {"fr": "héllo wörld", "emoji": "🌍🚀 and 𝄞", "cjk": "日本語", "rs": "a\x1eb", "nul": "a\x00b", "q": '"\\/'}


@pytest.mark.parametrize("mode", list(MODES))
async def test_unicode_and_large_payloads(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    await connect(client, server, mode)
    sid = client.get_sid("/")
    assert await client.call("echo", UNICODE, timeout=5) == UNICODE
    assert await client.call("echo", ("ü", "🌍"), timeout=5) == ("ü", "🌍")
    # python-socketio escapes non-ASCII (ensure_ascii): 19 bytes per repetition,
    # ~ 380 kB on the wire, under the 1 MB default limit
    big_text = "é🌍x" * 20_000
    assert await client.call("echo", big_text, timeout=10) == big_text
    big_bin = bytes(range(256)) * 2000  # 512 kB
    assert await client.call("echo", big_bin, timeout=10) == big_bin
    # server -> client: no limit on what the server sends
    huge = "z" * 3_000_000
    await server.sio.emit("news", huge, to=sid)
    assert (await client.log.expect("news"))["args"] == [huge]


@pytest.mark.parametrize("mode", list(MODES))
async def test_bursts_keep_their_order(server, py_client, make_log, mode):
    client = client_with_log(py_client, make_log)
    seen = []
    done = asyncio.Event()

    @client.on("seq")
    async def on_seq(n):
        seen.append(n)
        if n == 299:
            done.set()

    await connect(client, server, mode)
    sid = client.get_sid("/")
    # server -> client: 300 emits in one go
    for i in range(300):
        await server.sio.emit("seq", i, to=sid)
    finished = asyncio.create_task(done.wait())
    dropped = asyncio.create_task(client.log.expect("disconnect", ns="/", timeout=10))
    await asyncio.wait({finished, dropped}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for t in (finished, dropped):
        t.cancel()
    await asyncio.gather(finished, dropped, return_exceptions=True)
    if not dropped.cancelled() and dropped.exception() is None:
        pytest.fail(f"the client was disconnected ({dropped.result()['reason']}) "
                    f"after receiving {len(seen)} of 300 events")
    assert seen == list(range(300))

    # client -> server: 300 emits without waiting, then one call behind them
    got = []
    sio = server.sio

    @sio.on("count")
    async def count(s, n):
        got.append(n)

    for i in range(300):
        await client.emit("count", i)
    assert await client.call("add", (0, 0), timeout=10) == 0
    assert got == list(range(300))


# -----------------------------------------------------------------------------
# more emit targets
# -----------------------------------------------------------------------------


async def test_emit_to_several_rooms_reaches_each_client_once(server, py_client, make_log):
    a = client_with_log(py_client, make_log)
    b = client_with_log(py_client, make_log)
    await connect(a, server, "websocket")
    await connect(b, server, "polling")
    await a.call("join", "r1", timeout=5)
    await a.call("join", "r2", timeout=5)
    await b.call("join", "r2", timeout=5)
    sio = server.sio
    await sio.emit("news", "both rooms", to=["r1", "r2"])
    await sio.emit("news", "skip b", room=["r1", "r2"], skip_sid=b.get_sid("/"))
    await sio.emit("marker", "end")
    for c in (a, b):
        await c.log.expect("marker")
    assert [e["args"] for e in a.log.all("news")] == [["both rooms"], ["skip b"]]
    assert [e["args"] for e in b.log.all("news")] == [["both rooms"]]
    # data forms: None -> no argument, a list -> one argument, a tuple -> several
    await sio.emit("news", to=a.get_sid("/"))
    await sio.emit("news", [1, 2], to=a.get_sid("/"))
    await sio.emit("news", (1, 2), to=a.get_sid("/"))
    await sio.emit("marker", "end2", to=a.get_sid("/"))
    await a.log.expect("marker", args=["end2"])
    assert [e["args"] for e in a.log.all("news")][2:] == [[], [[1, 2]], [1, 2]]


async def test_send_and_message_event(server, py_client, make_log):
    client = client_with_log(py_client, make_log)
    got = asyncio.get_running_loop().create_future()

    @client.on("message")
    async def on_message(data):
        got.set_result(data)

    await connect(client, server, "websocket")
    await server.sio.send({"hello": "there"}, to=client.get_sid("/"))
    assert await asyncio.wait_for(got, 5) == {"hello": "there"}


# -----------------------------------------------------------------------------
# heartbeat, always_connect, shutdown
# -----------------------------------------------------------------------------


async def test_ping_timeout_reason(make_sio, serve_sio, event_log, raw_ws, py_client):
    sio = make_sio(ping_interval=0.2, ping_timeout=0.2)
    log = event_log
    log_connections(sio, log)

    srv = await serve_sio(sio)
    # a raw client that stops answering pings
    ws = await raw_ws.open(srv.port)
    handshake = await ws.eio_open()
    assert handshake["pingInterval"] == 200 and handshake["pingTimeout"] == 200
    silent = await ws.sio_connect()
    # a python-socketio client that answers them
    alive = py_client()
    await alive.connect(srv.url, transports=["websocket"], wait_timeout=5)
    assert (await log.expect("disconnect", sid=silent, timeout=5))["reason"] == "ping timeout"
    # the answering client outlived several heartbeats
    assert alive.connected
    assert not log.all("disconnect", sid=alive.get_sid("/"))


async def test_always_connect_refusal(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio(always_connect=True)
    log = event_log
    # The refusal comes once the client saw its CONNECT (a handler still checking something):
    # python-socketio's client ignores a DISCONNECT that arrives before its connect() returned.
    checked = asyncio.Event()

    @sio.event
    async def connect(sid, environ, auth):
        log.add("connect", sid=sid, auth=auth)
        if auth and auth.get("refuse"):
            await checked.wait()
            raise fastio.exceptions.ConnectionRefusedError("later refusal")

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", sid=sid, reason=reason)

    srv = await serve_sio(sio)
    ok = client_with_log(py_client, make_log)
    await ok.connect(srv.url, auth={"refuse": False}, wait_timeout=5)
    assert ok.connected

    refused = client_with_log(py_client, make_log)
    # with always_connect the client is connected first, then told to go
    await refused.connect(srv.url, auth={"refuse": True}, wait_timeout=5)
    checked.set()
    assert (await refused.log.expect("disconnect", ns="/"))["reason"] == "server disconnect"
    assert ok.connected


async def test_server_shutdown_disconnects_everyone(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio()
    log = event_log

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", sid=sid, reason=reason)

    srv = await serve_sio(sio)
    clients = []
    for mode in MODES:
        c = client_with_log(py_client, make_log)
        await c.connect(srv.url, transports=MODES[mode], wait_timeout=5)
        clients.append(c)
    sids = [c.get_sid("/") for c in clients]
    await srv.stop()
    for c in clients:
        await c.log.expect("disconnect", ns="/")
    for sid in sids:
        assert (await log.expect("disconnect", sid=sid))["reason"] == "server disconnect"


# -----------------------------------------------------------------------------
# handler forms python-socketio accepts
# -----------------------------------------------------------------------------


async def test_sync_handlers_and_legacy_signatures(make_sio, serve_sio, event_log, py_client, make_log):
    sio = make_sio()
    log = event_log

    # connect(sid, environ) without auth, disconnect(sid) without reason, both sync
    @sio.event
    def connect(sid, environ):
        log.add("connect", sid=sid, path=environ["PATH_INFO"])

    @sio.event
    def disconnect(sid):
        log.add("disconnect", sid=sid)

    @sio.event
    def mul(sid, a, b):
        return a * b

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid, environ):
        log.add("connect", sid=sid, ns="/chat")

    srv = await serve_sio(sio)
    client = client_with_log(py_client, make_log, namespaces=("/", "/chat"))
    # no auth: python-socketio calls a two-argument connect handler only then
    await client.connect(srv.url, namespaces=["/", "/chat"], wait_timeout=5)
    sid = client.get_sid("/")
    assert (await log.expect("connect", sid=sid))["path"].startswith("/socket.io")
    await log.expect("connect", ns="/chat")
    assert await client.call("mul", (6, 7), timeout=5) == 42
    rooms = sio.rooms(sid)
    assert sid in rooms, f"a client is in its own room: {rooms}"
    await sio.disconnect(sid)
    await log.expect("disconnect", sid=sid)
    assert (await client.log.expect("disconnect", ns="/"))["reason"] == "server disconnect"
