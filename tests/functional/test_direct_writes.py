"""The native server writes to the socket itself while uvloop's transport holds nothing, and
through the transport once the socket is full: the bytes reach the peer complete and in order
across those hand-overs, and a session's later output goes out as before."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytestmark = pytest.mark.timeout(60)

COUNT = 3000
FILLER = "x" * 1000


def _frames(buf: bytearray) -> list[bytes]:
    """Unmasked server frames taken off the front of ``buf``."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        head = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        if len(buf) < head:
            break
        if n == 126:
            n = int.from_bytes(buf[2:4], "big")
        elif n == 127:
            n = int.from_bytes(buf[2:10], "big")
        if len(buf) < head + n:
            break
        out.append(bytes(buf[head:head + n]))
        del buf[:head + n]
    return out


async def test_output_backed_up_behind_a_full_socket_arrives_whole_and_in_order(make_sio, serve_sio, raw_ws):
    sio = make_sio(ping_interval=300, ping_timeout=300)
    finished = asyncio.Event()

    @sio.event
    async def flood(sid, count):
        for i in range(count):
            await sio.emit("seq", (i, FILLER), to=sid)
            if i % 10 == 9:
                await asyncio.sleep(0)  # the output leaves over many loop iterations
        finished.set()

    @sio.event
    async def echo(sid, data):
        return data

    srv = await serve_sio(sio)
    client = await raw_ws.open_non_reading(srv.port)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(client.sock, raw_ws.build_frame(1, b'42["flood",%d]' % COUNT))
    # The client does not read: the socket fills, the rest waits in the transport and then in
    # the session's queue (pending > 0 means the transport said it is full).
    (conn,) = list(srv.sio.eio.sockets.values())
    deadline = time.monotonic() + 20
    while conn.pending == 0 and not finished.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert conn.pending > 0, "the output never backed up: the test did not reach the hand-over"

    seen: list[int] = []
    buf = bytearray()
    deadline = time.monotonic() + 30
    while len(seen) < COUNT:
        assert time.monotonic() < deadline, "only %d of %d events arrived" % (len(seen), COUNT)
        # Small reads while the server goes on writing: the socket keeps getting room while
        # the transport still holds earlier bytes.
        buf += await asyncio.wait_for(loop.sock_recv(client.sock, 2048), 10)
        for frame in _frames(buf):
            assert frame.startswith(b"42"), frame[:40]
            event, number, filler = json.loads(frame[2:])
            assert (event, filler) == ("seq", FILLER)
            seen.append(number)
    assert seen == list(range(COUNT))
    await asyncio.wait_for(finished.wait(), 10)

    # Written straight to the socket again: an acknowledged round trip.
    await loop.sock_sendall(client.sock, raw_ws.build_frame(1, b'421["echo","after"]'))
    while True:
        frames = _frames(buf)
        if frames:
            assert frames == [b'431["after"]']
            break
        buf += await asyncio.wait_for(loop.sock_recv(client.sock, 65536), 10)
