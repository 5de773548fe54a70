"""A client manager for several server processes joined by a pub/sub backend.

Each process keeps its own clients in the compiled room table.  An emit is delivered to the local
recipients at once (one encode, the compiled fan-out) and published on a channel; every other
process delivers it to its own recipients of the same rooms.  Room changes, disconnects and
acknowledgements for a client of another process travel the same way.

The messages are python-socketio's (JSON objects with ``method``: ``emit``, ``callback``,
``disconnect``, ``enter_room``, ``leave_room``, ``close_room``, and the sender's ``host_id``), so
fastio and python-socketio processes can share a channel, and python-socketio's write-only
managers can emit to fastio's clients.

Node's operators (``fetch_sockets``, ``sockets_join``/``sockets_leave``/``disconnect_sockets``,
``server_side_emit`` with and without acknowledgements, ``emit_with_ack`` to rooms, ``all_rooms``,
``all_sockets``) travel as more messages of the same style, whose ``method`` starts with
``fastio:`` (python-socketio's listener ignores a method it does not know).  fastio processes
know each other by heartbeats (``fastio:heartbeat``, every ``heartbeat_interval`` seconds; a
process unheard of for ``heartbeat_timeout`` seconds is forgotten, one that closes says
``fastio:bye``), so a request waits for exactly the fastio processes alive when it was sent, and
python-socketio processes on the channel (which never answer) are not waited for.

A backend subclasses ``AsyncPubSubManager`` and implements python-socketio's two extension
points: ``async _publish(data)`` (send one message, a dict) and ``async _listen()`` (an async
generator of received messages: bytes, str or dicts).  Messages are handed to ``_publish`` in
order by one writer task from a bounded queue (``queue_size``): coroutines that publish wait
while it is full, synchronous paths that cannot wait drop their message (counted in
``dropped``).  A backend may override ``_publish_batch`` to send several queued messages in
one round trip.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Hashable

from fastio.base.util import cancel_and_wait, cancel_timers
from fastio.socketio.manager import AsyncManager, handshake
from fastio.socketio.operators import BroadcastFlags, BroadcastTimeoutError
from fastio.socketio.publish_queue import PublishQueue, QueuedManager
from fastio.socketio.remote_socket import RemoteSocket

__all__ = ["AsyncPubSubManager"]

logger = logging.getLogger("fastio.socketio")


class _OrjsonCodec:
    """JSON for the pub/sub messages with orjson, which encodes what fastio's packets encode
    (datetimes, dataclasses, non-string keys), so data that reaches local clients also crosses.
    ``dumps`` returns str, as the standard library's does."""

    def __init__(self) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._option = orjson.OPT_NON_STR_KEYS
        self.loads = orjson.loads

    def dumps(self, obj: Any) -> str:
        return self._dumps(obj, option=self._option).decode()  # type: ignore[no-any-return]


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    """Binary values become Socket.IO placeholders; their bytes go to ``attachments``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(v, attachments) for v in data]
    if isinstance(data, dict):
        return {k: _deconstruct(v, attachments) for k, v in data.items()}
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, list):
        return [_reconstruct(v, attachments) for v in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and isinstance(data.get("num"), int) and len(data) == 2:
            return attachments[data["num"]]
        return {k: _reconstruct(v, attachments) for k, v in data.items()}
    return data


def _is_many(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


def _has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_binary(v) for v in data)
    if isinstance(data, dict):
        return any(_has_binary(v) for v in data.values())
    return False


def pack_args(args: list[Any]) -> tuple[list[Any], bool]:
    """python-socketio's form of arguments with binary values: ``[deconstructed, *base64]``."""
    if not _has_binary(args):
        return args, False
    attachments: list[bytes] = []
    return [_deconstruct(args, attachments), *[base64.b64encode(a).decode("ascii") for a in attachments]], True


def unpack_args(data: Any, binary: Any) -> Any:
    """The inverse of ``pack_args``."""
    if binary and isinstance(data, list) and data:
        return _reconstruct(data[0], [base64.b64decode(a) for a in data[1:]])
    return data


# The methods of fastio's own messages (python-socketio ignores a method it does not know).
HEARTBEAT = "fastio:heartbeat"
BYE = "fastio:bye"
RESPONSE = "fastio:response"
FETCH_SOCKETS = "fastio:fetch_sockets"
ALL_ROOMS = "fastio:all_rooms"
ALL_SOCKETS = "fastio:all_sockets"
SOCKETS_JOIN = "fastio:sockets_join"
SOCKETS_LEAVE = "fastio:sockets_leave"
DISCONNECT_SOCKETS = "fastio:disconnect_sockets"
SERVER_SIDE_EMIT = "fastio:server_side_emit"
BROADCAST_ACK = "fastio:broadcast_ack"
# Heartbeats and goodbyes (a few per interval) may pass a full queue by this many messages:
# dropping one would make the others forget this process, or wait for it, under load.
_CONTROL_OVERDRAFT = 16


class _Request:
    """A request of this process waiting for the replies of the fastio processes known when it
    was sent (a process that goes away meanwhile counts as answered)."""

    __slots__ = ("waiting", "results", "done")

    def __init__(self, peers: set[str]) -> None:
        self.waiting = set(peers)
        self.results: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.waiting:
            self.done.set_result(None)

    def answered(self, host_id: str) -> bool:
        """Count ``host_id``'s reply; False if it was not awaited (a duplicate, a stranger)."""
        if host_id not in self.waiting:
            return False
        self.waiting.discard(host_id)
        if not self.waiting and not self.done.done():
            self.done.set_result(None)
        return True


class _AckRequest:
    """A broadcast with acknowledgements this process sent: each known process reports its client
    count once, then its clients' answers."""

    __slots__ = ("client_count", "on_answer", "waiting")

    def __init__(self, client_count: Callable[[int], None], on_answer: Callable[[Any], None],
                 peers: set[str]) -> None:
        self.client_count = client_count
        self.on_answer = on_answer
        self.waiting = set(peers)


class AsyncPubSubManager(QueuedManager):
    """python-socketio's ``AsyncPubSubManager``: emits, rooms, disconnects and acknowledgements
    shared by the server processes on one channel, plus Node's operators across the fastio
    processes of the channel.

    :param channel: the channel (or exchange) shared by the cooperating processes.
    :param write_only: publish only: an emitter outside the server processes, usable without a
                       server (``await mgr.emit(...)``).
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param json: a module with ``dumps``/``loads`` for the messages (default: orjson).
    :param queue_size: the most messages waiting to be published (default 1024).  ``sio.emit``
                       and the operators wait while the queue is full (backpressure); a path that
                       cannot wait (``emit_now``, replies to other processes, acknowledgements
                       sent back, heartbeats) has its message dropped when it is full, counted
                       in ``dropped`` and logged.
    :param requests_timeout: seconds to wait for the other processes' replies to
                             ``fetch_sockets``, ``all_rooms``, ``all_sockets`` and
                             ``server_side_emit_with_ack`` (Node's ``requestsTimeout``, 5 s).
    :param heartbeat_interval: seconds between this process's heartbeats (5 s).
    :param heartbeat_timeout: seconds after which a silent fastio process is no longer waited
                              for (10 s).
    """

    name = "asyncpubsub"

    def __init__(self, channel: str = "socketio", write_only: bool = False, logger: logging.Logger | None = None,
                 json: Any = None, *, queue_size: int = 1024, requests_timeout: float = 5.0,
                 heartbeat_interval: float = 5.0, heartbeat_timeout: float = 10.0) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.channel = channel
        self.write_only = write_only
        self.host_id = uuid.uuid4().hex
        self.logger = logger
        self.json: Any = json if json is not None else _OrjsonCodec()
        self.requests_timeout = requests_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        #: the other fastio processes of the channel: host_id -> when last heard (monotonic)
        self.peers: dict[str, float] = {}
        self.thread: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Published in order by one writer task: (message, its JSON, a future to resolve or None);
        # a batch that fails as a whole is logged and dropped (redis_manager retries inside).
        self._publish_queue = PublishQueue(queue_size, self._send_batch, self._get_logger, label=self.name,
                                   failure="publishing to the %s backend failed" % self.name,
                                   describe=_method_of)
        self._heartbeat: asyncio.Task[None] | None = None
        self._requests: dict[str, _Request] = {}
        self._ack_requests: dict[str, _AckRequest] = {}
        self._ack_request_of: dict[int, str] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life cycle --------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Start listening on the channel (the server calls this when it starts serving; it can
        be called again harmlessly)."""
        super().initialize()
        if not self.write_only and (self.thread is None or self.thread.done()):
            self.thread = asyncio.get_running_loop().create_task(self._thread())
            self._get_logger().info("%s backend initialized.", self.name)

    async def ready(self) -> None:
        """Wait until this process receives what others publish (at start-up and in tests);
        returns at once for a write-only manager."""
        if self.write_only:
            return
        if self.thread is None:
            self.initialize()
        await self._subscribed.wait()

    def _set_subscribed(self) -> None:
        """Backends call this once their subscription is active (``ready()`` returns then); it
        announces this process to the other fastio processes, which answer with theirs."""
        self._subscribed.set()
        self._post({"method": HEARTBEAT, "initial": True}, _CONTROL_OVERDRAFT)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    def _set_unsubscribed(self) -> None:
        """Backends call this when their subscription is lost (until ``_set_subscribed``)."""
        self._subscribed.clear()

    async def aclose(self) -> None:
        """Say goodbye to the other processes, publish what is queued (up to 5 s), stop
        listening and release the backend."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
            self._post({"method": BYE}, _CONTROL_OVERDRAFT)
        await self._publish_queue.drain(5)
        cancel_timers(self._timers)
        if self.thread is not None:
            await cancel_and_wait(self.thread)
            self.thread = None
        await self._close_backend()

    async def _close_backend(self) -> None:
        """Backends release their connections here."""

    # -- knowing the other fastio processes ---------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                self._post({"method": HEARTBEAT}, _CONTROL_OVERDRAFT)
                deadline = time.monotonic() - self.heartbeat_timeout
                for host_id, seen in list(self.peers.items()):
                    if seen < deadline:
                        self._get_logger().warning(
                            "no heartbeat from fastio process %s for %.0f s: not waiting for it",
                            host_id, self.heartbeat_timeout)
                        self._peer_gone(host_id)
            except Exception:
                self._get_logger().exception("error in the %s heartbeat", self.name)

    def _peer_seen(self, host_id: str) -> None:
        self.peers[host_id] = time.monotonic()

    def _peer_gone(self, host_id: str) -> None:
        # Nothing more will come from it: requests stop waiting for it.
        self.peers.pop(host_id, None)
        for pending in list(self._requests.values()):
            pending.answered(host_id)
        for ack in list(self._ack_requests.values()):
            if host_id in ack.waiting:
                ack.waiting.discard(host_id)
                ack.client_count(0)

    async def server_count(self) -> int:
        """How many fastio processes share the channel, this one included (Node's
        ``serverCount``), as known from their heartbeats; python-socketio processes are not
        counted."""
        return 1 + len(self.peers)

    # -- the server's calls (publish_full, publish_room, queue_snapshot: QueuedManager) --------------

    def _emit(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
              callback: Callable[..., Any] | None, ignore_queue: bool) -> int:
        """Deliver locally, then publish for the other processes (unless ``ignore_queue``)."""
        if ignore_queue or (callback is not None and isinstance(room, str) and self.is_connected(room, namespace)):
            # This process's clients only; or a client of this process, whose ack comes back here.
            return self.emit_local(event, data, namespace, room, skip_sid, callback)
        message, payload, local_callback = self._emit_message(event, data, namespace, room, skip_sid, callback)
        n = self.emit_local(event, data, namespace, room, skip_sid, local_callback)
        self._send(message, payload)
        return n

    def _emit_message(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
                      callback: Callable[..., Any] | None
                      ) -> tuple[dict[str, Any], bytes, Callable[..., Any] | None]:
        # Returns the message, its JSON and the callback for this process's recipients.
        remote_callback = None
        local_callback = None
        if callback is not None:
            if self.server is None:
                raise RuntimeError("Callbacks can only be issued from the context of a server.")
            if room is None or _is_many(room):
                raise ValueError("Cannot use callback without a single room (sid) set.")
            ack_id = self._generate_ack_id(room, callback)
            remote_callback = [room, namespace, ack_id]
            # As python-socketio's pub/sub managers: the callback runs once, with the first
            # answer from any recipient in any process (every answer: emit_with_ack).
            local_callback = partial(self._first_answer, room, ack_id)
        args, binary = pack_args(list(data) if isinstance(data, tuple) else [data])
        message = {
            "method": "emit", "event": event, "data": args, "binary": binary, "namespace": namespace,
            "room": list(room) if _is_many(room) else room,
            "skip_sid": list(skip_sid) if _is_many(skip_sid) else skip_sid,
            "callback": remote_callback, "host_id": self.host_id}
        try:
            # Encoded before anything is delivered, so data that cannot cross fails as a whole.
            payload = self._encode_message(message)
        except TypeError:
            if remote_callback is not None:
                self.discard_callback(room, namespace, callback)  # type: ignore[arg-type]
            raise
        return message, payload, local_callback

    def _first_answer(self, room: Any, ack_id: int, *args: Any) -> None:
        # A client of this process answered an emit with a callback to ``room``: run the
        # callback if no answer came before.
        acks = self.callbacks.get(room)
        callback = acks.pop(ack_id, None) if acks else None
        if acks is not None and not acks:
            self.callbacks.pop(room, None)
        if callback is not None:
            result = callback(*args)
            if asyncio.iscoroutine(result):
                self._spawn(result)

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """Emit an event here and in every other process; returns once it is published (so a
        write-only emitter may exit after it); waits first while the publish queue is full.
        ``ignore_queue=True``: this process only."""
        room = to if to is not None else room
        namespace = namespace or "/"
        if kwargs.get("ignore_queue") or (
                callback is not None and isinstance(room, str) and self.is_connected(room, namespace)):
            self.emit_local(event, data, namespace, room, skip_sid, callback)
            return
        await self.publish_room()
        message, payload, local_callback = self._emit_message(event, data, namespace, room, skip_sid, callback)
        self.emit_local(event, data, namespace, room, skip_sid, local_callback)
        done = asyncio.get_running_loop().create_future()
        self._send(message, payload, done)
        await done

    # -- Node's adapter operations (the broadcast operators) -----------------------------------------

    async def broadcast(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags) -> None:
        """Deliver here and publish python-socketio's emit message, with keys fastio's processes
        read and python-socketio's ignore: ``except_rooms``, ``volatile``, ``compress``
        (``flags.local``: nothing is published).  Waits while the publish queue is full, not
        for the backend."""
        if flags.local:
            self.broadcast_local(namespace, args, to, exclude, flags)
            return
        packed, binary = pack_args(list(args[1:]))
        message = {"method": "emit", "event": args[0], "data": packed, "binary": binary, "namespace": namespace,
                   "room": to, "skip_sid": None, "callback": None, "host_id": self.host_id}
        if exclude:
            message["except_rooms"] = exclude
        if flags.volatile:
            message["volatile"] = True
        if not flags.compress:
            message["compress"] = False
        payload = self._encode_message(message)  # before delivering: data that cannot cross fails as a whole
        self.broadcast_local(namespace, args, to, exclude, flags)
        await self.publish_room()
        self._send(message, payload)

    def _request(self, method: str, namespace: str, **fields: Any) -> dict[str, Any]:
        message = {"method": method, "host_id": self.host_id, "namespace": namespace}
        message.update(fields)
        return message

    async def _publish_and_wait(self, message: dict[str, Any]) -> None:
        """Queue ``message`` (waiting while the queue is full) and wait until the backend took it."""
        payload = self._encode_message(message)
        await self.publish_room()
        done = asyncio.get_running_loop().create_future()
        self._send(message, payload, done)
        await done

    async def _ask(self, message: dict[str, Any], timeout: float | None,
                   pending: _Request | None = None) -> _Request:
        """Publish a request and wait for a reply from every fastio process known now
        (``asyncio.TimeoutError`` after ``timeout``, default ``requests_timeout``; the replies
        so far stay in ``pending.results``)."""
        if pending is None:
            pending = _Request(set(self.peers))
        if not pending.waiting:
            return pending
        request_id = uuid.uuid4().hex
        message["request_id"] = request_id
        self._requests[request_id] = pending
        try:
            await self._publish_and_wait(message)
            await asyncio.wait_for(asyncio.shield(pending.done), timeout or self.requests_timeout)
        finally:
            del self._requests[request_id]
        return pending

    async def broadcast_with_ack(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags,
                                 client_count: Callable[[int], None], on_answer: Callable[[Any], None]) -> int:
        """Deliver here with one shared acknowledgement id, and ask every other fastio process
        to do the same: each reports its client count, then forwards its clients' answers."""
        ack_id = await super().broadcast_with_ack(namespace, args, to, exclude, flags, client_count, on_answer)
        peers = set(self.peers)
        if flags.local or not peers:
            return ack_id
        request_id = uuid.uuid4().hex
        self._ack_requests[request_id] = _AckRequest(client_count, on_answer, peers)
        self._ack_request_of[ack_id] = request_id
        packed, binary = pack_args(list(args))
        timeout = flags.timeout if flags.timeout is not None else self.requests_timeout
        try:
            await self._publish_and_wait(self._request(
                BROADCAST_ACK, namespace, request_id=request_id, data=packed, binary=binary, rooms=to,
                except_rooms=exclude, volatile=flags.volatile, compress=flags.compress, timeout=timeout))
        except BaseException:
            self.forget_broadcast_ack(ack_id)
            raise
        return ack_id

    def forget_broadcast_ack(self, ack_id: int) -> None:
        """Stop waiting for the answers to broadcast ``ack_id``, here and from the others."""
        super().forget_broadcast_ack(ack_id)
        request_id = self._ack_request_of.pop(ack_id, None)
        if request_id is not None:
            self._ack_requests.pop(request_id, None)

    async def fetch_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                            flags: BroadcastFlags) -> list[Any]:
        """The selected sockets of every fastio process (``flags.local``: of this one);
        ``asyncio.TimeoutError`` when a process does not answer in time (``flags.timeout``, else
        ``requests_timeout``)."""
        local = await super().fetch_sockets(namespace, to, exclude, flags)
        if flags.local:
            return local
        try:
            pending = await self._ask(self._request(FETCH_SOCKETS, namespace, rooms=to, except_rooms=exclude),
                                      flags.timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError("timeout reached while waiting for fetch_sockets response") from None
        for remote in pending.results:
            for sock in remote.get("sockets") or ():
                if isinstance(sock, dict) and isinstance(sock.get("sid"), str):
                    local.append(RemoteSocket(self.server, sock["sid"], namespace, set(sock.get("rooms") or ()),
                                              sock.get("data") or {}, sock.get("handshake") or {}))
        return local

    async def all_rooms(self, namespace: str = "/") -> set[Any]:
        """Node's ``adapter.allRooms()``: the rooms of ``namespace`` with a member in any fastio
        process (sid rooms included); ``asyncio.TimeoutError`` when a process does not answer."""
        rooms = self._local_rooms(namespace)
        pending = await self._ask(self._request(ALL_ROOMS, namespace), None)
        for remote in pending.results:
            rooms.update(_hashable(r) for r in remote.get("rooms") or ())
        return rooms

    def _local_rooms(self, namespace: str) -> set[Any]:
        rooms: set[Any] = set(self.room_table.room_names(namespace))
        rooms.update((self.sockets.get(namespace) or {}).keys())
        rooms.discard(None)
        return rooms

    async def all_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags) -> set[str]:
        """The sids of the selected sockets of every fastio process (Node's ``allSockets``)."""
        sids = {sock.sid for sock in self.select_local(namespace, to, exclude)}
        if flags.local:
            return sids
        pending = await self._ask(self._request(ALL_SOCKETS, namespace, rooms=to, except_rooms=exclude),
                                  flags.timeout)
        for remote in pending.results:
            sids.update(s for s in remote.get("sids") or () if isinstance(s, str))
        return sids

    async def add_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """The selected sockets of every fastio process join ``rooms`` (applied here, then
        published; returns once the backend took the message)."""
        await super().add_sockets(namespace, to, exclude, flags, rooms)
        if not flags.local:
            await self._publish_and_wait(self._request(SOCKETS_JOIN, namespace, rooms=to, except_rooms=exclude,
                                                       join=list(rooms)))

    async def del_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """The selected sockets of every fastio process leave ``rooms`` (applied here, then
        published)."""
        await super().del_sockets(namespace, to, exclude, flags, rooms)
        if not flags.local:
            await self._publish_and_wait(self._request(SOCKETS_LEAVE, namespace, rooms=to, except_rooms=exclude,
                                                       leave=list(rooms)))

    async def disconnect_sockets(self, namespace: str, to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags, close: bool) -> None:
        """The selected sockets of every fastio process are disconnected (published, then here)."""
        if not flags.local:
            await self._publish_and_wait(self._request(DISCONNECT_SOCKETS, namespace, rooms=to,
                                                       except_rooms=exclude, close=bool(close)))
        await super().disconnect_sockets(namespace, to, exclude, flags, close)

    async def server_side_emit(self, namespace: str, args: list[Any]) -> None:
        """The event ``args`` goes to the ``on_server_side`` handlers of every other fastio
        process (returns once the backend took the message)."""
        packed, binary = pack_args(list(args))
        await self._publish_and_wait(self._request(SERVER_SIDE_EMIT, namespace, data=packed, binary=binary))

    async def server_side_emit_with_ack(self, namespace: str, args: list[Any], timeout: float | None) -> list[Any]:
        """``server_side_emit`` that returns each other fastio process's answer (its handler's
        return value); raises ``BroadcastTimeoutError`` (with the answers received) when one is
        missing after ``timeout`` (default ``requests_timeout``)."""
        packed, binary = pack_args(list(args))
        pending = _Request(set(self.peers))
        try:
            await self._ask(self._request(SERVER_SIDE_EMIT, namespace, data=packed, binary=binary), timeout, pending)
        except asyncio.TimeoutError:
            raise BroadcastTimeoutError(self._answers(pending.results)) from None
        return self._answers(pending.results)

    def _answers(self, results: list[dict[str, Any]]) -> list[Any]:
        out = []
        for result in results:
            value = unpack_args(result.get("data"), result.get("binary"))
            out.append(value[0] if isinstance(value, list) and value else None)
        return out

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """True for a client of this process; for another process's client, ask it to disconnect."""
        if self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace):
            return True
        await self._publish_and_wait({"method": "disconnect", "sid": sid, "namespace": namespace or "/",
                                      "host_id": self.host_id})
        return False

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Disconnect ``sid`` wherever it is connected (``ignore_queue=True``: forget it here)."""
        if kwargs.get("ignore_queue"):
            self.basic_disconnect(sid, namespace)
            return
        message = {"method": "disconnect", "sid": sid, "namespace": namespace or "/", "host_id": self.host_id}
        await self._handle_disconnect(message)
        await self._publish_and_wait(message)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            self._enter(sid, namespace, room)
        else:
            await self._publish_and_wait({"method": "enter_room", "sid": sid, "room": room,
                                          "namespace": namespace or "/", "host_id": self.host_id})

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove ``sid`` from ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            self.basic_leave_room(sid, namespace, room)
        else:
            await self._publish_and_wait({"method": "leave_room", "sid": sid, "room": room,
                                          "namespace": namespace or "/", "host_id": self.host_id})

    async def close_room(self, room: Any, namespace: str | None = None) -> None:  # type: ignore[override]
        """Empty ``room`` in every process."""
        self.room_table.close_room(namespace or "/", room)
        await self._publish_and_wait({"method": "close_room", "room": room, "namespace": namespace or "/",
                                      "host_id": self.host_id})

    # -- publishing: one bounded queue, one writer ---------------------------------------------------

    async def _publish(self, data: dict[str, Any]) -> None:
        """Send one message (a dict) on the channel: the backend's extension point."""
        raise NotImplementedError("This method must be implemented in a subclass.")

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        """Send one message, given also as its JSON.  Backends that send bytes override this to
        skip a second encoding; by default it calls ``_publish(data)``."""
        await self._publish(data)

    async def _publish_batch(self, batch: list[tuple[dict[str, Any], bytes]]) -> list[BaseException | None]:
        """Send several messages in order; returns one error (or None) per message.  By default
        one ``_publish_encoded`` after the other; a backend may send them in one round trip."""
        return await self._publish_each(batch)

    async def _publish_each(self, batch: list[tuple[dict[str, Any], bytes]]) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        for message, payload in batch:
            try:
                await self._publish_encoded(message, payload)
                errors.append(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._get_logger().exception("publishing to the %s backend failed", self.name)
                errors.append(exc)
        return errors

    def _encode_message(self, message: dict[str, Any]) -> bytes:
        try:
            payload = self.json.dumps(message)
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise TypeError("data published to other processes must be JSON-serializable: %s" % exc) from None
        return payload.encode() if isinstance(payload, str) else payload  # type: ignore[no-any-return]

    def _post(self, message: dict[str, Any], overdraft: int = 0) -> bool:
        """Queue ``message`` from a path that cannot wait: dropped (False) when the queue is full
        (past ``overdraft`` more) or the message cannot be encoded."""
        message.setdefault("host_id", self.host_id)
        try:
            payload = self._encode_message(message)
        except TypeError as exc:
            self._get_logger().warning("cannot publish a %r message: %s", message.get("method"), exc)
            return False
        return self._send(message, payload, None, overdraft)

    def _send(self, message: dict[str, Any], payload: bytes, done: asyncio.Future[None] | None = None,
              overdraft: int = 0) -> bool:
        return self._publish_queue.put(message, payload, done, overdraft)

    def _send_batch(self, batch: list[tuple[Any, Any]]) -> Awaitable[list[BaseException | None]]:
        # The queue's sender: looked up at each batch, so a backend's (or a test's) override counts.
        return self._publish_batch(batch)

    # -- receiving ----------------------------------------------------------------------------------

    def _listen(self) -> AsyncIterator[Any]:
        """Yield the messages published on the channel: the backend's extension point."""
        raise NotImplementedError("This method must be implemented in a subclass.")

    async def _thread(self) -> None:
        if not self._signals_subscription:
            self._set_subscribed()
        while True:
            try:
                async for message in self._listen():
                    await self._handle_message(message)
                self._get_logger().error("pubsub listen() exited unexpectedly")
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._get_logger().exception("Unexpected error in the pubsub listener")
                await asyncio.sleep(1)

    # Backends that call ``_set_subscribed`` when subscribed set this.
    _signals_subscription = False

    async def _handle_message(self, raw: Any) -> None:
        """Act on one received message."""
        if isinstance(raw, dict):
            data = raw
        else:
            try:
                data = self.json.loads(raw)
            except Exception:
                self._get_logger().warning("ignoring an unreadable pub/sub message")
                return
        if not isinstance(data, dict) or "method" not in data:
            return
        method = data["method"]
        try:
            if method == "callback":
                await self._handle_callback(data)
            elif data.get("host_id") != self.host_id:
                if method == "emit":
                    await self._handle_emit(data)
                elif method == "disconnect":
                    await self._handle_disconnect(data)
                elif method == "enter_room":
                    await self._handle_enter_room(data)
                elif method == "leave_room":
                    await self._handle_leave_room(data)
                elif method == "close_room":
                    await self._handle_close_room(data)
                elif isinstance(method, str) and method.startswith("fastio:") and not self.write_only:
                    self._handle_cluster(method, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._get_logger().exception("handling a pub/sub %r message failed", method)

    def _handle_cluster(self, method: str, message: dict[str, Any]) -> None:
        # fastio's own messages: heartbeats, requests of other processes, replies to ours.
        host_id = message.get("host_id")
        if not isinstance(host_id, str):
            return
        if method == BYE:
            self._peer_gone(host_id)
            return
        self._peer_seen(host_id)
        if method == HEARTBEAT:
            if message.get("initial"):
                # so that the newcomer knows this process
                self._post({"method": HEARTBEAT}, _CONTROL_OVERDRAFT)
            return
        if method == RESPONSE:
            if message.get("requester") == self.host_id:
                self._on_response(host_id, message)
            return
        namespace = message.get("namespace") or "/"
        to, exclude = _rooms(message.get("rooms")), _rooms(message.get("except_rooms"))
        request_id = message.get("request_id")
        if method == FETCH_SOCKETS:
            self._respond(host_id, request_id, sockets=[
                {"sid": sock.sid, "rooms": self.room_table.rooms_of(namespace, sock.sid), "data": sock.data,
                 "handshake": handshake(sock)} for sock in self.select_local(namespace, to, exclude)])
        elif method == ALL_ROOMS:
            self._respond(host_id, request_id, rooms=list(self._local_rooms(namespace)))
        elif method == ALL_SOCKETS:
            self._respond(host_id, request_id,
                          sids=[sock.sid for sock in self.select_local(namespace, to, exclude)])
        elif method in (SOCKETS_JOIN, SOCKETS_LEAVE):
            for sock in self.select_local(namespace, to, exclude):
                if method == SOCKETS_JOIN:
                    for room in message.get("join") or ():
                        self.enter_room_now(sock.sid, namespace, _hashable(room))
                else:
                    for room in message.get("leave") or ():
                        self.basic_leave_room(sock.sid, namespace, _hashable(room))
        elif method == DISCONNECT_SOCKETS:
            if self.server is not None:
                self._spawn(AsyncManager.disconnect_sockets(self, namespace, to, exclude, BroadcastFlags(),
                                                            bool(message.get("close"))))
        elif method == SERVER_SIDE_EMIT:
            args = unpack_args(message.get("data"), message.get("binary"))
            if self.server is not None and isinstance(args, list) and args and isinstance(args[0], str):
                self._spawn(self._server_side_event(host_id, namespace, args, request_id))
        elif method == BROADCAST_ACK:
            self._broadcast_ack_request(host_id, namespace, message)

    def _respond(self, requester: str, request_id: Any, **fields: Any) -> None:
        if not isinstance(request_id, str):
            return
        message = {"method": RESPONSE, "host_id": self.host_id, "requester": requester, "request_id": request_id}
        message.update(fields)
        if not self._post(message) and "sockets" in fields:
            # Socket data that cannot be encoded: answer without it rather than not at all.
            for sock in fields["sockets"]:
                sock["data"] = {}
            self._post(message)

    def _on_response(self, host_id: str, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        ack = self._ack_requests.get(request_id)  # type: ignore[arg-type]
        if ack is not None:
            if "client_count" in message:
                if host_id in ack.waiting:
                    ack.waiting.discard(host_id)
                    ack.client_count(int(message.get("client_count") or 0))
            elif "answer" in message:
                answer = unpack_args(message.get("answer"), message.get("binary"))
                ack.on_answer(answer[0] if isinstance(answer, list) and answer else None)
            return
        pending = self._requests.get(request_id)  # type: ignore[arg-type]
        if pending is not None and host_id in pending.waiting:
            pending.results.append(message)
            pending.answered(host_id)

    async def _server_side_event(self, requester: str, namespace: str, args: list[Any], request_id: Any) -> None:
        result = await self.server.trigger_server_side_event(namespace, args[0], list(args[1:]))
        if request_id is not None:
            packed, binary = pack_args([result])
            self._respond(requester, request_id, data=packed, binary=binary)

    def _broadcast_ack_request(self, requester: str, namespace: str, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        args = unpack_args(message.get("data"), message.get("binary"))
        if not isinstance(request_id, str) or not isinstance(args, list) or not args:
            return

        def on_answer(answer: Any) -> None:
            packed, binary = pack_args([answer])
            self._respond(requester, request_id, answer=packed, binary=binary)

        flags = BroadcastFlags(volatile=bool(message.get("volatile")), compress=message.get("compress") is not False)
        ack_id, n = self.broadcast_with_ack_local(namespace, args, _rooms(message.get("rooms")),
                                                  _rooms(message.get("except_rooms")), flags, on_answer)
        self._respond(requester, request_id, client_count=n)
        if n:
            timeout = message.get("timeout")
            delay = float(timeout) if isinstance(timeout, (int, float)) else self.requests_timeout
            self._later(delay, partial(AsyncManager.forget_broadcast_ack, self, ack_id))

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        data = unpack_args(message.get("data"), message.get("binary"))
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        callback = None
        remote = message.get("callback")
        if isinstance(remote, list) and len(remote) == 3:
            callback = _FirstOnly(partial(self._ack_to_origin, str(message.get("host_id")), *remote))
        skip_sid = message.get("skip_sid")
        except_rooms = message.get("except_rooms")
        if callback is None and (except_rooms or message.get("volatile") or message.get("compress") is False):
            # A broadcast operator's emit (fastio's keys).
            args = [message["event"], *(data if isinstance(data, tuple) else (data,))]
            self.broadcast_local(message.get("namespace") or "/", args, message.get("room"), except_rooms or None,
                                 BroadcastFlags(volatile=bool(message.get("volatile")),
                                                compress=message.get("compress") is not False),
                                 tuple(skip_sid) if isinstance(skip_sid, list) else skip_sid)
            return
        self.emit_local(message["event"], data, message.get("namespace") or "/", message.get("room"),
                        tuple(skip_sid) if isinstance(skip_sid, list) else skip_sid, callback)

    def _ack_to_origin(self, host_id: str, sid: str, namespace: str, callback_id: int, *args: Any) -> None:
        # A local client acknowledged an emit of another process: send the arguments back.
        # Binary arguments use the emit's form and a "binary" flag (python-socketio itself
        # cannot send them in an acknowledgement between processes).
        packed, binary = pack_args(list(args))
        message: dict[str, Any] = {"method": "callback", "host_id": host_id, "sid": sid,
                                   "namespace": namespace, "id": callback_id, "args": packed}
        if binary:
            message["binary"] = True
        self._post(message)

    async def _return_callback(self, host_id: str, sid: str, namespace: str, callback_id: int, *args: Any) -> None:
        """python-socketio's name: run the callback here, or send it to the host that emitted."""
        if host_id == self.host_id:
            await self.trigger_callback(sid, callback_id, args)
        else:
            self._ack_to_origin(host_id, sid, namespace, callback_id, *args)

    async def _handle_callback(self, message: dict[str, Any]) -> None:
        if message.get("host_id") != self.host_id:
            return
        sid, ack_id, args = message.get("sid"), message.get("id"), message.get("args")
        if not isinstance(sid, str) or not isinstance(ack_id, int) or not isinstance(args, list):
            return
        if ack_id not in (self.callbacks.get(sid) or {}):
            # A later answer to an emit whose callback already ran (or was given up).
            self._get_logger().debug("ignoring the answer to callback %s of %s", ack_id, sid)
            return
        await self.trigger_callback(sid, ack_id, unpack_args(args, message.get("binary")))

    async def _handle_disconnect(self, message: dict[str, Any]) -> None:
        if self.server is not None:
            await self.server.disconnect(message.get("sid"), message.get("namespace") or "/", ignore_queue=True)

    async def _handle_enter_room(self, message: dict[str, Any]) -> None:
        sid, namespace = message.get("sid"), message.get("namespace") or "/"
        if isinstance(sid, str) and (self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)):
            self._enter(sid, namespace, message.get("room"))

    async def _handle_leave_room(self, message: dict[str, Any]) -> None:
        sid, namespace = message.get("sid"), message.get("namespace") or "/"
        if isinstance(sid, str) and (self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)):
            self.basic_leave_room(sid, namespace, message.get("room"))

    async def _handle_close_room(self, message: dict[str, Any]) -> None:
        self.room_table.close_room(message.get("namespace") or "/", message.get("room"))

    # -- helpers -----------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._check_hook)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.discard(timer)
            callback()
        timer = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(timer)


class _FirstOnly:
    """Calls its function with the first arguments it gets, and ignores later calls: each
    process sends back one answer to an emit with a callback to a room."""

    __slots__ = ("func", "called")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.called = False

    def __call__(self, *args: Any) -> Any:
        if self.called:
            return None
        self.called = True
        return self.func(*args)


def _method_of(message: dict[str, Any]) -> str:
    return message.get("method", "")  # type: ignore[no-any-return]


def _hashable(value: Any) -> Any:
    # Rooms that crossed as JSON: a list (from a tuple) becomes a tuple again.
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _rooms(value: Any) -> list[Any] | None:
    # A list of rooms as it crossed (None or empty: no selection).
    if not isinstance(value, list) or not value:
        return None
    return [_hashable(r) for r in value]
