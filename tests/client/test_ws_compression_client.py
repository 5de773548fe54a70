"""fastio's client with permessage-deflate (``websocket_extra_options={"permessage_deflate":
...}``) against fastio's server and Node's socket.io server (``perMessageDeflate``).

Which messages went compressed is read from the client's codec: ``inflate_payload`` and
``deflate_payload`` of fastio.engineio.client_ws are wrapped to count their calls."""
from __future__ import annotations

import pytest

from fastio.client import AsyncClient
from fastio.engineio import client_ws
from fastio.engineio.client_ws import accept_deflate_answer

BIG = "x" * 50_000


@pytest.fixture
def codec(monkeypatch):
    calls = {"inflate": 0, "deflate": 0}
    inflate, deflate = client_ws.inflate_payload, client_ws.deflate_payload

    def counting_inflate(data, limit):
        calls["inflate"] += 1
        return inflate(data, limit)

    def counting_deflate(data, wbits):
        calls["deflate"] += 1
        return deflate(data, wbits)

    monkeypatch.setattr(client_ws, "inflate_payload", counting_inflate)
    monkeypatch.setattr(client_ws, "deflate_payload", counting_deflate)
    return calls


def make_client(clients, option=True):
    client = AsyncClient(reconnection=False, websocket_extra_options={"permessage_deflate": option})
    clients.append(client)
    return client


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend_name", ["fastio", "node"])
async def test_compressed_both_ways(backend_name, fastio_backend, node_backend, clients, codec):
    if backend_name == "fastio":
        backend = await fastio_backend.start(websocket_compression=True)
    else:
        backend = await node_backend.start(perMessageDeflate=True)
    client = make_client(clients)
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", "small") == "small"
    assert codec == {"inflate": 0, "deflate": 0}           # under the 1,024-byte threshold
    assert await client.call("echo", BIG) == BIG
    assert codec == {"inflate": 1, "deflate": 1}
    await client.disconnect()


@pytest.mark.timeout(30)
async def test_threshold_option(fastio_backend, clients, codec):
    backend = await fastio_backend.start(websocket_compression=True, compression_threshold=10)
    client = make_client(clients, {"threshold": 10})
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", "a" * 20) == "a" * 20
    assert codec["inflate"] >= 1 and codec["deflate"] >= 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend_name", ["fastio", "node"])
async def test_server_without_compression(backend_name, fastio_backend, node_backend, clients, codec):
    backend = await (fastio_backend.start() if backend_name == "fastio" else node_backend.start())
    client = make_client(clients)
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", BIG) == BIG
    assert codec == {"inflate": 0, "deflate": 0}
    await client.disconnect()


@pytest.mark.timeout(30)
async def test_not_offered_by_default(fastio_backend, clients, codec):
    backend = await fastio_backend.start(websocket_compression=True)
    client = AsyncClient(reconnection=False)
    clients.append(client)
    await client.connect(backend.url, transports=["websocket"])
    assert await client.call("echo", BIG) == BIG
    assert codec == {"inflate": 0, "deflate": 0}
    await client.disconnect()


@pytest.mark.parametrize("answer,wbits", [
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15),
    ("permessage-deflate; server_no_context_takeover", 15),
    ("permessage-deflate; server_no_context_takeover; client_max_window_bits=10", 10),
    ('permessage-deflate; server_no_context_takeover; server_max_window_bits="12"', 15),
])
def test_answers_accepted(answer, wbits):
    assert accept_deflate_answer(answer) == wbits


@pytest.mark.parametrize("answer", [
    "permessage-deflate",                                      # keeps the server's context
    "x-webkit-deflate-frame",
    "permessage-deflate; server_no_context_takeover; client_max_window_bits=8",
    "permessage-deflate; server_no_context_takeover; mystery",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover, permessage-deflate",
])
def test_answers_refused(answer):
    with pytest.raises(ValueError):
        accept_deflate_answer(answer)
