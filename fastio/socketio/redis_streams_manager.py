"""A client manager that joins a fleet of Node socket.io servers using ``@socket.io/redis-streams-adapter``.

It speaks the protocol of ``@socket.io/redis-streams-adapter`` 0.2.x (written up in
docs/protocols/redis-streams-adapter.md): every server appends socket.io-adapter's
ClusterAdapter messages to one Redis stream (``XADD ... MAXLEN ~ max_len``) and reads the whole
stream back with ``XREAD BLOCK`` from the last entry id it read; servers count each other by
heartbeats (socket.io-adapter's ClusterAdapterWithHeartbeat).  The messages are the ones
``AsyncNodeRedisManager`` speaks in its sharded mode, so this manager is that one with the
stream for transport: broadcasts with rooms/except/flags, broadcast acknowledgements,
``fetch_sockets``, ``sockets_join``/``sockets_leave``/``disconnect_sockets`` and server-side
events (with acknowledgements) work between Node servers and fastio servers on one stream.

With ``AsyncServer(connection_state_recovery=...)`` the fleet shares connection state
recovery, as the Node adapter does: a lost socket's session is stored in Redis (``SET
<session_key_prefix><pid> PX <max disconnection duration>``), every broadcast carries its stream
entry id as its offset, and a client that reconnects to any server of the fleet gets its sid,
rooms and data back with the broadcasts it missed, read from the stream.

    mgr = fastio.AsyncNodeRedisStreamsManager("redis://127.0.0.1:6379/0", stream_name="socket.io")
    sio = fastio.AsyncServer(client_manager=mgr, connection_state_recovery=True)

``redis`` (redis-py) and ``msgpack`` are needed only when this manager is used.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import logging
import re
import secrets
import time
from typing import Any, Callable, Hashable, Iterable, NamedTuple, Sequence

from fastio._core.packet import EVENT
from fastio.socketio.manager import event_args
from fastio.socketio.node_redis_manager import AsyncNodeRedisManager
from fastio.socketio.operators import BroadcastFlags
from fastio.socketio.recovery import RecoveryOptions, Session

__all__ = ["AsyncNodeRedisStreamsManager", "StreamsRecoveryStore"]

# socket.io-adapter's MessageType, the ones only the heartbeat flavour uses and broadcasts.
INITIAL_HEARTBEAT, HEARTBEAT, BROADCAST = 1, 2, 3
ADAPTER_CLOSE = 13
# The types whose data may hold binary: encoded with msgpack (base64) when it does.
_MAY_HOLD_BINARY = frozenset((3, 8, 9, 10, 12))
_EMITTER_UID = "emitter"
_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")
# Node reads at most this many XRANGE pages when it restores a session; so does this manager.
_RESTORE_PAGES = 100
_RESTORE_PAGE_SIZE = 1000


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("<ms>-<seq>") as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    # XRANGE bounds are inclusive: the id right after ``entry_id`` (as Node's nextOffset).
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return [value]


class _Broadcast(NamedTuple):
    """A broadcast read from the stream, kept for replays."""

    id: str
    key: tuple[int, int]
    namespace: str
    args: list[Any]
    rooms: list[Any]
    exclude: list[Any]
    replayable: bool


class _Replay(str):
    """The offset a session is restored from, carrying the broadcasts read after it."""

    entries: list[_Broadcast]


class StreamsRecoveryStore:
    """Connection state recovery kept in the fleet's Redis (sessions) and stream (packets).

    The server's ``recovery`` when its manager is an ``AsyncNodeRedisStreamsManager``: the same
    interface as ``fastio.socketio.recovery.RecoveryStore``, with ``restore`` a coroutine."""

    def __init__(self, manager: AsyncNodeRedisStreamsManager, options: RecoveryOptions) -> None:
        self.manager = manager
        self.options = options

    def next_offset(self) -> str:
        """The offset of the broadcast being delivered: its stream entry id."""
        return self.manager.current_offset()

    def record(self, namespace: str, to: Any, exclude: Any, skip: Any, encoded: Any) -> None:
        """Nothing: the stream is the packet log."""

    def position(self) -> str:
        """The last stream entry id this process read: a socket connecting now may need what
        follows it."""
        return self.manager.stream_position()

    def new_pid(self) -> str:
        """A new private session id: 120 random bits, URL-safe."""
        return secrets.token_urlsafe(15)

    def persist(self, pid: str, sid: str, namespace: str, rooms: Iterable[Hashable], data: Any,
                session: Any, last_seq: Any) -> None:
        """Store a lost socket's state in Redis for ``max_disconnection_duration``."""
        self.manager.persist_session(pid, sid, namespace, list(rooms), data, session, str(last_seq),
                                     self.options.max_disconnection_duration)

    async def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Session, _Replay] | None:
        """Take the session ``pid`` from Redis (at most once) with the broadcasts after
        ``offset``, or None when it cannot be recovered."""
        return await self.manager.restore_session(namespace, pid, offset)

    def missed(self, namespace: str, rooms: list[Hashable], after: Any) -> list[Any] | None:
        """The encoded broadcasts a socket in ``rooms`` missed since ``after`` (what
        ``restore`` returned), None when some may be lost."""
        return self.manager.missed_packets(namespace, rooms, after)


class AsyncNodeRedisStreamsManager(AsyncNodeRedisManager):
    """A member of a fleet of Node servers using ``@socket.io/redis-streams-adapter`` 0.2.x.

    :param url: the Redis URL (``redis://``, ``rediss://``, ``unix://``).
    :param stream_name: the adapter's ``streamName`` shared by the fleet (default ``"socket.io"``).
    :param max_len: the adapter's ``maxLen``: each XADD trims the stream to about this many
                    entries (``MAXLEN ~``).
    :param read_count: the adapter's ``readCount``: most entries one XREAD returns.
    :param session_key_prefix: the adapter's ``sessionKeyPrefix`` for lost sessions.
    :param heartbeat_interval: seconds between this server's heartbeats (Node's
                               ``heartbeatInterval``, 5 s).
    :param heartbeat_timeout: seconds without a message after which another server is taken as
                              gone (Node's ``heartbeatTimeout``, 10 s).
    :param requests_timeout: seconds to wait for the other servers' replies to ``fetch_sockets``
                             and ``server_side_emit_with_ack`` (5 s, as Node).
    :param queue_size: the most entries waiting to be appended; the policy of
                       ``AsyncNodeRedisManager`` (docs/cluster.md, "The publish queue").
    :param block: seconds one XREAD waits for new entries before it is issued again (kept
                  under half the connection's socket timeout, which redis-py sets to 5 s).
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param redis_options: extra keyword arguments for ``redis.asyncio.Redis.from_url()``.
    """

    name = "node-redis-streams"

    def __init__(self, url: str = "redis://localhost:6379/0", stream_name: str = "socket.io",
                 max_len: int = 10_000, read_count: int = 100, session_key_prefix: str = "sio:session:",
                 heartbeat_interval: float = 5.0, heartbeat_timeout: float = 10.0, requests_timeout: float = 5.0,
                 queue_size: int = 1024, block: float = 2.0, logger: logging.Logger | None = None,
                 redis_options: dict[str, Any] | None = None) -> None:
        super().__init__(url, key=stream_name, requests_timeout=requests_timeout, queue_size=queue_size,
                         logger=logger, redis_options=redis_options, sharded=True, subscription_mode="static")
        if max_len < 1 or read_count < 1:
            raise ValueError("max_len and read_count must be positive")
        self.stream_name = stream_name
        self.max_len = max_len
        self.read_count = read_count
        self.session_key_prefix = session_key_prefix
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        kwargs = self.redis.get_connection_kwargs()
        socket_timeout = kwargs.get("socket_timeout") or kwargs.get("orig_socket_timeout")
        if socket_timeout:
            block = min(block, socket_timeout / 2)
        self.block = block
        # The last entry id read (None until the reader found the stream's end).
        self.last_id: str | None = None
        self._last_key = (0, 0)
        # The other servers, by namespace: uid -> when its last message was read.
        self.nodes: dict[str, dict[str, float]] = {}
        # The entry id of the broadcast being delivered (its offset).
        self._offset: str | None = None
        # The latest entries read (their ids; broadcasts with what a replay needs), so that a
        # session restored while the reader moves on misses nothing.
        self._recent: collections.deque[tuple[tuple[int, int], _Broadcast | None]] = collections.deque(maxlen=4096)
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        # The namespaces this server announced (INITIAL_HEARTBEAT) in the stream.
        self._announced: set[str] = set()

    # -- connection state recovery -----------------------------------------------------------------

    def recovery_store(self, options: RecoveryOptions) -> StreamsRecoveryStore:
        """The server's recovery store: sessions in Redis, packets in the stream."""
        return StreamsRecoveryStore(self, options)

    def current_offset(self) -> str:
        """The entry id of the broadcast being delivered (else the last id read)."""
        return self._offset or self.stream_position()

    def stream_position(self) -> str:
        """The last stream entry id read ("0-0" before the reader started)."""
        return self.last_id or "0-0"

    def persist_session(self, pid: str, sid: str, namespace: str, rooms: list[Any], data: Any, session: Any,
                        start: str, duration: float) -> None:
        """``SET`` the session as Node's adapter does (msgpack, base64), with fastio's fields
        ``nsp``, ``offset`` (the position the socket's replay may start from) and ``session``
        (python-socketio's session, left out when msgpack cannot hold it)."""
        body = {"sid": sid, "pid": pid, "rooms": rooms, "data": data, "nsp": namespace, "offset": start,
                "session": session}
        try:
            packed = self._packb(body, use_bin_type=True)
        except (TypeError, ValueError):
            body["session"] = None
            try:
                packed = self._packb(body, use_bin_type=True)
            except (TypeError, ValueError):
                self._get_logger().warning("session %s not kept: its data cannot be encoded with msgpack", sid)
                return
        value = base64.b64encode(packed)
        self._spawn(self.redis.set(self.session_key_prefix + pid, value, px=max(1, int(duration * 1000))))

    async def restore_session(self, namespace: str, pid: Any, offset: Any) -> tuple[Session, _Replay] | None:
        """Take the session ``pid`` (GET and DEL in one transaction, as Node) and read the
        broadcasts of ``namespace`` after ``offset`` from the stream."""
        if not isinstance(pid, str) or not pid:
            return None
        key = self.session_key_prefix + pid
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        raw = (await pipe.execute())[0]
        if not raw:
            return None
        try:
            stored = self._unpackb(base64.b64decode(raw), raw=False, timestamp=3, strict_map_key=False)
        except Exception:
            return None
        if not isinstance(stored, dict) or not isinstance(stored.get("sid"), str):
            return None
        if stored.get("nsp") not in (None, namespace):
            return None
        start = stored.get("offset")
        if offset is None:
            offset = start  # fastio's: the client received no broadcast before it was lost
        if not isinstance(offset, str) or not _ENTRY_ID.fullmatch(offset):
            return None
        if isinstance(start, str) and _ENTRY_ID.fullmatch(start) and _id_key(start) > _id_key(offset):
            offset = start  # never from before the socket connected
        if not await self.redis.xrange(self.stream_name, offset, offset):
            return None  # trimmed away (MAXLEN), or never an entry of this stream
        entries: list[_Broadcast] = []
        wanted = namespace.encode()
        begin = _next_id(offset)
        for _ in range(_RESTORE_PAGES):
            page = await self.redis.xrange(self.stream_name, begin, "+", count=_RESTORE_PAGE_SIZE)
            for entry_id, fields in page:
                entry_id = entry_id.decode()
                if fields.get(b"nsp") == wanted:
                    broadcast = self._replayable(entry_id, fields)
                    if broadcast is not None:
                        entries.append(broadcast)
                begin = _next_id(entry_id)
            if len(page) < _RESTORE_PAGE_SIZE:
                break
        replay = _Replay(offset)
        replay.entries = entries
        rooms = stored.get("rooms")
        session = Session(pid, stored["sid"], namespace, list(rooms) if isinstance(rooms, list) else [],
                          stored.get("data"), stored.get("session"), offset, time.monotonic())
        return session, replay

    def missed_packets(self, namespace: str, rooms: list[Hashable], after: Any) -> list[Any] | None:
        """The encoded broadcasts after ``after`` (a ``restore_session`` result) that a socket
        in ``rooms`` was sent, up to the last entry read here (what follows reaches it live);
        None when some may be lost."""
        if not isinstance(after, _Replay) or self.last_id is None:
            return None  # (the reader has not found its place in the stream yet)
        start = _id_key(after)
        last = self._last_key
        found: dict[tuple[int, int], _Broadcast] = {b.key: b for b in after.entries}
        read_to = max(found) if found else start
        recent = self._recent
        if recent and recent[0][0] > read_to and len(recent) == recent.maxlen and last > read_to:
            return None  # more entries were read meanwhile than this process keeps
        for key, broadcast in recent:
            if key > start and broadcast is not None and broadcast.namespace == namespace:
                found.setdefault(key, broadcast)
        out = []
        member = set(rooms)
        for key in sorted(found):
            if key > last:
                break
            b = found[key]
            if not b.replayable:
                continue
            if b.rooms and not any(r in member for r in b.rooms):
                continue
            if b.exclude and any(r in member for r in b.exclude):
                continue
            out.append(self.encode(EVENT, namespace, [*b.args, b.id]))
        return out

    def _replayable(self, entry_id: str, fields: dict[bytes, bytes]) -> _Broadcast | None:
        # A broadcast entry as a replay needs it (None for any other entry).
        if fields.get(b"type") != b"3":
            return None
        try:
            message = self._decode_entry(fields)
        except Exception:
            return None
        return self._broadcast_of(entry_id, message)

    def _broadcast_of(self, entry_id: str, message: dict[str, Any]) -> _Broadcast | None:
        if message.get("type") != BROADCAST:
            return None
        data = message.get("data")
        if not isinstance(data, dict):
            return None
        packet = data.get("packet")
        opts = data.get("opts")
        opts = opts if isinstance(opts, dict) else {}
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list) or not packet["data"]:
            return None
        flags = opts.get("flags") or {}
        replayable = (data.get("requestId") is None and packet.get("id") is None
                      and packet.get("type", 2) in (2, 5) and not (isinstance(flags, dict) and flags.get("volatile")))
        return _Broadcast(entry_id, _id_key(entry_id), str(message.get("nsp")), list(packet["data"]),
                          _as_list(opts.get("rooms")), _as_list(opts.get("except")), replayable)

    # -- the stream's encoding -----------------------------------------------------------------------

    def _cluster_encode(self, message: dict[str, Any]) -> Any:  # type: ignore[override]
        # One stream entry: uid, nsp, type (as text) and data (JSON, or base64 msgpack when a
        # type that may carry binary does).
        fields: dict[str, Any] = {"uid": message.get("uid") or "", "nsp": message.get("nsp") or "/",
                                  "type": str(message["type"])}
        if fields["nsp"] not in self._announced:
            ns = self.namespaces.get(fields["nsp"])
            if ns is not None:
                self._announce(ns)
        data = message.get("data")
        if data:
            if message["type"] in _MAY_HOLD_BINARY:
                try:
                    fields["data"] = self._orjson.dumps(data, option=self._orjson.OPT_NON_STR_KEYS)
                except TypeError:
                    try:
                        fields["data"] = base64.b64encode(self._packb(data, use_bin_type=True))
                    except (TypeError, ValueError):
                        fields["data"] = self._dumps(data)
            else:
                fields["data"] = self._dumps(data)
        return fields

    def _decode_entry(self, fields: dict[bytes, bytes]) -> dict[str, Any]:
        uid = fields.get(b"uid")
        nsp = fields.get(b"nsp")
        message: dict[str, Any] = {"uid": uid.decode() if uid else None, "nsp": nsp.decode() if nsp else None,
                                   "type": int(fields.get(b"type") or 0)}
        raw = fields.get(b"data")
        if raw:
            if raw[:1] == b"{":
                message["data"] = self._orjson.loads(raw)
            else:
                message["data"] = self._unpackb(base64.b64decode(raw), raw=False, timestamp=3,
                                                strict_map_key=False)
        return message

    def _decode(self, data: Any) -> Any:
        # Entries arrive decoded; the sharded handlers receive them as they are.
        return data

    # -- life cycle --------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Join the fleet: announce the namespaces, start the stream reader and heartbeats."""
        super().initialize()
        for ns in list(self.namespaces.values()):
            self._announce(ns)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def ready(self, namespace: str = "/") -> None:
        """Wait until this process reads what the fleet appends for ``namespace`` from now on
        (and has announced itself in it)."""
        if self._listener is None:
            self.initialize()
        ns = self._join(namespace)
        self._announce(ns)
        if self.last_id is not None:
            ns.subscribed.set()
        await ns.subscribed.wait()

    def add_socket(self, sock: Any) -> None:
        """Register a socket; its namespace joins the fleet if it has not yet."""
        super().add_socket(sock)
        ns = self.namespaces.get(sock.namespace)
        if ns is not None:
            self._announce(ns)

    async def aclose(self) -> None:
        """Tell the fleet this server leaves (ADAPTER_CLOSE), append what is queued (up to
        5 s), stop reading and close the connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._listener is not None:
            for ns in list(self.namespaces.values()):
                self._send(ns.main, self._cluster_encode({"type": ADAPTER_CLOSE, "uid": ns.uid, "nsp": ns.name}))
            await self._publish_queue.drain(5)
            # redis-py lets a blocked XREAD finish before a cancellation takes effect: closing
            # the connections ends it now.
            self._stopping = True
            try:
                await self.redis.connection_pool.disconnect()
            except Exception:
                pass
        await super().aclose()

    def _announce(self, ns: Any) -> None:
        # Node's ClusterAdapterWithHeartbeat.init(), once per namespace, before anything else
        # this server appends in it: the others answer with a heartbeat.
        if ns.name in self._announced:
            return
        self._announced.add(ns.name)
        self.nodes.setdefault(ns.name, {})
        self._send(ns.main, self._cluster_encode({"type": INITIAL_HEARTBEAT, "uid": ns.uid, "nsp": ns.name}))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for ns in list(self.namespaces.values()):
                self._send(ns.main, self._cluster_encode({"type": HEARTBEAT, "uid": ns.uid, "nsp": ns.name}))

    async def _count(self, ns: Any) -> int:
        # Node's ClusterAdapterWithHeartbeat: this server plus those heard from lately.
        nodes = self.nodes.setdefault(ns.name, {})
        horizon = time.monotonic() - self.heartbeat_timeout
        for uid in [uid for uid, seen in nodes.items() if seen < horizon]:
            del nodes[uid]
        return 1 + len(nodes)

    # -- reading the stream --------------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                if self.last_id is None:
                    # Start at the stream's end (Node's "$"), as an id: nothing appended after
                    # this point is missed, whenever the first XREAD goes out.
                    tail = await self.redis.xrevrange(self.stream_name, "+", "-", count=1)
                    self._advance(tail[0][0].decode() if tail else "0-0")
                    for ns in self.namespaces.values():
                        ns.subscribed.set()
                reply = await self.redis.xread({self.stream_name: self.last_id}, count=self.read_count,
                                               block=max(1, int(self.block * 1000)))
                backoff = 0.1
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        entry_id = entry_id.decode()
                        self._advance(entry_id)
                        self._on_entry(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                self._get_logger().error("reading the Redis stream failed, again from %s in %.1f s: %s",
                                         self.last_id, backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _advance(self, entry_id: str) -> None:
        self.last_id = entry_id
        self._last_key = _id_key(entry_id)

    def _on_entry(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        try:
            nsp = fields.get(b"nsp")
            ns = self.namespaces.get(nsp.decode()) if nsp else None
            if ns is None:
                if self.recovery is not None:
                    self._recent.append((self._last_key, self._replayable(entry_id, fields)))
                return
            message = self._decode_entry(fields)
            if self.recovery is not None:
                self._recent.append((self._last_key, self._broadcast_of(entry_id, message)))
            uid = message["uid"]
            kind = message["type"]
            if uid == ns.uid:
                if kind == BROADCAST and self.recovery is not None:
                    self._deliver_own(ns, entry_id, message.get("data"))
                return
            if uid and uid != _EMITTER_UID:
                self.nodes.setdefault(ns.name, {})[uid] = time.monotonic()
            if kind == INITIAL_HEARTBEAT:
                self._send(ns.main, self._cluster_encode({"type": HEARTBEAT, "uid": ns.uid, "nsp": ns.name}))
            elif kind == ADAPTER_CLOSE:
                self.nodes.get(ns.name, {}).pop(uid, None)
            elif kind != HEARTBEAT:
                self._offset = entry_id
                try:
                    self._on_sharded(ns.main.encode(), message)  # type: ignore[arg-type]
                finally:
                    self._offset = None
        except Exception:
            self._get_logger().exception("handling an entry of the Redis stream failed")

    def _deliver_own(self, ns: Any, entry_id: str, data: Any) -> None:
        # With recovery on, this server's own broadcasts reach its clients from the stream, with
        # their entry id as offset (volatile ones and those with acknowledgements went at once).
        if not isinstance(data, dict) or data.get("requestId") is not None:
            return
        packet = data.get("packet")
        opts = data.get("opts")
        opts = opts if isinstance(opts, dict) else {}
        flags = opts.get("flags")
        flags = flags if isinstance(flags, dict) else {}
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list) or flags.get("volatile"):
            return
        self._offset = entry_id
        try:
            self.broadcast_local(ns.name, packet["data"], opts.get("rooms") or None, opts.get("except") or None,
                                 BroadcastFlags(compress=flags.get("compress", True) is not False))
        finally:
            self._offset = None

    # -- writing the stream: the inherited bounded queue, drained with XADD --------------------------

    _publish_failure = "appending to the Redis stream failed"

    async def _publish_batch(self, batch: list[tuple[Any, Any]]) -> Sequence[Any] | None:
        """Append one batch of ``(channel, fields)`` in a pipeline of XADDs (trimmed to about
        ``max_len``); each message's result is its entry id."""
        pipe = self.redis.pipeline(transaction=False)
        for _, fields in batch:
            pipe.xadd(self.stream_name, fields, maxlen=self.max_len, approximate=True)
        ids = await pipe.execute()
        return [entry_id.decode() if isinstance(entry_id, bytes) else entry_id for entry_id in ids]

    # -- broadcasting with recovery on: through the stream, then to this server's clients ------------

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                 ignore_queue: bool = False) -> int:
        """``sio.emit``.  With recovery on, an emit without callback is appended first and
        reaches this server's clients when read back (so it carries its entry id), as Node's
        adapter delivers after XADD; returns 0 then."""
        if self.recovery is None or callback is not None or ignore_queue:
            return super().emit_now(event, data, namespace, room, skip_sid, callback, ignore_queue)
        self._append_broadcast(namespace, event_args(event, data), _as_list(room), _as_list(skip_sid),
                               BroadcastFlags(), wait=False)
        return 0

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """python-socketio's manager ``emit``; as ``emit_now``."""
        self.emit_now(event, data, namespace or "/", to if to is not None else room, skip_sid, callback,
                      bool(kwargs.get("ignore_queue")))

    async def broadcast(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags) -> None:
        """Deliver here and append for the fleet; with recovery on (and not volatile), append
        first and deliver here when read back, with the entry id as offset."""
        if self.recovery is None or flags.local or flags.volatile:
            await super().broadcast(namespace, args, to, exclude, flags)
            return
        await self.publish_room()
        self._append_broadcast(namespace, args, _as_list(to), _as_list(exclude), flags, wait=True)

    def _append_broadcast(self, namespace: str, args: list[Any], to: list[Any], exclude: list[Any],
                          flags: BroadcastFlags, wait: bool) -> None:
        ns = self._join(namespace)
        channel, fields = self._broadcast_message(ns, args, to, exclude, flags)
        if not wait and self.publish_full:
            self._send(channel, fields)  # dropped and counted, as any publish that cannot wait
            return
        done = asyncio.get_running_loop().create_future()

        def appended(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is None:
                return
            # Redis refused it: this server's clients still get it, without offset (as Node).
            store = self.recovery
            self.recovery = None
            try:
                self.broadcast_local(namespace, args, to or None, exclude or None, flags)
            finally:
                self.recovery = store

        done.add_done_callback(appended)
        self._send(channel, fields, done)
