"""Engine.IO v4 packet codec (fastio._core.eio)."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastio._core import eio

# Deterministic: fixed seed, no example database, no timing-based failures.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

# ---------------------------------------------------------------- constants


def test_packet_type_constants():
    assert (eio.OPEN, eio.CLOSE, eio.PING, eio.PONG, eio.MESSAGE,
            eio.UPGRADE, eio.NOOP) == (0, 1, 2, 3, 4, 5, 6)
    assert type(eio.MESSAGE) is int


# ---------------------------------------------------------------- polling payloads


def test_decode_payload_text_and_binary():
    body = b"4hello\x1ebAQID\x1e2probe\x1e6"
    assert eio.decode_payload(body) == [
        (4, b"hello", False),
        (eio.MESSAGE, b"\x01\x02\x03", True),
        (2, b"probe", False),
        (6, b"", False),
    ]


def test_decode_payload_single_packet():
    assert eio.decode_payload(b"4hello") == [(4, b"hello", False)]
    assert eio.decode_payload(b"1") == [(1, b"", False)]


def test_decode_payload_utf8_is_left_as_bytes():
    body = "4héllo ✓".encode()
    assert eio.decode_payload(body) == [(4, "héllo ✓".encode(), False)]


def test_decode_payload_empty_binary_message():
    assert eio.decode_payload(b"b") == [(eio.MESSAGE, b"", True)]


def test_decode_payload_unpadded_base64_accepted():
    assert eio.decode_payload(b"bAQI") == [(4, b"\x01\x02", True)]
    assert eio.decode_payload(b"bAQ") == [(4, b"\x01", True)]


def test_encode_payload():
    assert eio.encode_payload([b"4a", b"bAQID", b"2"]) == b"4a\x1ebAQID\x1e2"
    assert eio.encode_payload([b"4only"]) == b"4only"
    assert eio.encode_payload([]) == b""


def test_encode_payload_rejects_non_bytes():
    with pytest.raises(TypeError):
        eio.encode_payload([b"4a", "4b"])
    with pytest.raises(TypeError):
        eio.encode_payload(["4a"])


def test_poll_binary():
    assert eio.poll_binary(b"\x01\x02\x03") == b"bAQID"
    assert eio.poll_binary(b"") == b"b"
    assert eio.poll_binary(bytearray(b"\x01\x02")) == b"bAQI="
    assert eio.poll_binary(memoryview(b"\x01")) == b"bAQ=="
    assert eio.poll_binary(memoryview(b"abcdef")[::2]) == b"b" + base64.b64encode(b"ace")
    with pytest.raises(TypeError):
        eio.poll_binary("text")


@settings(DETERMINISTIC)
@given(st.binary(max_size=300))
def test_poll_binary_matches_stdlib_base64(data):
    enc = eio.poll_binary(data)
    assert enc == b"b" + base64.b64encode(data)
    assert eio.decode_payload(enc) == [(eio.MESSAGE, data, True)]


_text_packet = st.tuples(
    st.just("text"),
    st.integers(min_value=0, max_value=6),
    st.binary(max_size=40).map(lambda b: b.replace(b"\x1e", b"")),
)
_binary_packet = st.tuples(st.just("binary"), st.just(eio.MESSAGE), st.binary(max_size=40))


@settings(DETERMINISTIC, max_examples=300)
@given(st.lists(st.one_of(_text_packet, _binary_packet), min_size=1, max_size=16))
def test_payload_round_trip(packets):
    items = []
    for kind, ptype, data in packets:
        if kind == "text":
            items.append(eio.encode_packet(ptype, data))
        else:
            items.append(eio.poll_binary(data))
    body = eio.encode_payload(items)
    assert body.count(b"\x1e") == len(packets) - 1
    decoded = eio.decode_payload(body)
    assert decoded == [(ptype, data, kind == "binary") for kind, ptype, data in packets]


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", "empty payload"),
        (b"4a\x1e", "empty packet"),
        (b"\x1e4a", "empty packet"),
        (b"4a\x1e\x1e4b", "empty packet"),
        (b"7", "unknown packet type"),
        (b"x", "unknown packet type"),
        (b"4a\x1e9", "unknown packet type"),
        (b"bA", "bad base64"),
        (b"bAQ!D", "bad base64"),
        (b"bAQI=A", "bad base64"),
        (b"bAQ=", "bad base64"),
        (b"bA===", "bad base64"),
        (b"bAQID=", "bad base64"),
        (b"b AQI", "bad base64"),
    ],
)
def test_decode_payload_errors(body, reason):
    with pytest.raises(ValueError, match=reason):
        eio.decode_payload(body)


def test_decode_payload_max_packets():
    body = b"\x1e".join([b"4x"] * 16)
    assert len(eio.decode_payload(body)) == 16
    with pytest.raises(ValueError, match="too many packets"):
        eio.decode_payload(body + b"\x1e4y")
    assert len(eio.decode_payload(body + b"\x1e4y", 17)) == 17
    with pytest.raises(ValueError, match="too many packets"):
        eio.decode_payload(b"4a\x1e4b", 1)
    assert len(eio.decode_payload(b"\x1e".join([b"6"] * 100), 0)) == 100


def test_decode_payload_requires_bytes():
    with pytest.raises(TypeError):
        eio.decode_payload("4hello")
    with pytest.raises(TypeError):
        eio.decode_payload(None)


# ---------------------------------------------------------------- websocket packets


def test_decode_packet():
    assert eio.decode_packet(b"4hello") == (4, b"hello")
    assert eio.decode_packet(b"2probe") == (eio.PING, b"probe")
    assert eio.decode_packet(b"3") == (eio.PONG, b"")
    assert eio.decode_packet(b"5") == (eio.UPGRADE, b"")


@pytest.mark.parametrize("pkt", [b"", b"7", b"b", b"bAQID", b"x4"])
def test_decode_packet_errors(pkt):
    with pytest.raises(ValueError):
        eio.decode_packet(pkt)


def test_encode_packet():
    assert eio.encode_packet(4, b"hello") == b"4hello"
    assert eio.encode_packet(eio.PING) == b"2"
    assert eio.encode_packet(3, "probe") == b"3probe"
    assert eio.encode_packet(4, "héllo") == "4héllo".encode()
    assert eio.encode_packet(0, b'{"sid":"x"}') == b'0{"sid":"x"}'
    assert eio.encode_packet(6, b"") == b"6"


def test_encode_packet_errors():
    with pytest.raises(ValueError):
        eio.encode_packet(7)
    with pytest.raises(ValueError):
        eio.encode_packet(-1, b"x")
    with pytest.raises(TypeError):
        eio.encode_packet(4, 12)


@settings(DETERMINISTIC)
@given(st.integers(min_value=0, max_value=6), st.binary(max_size=100))
def test_packet_round_trip(ptype, data):
    assert eio.decode_packet(eio.encode_packet(ptype, data)) == (ptype, data)
