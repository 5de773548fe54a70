"""Per-session state of an Engine.IO connection, the write coalescer and the heartbeat sweep.

A ``Conn`` is one Engine.IO session, whichever transport carries it (HTTP long-polling, then
maybe WebSocket).  Writes never go straight to the socket: they are queued on the ``Conn`` and
the ``Flusher`` writes every dirty connection once per event-loop iteration, so a read batch or a
broadcast costs one ``transport.write`` per connection.
"""
from typing import Any, Iterable

from fastio._core.contract import EngineCallbacks, MessageSink
from fastio._core.packet import Encoded

ENTRY_OVERHEAD: int
"""Bytes each queued item counts beyond its payload against ``Conn.max_buffer`` (64): the list
slot, the object header and the allocator's rounding, so many tiny items reach the budget."""

class WSTransport:
    """Base of every WebSocket that can carry a ``Conn``.

    The native protocol implements it in C; integrations (ASGI, aiohttp) subclass it in Python.
    """
    ws_paused: bool
    """True while the transport cannot take writes: the session keeps its output queued."""
    ws_messages: bool
    """True when the transport sends whole messages (``ws_send_messages``) rather than frames
    (``ws_write``, ``ws_writelines``).  Read once, when a ``Conn`` attaches the transport."""
    deflate_wbits: int
    """The window bits a negotiated permessage-deflate compresses with (9..15), 0 when the
    WebSocket did not negotiate it: a session then sends its text and binary frames of
    ``deflate_threshold`` bytes or more compressed (RSV1 set), unless the packet asked not to
    be (``Encoded.no_compress``)."""
    deflate_threshold: int
    """The smallest payload, in bytes, compressed when ``deflate_wbits`` is set."""
    def ws_write(self, data: bytes) -> None:
        """Write already-framed bytes to the peer."""
    def ws_send_messages(self, messages: list[str | bytes]) -> None:
        """Send whole messages (``str``: text, ``bytes``: binary); used when ``ws_messages``."""
    def ws_writelines(self, parts: list[bytes]) -> None:
        """Write already-framed bytes given as parts, in order (default: joined, one ``ws_write``)."""
    def ws_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame with ``code`` and close the connection."""
    def ws_answer_probe(self, conn: "Conn") -> None:
        """Answer the upgrade probe of ``conn`` with ``3probe``, then call ``conn.end_poll()``.

        The client must see ``3probe`` before its pending long poll returns.  The default writes
        the frame with ``ws_write`` at once; a transport that sends later must keep the order."""

class CompiledSink:
    """Base of message sinks written in C (``fastio._core.dispatch.CompiledEvents``): a session
    whose ``on_message`` is one hands it each message with a C call instead of a Python one."""

class Flusher:
    """Writes every connection with pending output once, at the end of the loop iteration."""
    def __init__(self, loop: Any) -> None: ...
    def run(self) -> None:
        """Flush all connections marked since the last run.  A connection whose write raises is
        logged (logger ``fastio.engineio``) and closed with "transport error"; the others go on."""

class Conn:
    """One Engine.IO session, whichever transport carries it.

    ``handler`` is the engine object: every call the session makes into it is declared by
    ``fastio._core.contract.EngineCallbacks``; ``on_message`` (its ``message_sink``) receives
    the session's messages.
    """
    sid: str
    handler: EngineCallbacks
    on_message: MessageSink
    environ: Any
    data: Any
    ext: Any
    poll_waiter: Any
    next_ping: float
    pong_deadline: float
    max_buffer: int
    """Most bytes the session queues (16 MiB by default), each item counted as its payload
    plus ``ENTRY_OVERHEAD``; past it the engine is told (``overflow``) and a WebSocket is
    closed with 1008."""
    partial_deadline: float
    """When a partial message held for the session (a Socket.IO packet waiting for its
    attachments) must be complete, on the ``time.monotonic()`` clock; 0.0 for none.  The
    heartbeat sweep reports the session as stalled past it."""
    ws_close_code: int
    """The close code its WebSocket gets when the session closes (1000, or 1008 after an
    overflow or a partial message timeout)."""
    state: int
    close_reason: str | None
    dropping: bool
    """True once the session passed ``max_buffer``: nothing more is queued or handled until the
    engine closes it."""
    close_queued: bool
    """True when the session was closed with a close packet queued for the client's next long
    poll (``close(reason, notify_peer=True)`` on a polling session with no poll waiting)."""
    eio3: bool
    """True for an Engine.IO v3 client (set by the engine at the handshake): it sends the pings
    and the session answers them, each moving ``pong_deadline`` to now plus the interval and
    the timeout (the sweep never pings it); a pong from it is a protocol error; a binary message
    on its WebSocket carries the packet type (``0x04``) as its first byte, both ways."""
    def __init__(self, sid: str, handler: EngineCallbacks, flusher: Flusher, max_buffer: int = ...) -> None: ...
    @property
    def ws(self) -> WSTransport | None:
        """The WebSocket carrying the session once upgraded (set by ``upgrade``), else None."""
    @property
    def upgraded(self) -> bool:
        """True once a WebSocket carries the session."""
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
        """Queue an encoded Socket.IO packet (shared by every recipient)."""
    def send_eio(self, pkt: bytes) -> None:
        """Queue a text Engine.IO packet given with its type character, e.g. ``b"4hello"``."""
    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a binary Engine.IO message."""
    def send_pong(self, payload: bytes) -> None:
        """Queue a WebSocket pong answering the peer's ping (framed transports only), counted
        against ``max_buffer`` like any other output."""
    def set_close_code(self, code: int, reason: str) -> None:
        """The close code and reason its WebSocket gets when the session closes."""
    def on_packet(self, ptype: int, data: bytes, binary: bool) -> None:
        """Handle one Engine.IO packet from the peer (any transport).

        A close packet ends the session at once ("client disconnect"); on long-polling a poll
        that is waiting is answered with a noop first, as Node's engine.io does."""
    def on_probe_packet(self, ws: WSTransport, payload: bytes) -> bool:
        """Handle a text packet that arrived on ``ws`` while it probes this polling session.

        ``2probe`` is answered (``ws.ws_answer_probe``) and the engine told (``probe_started``);
        ``5`` completes the upgrade: the engine is told (``conn_upgraded``), ``ws`` becomes the
        session's transport and True is returned.  Anything else is ignored.  A session that is
        closed or already upgraded has ``ws`` closed with 1000."""
    def end_poll(self) -> None:
        """Queue a noop if a long poll is waiting: it answers that poll, the client's cue to pause
        polling.  Without a waiting poll nothing is queued (a noop left in the queue would reach
        the WebSocket after the upgrade)."""
    def flush(self) -> None:
        """Hand everything queued to the transport (one write), or answer a waiting poll."""
    def take_poll(self) -> bytes | None:
        """The next polling payload: at most 16 queued packets, taken off the queue (the rest
        wait for the next poll); None when nothing is queued."""
    def resume(self) -> None:
        """The transport can take writes again: flush what accumulated."""
    def upgrade(self, ws: WSTransport) -> None:
        """Make ``ws`` this session's transport; queued polling packets move to it (except
        noops, which only end long polls), and its
        ``ws_messages`` decides, from now on, whether it gets frames or whole messages."""
    def close(self, reason: str, notify_peer: bool = False) -> None:
        """End the session once: tell the peer if asked, close the transport, notify the engine."""

def sweep(conns: Iterable[Conn], now: float, interval: float, timeout: float) -> list[Conn]:
    """Heartbeat for every session at once: send due pings, return the sessions past their pong
    deadline."""

def heartbeat(conns: Iterable[Conn], now: float, interval: float, timeout: float,
              slack: float, partial_timeout: float = 0.0,
              stalled: list[Conn] | None = None) -> tuple[list[Conn], float]:
    """One heartbeat pass over every session: ``(expired, due)``.

    Pings due by ``now + slack`` are sent and each sets the session's pong deadline: ``timeout``
    after the ping was due (or after ``now`` if the pass ran more than ``slack`` late, or early).
    ``expired`` are the sessions whose deadline has passed (``now >= pong_deadline``); ``due`` is
    the earliest time (``time.monotonic()``) at which the next pass has work (a ping or a
    deadline), 0.0 when no session is open.  ``interval`` is accepted for symmetry with
    ``sweep``; each session's ``next_ping`` already holds it."""
