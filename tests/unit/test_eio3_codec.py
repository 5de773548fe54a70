"""Engine.IO v3 polling payloads (fastio/engineio/eio3.py); tests/interop/test_eio3.py checks
the same codec against Node's v3 parser."""

from __future__ import annotations

import pytest

from fastio.engineio.eio3 import decode_payload_v3, encode_payload_v3, utf16_length


def test_utf16_length_counts_code_units():
    assert utf16_length(b"abc") == 3
    assert utf16_length("\u00e9".encode()) == 1
    assert utf16_length("\U0001F600".encode()) == 2


def test_text_payload():
    body, binary = encode_payload_v3("0{}\x1e40\x1e4\U0001F600".encode(), True)
    assert not binary
    assert body == "3:0{}2:403:4\U0001F600".encode()
    assert decode_payload_v3(body) == [(0, b"{}", False), (4, b"0", False), (4, "\U0001F600".encode(), False)]


def test_binary_payload_and_base64():
    # b<base64 of 01 02> is how the v4 queue holds a binary message.
    v4 = b"4x\x1ebAQI="
    body, binary = encode_payload_v3(v4, True)
    assert binary
    assert body == b"\x00\x02\xff4x" + b"\x01\x03\xff\x04\x01\x02"
    assert decode_payload_v3(body) == [(4, b"x", False), (4, b"\x01\x02", True)]
    body, binary = encode_payload_v3(v4, False)
    assert not binary
    assert body == b"2:4x6:b4AQI="
    assert decode_payload_v3(body) == [(4, b"x", False), (4, b"\x01\x02", True)]


def test_long_lengths():
    data = b"4" + b"a" * 1234
    assert decode_payload_v3(b"1235:" + data) == [(4, data[1:], False)]
    body, _ = encode_payload_v3(b"b" + b"A" * 4000, True)
    assert body[:6] == b"\x01\x03\x00\x00\x01\xff"


@pytest.mark.parametrize("body", [
    b"", b"4:4ab", b"x:4", b"0:", b"2:9x", b":4", b"5:b4!!!", b"3:b3A", b"12345678901234:4",
    b"\x01\x01\xff\x03", b"\x00\xff4", b"\x02\x01\xff4", b"\x01\x05\xff\x04x", b"\x00\x0a\xff4",
    "1:\U0001F600".encode(), b"1:4\xff",
])
def test_bad_payloads_are_value_errors(body):
    with pytest.raises(ValueError):
        decode_payload_v3(body)
