"""Tests for fastio._core.wsframe (RFC 6455 framing)."""
import pickle
import random
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastio._core import wsframe
from fastio._core.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WebSocketError,
    accept_key,
    build_close,
    build_frame,
    parse_close,
)

HYP = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY = b"\x37\xfa\x21\x3d"

pytestmark = pytest.mark.usefixtures("partial_budget_released")


def raw_frame(opcode, payload=b"", *, fin=True, rsv=0, mask_key=KEY, length=None,
              length_form=None):
    """Reference encoder able to produce invalid frames.

    ``length`` overrides the declared payload length; ``length_form`` forces
    the 7-bit, 16-bit or 64-bit length encoding.
    """
    n = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask_key is not None else 0
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n < 65536 else 64
    if length_form == 7:
        head.append(mbit | n)
    elif length_form == 16:
        head.append(mbit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", n)
    if mask_key is not None:
        head += mask_key
        payload = bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + bytes(payload)


def feed_pieces(reader, data, cuts):
    out = []
    prev = 0
    for cut in sorted(cuts) + [len(data)]:
        out += reader.feed(data[prev:cut])
        prev = cut
    return out


def feed_bytewise(reader, data):
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i:i + 1])
    return out


def expect_error(code, *chunks, **reader_kw):
    reader = FrameReader(**reader_kw)
    with pytest.raises(WebSocketError) as info:
        for chunk in chunks:
            reader.feed(chunk)
    assert info.value.code == code
    assert info.value.args[0] == code
    assert isinstance(info.value.reason, str)
    return reader, info.value


def payload_of(n, seed=0):
    return random.Random(seed + n).randbytes(n)


# ---------------------------------------------------------------------------
# constants and the error type


def test_opcode_constants():
    assert (OP_CONT, OP_TEXT, OP_BINARY) == (0, 1, 2)
    assert (OP_CLOSE, OP_PING, OP_PONG) == (8, 9, 10)
    assert all(type(v) is int for v in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))


def test_websocket_error_fields():
    err = WebSocketError(1002, "bad")
    assert (err.code, err.reason, err.args) == (1002, "bad", (1002, "bad"))
    assert isinstance(err, Exception)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.code, copy.reason) == (1002, "bad")


# ---------------------------------------------------------------------------
# round trips


LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_round_trip_whole(n, opcode):
    payload = b"a" * n if opcode == OP_TEXT else payload_of(n)
    frame = build_frame(opcode, payload, mask_key=KEY)
    assert frame == raw_frame(opcode, payload)
    reader = FrameReader(max_message_size=2 << 20)
    assert reader.feed(frame) == [(opcode, payload)]
    assert reader.feed(b"") == []


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 125, 126, 127, 300])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_round_trip_bytewise(n, opcode):
    payload = ("é" * n).encode()[:n] if opcode == OP_BINARY else b"z" * n
    frame = build_frame(opcode, payload, mask_key=KEY)
    reader = FrameReader()
    out = feed_bytewise(reader, frame + frame)
    assert out == [(opcode, payload), (opcode, payload)]


@pytest.mark.parametrize("n", [65535, 65536, 1 << 20])
def test_round_trip_large_chunked(n):
    payload = payload_of(n)
    frame = build_frame(OP_BINARY, payload, mask_key=KEY)
    reader = FrameReader(max_message_size=2 << 20)
    stream = frame + build_frame(OP_PING, b"p", mask_key=KEY) + frame
    rng = random.Random(n)
    cuts = sorted(rng.sample(range(1, len(stream)), 200))
    out = feed_pieces(reader, stream, cuts)
    assert out == [(OP_BINARY, payload), (OP_PING, b"p"), (OP_BINARY, payload)]


@pytest.mark.parametrize("cut", range(0, 20))
def test_split_inside_header_every_position(cut):
    payload = payload_of(70000)
    frame = build_frame(OP_BINARY, payload, mask_key=KEY)
    small = build_frame(OP_TEXT, b"hi", mask_key=KEY)
    stream = small + frame + small
    reader = FrameReader()
    out = reader.feed(stream[:len(small) + cut])
    out += reader.feed(stream[len(small) + cut:])
    assert out == [(OP_TEXT, b"hi"), (OP_BINARY, payload), (OP_TEXT, b"hi")]


def test_many_frames_in_one_feed():
    frames = [build_frame(OP_TEXT, str(i), mask_key=KEY) for i in range(1000)]
    out = FrameReader().feed(b"".join(frames))
    assert out == [(OP_TEXT, str(i).encode()) for i in range(1000)]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_feed_accepts_buffers(kind):
    stream = build_frame(OP_TEXT, "hello", mask_key=KEY) * 2
    reader = FrameReader()
    out = reader.feed(kind(stream[:9]))
    out += reader.feed(kind(stream[9:]))
    assert out == [(OP_TEXT, b"hello")] * 2


def test_feed_memoryview_slice():
    stream = b"xx" + build_frame(OP_BINARY, b"abc", mask_key=KEY) + b"yy"
    assert FrameReader().feed(memoryview(stream)[2:-2]) == [(OP_BINARY, b"abc")]


def test_empty_feeds_anywhere():
    stream = build_frame(OP_TEXT, b"x" * 300, mask_key=KEY) + build_frame(OP_PING, b"", mask_key=KEY)
    reader = FrameReader()
    out = []
    for i in range(len(stream)):
        out += reader.feed(b"")
        out += reader.feed(stream[i:i + 1])
    assert out == [(OP_TEXT, b"x" * 300), (OP_PING, b"")]


def test_feed_rejects_str():
    with pytest.raises(TypeError):
        FrameReader().feed("text")


def test_unmask_all_alignments_and_keys():
    rng = random.Random(7)
    for n in range(0, 80):
        key = rng.randbytes(4)
        payload = rng.randbytes(n)
        frame = build_frame(OP_BINARY, payload, mask_key=key)
        assert frame == raw_frame(OP_BINARY, payload, mask_key=key)
        # parse from an offset to exercise unaligned source pointers
        for off in range(4):
            data = memoryview(b"\0" * off + frame)[off:]
            assert FrameReader().feed(data) == [(OP_BINARY, payload)]


def test_non_minimal_length_encoding_accepted():
    stream = (raw_frame(OP_BINARY, b"abc", length_form=16)
              + raw_frame(OP_BINARY, b"abc", length_form=64)
              + raw_frame(OP_TEXT, b"x" * 200, length_form=64))
    out = FrameReader().feed(stream)
    assert out == [(OP_BINARY, b"abc"), (OP_BINARY, b"abc"), (OP_TEXT, b"x" * 200)]


def test_fragmented_message_with_interleaved_ping():
    stream = (raw_frame(OP_TEXT, b"Hel", fin=False)
              + raw_frame(OP_PING, b"are you there")
              + raw_frame(OP_CONT, b"lo, ", fin=False)
              + raw_frame(OP_PONG, b"")
              + raw_frame(OP_CONT, "wörld".encode(), fin=True)
              + raw_frame(OP_BINARY, b"next"))
    expected = [(OP_PING, b"are you there"), (OP_PONG, b""),
                (OP_TEXT, "Hello, wörld".encode()), (OP_BINARY, b"next")]
    assert FrameReader().feed(stream) == expected
    assert feed_bytewise(FrameReader(), stream) == expected


def test_fragmented_binary_and_empty_fragments():
    stream = (build_frame(OP_BINARY, b"", fin=False, mask_key=KEY)
              + build_frame(OP_CONT, b"ab", fin=False, mask_key=KEY)
              + build_frame(OP_CONT, b"", fin=False, mask_key=KEY)
              + build_frame(OP_CONT, b"cd", fin=True, mask_key=KEY))
    assert FrameReader().feed(stream) == [(OP_BINARY, b"abcd")]
    assert FrameReader().feed(stream + stream) == [(OP_BINARY, b"abcd")] * 2


def test_fragmented_text_split_inside_a_character():
    data = "€uro".encode()
    stream = (raw_frame(OP_TEXT, data[:1], fin=False)
              + raw_frame(OP_CONT, data[1:2], fin=False)
              + raw_frame(OP_CONT, data[2:], fin=True))
    assert FrameReader().feed(stream) == [(OP_TEXT, data)]


def test_large_fragmented_message():
    parts = [payload_of(n) for n in (70000, 1, 65536, 200000)]
    stream = b"".join(
        build_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=i == len(parts) - 1, mask_key=KEY)
        for i, p in enumerate(parts))
    reader = FrameReader()
    assert feed_pieces(reader, stream, list(range(1000, len(stream), 4093))) == [
        (OP_BINARY, b"".join(parts))]


def test_control_frames_round_trip():
    stream = (build_frame(OP_PING, b"x" * 125, mask_key=KEY)
              + build_frame(OP_PONG, "pong", mask_key=KEY)
              + build_frame(OP_CLOSE, build_close(1001, "going"), mask_key=KEY))
    assert FrameReader().feed(stream) == [
        (OP_PING, b"x" * 125), (OP_PONG, b"pong"), (OP_CLOSE, b"\x03\xe9going")]


frame_specs = st.lists(
    st.one_of(
        st.tuples(st.just(OP_BINARY), st.binary(max_size=300)),
        st.tuples(st.just(OP_TEXT), st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass"))
                  .filter(lambda b: _is_utf8(b))),
        st.tuples(st.sampled_from([OP_PING, OP_PONG]), st.binary(max_size=125)),
        st.tuples(st.just(-1), st.lists(st.tuples(st.binary(max_size=80), st.booleans()),
                                        min_size=1, max_size=4)),
    ),
    max_size=8,
)


def _is_utf8(b):
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@HYP
@given(specs=frame_specs, key=st.binary(min_size=4, max_size=4), data=st.data())
def test_random_streams_random_splits(specs, key, data):
    stream = b""
    expected = []
    for op, payload in specs:
        if op == -1:
            for i, (part, ping_after) in enumerate(payload):
                last = i == len(payload) - 1
                stream += build_frame(OP_BINARY if i == 0 else OP_CONT, part,
                                      fin=last, mask_key=key)
                if ping_after and not last:
                    stream += build_frame(OP_PING, b"%d" % i, mask_key=key)
                    expected.append((OP_PING, b"%d" % i))
            expected.append((OP_BINARY, b"".join(part for part, _ in payload)))
        else:
            stream += build_frame(op, payload, mask_key=key)
            expected.append((op, payload))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert feed_pieces(FrameReader(), stream, cuts) == expected


@HYP
@given(payload=st.binary(min_size=0, max_size=70000), key=st.binary(min_size=4, max_size=4),
       data=st.data())
def test_random_payload_random_splits(payload, key, data):
    frame = build_frame(OP_BINARY, payload, mask_key=key)
    cuts = data.draw(st.lists(st.integers(0, len(frame)), max_size=6))
    assert feed_pieces(FrameReader(), frame, cuts) == [(OP_BINARY, payload)]


# ---------------------------------------------------------------------------
# protocol errors


def test_unmasked_frame_rejected_by_server():
    expect_error(1002, raw_frame(OP_TEXT, b"hi", mask_key=None))
    expect_error(1002, raw_frame(OP_PING, b"", mask_key=None))


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits(rsv):
    expect_error(1002, raw_frame(OP_TEXT, b"hi", rsv=rsv))


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unknown_opcodes(opcode):
    expect_error(1002, raw_frame(opcode, b"hi"))


def test_control_frame_too_long():
    expect_error(1002, raw_frame(OP_PING, b"x" * 126))
    expect_error(1002, raw_frame(OP_CLOSE, b"\x03\xe8" + b"x" * 200))
    # a 16-bit length form for a small control payload is still > 125 in the 7-bit field
    expect_error(1002, raw_frame(OP_PONG, b"x", length_form=16))


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_fragmented_control_frame(opcode):
    expect_error(1002, raw_frame(opcode, b"x", fin=False))


def test_continuation_without_message():
    expect_error(1002, raw_frame(OP_CONT, b"x"))
    expect_error(1002, raw_frame(OP_TEXT, b"a") + raw_frame(OP_CONT, b"x"))


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_during_fragmented_message(second):
    expect_error(1002, raw_frame(OP_TEXT, b"a", fin=False) + raw_frame(second, b"b"))


def test_64bit_length_high_bit():
    header = raw_frame(OP_BINARY, b"", length=1 << 63, length_form=64)
    expect_error(1002, header, max_message_size=sys.maxsize)
    expect_error(1002, header)


def test_message_too_big_raised_on_header_only():
    limit = 1000
    payload = b"x" * (limit + 1)
    frame = raw_frame(OP_BINARY, payload)
    header_len = len(frame) - len(payload)
    reader = FrameReader(max_message_size=limit)
    with pytest.raises(WebSocketError) as info:
        reader.feed(frame[:header_len])     # only the header, no payload yet
    assert info.value.code == 1009


def test_message_too_big_header_split_across_feeds():
    frame = raw_frame(OP_BINARY, b"", length=10_000_000, length_form=64)
    reader = FrameReader()
    for i in range(len(frame) - 1):
        assert reader.feed(frame[i:i + 1]) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(frame[-1:])
    assert info.value.code == 1009


def test_message_too_big_after_buffered_frame():
    ok = raw_frame(OP_TEXT, b"ok")
    reader = FrameReader(max_message_size=100)
    assert reader.feed(ok[:3]) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(ok[3:] + raw_frame(OP_BINARY, b"", length=101))
    assert info.value.code == 1009


def test_message_size_limit_exact():
    reader = FrameReader(max_message_size=100)
    assert reader.feed(raw_frame(OP_BINARY, b"x" * 100)) == [(OP_BINARY, b"x" * 100)]
    # control frames do not count against the message limit
    assert FrameReader(max_message_size=0).feed(raw_frame(OP_PING, b"x" * 125)) == [
        (OP_PING, b"x" * 125)]


def test_fragmented_message_too_big_on_header():
    limit = 100
    reader = FrameReader(max_message_size=limit)
    assert reader.feed(raw_frame(OP_TEXT, b"a" * 60, fin=False)) == []
    assert reader.feed(raw_frame(OP_CONT, b"b" * 40, fin=False)) == []
    cont = raw_frame(OP_CONT, b"c")
    with pytest.raises(WebSocketError) as info:
        reader.feed(cont[:6])               # header of a fragment that would exceed the limit
    assert info.value.code == 1009


def test_invalid_utf8_text():
    expect_error(1007, raw_frame(OP_TEXT, b"\xff"))
    expect_error(1007, raw_frame(OP_TEXT, b"ok\xc3", fin=False) + raw_frame(OP_CONT, b"("))
    # a truncated character at the end of the whole message
    expect_error(1007, raw_frame(OP_TEXT, b"ok", fin=False) + raw_frame(OP_CONT, b"\xe2\x82"))
    # binary messages are not validated
    assert FrameReader().feed(raw_frame(OP_BINARY, b"\xff")) == [(OP_BINARY, b"\xff")]


def test_invalid_utf8_text_fed_in_pieces():
    # unfragmented frame whose payload arrives over several feeds
    frame = raw_frame(OP_TEXT, b"a" * 5000 + b"\xc0\xaf")
    reader = FrameReader()
    with pytest.raises(WebSocketError) as info:
        feed_pieces(reader, frame, [3, 100, 4000])
    assert info.value.code == 1007
    # fragmented message whose fragments arrive in pieces
    stream = raw_frame(OP_TEXT, b"a" * 3000, fin=False) + raw_frame(OP_CONT, b"\xed\xa0\x80")
    with pytest.raises(WebSocketError) as info:
        feed_pieces(FrameReader(), stream, [1, 1500, 3005])
    assert info.value.code == 1007


def test_reader_unusable_after_error():
    reader, err = expect_error(1002, raw_frame(OP_TEXT, b"x", rsv=1))
    with pytest.raises(WebSocketError) as info:
        reader.feed(raw_frame(OP_TEXT, b"fine"))
    assert (info.value.code, info.value.reason) == (err.code, err.reason)


def test_error_detected_before_header_complete():
    # RSV bits and masking are known from the first two bytes.
    expect_error(1002, raw_frame(OP_TEXT, b"x" * 300, rsv=2)[:2])
    expect_error(1002, raw_frame(OP_BINARY, b"x" * 300, mask_key=None)[:2])


def test_invalid_max_message_size():
    with pytest.raises(ValueError):
        FrameReader(max_message_size=-1)
    reader = FrameReader(max_message_size=5, require_mask=False)
    assert (reader.max_message_size, reader.require_mask) == (5, False)


# ---------------------------------------------------------------------------
# client mode


def test_client_mode_parses_unmasked():
    stream = (build_frame(OP_TEXT, "hello") + build_frame(OP_BINARY, b"\x00" * 70000)
              + build_frame(OP_CLOSE, build_close(1000)))
    reader = FrameReader(require_mask=False)
    assert feed_pieces(reader, stream, [3, 50, 70010]) == [
        (OP_TEXT, b"hello"), (OP_BINARY, b"\x00" * 70000), (OP_CLOSE, b"\x03\xe8")]


def test_client_mode_rejects_masked():
    expect_error(1002, build_frame(OP_TEXT, "hello", mask_key=KEY), require_mask=False)


# ---------------------------------------------------------------------------
# builders


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536, 70000])
def test_build_frame_matches_reference(n):
    payload = payload_of(n)
    assert build_frame(OP_BINARY, payload) == raw_frame(OP_BINARY, payload, mask_key=None)
    assert build_frame(OP_BINARY, payload, fin=False) == raw_frame(
        OP_BINARY, payload, fin=False, mask_key=None)
    assert build_frame(OP_BINARY, bytearray(payload)) == build_frame(OP_BINARY, memoryview(payload))


def test_build_frame_str_payload():
    assert build_frame(OP_TEXT, "héllo") == raw_frame(OP_TEXT, "héllo".encode(), mask_key=None)


def test_build_frame_invalid_arguments():
    with pytest.raises(ValueError):
        build_frame(3, b"")
    with pytest.raises(ValueError):
        build_frame(OP_PING, b"x" * 126)
    with pytest.raises(ValueError):
        build_frame(OP_PING, b"x", fin=False)
    with pytest.raises(ValueError):
        build_frame(OP_TEXT, b"x", mask_key=b"abc")
    with pytest.raises(TypeError):
        build_frame(OP_TEXT, None)
    assert build_frame(OP_TEXT, b"x", mask_key=bytearray(b"abcd")) == raw_frame(
        OP_TEXT, b"x", mask_key=b"abcd")


# ---------------------------------------------------------------------------
# close frames


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999])
@pytest.mark.parametrize("reason", ["", "bye", "ünïcødé ✓"])
def test_close_round_trip(code, reason):
    payload = build_close(code, reason)
    assert payload == struct.pack("!H", code) + reason.encode()
    frame = build_frame(OP_CLOSE, payload, mask_key=KEY)
    (op, received), = FrameReader().feed(frame)
    assert op == OP_CLOSE
    assert parse_close(received) == (code, reason)


def test_close_defaults_and_no_status():
    assert build_close() == b"\x03\xe8"
    assert build_close(1005, "ignored") == b""
    assert parse_close(b"") == (1005, "")


def test_build_close_truncates_long_reason_on_char_boundary():
    payload = build_close(1000, "€" * 100)     # 300 bytes of UTF-8
    assert len(payload) <= 125
    code, reason = parse_close(payload)
    assert code == 1000 and reason == "€" * 41
    assert len(build_close(1000, "a" * 500)) == 125


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 65535])
def test_build_close_rejects_unsendable_codes(code):
    with pytest.raises(ValueError):
        build_close(code)


def test_parse_close_one_byte():
    with pytest.raises(WebSocketError) as info:
        parse_close(b"\x03")
    assert info.value.code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_parse_close_invalid_codes(code):
    with pytest.raises(WebSocketError) as info:
        parse_close(struct.pack("!H", code))
    assert info.value.code == 1002


@pytest.mark.parametrize("code", [1000, 1003, 1007, 1010, 1012, 1013, 1014, 3000, 4000, 4999])
def test_parse_close_valid_codes(code):
    assert parse_close(struct.pack("!H", code) + b"r") == (code, "r")


def test_parse_close_invalid_utf8_reason():
    with pytest.raises(WebSocketError) as info:
        parse_close(b"\x03\xe8\xed\xa0\x80")
    assert info.value.code == 1007


# ---------------------------------------------------------------------------
# handshake


def test_accept_key_rfc_example():
    # RFC 6455 section 1.3
    expected = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == expected
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == expected


# ---------------------------------------------------------------------------
# UTF-8 validation (through text frames)


def text_verdict(data):
    """True if a text frame carrying ``data`` is accepted, False if it fails with 1007."""
    try:
        out = FrameReader(max_message_size=1 << 20).feed(raw_frame(OP_TEXT, data))
    except WebSocketError as exc:
        assert exc.code == 1007
        return False
    assert out == [(OP_TEXT, data)]
    return True


BOUNDARY_SEQUENCES = [
    b"\x7f", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf",
    b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80",
    b"\xed\xbf\xbf", b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
    b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98",
    b"\xe2\x28\xa1", b"\xc2\x41", b"\xf0\x9f\x28\x80", b"\xf0\x9f\x98\x28",
]


@pytest.mark.parametrize("seq", BOUNDARY_SEQUENCES)
def test_utf8_boundaries_at_every_offset(seq):
    for prefix in range(0, 18):
        for suffix in (b"", b"a", b"abcdefghijklmnopq"):
            data = b"a" * prefix + seq + suffix
            assert text_verdict(data) == _is_utf8(data), data


def _mutate(b, positions, values):
    b = bytearray(b)
    for p, v in zip(positions, values):
        if b:
            b[p % len(b)] = v
    return bytes(b)


utf8ish = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(
        _mutate,
        st.text(min_size=1, max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.lists(st.integers(0, 200), max_size=3),
        st.lists(st.integers(0, 255), max_size=3),
    ),
    st.lists(st.sampled_from(BOUNDARY_SEQUENCES + [b"a", b"abcdefgh", "€".encode(), "😀".encode()]),
             max_size=12).map(b"".join),
)


@HYP
@given(data=utf8ish)
def test_utf8_validator_matches_python(data):
    assert text_verdict(data) == _is_utf8(data)


@HYP
@given(data=st.binary(max_size=300))
def test_utf8_validator_random_bytes(data):
    assert text_verdict(data) == _is_utf8(data)


def test_module_exports():
    for name in ("FrameReader", "WebSocketError", "build_frame", "build_close",
                 "parse_close", "accept_key"):
        assert hasattr(wsframe, name)


@pytest.fixture
def large_partial_budget():
    old = wsframe.partial_budget()
    wsframe.set_partial_budget(1 << 30)
    yield
    wsframe.set_partial_budget(old)


@pytest.mark.parametrize("fin", [True, False])
def test_declared_length_is_not_reserved_before_the_bytes_arrive(fin, large_partial_budget):
    declared = 32 << 20
    payload = payload_of(declared)
    frame = raw_frame(OP_BINARY, payload, fin=fin)
    header_len = len(frame) - declared
    reader = FrameReader(max_message_size=64 << 20)
    assert reader.feed(frame[:header_len + 100]) == []
    assert reader.reserved < 1 << 20
    out = []
    pos = header_len + 100
    while pos < len(frame):
        out += reader.feed(frame[pos:pos + (1 << 20)])
        pos += 1 << 20
    if fin:
        assert out == [(OP_BINARY, payload)]
    else:
        assert out == [] and reader.reserved >= declared
        assert reader.feed(raw_frame(OP_CONT, b"!")) == [(OP_BINARY, payload + b"!")]


def test_small_payload_arriving_in_pieces_keeps_its_own_buffer():
    payload = payload_of(5000)
    frame = raw_frame(OP_TEXT, payload.hex()[:5000].encode())
    reader = FrameReader()
    assert reader.feed(frame[:50]) == []
    assert 5000 <= reader.reserved < 6000
    assert reader.feed(frame[50:]) == [(OP_TEXT, payload.hex()[:5000].encode())]
    assert reader.reserved == 0
