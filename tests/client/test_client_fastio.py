"""fastio's Socket.IO client against fastio's server.

The scenario tests here (the ``backend`` fixture) run against Node's socket.io server too:
test_client_node.py imports them and points ``backend`` at node_server.mjs. Tests that need
fastio's server side (heartbeat, http_session, the blocking client) follow them.
"""
from __future__ import annotations

import asyncio
import base64
import threading

import pytest

import fastio
from fastio import exceptions
from fastio.client import AsyncClient
from fastio.client.namespace import AsyncClientNamespace, ClientNamespace
from fastio.client.sync import Client

TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": None,
}
EXPECTED_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}


@pytest.fixture
async def backend(fastio_backend):
    return await fastio_backend.start()


def make_client(clients, **kwargs):
    kwargs.setdefault("reconnection", False)
    client = AsyncClient(**kwargs)
    clients.append(client)
    return client


# -- scenarios shared with test_client_node.py ---------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_connect_transport_and_sid(backend, clients, mode, rec):
    client = make_client(clients)
    client.on("connect", rec.handler("connect"))
    await client.connect(backend.url, transports=TRANSPORTS[mode])
    assert client.connected
    assert rec.of("connect") == [()]
    assert client.transport() == EXPECTED_TRANSPORT[mode]
    assert await client.call("server_transport") == EXPECTED_TRANSPORT[mode]
    info = await client.call("whoami")
    assert info["sid"] == client.get_sid() == client.get_sid("/")
    assert info["nsp"] == "/"
    seen = await backend.expect("connect", nsp="/")
    assert seen["sid"] == client.get_sid()
    assert client.sid  # the Engine.IO sid
    await client.disconnect()
    assert not client.connected


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_namespaces_with_auth(backend, clients, mode, rec):
    client = make_client(clients)
    for ns in ("/", "/chat", "/admin"):
        client.on("connect", rec.handler(f"connect {ns}"), namespace=ns)
    auth = {"token": "secret", "user": "ada"}
    await client.connect(backend.url, auth=auth, namespaces=["/", "/chat", "/admin"],
                         transports=TRANSPORTS[mode])
    assert set(client.namespaces) == {"/", "/chat", "/admin"}
    assert len(set(client.namespaces.values())) == 3  # one sid per namespace
    for ns in ("/", "/chat", "/admin"):
        assert rec.of(f"connect {ns}") == [()]
        info = await client.call("whoami", namespace=ns)
        assert info == {"nsp": ns, "sid": client.get_sid(ns), "auth": auth}
        seen = await backend.expect("connect", nsp=ns)
        assert seen["auth"] == auth and seen["sid"] == client.get_sid(ns)
    await client.disconnect()
    for ns in ("/", "/chat", "/admin"):
        await backend.expect("disconnect", nsp=ns)


@pytest.mark.timeout(20)
async def test_namespaces_default_to_handlers(backend, clients, rec):
    client = make_client(clients)
    client.on("connect", rec.handler("chat"), namespace="/chat")
    client.on("news", rec.handler("news"), namespace="/chat")
    client.on("*", rec.handler("anything"), namespace="*")  # not a namespace to connect to
    await client.connect(backend.url)
    assert list(client.namespaces) == ["/chat"]
    await rec.wait("chat")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_events_and_acks_both_ways(backend, clients, mode, rec):
    client = make_client(clients)
    client.on("echoed", rec.handler("echoed"))
    client.on("answer", rec.handler("answer"))

    @client.on("question")
    async def question(data):
        await asyncio.sleep(0)
        return {"answer": data["n"] * 2}

    await client.connect(backend.url, transports=TRANSPORTS[mode])

    # client -> server with acknowledgement, one and several arguments
    assert await client.call("echo", "hi") == "hi"
    assert await client.call("echo", ("a", 1, [2, 3])) == ("a", 1, [2, 3])
    assert await client.call("echo") is None
    acked = asyncio.get_running_loop().create_future()
    await client.emit("echo", {"k": "v"}, callback=lambda *args: acked.set_result(args))
    assert await asyncio.wait_for(acked, 5) == ({"k": "v"},)

    # server -> client events
    await client.emit("echo_event", ("x", {"y": [1, 2]}))
    assert (await rec.wait("echoed"))[0] == ("x", {"y": [1, 2]})

    # server -> client with acknowledgement from the client's handler
    await client.emit("ask", {"n": 21})
    assert (await rec.wait("answer"))[0] == ({"answer": 42},)

    # fire-and-forget, seen by the server
    await client.send("hello")
    await client.emit("note", ("one", 2))
    note = await backend.expect("note", nsp="/")
    assert note["args"] == ["one", 2]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_binary_nested_in_objects(backend, clients, mode, rec):
    client = make_client(clients)
    client.on("echoed", rec.handler("echoed"))
    client.on("answer", rec.handler("answer"))
    client.on("question", lambda data: {"got": data, "blob": b"\xff\x00reply"})
    await client.connect(backend.url, transports=TRANSPORTS[mode])

    payload = {
        "name": "files",
        "first": b"\x00\x01\x02",
        "items": [1, b"\xfe" * 1000, {"deep": [b"", b"\x80binary\x00"]}],
        "text": "not binary",
    }
    assert await client.call("echo", payload) == payload
    assert await client.call("echo", (b"a", {"b": b"b"}, "c")) == (b"a", {"b": b"b"}, "c")

    await client.emit("echo_event", ({"blob": b"\x01\x02"}, [b"\x03"]))
    assert (await rec.wait("echoed"))[0] == ({"blob": b"\x01\x02"}, [b"\x03"])

    await client.emit("note", {"attachment": b"\x10\x20", "list": [b"\x30"]})
    note = await backend.expect("note", nsp="/")
    def b64(data):
        return {"$bin": base64.b64encode(data).decode()}
    assert note["args"] == [{"attachment": b64(b"\x10\x20"), "list": [b64(b"\x30")]}]

    await client.emit("ask", {"data": b"\x05\x06"})
    assert (await rec.wait("answer"))[0] == ({"got": {"data": b"\x05\x06"}, "blob": b"\xff\x00reply"},)


@pytest.mark.timeout(20)
async def test_connect_error_carries_server_data(backend, clients, rec):
    client = make_client(clients)
    client.on("connect_error", rec.handler("connect_error"), namespace="/admin")
    client.on("connect", rec.handler("connect"), namespace="/admin")
    with pytest.raises(exceptions.ConnectionError) as info:
        await client.connect(backend.url, auth={"token": "wrong"}, namespaces=["/admin"])
    assert "/admin" in str(info.value)
    assert rec.of("connect_error") == [({"message": "unauthorized", "data": {"reason": "bad token"}},)]
    assert rec.of("connect") == []
    assert not client.connected
    assert client.eio.state == "disconnected"


@pytest.mark.timeout(20)
async def test_refused_namespace_next_to_accepted_one(backend, clients, rec):
    client = make_client(clients)
    client.on("connect_error", rec.handler("connect_error"), namespace="/admin")
    client.on("disconnect", rec.handler("disconnect"), namespace="/chat")
    with pytest.raises(exceptions.ConnectionError):
        await client.connect(backend.url, namespaces=["/chat", "/admin"])
    assert rec.of("connect_error")[0][0]["message"] == "unauthorized"
    assert not client.connected and client.namespaces == {}
    assert client.eio.state == "disconnected"


@pytest.mark.timeout(20)
async def test_connect_error_when_no_server(clients, unused_tcp_port, rec):
    client = make_client(clients)
    client.on("connect_error", rec.handler("connect_error"))
    with pytest.raises(exceptions.ConnectionError):
        await client.connect(f"http://127.0.0.1:{unused_tcp_port}")
    assert len(rec.of("connect_error")) == 1
    assert isinstance(rec.of("connect_error")[0][0], str)
    await client.wait()  # returns at once: nothing to wait for


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_call_times_out_cleanly(backend, clients, log_records, mode):
    client = make_client(clients, logger=log_records.logger)
    await client.connect(backend.url, transports=TRANSPORTS[mode])
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(exceptions.TimeoutError):
        await client.call("silent", {"x": 1}, timeout=0.3)
    assert 0.25 <= loop.time() - started < 2
    assert client.callbacks.get("/", {}) == {}  # the pending callback was dropped
    assert client.connected
    assert await client.call("echo", "still fine", timeout=5) == "still fine"


@pytest.mark.timeout(20)
async def test_catch_all_handlers(backend, clients, rec):
    client = make_client(clients)
    client.on("*", rec.handler("any event in /"))
    client.on("echoed", rec.handler("echoed in /chat"), namespace="/chat")
    client.on("*", rec.handler("any namespace"), namespace="*")
    await client.connect(backend.url, namespaces=["/", "/chat", "/admin"], auth={"token": "secret"})
    await client.emit("echo_event", (1, 2))
    await client.emit("echo_event", "chat", namespace="/chat")
    await client.emit("echo_event", "admin", namespace="/admin")
    assert (await rec.wait("any event in /"))[0] == ("echoed", 1, 2)
    assert (await rec.wait("echoed in /chat"))[0] == ("chat",)
    assert (await rec.wait("any namespace"))[0] == ("echoed", "/admin", "admin")


@pytest.mark.timeout(20)
async def test_class_based_namespace(backend, clients, rec):
    seen = rec

    class Chat(AsyncClientNamespace):
        def on_connect(self):
            seen.add("connect")

        async def on_echoed(self, *args):
            seen.add("echoed", *args)

        def on_question(self, data):
            return data.upper()

        def on_answer(self, data):
            seen.add("answer", data)

        def on_disconnect(self, reason):
            seen.add("disconnect", reason)

    client = make_client(clients)
    chat = Chat("/chat")
    client.register_namespace(chat)
    with pytest.raises(ValueError):
        client.register_namespace(object())
    await client.connect(backend.url)
    assert list(client.namespaces) == ["/chat"]
    await seen.wait("connect")
    assert await chat.call("echo", "via namespace", timeout=5) == "via namespace"
    await chat.emit("echo_event", ("a", b"b"))
    assert (await seen.wait("echoed"))[0] == ("a", b"b")
    await chat.emit("ask", "shout")
    assert (await seen.wait("answer"))[0] == ("SHOUT",)
    await chat.disconnect()
    assert (await seen.wait("disconnect"))[0] == ("client disconnect",)


@pytest.mark.timeout(20)
async def test_server_disconnects_namespace(backend, clients, rec):
    client = AsyncClient(reconnection=True, reconnection_delay=0.05)
    clients.append(client)
    client.on("disconnect", rec.handler("disconnect /"))
    client.on("disconnect", rec.handler("disconnect /chat"), namespace="/chat")
    await client.connect(backend.url, namespaces=["/", "/chat"])
    await client.emit("kick", namespace="/chat")
    assert (await rec.wait("disconnect /chat"))[0] == ("server disconnect",)
    assert client.connected and list(client.namespaces) == ["/"]
    await client.emit("kick")
    assert (await rec.wait("disconnect /"))[0] == ("server disconnect",)
    await asyncio.wait_for(client.wait(), 5)  # no reconnection after a deliberate kick
    assert not client.connected and client.eio.state == "disconnected"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_client_disconnect(backend, clients, mode, rec):
    client = make_client(clients)
    client.on("disconnect", rec.handler("disconnect"))

    @client.on("disconnect", namespace="/chat")
    def old_style():  # no reason argument, as in older python-socketio
        rec.add("old style")

    await client.connect(backend.url, namespaces=["/", "/chat"], transports=TRANSPORTS[mode])
    waiter = asyncio.ensure_future(client.wait())
    await client.disconnect()
    await asyncio.wait_for(waiter, 5)
    assert rec.of("disconnect") == [("client disconnect",)]
    assert rec.of("old style") == [()]
    server_side = await backend.expect("disconnect", nsp="/")
    assert "client" in server_side["reason"]
    with pytest.raises(exceptions.BadNamespaceError):
        await client.emit("echo", 1)


@pytest.mark.timeout(20)
async def test_upgrade_keeps_order(backend, clients):
    """Events both ways while the transport is upgraded arrive complete and in order."""
    client = make_client(clients)
    count = 100
    received = []
    all_received = asyncio.Event()

    @client.on("seq")
    def seq(i):
        received.append(i)
        if len(received) == count:
            all_received.set()

    @client.event
    async def connect():
        # emitted while the upgrade to WebSocket is under way
        async def spray():
            await client.emit("burst", count)
            for i in range(count):
                await client.emit("note", (i, b"\x00" * (i % 3)))
                if i % 10 == 0:
                    await asyncio.sleep(0)
        client.start_background_task(spray)

    await client.connect(backend.url)
    for i in range(count):
        note = await backend.expect("note")
        assert note["args"][0] == i
    await asyncio.wait_for(all_received.wait(), 10)
    assert received == list(range(count))
    assert client.transport() == "websocket"
    assert await client.call("server_transport") == "websocket"


@pytest.mark.timeout(20)
async def test_callable_url_headers_auth(backend, clients):
    client = make_client(clients)
    calls = []

    def url():
        calls.append("url")
        return backend.url

    async def headers():
        calls.append("headers")
        return {"X-Test": "1"}

    def auth():
        calls.append("auth")
        return {"token": "secret", "n": len(calls)}

    await client.connect(url, headers=headers, auth=auth, namespaces=["/admin"])
    assert calls == ["url", "headers", "auth"]
    assert (await client.call("whoami", namespace="/admin"))["auth"] == {"token": "secret", "n": 3}


@pytest.mark.timeout(20)
async def test_already_connected_and_bad_namespace(backend, clients):
    client = make_client(clients)
    await client.connect(backend.url)
    with pytest.raises(exceptions.ConnectionError):
        await client.connect(backend.url)
    with pytest.raises(exceptions.BadNamespaceError):
        await client.emit("echo", 1, namespace="/chat")


# -- fastio-only ---------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_import_as_socketio(backend, clients):
    import fastio as socketio  # noqa: F401 - the names client code uses

    client = socketio.AsyncClient(reconnection=False) if hasattr(socketio, "AsyncClient") else None
    if client is None:
        pytest.skip("fastio/__init__.py does not export the client names yet")
    clients.append(client)
    await client.connect(backend.url)
    assert await client.call("echo", 1) == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_missing_pings_close_the_connection(fastio_backend, clients, mode, rec):
    backend = await fastio_backend.start(ping_interval=0.2, ping_timeout=0.2)
    client = make_client(clients)
    client.on("disconnect", rec.handler("disconnect"))
    await client.connect(backend.url, transports=TRANSPORTS[mode])
    assert client.eio.ping_interval == 0.2 and client.eio.ping_timeout == 0.2
    # answering pings keeps the connection up well past pingInterval + pingTimeout
    await asyncio.sleep(1.0)
    assert client.connected and rec.of("disconnect") == []
    # a server that stops pinging is detected after pingInterval + pingTimeout
    heartbeat = backend.sio.eio._heartbeat_task
    assert heartbeat is not None
    heartbeat.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await rec.wait("disconnect", timeout=3))[0] == ("transport error",)
    assert loop.time() - started <= 0.4 + 0.3


@pytest.mark.timeout(20)
async def test_http_session_is_used_for_polling(backend, clients):
    aiohttp = pytest.importorskip("aiohttp")
    requests = []

    async def on_request_start(http, context, params):
        requests.append(params.method)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        client = make_client(clients, http_session=http)
        await client.connect(backend.url, transports=["polling"])
        assert await client.call("echo", b"\x00bin") == b"\x00bin"
        await client.disconnect()
    assert "GET" in requests and "POST" in requests


@pytest.mark.timeout(20)
async def test_json_option_and_serializer(backend, clients):
    import json

    with pytest.raises(ValueError):
        AsyncClient(serializer="cbor")
    client = make_client(clients, json=json)
    try:
        await client.connect(backend.url)
        assert await client.call("echo", {"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
    finally:
        from fastio._core.packet import configure_json
        configure_json(None)


@pytest.mark.timeout(20)
async def test_websocket_extra_options(backend, clients, log_records):
    client = make_client(clients, logger=log_records.logger, engineio_logger=log_records.logger,
                         websocket_extra_options={"max_frame_size": 1 << 20,
                                                  "headers": {"X-Extra": "yes"},
                                                  "timeout": 3})
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", "x") == "x"
    assert any("'timeout' is not a picows option" in m for m in log_records.messages())


@pytest.mark.timeout(30)
async def test_blocking_client(backend):
    """fastio.client.sync.Client: handlers in threads, emit/call from them, wait() until kicked."""
    url = backend.url
    result: dict = {}

    def scenario():
        client = Client(reconnection=False)
        got = threading.Event()
        answers = []

        @client.event
        def connect():
            answers.append(("connect", threading.current_thread().name))

        @client.on("echoed", namespace="/chat")
        def echoed(*args):
            answers.append(("echoed", args))
            # a blocking call from inside a handler
            answers.append(("nested", client.call("echo", "from handler", namespace="/chat", timeout=5)))
            got.set()

        @client.on("question")
        def question(data):
            return data * 2

        class Admin(ClientNamespace):
            def on_connect(self):
                answers.append(("admin connect",))

        client.register_namespace(Admin("/admin"))
        client.connect(url, namespaces=["/", "/chat", "/admin"], auth={"token": "secret"})
        result["sid"] = client.get_sid()
        result["transport"] = client.transport()
        result["echo"] = client.call("echo", (1, b"2"), timeout=5)
        client.emit("echo_event", "hello", namespace="/chat")
        assert got.wait(5)
        acked = threading.Event()
        client.emit("echo", "cb", callback=lambda *a: (answers.append(("callback", a)), acked.set()))
        assert acked.wait(5)
        try:
            client.call("silent", timeout=0.2)
        except exceptions.TimeoutError:
            result["timeout"] = True
        client.emit("kick", namespace="/admin")
        client.emit("kick", namespace="/chat")
        client.emit("kick")
        client.wait()
        result["connected_after"] = client.connected
        result["answers"] = answers

    await asyncio.wait_for(asyncio.to_thread(scenario), 25)
    assert result["sid"] and result["transport"] == "websocket"
    assert result["echo"] == (1, b"2")
    assert result["timeout"] is True
    assert result["connected_after"] is False
    answers = result["answers"]
    connects = [a for a in answers if a[0] == "connect"]
    assert len(connects) == 1 and connects[0][1].startswith("fastio-handler")
    assert ("admin connect",) in answers
    assert ("echoed", ("hello",)) in answers
    assert ("nested", "from handler") in answers
    assert ("callback", ("cb",)) in answers


@pytest.mark.timeout(20)
async def test_engineio_client_on_its_own(fastio_backend):
    """fastio.engineio.client.AsyncClient with python-engineio's interface."""
    from fastio.engineio import AsyncServer as EngineServer
    from fastio.engineio.client import AsyncClient as EngineClient

    eio = EngineServer()

    @eio.on("message")
    async def message(sid, data):
        await eio.send(sid, data)

    server = await fastio.serve(eio, "127.0.0.1", 0)
    try:
        client = EngineClient()
        received: asyncio.Queue = asyncio.Queue()
        client.on("message", received.put_nowait)
        closed = asyncio.get_running_loop().create_future()
        client.on("disconnect", lambda reason: closed.set_result(reason))
        await client.connect(f"http://127.0.0.1:{server.port}")
        await client.send("text")
        await client.send(b"\x00\x01")
        await client.send({"json": True})
        assert await asyncio.wait_for(received.get(), 5) == "text"
        assert await asyncio.wait_for(received.get(), 5) == b"\x00\x01"
        assert await asyncio.wait_for(received.get(), 5) == '{"json":true}'
        await client.disconnect()
        assert await asyncio.wait_for(closed, 5) == "client disconnect"
        with pytest.raises(ValueError):
            await client.connect(f"http://127.0.0.1:{server.port}", transports=["carrier-pigeon"])
    finally:
        await server.close()


@pytest.mark.timeout(20)
async def test_polling_posts_respect_max_payload(fastio_backend, clients):
    """Queued packets are split into POSTs no larger than the server's maxPayload."""
    backend = await fastio_backend.start(max_http_buffer_size=20_000)
    client = make_client(clients)
    await client.connect(backend.url, transports=["polling"])
    assert client.eio.max_payload == 20_000
    count = 60
    for i in range(count):  # about 3 * 20 kB queued at once: several POSTs
        await client.emit("note", (i, "x" * 1000))
    await client.emit("note", (count, b"\x07" * 12_000))  # binary grows by a third in base64
    for i in range(count + 1):
        note = await backend.expect("note")
        assert note["args"][0] == i
    assert client.connected
    assert await client.call("echo", "ok") == "ok"
