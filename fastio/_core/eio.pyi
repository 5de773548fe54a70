"""Engine.IO v4 packets (bytes in, bytes out)."""

from typing import Final, Optional, Union

OPEN: Final[int]
CLOSE: Final[int]
PING: Final[int]
PONG: Final[int]
MESSAGE: Final[int]
UPGRADE: Final[int]
NOOP: Final[int]

def decode_payload(body: bytes, max_packets: int = 16) -> list[tuple[int, bytes, bool]]:
    """Decode a long-polling body into ``(type, data, binary)`` tuples.

    ``max_packets`` <= 0 disables the limit. ValueError on malformed input.
    """

def encode_payload(items: list[bytes]) -> bytes:
    """Join already-encoded polling packets with ``b"\\x1e"``."""

def poll_binary(data: Union[bytes, bytearray, memoryview]) -> bytes:
    """``b"b" + base64(data)``."""

def decode_packet(pkt: bytes) -> tuple[int, bytes]:
    """``b"4hello"`` -> ``(4, b"hello")``; ValueError on empty/unknown type."""

def encode_packet(type: int, data: Optional[Union[bytes, str]] = None) -> bytes:
    """``b"%d" % type + data`` (str data is UTF-8 encoded)."""
