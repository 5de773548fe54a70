"""Socket.IO v5 packets: decoding, binary attachments and shared encodings."""

from types import ModuleType
from typing import Any, Final, Optional

CONNECT: Final[int]
DISCONNECT: Final[int]
EVENT: Final[int]
ACK: Final[int]
CONNECT_ERROR: Final[int]
BINARY_EVENT: Final[int]
BINARY_ACK: Final[int]

def configure_json(module: Optional[ModuleType] = None) -> None:
    """Select the JSON module: None for orjson, else a stdlib-json-like module."""

def json_module() -> ModuleType:
    """The module configure_json selected."""

class Packet:
    """A decoded packet; binary types keep their type with attachments in place."""

    @property
    def type(self) -> int: ...
    @property
    def namespace(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def id(self) -> Optional[int]: ...
    def __init__(self, type: int, namespace: str = "/", data: Any = None,
                 id: Optional[int] = None) -> None: ...

class Decoder:
    """Per-connection decoder that reassembles binary packets."""

    @property
    def max_attachments(self) -> int: ...
    @property
    def max_size(self) -> int: ...
    @property
    def waiting(self) -> int:
        """Attachments still awaited (0 when none)."""
    def __init__(self, max_attachments: int = 10, max_size: int = 1_000_000) -> None: ...
    def feed_text(self, s: bytes) -> Optional[Packet]:
        """Decode a packet's text; None while it waits for attachments."""
    def feed_binary(self, b: bytes) -> Optional[Packet]:
        """Add an attachment; the completed Packet once all arrived."""
    def reset(self) -> None:
        """Drop a partially received binary packet."""

class Encoded:
    """The result of one encode, shared by every recipient of a broadcast."""

    @property
    def message(self) -> bytes:
        """``b"4" + text``: the Engine.IO MESSAGE packet."""
    @property
    def text(self) -> bytes:
        """The Socket.IO packet text (UTF-8), without the Engine.IO ``4``."""
    @property
    def attachments(self) -> list[bytes]: ...
    def __init__(self, text: bytes, attachments: Optional[list[bytes]] = None) -> None: ...
    def ws_frames(self) -> bytes:
        """All WebSocket frames of the packet, concatenated (cached)."""
    def poll_items(self) -> list[bytes]:
        """Polling items: the message, then ``b"b" + base64`` per attachment (cached; do not mutate)."""
    @property
    def binary(self) -> bool:
        """True for one binary Engine.IO message whose payload is ``message`` (``encoded_binary``)."""
    def ws_parts(self) -> list[bytes]:
        """``ws_frames()`` as parts to write in order; attachments of 16 KiB or more are parts of
        their own (the attachment objects themselves), so they are sent without a copy (cached)."""
    def message_str(self) -> str:
        """``message`` decoded, for transports that send whole text messages (cached)."""

def encoded_binary(payload: bytes) -> Encoded:
    """An ``Encoded`` that is one binary Engine.IO message carrying ``payload`` (msgpack packets)."""

def encode(type: int, namespace: str = "/", data: Any = None,
           id: Optional[int] = None) -> Encoded:
    """Encode one packet; binary values become attachments."""
