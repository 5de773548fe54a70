"""Engine.IO v3 long-polling payloads (for clients that connect with ``EIO=3``).

Engine.IO v3 is what socket.io-client 2.x and the clients of that era speak.  Its WebSocket
text packets are v4's; what differs is the polling payload, which this module converts:

* the text payload is ``<length>:<packet>`` repeated, the length counted in UTF-16 code units
  (JavaScript's ``String.length``), and a binary message is ``b4<base64>``;
* the binary payload (a client that can receive binary, when the response holds binary data)
  is, for each packet, a byte 0 (text) or 1 (binary), the length's decimal digits as byte
  values 0 to 9, the byte 255, then the packet: UTF-8 text, or the type byte 4 and the data.

The engine queues a v3 session's output in the v4 form (``encode_payload`` of
``_core/eio.pyx``: packets joined by ``\\x1e``, binary as ``b<base64>``) and converts it here
when a poll is answered, so the v4 path pays nothing for v3.  This is not a hot path: v3
clients are the legacy case.
"""
from __future__ import annotations

import base64
import binascii

__all__ = ["decode_payload_v3", "encode_payload_v3", "utf16_length"]

_RS = b"\x1e"
_MAX_LENGTH_DIGITS = 10  # a length of 10 digits is already far past any HTTP buffer limit


def utf16_length(text: bytes) -> int:
    """The length JavaScript gives the UTF-8 ``text`` once decoded (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    s = text.decode("utf-8")
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def _digits(n: int) -> bytes:
    return bytes(ord(c) - 0x30 for c in str(n))


def encode_payload_v3(body: bytes, binary_ok: bool) -> tuple[bytes, bool]:
    """Convert a v4 polling ``body`` to the v3 payload; returns ``(payload, is_binary)``.

    With ``binary_ok`` (the client did not ask for ``b64=1``) and at least one binary message
    in ``body``, the result is the binary payload (``application/octet-stream``); otherwise
    the text payload, binary messages in base64."""
    items = body.split(_RS)
    has_binary = any(item[:1] == b"b" for item in items)
    out = bytearray()
    if binary_ok and has_binary:
        for item in items:
            if item[:1] == b"b":
                raw = base64.b64decode(item[1:])
                out += b"\x01" + _digits(len(raw) + 1) + b"\xff\x04"
                out += raw
            else:
                out += b"\x00" + _digits(len(item)) + b"\xff"
                out += item
        return bytes(out), True
    for item in items:
        if item[:1] == b"b":
            item = b"b4" + item[1:]
        out += b"%d:" % utf16_length(item)
        out += item
    return bytes(out), False


def _text_packet(pkt: bytes) -> tuple[int, bytes, bool]:
    if not pkt:
        raise ValueError("empty packet in payload")
    c = pkt[0]
    if c == 0x62:  # b<type><base64>
        if len(pkt) < 2 or pkt[1] != 0x34:
            raise ValueError("a base64 packet that is not a message")
        try:
            return 4, base64.b64decode(pkt[2:], validate=True), True
        except binascii.Error as exc:
            raise ValueError("bad base64: %s" % exc) from None
    if not 0x30 <= c <= 0x36:
        raise ValueError("unknown packet type %r" % bytes((c,)))
    return c - 0x30, pkt[1:], False


def _decode_binary(body: bytes) -> list[tuple[int, bytes, bool]]:
    out: list[tuple[int, bytes, bool]] = []
    pos = 0
    end = len(body)
    while pos < end:
        kind = body[pos]
        if kind > 1:
            raise ValueError("bad binary payload: packet kind %d" % kind)
        stop = body.find(b"\xff", pos + 1, pos + 2 + _MAX_LENGTH_DIGITS)
        if stop < 0 or stop == pos + 1:
            raise ValueError("bad binary payload: no length")
        n = 0
        for d in body[pos + 1:stop]:
            if d > 9:
                raise ValueError("bad binary payload: length digit %d" % d)
            n = n * 10 + d
        pos = stop + 1
        if n == 0 or pos + n > end:
            raise ValueError("bad binary payload: length %d" % n)
        chunk = body[pos:pos + n]
        pos += n
        if kind == 0:
            out.append(_text_packet(chunk))
        else:
            if chunk[0] != 4:
                raise ValueError("a binary packet that is not a message")
            out.append((4, chunk[1:], True))
    return out


def decode_payload_v3(body: bytes) -> list[tuple[int, bytes, bool]]:
    """Decode a v3 polling POST body (text or binary payload) into ``(type, data, binary)``
    tuples, as ``_core.eio.decode_payload`` does for v4; ValueError on malformed input."""
    if not body:
        raise ValueError("empty payload")
    if body[0] <= 1:
        return _decode_binary(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("invalid UTF-8 in a text payload") from None
    if text.isascii():
        units: bytes | None = None
        width = 1
        data = body
    else:
        # Lengths count UTF-16 code units: index the UTF-16 form, two bytes per unit.
        data = units = text.encode("utf-16-le", "surrogatepass")
        width = 2
    out: list[tuple[int, bytes, bool]] = []
    pos = 0
    end = len(data) // width
    while pos < end:
        n = 0
        start = pos
        while True:
            if pos >= end or pos - start > _MAX_LENGTH_DIGITS:
                raise ValueError("bad payload: no length")
            c = data[pos * width]
            if width == 2 and data[pos * 2 + 1]:
                raise ValueError("bad payload: length is not digits")
            pos += 1
            if c == 0x3A:  # ':'
                break
            if not 0x30 <= c <= 0x39:
                raise ValueError("bad payload: length is not digits")
            n = n * 10 + c - 0x30
        if pos == start + 1 or n == 0 or pos + n > end:
            raise ValueError("bad payload: length %d" % n)
        if units is None:
            pkt = body[pos:pos + n]
        else:
            try:
                pkt = units[pos * 2:(pos + n) * 2].decode("utf-16-le").encode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("bad payload: a length splits a character") from None
        pos += n
        out.append(_text_packet(pkt))
    return out
