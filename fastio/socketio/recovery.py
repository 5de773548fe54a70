"""Connection state recovery (Node's ``connectionStateRecovery``), in this process's memory.

Two time-ordered structures, both bounded and pruned as they grow (no timer):

- the packet log: one entry per broadcast (an emit without acknowledgement that is not
  volatile), holding its offset, namespace, the rooms it went to and the rooms and sids it left
  out, and the encoded packet itself (the offset already inside it), shared with the fan-out;
- the sessions: one per socket that lost its connection (not a voluntary disconnect), keyed by
  its private id (``pid``): its sid, rooms, ``data`` and ``session``.

A client that comes back within ``max_disconnection_duration`` with its ``pid`` and the last
offset it received gets its sid, rooms and data back, and the log entries after its offset that
were meant for it (listed when its socket is registered, after any middlewares, so broadcasts
made while they run are not lost).  Nothing is done per recipient when a broadcast is logged: the filtering by
rooms happens once, at recovery.  See docs/recovery.md.
"""
from __future__ import annotations

import collections
import secrets
import time
from typing import Any, Hashable, Iterable, NamedTuple

__all__ = ["RecoveryOptions", "RecoveryStore", "Session", "LogEntry", "store_for"]

# Engine.IO close reasons after which a socket's state is kept (Node's
# RECOVERABLE_DISCONNECT_REASONS): the connection broke or the client's engine closed it.  A
# Socket.IO DISCONNECT from either side is a voluntary leave and is never kept.
RECOVERABLE_REASONS = frozenset(("transport error", "transport close", "ping timeout", "client disconnect",
                                 "forced close"))


class RecoveryOptions:
    """The options of ``AsyncServer(connection_state_recovery={...})``.

    :param max_disconnection_duration: seconds a lost session (and the packets it may need) is
                                       kept; Node's ``maxDisconnectionDuration`` (2 minutes),
                                       in seconds rather than milliseconds.
    :param skip_middlewares: a recovered socket skips the connection middlewares (``sio.use``),
                             as Node's ``skipMiddlewares`` (default True).
    :param max_packets: most broadcasts kept in the log, every namespace together; the oldest
                        go first.
    :param max_bytes: most bytes of encoded packets kept in the log (attachments included);
                      the oldest go first.
    :param max_sessions: most lost sessions kept; the oldest go first.
    """

    __slots__ = ("max_disconnection_duration", "skip_middlewares", "max_packets", "max_bytes", "max_sessions")

    def __init__(self, max_disconnection_duration: float = 120, skip_middlewares: bool = True,
                 max_packets: int = 10_000, max_bytes: int = 16 << 20, max_sessions: int = 100_000) -> None:
        if max_disconnection_duration <= 0:
            raise ValueError("max_disconnection_duration must be positive")
        if max_packets < 1 or max_bytes < 1 or max_sessions < 1:
            raise ValueError("max_packets, max_bytes and max_sessions must be positive")
        self.max_disconnection_duration = float(max_disconnection_duration)
        self.skip_middlewares = bool(skip_middlewares)
        self.max_packets = int(max_packets)
        self.max_bytes = int(max_bytes)
        self.max_sessions = int(max_sessions)

    @classmethod
    def from_option(cls, value: Any) -> RecoveryOptions | None:
        """The options from the server argument: None/False (off), True (defaults), a dict with
        these names (or Node's camelCase ones), or a ``RecoveryOptions``."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise TypeError("connection_state_recovery must be a dict, True or None")
        aliases = {"maxDisconnectionDuration": "max_disconnection_duration", "skipMiddlewares": "skip_middlewares"}
        kwargs: dict[str, Any] = {aliases.get(str(k), str(k)): v for k, v in value.items()}
        if "maxDisconnectionDuration" in value:
            kwargs["max_disconnection_duration"] = value["maxDisconnectionDuration"] / 1000
        return cls(**kwargs)


class LogEntry(NamedTuple):
    """One logged broadcast."""

    seq: int
    namespace: str
    to: frozenset[Hashable] | None
    exclude: frozenset[Hashable] | None
    encoded: Any
    at: float
    size: int


class Session(NamedTuple):
    """What a socket that lost its connection leaves behind."""

    pid: str
    sid: str
    namespace: str
    rooms: list[Hashable]
    data: Any
    session: Any
    last_seq: int
    at: float


def _room_set(rooms: Any) -> frozenset[Hashable] | None:
    if rooms is None:
        return None
    if isinstance(rooms, (list, tuple, set, frozenset)):
        return frozenset(rooms) or None
    return frozenset((rooms,))


# What an entry costs beside its packet's bytes: the entry, the encoded object, the room sets
# (measured with tracemalloc for a one-room broadcast, rounded up).
ENTRY_OVERHEAD = 512


class RecoveryStore:
    """The packet log and the lost sessions of one server (every namespace)."""

    def __init__(self, options: RecoveryOptions, clock: Any = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self.log: collections.deque[LogEntry] = collections.deque()
        self.log_bytes = 0
        # The sequence number the next logged broadcast gets; entries are numbered without gaps,
        # so an offset finds its entry by subtraction.
        self.next_seq = 1
        # Offsets are "<store token>.<seq>": one from another process, or from before a restart,
        # matches nothing here.
        self.token = secrets.token_hex(4)
        self.prefix = self.token + "."
        self.sessions: dict[str, Session] = {}

    # -- offsets -------------------------------------------------------------------------------

    def next_offset(self) -> str:
        """The offset the next ``record`` will carry (append it to the packet's arguments)."""
        return self.prefix + format(self.next_seq, "x")

    def parse_offset(self, offset: Any) -> int | None:
        """The sequence number of an offset this store issued, else None."""
        if not isinstance(offset, str):
            return None
        token, _, seq = offset.partition(".")
        if token != self.token or not seq:
            return None
        try:
            return int(seq, 16)
        except ValueError:
            return None

    # -- the log -------------------------------------------------------------------------------

    def record(self, namespace: str, to: Any, exclude: Any, skip: Any, encoded: Any) -> None:
        """Log one broadcast, encoded with the offset ``next_offset()`` gave: sent to ``to``
        (one room, several, or None: everyone of ``namespace``) minus ``exclude`` rooms and
        ``skip`` sids."""
        excluded = None
        if exclude is not None or skip is not None:
            excluded = _room_set(exclude)
            skipped = _room_set(skip)
            if skipped:
                excluded = excluded | skipped if excluded else skipped
        now = self.clock()
        # The packet's text counts twice: once encoded, once as the WebSocket frames or polling
        # form the transports build from it and keep with it.
        size = 2 * len(encoded.message) + ENTRY_OVERHEAD
        attachments = encoded.attachments
        if attachments:
            size += sum(len(part) for part in attachments)
        log = self.log
        log.append(tuple.__new__(LogEntry, (self.next_seq, namespace, None if to is None else _room_set(to),
                                            excluded, encoded, now, size)))
        self.next_seq += 1
        self.log_bytes += size
        opts = self.options
        if (len(log) > opts.max_packets or self.log_bytes > opts.max_bytes
                or log[0].at < now - opts.max_disconnection_duration):
            self._prune_log(now)

    def _prune_log(self, now: float) -> None:
        log = self.log
        opts = self.options
        horizon = now - opts.max_disconnection_duration
        while log and (len(log) > opts.max_packets or self.log_bytes > opts.max_bytes or log[0].at < horizon):
            self.log_bytes -= log.popleft().size

    # -- sessions ------------------------------------------------------------------------------

    def persist(self, pid: str, sid: str, namespace: str, rooms: Iterable[Hashable], data: Any,
                session: Any, last_seq: int) -> None:
        """Keep the state of a socket whose connection was lost.  ``last_seq``: the log
        position when it connected, the replay's start for a client that received no offset."""
        now = self.clock()
        self.sessions.pop(pid, None)
        self.sessions[pid] = Session(pid, sid, namespace, list(rooms), data, session, last_seq, now)
        self._prune_sessions(now)

    def _prune_sessions(self, now: float) -> None:
        sessions = self.sessions
        horizon = now - self.options.max_disconnection_duration
        while sessions:
            first = next(iter(sessions.values()))
            if len(sessions) <= self.options.max_sessions and first.at >= horizon:
                break
            del sessions[first.pid]

    def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Session, int] | None:
        """Take the lost session ``pid`` of ``namespace``, with the sequence number after which
        its client may have missed packets (from ``offset``), or None when it cannot be
        recovered: unknown or expired pid, another namespace, an offset this store did not
        issue, or packets it may have missed already dropped from the log.  A session is
        restored at most once.  ``missed`` then lists the packets."""
        if not isinstance(pid, str):
            return None
        now = self.clock()
        self._prune_sessions(now)
        self._prune_log(now)
        session = self.sessions.get(pid)
        if session is None or session.namespace != namespace:
            return None
        del self.sessions[pid]
        if offset is None:
            after = session.last_seq
        else:
            parsed = self.parse_offset(offset)
            if parsed is None or parsed >= self.next_seq:
                return None
            # Never from before the socket connected: a client that kept the offset of an
            # earlier session (socket.io-client does) would get packets that were never its.
            after = max(parsed, session.last_seq)
        if not self.has_since(after):
            return None
        return session, after

    def has_since(self, after: int) -> bool:
        """True while every entry after sequence number ``after`` is still in the log."""
        log = self.log
        first = log[0].seq if log else self.next_seq
        return after + 1 >= first

    def missed(self, namespace: str, rooms: list[Hashable], after: int) -> list[Any] | None:
        """The encoded packets of ``namespace`` after sequence number ``after`` that a socket in
        ``rooms`` (its own sid room included) was sent, in order; None when some of them are no
        longer in the log."""
        if not self.has_since(after):
            return None
        log = self.log
        first = log[0].seq if log else self.next_seq
        out = []
        for i in range(after + 1 - first, len(log)):
            entry = log[i]
            if entry.namespace != namespace:
                continue
            to = entry.to
            if to is not None and not any(r in to for r in rooms):
                continue
            exclude = entry.exclude
            if exclude is not None and any(r in exclude for r in rooms):
                continue
            out.append(entry.encoded)
        return out

    def position(self) -> int:
        """Where the log stands now: a socket connecting now may need the entries after it."""
        return self.next_seq - 1

    def new_pid(self) -> str:
        """A new private session id: 120 random bits, URL-safe."""
        return secrets.token_urlsafe(15)


def store_for(manager: Any, options: RecoveryOptions) -> Any:
    """The recovery store of a server whose client manager is ``manager``.

    A manager whose fleet shares the sessions and the packet log (e.g.
    ``AsyncNodeRedisStreamsManager``) provides its own with ``recovery_store(options)``; its
    ``restore`` may then return an awaitable, which the server awaits before it admits the
    socket.  Any other manager gets this process's ``RecoveryStore``."""
    factory = getattr(manager, "recovery_store", None)
    if factory is not None:
        return factory(options)
    return RecoveryStore(options)
