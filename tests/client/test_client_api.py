"""python-socketio's client API details: the client namespaces' method signatures (``send``
takes ``room`` on the blocking ``ClientNamespace``) and ``SimpleClient.client_class``."""
from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
import socketio as pysio

import fastio
from fastio import exceptions


@pytest.mark.parametrize("ours, theirs", [
    (fastio.ClientNamespace, pysio.ClientNamespace),
    (fastio.AsyncClientNamespace, pysio.AsyncClientNamespace),
])
def test_client_namespace_methods_have_python_socketios_signatures(ours, theirs):
    for name in ("emit", "send", "call", "disconnect", "trigger_event"):
        mine = list(inspect.signature(getattr(ours, name)).parameters.items())
        want = list(inspect.signature(getattr(theirs, name)).parameters.items())
        assert [(n, p.kind, p.default) for n, p in mine] == [(n, p.kind, p.default) for n, p in want], name


def test_simple_clients_have_a_client_class():
    assert fastio.SimpleClient.client_class is fastio.Client
    assert fastio.AsyncSimpleClient.client_class is fastio.AsyncClient


@pytest.fixture
async def message_server():
    """A fastio server answering ``message`` events with what it got, and where."""
    sio = fastio.AsyncServer(namespaces="*")

    @sio.on("message", namespace="*")
    async def message(namespace, sid, data):
        return ["got", namespace, data]

    server = await fastio.serve(sio, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        await server.close()


@pytest.mark.timeout(20)
async def test_blocking_namespace_send_with_room_positional(message_server):
    url = message_server

    class Chat(fastio.ClientNamespace):
        pass

    def scenario():
        client = fastio.Client(reconnection=False)
        chat = Chat("/chat")
        client.register_namespace(chat)
        client.connect(url, namespaces=["/", "/chat"], transports=["websocket"])
        try:
            answers: list[tuple] = []
            done = threading.Event()

            def ack(*args):
                answers.append(args)
                done.set()

            # python-socketio's order: send(data, room=None, namespace=None, callback=None)
            chat.send("hello", None, None, ack)
            assert done.wait(5)
            done.clear()
            chat.send("root", namespace="/", callback=ack)
            assert done.wait(5)
            return answers
        finally:
            client.disconnect()

    answers = await asyncio.wait_for(asyncio.to_thread(scenario), 15)
    assert answers == [(["got", "/chat", "hello"],), (["got", "/", "root"],)]


@pytest.mark.timeout(20)
async def test_async_namespace_send(message_server):
    client = fastio.AsyncClient(reconnection=False)
    chat = fastio.AsyncClientNamespace("/chat")
    client.register_namespace(chat)
    await client.connect(message_server, namespaces=["/chat"], transports=["websocket"])
    try:
        got: asyncio.Future = asyncio.get_running_loop().create_future()
        await chat.send("hi", None, lambda *a: got.set_result(a))
        assert await asyncio.wait_for(got, 5) == (["got", "/chat", "hi"],)
    finally:
        await client.disconnect()


@pytest.mark.timeout(30)
async def test_simple_client_makes_its_client_from_client_class(fastio_backend):
    backend = await fastio_backend.start()
    made: list[object] = []

    class RecordingClient(fastio.Client):
        def __init__(self, *args, **kwargs):
            made.append((args, kwargs))
            super().__init__(*args, **kwargs)

    class MySimpleClient(fastio.SimpleClient):
        client_class = RecordingClient

    def scenario():
        with MySimpleClient(reconnection=False) as client:
            client.connect(backend.url, transports=["websocket"])
            assert isinstance(client.client, RecordingClient)
            assert client.connected and client.sid == client.client.get_sid("/")
            client.emit("burst", 100)
            assert [client.receive(timeout=5) for _ in range(100)] == [["seq", i] for i in range(100)]
            assert client.call("echo", {"b": b"\x00"}, timeout=5) == {"b": b"\x00"}
        assert not client.connected
        with pytest.raises(exceptions.DisconnectedError):
            client.receive(timeout=1)
        return True

    assert await asyncio.wait_for(asyncio.to_thread(scenario), 25)
    assert made == [((), {"reconnection": False})]
    await backend.expect("disconnect", nsp="/")


@pytest.mark.timeout(20)
async def test_async_simple_client_makes_its_client_from_client_class(fastio_backend):
    backend = await fastio_backend.start()

    class MyClient(fastio.AsyncClient):
        pass

    class MySimpleClient(fastio.AsyncSimpleClient):
        client_class = MyClient

    async with MySimpleClient(reconnection=False) as client:
        await client.connect(backend.url)
        assert type(client.client) is MyClient
        assert await client.call("echo", 7, timeout=5) == 7
