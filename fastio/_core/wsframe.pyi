"""RFC 6455 WebSocket framing: an incremental frame reader and frame builders.

Server side by default (client frames must be masked); a client mode
(``require_mask=False``) exists for test and benchmark tools.
"""

from typing import Final

OP_CONT: Final[int]
"""Continuation frame opcode (0)."""
OP_TEXT: Final[int]
"""Text frame opcode (1); payloads must be valid UTF-8."""
OP_BINARY: Final[int]
"""Binary frame opcode (2)."""
OP_CLOSE: Final[int]
"""Close frame opcode (8)."""
OP_PING: Final[int]
"""Ping frame opcode (9)."""
OP_PONG: Final[int]
"""Pong frame opcode (10)."""
DEFAULT_PARTIAL_BUDGET: Final[int]
"""The default process-wide budget for partial messages: 32 MiB."""

def set_partial_budget(limit: int) -> None:
    """Set the process-wide budget, in bytes, for partial messages: WebSocket frames and
    fragmented messages still arriving (every ``FrameReader``) and Socket.IO packets waiting
    for their attachments (every ``Decoder``).  Partial data that would pass it is refused: a
    reader fails with close code 1008, a decoder raises ``PartialBudgetError``.  The engine
    sets it from its ``max_partial_buffer`` option."""

def partial_budget() -> int:
    """The current process-wide budget for partial messages, in bytes."""

def partial_bytes() -> int:
    """Bytes of partial messages held now, across every reader and decoder of the process."""

class WebSocketError(Exception):
    """A WebSocket protocol violation.

    ``code`` is the close code to send to the peer (1002 protocol error,
    1007 invalid UTF-8, 1009 message too big, 1011 internal error) and
    1008 past the process-wide partial budget) and ``reason`` a short human readable
    explanation. ``args == (code, reason)``.
    """

    code: int
    reason: str
    def __init__(self, code: int, reason: str = "") -> None: ...

class FrameReader:
    """Incremental parser for a stream of WebSocket frames.

    Feed it the bytes read from the socket, split in any way; it returns the
    complete data messages (fragments joined) and control frames found so far
    and keeps any trailing partial frame for the next call.

    ``max_message_size`` bounds a whole data message (the sum of its
    fragments); a frame header announcing more fails with close code 1009
    before any of the payload is buffered. Pass ``sys.maxsize`` for no limit.
    With ``require_mask=True`` (server) every frame must be masked; with
    ``require_mask=False`` (client) no frame may be masked.

    After a ``WebSocketError`` the reader is unusable: every later ``feed``
    raises the same error again.
    """

    max_message_size: int
    """Largest accepted data message, in bytes (read-only)."""
    require_mask: bool
    """Whether frames must be masked, i.e. whether this is the server side (read-only)."""

    compression: bool
    """permessage-deflate was negotiated: a data message whose first frame has RSV1 set is
    inflated (at most ``max_message_size`` bytes, else close code 1009) before it is
    returned.  Without it any reserved bit fails with 1002; RSV1 on a continuation or a
    control frame always does."""

    def __init__(self, max_message_size: int = 1_000_000, require_mask: bool = True,
                 compression: bool = False) -> None: ...
    partial_since: float
    """When the frame or fragmented message now incomplete began to arrive (the
    ``time.monotonic()`` clock), 0.0 when the reader is between messages (read-only).  The
    engine's sweep closes a session whose partial data is older than its timeout."""

    def discard(self) -> None:
        """Drop everything held (its share of the partial budget is given back at once); later
        ``feed`` calls return ``[]``.  Called when the connection closes."""
    @property
    def reserved(self) -> int:
        """Bytes held for frames and messages still arriving (a payload over 64 KiB is not
        reserved when its header arrives: its buffer grows with the bytes received)."""
    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Parse more of the stream.

        Returns one ``(opcode, payload)`` tuple per complete data message
        (``OP_TEXT`` or ``OP_BINARY``, the opcode of its first fragment,
        payload unmasked and joined; text is validated as UTF-8 but returned
        as bytes) and per control frame (``OP_PING``, ``OP_PONG``,
        ``OP_CLOSE`` with the raw payload), in stream order. Control frames
        received between the fragments of a message come before it.

        Raises ``WebSocketError`` on a protocol violation; messages decoded
        earlier in the same call are not returned in that case.
        """

def build_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview | str,
    fin: bool = True,
    mask_key: bytes | bytearray | memoryview | None = None,
) -> bytes:
    """Return one complete frame (header and payload in a single bytes object).

    A ``str`` payload is encoded as UTF-8. The frame is unmasked (server to
    client) unless a 4-byte ``mask_key`` is given (client to server).
    Raises ``ValueError`` for an unknown opcode, a bad mask key, or a control
    frame that is fragmented or has more than 125 bytes of payload.
    """

def build_close(code: int = 1000, reason: str = "") -> bytes:
    """Return the payload of a close frame: the 2-byte big-endian code and the UTF-8 reason.

    Code 1005 ("no status") yields an empty payload. A reason longer than
    123 bytes of UTF-8 is cut at a character boundary so the payload fits in
    a control frame. Raises ``ValueError`` for a code that must not be sent
    (anything but 1000-1003, 1007-1014 and 3000-4999, apart from 1005).
    Wrap the result with ``build_frame(OP_CLOSE, ...)`` to get a frame.
    """

def parse_close(payload: bytes) -> tuple[int, str]:
    """Decode a received close frame payload into ``(code, reason)``.

    An empty payload gives ``(1005, "")``. Raises ``WebSocketError`` with
    1002 for a 1-byte payload or a code a peer may not send, and 1007 when
    the reason is not valid UTF-8.
    """

def accept_key(key: str | bytes) -> str:
    """Return the ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``.

    ``base64(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))``; a ``str``
    key is encoded as Latin-1, the way HTTP header bytes map to text.
    """

# -- permessage-deflate (RFC 7692) ----------------------------------------------------------

def negotiate_deflate(header: str | bytes | None) -> tuple[str, int] | None:
    """The server's answer to a ``Sec-WebSocket-Extensions`` request header: ``(value of the
    response header, window bits the server deflates with)`` for the first acceptable
    ``permessage-deflate`` offer, None when there is none.

    The answer always carries ``server_no_context_takeover`` and
    ``client_no_context_takeover``: every message is compressed and inflated on its own, so a
    connection holds no zlib state (one process-wide stream each way does the work) and a
    broadcast is compressed once for all its recipients.  An offer is declined (the next one
    is tried) when it has an unknown, repeated or malformed parameter, or asks for
    ``server_max_window_bits`` outside 9..15; a ``server_max_window_bits`` it asks for is
    echoed and used; ``client_max_window_bits`` is accepted and left out of the answer."""

def deflate_frame(opcode: int, payload: bytes | bytearray | memoryview | str, wbits: int = 15) -> bytes:
    """One unmasked frame with RSV1 set: ``payload`` deflated on its own (no context
    takeover, a ``2**wbits`` window, wbits 9..15) with its trailing ``00 00 FF FF`` removed
    (RFC 7692 7.2.1).  Only ``OP_TEXT`` and ``OP_BINARY``: control frames are never
    compressed."""

def inflate_payload(payload: bytes | bytearray | memoryview, limit: int = 1_000_000) -> bytes:
    """Inflate the payload of one compressed message (the ``00 00 FF FF`` tail is added
    here).  Never produces more than ``limit`` bytes: past it ``WebSocketError`` 1009 is
    raised, so a small frame that would inflate to gigabytes costs at most ``limit``; invalid
    deflate data raises 1007."""

def set_deflate_level(level: int) -> None:
    """The zlib level (-1 for zlib's default, 6, or 0..9) outgoing messages are deflated
    with, process-wide."""

def deflate_payload(payload: bytes | bytearray | memoryview | str, wbits: int = 15) -> bytes:
    """``payload`` deflated as one permessage-deflate message (no context takeover, a
    ``2**wbits`` window, the trailing ``00 00 FF FF`` removed), without a frame header: for a
    WebSocket library that builds its own frames with RSV1 set."""
