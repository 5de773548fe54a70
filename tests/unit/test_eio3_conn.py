"""A Conn marked ``eio3`` (an Engine.IO v3 client): the type byte on WebSocket binary messages,
client pings that move the deadline, and the sweep that never pings it."""
import time

from fastio._core.conn import Conn, Flusher, heartbeat
from fastio._core.eio import PING, PONG
from fastio._core.packet import BINARY_EVENT, EVENT, encode
from fastio._core.rooms import RoomTable
from fastio._core.wsframe import FrameReader


class Handler:
    message_sink = staticmethod(lambda *a: None)
    heartbeat_interval = 1.0
    ping_timeout = 2.0

    def __init__(self):
        self.errors = []

    def conn_closed(self, conn, reason):
        pass

    def protocol_error(self, conn, message):
        self.errors.append(message)


def frames(ws):
    return [(op, bytes(p)) for op, p in FrameReader(1 << 20, False).feed(b"".join(ws.written))]


def test_broadcast_gives_v3_websockets_prefixed_binary_and_v4_the_shared_frames(loop, run_flush, framed_ws):
    flusher = Flusher(loop)
    table = RoomTable()
    v3, v4 = Conn("a", Handler(), flusher), Conn("b", Handler(), flusher)
    v3.eio3 = True
    ws3, ws4 = framed_ws(), framed_ws()
    v3.upgrade(ws3)
    v4.upgrade(ws4)
    table.enter("/", None, "a", v3)
    table.enter("/", None, "b", v4)
    enc = encode(BINARY_EVENT, "/", ["pic", b"\x00\x01"])
    table.fanout("/", None, None, enc)
    table.fanout("/", None, None, encode(EVENT, "/", ["text"]))
    run_flush(loop)
    assert frames(ws3) == [(1, enc.message), (2, b"\x04\x00\x01"), (1, b'42["text"]')]
    assert frames(ws4) == [(1, enc.message), (2, b"\x00\x01"), (1, b'42["text"]')]


def test_v3_binary_on_a_message_transport_and_after_upgrade(loop, run_flush, message_ws):
    class MessageWS(message_ws):
        def ws_send_messages(self, messages):
            self.batches.extend(messages)  # every message, not the batches

    conn = Conn("a", Handler(), Flusher(loop))
    conn.eio3 = True
    conn.send_binary(b"queued")  # while polling: b<base64>, converted when polled
    assert conn.take_poll() == b"bcXVldWVk"
    conn.send_binary(b"queued")
    ws = MessageWS()
    conn.upgrade(ws)
    conn.send_packet(encode(BINARY_EVENT, "/", ["x", b"zz"]))
    run_flush(loop)
    assert ws.batches == [b"\x04queued", '451-["x",{"_placeholder":true,"num":0}]', b"\x04zz"]


def test_v3_pings_move_the_deadline_and_the_sweep_never_pings(loop):
    handler = Handler()
    conn = Conn("a", handler, Flusher(loop))
    conn.eio3 = True
    now = time.monotonic()
    conn.next_ping = now  # a v4 session would be pinged now
    conn.pong_deadline = now + 3.0
    expired, due = heartbeat([conn], now + 1.0, 1.0, 2.0, 0.0)
    assert expired == [] and due == now + 3.0
    assert conn.take_poll() is None  # no ping queued
    conn.on_packet(PING, b"", False)
    assert conn.pong_deadline >= now + 3.0
    assert conn.take_poll() == b"3"
    expired, _ = heartbeat([conn], conn.pong_deadline, 1.0, 2.0, 0.0)
    assert expired == [conn]
    conn.on_packet(PONG, b"", False)
    assert handler.errors == ["invalid heartbeat direction"]
