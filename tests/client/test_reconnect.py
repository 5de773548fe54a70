"""Reconnection: the server goes away while the client is connected, then comes back on the same
port. Against fastio's server (stopped with ``server.close()``) and Node's (process killed)."""
from __future__ import annotations

import asyncio
import random

import pytest

from fastio import exceptions
from fastio.client import AsyncClient

DELAY = 0.05
DELAY_MAX = 0.4
FACTOR = 0.5
NAMESPACES = ["/", "/chat", "/admin"]
TRANSPORTS = {"upgrade": None, "polling": ["polling"], "websocket": ["websocket"]}
#: scheduling slack allowed on top of a chosen delay
SLACK = 0.25


def expected_base(attempt: int) -> float:
    return min(DELAY * 2 ** attempt, DELAY_MAX)


def check_backoff(log_records, attempts: int) -> None:
    """Each chosen delay is within the jitter bounds of its exponential base, and the next
    attempt started after that delay."""
    planned = log_records.matching("Connection failed, new attempt in")
    started = log_records.matching("Reconnection attempt ")
    started = [r for r in started if "failed" not in r.getMessage()]
    assert len(planned) >= attempts and len(started) >= attempts
    for k in range(attempts):
        chosen = float(planned[k].getMessage().split(" in ")[1].split()[0])
        base = expected_base(k)
        assert base * (1 - FACTOR) - 0.006 <= chosen <= base * (1 + FACTOR) + 0.006, (k, chosen, base)
        waited = started[k].created - planned[k].created
        assert chosen - 0.02 <= waited <= chosen + SLACK, (k, chosen, waited)


@pytest.mark.timeout(45)
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_reconnects_and_rejoins_every_namespace(any_backend, clients, rec, log_records, mode):
    backend = await any_backend.start()
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX,
                         randomization_factor=FACTOR, logger=log_records.logger)
    clients.append(client)
    for ns in NAMESPACES:
        client.on("connect", rec.handler(f"connect {ns}"), namespace=ns)
        client.on("disconnect", rec.handler(f"disconnect {ns}"), namespace=ns)
        client.on("__disconnect_final", rec.handler(f"final {ns}"), namespace=ns)
    auth_calls = []

    def auth():
        auth_calls.append(1)
        return {"token": "secret", "round": len(auth_calls)}

    await client.connect(backend.url, namespaces=NAMESPACES, auth=auth, transports=TRANSPORTS[mode])
    first_sids = dict(client.namespaces)
    for ns in NAMESPACES:
        await backend.expect("connect", nsp=ns)

    await backend.stop()
    # fastio's shutdown sends a close packet; a polling client between two polls may find the
    # listener closed before it fetches it (as with Node), which is a transport error
    expected = {"server disconnect"} if backend.name == "fastio" and mode == "websocket" else \
        {"server disconnect", "transport error"} if backend.name == "fastio" else {"transport error"}
    for ns in NAMESPACES:
        assert (await rec.wait(f"disconnect {ns}"))[0][0] in expected
    assert not client.connected

    # let it fail a few times while the server is down: 0.05, 0.1, 0.2, 0.4 s (+-50%)
    await log_records.wait("Reconnection attempt 4 failed", timeout=15)
    assert rec.of("connect /") == [()]
    assert client.eio.state == "disconnected"

    await backend.restart()
    await log_records.wait("Reconnection successful", timeout=15)
    for ns in NAMESPACES:
        await rec.wait(f"connect {ns}", 2)
    assert client.connected
    assert set(client.namespaces) == set(NAMESPACES)
    assert all(client.namespaces[ns] != first_sids[ns] for ns in NAMESPACES)
    for ns in NAMESPACES:
        info = await client.call("whoami", namespace=ns, timeout=5)
        assert info["sid"] == client.get_sid(ns)
        assert info["auth"]["round"] == len(auth_calls) > 1  # auth re-evaluated for the attempt
        seen = await backend.expect("connect", nsp=ns)
        assert seen["sid"] == client.get_sid(ns)
    assert all(rec.of(f"final {ns}") == [] for ns in NAMESPACES)
    check_backoff(log_records, 4)

    if mode == "upgrade":
        assert client.transport() == "websocket"
    await client.disconnect()
    for ns in NAMESPACES:
        assert (await rec.wait(f"disconnect {ns}", 2))[1] == ("client disconnect",)
        assert rec.of(f"final {ns}") == [()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["upgrade", "polling"])
async def test_reconnects_after_the_server_closes_the_transport(any_backend, clients, rec, mode):
    """The Engine.IO connection is closed by the server (not a namespace DISCONNECT): the client
    reconnects to the same server at once and joins both namespaces again."""
    backend = await any_backend.start()
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX)
    clients.append(client)
    for ns in ("/", "/chat"):
        client.on("connect", rec.handler(f"connect {ns}"), namespace=ns)
        client.on("disconnect", rec.handler(f"disconnect {ns}"), namespace=ns)
    await client.connect(backend.url, namespaces=["/", "/chat"], transports=TRANSPORTS[mode])
    waiter = asyncio.ensure_future(client.wait())
    await client.emit("drop", namespace="/chat")
    for ns in ("/", "/chat"):
        reason = (await rec.wait(f"disconnect {ns}"))[0][0]
        assert reason in ("server disconnect", "transport error")
        await rec.wait(f"connect {ns}", 2)
    assert client.connected and set(client.namespaces) == {"/", "/chat"}
    assert not waiter.done()  # wait() goes on across reconnections
    assert await client.call("echo", "back", namespace="/chat", timeout=5) == "back"
    await client.disconnect()
    await asyncio.wait_for(waiter, 5)


@pytest.mark.timeout(30)
async def test_gives_up_after_reconnection_attempts(fastio_backend, clients, rec, log_records):
    backend = await fastio_backend.start()
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX,
                         reconnection_attempts=3, logger=log_records.logger)
    clients.append(client)
    client.on("disconnect", rec.handler("disconnect"))
    client.on("connect_error", rec.handler("connect_error"))
    client.on("__disconnect_final", rec.handler("final"))
    await client.connect(backend.url, transports=["websocket"])
    await backend.stop()
    await asyncio.wait_for(client.wait(), 10)
    assert rec.of("disconnect") == [("server disconnect",)]
    assert rec.of("final") == [()]
    assert len(rec.of("connect_error")) == 3  # one per failed attempt
    assert len([m for m in log_records.messages() if m.startswith("Reconnection attempt ")
                and not m.endswith(")") and "failed" not in m]) == 3
    assert any("giving up" in m for m in log_records.messages())
    assert not client.connected


@pytest.mark.timeout(30)
async def test_disconnect_stops_reconnecting(any_backend, clients, rec, log_records):
    backend = await any_backend.start()
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX,
                         logger=log_records.logger)
    clients.append(client)
    client.on("__disconnect_final", rec.handler("final"))
    await client.connect(backend.url)
    await backend.stop()
    await log_records.wait("Reconnection attempt 2 failed")
    await client.disconnect()
    await asyncio.wait_for(client.wait(), 5)
    assert rec.of("final") == [()]
    attempts = len(log_records.matching("Reconnection attempt "))
    await backend.restart()
    await asyncio.sleep(0.5)  # long enough for several more attempts, had it not stopped
    assert len(log_records.matching("Reconnection attempt ")) == attempts
    assert not client.connected


@pytest.mark.timeout(30)
async def test_retry_on_the_first_connection(any_backend, clients, rec, log_records, unused_tcp_port):
    client = AsyncClient(reconnection_delay=DELAY, reconnection_delay_max=DELAY_MAX,
                         logger=log_records.logger)
    clients.append(client)
    client.on("connect", rec.handler("connect"))
    client.on("connect_error", rec.handler("connect_error"))
    url = f"http://127.0.0.1:{unused_tcp_port}"
    connecting = asyncio.ensure_future(client.connect(url, retry=True))
    await log_records.wait("Reconnection attempt 2 failed")
    assert not connecting.done()
    await any_backend.start(port=unused_tcp_port)
    await asyncio.wait_for(connecting, 10)
    assert client.connected and rec.of("connect") == [()]
    assert len(rec.of("connect_error")) >= 3  # the first try, then each failed attempt
    assert await client.call("echo", 1, timeout=5) == 1


@pytest.mark.timeout(10)
async def test_no_reconnection_when_disabled(fastio_backend, clients, rec):
    backend = await fastio_backend.start()
    client = AsyncClient(reconnection=False)
    clients.append(client)
    client.on("disconnect", rec.handler("disconnect"))
    client.on("__disconnect_final", rec.handler("final"))
    await client.connect(backend.url, transports=["websocket"])
    await backend.stop()
    await asyncio.wait_for(client.wait(), 5)
    assert rec.of("disconnect") == [("server disconnect",)]
    assert rec.of("final") == [()]
    with pytest.raises(exceptions.BadNamespaceError):
        await client.emit("echo", 1)


def test_backoff_delays_follow_the_javascript_client():
    client = AsyncClient(reconnection_delay=1, reconnection_delay_max=5, randomization_factor=0.5,
                         handle_sigint=False)
    random.seed(1234)
    for attempt, base in enumerate([1, 2, 4, 5, 5, 5]):
        samples = [client._next_delay(attempt) for _ in range(2000)]
        assert min(samples) >= base * 0.5 and max(samples) <= base * 1.5
        assert min(samples) < base * 0.6 and max(samples) > base * 1.4  # the jitter is used
    exact = AsyncClient(reconnection_delay=0.5, reconnection_delay_max=3, randomization_factor=0,
                        handle_sigint=False)
    assert [exact._next_delay(a) for a in range(5)] == [0.5, 1, 2, 3, 3]
    assert exact._next_delay(10_000) == 3  # no overflow after many attempts
