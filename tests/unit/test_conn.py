"""Conn's output to the two kinds of WebSocket transport: framed bytes (the native protocol) and
whole messages (a framework's WebSocket, ``ws_messages``)."""
import asyncio

import pytest

from fastio._core.conn import Conn, Flusher
from fastio._core.packet import BINARY_EVENT, encode
from fastio._core.wsframe import FrameReader


class Handler:
    message_sink = staticmethod(lambda *a: None)

    def __init__(self):
        self.closed = []
        self.overflowed = []

    def conn_closed(self, conn, reason):
        self.closed.append(reason)

    def overflow(self, conn):
        self.overflowed.append(conn.sid)


def test_message_transport_gets_whole_messages_in_one_batch(loop, run_flush, message_ws):
    handler = Handler()
    conn = Conn("s1", handler, Flusher(loop))
    ws = message_ws()
    conn.upgrade(ws)
    enc = encode(BINARY_EVENT, "/", ["pic", b"\x00\x01", {"x": b"zz"}])
    conn.send_eio(b"2")
    conn.send_packet(enc)
    conn.send_binary(bytearray(b"raw"))
    run_flush(loop)
    assert ws.written == []
    assert ws.batches == [["2", enc.message.decode(), b"\x00\x01", b"zz", b"raw"]]
    assert conn.pending == 0
    # the decoded text is shared by every recipient of the same packet
    assert enc.message_str() is enc.message_str()


def test_framed_transport_gets_the_same_packets_as_frames(loop, run_flush, framed_ws):
    conn = Conn("s2", Handler(), Flusher(loop))
    ws = framed_ws()
    conn.upgrade(ws)
    enc = encode(BINARY_EVENT, "/", ["pic", b"\x00\x01"])
    conn.send_eio(b"2")
    conn.send_packet(enc)
    run_flush(loop)
    assert len(ws.written) == 1
    frames = FrameReader(1 << 20, False).feed(ws.written[0])
    assert [(op, bytes(p)) for op, p in frames] == [(1, b"2"), (1, enc.message), (2, b"\x00\x01")]


def test_close_with_notice_sends_the_close_packet_as_a_message(loop, message_ws):
    handler = Handler()
    conn = Conn("s3", handler, Flusher(loop))
    ws = message_ws()
    conn.upgrade(ws)
    conn.send_eio(b"4hello")
    conn.close("server disconnect", True)
    assert ws.batches == [["4hello", "1"]]
    assert ws.close_codes == [1000]
    assert handler.closed == ["server disconnect"]


def test_message_queue_limit_drops_a_peer_that_does_not_read(loop, message_ws):
    handler = Handler()
    conn = Conn("s4", handler, Flusher(loop), 64)
    ws = message_ws()
    ws.ws_paused = True
    conn.upgrade(ws)
    for _ in range(10):
        conn.send_eio(b"4" + b"x" * 10)
    assert handler.overflowed == ["s4"]


@pytest.fixture
def parts_ws(framed_ws):
    """A frame-taking transport whose writelines() records its parts in ``part_writes``."""
    class PartsWS(framed_ws):
        def __init__(self):
            super().__init__()
            self.part_writes = []

        def ws_writelines(self, parts):
            self.part_writes.append(list(parts))

    return PartsWS


def test_large_output_goes_out_as_parts_without_copying_attachments(loop, run_flush, parts_ws):
    conn = Conn("s5", Handler(), Flusher(loop))
    ws = parts_ws()
    conn.upgrade(ws)
    blob = bytes(range(256)) * 400
    enc = encode(BINARY_EVENT, "/", ["big", blob])
    conn.send_eio(b"2")
    conn.send_packet(enc)
    run_flush(loop)
    assert ws.written == []
    [parts] = ws.part_writes
    assert any(p is enc.attachments[0] for p in parts)
    frames = FrameReader(1 << 20, False).feed(b"".join(parts))
    assert [(op, bytes(p)) for op, p in frames] == [(1, b"2"), (1, enc.message), (2, blob)]


def test_default_writelines_joins_into_one_write(loop, run_flush, framed_ws):
    conn = Conn("s6", Handler(), Flusher(loop))
    ws = framed_ws()
    conn.upgrade(ws)
    enc = encode(BINARY_EVENT, "/", ["big", b"x" * 70000])
    conn.send_packet(enc)
    run_flush(loop)
    assert ws.written == [enc.ws_frames()]


@pytest.mark.parametrize("transport", ["parts_ws", "message_ws"])
def test_overflow_in_the_middle_of_a_packet_sends_none_of_it(loop, run_flush, request, transport):
    """Past max_buffer the session ends; the rest of the packet that overflowed must not be
    queued again on its own (an attachment without its frame header would reach the peer)."""
    handler = Handler()
    conn = Conn("s7", handler, Flusher(loop), 100_000)
    ws = request.getfixturevalue(transport)()
    conn.upgrade(ws)
    conn.send_eio(b"4" + b"x" * 99_990)
    conn.send_packet(encode(BINARY_EVENT, "/", ["big", b"\x81\x05hello" * 3000]))
    conn.send_eio(b"4later")
    run_flush(loop)
    assert handler.overflowed == ["s7"]
    assert ws.written == [] and getattr(ws, "part_writes", []) == [] and getattr(ws, "batches", []) == []
    assert conn.pending == 0


def test_framework_websocket_that_cannot_keep_up_is_bounded_by_max_buffer(loop):
    """A framework WebSocket whose send() has to wait pauses the session's output, so what piles
    up is counted against max_buffer and a reader that never catches up is dropped."""
    from fastio.hosting.bridge import BridgeWebSocket

    async def scenario():
        handler = Handler()
        conn = Conn("s8", handler, Flusher(asyncio.get_running_loop()), 50_000)
        ws = BridgeWebSocket(conn, False)
        sent = []
        gate = asyncio.Event()

        async def send(message):
            sent.append(message)
            if len(sent) >= 2:
                await gate.wait()          # the peer stops reading

        ws.attach_asgi(send)
        conn.upgrade(ws)
        for i in range(200):
            conn.send_eio(b"4" + b"y" * 1000)
            await asyncio.sleep(0)
        assert ws.ws_paused
        assert handler.overflowed == ["s8"]
        assert len(sent) < 10 and len(ws._out) < 60
        # a reader that catches up lets the session write again
        gate.set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not ws.ws_paused

    loop.run_until_complete(scenario())


# -- limits under attack ----------------------------------------------------------------------


def test_tiny_items_count_their_overhead_against_the_write_budget(loop, framed_ws):
    # 1-byte pongs for a peer that never reads: payload bytes alone (2,000) would stay far
    # under the budget; with the per-item overhead 2,000 items pass it.
    from fastio._core.conn import ENTRY_OVERHEAD

    handler = Handler()
    conn = Conn("t1", handler, Flusher(loop), 2000 * ENTRY_OVERHEAD // 2)
    ws = framed_ws()
    ws.ws_paused = True
    conn.upgrade(ws)
    for _ in range(2000):
        conn.on_packet(2, b"", False)  # an Engine.IO ping: the answer is queued
    assert handler.overflowed == ["t1"]


def test_polling_replies_count_their_overhead_too(loop):
    from fastio._core.conn import ENTRY_OVERHEAD

    handler = Handler()
    conn = Conn("t2", handler, Flusher(loop), 1000 * ENTRY_OVERHEAD // 2)
    for _ in range(1000):
        conn.on_packet(2, b"", False)  # polling: "3" waits for a GET that never comes
    assert handler.overflowed == ["t2"]


def test_websocket_pongs_count_against_the_write_budget(loop, framed_ws):
    handler = Handler()
    conn = Conn("t3", handler, Flusher(loop), 100_000)
    ws = framed_ws()
    ws.ws_paused = True
    conn.upgrade(ws)
    for _ in range(1000):
        conn.send_pong(b"p" * 125)
    assert handler.overflowed == ["t3"]
    assert conn.ws_close_code == 1008


def test_pongs_go_out_as_pong_frames(loop, run_flush, framed_ws):
    conn = Conn("t4", Handler(), Flusher(loop))
    ws = framed_ws()
    conn.upgrade(ws)
    conn.send_pong(b"abc")
    run_flush(loop)
    assert [(op, bytes(p)) for op, p in FrameReader(1 << 20, False).feed(b"".join(ws.written))] == [(10, b"abc")]


def test_many_small_parts_are_joined_not_written_as_thousands_of_buffers(loop, run_flush, parts_ws):
    # uvloop turns a writelines() of tens of thousands of buffers into one libuv write that
    # fails with EINVAL: a flood of tiny frames must reach the transport as few parts.
    conn = Conn("t5", Handler(), Flusher(loop))
    ws = parts_ws()
    conn.upgrade(ws)
    for _ in range(30_000):
        conn.send_eio(b"3")
    run_flush(loop)
    assert all(len(parts) <= 256 for parts in ws.part_writes)
    frames = FrameReader(1 << 20, False).feed(b"".join(ws.written + [b"".join(p) for p in ws.part_writes]))
    assert len(frames) == 30_000


def test_sweep_reports_sessions_holding_partial_data_past_the_deadline(loop):
    from fastio._core.conn import heartbeat

    a = Conn("p1", Handler(), Flusher(loop))
    b = Conn("p2", Handler(), Flusher(loop))
    a.next_ping = b.next_ping = 1000.0
    a.partial_deadline = 10.0
    stalled = []
    expired, due = heartbeat([a, b], 5.0, 25.0, 20.0, 0.0, 1.0, stalled)
    assert stalled == [] and expired == [] and due == 10.0
    expired, due = heartbeat([a, b], 10.0, 25.0, 20.0, 0.0, 1.0, stalled)
    assert stalled == [a] and expired == [] and due == 1000.0
