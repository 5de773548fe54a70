"""AsyncSimpleClient and the blocking SimpleClient."""
from __future__ import annotations

import asyncio

import pytest

from fastio import exceptions
from fastio.client.simple import AsyncSimpleClient
from fastio.client.sync import SimpleClient


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transports", [None, ["polling"], ["websocket"]])
async def test_receive_returns_events_in_order(any_backend, transports):
    backend = await any_backend.start()
    async with AsyncSimpleClient(reconnection=False) as client:
        await client.connect(backend.url, transports=transports)
        assert client.connected and client.sid
        await client.emit("burst", 200)
        for i in range(200):
            assert await client.receive(timeout=5) == ["seq", i]
        await client.emit("echo_event", ("two", b"\x00args"))
        assert await client.receive(timeout=5) == ["echoed", "two", b"\x00args"]
    assert not client.connected
    await backend.expect("disconnect", nsp="/")


@pytest.mark.timeout(20)
async def test_receive_times_out_when_nothing_comes(any_backend):
    backend = await any_backend.start()
    client = AsyncSimpleClient()
    try:
        await client.connect(backend.url, namespace="/chat")
        assert client.namespace == "/chat"
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(exceptions.TimeoutError):
            await client.receive(timeout=0.3)
        assert 0.25 <= loop.time() - started < 2
        # still usable, and an event that comes later is received
        await client.emit("echo_event", "late")
        assert await client.receive(timeout=5) == ["echoed", "late"]
    finally:
        await client.disconnect()


@pytest.mark.timeout(20)
async def test_simple_call_and_call_timeout(any_backend):
    backend = await any_backend.start()
    async with AsyncSimpleClient() as client:
        await client.connect(backend.url, auth={"token": "secret"}, namespace="/admin",
                             transports=["websocket"])
        assert client.transport == "websocket"
        assert await client.call("echo", {"bin": b"\x01"}, timeout=5) == {"bin": b"\x01"}
        assert (await client.call("whoami", timeout=5))["sid"] == client.sid
        with pytest.raises(exceptions.TimeoutError):
            await client.call("silent", timeout=0.2)


@pytest.mark.timeout(20)
async def test_simple_client_refused_and_disconnected(fastio_backend):
    backend = await fastio_backend.start()
    client = AsyncSimpleClient(reconnection=False)
    with pytest.raises(exceptions.ConnectionError):
        await client.connect(backend.url, namespace="/admin")
    assert not client.connected

    client = AsyncSimpleClient(reconnection=False)
    await client.connect(backend.url)
    await client.emit("burst", 2)
    await client.emit("kick")
    # what arrived before the server disconnected is still returned, then DisconnectedError
    assert await client.receive(timeout=5) == ["seq", 0]
    assert await client.receive(timeout=5) == ["seq", 1]
    with pytest.raises(exceptions.DisconnectedError):
        await client.receive(timeout=5)
    with pytest.raises(exceptions.DisconnectedError):
        await client.emit("echo", 1)
    with pytest.raises(RuntimeError):
        client.connected = True
        await client.connect(backend.url)


@pytest.mark.timeout(30)
async def test_simple_client_waits_across_a_reconnection(fastio_backend):
    backend = await fastio_backend.start()
    client = AsyncSimpleClient(reconnection_delay=0.05, reconnection_delay_max=0.1)
    try:
        await client.connect(backend.url)
        first_sid = client.sid
        lost = asyncio.Event()
        client.client.eio.on("disconnect", lambda reason: lost.set())
        await client.emit("drop")
        await asyncio.wait_for(lost.wait(), 5)
        # emit/receive wait for the reconnection instead of failing
        await client.emit("echo_event", "after reconnect")
        assert await client.receive(timeout=10) == ["echoed", "after reconnect"]
        assert client.connected and client.sid != first_sid
    finally:
        await client.disconnect()


@pytest.mark.timeout(30)
async def test_blocking_simple_client(any_backend):
    backend = await any_backend.start()
    url = backend.url

    def scenario():
        with SimpleClient(reconnection=False) as client:
            client.connect(url, transports=["polling"])
            assert client.transport == "polling" and client.connected and client.sid
            client.emit("burst", 50)
            received = [client.receive(timeout=5) for _ in range(50)]
            assert received == [["seq", i] for i in range(50)]
            assert client.call("echo", ("a", b"b"), timeout=5) == ("a", b"b")
            try:
                client.receive(timeout=0.2)
            except exceptions.TimeoutError:
                timed_out = True
            else:
                timed_out = False
            assert timed_out
            try:
                client.call("silent", timeout=0.2)
            except exceptions.TimeoutError:
                call_timed_out = True
            assert call_timed_out
        assert not client.connected
        return True

    assert await asyncio.wait_for(asyncio.to_thread(scenario), 25)
    await backend.expect("disconnect", nsp="/")
