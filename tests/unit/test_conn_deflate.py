"""Sessions on a WebSocket that negotiated permessage-deflate: which frames go compressed, and a
broadcast's packet deflated once for every recipient with the same window."""
import zlib

from fastio._core.conn import Conn, Flusher, WSTransport
from fastio._core.packet import BINARY_EVENT, EVENT, encode
from fastio._core.wsframe import OP_BINARY, OP_TEXT, FrameReader


class Handler:
    message_sink = staticmethod(lambda *a: None)

    def conn_closed(self, conn, reason):
        pass

    def overflow(self, conn):
        pass


class FramedWS(WSTransport):
    def __init__(self, wbits=0, threshold=1024):
        self.written = []
        self.deflate_wbits = wbits
        self.deflate_threshold = threshold

    def ws_write(self, data):
        self.written.append(data)

    def ws_writelines(self, parts):
        self.written.extend(parts)

    def ws_close(self, code=1000, reason=""):
        pass


def session(loop, flusher, ws):
    conn = Conn("s%d" % id(ws), Handler(), flusher)
    conn.upgrade(ws)
    return conn


def frames(data, wbits=15):
    """(RSV1, opcode, payload inflated) of each frame in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        b0, n = data[pos], data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            n, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        payload = data[pos:pos + n]
        pos += n
        if b0 & 0x40:
            payload = zlib.decompressobj(-wbits).decompress(payload + b"\x00\x00\xff\xff")
        out.append((bool(b0 & 0x40), b0 & 0x0F, payload))
    return out


def test_threshold_and_kinds(loop, run_flush):
    ws = FramedWS(15, threshold=100)
    conn = session(loop, Flusher(loop), ws)
    conn.send_eio(b"4" + b"e" * 98)            # 99 bytes: under the threshold
    conn.send_eio(b"4" + b"f" * 100)           # at it
    conn.send_binary(b"\x00" * 500)
    enc = encode(BINARY_EVENT, "/", ["pic", b"\x01" * 50, b"\x02" * 300])
    conn.send_packet(enc)
    run_flush(loop)
    got = frames(b"".join(ws.written))
    assert got == [
        (False, OP_TEXT, b"4" + b"e" * 98),
        (True, OP_TEXT, b"4" + b"f" * 100),
        (True, OP_BINARY, b"\x00" * 500),
        (False, OP_TEXT, enc.message),         # 451-["pic",...] is short
        (False, OP_BINARY, b"\x01" * 50),
        (True, OP_BINARY, b"\x02" * 300),
    ]
    # fastio's own reader, as a client would, reads them back.
    reader = FrameReader(1 << 20, False, compression=True)
    assert [p for _, p in reader.feed(b"".join(ws.written))][1] == b"4" + b"f" * 100


def test_broadcast_deflated_once_per_window(loop, run_flush):
    flusher = Flusher(loop)
    a, b, c, plain = FramedWS(15), FramedWS(15), FramedWS(10), FramedWS(0)
    conns = [session(loop, flusher, ws) for ws in (a, b, c, plain)]
    enc = encode(EVENT, "/", ["news", "n" * 5000])
    for conn in conns:
        conn.send_packet(enc)
    run_flush(loop)
    # The same bytes object went to both 2**15 recipients: one deflate.
    assert a.written[0] is b.written[0]
    assert frames(a.written[0]) == [(True, OP_TEXT, enc.message)]
    assert frames(c.written[0], 10) == [(True, OP_TEXT, enc.message)]
    assert c.written[0] is not a.written[0]
    assert frames(plain.written[0]) == [(False, OP_TEXT, enc.message)]
    # A new packet is deflated anew.
    enc2 = encode(EVENT, "/", ["news", "m" * 5000])
    conns[0].send_packet(enc2)
    run_flush(loop)
    assert frames(a.written[1]) == [(True, OP_TEXT, enc2.message)]


def test_no_compress_flag(loop, run_flush):
    ws = FramedWS(15)
    conn = session(loop, Flusher(loop), ws)
    enc = encode(EVENT, "/", ["photo", "p" * 5000])
    enc.no_compress = True
    conn.send_packet(enc)
    run_flush(loop)
    assert frames(ws.written[0]) == [(False, OP_TEXT, enc.message)]


def test_engineio_v3_binary_keeps_its_type_byte(loop, run_flush):
    # A v3 session's binary messages start with the type byte 4: compressed one by one, never
    # the broadcast's shared frames.
    ws = FramedWS(15)
    conn = session(loop, Flusher(loop), ws)
    conn.eio3 = True
    enc = encode(BINARY_EVENT, "/", ["pic", b"\x07" * 3000])
    conn.send_packet(enc)
    run_flush(loop)
    got = frames(b"".join(ws.written))
    assert got == [(False, OP_TEXT, enc.message), (True, OP_BINARY, b"\x04" + b"\x07" * 3000)]
