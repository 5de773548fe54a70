"""Fixtures for the functional tests: a fastio Socket.IO server on the native
server (port 0), python-socketio AsyncClients, Node socket.io-clients and a
minimal raw WebSocket client for abuse and fan-out tests.

Test modules get the helper classes through fixtures (``raw_ws``,
``event_log``...), never by importing this file: several conftest.py files
share the module name ``conftest``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
if str(INTEROP_DIR) not in sys.path:
    sys.path.insert(0, str(INTEROP_DIR))

from nodeproc import (  # noqa: E402
    DEFAULT_TIMEOUT,
    NodeProcess,
    NodeProcessError,
    check_node_modules,
    node_executable,
    UnorderedNodeProcess,
)
from eventlog import EventLog  # noqa: E402

SIO_CLIENT_SCRIPT = INTEROP_DIR / "node" / "sio_client.mjs"
EVENT_TIMEOUT = 10.0
WS_PATH = "/socket.io/?EIO=4&transport=websocket"


# ----------------------------------------------------------------------------
# Recording what the server's handlers saw
# ----------------------------------------------------------------------------


@pytest.fixture
async def event_log() -> EventLog:
    return EventLog()


@pytest.fixture
async def make_log() -> Callable[[], EventLog]:
    """Factory of further EventLogs (e.g. one per client)."""
    return EventLog


# ----------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------


class SioServer:
    """A fastio AsyncServer served by fastio's native server on port 0."""

    def __init__(self, sio: Any) -> None:
        self.sio = sio
        self.server: Any = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "SioServer":
        import fastio

        self.server = await fastio.serve(self.sio, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await asyncio.wait_for(server.close(), 10)


@pytest.fixture
async def serve_sio():
    """Factory: ``srv = await serve_sio(sio)`` serves a fastio AsyncServer."""
    started: list[SioServer] = []

    async def factory(sio: Any) -> SioServer:
        srv = SioServer(sio)
        await srv.start()
        started.append(srv)
        return srv

    yield factory
    for srv in reversed(started):
        await srv.stop()


# ----------------------------------------------------------------------------
# Clients
# ----------------------------------------------------------------------------


@pytest.fixture
async def py_client(serve_sio):
    """Factory for python-socketio AsyncClients (reconnection off), all
    disconnected at teardown, before the servers stop."""
    import socketio

    clients: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("reconnection", False)
        client = socketio.AsyncClient(**kwargs)
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown(), 5)


SioProc = UnorderedNodeProcess


@pytest.fixture
async def node_sio(serve_sio):
    """Factory for Node socket.io-client processes (tests/interop/node/sio_client.mjs):
    ``proc = await node_sio({"url": srv.url, ...})``; killed and reaped at teardown."""
    node_executable()
    check_node_modules()
    procs: list[SioProc] = []

    async def factory(config: dict[str, Any], name: str | None = None) -> SioProc:
        cfg = {"timeoutMs": 30000, **config}
        proc = SioProc(SIO_CLIENT_SCRIPT, cfg, name=name)
        procs.append(proc)
        await proc.start()
        return proc

    yield factory
    for proc in reversed(procs):
        await proc.aclose()


def b64(data: bytes) -> dict[str, str]:
    """The sio_client.mjs wire form of a binary value."""
    return {"$bin": base64.b64encode(data).decode("ascii")}


def unb64(value: Any) -> Any:
    """Turn {"$bin": ...} from sio_client.mjs back into bytes, recursively."""
    if isinstance(value, list):
        return [unb64(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: unb64(v) for k, v in value.items()}
    return value


@pytest.fixture
def bin_codec():
    """(to_wire, from_wire) for binary values exchanged with sio_client.mjs."""
    return b64, unb64


# ----------------------------------------------------------------------------
# A minimal raw WebSocket client
# ----------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def mask_payload(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """One WebSocket frame as a client sends it (masked unless told otherwise)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_payload(payload, key)


class WSClosed(Exception):
    """The server closed the WebSocket: ``code`` is the close frame's code,
    None when the TCP connection ended without a close frame."""

    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def upgrade_request(path: str = WS_PATH, host: str = "127.0.0.1", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


class RawWS:
    """A deliberately small WebSocket client on asyncio streams.

    ``recv()`` returns ``(opcode, payload)`` of data frames, answering
    WebSocket pings and Engine.IO pings ("2" -> "3") by itself, and raises
    :class:`WSClosed` once the server closes.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.status: int | None = None
        self.head = b""
        self.eio_sid: str | None = None
        self.handshake: dict[str, Any] | None = None

    @classmethod
    async def open(cls, port: int, path: str = WS_PATH, *, expect_status: int | None = 101,
                   limit: int = 2 ** 22) -> "RawWS":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=limit)
        ws = cls(reader, writer)
        writer.write(upgrade_request(path, f"127.0.0.1:{port}"))
        ws.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EVENT_TIMEOUT)
        ws.status = int(ws.head.split(b" ", 2)[1])
        if expect_status is not None and ws.status != expect_status:
            ws.close()
            raise AssertionError(f"WebSocket upgrade answered {ws.head!r}")
        return ws

    # -- sending --------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send_frame(self, opcode: int, payload: bytes, **kwargs: Any) -> None:
        self.writer.write(build_frame(opcode, payload, **kwargs))

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.send_frame(OP_TEXT, data)

    def emit(self, event: str, *args: Any, namespace: str = "/", ack_id: int | None = None) -> None:
        ns = "" if namespace == "/" else namespace + ","
        ack = "" if ack_id is None else str(ack_id)
        self.send_text("42" + ns + ack + json.dumps([event, *args], separators=(",", ":")))

    # -- receiving ------------------------------------------------------------

    async def recv_frame(self, timeout: float = EVENT_TIMEOUT) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            try:
                h = await self.reader.readexactly(2)
            except (asyncio.IncompleteReadError, ConnectionError):
                raise WSClosed(None) from None
            op = h[0] & 0x0F
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            key = await self.reader.readexactly(4) if h[1] & 0x80 else None
            try:
                payload = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                raise WSClosed(None) from None
            if key is not None:
                payload = mask_payload(payload, key)
            return op, payload

        return await asyncio.wait_for(read(), timeout)

    async def recv(self, timeout: float = EVENT_TIMEOUT) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            op, payload = await self.recv_frame(max(deadline - loop.time(), 0.001))
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                with contextlib.suppress(Exception):
                    self.send_frame(OP_CLOSE, payload[:2])
                raise WSClosed(code, payload[2:].decode("utf-8", "replace"))
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_TEXT and payload == b"2":
                self.send_text("3")
                continue
            return op, payload

    async def recv_text(self, timeout: float = EVENT_TIMEOUT) -> str:
        op, payload = await self.recv(timeout)
        assert op == OP_TEXT, f"expected a text frame, got opcode {op}: {payload[:80]!r}"
        return payload.decode()

    async def recv_event(self, timeout: float = EVENT_TIMEOUT) -> tuple[str, list[Any]]:
        """The next Socket.IO EVENT on "/" as (name, args)."""
        text = await self.recv_text(timeout)
        assert text.startswith("42"), f"expected an EVENT packet, got {text[:120]!r}"
        body = text[2:]
        while body and body[0].isdigit():  # an ack id
            body = body[1:]
        data = json.loads(body)
        return data[0], data[1:]

    async def wait_closed(self, timeout: float = EVENT_TIMEOUT) -> int | None:
        """Read (and drop) everything until the server closes; the close code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"the server did not close the WebSocket within {timeout} s")
            try:
                await self.recv(remaining)
            except WSClosed as closed:
                return closed.code

    # -- Engine.IO / Socket.IO handshake -------------------------------------

    async def eio_open(self) -> dict[str, Any]:
        text = await self.recv_text()
        assert text.startswith("0"), f"expected the Engine.IO OPEN packet, got {text!r}"
        self.handshake = json.loads(text[1:])
        self.eio_sid = self.handshake["sid"]
        return self.handshake

    async def sio_connect(self, namespace: str = "/", auth: Any = None) -> str:
        """OPEN, then CONNECT to ``namespace``; returns the Socket.IO sid."""
        if self.handshake is None:
            await self.eio_open()
        ns = "" if namespace == "/" else namespace + ","
        self.send_text("40" + ns + ("" if auth is None else json.dumps(auth)))
        text = await self.recv_text()
        prefix = "40" + ns
        assert text.startswith(prefix), f"expected CONNECT for {namespace}, got {text!r}"
        return json.loads(text[len(prefix):])["sid"]

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class NonReadingClient:
    """A WebSocket Socket.IO client that does its handshake, then never reads
    again. Its receive buffer is made small, so the server's output backs up
    quickly."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sid: str | None = None

    @classmethod
    async def open(cls, port: int, rcvbuf: int = 4096) -> "NonReadingClient":
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        client = cls(sock)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, upgrade_request(WS_PATH, f"127.0.0.1:{port}"))
            buf = b""
            # read the 101 head and the OPEN frame, then the CONNECT answer
            while b"\r\n\r\n" not in buf:
                buf += await asyncio.wait_for(loop.sock_recv(sock, 4096), EVENT_TIMEOUT)
            head, _, rest = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            frames, rest = await cls._read_frames(loop, sock, rest, 1)
            assert frames[0].startswith(b"0"), frames
            await loop.sock_sendall(sock, build_frame(OP_TEXT, b"40"))
            frames, rest = await cls._read_frames(loop, sock, rest, 1)
            assert frames[0].startswith(b"40"), frames
            client.sid = json.loads(frames[0][2:])["sid"]
        except BaseException:
            sock.close()
            raise
        return client

    @staticmethod
    async def _read_frames(loop, sock, buf: bytes, count: int) -> tuple[list[bytes], bytes]:
        out = []
        while len(out) < count:
            if len(buf) >= 2:
                n = buf[1] & 0x7F
                hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                if len(buf) >= hl:
                    if n == 126:
                        n = struct.unpack("!H", buf[2:4])[0]
                    elif n == 127:
                        n = struct.unpack("!Q", buf[2:10])[0]
                    if len(buf) >= hl + n:
                        out.append(buf[hl:hl + n])
                        buf = buf[hl + n:]
                        continue
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), EVENT_TIMEOUT)
            if not chunk:
                raise WSClosed(None)
            buf += chunk
        return out, buf

    def close(self) -> None:
        self.sock.close()


class RawTools:
    """What the ``raw_ws`` fixture hands out."""

    OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
    WSClosed = WSClosed
    WS_PATH = WS_PATH
    build_frame = staticmethod(build_frame)
    upgrade_request = staticmethod(upgrade_request)

    def __init__(self) -> None:
        self._opened: list[Any] = []

    async def open(self, port: int, path: str = WS_PATH, **kwargs: Any) -> RawWS:
        ws = await RawWS.open(port, path, **kwargs)
        self._opened.append(ws)
        return ws

    async def open_non_reading(self, port: int, **kwargs: Any) -> NonReadingClient:
        client = await NonReadingClient.open(port, **kwargs)
        self._opened.append(client)
        return client

    async def tcp(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self._opened.append(RawWS(reader, writer))
        return reader, writer

    def close_all(self) -> None:
        for c in self._opened:
            with contextlib.suppress(Exception):
                c.close()
        self._opened.clear()


@pytest.fixture
async def raw_ws(serve_sio):
    """Raw WebSocket/TCP clients (closed at teardown, before the servers)."""
    tools = RawTools()
    yield tools
    tools.close_all()
    await asyncio.sleep(0)


@pytest.fixture
def make_sio() -> Callable[..., Any]:
    """``sio = make_sio(**options)``: a fastio AsyncServer accepting any origin."""
    import fastio

    def factory(**options: Any) -> Any:
        options.setdefault("cors_allowed_origins", "*")
        return fastio.AsyncServer(**options)

    return factory
