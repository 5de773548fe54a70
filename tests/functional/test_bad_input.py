"""Abuse over raw HTTP and WebSocket while a well-behaved client keeps working.

In every test a python-socketio AsyncClient (the "bystander", on its own
WebSocket connection) exchanges acknowledged events with the server in a
loop; at the end it must still be connected, must have made progress
during the abuse, and must never have been disconnected.

HTTP errors follow Node's engine.io: status 400 with a JSON body
{"code": N, "message": ...} where N is 0 transport unknown, 1 sid
unknown, 2 bad handshake method, 3 bad request, 5 unsupported protocol
version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

import aiohttp
import pytest

from connection_log import log_connections

pytestmark = pytest.mark.timeout(60)

MAX_BUFFER = 100_000
REASONS = {"client disconnect", "server disconnect", "ping timeout", "transport close", "transport error", "parse error"}


class Bystander:
    """A python-socketio client doing ack round trips in a background task."""

    def __init__(self, client, log):
        self.client = client
        self.log = log
        self.rounds = 0
        self.errors: list[BaseException] = []
        self.task: asyncio.Task | None = None
        self.sid: str | None = None
        self.progress = asyncio.Event()
        self.stopping = False

    async def start(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"], wait_timeout=5)
        self.sid = self.client.get_sid("/")
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        i = 0
        # The flag, not only the cancel() in stop(): on Python < 3.12 asyncio.wait_for (which
        # client.call uses) can swallow a cancellation that arrives as its inner future completes,
        # and then the loop would go on forever. Fast round trips (uvloop) hit that often.
        while not self.stopping:
            i += 1
            try:
                got = await self.client.call("echo", {"i": i, "blob": b"\x00\x01"}, timeout=5)
                assert got == {"i": i, "blob": b"\x00\x01"}, got
                self.rounds += 1
                self.progress.set()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # reported by check()
                self.errors.append(exc)
                return

    async def check(self, since: int) -> None:
        """Still fine: no error, progress since ``since``, a fresh round trip works."""
        assert not self.errors, f"the bystander failed: {self.errors!r}"
        # wait for at least one more completed round
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        target = max(since, self.rounds) + 1
        while self.rounds < target:
            assert not self.errors, f"the bystander failed: {self.errors!r}"
            remaining = deadline - loop.time()
            assert remaining > 0, "the bystander made no progress"
            self.progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.progress.wait(), remaining)
        assert self.rounds > since
        assert self.client.connected
        assert not self.log.all("disconnect", sid=self.sid), "the bystander was disconnected"

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


@pytest.fixture
async def server(make_sio, serve_sio, event_log):
    sio = make_sio(max_http_buffer_size=MAX_BUFFER)
    log = event_log
    log_connections(sio, log)

    @sio.event
    async def echo(sid, data):
        return data

    srv = await serve_sio(sio)
    srv.log = log
    return srv


@pytest.fixture
async def bystander(server, py_client):
    b = Bystander(py_client(), server.log)
    await b.start(server.url)
    await b.check(0)
    yield b
    await b.stop()


@pytest.fixture
async def http(server):
    async with aiohttp.ClientSession() as client:
        yield client


async def json_error(resp) -> dict:
    assert resp.status == 400, f"expected 400, got {resp.status}: {await resp.text()!r}"
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    return json.loads(await resp.read())


async def open_polling(http, url: str) -> str:
    """An Engine.IO polling connection, Socket.IO-connected to "/"; its sid."""
    async with http.get(url + "/socket.io/?EIO=4&transport=polling") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert body.startswith("0"), body
    sid = json.loads(body[1:])["sid"]
    async with http.post(url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40") as resp:
        assert resp.status == 200
    async with http.get(url + f"/socket.io/?EIO=4&transport=polling&sid={sid}") as resp:
        body = await resp.text()
    assert body.startswith("40"), body
    return sid


# -----------------------------------------------------------------------------
# HTTP errors with Node's codes
# -----------------------------------------------------------------------------

HTTP_ERRORS = [
    # (method, query, code, message)
    ("GET", "EIO=3&transport=polling", 5, "Unsupported protocol version"),
    ("GET", "transport=polling", 5, "Unsupported protocol version"),
    ("GET", "EIO=abc&transport=polling", 5, "Unsupported protocol version"),
    ("GET", "EIO=4&transport=carrier-pigeon", 0, "Transport unknown"),
    ("GET", "EIO=4", 0, "Transport unknown"),
    ("GET", "EIO=4&transport=polling&sid=no-such-sid", 1, "Session ID unknown"),
    ("POST", "EIO=4&transport=polling&sid=no-such-sid", 1, "Session ID unknown"),
    ("POST", "EIO=4&transport=polling", 2, "Bad handshake method"),
    ("PUT", "EIO=4&transport=polling", 2, "Bad handshake method"),
    ("DELETE", "EIO=4&transport=polling", 2, "Bad handshake method"),
    # a websocket handshake without the Upgrade headers
    ("GET", "EIO=4&transport=websocket", 3, "Bad request"),
]


@pytest.mark.parametrize("method,query,code,message", HTTP_ERRORS, ids=[f"{m}-{q}" for m, q, _, _ in HTTP_ERRORS])
async def test_http_errors_have_node_codes(server, bystander, http, method, query, code, message):
    before = bystander.rounds
    async with http.request(method, server.url + "/socket.io/?" + query, data=b"4x" if method != "GET" else None) as resp:
        body = await json_error(resp)
    assert body == {"code": code, "message": message}
    await bystander.check(before)


async def test_unknown_sid_after_close(server, bystander, http):
    before = bystander.rounds
    sid = await open_polling(http, server.url)
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"1") as resp:
        assert resp.status == 200
    await server.log.expect("disconnect")
    # a POST after the close: the sid is gone
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40") as resp:
        assert (await json_error(resp))["code"] == 1
    await bystander.check(before)


async def test_websocket_transport_without_upgrade_for_a_polling_connection(server, bystander, http):
    before = bystander.rounds
    sid = await open_polling(http, server.url)
    async with http.get(server.url + f"/socket.io/?EIO=4&transport=websocket&sid={sid}") as resp:
        assert (await json_error(resp)) == {"code": 3, "message": "Bad request"}
    await bystander.check(before)


async def test_overlapping_polls_close_the_connection(server, bystander, http):
    before = bystander.rounds
    sid = await open_polling(http, server.url)
    sio_sid = server.sio.manager.sid_from_eio_sid(sid, "/")
    url = server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    first = asyncio.create_task(http.get(url))
    # the first poll is parked on the server once the connection has a waiter
    conn = server.sio.eio.sockets[sid]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while conn.poll_waiter is None:
        assert loop.time() < deadline, "the first poll never reached the server"
        await asyncio.sleep(0)
    async with http.get(url) as resp:
        assert resp.status == 400
    async with await first as resp:
        assert resp.status == 200
        await resp.read()
    assert (await server.log.expect("disconnect", sid=sio_sid))["reason"] in REASONS
    await bystander.check(before)


@pytest.mark.parametrize(
    "body",
    [b"9hello", b"4ok\x1e", b"\x1e\x1e", b"bnot*base64!", b"4ok\x1e9bad", b"x"],
    ids=["unknown-type", "empty-trailing-packet", "only-separators", "bad-base64", "bad-second-packet", "garbage"],
)
async def test_malformed_polling_body(server, bystander, http, body):
    before = bystander.rounds
    sid = await open_polling(http, server.url)
    sio_sid = server.sio.manager.sid_from_eio_sid(sid, "/")
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=body) as resp:
        assert resp.status == 400, await resp.text()
        err = json.loads(await resp.read())
    assert err["code"] == 3
    # the connection is closed: a further request is for an unknown sid
    # (or gets the pending close packet)
    reason = (await server.log.expect("disconnect", sid=sio_sid))["reason"]
    assert reason in REASONS
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40") as resp:
        assert resp.status == 400
    await bystander.check(before)


async def test_polling_body_over_max_http_buffer_size(server, bystander, http):
    before = bystander.rounds
    sid = await open_polling(http, server.url)
    body = b"4" + b"x" * (MAX_BUFFER + 10)
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=body) as resp:
        assert resp.status in (400, 413)
    async with http.post(server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"40") as resp:
        assert resp.status == 400
    await bystander.check(before)


# -----------------------------------------------------------------------------
# WebSocket abuse
# -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    ['42["unterminated', "42", "42{}", "42[1]", "49", "43[]", '4511-["x"]', '40{bad', "42/nowhere"],
    ids=["unterminated", "no-data", "object", "non-string-name", "bad-type", "ack-without-id",
         "too-many-attachments", "bad-connect-json", "bad-namespace-format"],
)
async def test_malformed_socketio_packet_closes_that_connection(server, bystander, raw_ws, packet):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    ws.send_text(packet)
    await ws.wait_closed()
    assert (await server.log.expect("disconnect", sid=sid))["reason"] == "parse error"
    assert server.sio.manager.get_socket(sid, "/") is None
    await bystander.check(before)


async def test_unmasked_client_frame_is_closed_with_1002(server, bystander, raw_ws):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    ws.send_frame(raw_ws.OP_TEXT, b'42["x"]', mask=False)
    assert await ws.wait_closed() == 1002
    assert (await server.log.expect("disconnect", sid=sid))["reason"] in REASONS
    await bystander.check(before)


async def test_invalid_utf8_text_frame_is_closed_with_1007(server, bystander, raw_ws):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    ws.send_frame(raw_ws.OP_TEXT, b'42["\xff\xfe\xc3"]')
    assert await ws.wait_closed() == 1007
    assert (await server.log.expect("disconnect", sid=sid))["reason"] in REASONS
    await bystander.check(before)


@pytest.mark.parametrize("opcode", ["text", "binary"])
async def test_frame_over_max_http_buffer_size_is_closed_with_1009(server, bystander, raw_ws, opcode):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    size = MAX_BUFFER + 1000
    op = raw_ws.OP_TEXT if opcode == "text" else raw_ws.OP_BINARY
    frame = raw_ws.build_frame(op, b"4" + b"a" * (size - 1))
    # the declared length alone is over the limit: send the header and a
    # first piece only, so the server has nothing unread when it closes
    ws.send_raw(frame[:4096])
    assert await ws.wait_closed() == 1009
    assert (await server.log.expect("disconnect", sid=sid))["reason"] in REASONS
    await bystander.check(before)


async def test_fragmented_message_over_max_http_buffer_size_is_closed_with_1009(server, bystander, raw_ws):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    piece = b"a" * (MAX_BUFFER // 4)
    ws.send_frame(raw_ws.OP_TEXT, b"42" + piece, fin=False)
    for _ in range(5):
        ws.send_frame(raw_ws.OP_CONT, piece, fin=False)
    assert await ws.wait_closed() == 1009
    assert (await server.log.expect("disconnect", sid=sid))["reason"] in REASONS
    await bystander.check(before)


async def test_frame_just_under_the_limit_is_accepted(server, bystander, raw_ws):
    ws = await raw_ws.open(server.port)
    await ws.sio_connect()
    text = "z" * (MAX_BUFFER - 100)
    ws.emit("echo", text, ack_id=5)
    assert await ws.recv_text() == "435" + json.dumps([text])


async def test_reserved_bits_and_unknown_opcode_are_protocol_errors(server, bystander, raw_ws):
    before = bystander.rounds
    for kwargs in ({"opcode": raw_ws.OP_TEXT, "rsv": 4}, {"opcode": 3, "rsv": 0}):
        ws = await raw_ws.open(server.port)
        sid = await ws.sio_connect()
        ws.send_frame(kwargs["opcode"], b'42["x"]', rsv=kwargs["rsv"])
        assert await ws.wait_closed() == 1002
        await server.log.expect("disconnect", sid=sid)
    await bystander.check(before)


async def test_garbage_http_gets_400_and_the_connection_closes(server, bystander, raw_ws):
    before = bystander.rounds
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        b"HELLO THERE\r\n\r\n",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ):
        reader, writer = await raw_ws.tcp(server.port)
        writer.write(garbage)
        response = await asyncio.wait_for(reader.read(), 10)  # until the server closes
        assert response.startswith(b"HTTP/1.1 400"), response[:200]
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"connection: close" in head.lower()
        writer.close()
    await bystander.check(before)


async def test_websocket_abuse_keeps_other_websockets_working(server, bystander, raw_ws):
    """Several bad clients at once, next to good raw clients on the same server."""
    before = bystander.rounds
    good = []
    for _ in range(3):
        ws = await raw_ws.open(server.port)
        good.append((ws, await ws.sio_connect()))
    bad = []
    for payload in (b'42["unterminated', None, b"\xff"):
        ws = await raw_ws.open(server.port)
        sid = await ws.sio_connect()
        if payload is None:
            ws.send_frame(raw_ws.OP_TEXT, b'42["x"]', mask=False)
        elif payload == b"\xff":
            ws.send_frame(raw_ws.OP_TEXT, b"42" + payload)
        else:
            ws.send_frame(raw_ws.OP_TEXT, payload)
        bad.append((ws, sid))
    for ws, sid in bad:
        await ws.wait_closed()
        await server.log.expect("disconnect", sid=sid)
    for i, (ws, sid) in enumerate(good):
        ws.emit("echo", {"n": i}, ack_id=i + 1)
        assert await ws.recv_text() == f"43{i + 1}" + json.dumps([{"n": i}], separators=(",", ":"))
    for ws, sid in good:
        assert not server.log.all("disconnect", sid=sid)
    await bystander.check(before)


async def test_close_frame_with_invalid_code(server, bystander, raw_ws):
    before = bystander.rounds
    ws = await raw_ws.open(server.port)
    sid = await ws.sio_connect()
    ws.send_frame(raw_ws.OP_CLOSE, struct.pack("!H", 1005))  # 1005 must never be sent
    assert await ws.wait_closed() == 1002
    assert (await server.log.expect("disconnect", sid=sid))["reason"] in REASONS
    await bystander.check(before)


# -----------------------------------------------------------------------------
# WebSocket handshake validation (RFC 6455 4.2.1) and size limits
# -----------------------------------------------------------------------------

WS_HANDSHAKE_HEADERS = {
    "no-key": b"Sec-WebSocket-Version: 13\r\n",
    "empty-key": b"Sec-WebSocket-Key: \r\nSec-WebSocket-Version: 13\r\n",
    "short-key": b"Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n",
    "no-version": b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    "version-7": b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n",
}


@pytest.mark.parametrize("headers", list(WS_HANDSHAKE_HEADERS.values()), ids=list(WS_HANDSHAKE_HEADERS))
async def test_invalid_websocket_handshake_is_refused(server, bystander, raw_ws, headers):
    """A handshake without a valid 16-byte key or with an unsupported version
    must get an HTTP error (400, or 426 for the version), not a 101 -- and
    must not leave an Engine.IO connection behind."""
    before = bystander.rounds
    eio_before = set(server.sio.eio.sockets)
    reader, writer = await raw_ws.tcp(server.port)
    writer.write(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + headers + b"\r\n"
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except asyncio.TimeoutError:
        pytest.fail("the server sent no response to the handshake")
    except asyncio.IncompleteReadError as exc:
        pytest.fail(f"the server closed the connection without a response: {exc.partial!r}")
    status = int(head.split(b" ", 2)[1])
    assert status in (400, 426), head
    assert set(server.sio.eio.sockets) == eio_before, "an Engine.IO connection was left behind"
    await bystander.check(before)


async def test_polling_body_far_over_the_limit_is_413(server, bystander, http):
    """Node answers a polling POST over maxHttpBufferSize with 413, whatever its size."""
    before = bystander.rounds
    for size in (MAX_BUFFER + 10, 10 * MAX_BUFFER + 10, 2_000_000):
        sid = await open_polling(http, server.url)
        async with http.post(
            server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=b"4" + b"x" * size
        ) as resp:
            assert resp.status == 413, f"{size} bytes: {resp.status} {await resp.text()!r}"
    await bystander.check(before)


async def test_oversized_request_headers_get_431(server, bystander, raw_ws):
    """Like Node's HTTP server: headers over the limit -> 431, then the connection closes."""
    before = bystander.rounds
    reader, writer = await raw_ws.tcp(server.port)
    writer.write(
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    )
    response = await asyncio.wait_for(reader.read(), 10)
    assert response.startswith(b"HTTP/1.1 431"), response[:200]
    await bystander.check(before)
