"""Attacks after the WebSocket / Engine.IO handshake: every session stays bounded in memory and
time, and a well-behaved client keeps its round trips meanwhile.

Each test configures small limits (``max_write_buffer``, ``max_partial_buffer``,
``partial_message_timeout``) and checks behaviour (close codes, sessions closed, the
server's own counters), not timings.  docs/reliability.md lists the limits.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from fastio._core import wsframe

from connection_log import log_connections

pytestmark = pytest.mark.timeout(60)

PLACEHOLDER = '{"_placeholder":true,"num":%d}'


@pytest.fixture(autouse=True)
def restore_partial_budget():
    # The budget is process-wide and each server sets it: later tests get the default back.
    yield
    wsframe.set_partial_budget(wsframe.DEFAULT_PARTIAL_BUDGET)


async def start(make_sio, serve_sio, event_log, **options):
    options.setdefault("ping_interval", 300)
    options.setdefault("ping_timeout", 300)
    sio = make_sio(**options)
    log = event_log
    log_connections(sio, log)

    @sio.event
    async def echo(sid, data):
        return data

    @sio.event
    async def upload(sid, *args):
        log.add("upload", sid=sid, sizes=[len(a) for a in args if isinstance(a, bytes)])

    overflowed: list[str] = []
    engine_overflow = sio.eio.overflow

    def overflow(conn):
        overflowed.append(conn.sid)
        engine_overflow(conn)

    sio.eio.overflow = overflow
    srv = await serve_sio(sio)
    srv.log = log
    srv.overflowed = overflowed
    return srv


async def round_trip(py_client, srv) -> None:
    """A python-socketio client connects and makes acknowledged round trips."""
    client = py_client()
    await client.connect(srv.url, transports=["websocket"])
    for i in range(3):
        assert await client.call("echo", i, timeout=5) == i
    await client.disconnect()


def eio_sid_of(srv) -> str:
    (sid,) = list(srv.sio.eio.sockets)
    return sid


# -- finding: pongs and tiny replies against the write budget -------------------------------------


async def test_websocket_pings_from_a_peer_that_never_reads_hit_the_write_budget(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, max_write_buffer=256 * 1024)
    client = await raw_ws.open_non_reading(srv.port)
    loop = asyncio.get_running_loop()
    ping = raw_ws.build_frame(raw_ws.OP_PING, b"p" * 125)
    with pytest.raises(OSError):
        # 64 MiB of pings, each answered by a pong the client never reads: the session is
        # dropped long before the client is done.
        for _ in range(64 * 1024 * 1024 // (len(ping) * 1000)):
            await asyncio.wait_for(loop.sock_sendall(client.sock, ping * 1000), 10)
    event = await srv.log.expect("disconnect")
    assert event["reason"] == "transport error"
    assert len(srv.overflowed) == 1
    await round_trip(py_client, srv)


async def test_engineio_pings_in_text_frames_meet_the_budget_with_their_overhead(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    # Each "3" reply is one payload byte.  Past the kernel's socket buffers (a few MiB), what
    # stays queued is counted with its per-item overhead: 4 MiB of budget is reached by some
    # 65,000 replies (200 kB of payload).
    srv = await start(make_sio, serve_sio, event_log, max_write_buffer=4 * 1024 * 1024)
    client = await raw_ws.open_non_reading(srv.port)
    loop = asyncio.get_running_loop()
    pings = raw_ws.build_frame(raw_ws.OP_TEXT, b"2") * 10_000
    with pytest.raises(OSError):
        for _ in range(400):
            await asyncio.wait_for(loop.sock_sendall(client.sock, pings), 10)
    event = await srv.log.expect("disconnect")
    assert event["reason"] == "transport error"
    assert len(srv.overflowed) == 1
    await round_trip(py_client, srv)


async def test_polling_session_that_never_polls_is_closed_past_its_budget(
        make_sio, serve_sio, event_log, py_client):
    srv = await start(make_sio, serve_sio, event_log, max_write_buffer=512 * 1024)
    base = srv.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            text = await resp.text()
        sid = json.loads(text[1:])["sid"]
        url = base + "&sid=" + sid
        async with http.post(url, data=b"40") as resp:
            assert resp.status == 200
        # 100,000 pings: 100 kB of "3" replies waiting for a poll that never comes.
        body = b"\x1e".join([b"2"] * 100_000)
        async with http.post(url, data=body) as resp:
            assert resp.status == 200
        event = await srv.log.expect("disconnect")
        assert event["reason"] == "transport error"
        assert srv.overflowed == [sid]
        async with http.get(url) as resp:
            assert resp.status == 400
    await round_trip(py_client, srv)


# -- finding: partial data with a deadline and a budget --------------------------------------------


async def test_incomplete_frame_is_closed_after_the_timeout(make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, partial_message_timeout=0.5)
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    frame = raw_ws.build_frame(raw_ws.OP_BINARY, b"\x04" + b"a" * 99_999)
    ws.send_raw(frame[:50_000])
    assert await ws.wait_closed() == 1008
    event = await srv.log.expect("disconnect")
    assert event["reason"] == "transport error"
    assert wsframe.partial_bytes() == 0
    await round_trip(py_client, srv)


async def test_incomplete_fragmented_message_is_closed_after_the_timeout(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, partial_message_timeout=0.5)
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    ws.send_frame(raw_ws.OP_TEXT, b'42["echo",', fin=False)
    ws.send_frame(raw_ws.OP_CONT, b'"abc"', fin=False)
    assert await ws.wait_closed() == 1008
    await srv.log.expect("disconnect")
    await round_trip(py_client, srv)


async def test_binary_packet_missing_attachments_is_closed_after_the_timeout(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, partial_message_timeout=0.5)
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    placeholders = ",".join(PLACEHOLDER % k for k in range(3))
    ws.send_text('453-["upload",%s]' % placeholders)
    ws.send_frame(raw_ws.OP_BINARY, b"\x04" + b"b" * 1000)
    ws.send_frame(raw_ws.OP_BINARY, b"\x04" + b"b" * 1000)
    assert await ws.wait_closed() == 1008
    event = await srv.log.expect("disconnect")
    assert event["reason"] == "transport error"
    assert srv.log.all("upload") == []
    assert wsframe.partial_bytes() == 0
    await round_trip(py_client, srv)


async def test_complete_binary_packet_clears_the_deadline(make_sio, serve_sio, event_log, raw_ws):
    srv = await start(make_sio, serve_sio, event_log, partial_message_timeout=5)
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    ws.send_text('452-["upload",%s,%s]' % (PLACEHOLDER % 0, PLACEHOLDER % 1))
    ws.send_frame(raw_ws.OP_BINARY, b"\x04" + b"b" * 10)
    await asyncio.sleep(0)  # nothing to await: the server reads the frames in order
    ws.send_frame(raw_ws.OP_BINARY, b"\x04" + b"c" * 20)
    event = await srv.log.expect("upload")
    assert event["sizes"] == [11, 21]
    conn = srv.sio.eio.sockets[eio_sid_of(srv)]
    assert conn.partial_deadline == 0.0
    assert wsframe.partial_bytes() == 0


async def test_partial_frames_past_the_process_budget_are_refused_with_1008(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, max_partial_buffer=250_000,
                      partial_message_timeout=60)
    first = await raw_ws.open(srv.port)
    await first.sio_connect()
    text = b'42["echo","' + b"a" * 199_987 + b'"]'
    assert len(text) == 200_000
    frame = raw_ws.build_frame(raw_ws.OP_TEXT, text)
    first.send_raw(frame[:150_000])
    await first.writer.drain()
    # Wait until the server holds the first session's partial frame.
    for _ in range(200):
        if wsframe.partial_bytes() >= 100_000:
            break
        await asyncio.sleep(0.01)
    assert wsframe.partial_bytes() >= 100_000
    second = await raw_ws.open(srv.port)
    await second.sio_connect()
    second.send_raw(frame[:150_000])
    assert await second.wait_closed() == 1008
    # The first session is untouched: it completes its message and goes on.
    first.send_raw(frame[150_000:])
    first.emit("echo", "still here", ack_id=7)
    assert await first.recv_text() == '437["still here"]'
    assert wsframe.partial_bytes() == 0
    await round_trip(py_client, srv)


async def test_attachments_past_the_process_budget_are_refused_with_1008(
        make_sio, serve_sio, event_log, raw_ws, py_client):
    srv = await start(make_sio, serve_sio, event_log, max_partial_buffer=150_000,
                      partial_message_timeout=60)
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    placeholders = ",".join(PLACEHOLDER % k for k in range(10))
    ws.send_text('4510-["upload",%s]' % placeholders)
    for _ in range(9):
        ws.send_frame(raw_ws.OP_BINARY, b"\x04" + b"b" * 40_000)
    assert await ws.wait_closed() == 1008
    await srv.log.expect("disconnect")
    assert wsframe.partial_bytes() == 0
    await round_trip(py_client, srv)


async def test_large_polling_post_is_handled_in_order_across_loop_turns(make_sio, serve_sio, event_log):
    # More packets than one slice (4096): handled over several loop iterations, in order, and
    # answered once all are in.
    srv = await start(make_sio, serve_sio, event_log)
    seen: list[int] = []

    @srv.sio.event
    async def seq(sid, i):
        seen.append(i)

    base = srv.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        url = base + "&sid=" + sid
        async with http.post(url, data=b"40") as resp:
            assert resp.status == 200
        body = b"\x1e".join(b'42["seq",%d]' % i for i in range(10_000))
        async with http.post(url, data=body) as resp:
            assert resp.status == 200
            assert await resp.text() == "ok"
        assert seen == list(range(10_000))


async def test_distinct_namespaces_leave_nothing_behind(make_sio, serve_sio, event_log, raw_ws):
    # With namespaces='*' a client names any namespace; once its sockets leave, nothing keyed
    # on those names may stay (the names are long: 20,000 of them used to stay for good).
    srv = await start(make_sio, serve_sio, event_log, namespaces="*")
    ws = await raw_ws.open(srv.port)
    await ws.sio_connect()
    names = ["/%d-%s" % (i, "n" * 2000) for i in range(50)]
    for name in names:
        await ws.sio_connect(name)
        ws.send_text("41" + name + ",")
    ws.emit("echo", "done", ack_id=1)
    assert await ws.recv_text() == '431["done"]'
    manager = srv.sio.manager
    assert not any(name in manager.sockets for name in names)
    assert not any(name in manager.rooms for name in names)
    assert "/" in manager.rooms
