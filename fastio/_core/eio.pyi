"""Engine.IO v4 packets (bytes in, bytes out).

Everything here works on UTF-8 ``bytes``; nothing is decoded to ``str`` on the hot path.

* A WebSocket text frame carries one packet: ``<type digit><data>``.
* An HTTP long-polling body carries one or more packets separated by the record separator
  ``\\x1e``; a binary message travels in polling as ``b<base64>``.
"""

from typing import Final, Optional, Union

OPEN: Final[int]
CLOSE: Final[int]
PING: Final[int]
PONG: Final[int]
MESSAGE: Final[int]
UPGRADE: Final[int]
NOOP: Final[int]

def decode_payload(body: bytes, max_packets: int = 16) -> list[tuple[int, bytes, bool]]:
    """Split and decode an HTTP long-polling POST body.

    Returns a list of ``(type, data, binary)``: ``(4, b"hello", False)`` for ``b"4hello"``,
    ``(MESSAGE, <decoded bytes>, True)`` for ``b"b<base64>"``.  ``max_packets`` <= 0 disables
    the packet count limit.  Raises ValueError for an empty body, an empty packet, an unknown
    type character, bad base64 or more than ``max_packets`` packets.
    """

def encode_payload(items: list[bytes]) -> bytes:
    """Join already-encoded polling packets with ``b"\\x1e"``."""

def poll_binary(data: Union[bytes, bytearray, memoryview]) -> bytes:
    """``b"b" + base64(data)``: a binary message as a polling packet."""

def decode_packet(pkt: bytes) -> tuple[int, bytes]:
    """Decode a WebSocket text frame payload: ``b"4hello"`` -> ``(4, b"hello")``; ValueError on
    an empty packet or an unknown type."""

def encode_packet(type: int, data: Optional[Union[bytes, str]] = None) -> bytes:
    """``b"%d" % type + data``; data is bytes, str (UTF-8 encoded) or None."""
