"""permessage-deflate on the native server, byte by byte: what the 101 answers to an offer,
which frames go out compressed (RSV1), client frames inflated, and a zip bomb refused with
close code 1009 at ``max_http_buffer_size`` (docs/compression.md)."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from typing import Any

import pytest

import fastio

pytestmark = pytest.mark.timeout(60)

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
ANSWER = b"sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def inflated(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


class Client:
    """A WebSocket client that shows each server frame's RSV1 bit."""

    def __init__(self, raw_ws: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.raw = raw_ws
        self.reader = reader
        self.writer = writer
        self.head = b""

    @classmethod
    async def open(cls, raw_ws: Any, port: int, offer: str = OFFER) -> "Client":
        reader, writer = await raw_ws.tcp(port)
        client = cls(raw_ws, reader, writer)
        writer.write(raw_ws.upgrade_request(raw_ws.WS_PATH, f"127.0.0.1:{port}", offer))
        client.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert client.head.startswith(b"HTTP/1.1 101"), client.head
        return client

    @property
    def extensions(self) -> bytes | None:
        for line in self.head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-extensions:"):
                return line.lower()
        return None

    def send(self, opcode: int, payload: bytes, compressed: bool = False) -> None:
        if compressed:
            payload = deflated(payload)
        self.writer.write(self.raw.build_frame(opcode, payload, rsv=4 if compressed else 0))

    async def frame(self) -> tuple[bool, int, bytes]:
        """(RSV1, opcode, payload as sent) of the next frame, pings answered."""
        while True:
            h = await asyncio.wait_for(self.reader.readexactly(2), 10)
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(n)
            rsv1, op = bool(h[0] & 0x40), h[0] & 0x0F
            if op == self.raw.OP_TEXT and payload == b"2":
                self.send(self.raw.OP_TEXT, b"3")
                continue
            return rsv1, op, payload

    async def connect(self) -> None:
        rsv1, _, payload = await self.frame()
        assert (inflated(payload) if rsv1 else payload).startswith(b"0{")
        self.send(self.raw.OP_TEXT, b"40")
        rsv1, _, payload = await self.frame()
        assert not rsv1 and payload.startswith(b"40{")

    async def close_code(self) -> int:
        while True:
            rsv1, op, payload = await self.frame()
            if op == self.raw.OP_CLOSE:
                assert not rsv1
                return struct.unpack("!H", payload[:2])[0]


async def serve(**options: Any) -> Any:
    options.setdefault("ping_interval", 300)
    sio = fastio.AsyncServer(**options)

    @sio.event
    async def echo(sid, *args):
        return list(args)

    @sio.event
    async def push(sid, size, binary):
        await sio.emit("pushed", b"z" * size if binary else "z" * size, to=sid)

    return sio, await fastio.serve(sio, "127.0.0.1", 0)


@pytest.fixture
async def server():
    started: list[Any] = []

    async def factory(**options: Any) -> Any:
        sio, srv = await serve(**options)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        await asyncio.wait_for(srv.close(), 10)


async def test_accepted_offer_and_frames_both_ways(server, raw_ws):
    srv = await server(websocket_compression=True)
    c = await Client.open(raw_ws, srv.port)
    assert c.extensions == ANSWER
    await c.connect()
    # A compressed client message with an acknowledgement: inflated, handled, answered.
    big = "y" * 5000
    c.send(raw_ws.OP_TEXT, b'421["echo","' + big.encode() + b'"]', compressed=True)
    rsv1, op, payload = await c.frame()
    assert rsv1 and op == raw_ws.OP_TEXT
    assert inflated(payload) == b'431[["' + big.encode() + b'"]]'
    # Under the threshold: as it is.
    c.send(raw_ws.OP_TEXT, b'422["echo","small"]', compressed=True)
    assert await c.frame() == (False, raw_ws.OP_TEXT, b'432[["small"]]')
    # A binary attachment past the threshold is compressed on its own; its small text
    # frame is not.
    c.send(raw_ws.OP_TEXT, b'42["push",3000,true]')
    rsv1, op, payload = await c.frame()
    assert (rsv1, op) == (False, raw_ws.OP_TEXT) and payload.startswith(b"451-")
    rsv1, op, payload = await c.frame()
    assert (rsv1, op) == (True, raw_ws.OP_BINARY) and inflated(payload) == b"z" * 3000
    # A control frame is never compressed, and one with RSV1 is a protocol error.
    c.writer.write(raw_ws.build_frame(raw_ws.OP_PING, b"p", rsv=4))
    assert await c.close_code() == 1002


async def test_threshold_option(server, raw_ws):
    srv = await server(websocket_compression=True, compression_threshold=100)
    c = await Client.open(raw_ws, srv.port)
    # The Engine.IO open packet is past 100 bytes: compressed too.
    await c.connect()
    c.send(raw_ws.OP_TEXT, b'42["push",200,false]')
    rsv1, _, payload = await c.frame()
    assert rsv1 and inflated(payload) == b'42["pushed","' + b"z" * 200 + b'"]'


@pytest.mark.parametrize("options,offer", [
    ({}, OFFER),                                              # off by default
    ({"websocket_compression": True}, ""),                    # no offer
    ({"websocket_compression": True},                         # an offer it cannot take
     "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n"),
    ({"websocket_compression": True}, "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"),
])
async def test_not_negotiated(server, raw_ws, options, offer):
    srv = await server(**options)
    c = await Client.open(raw_ws, srv.port, offer)
    assert c.extensions is None
    await c.connect()
    c.send(raw_ws.OP_TEXT, b'42["push",5000,false]')
    rsv1, _, payload = await c.frame()
    assert not rsv1 and len(payload) > 5000
    # RSV1 without the extension: 1002.
    c.send(raw_ws.OP_TEXT, b'42["echo",1]', compressed=True)
    assert await c.close_code() == 1002


async def test_zip_bomb_closed_with_1009(server, raw_ws, py_client):
    srv = await server(websocket_compression=True, max_http_buffer_size=100_000)
    c = await Client.open(raw_ws, srv.port)
    await c.connect()
    # 20 MB of spaces in an event: about 20 KB on the wire, far under the frame limit.
    bomb = deflated(b'42["echo","' + b" " * 20_000_000 + b'"]')
    assert len(bomb) < 100_000
    c.writer.write(raw_ws.build_frame(raw_ws.OP_TEXT, bomb, rsv=4))
    assert await c.close_code() == 1009
    # The server goes on serving others.
    client = py_client()
    await client.connect(f"http://127.0.0.1:{srv.port}", transports=["websocket"])
    assert await client.call("echo", "still here", timeout=5) == ["still here"]
    await client.disconnect()


async def test_fragmented_compressed_message(server, raw_ws):
    srv = await server(websocket_compression=True)
    c = await Client.open(raw_ws, srv.port)
    await c.connect()
    z = deflated(b'423["echo",' + json.dumps(["w"] * 2000).encode() + b"]")
    half = len(z) // 2
    c.writer.write(raw_ws.build_frame(raw_ws.OP_TEXT, z[:half], fin=False, rsv=4))
    c.writer.write(raw_ws.build_frame(raw_ws.OP_CONT, z[half:]))
    rsv1, _, payload = await c.frame()
    assert rsv1 and json.loads(inflated(payload)[3:]) == [[["w"] * 2000]]
