"""Handler registration and dispatch (fastio/base/handlers.py), through the public APIs.

A handler is called with the arguments it accepts, measured once from its signature: the older
``disconnect(sid)`` / ``connect(sid, environ)`` forms keep working, and a ``TypeError`` raised
inside a handler is logged once, never taken as a sign to call the handler again.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

import fastio
from fastio.base.handlers import fit_args, positional_capacity

WAIT = 10.0


# -- arity detection ---------------------------------------------------------------------------


def two(a: Any, b: Any) -> None:
    """Two positional arguments."""


def two_and_keyword(a: Any, b: Any = None, *, c: Any = None) -> None:
    """Two positional arguments (one defaulted) and a keyword-only one."""


def star(*args: Any) -> None:
    """Any number."""


class Handlers:
    def method(self, sid: Any) -> None:
        """One argument once bound."""

    def __call__(self, sid: Any, reason: Any) -> None:
        """Two arguments once bound."""


def test_positional_capacity_of_each_kind_of_callable() -> None:
    assert positional_capacity(two) == 2
    assert positional_capacity(two_and_keyword) == 2
    assert positional_capacity(star) is None
    assert positional_capacity(lambda: None) == 0
    obj = Handlers()
    assert positional_capacity(obj.method) == 1
    assert positional_capacity(Handlers.method) == 2
    assert positional_capacity(obj) == 2
    assert positional_capacity(functools.partial(two, 1)) == 1
    assert positional_capacity(functools.partial(star, 1)) is None
    # A second bound method object of the same function is measured from the cache.
    assert positional_capacity(Handlers().method) == 1


def test_fit_args_drops_only_optional_trailing_arguments() -> None:
    assert fit_args(two, ("sid", "environ", "auth"), 1) == ("sid", "environ")
    assert fit_args(star, ("sid", "reason"), 1) == ("sid", "reason")
    # A handler that takes too few required arguments gets them all and raises its own error.
    assert fit_args(lambda: None, ("sid", "reason"), 1) == ("sid",)
    assert fit_args(lambda: None, ("sid", "reason"), 0) == ("sid", "reason")


# -- end to end: a fastio server and a fastio client ---------------------------------------------


class Calls:
    """Records each call of a handler and signals the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.changed = asyncio.Event()

    def add(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self.changed.set()

    async def wait_for(self, name: str, count: int = 1) -> list[tuple[Any, ...]]:
        async def until() -> None:
            while len(self.of(name)) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), WAIT)
        return self.of(name)

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


@pytest.fixture
async def served() -> Any:
    """``url = await served(sio)``; clients and servers are closed at teardown."""
    servers: list[Any] = []
    clients: list[Any] = []

    async def serve(sio: Any) -> str:
        server = await fastio.serve(sio, "127.0.0.1", 0)
        servers.append(server)
        return "http://127.0.0.1:%d" % server.port

    serve.clients = clients  # type: ignore[attr-defined]
    yield serve
    for client in clients:
        await asyncio.wait_for(client.shutdown(), WAIT)
    for server in servers:
        await asyncio.wait_for(server.close(), WAIT)


async def connect(served: Any, url: str, **kwargs: Any) -> fastio.AsyncClient:
    client = fastio.AsyncClient(reconnection=False, handle_sigint=False)
    served.clients.append(client)
    await client.connect(url, transports=["websocket"], **kwargs)
    return client


async def test_server_connect_and_disconnect_old_and_new_forms(served: Any) -> None:
    calls = Calls()
    sio = fastio.AsyncServer()
    sio.on("connect", lambda sid, environ: calls.add("connect/", sid))
    sio.on("disconnect", lambda sid: calls.add("disconnect/", sid))
    sio.on("connect", lambda sid, environ, auth: calls.add("connect/new", sid, auth), namespace="/new")
    sio.on("disconnect", lambda sid, reason: calls.add("disconnect/new", sid, reason), namespace="/new")
    url = await served(sio)
    client = await connect(served, url, namespaces=["/", "/new"], auth={"token": 1})
    assert [a[1] for a in calls.of("connect/new")] == [{"token": 1}]
    assert len(calls.of("connect/")) == 1
    await client.disconnect()
    assert len(await calls.wait_for("disconnect/")) == 1
    (sid, reason), = await calls.wait_for("disconnect/new")
    assert reason == sio.reason.CLIENT_DISCONNECT


async def test_partial_bound_method_and_callable_object_as_handlers(served: Any) -> None:
    calls = Calls()

    class Recorder:
        def on_disconnect(self, sid: str) -> None:
            calls.add("method", sid)

        def __call__(self, sid: str, reason: str) -> None:
            calls.add("object", sid, reason)

    def tagged(tag: str, sid: str) -> None:
        calls.add(tag, sid)

    sio = fastio.AsyncServer()
    recorder = Recorder()
    sio.on("disconnect", recorder.on_disconnect)
    sio.on("disconnect", recorder, namespace="/obj")
    sio.on("disconnect", functools.partial(tagged, "partial"), namespace="/partial")
    url = await served(sio)
    client = await connect(served, url, namespaces=["/", "/obj", "/partial"])
    await client.disconnect()
    assert len(await calls.wait_for("method")) == 1
    assert (await calls.wait_for("object"))[0][1] == sio.reason.CLIENT_DISCONNECT
    assert len(await calls.wait_for("partial")) == 1


async def test_type_error_inside_a_handler_is_logged_once_and_not_retried(
        served: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    sio = fastio.AsyncServer()

    # Both accept the older form too: a retry without the reason would run their body again.
    @sio.event
    def disconnect(sid: str, reason: str | None = None) -> None:
        calls.add("disconnect", sid, reason)
        raise TypeError("a bug in the handler")

    @sio.on("boom")
    def boom(sid: str, data: Any) -> None:
        calls.add("boom", data)
        raise TypeError("another bug")

    def engine_disconnect(sid: str, reason: str | None = None) -> None:
        calls.add("eio disconnect", sid)
        raise TypeError("a bug at the Engine.IO level")

    sio.eio.on("disconnect", engine_disconnect)
    url = await served(sio)
    client = await connect(served, url)
    with caplog.at_level(logging.ERROR):
        await client.emit("boom", 1)
        await calls.wait_for("boom")
        await client.disconnect()
        await calls.wait_for("disconnect")
        await calls.wait_for("eio disconnect")
    assert len(calls.of("boom")) == 1
    assert len(calls.of("disconnect")) == 1
    assert len(calls.of("eio disconnect")) == 1
    errors = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], TypeError)]
    assert sorted(str(r.exc_info[1]) for r in errors) == [  # type: ignore[index]
        "a bug at the Engine.IO level", "a bug in the handler", "another bug"]


async def test_catch_all_handlers(served: Any) -> None:
    calls = Calls()
    sio = fastio.AsyncServer(namespaces="*")
    sio.on("*", lambda event, sid, data: calls.add("any event", event, data))
    sio.on("hello", lambda namespace, sid, data: calls.add("any ns", namespace, data), namespace="*")
    sio.on("*", lambda event, namespace, sid, data: calls.add("any any", event, namespace, data),
           namespace="*")
    sio.on("connect", lambda namespace, sid, environ: calls.add("connect", namespace), namespace="*")
    url = await served(sio)
    client = await connect(served, url, namespaces=["/", "/chat"])
    assert sorted(a[0] for a in calls.of("connect")) == ["/", "/chat"]
    await client.emit("ping", 1)
    await client.emit("hello", 2, namespace="/chat")
    await client.emit("other", 3, namespace="/chat")
    assert await calls.wait_for("any event") == [("ping", 1)]
    assert await calls.wait_for("any ns") == [("/chat", 2)]
    assert await calls.wait_for("any any") == [("other", "/chat", 3)]


async def test_namespace_class_old_forms_and_catch_all_namespace(served: Any) -> None:
    calls = Calls()

    class Old(fastio.AsyncNamespace):
        def on_connect(self, sid: str, environ: dict[str, Any]) -> None:
            calls.add("connect", sid)

        def on_disconnect(self, sid: str) -> None:
            calls.add("disconnect", sid)

    class Everywhere(fastio.AsyncNamespace):
        async def on_disconnect(self, namespace: str, sid: str, reason: str) -> None:
            calls.add("any disconnect", namespace, reason)

    sio = fastio.AsyncServer(namespaces="*")
    sio.register_namespace(Old("/old"))
    sio.register_namespace(Everywhere("*"))
    url = await served(sio)
    client = await connect(served, url, namespaces=["/old", "/other"])
    assert len(calls.of("connect")) == 1
    await client.disconnect()
    assert len(await calls.wait_for("disconnect")) == 1
    assert await calls.wait_for("any disconnect") == [("/other", sio.reason.CLIENT_DISCONNECT)]


async def test_client_disconnect_forms_and_no_retry(served: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    sio = fastio.AsyncServer(namespaces="*")

    @sio.on("kick", namespace="*")
    async def kick(namespace: str, sid: str) -> None:
        await sio.disconnect(sid, namespace=namespace)

    url = await served(sio)
    client = fastio.AsyncClient(reconnection=False, handle_sigint=False)
    served.clients.append(client)
    client.on("disconnect", lambda: calls.add("old"))
    client.on("disconnect", lambda reason: calls.add("new", reason), namespace="/new")

    def buggy(reason: str) -> None:
        calls.add("buggy", reason)
        raise TypeError("a bug in the client's handler")

    client.on("disconnect", buggy, namespace="/buggy")

    class Ns(fastio.AsyncClientNamespace):
        def on_disconnect(self) -> None:
            calls.add("class")

    client.register_namespace(Ns("/class"))
    await client.connect(url, transports=["websocket"], namespaces=["/", "/new", "/buggy", "/class"])
    with caplog.at_level(logging.ERROR):
        for namespace in ("/", "/new", "/buggy", "/class"):
            await client.emit("kick", namespace=namespace)
        await calls.wait_for("old")
        await calls.wait_for("buggy")
        await calls.wait_for("class")
        assert await calls.wait_for("new") == [(sio.reason.SERVER_DISCONNECT,)]
    assert len(calls.of("buggy")) == 1 and len(calls.of("old")) == 1
    errors = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], TypeError)]
    assert len(errors) == 1


async def test_cors_callable_with_one_or_two_arguments(served: Any) -> None:
    seen: list[Any] = []

    def one(origin: str) -> bool:
        seen.append(origin)
        return True

    def both(origin: str, environ: dict[str, Any]) -> bool:
        seen.append(environ["HTTP_ORIGIN"])
        return True

    for check in (one, both):
        sio = fastio.AsyncServer(cors_allowed_origins=check)
        url = await served(sio)
        client = fastio.AsyncClient(reconnection=False, handle_sigint=False)
        served.clients.append(client)
        await client.connect(url, headers={"Origin": "http://example.test"}, transports=["polling"])
        await client.disconnect()
    assert set(seen) == {"http://example.test"} and len(seen) >= 2
