"""fastio's Socket.IO client against Node's socket.io 4.8 server (node_server.mjs).

The scenarios of test_client_fastio.py run here unchanged with ``backend`` pointing at a Node
process; the tests after them need Node's server (connection state recovery, its transports).
"""
from __future__ import annotations

import asyncio

import pytest

from fastio import exceptions
from fastio.client import AsyncClient

from test_client_fastio import (  # noqa: F401 - collected here again, against Node
    test_binary_nested_in_objects,
    test_call_times_out_cleanly,
    test_callable_url_headers_auth,
    test_catch_all_handlers,
    test_class_based_namespace,
    test_client_disconnect,
    test_connect_error_carries_server_data,
    test_connect_transport_and_sid,
    test_events_and_acks_both_ways,
    test_namespaces_default_to_handlers,
    test_namespaces_with_auth,
    test_refused_namespace_next_to_accepted_one,
    test_server_disconnects_namespace,
    test_upgrade_keeps_order,
)


@pytest.fixture
async def backend(node_backend):
    return await node_backend.start()


@pytest.mark.timeout(20)
async def test_node_reports_the_upgrade(backend, clients):
    client = AsyncClient(reconnection=False)
    clients.append(client)
    await client.connect(backend.url)
    seen = await backend.expect("connect", nsp="/")
    assert seen["transport"] == "polling"
    upgraded = await backend.expect("upgrade", nsp="/")
    assert upgraded["transport"] == "websocket" and upgraded["sid"] == client.get_sid()
    assert client.transport() == "websocket"


@pytest.mark.timeout(20)
async def test_node_server_with_websocket_only(node_backend, clients):
    backend = await node_backend.start(transports=["websocket"])
    client = AsyncClient(reconnection=False)
    clients.append(client)
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", b"\x01") == b"\x01"
    await client.disconnect()

    refused = AsyncClient(reconnection=False)
    clients.append(refused)
    errors = []
    refused.on("connect_error", errors.append)
    with pytest.raises(exceptions.ConnectionError):
        await refused.connect(backend.url, transports=["polling"])
    # Node's JSON error body is what connect_error gets
    assert errors and errors[0]["message"] == "Transport unknown"


@pytest.mark.timeout(20)
async def test_node_heartbeat(node_backend, clients, rec):
    backend = await node_backend.start(pingInterval=200, pingTimeout=200)
    client = AsyncClient(reconnection=False)
    clients.append(client)
    client.on("disconnect", rec.handler("disconnect"))
    await client.connect(backend.url)
    assert client.eio.ping_interval == 0.2
    # several heartbeats, each answered in time (Node reports the PONGs it receives)
    for _ in range(4):
        await backend.expect("pong", nsp="/")
    assert client.connected and rec.of("disconnect") == []
    assert await client.call("echo", "alive") == "alive"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transports", [None, ["polling"]])
async def test_connection_state_recovery(node_backend, clients, rec, log_records, transports):
    """Node appends an offset to events and announces a ``pid``: handlers do not see the offset,
    and after the transport drops the state is recovered (same sid, missed events replayed)."""
    backend = await node_backend.start(recovery=True)
    client = AsyncClient(reconnection_delay=0.4, reconnection_delay_max=0.4, randomization_factor=0,
                         logger=log_records.logger)
    other = AsyncClient(reconnection=False)
    clients += [client, other]

    client.on("connect", rec.handler("connect"), namespace="/chat")
    client.on("disconnect", rec.handler("disconnect"), namespace="/chat")

    @client.on("echoed", namespace="/chat")
    def echoed(a, b):  # exactly two arguments: the offset must not be passed on
        rec.add("echoed", a, b)

    @client.on("news", namespace="/chat")
    def news(item):
        rec.add("news", item)

    await client.connect(backend.url, namespaces=["/chat"], transports=transports)
    await other.connect(backend.url, namespaces=["/chat"])
    sid = client.get_sid("/chat")
    first = await backend.expect("connect", nsp="/chat", sid=sid)
    assert first["recovered"] is False

    await client.emit("echo_event", ("a", {"b": 1}), namespace="/chat")
    assert (await rec.wait("echoed"))[0] == ("a", {"b": 1})
    await client.emit("broadcast", "before", namespace="/chat")
    assert (await rec.wait("news"))[0] == ("before",)

    await client.emit("drop", namespace="/chat")
    await rec.wait("disconnect")
    # sent while the client is away, kept by the server for the recovery
    await other.emit("broadcast", "while away", namespace="/chat")
    await rec.wait("connect", 2)
    recovered = await backend.expect("connect", nsp="/chat", recovered=True)
    assert recovered["sid"] == sid == client.get_sid("/chat")
    assert [args for args in rec.of("news")] == [("before",), ("while away",)]
    assert await client.call("echo", "after", namespace="/chat") == "after"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transports", [None, ["polling"], ["websocket"]])
async def test_tls_with_and_without_verification(node_backend, clients, tls_files, transports):
    backend = await node_backend.start(tls=tls_files)
    assert backend.url.startswith("https://")
    client = AsyncClient(reconnection=False, ssl_verify=False)
    clients.append(client)
    await client.connect(backend.url, transports=transports)
    assert client.transport() == (transports or ["websocket"])[0]
    assert await client.call("echo", {"over": "tls", "bin": b"\x00"}) == {"over": "tls", "bin": b"\x00"}
    await client.disconnect()

    strict = AsyncClient(reconnection=False)  # the self-signed certificate is refused
    clients.append(strict)
    with pytest.raises(exceptions.ConnectionError):
        await strict.connect(backend.url, transports=transports)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], None])
async def test_msgpack_serializer_with_node(node_backend, clients, transports):
    """serializer="msgpack" against Node's socket.io with socket.io-msgpack-parser."""
    backend = await node_backend.start(parser="msgpack")
    client = AsyncClient(reconnection=False, serializer="msgpack")
    clients.append(client)
    answers = asyncio.Queue()
    client.on("question", lambda data: {"got": data, "bin": b"\x09"})
    client.on("answer", lambda data: answers.put_nowait(data))
    await client.connect(backend.url, transports=transports, auth={"user": "mp"})
    payload = {"blob": b"\x00\xff" * 5000, "list": [1, 2.5, None, "x"], "nested": {"b": b"\x01"}}
    assert await client.call("echo", payload) == payload
    assert await client.call("echo", ("a", b"\x02", 3)) == ("a", b"\x02", 3)
    assert (await client.call("whoami"))["auth"] == {"user": "mp"}
    await client.emit("ask", "why")
    assert await asyncio.wait_for(answers.get(), 10) == {"got": "why", "bin": b"\x09"}
    await client.disconnect()
