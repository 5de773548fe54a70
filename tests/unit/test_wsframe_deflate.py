"""permessage-deflate (RFC 7692) in fastio._core.wsframe: the compressed frame codec, the
bounded inflate and the server's answer to an offer."""
import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastio._core.wsframe import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameReader,
    WebSocketError,
    build_frame,
    deflate_frame,
    inflate_payload,
    negotiate_deflate,
    partial_budget,
    partial_bytes,
    set_deflate_level,
    set_partial_budget,
)

HYP = settings(derandomize=True, database=None, deadline=None, max_examples=100,
               suppress_health_check=[HealthCheck.too_slow])
KEY = b"\x11\x22\x33\x44"
ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def deflated(data: bytes, wbits: int = 15) -> bytes:
    """``data`` deflated as a peer would send it: sync flush, 00 00 FF FF left off."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = True) -> bytes:
    frame = bytearray(build_frame(opcode, payload, fin=fin, mask_key=KEY))
    if rsv1:
        frame[0] |= 0x40
    return bytes(frame)


def frame_parts(frame: bytes) -> tuple[int, bytes]:
    """(first byte, payload) of an unmasked frame."""
    n = frame[1] & 0x7F
    off = 2
    if n == 126:
        n, off = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, off = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == off + n
    return frame[0], frame[off:]


# -- outgoing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("wbits", [9, 12, 15])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 70_000])
def test_deflate_frame_inflates_with_zlib(wbits, size):
    data = (b"fastio permessage-deflate " * (size // 26 + 1))[:size]
    first, payload = frame_parts(deflate_frame(OP_TEXT, data, wbits))
    assert first == 0x80 | 0x40 | OP_TEXT          # FIN, RSV1, text
    # The tail the sender leaves off, put back by the receiver.
    assert zlib.decompressobj(-wbits).decompress(payload + b"\x00\x00\xff\xff") == data


def test_deflate_frame_is_context_free():
    # No context takeover: the same message deflates to the same bytes every time.
    a = deflate_frame(OP_BINARY, b"x" * 5000)
    assert deflate_frame(OP_BINARY, b"x" * 5000) == a
    assert len(a) < 100


def test_control_frames_are_never_compressed():
    with pytest.raises(ValueError):
        deflate_frame(OP_PING, b"hi")
    with pytest.raises(ValueError):
        deflate_frame(OP_TEXT, b"hi", 8)


# -- incoming -----------------------------------------------------------------------------------


@HYP
@given(data=st.binary(max_size=5000), cut=st.integers(min_value=1, max_value=64))
def test_reader_inflates_any_split(data, cut):
    stream = client_frame(OP_BINARY, deflated(data))
    reader = FrameReader(1_000_000, True, compression=True)
    out = []
    for i in range(0, len(stream), cut):
        out += reader.feed(stream[i:i + cut])
    assert out == [(OP_BINARY, data)]


def test_fragmented_compressed_message_with_a_ping_between():
    text = ("héllo wörld " * 1000).encode()
    z = deflated(text)
    third = len(z) // 3
    stream = (client_frame(OP_TEXT, z[:third], fin=False)
              + client_frame(OP_PING, b"p", rsv1=False)
              + client_frame(OP_CONT, z[third:2 * third], fin=False, rsv1=False)
              + client_frame(OP_CONT, z[2 * third:], rsv1=False)
              + client_frame(OP_TEXT, b"plain", rsv1=False))
    reader = FrameReader(1_000_000, True, compression=True)
    assert reader.feed(stream) == [(OP_PING, b"p"), (OP_TEXT, text), (OP_TEXT, b"plain")]


def test_large_single_frame_streams_then_inflates():
    data = random.Random(7).randbytes(100_000)      # incompressible: a frame > 64 KiB
    stream = client_frame(OP_BINARY, deflated(data))
    assert len(stream) > 65536
    reader = FrameReader(1_000_000, True, compression=True)
    out = reader.feed(stream[:1000]) + reader.feed(stream[1000:])
    assert out == [(OP_BINARY, data)]


@pytest.mark.parametrize("first,opcode,rsv", [
    (False, OP_TEXT, 0x40),          # not negotiated
    (True, OP_PING, 0x40),           # control frames are never compressed
    (True, OP_TEXT, 0x20),           # RSV2: no extension defines it
    (True, OP_TEXT, 0x10),           # RSV3
])
def test_reserved_bits_refused(first, opcode, rsv):
    frame = bytearray(build_frame(opcode, b"x", mask_key=KEY))
    frame[0] |= rsv
    reader = FrameReader(1_000_000, True, compression=first)
    with pytest.raises(WebSocketError) as e:
        reader.feed(bytes(frame))
    assert e.value.code == 1002


def test_rsv1_on_a_continuation_refused():
    reader = FrameReader(1_000_000, True, compression=True)
    reader.feed(client_frame(OP_TEXT, deflated(b"ab")[:1], fin=False))
    with pytest.raises(WebSocketError) as e:
        reader.feed(client_frame(OP_CONT, b"x"))
    assert e.value.code == 1002


def test_zip_bomb_refused_within_the_limit():
    # 50 MB of zeros is about 49 KB deflated: the frame itself is well under the limit.
    bomb = deflated(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    reader = FrameReader(1_000_000, True, compression=True)
    with pytest.raises(WebSocketError) as e:
        reader.feed(client_frame(OP_BINARY, bomb))
    assert e.value.code == 1009
    assert partial_bytes() == 0
    with pytest.raises(WebSocketError):
        inflate_payload(bomb, 1_000_000)


def test_inflate_limit_is_exact():
    data = b"q" * 10_000
    assert inflate_payload(deflated(data), 10_000) == data
    with pytest.raises(WebSocketError) as e:
        inflate_payload(deflated(data), 9_999)
    assert e.value.code == 1009
    reader = FrameReader(9_999, True, compression=True)
    with pytest.raises(WebSocketError):
        reader.feed(client_frame(OP_BINARY, deflated(data)))


def test_invalid_compressed_data_and_utf8():
    with pytest.raises(WebSocketError) as e:
        FrameReader(1000, True, compression=True).feed(client_frame(OP_BINARY, b"\xff\xff\xff"))
    assert e.value.code == 1007
    with pytest.raises(WebSocketError) as e:
        FrameReader(1000, True, compression=True).feed(client_frame(OP_TEXT, deflated(b"\xc3\x28")))
    assert e.value.code == 1007
    # A final deflate block followed by more data in the same message.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    ended = c.compress(b"abc") + c.flush(zlib.Z_FINISH)
    assert inflate_payload(ended) == b"abc"
    with pytest.raises(WebSocketError) as e:
        inflate_payload(ended + b"\x00junk")
    assert e.value.code == 1007


def test_reader_echoes_server_frames():
    # The client side of the codec: fastio's own compressed frames read back.
    data = b"{\"k\": [1, 2, 3]}" * 300
    reader = FrameReader(1_000_000, False, compression=True)
    assert reader.feed(deflate_frame(OP_TEXT, data)) == [(OP_TEXT, data)]


# -- negotiation --------------------------------------------------------------------------------


@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("", None),
    ("x-webkit-deflate-frame", None),
    ("permessage-deflate", (ANSWER, 15)),
    (b"permessage-deflate", (ANSWER, 15)),
    # Chromium's and Node ws's default offers.
    ("permessage-deflate; client_max_window_bits", (ANSWER, 15)),
    ("permessage-deflate; client_max_window_bits=12", (ANSWER, 15)),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", (ANSWER, 15)),
    ("permessage-deflate; server_max_window_bits=10", (ANSWER + "; server_max_window_bits=10", 10)),
    ('permessage-deflate; server_max_window_bits="11"', (ANSWER + "; server_max_window_bits=11", 11)),
    ("PerMessage-Deflate; Server_Max_Window_Bits=9", (ANSWER + "; server_max_window_bits=9", 9)),
    # Declined offers: 8 (zlib has no raw 256-byte window), out of range, valueless,
    # unknown, repeated, malformed.
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; mystery", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ("permessage-deflate;;", None),
    # The first acceptable offer wins.
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
     (ANSWER, 15)),
    ("foo, permessage-deflate; server_max_window_bits=12, permessage-deflate",
     (ANSWER + "; server_max_window_bits=12", 12)),
])
def test_negotiate(header, expected):
    assert negotiate_deflate(header) == expected


def test_many_small_bombs_in_one_read_meet_the_partial_budget():
    # Each frame inflates to just under the message limit; together, in one read, they would
    # hold 100 times that: the process-wide partial budget refuses them with 1008.
    one = client_frame(OP_BINARY, deflated(b"\0" * 900_000))
    old = partial_budget()
    set_partial_budget(4_000_000)
    try:
        reader = FrameReader(1_000_000, True, compression=True)
        with pytest.raises(WebSocketError) as e:
            reader.feed(one * 100)
        assert e.value.code == 1008
        assert partial_bytes() == 0
        # Under the budget, the same frames pass (and give their share back).
        reader = FrameReader(1_000_000, True, compression=True)
        assert len(reader.feed(one * 4)) == 4
        assert partial_bytes() == 0
    finally:
        set_partial_budget(old)


def test_deflate_level():
    data = (b"level test " * 500)
    try:
        set_deflate_level(0)                    # stored blocks: no smaller than the input
        assert len(deflate_frame(OP_TEXT, data)) > len(data)
        set_deflate_level(9)
        assert len(deflate_frame(OP_TEXT, data)) < len(data) // 10
        with pytest.raises(ValueError):
            set_deflate_level(10)
    finally:
        set_deflate_level(-1)
    first, payload = frame_parts(deflate_frame(OP_TEXT, data))
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == data
