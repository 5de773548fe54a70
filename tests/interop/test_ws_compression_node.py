"""permessage-deflate (RFC 7692) between fastio's native server and Node's ``ws``.

tests/interop/node/ws_deflate_client.mjs speaks Engine.IO/Socket.IO over ``ws`` directly, so
each test picks the extension offer (``perMessageDeflate``) and reads the answer
(``ws.extensions``).  Whether a message travelled compressed is read from the bytes the Node
client's socket received for it: a 100 kB run of one letter is a few hundred bytes deflated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastio
from clientkit import from_wire, to_wire
from nodeproc import NodeProcess, NodeProcesses

pytestmark = pytest.mark.timeout(60)

SCRIPT = "ws_deflate_client.mjs"
ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
BIG = "a" * 100_000


class Env:
    def __init__(self) -> None:
        self.sio: Any = None
        self.server: Any = None
        self.procs = NodeProcesses()
        self.received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def start(self, **options: Any) -> "Env":
        sio = self.sio = fastio.AsyncServer(**options)

        @sio.on("echo")
        async def echo(sid: str, data: Any) -> None:
            self.received.put_nowait(("echo", data))
            await sio.emit("echo", data, to=sid)

        @sio.on("echo_plain")
        async def echo_plain(sid: str, data: Any) -> None:
            await sio.to(sid).compress(False).emit("echo", data)

        @sio.on("everyone")
        async def everyone(sid: str, data: Any) -> None:
            await sio.emit("everyone", data)

        self.server = await fastio.serve(sio, "127.0.0.1", 0)
        return self

    async def client(self, per_message_deflate: Any = True) -> tuple[NodeProcess, dict[str, Any]]:
        proc = await self.procs.start(NodeProcess(SCRIPT, {"url": f"http://127.0.0.1:{self.server.port}",
                                                           "perMessageDeflate": per_message_deflate,
                                                           "timeoutMs": 40000}))
        return proc, await proc.expect("ready")

    async def stop(self) -> None:
        await self.procs.aclose()
        if self.server is not None:
            await asyncio.wait_for(self.server.close(), 10)


@pytest.fixture
async def env():
    e = Env()
    yield e
    await e.stop()


async def roundtrip(proc: NodeProcess, name: str, data: str, rx_before: int) -> int:
    """Send ``data`` as event ``name``; return the bytes the echo took on the wire."""
    await proc.send("emit", name=name, args=[data])
    ev = await proc.expect("event", ev="echo")
    assert ev["args"] == [data]
    return ev["rx"] - rx_before


async def test_negotiated_and_compressed_both_ways(env):
    await env.start(websocket_compression=True)
    proc, ready = await env.client()
    assert ready["extensions"] == ANSWER
    # ws compresses the client's 100 kB message (RSV1); the server inflates it, and its echo
    # comes back compressed.
    wire = await roundtrip(proc, "echo", BIG, 0)
    assert (await env.received.get()) == ("echo", BIG)
    assert wire < 2000
    # Context is not taken over: the same message again costs the same.
    rx = wire
    wire2 = await roundtrip(proc, "echo", BIG, rx)
    assert abs(wire2 - wire) < 50


async def test_threshold(env):
    await env.start(websocket_compression=True, compression_threshold=1024)
    proc, _ = await env.client()
    # 42["echo","<900 letters>"] is under 1,024 bytes: sent as it is.
    small = "b" * 900
    wire = await roundtrip(proc, "echo", small, 0)
    assert wire >= 900
    # 1,500 letters: compressed.
    wire2 = await roundtrip(proc, "echo", "c" * 1500, wire)
    assert wire2 < 200


async def test_compress_false_per_emit(env):
    await env.start(websocket_compression=True)
    proc, _ = await env.client()
    wire = await roundtrip(proc, "echo_plain", BIG, 0)
    assert wire >= len(BIG)


async def test_off_by_default(env):
    await env.start()
    proc, ready = await env.client()
    assert ready["extensions"] == ""
    wire = await roundtrip(proc, "echo", BIG, 0)
    assert wire >= len(BIG)


async def test_client_without_the_extension(env):
    await env.start(websocket_compression=True)
    proc, ready = await env.client(False)
    assert ready["extensions"] == ""
    assert await roundtrip(proc, "echo", BIG, 0) >= len(BIG)


async def test_server_max_window_bits_honoured(env):
    # The client's inflater has a 1 KiB window: a frame deflated with a larger one would
    # reach back too far and fail it.
    await env.start(websocket_compression=True)
    text = "".join(chr(0x61 + (i * 7919 % 26)) for i in range(3000)) * 20
    proc, ready = await env.client({"serverMaxWindowBits": 10})
    assert ready["extensions"] == ANSWER + "; server_max_window_bits=10"
    wire = await roundtrip(proc, "echo", text, 0)
    assert wire < len(text)


async def test_broadcast_compressed_once_for_all(env):
    await env.start(websocket_compression=True)
    procs = [await env.client() for _ in range(3)]
    await procs[0][0].send("emit", name="everyone", args=[BIG])
    for proc, _ in procs:
        ev = await proc.expect("event", ev="everyone")
        assert ev["args"] == [BIG]
        assert ev["rx"] < 2000


@pytest.mark.parametrize("mode", ["websocket", "upgrade"])
async def test_socketio_client_binary_and_text(node_ready, mode):
    """socket.io-client (engine.io-client offers perMessageDeflate with its 1,024-byte
    threshold), straight to WebSocket and upgraded from polling: a big event with a binary
    attachment both ways, acknowledged."""
    from test_socketio_client import Env as SioEnv

    env = SioEnv()
    await env.start(websocket_compression=True)
    try:
        proc, _ = await env.connected(mode)
        data = {"text": "t" * 50_000, "blob": bytes(range(256)) * 200, "small": "s"}
        await proc.send("emit", name="nested", args=[to_wire(data)], ack=True, id="n1")
        ack = await proc.expect("ack", id="n1")
        assert from_wire(ack["args"]) == [data]
    finally:
        await env.stop()
