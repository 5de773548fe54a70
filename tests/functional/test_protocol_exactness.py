"""Engine.IO v4 behaviour where the protocol is exact: what a session becomes after a bad
payload, a missed pong, a client close or an upgrade.  Raw HTTP and WebSocket requests against
a fastio Engine.IO echo server on port 0, checked against what Node's engine.io does.

- a POST whose payload does not decode ends the session at once: the next GET is a 400
  (no close packet is left for it to collect);
- without a pong, the session is gone ping_interval + ping_timeout after the handshake, to the
  millisecond order (one heartbeat task sleeps until the earliest deadline);
- a close packet POSTed while a GET waits answers that GET with a noop, then the sid is unknown;
- after the upgrade packet the WebSocket's next message is the application's (no noop first);
  a polling GET or a second WebSocket for the same sid is refused, the upgraded one goes on.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

import fastio.engineio

EIO_PATH = "/engine.io/?EIO=4&transport="
INTERVAL = 0.3
TIMEOUT = 0.2


class EchoServer:
    """An Engine.IO server that echoes messages and records disconnects (awaitable)."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cors_allowed_origins", "*")
        self.eio = fastio.engineio.AsyncServer(**options)
        self.disconnects: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue()
        self.srv: Any = None

        @self.eio.on("message")
        async def message(sid: str, data: Any) -> None:
            if data == "send-json":
                await self.eio.send(sid, {"a": [1, 2], "b": "c"})
                await self.eio.send(sid, [1, "two"])
            else:
                await self.eio.send(sid, data)

        @self.eio.on("disconnect")
        def disconnect(sid: str, reason: str) -> None:
            self.disconnects.put_nowait((sid, reason, time.monotonic()))

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.srv.port

    def polling(self, sid: str | None = None) -> str:
        return self.url + EIO_PATH + "polling" + ("&sid=" + sid if sid else "")

    async def disconnect_of(self, sid: str, timeout: float = 5.0) -> tuple[str, float]:
        while True:
            got_sid, reason, when = await asyncio.wait_for(self.disconnects.get(), timeout)
            if got_sid == sid:
                return reason, when


@pytest.fixture
async def echo(serve_sio):
    """Factory: ``srv = await echo(**options)`` serves an EchoServer on port 0."""

    async def factory(**options: Any) -> EchoServer:
        server = EchoServer(**options)
        server.srv = await serve_sio(server.eio)
        return server

    return factory


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def open_polling(http: aiohttp.ClientSession, srv: EchoServer) -> str:
    async with http.get(srv.polling()) as resp:
        assert resp.status == 200
        body = await resp.text()
    assert body.startswith("0"), body
    return json.loads(body[1:])["sid"]


async def assert_unknown_sid(http: aiohttp.ClientSession, srv: EchoServer, sid: str) -> None:
    async with http.get(srv.polling(sid)) as resp:
        assert resp.status == 400, await resp.text()
        assert json.loads(await resp.read()) == {"code": 1, "message": "Session ID unknown"}


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Let the loop run until ``predicate()`` holds (a server-side state change with no event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition never reached"
        await asyncio.sleep(0)


# -- bad payload --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"abc", b"4ok\x1e9bad"], ids=["garbage", "bad-second-packet"])
async def test_invalid_polling_payload_ends_the_session_at_once(echo, http, body):
    srv = await echo()
    sid = await open_polling(http, srv)
    async with http.post(srv.polling(sid), data=body) as resp:
        assert resp.status == 400
    reason, _ = await srv.disconnect_of(sid)
    assert reason == "transport error"
    # no close packet waits to be collected: the session is simply gone
    await assert_unknown_sid(http, srv, sid)


async def test_server_disconnect_still_leaves_the_close_packet_for_the_next_poll(echo, http):
    srv = await echo()
    sid = await open_polling(http, srv)
    await srv.eio.disconnect(sid)
    async with http.get(srv.polling(sid)) as resp:
        assert resp.status == 200 and await resp.text() == "1"
    await assert_unknown_sid(http, srv, sid)


# -- heartbeat deadline -------------------------------------------------------------------------


async def test_polling_session_without_pong_closes_at_its_deadline(echo, http):
    srv = await echo(ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    start = time.monotonic()
    sid = await open_polling(http, srv)
    reason, when = await srv.disconnect_of(sid)
    assert reason == "ping timeout"
    elapsed = when - start
    # not before the deadline, and not a sweep period after it
    assert INTERVAL + TIMEOUT - 0.005 <= elapsed < INTERVAL + TIMEOUT + 0.25, elapsed
    await assert_unknown_sid(http, srv, sid)


async def test_poll_right_after_the_deadline_is_refused(echo, http):
    srv = await echo(ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    sid = await open_polling(http, srv)
    conn = srv.eio.sockets[sid]
    # The deadline is set when the ping goes out, and a loop running late gives the client the
    # full timeout from then: take the ping, then wait for the server's own deadline.
    async with http.get(srv.polling(sid)) as resp:
        assert resp.status == 200 and await resp.text() == "2"
    assert conn.pong_deadline > 0.0
    await asyncio.sleep(max(conn.pong_deadline - time.monotonic(), 0.0))
    # the sweep may not have run yet: the request itself must find the session expired
    await assert_unknown_sid(http, srv, sid)


async def test_answered_pings_keep_the_session(echo, http):
    srv = await echo(ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    sid = await open_polling(http, srv)
    for _ in range(3):
        async with http.get(srv.polling(sid)) as resp:
            assert resp.status == 200 and await resp.text() == "2"
        async with http.post(srv.polling(sid), data=b"3") as resp:
            assert resp.status == 200
    assert sid in srv.eio.sockets


async def test_websocket_session_without_pong_is_closed_at_its_deadline(echo, raw_ws):
    srv = await echo(ping_interval=INTERVAL, ping_timeout=TIMEOUT)
    start = time.monotonic()
    ws = await raw_ws.open(srv.srv.port, "/engine.io/?EIO=4&transport=websocket")
    op, payload = await ws.recv_frame()
    assert payload.startswith(b"0")
    sid = json.loads(payload[1:])["sid"]
    op, payload = await ws.recv_frame()
    assert payload == b"2"  # the ping, left unanswered
    reason, when = await srv.disconnect_of(sid)
    assert reason == "ping timeout"
    assert INTERVAL + TIMEOUT - 0.005 <= when - start < INTERVAL + TIMEOUT + 0.25


async def test_new_session_gets_its_first_ping_on_time_while_the_heartbeat_sleeps(echo, http):
    # With a timeout longer than the interval, the heartbeat sleeps until the first session's
    # pong deadline; a session made meanwhile has an earlier ping due and must wake it.
    srv = await echo(ping_interval=0.2, ping_timeout=2.0)
    first = await open_polling(http, srv)
    async with http.get(srv.polling(first)) as resp:
        assert await resp.text() == "2"  # left unanswered: its deadline is 2 s away
    sid = await open_polling(http, srv)
    start = time.monotonic()
    async with http.get(srv.polling(sid)) as resp:
        assert await resp.text() == "2"
    assert time.monotonic() - start < 0.2 + 0.5  # not the 2 s the heartbeat slept for


# -- close --------------------------------------------------------------------------------------


async def test_close_packet_answers_the_waiting_poll_with_a_noop(echo, http):
    srv = await echo()
    sid = await open_polling(http, srv)
    poll = asyncio.ensure_future(http.get(srv.polling(sid)))
    conn = srv.eio.sockets[sid]
    await until(lambda: conn.poll_waiter is not None)
    async with http.post(srv.polling(sid), data=b"1") as resp:
        assert resp.status == 200
    async with await poll as resp:
        assert resp.status == 200
        assert await resp.text() == "6"
    reason, _ = await srv.disconnect_of(sid)
    assert reason == "client disconnect"
    await assert_unknown_sid(http, srv, sid)


# -- upgrade ------------------------------------------------------------------------------------


async def upgrade(http: aiohttp.ClientSession, srv: EchoServer, raw_ws: Any) -> tuple[str, Any]:
    sid = await open_polling(http, srv)
    ws = await raw_ws.open(srv.srv.port, "/engine.io/?EIO=4&transport=websocket&sid=" + sid)
    ws.send_text("2probe")
    assert await ws.recv_text() == "3probe"
    ws.send_text("5")
    return sid, ws


async def test_after_the_upgrade_the_next_message_is_the_applications(echo, http, raw_ws):
    srv = await echo()
    sid, ws = await upgrade(http, srv, raw_ws)
    ws.send_text("4hello")
    assert await ws.recv_text() == "4hello"
    assert srv.eio.transport(sid) == "websocket"


async def test_poll_during_the_upgrade_gets_a_noop_at_once(echo, http, raw_ws):
    srv = await echo()
    sid = await open_polling(http, srv)
    ws = await raw_ws.open(srv.srv.port, "/engine.io/?EIO=4&transport=websocket&sid=" + sid)
    ws.send_text("2probe")
    assert await ws.recv_text() == "3probe"
    async with http.get(srv.polling(sid)) as resp:
        assert resp.status == 200 and await resp.text() == "6"
    ws.send_text("5")
    ws.send_text("4hello")
    assert await ws.recv_text() == "4hello"


async def test_polling_request_after_the_upgrade_is_refused(echo, http, raw_ws):
    srv = await echo()
    sid, ws = await upgrade(http, srv, raw_ws)
    await until(lambda: srv.eio.sockets[sid].upgraded)
    async with http.get(srv.polling(sid)) as resp:
        assert resp.status == 400
    ws.send_text("4hello")
    assert await ws.recv_text() == "4hello"


async def test_second_websocket_after_the_upgrade_is_closed(echo, http, raw_ws):
    srv = await echo()
    sid, ws = await upgrade(http, srv, raw_ws)
    await until(lambda: srv.eio.sockets[sid].upgraded)
    second = await raw_ws.open(srv.srv.port, "/engine.io/?EIO=4&transport=websocket&sid=" + sid)
    await second.wait_closed()
    ws.send_text("4hello")
    assert await ws.recv_text() == "4hello"


# -- python-engineio API ------------------------------------------------------------------------


async def test_send_of_a_dict_or_list_is_json_text(echo, http):
    srv = await echo()
    sid = await open_polling(http, srv)
    async with http.post(srv.polling(sid), data=b"4send-json") as resp:
        assert resp.status == 200
    async with http.get(srv.polling(sid)) as resp:
        body = await resp.text()
    first, second = body.split("\x1e")
    assert first[0] == "4" and json.loads(first[1:]) == {"a": [1, 2], "b": "c"}
    assert second[0] == "4" and json.loads(second[1:]) == [1, "two"]


async def test_send_packet_takes_python_engineio_packets(echo, http):
    from engineio import packet

    srv = await echo()
    sid = await open_polling(http, srv)
    await srv.eio.send_packet(sid, packet.Packet(packet.MESSAGE, data="text"))
    await srv.eio.send_packet(sid, packet.Packet(packet.MESSAGE, data=b"\x01\x02"))
    await srv.eio.send_packet(sid, packet.Packet(packet.MESSAGE, data={"k": 1}))
    await srv.eio.send_packet(sid, packet.Packet(packet.NOOP))
    async with http.get(srv.polling(sid)) as resp:
        assert (await resp.text()).split("\x1e") == ["4text", "bAQI=", '4{"k":1}', "6"]
    with pytest.raises(ValueError):
        await srv.eio.send_packet(sid, packet.Packet(packet.MESSAGE + 10, data="x"))
    # an unknown sid is ignored, as python-engineio does
    await srv.eio.send_packet("nobody", packet.Packet(packet.MESSAGE, data="x"))


async def test_compression_methods_and_sequence_number(echo, http):
    srv = await echo(compression_threshold=10)
    assert srv.eio.compression_methods == ["gzip", "deflate"]
    assert srv.eio.async_modes()[0] == "fastio"
    before = srv.eio.sequence_number
    sid = await open_polling(http, srv)
    assert srv.eio.sequence_number == before + 1
    srv.eio.compression_methods = ["deflate"]
    await srv.eio.send(sid, "x" * 100)
    async with http.get(srv.polling(sid), headers={"Accept-Encoding": "gzip, deflate"}) as resp:
        assert resp.headers.get("Content-Encoding") == "deflate"
        assert await resp.text() == "4" + "x" * 100
    srv.eio.compression_methods = []
    await srv.eio.send(sid, "y" * 100)
    async with http.get(srv.polling(sid), headers={"Accept-Encoding": "gzip, deflate"}) as resp:
        assert "Content-Encoding" not in resp.headers


async def test_handle_request_call_forms(echo):
    srv = await echo()
    with pytest.raises(TypeError, match="ASGIApp"):
        srv.eio.handle_request({"type": "http"}, None, None)
    with pytest.raises(TypeError):
        srv.eio.handle_request(object())
    with pytest.raises(TypeError):
        srv.eio.handle_request()
    sio = fastio.AsyncServer()
    with pytest.raises(TypeError, match="ASGIApp"):
        await sio.handle_request({"type": "http"}, None, None)
