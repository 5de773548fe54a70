"""The native server writes to the socket itself while uvloop's transport holds nothing, and
through the transport once the socket is full: the bytes reach the peer complete and in order
across those hand-overs, and a session's later output goes out as before."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import socket
import struct
import termios
import threading
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


def _server_side_of(client: socket.socket) -> socket.socket:
    """A duplicate of this process's socket whose peer is ``client`` (the server's end)."""
    want = client.getsockname()
    for name in os.listdir("/proc/self/fd"):
        try:
            s = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            if s.getpeername() == want:
                return s
        except OSError:
            pass
        s.close()
    raise AssertionError("no socket of this process is connected to %r" % (want,))


def _queued(sock: socket.socket, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0]


def _take_everything_sent(client: socket.socket, server_end: socket.socket, into: bytearray) -> None:
    """Read on ``client`` until the server's kernel holds nothing unacknowledged for it and
    nothing is left to read (the server's loop is held meanwhile, so nothing new is sent)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        readable, _, _ = select.select([client], [], [], 0.01)
        if readable:
            into += client.recv(1 << 20)
        elif _queued(server_end, termios.TIOCOUTQ) == 0 and _queued(client, termios.FIONREAD) == 0:
            return
    raise AssertionError("the server's socket never emptied")


def _server_frame(payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + n.to_bytes(2, "big") if n < 65536 else (
        bytes([0x81, 127]) + n.to_bytes(8, "big"))
    return head + payload


async def test_a_write_waits_behind_bytes_the_transport_still_holds(make_sio, serve_sio, raw_ws):
    # The socket is full, so the end of a frame waits in the transport (less than its high-water
    # mark: the session is not paused); then the peer takes everything the kernel had, so the
    # socket has room again before the transport has written its part. A write made now must
    # still go behind that part, not straight to the socket.
    sio = make_sio(ping_interval=300, ping_timeout=300)
    srv = await serve_sio(sio)
    client = await raw_ws.open_non_reading(srv.port)
    (conn,) = list(srv.sio.eio.sockets.values())
    server_end = _server_side_of(client.sock)
    # A fixed, small send buffer: the kernel takes a few tens of KB, the transport the rest.
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    taken = bytearray()
    big = "b" * 80000
    expected = _server_frame(b'42["big","' + big.encode() + b'"]') + _server_frame(b'42["small",1]')

    @sio.event
    async def go(sid):
        await sio.emit("big", big, to=sid)
        conn.flush()  # written now: the socket fills, the transport keeps the rest
        assert conn.pending == 0 and not conn.ws.ws_paused
        # The loop stays here (no transport callback can run) while another thread reads.
        reader = threading.Thread(target=_take_everything_sent, args=(client.sock, server_end, taken))
        reader.start()
        reader.join()
        assert 0 < len(taken) < len(expected) - 19, len(taken)
        await sio.emit("small", 1, to=sid)
        conn.flush()

    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(client.sock, raw_ws.build_frame(1, b'42["go"]'))
        buf = bytearray()
        deadline = time.monotonic() + 30
        while len(taken) + len(buf) < len(expected):
            assert time.monotonic() < deadline, (len(taken), len(buf))
            buf += await asyncio.wait_for(loop.sock_recv(client.sock, 1 << 20), 10)
        got = bytes(taken + buf)
        assert got == expected, "out of order from byte %d" % next(
            i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
    finally:
        server_end.close()
