"""Per-session state of an Engine.IO connection, the write coalescer and the heartbeat sweep."""
from typing import Any, Iterable

from fastio._core.contract import EngineCallbacks, MessageSink
from fastio._core.packet import Encoded

class WSTransport:
    """Base of every WebSocket that can carry a ``Conn``."""
    ws_paused: bool
    ws_messages: bool
    """True when the transport sends whole messages: the Conn calls ``ws_send_messages``."""
    def ws_write(self, data: bytes) -> None:
        """Write already-framed bytes to the peer."""
    def ws_send_messages(self, messages: list[str | bytes]) -> None:
        """Send whole messages (``str``: text, ``bytes``: binary); used when ``ws_messages``."""
    def ws_writelines(self, parts: list[bytes]) -> None:
        """Write already-framed bytes given as parts, in order (default: joined, one ``ws_write``)."""
    def ws_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame with ``code`` and close the connection."""

class Flusher:
    """Writes every connection with pending output once, at the end of the loop iteration."""
    def __init__(self, loop: Any) -> None: ...
    def run(self) -> None:
        """Flush all connections marked since the last run."""

class Conn:
    """One Engine.IO session, whichever transport carries it."""
    sid: str
    handler: EngineCallbacks
    on_message: MessageSink
    ws: WSTransport | None
    upgraded: bool
    environ: Any
    data: Any
    ext: Any
    poll_waiter: Any
    next_ping: float
    pong_deadline: float
    max_buffer: int
    state: int
    close_reason: str | None
    def __init__(self, sid: str, handler: EngineCallbacks, flusher: Flusher, max_buffer: int = ...) -> None: ...
    @property
    def transport(self) -> str:
        """'websocket' once upgraded, else 'polling'."""
    @property
    def closed(self) -> bool:
        """True once the session has ended."""
    @property
    def pending(self) -> int:
        """Bytes queued and not yet handed to the transport."""
    def send_packet(self, enc: Encoded) -> None:
        """Queue an encoded Socket.IO packet."""
    def send_eio(self, pkt: bytes) -> None:
        """Queue a text Engine.IO packet given with its type character, e.g. ``b"4hello"``."""
    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary Engine.IO message."""
    def on_packet(self, ptype: int, data: bytes, binary: bool) -> None:
        """Handle one Engine.IO packet from the peer."""
    def flush(self) -> None:
        """Hand everything queued to the transport, or answer a waiting poll."""
    def take_poll(self) -> bytes | None:
        """The queued polling payload (or None), clearing the queue."""
    def resume(self) -> None:
        """The transport can take writes again."""
    def upgrade(self, ws: WSTransport) -> None:
        """Make ``ws`` this session's transport."""
    def close(self, reason: str, notify_peer: bool = False) -> None:
        """End the session once."""

def sweep(conns: Iterable[Conn], now: float, interval: float, timeout: float) -> list[Conn]:
    """Send due pings; return the sessions past their pong deadline."""
