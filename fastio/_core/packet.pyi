"""Socket.IO v5 packets.

Wire format (the Engine.IO ``4`` prefix is not part of it)::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]

* the namespace ``/`` is omitted, any other is written as ``/name,``;
* binary values (bytes, bytearray, memoryview) anywhere in the data are
  replaced by ``{"_placeholder":true,"num":N}`` in depth-first order; the
  type becomes BINARY_EVENT / BINARY_ACK, ``N-`` gives the attachment count
  and the attachments travel as separate binary messages.

``encode`` produces an ``Encoded`` that is built once and shared by every
recipient of a broadcast; ``Decoder`` (one per connection) turns incoming
text and binary messages back into ``Packet`` objects.
"""

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
    """Select the JSON implementation.

    ``None`` selects orjson. Any other module must offer ``dumps`` and
    ``loads`` like the standard library's ``json``: ``dumps(obj,
    separators=(",", ":"))`` returning str (or bytes) and ``loads`` accepting
    UTF-8 bytes.
    """

def json_module() -> ModuleType:
    """The module configure_json selected."""

class Packet:
    """A decoded Socket.IO packet.

    ``type`` is the wire type (BINARY_EVENT / BINARY_ACK are kept, with the
    attachments already put back in ``data``); ``namespace`` is ``"/"`` when
    the packet had none; ``data`` is the decoded JSON (None if absent); ``id``
    is the ack id (int) or None.
    """

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

class PartialBudgetError(ValueError):
    """A binary packet's text or attachment would pass the process-wide budget for partial
    messages (``fastio._core.wsframe.set_partial_budget``)."""

class Decoder:
    """Decodes the Socket.IO packets of one connection.

    ``feed_text`` takes a packet's text (the Engine.IO ``4`` stripped),
    ``feed_binary`` an attachment. Both return the completed ``Packet`` or
    None while a binary packet still waits for attachments. ValueError is
    raised for any malformed input; the decoder is then reset.  A packet
    waiting for attachments holds its text and attachments against the
    process-wide partial budget (``PartialBudgetError`` past it) until it
    completes, the decoder is reset, or the decoder is freed.  Namespace names
    are never interned: strings from clients must stay freeable.
    """

    @property
    def max_attachments(self) -> int: ...
    @property
    def max_size(self) -> int: ...
    @property
    def waiting(self) -> int:
        """Number of attachments still awaited (0 when none)."""
    def __init__(self, max_attachments: int = 10, max_size: int = 1_000_000) -> None: ...
    def feed_text(self, s: bytes) -> Optional[Packet]:
        """Decode a packet's text; None while it waits for attachments."""
    def feed_binary(self, b: bytes) -> Optional[Packet]:
        """Add an attachment; the completed Packet once all arrived, else None."""
    def reset(self) -> None:
        """Drop a partially received binary packet."""

class Encoded:
    """One encoded Socket.IO packet, shared by all recipients of a broadcast.

    ``message`` is the Engine.IO MESSAGE packet (``b"4" + text``),
    ``attachments`` the binary attachments (list of bytes). The transport
    forms are built on first use and cached; treat them as read-only.
    With ``binary`` set (see ``encoded_binary``) the packet is one binary
    Engine.IO message whose payload is ``message``, and has no attachments.
    """

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
        """Every WebSocket frame of the packet (text, then one binary frame
        per attachment), concatenated into one bytes object (cached)."""
    def poll_items(self) -> list[bytes]:
        """The packet as polling items: ``[b"4" + text]`` followed by
        ``b"b" + base64(attachment)`` for each attachment (cached; do not mutate)."""
    @property
    def binary(self) -> bool:
        """True for one binary Engine.IO message whose payload is ``message`` (``encoded_binary``)."""
    no_compress: bool
    """Set for Node's ``compress(False)``: the packet's WebSocket frames are never
    permessage-deflate compressed, whatever the connection negotiated (False by default)."""
    def ws_parts(self) -> list[bytes]:
        """The bytes of ``ws_frames()`` as a list of parts to write in order, where each
        attachment of 16 KiB or more is its own part, the attachment object itself: writing
        the parts (``writelines``) sends a large payload without copying it into a frame.
        """
    def message_str(self) -> str:
        """``message`` decoded: the text WebSocket message for transports that send whole
        messages (cached, so a broadcast decodes once)."""

def encoded_binary(payload: bytes) -> Encoded:
    """An ``Encoded`` that is one binary Engine.IO message carrying ``payload`` (a packet of a
    binary serializer such as msgpack): a binary WebSocket frame, or ``b"b" + base64`` when
    polling.
    """

def encode(type: int, namespace: str = "/", data: Any = None,
           id: Optional[int] = None) -> Encoded:
    """Encode one packet.

    Binary values anywhere in ``data`` are moved to attachments, turning EVENT
    into BINARY_EVENT and ACK into BINARY_ACK (ValueError for other types).
    BINARY_EVENT / BINARY_ACK without binary data are written as EVENT / ACK.
    """
