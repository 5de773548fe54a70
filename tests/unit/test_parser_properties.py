"""Property tests of the compiled parsers against hostile input.

The ``fuzz`` marked tests run with a small example budget in the normal suite; set
``FASTIO_FUZZ_EXAMPLES`` (e.g. 20000) for a longer run, or select them alone with
``pytest -m fuzz``.  The unmarked tests are one quick property per parser.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastio._core import wsframe
from fastio._core.eio import decode_payload, encode_payload, poll_binary
from fastio._core.packet import Decoder, encode
from fastio._core.wsframe import FrameReader, WebSocketError, build_frame

FUZZ_EXAMPLES = int(os.environ.get("FASTIO_FUZZ_EXAMPLES", "150"))
QUICK = settings(derandomize=True, database=None, deadline=None, max_examples=100,
                 suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(database=None, deadline=None, max_examples=FUZZ_EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEY = b"\x11\x22\x33\x44"

pytestmark = pytest.mark.usefixtures("partial_budget_released")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


def feed_all(reader: FrameReader, pieces: list[bytes]):
    out = []
    for piece in pieces:
        out += reader.feed(piece)
    return out


# Frames a client might send: data frames (fragmented or not) and control frames.
frame_specs = st.lists(
    st.tuples(st.sampled_from([1, 2, 9, 10]), st.binary(max_size=300), st.integers(1, 3)),
    max_size=8)


def stream_of(specs) -> tuple[bytes, list[tuple[int, bytes]]]:
    data, expected = [], []
    for op, payload, nfrag in specs:
        if op == 1:
            payload = payload.decode("latin-1").encode("utf-8")
        if op >= 8:
            payload = payload[:125]
            data.append(build_frame(op, payload, mask_key=KEY))
            expected.append((op, payload))
            continue
        size = max(1, len(payload) // nfrag)
        chunks = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for i, chunk in enumerate(chunks):
            data.append(build_frame(op if i == 0 else 0, chunk, fin=i == len(chunks) - 1, mask_key=KEY))
        expected.append((op, payload))
    return b"".join(data), expected


def check_frames_any_split(specs, cuts):
    stream, expected = stream_of(specs)
    reader = FrameReader()
    assert feed_all(reader, split(stream, cuts)) == expected
    assert reader.partial_since == 0.0
    del reader
    assert wsframe.partial_bytes() == 0


def check_frames_garbage(data, cuts):
    reader = FrameReader(max_message_size=4096)
    try:
        feed_all(reader, split(data, cuts))
    except WebSocketError as exc:
        assert exc.code in (1002, 1007, 1008, 1009)
    reader.discard()
    assert wsframe.partial_bytes() == 0


def check_payload(body):
    try:
        packets = decode_payload(body, 0)
    except ValueError:
        return
    for ptype, data, binary in packets:
        assert 0 <= ptype <= 6 and isinstance(data, bytes)
        assert not binary or ptype == 4


def check_payload_round_trip(items):
    body = encode_payload([(b"4" + t.encode()) if isinstance(t, str) else poll_binary(t) for t in items])
    assert decode_payload(body, 0) == [
        (4, t.encode(), False) if isinstance(t, str) else (4, t, True) for t in items]


def check_decoder_text(text):
    d = Decoder()
    try:
        pkt = d.feed_text(text)
    except ValueError:
        pkt = None
    if pkt is not None:
        assert isinstance(pkt.namespace, str) and pkt.namespace.startswith("/")
    d.reset()
    assert wsframe.partial_bytes() == 0


def check_binary_reassembly(args, take):
    enc = encode(5, "/", ["ev", *args])
    d = Decoder()
    pkt = d.feed_text(enc.message[1:])  # without the Engine.IO message type
    parts = list(enc.attachments)
    if not parts:
        assert pkt is not None and pkt.data == ["ev", *args]
        return
    assert pkt is None
    # Feed some of the attachments and give up (a stalled client), or all of them.
    for part in parts[:take] if take < len(parts) else parts:
        pkt = d.feed_binary(part)
    if take < len(parts):
        assert pkt is None and wsframe.partial_bytes() > 0
        del d
        assert wsframe.partial_bytes() == 0
    else:
        assert pkt.data == ["ev", *args]
        assert wsframe.partial_bytes() == 0


payload_bodies = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from([b"2", b"3", b"4x", b"6", b"b", b"bAAA", b"b!!", b"", b"9", b"1"]),
             max_size=30).map(b"\x1e".join))
# The record separator cannot appear in a polling text packet (the protocol's own limit).
payload_items = st.lists(st.one_of(st.text(max_size=40).map(lambda t: t.replace("\x1e", "")),
                                   st.binary(max_size=40)), min_size=1, max_size=10)
sio_texts = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([b"0", b"2", b"3", b"4", b"5", b"6", b"51-", b"62-", b"5999999-"]),
              st.sampled_from([b"", b"/ns,", b"/\xff,", b"/" + b"n" * 300 + b","]),
              st.sampled_from([b"", b"1", b"99999999999999999999"]),
              st.sampled_from([b"", b"[]", b'["ev"]', b'{"a":1}', b'["ev",{"_placeholder":true,"num":0}]',
                               b"[", b'"x"'])).map(b"".join))
binary_args = st.lists(st.one_of(st.binary(max_size=200), st.integers(-2**63, 2**63 - 1), st.text(max_size=10)),
                       max_size=5)


# -- quick properties (normal suite) --------------------------------------------------------------


@QUICK
@given(frame_specs, st.lists(st.integers(0, 10_000), max_size=6))
def test_frames_decode_the_same_whatever_the_split(specs, cuts):
    check_frames_any_split(specs, cuts)


@QUICK
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=4))
def test_garbage_frames_raise_only_websocket_errors_and_release_the_budget(data, cuts):
    check_frames_garbage(data, cuts)


@QUICK
@given(payload_bodies)
def test_polling_payloads_decode_or_raise_value_error(body):
    check_payload(body)


@QUICK
@given(payload_items)
def test_polling_payloads_round_trip(items):
    check_payload_round_trip(items)


@QUICK
@given(sio_texts)
def test_socketio_packets_decode_or_raise_value_error(text):
    check_decoder_text(text)


@QUICK
@given(binary_args, st.integers(0, 6))
def test_binary_reassembly_completes_or_releases_its_budget(args, take):
    check_binary_reassembly(args, take)


# -- the fuzz set -----------------------------------------------------------------------------------


@pytest.mark.fuzz
@FUZZ
@given(frame_specs, st.lists(st.integers(0, 100_000), max_size=12))
def test_fuzz_frames_any_split(specs, cuts):
    check_frames_any_split(specs, cuts)


@pytest.mark.fuzz
@FUZZ
@given(st.one_of(st.binary(max_size=4000),
                 frame_specs.map(lambda s: stream_of(s)[0]).flatmap(
                     lambda b: st.tuples(st.just(b), st.binary(max_size=20)).map(lambda t: t[0] + t[1]))),
       st.lists(st.integers(0, 100_000), max_size=12))
def test_fuzz_garbage_frames(data, cuts):
    check_frames_garbage(data, cuts)


@pytest.mark.fuzz
@FUZZ
@given(payload_bodies)
def test_fuzz_polling_payloads(body):
    check_payload(body)


@pytest.mark.fuzz
@FUZZ
@given(payload_items)
def test_fuzz_polling_payload_round_trip(items):
    check_payload_round_trip(items)


@pytest.mark.fuzz
@FUZZ
@given(sio_texts)
def test_fuzz_socketio_packets(text):
    check_decoder_text(text)


@pytest.mark.fuzz
@FUZZ
@given(binary_args, st.integers(0, 6))
def test_fuzz_binary_reassembly(args, take):
    check_binary_reassembly(args, take)
