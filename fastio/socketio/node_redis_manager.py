"""A client manager that joins a fleet of Node socket.io servers using ``@socket.io/redis-adapter``.

It speaks the protocols of ``@socket.io/redis-adapter`` 8.x, as written up in
docs/protocols/redis-adapter.md.  Classic (``createAdapter``, PUBLISH/SUBSCRIBE): per namespace it
PSUBSCRIBEs ``<key>#<nsp>#*`` (broadcasts, msgpack ``[uid, packet, opts]``) and SUBSCRIBEs
``<key>-request#<nsp>#`` and the response channels.  Sharded (``createShardedAdapter``,
``sharded=True``, SSUBSCRIBE/SPUBLISH): socket.io-adapter's ClusterAdapter messages on
``<key>#<nsp>#``, its own response channel and, in the dynamic modes, one channel per local room.
So Node servers and fastio servers on one Redis share broadcasts, rooms, ``fetch_sockets``,
``sockets_join``/``sockets_leave``/``disconnect_sockets``, server-side events and broadcast
acknowledgements, and ``@socket.io/redis-emitter`` reaches fastio's clients.

    mgr = fastio.AsyncNodeRedisManager("redis://127.0.0.1:6379/0", key="socket.io")
    sio = fastio.AsyncServer(client_manager=mgr)

Publishing goes through one bounded queue drained by one writer task (see ``queue_size``):
``sio.emit``, the operators and every other awaited operation wait while the queue is full.
``redis`` (redis-py) and ``msgpack`` are needed only when this manager is used.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from functools import partial
from typing import Any, Awaitable, Callable, Hashable, Sequence

from fastio.base.util import cancel_and_wait, cancel_timers, close_after_loss
from fastio.socketio.manager import AsyncManager, Socket, event_args, handshake
from fastio.socketio.operators import BroadcastFlags, BroadcastTimeoutError
from fastio.socketio.publish_queue import PublishQueue, QueuedManager
from fastio.socketio.remote_socket import RemoteSocket

__all__ = ["AsyncNodeRedisManager"]

# Request types of the classic adapter.
SOCKETS, ALL_ROOMS, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT, REMOTE_FETCH, SERVER_SIDE_EMIT, \
    BROADCAST, BROADCAST_CLIENT_COUNT, BROADCAST_ACK = range(10)
_EVENT, _BINARY_EVENT = 2, 5
# Message types of the sharded adapter (socket.io-adapter's ClusterAdapter).
_C_BROADCAST, _SOCKETS_JOIN, _SOCKETS_LEAVE, _DISCONNECT_SOCKETS, _FETCH_SOCKETS, _FETCH_SOCKETS_RESPONSE, \
    _SERVER_SIDE_EMIT, _SERVER_SIDE_EMIT_RESPONSE, _BROADCAST_CLIENT_COUNT, _BROADCAST_ACK = range(3, 13)
_CLUSTER_TYPE = {REMOTE_JOIN: _SOCKETS_JOIN, REMOTE_LEAVE: _SOCKETS_LEAVE, REMOTE_DISCONNECT: _DISCONNECT_SOCKETS,
                 REMOTE_FETCH: _FETCH_SOCKETS, SERVER_SIDE_EMIT: _SERVER_SIDE_EMIT}
_BRACE = 0x7B


def _json_default(obj: Any) -> Any:
    # Node's JSON form of a Buffer; anything else JSON cannot carry becomes its text.
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"type": "Buffer", "data": list(bytes(obj))}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _is_many(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


def _room_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if _is_many(value) else [value]


class _Namespace:
    """One namespace's identity in the fleet: its uid and its channels."""

    __slots__ = ("name", "uid", "broadcast_prefix", "pattern", "request", "response", "own_response",
                 "subscribed", "pending", "main", "own", "room_channels")

    def __init__(self, key: str, name: str) -> None:
        self.name = name
        # 16 hex characters: never "emitter", never a Node uid (6 characters).
        self.uid = secrets.token_hex(8)
        self.broadcast_prefix = f"{key}#{name}#".encode()
        self.pattern = f"{key}#{name}#*"
        self.request = f"{key}-request#{name}#"
        self.response = f"{key}-response#{name}#"
        self.own_response = f"{key}-response#{name}#{self.uid}#"
        # The sharded adapter's channels: every message, this node's responses, and the
        # single-room broadcast channels subscribed for the rooms with members here.
        self.main = f"{key}#{name}#"
        self.own = f"{key}#{name}#{self.uid}#"
        self.room_channels: set[str] = set()
        self.subscribed = asyncio.Event()
        self.pending: set[str] = set()


class _Request:
    """A request of this process waiting for the other servers' replies."""

    __slots__ = ("kind", "expected", "count", "results", "done")

    def __init__(self, kind: int, expected: int, results: list[Any]) -> None:
        self.kind = kind
        self.expected = expected
        self.count = 0
        self.results = results
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.expected and not self.done.done():
            self.done.set_result(None)


class AsyncNodeRedisManager(QueuedManager):
    """A member of a Node socket.io Redis fleet (``@socket.io/redis-adapter`` 8.x, classic mode).

    :param url: the Redis URL (``redis://``, ``rediss://``, ``unix://``).
    :param key: the adapter's ``key`` option shared by the fleet (Node's default ``"socket.io"``).
    :param requests_timeout: seconds to wait for the other servers' replies to ``fetch_sockets``
                             and ``server_side_emit_with_ack`` (Node's ``requestsTimeout``, 5 s).
    :param queue_size: the most messages waiting to be published.  ``sio.emit`` and the
                       operators wait while the queue is full (backpressure); a synchronous
                       caller that cannot wait (``emit_now``, replies to other servers) has its
                       publish dropped when the queue is full, counted in ``dropped`` and logged.
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param redis_options: extra keyword arguments for ``redis.asyncio.Redis.from_url()``.
    :param sharded: speak the sharded adapter's protocol (``createShardedAdapter``, Redis 7
                    SSUBSCRIBE/SPUBLISH) instead of the classic one; ``key`` is then its
                    ``channelPrefix``.  One Redis server, not a Redis Cluster.
    :param subscription_mode: the sharded adapter's ``subscriptionMode``: ``"dynamic"`` (the
                              default), ``"dynamic-private"`` or ``"static"``; the fleet must agree.
    """

    name = "node-redis"

    def __init__(self, url: str = "redis://localhost:6379/0", key: str = "socket.io",
                 requests_timeout: float = 5.0, queue_size: int = 1024, logger: logging.Logger | None = None,
                 redis_options: dict[str, Any] | None = None, sharded: bool = False,
                 subscription_mode: str = "dynamic") -> None:
        super().__init__()
        try:
            import msgpack  # type: ignore[import-untyped]
            import orjson
            from redis import asyncio as aioredis
        except ImportError:
            raise RuntimeError('AsyncNodeRedisManager needs "redis" and "msgpack": pip install redis msgpack') \
                from None
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if subscription_mode not in ("dynamic", "dynamic-private", "static"):
            raise ValueError('subscription_mode must be "dynamic", "dynamic-private" or "static"')
        self.sharded = sharded
        self.subscription_mode = subscription_mode
        # Room channels are subscribed per local room (sharded, dynamic modes).
        self._room_subscriptions = sharded and subscription_mode != "static"
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb
        self._orjson = orjson
        self.url = url
        self.key = key
        self.requests_timeout = requests_timeout
        self.logger = logger
        self.redis_options = dict(redis_options or {})
        self.redis: Any = aioredis.Redis.from_url(url, **self.redis_options)
        self.namespaces: dict[str, _Namespace] = {}
        # Published in order by one writer task: (channel, payload, a future to resolve or None);
        # a batch is tried twice (redis-py reconnects on the next command), then dropped.
        self._publish_queue = PublishQueue(queue_size, self._send_batch, self._get_logger, label="Redis",
                                   failure=self._publish_failure, attempts=2)
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._requests: dict[str, _Request] = {}
        # Broadcasts with acknowledgements this process sent: requestId -> (client_count, on_answer).
        self._ack_requests: dict[str, tuple[Callable[[int], None], Callable[[Any], None]]] = {}
        self._ack_request_of: dict[int, str] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._sweeping = False
        #: seconds between the sweeps that unsubscribe the channels of rooms that emptied
        self.room_sweep_interval = 5.0

    # -- life cycle --------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Join the fleet: subscribe the namespaces the server declares (and ``/``)."""
        super().initialize()
        self._join("/")
        if self.server is not None:
            for name in list(getattr(self.server, "handlers", {}) or {}) + list(
                    getattr(self.server, "declared_namespaces", ()) or ()):
                if isinstance(name, str):
                    self._join(name)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def ready(self, namespace: str = "/") -> None:
        """Wait until this process receives what the fleet publishes to ``namespace``."""
        if self._listener is None:
            self.initialize()
        await self._join(namespace).subscribed.wait()

    async def aclose(self) -> None:
        """Publish what is queued (up to 5 s), leave the fleet and close the connections."""
        await self._publish_queue.drain(5)
        cancel_timers(self._timers)
        if self._listener is not None:
            await cancel_and_wait(self._listener)
            self._listener = None
        await self.redis.aclose()

    def _join(self, name: str) -> _Namespace:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = _Namespace(self.key, name)
            pubsub = self._pubsub
            if pubsub is not None:
                self._spawn(self._subscribe(pubsub, ns))
        return ns

    def add_socket(self, sock: Socket) -> None:
        """Register a socket; its namespace joins the fleet if it has not yet."""
        super().add_socket(sock)
        ns = self.namespaces.get(sock.namespace) or self._join(sock.namespace)
        if self._room_subscriptions and (self.subscription_mode == "dynamic-private" or len(sock.sid) != 20):
            # Its sid room: Node's senders use the room channel for it (dynamic-private, or an
            # id that does not look like Node's 20 characters).
            self._room_subscribe(ns, sock.sid)

    def enter_room_now(self, sid: str, namespace: str, room: Any) -> None:
        """Add ``sid`` to ``room`` (sharded, dynamic modes: and subscribe the room's channel)."""
        super().enter_room_now(sid, namespace, room)
        if self._room_subscriptions and room is not None:
            self._room_subscribe(self.namespaces.get(namespace) or self._join(namespace), room)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room`` (sharded, dynamic modes: and subscribe the room's channel)."""
        await super().enter_room(sid, namespace, room, eio_sid)
        if self._room_subscriptions and room is not None:
            self._room_subscribe(self.namespaces.get(namespace) or self._join(namespace), room)

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """python-socketio's synchronous ``enter_room`` (sharded, dynamic modes: and subscribe
        the room's channel)."""
        super().basic_enter_room(sid, namespace, room, eio_sid)
        if self._room_subscriptions and room is not None:
            self._room_subscribe(self.namespaces.get(namespace) or self._join(namespace), room)

    def _room_subscribe(self, ns: _Namespace, room: Any) -> None:
        channel = f"{ns.main}{room}#"
        if channel in ns.room_channels:
            return
        ns.room_channels.add(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            self._spawn(pubsub.ssubscribe(channel))
        if not self._sweeping:
            # Channels of rooms that emptied are unsubscribed by one periodic sweep (a message
            # arriving meanwhile is dropped before decoding, as for any room without members).
            self._sweeping = True
            self._later(self.room_sweep_interval, self._sweep_rooms)

    def _sweep_rooms(self) -> None:
        pubsub = self._pubsub
        for ns in self.namespaces.values():
            gone = [channel for channel in ns.room_channels
                    if not self._has_room(ns.name, channel[len(ns.main):-1])]
            if gone:
                ns.room_channels.difference_update(gone)
                if pubsub is not None:
                    self._spawn(pubsub.sunsubscribe(*gone))
        if any(ns.room_channels for ns in self.namespaces.values()):
            self._later(self.room_sweep_interval, self._sweep_rooms)
        else:
            self._sweeping = False

    # -- subscribing and receiving -----------------------------------------------------------------

    async def _subscribe(self, pubsub: Any, ns: _Namespace) -> None:
        if self.sharded:
            ns.pending = {ns.main, ns.own}
            await pubsub.ssubscribe(ns.main, ns.own)
            if ns.room_channels:
                await pubsub.ssubscribe(*ns.room_channels)
            return
        ns.pending = {ns.pattern, ns.request, ns.response, ns.own_response}
        await pubsub.psubscribe(ns.pattern)
        await pubsub.subscribe(ns.request, ns.response, ns.own_response)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                self._pubsub = pubsub
                for ns in list(self.namespaces.values()):
                    await self._subscribe(pubsub, ns)
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._dispatch(message)
            except asyncio.CancelledError:
                self._pubsub = None
                await pubsub.aclose()
                raise
            except Exception as exc:
                self._pubsub = None
                for ns in self.namespaces.values():
                    ns.subscribed.clear()
                self._get_logger().error("Redis subscription lost, resubscribing in %.1f s: %s", backoff, exc)
                backoff = await close_after_loss(pubsub, backoff)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("subscribe", "psubscribe", "ssubscribe"):
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            for ns in self.namespaces.values():
                if channel in ns.pending:
                    ns.pending.discard(channel)
                    if not ns.pending:
                        ns.subscribed.set()
            return
        try:
            if kind == "smessage":
                self._on_sharded(message["channel"], message["data"])
            elif kind == "pmessage":
                self._on_broadcast(message["channel"], message["data"])
            elif kind == "message":
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                for ns in self.namespaces.values():
                    if channel == ns.request:
                        self._on_request(ns, message["data"])
                        break
                    if channel == ns.response or channel == ns.own_response:
                        self._on_response(message["data"])
                        break
        except Exception:
            self._get_logger().exception("handling a message from the Redis fleet failed")

    def _decode(self, data: bytes) -> Any:
        # JSON when the first byte is "{", msgpack otherwise (the adapter's rule).
        if data[:1] == b"{":
            return self._orjson.loads(data)
        return self._unpackb(data, raw=False, timestamp=3, strict_map_key=False)

    def _has_room(self, namespace: str, room: str) -> bool:
        # Read from the table's own dict (no copy of the members): a named room with members,
        # or a sid (its own room).
        rooms = self.room_table.get(namespace)
        if not rooms:
            return False
        if rooms.get(room) or room in rooms[None]:
            return True
        if room.lstrip("-").isdigit():
            return bool(rooms.get(int(room)))
        return False

    def _on_broadcast(self, channel: bytes, data: bytes) -> None:
        for ns in self.namespaces.values():
            if channel.startswith(ns.broadcast_prefix):
                break
        else:
            return
        room = channel[len(ns.broadcast_prefix):-1]
        if room and not self._has_room(ns.name, room.decode("utf-8", "replace")):
            return  # nobody here is in that room: dropped before decoding
        decoded = self._unpackb(data, raw=False, timestamp=3, strict_map_key=False)
        if not isinstance(decoded, list) or len(decoded) < 3:
            return
        uid, packet, opts = decoded[0], decoded[1], decoded[2]
        if uid == ns.uid or not isinstance(packet, dict) or not isinstance(opts, dict):
            return
        if (packet.get("nsp") or "/") != ns.name or packet.get("type") not in (_EVENT, _BINARY_EVENT):
            return
        args = packet.get("data")
        if not isinstance(args, list) or not args:
            return
        flags = opts.get("flags") or {}
        self.broadcast_local(ns.name, args, opts.get("rooms") or None, opts.get("except") or None,
                             BroadcastFlags(volatile=bool(flags.get("volatile"))))

    def _on_sharded(self, channel: bytes, data: bytes) -> None:
        for ns in self.namespaces.values():
            if channel.startswith(ns.broadcast_prefix):
                break
        else:
            return
        name = channel.decode("utf-8", "replace")
        if name == ns.own:
            self._on_cluster_response(self._decode(data))
            return
        if name != ns.main and not self._has_room(ns.name, name[len(ns.main):-1]):
            return  # a room channel of a room with nobody here (any more): dropped before decoding
        message = self._decode(data)
        if not isinstance(message, dict):
            return
        uid = message.get("uid")
        nsp = message.get("nsp")
        if uid == ns.uid or (nsp is not None and nsp != ns.name):
            return
        kind = message.get("type")
        body = message.get("data")
        body = body if isinstance(body, dict) else {}
        if kind in (_FETCH_SOCKETS_RESPONSE, _SERVER_SIDE_EMIT_RESPONSE, _BROADCAST_CLIENT_COUNT, _BROADCAST_ACK):
            self._on_cluster_response(message)
            return
        opts = body.get("opts")
        opts = opts if isinstance(opts, dict) else {}
        to, exclude = opts.get("rooms") or None, opts.get("except") or None
        if kind == _C_BROADCAST:
            if body.get("requestId") is not None:
                if body["requestId"] not in self._ack_requests:
                    self._broadcast_with_ack_request(ns, body, uid)
                return
            packet = body.get("packet")
            if not isinstance(packet, dict):
                return
            args = packet.get("data")
            if isinstance(args, list) and args and packet.get("type", _EVENT) in (_EVENT, _BINARY_EVENT):
                flags = opts.get("flags") or {}
                self.broadcast_local(ns.name, args, to, exclude, BroadcastFlags(volatile=bool(flags.get("volatile"))))
        elif kind in (_SOCKETS_JOIN, _SOCKETS_LEAVE):
            self._apply_rooms(ns.name, to, exclude, _room_list(body.get("rooms")), kind == _SOCKETS_JOIN)
        elif kind == _DISCONNECT_SOCKETS:
            self._spawn(AsyncManager.disconnect_sockets(self, ns.name, to, exclude, BroadcastFlags(),
                                                        bool(body.get("close"))))
        elif kind == _FETCH_SOCKETS:
            request_id = body.get("requestId")
            if request_id is not None:
                socks = self.select_local(ns.name, to, exclude)
                self._cluster_reply(ns, uid, _FETCH_SOCKETS_RESPONSE, {
                    "requestId": request_id, "sockets": [self._socket_json(s) for s in socks]})
        elif kind == _SERVER_SIDE_EMIT:
            args = body.get("packet")
            if isinstance(args, list) and args and self.server is not None:
                self._spawn(self._server_side_event(ns, args, body.get("requestId"), uid))

    def _on_cluster_response(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return
        body = message["data"]
        request_id = body.get("requestId")
        kind = message.get("type")
        ack_request = self._ack_requests.get(request_id)  # type: ignore[arg-type]
        if ack_request is not None:
            if kind == _BROADCAST_CLIENT_COUNT:
                ack_request[0](int(body.get("clientCount") or 0))
            elif kind == _BROADCAST_ACK:
                ack_request[1](body.get("packet"))
            return
        pending = self._requests.get(request_id)  # type: ignore[arg-type]
        if pending is None:
            return
        if kind == _SERVER_SIDE_EMIT_RESPONSE:
            pending.results.append(body.get("packet"))
        elif kind == _FETCH_SOCKETS_RESPONSE:
            pending.results.extend(body.get("sockets") or ())
        else:
            return
        pending.add()

    def _cluster_encode(self, message: dict[str, Any]) -> bytes:
        # The sharded adapter's rule: JSON, unless the data holds binary (then msgpack).
        try:
            return self._orjson.dumps(message, option=self._orjson.OPT_NON_STR_KEYS)  # type: ignore[no-any-return]
        except TypeError:
            pass
        try:
            return self._packb(message, use_bin_type=True)  # type: ignore[no-any-return]
        except TypeError:
            return self._dumps(message)

    def _cluster_reply(self, ns: _Namespace, requester: Any, kind: int, body: dict[str, Any]) -> None:
        if not isinstance(requester, str):
            return  # the (unreleased) sharded emitter never waits for replies
        self._send(f"{self.key}#{ns.name}#{requester}#",
                   self._cluster_encode({"type": kind, "data": body, "uid": ns.uid, "nsp": ns.name}))

    def _on_request(self, ns: _Namespace, data: bytes) -> None:
        request = self._decode(data)
        if not isinstance(request, dict):
            return
        kind = request.get("type")
        request_id = request.get("requestId")
        uid = request.get("uid")
        if kind in (SOCKETS, ALL_ROOMS, REMOTE_FETCH):
            if request_id is None or request_id in self._requests:
                return
            if kind == ALL_ROOMS:
                self._respond(ns, {"requestId": request_id, "rooms": list(self._local_rooms(ns.name))})
            elif kind == SOCKETS:
                sids = self.room_table.select(ns.name, request.get("rooms") or None, None)
                self._respond(ns, {"requestId": request_id, "sockets": list(sids)})
            else:
                opts = request.get("opts") or {}
                socks = self.select_local(ns.name, opts.get("rooms") or None, opts.get("except") or None)
                self._respond(ns, {"requestId": request_id, "sockets": [self._socket_json(s) for s in socks]})
        elif kind in (REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT):
            if uid == ns.uid:
                return  # applied here when it was sent
            opts = request.get("opts")
            if isinstance(opts, dict):
                to, exclude = opts.get("rooms") or None, opts.get("except") or None
                if kind == REMOTE_DISCONNECT:
                    self._spawn(AsyncManager.disconnect_sockets(self, ns.name, to, exclude, BroadcastFlags(),
                                                                bool(request.get("close"))))
                else:
                    self._apply_rooms(ns.name, to, exclude, _room_list(request.get("rooms")), kind == REMOTE_JOIN)
                return
            sid = request.get("sid")  # the pre-8 form: one socket, answered by its server
            if isinstance(sid, str) and self.is_connected(sid, ns.name):
                if kind == REMOTE_DISCONNECT:
                    sock = self.get_socket(sid, ns.name)
                    if sock is not None and self.server is not None:
                        self._spawn(self.server.disconnect_socket(sock, bool(request.get("close"))))
                elif kind == REMOTE_JOIN:
                    self.enter_room_now(sid, ns.name, request.get("room"))
                else:
                    self.basic_leave_room(sid, ns.name, request.get("room"))
                if request_id is not None:
                    self._respond(ns, {"requestId": request_id})
        elif kind == SERVER_SIDE_EMIT:
            if uid == ns.uid or self.server is None:
                return
            args = request.get("data")
            if isinstance(args, list) and args:
                self._spawn(self._server_side_event(ns, args, request_id))
        elif kind == BROADCAST:
            if request_id is None or request_id in self._ack_requests:
                return
            self._broadcast_with_ack_request(ns, request)

    def _on_response(self, data: bytes) -> None:
        response = self._decode(data)
        if not isinstance(response, dict):
            return
        request_id = response.get("requestId")
        ack_request = self._ack_requests.get(request_id)  # type: ignore[arg-type]
        if ack_request is not None:
            kind = response.get("type")
            if kind == BROADCAST_CLIENT_COUNT:
                ack_request[0](int(response.get("clientCount") or 0))
            elif kind == BROADCAST_ACK:
                ack_request[1](response.get("packet"))
            return
        pending = self._requests.get(request_id)  # type: ignore[arg-type]
        if pending is None:
            return
        if pending.kind == SERVER_SIDE_EMIT:
            pending.results.append(response.get("data"))
        elif pending.kind == REMOTE_FETCH:
            pending.results.extend(response.get("sockets") or ())
        elif pending.kind == ALL_ROOMS:
            pending.results.extend(response.get("rooms") or ())
        pending.add()

    # -- answering the fleet -----------------------------------------------------------------------

    def _socket_json(self, sock: Socket) -> dict[str, Any]:
        return {"id": sock.sid, "handshake": handshake(sock),
                "rooms": list(self.room_table.rooms_of(sock.namespace, sock.sid)), "data": sock.data}

    def _dumps(self, obj: Any) -> bytes:
        return self._orjson.dumps(obj, default=_json_default,  # type: ignore[no-any-return]
                                  option=self._orjson.OPT_NON_STR_KEYS)

    def _respond(self, ns: _Namespace, body: dict[str, Any]) -> None:
        self._send(ns.response, self._dumps(body))

    def _apply_rooms(self, namespace: str, to: Any, exclude: Any, rooms: list[Any], join: bool) -> None:
        for sock in self.select_local(namespace, to, exclude):
            for room in rooms:
                if join:
                    self.enter_room_now(sock.sid, namespace, room)
                else:
                    self.basic_leave_room(sock.sid, namespace, room)

    async def _server_side_event(self, ns: _Namespace, args: list[Any], request_id: Any,
                                 requester: Any = None) -> None:
        result = await self.server.trigger_server_side_event(ns.name, args[0], list(args[1:]))
        if request_id is None:
            return
        if self.sharded:
            self._cluster_reply(ns, requester, _SERVER_SIDE_EMIT_RESPONSE, {"requestId": request_id,
                                                                             "packet": result})
        else:
            # Always on the shared response channel, as Node's adapter does.
            self._send(ns.response, self._dumps({"type": SERVER_SIDE_EMIT, "requestId": request_id,
                                                 "data": result}))

    def _broadcast_with_ack_request(self, ns: _Namespace, request: dict[str, Any], requester: Any = None) -> None:
        packet = request.get("packet") or {}
        opts = request.get("opts") or {}
        args = packet.get("data") if isinstance(packet, dict) else None
        if not isinstance(args, list) or not args:
            return
        request_id = request["requestId"]

        def on_answer(answer: Any) -> None:
            if self.sharded:
                self._cluster_reply(ns, requester, _BROADCAST_ACK, {"requestId": request_id, "packet": answer})
            else:
                self._send(ns.response, self._packb({"type": BROADCAST_ACK, "requestId": request_id,
                                                     "packet": answer}, use_bin_type=True))

        ack_id, n = self.broadcast_with_ack_local(ns.name, args, opts.get("rooms") or None,
                                                  opts.get("except") or None, BroadcastFlags(), on_answer)
        if self.sharded:
            self._cluster_reply(ns, requester, _BROADCAST_CLIENT_COUNT, {"requestId": request_id, "clientCount": n})
        else:
            self._respond(ns, {"type": BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": n})
        timeout = (opts.get("flags") or {}).get("timeout")
        if n:
            self._later(float(timeout) / 1000 if timeout else self.requests_timeout,
                        _forgetter(self, ack_id))

    # -- publishing: one bounded queue, one writer ---------------------------------------------------

    # What is logged when a batch fails (per attempt).
    _publish_failure = "publishing to Redis failed"

    def _send(self, channel: str, payload: Any, done: asyncio.Future[Any] | None = None) -> bool:
        return self._publish_queue.put(channel, payload, done)

    async def _publish(self, channel: str, payload: bytes) -> None:
        """Queue one message and wait until Redis took it; waits first while the queue is full."""
        await self.publish_room()
        done = asyncio.get_running_loop().create_future()
        self._send(channel, payload, done)
        await done

    def _send_batch(self, batch: list[tuple[Any, Any]]) -> Awaitable[Sequence[Any] | None]:
        # The queue's sender: looked up at each batch (the streams manager sends with XADD).
        return self._publish_batch(batch)

    async def _publish_batch(self, batch: list[tuple[Any, Any]]) -> Sequence[Any] | None:
        """Send one batch of ``(channel, payload)``: one (S)PUBLISH, or a pipeline of them."""
        if len(batch) == 1:
            channel, payload = batch[0]
            if self.sharded:
                await self.redis.spublish(channel, payload)
            else:
                await self.redis.publish(channel, payload)
            return None
        pipe = self.redis.pipeline(transaction=False)
        for channel, payload in batch:
            if self.sharded:
                pipe.spublish(channel, payload)
            else:
                pipe.publish(channel, payload)
        await pipe.execute()
        return None

    # -- the operators' calls ----------------------------------------------------------------------

    def _emit(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
              callback: Callable[..., Any] | None, ignore_queue: bool) -> int:
        """``sio.emit``: deliver here, then publish the broadcast (unless ``ignore_queue``)."""
        if isinstance(room, str) and self.is_connected(room, namespace):
            return self.emit_local(event, data, namespace, room, skip_sid, callback)
        if callback is not None and not ignore_queue:
            if isinstance(room, str) and not self.room_table.members(namespace, room):
                # Nobody here: the client (or room) is on another server of the fleet.
                self._emit_with_callback(self._join(namespace), event_args(event, data), room, callback)
                return 0
            # An acknowledgement from this process's clients only.
            return self.emit_local(event, data, namespace, room, skip_sid, callback)
        n = self.emit_local(event, data, namespace, room, skip_sid, callback)
        if ignore_queue:
            return n
        ns = self._join(namespace)
        to = _room_list(room)
        self._send(*self._broadcast_message(ns, event_args(event, data), to, _room_list(skip_sid),
                                            BroadcastFlags()))
        return n

    def _emit_with_callback(self, ns: _Namespace, args: list[Any], sid: str, callback: Callable[..., Any]) -> None:
        # A client of another server: a broadcast with an acknowledgement to its sid room, as
        # Node's RemoteSocket.emit with an ack; the first answer runs the callback (with the
        # answer's first argument, all that the protocol carries).
        request_id = secrets.token_hex(8)

        def on_answer(answer: Any) -> None:
            if self._ack_requests.pop(request_id, None) is not None:
                result = callback(answer)
                if asyncio.iscoroutine(result):
                    self._spawn(result)

        self._ack_requests[request_id] = (lambda n: None, on_answer)
        self._later(self.requests_timeout, partial(self._forget_request, request_id))
        self._send(*self._ack_broadcast_message(ns, args, [sid], [], request_id, {
            "timeout": int(self.requests_timeout * 1000), "expectSingleResponse": True}))

    def _broadcast_message(self, ns: _Namespace, args: list[Any], to: list[Any], exclude: list[Any],
                           flags: BroadcastFlags) -> tuple[str, bytes]:
        wire_flags: dict[str, Any] = {}
        if flags.volatile:
            wire_flags["volatile"] = True
        if not flags.compress:
            wire_flags["compress"] = False
        if self.sharded:
            channel = ns.main
            if len(to) == 1 and self._room_subscriptions:
                room = to[0]
                # Node's dynamic mode keeps what looks like a socket id (20 characters) on the
                # main channel; dynamic-private does not.
                if self.subscription_mode == "dynamic-private" or not (isinstance(room, str) and len(room) == 20):
                    channel = f"{ns.main}{room}#"
            return channel, self._cluster_encode({
                "type": _C_BROADCAST, "data": {"packet": {"type": _EVENT, "data": args},
                                               "opts": {"rooms": to, "except": exclude, "flags": wire_flags}},
                "uid": ns.uid, "nsp": ns.name})
        payload = self._packb([ns.uid, {"type": _EVENT, "data": args, "nsp": ns.name},
                               {"rooms": to, "except": exclude, "flags": wire_flags}], use_bin_type=True)
        channel = f"{ns.main}{to[0]}#" if len(to) == 1 else ns.main
        return channel, payload

    def _ack_broadcast_message(self, ns: _Namespace, args: list[Any], to: list[Any], exclude: list[Any],
                               request_id: str, flags: dict[str, Any]) -> tuple[str, bytes]:
        opts = {"rooms": to, "except": exclude, "flags": flags}
        if self.sharded:
            return ns.main, self._cluster_encode({
                "type": _C_BROADCAST, "data": {"packet": {"type": _EVENT, "data": args}, "opts": opts,
                                               "requestId": request_id},
                "uid": ns.uid, "nsp": ns.name})
        return ns.request, self._packb({"uid": ns.uid, "requestId": request_id, "type": BROADCAST,
                                        "packet": {"type": _EVENT, "data": args, "nsp": ns.name}, "opts": opts},
                                       use_bin_type=True)

    def _operation_message(self, ns: _Namespace, kind: int, to: Any, exclude: Any,
                           request_id: str | None = None, **fields: Any) -> tuple[str, bytes]:
        """A request of the classic kind ``kind`` (REMOTE_JOIN, ..., SERVER_SIDE_EMIT) in the
        fleet's protocol.  ``fields``: ``rooms`` (join/leave), ``close`` (disconnect), ``args``
        (server-side emit)."""
        if self.sharded:
            data: dict[str, Any] = {}
            if kind != SERVER_SIDE_EMIT:
                data["opts"] = {"rooms": _room_list(to), "except": _room_list(exclude), "flags": {}}
            if "rooms" in fields:
                data["rooms"] = fields["rooms"]
            if "close" in fields:
                data["close"] = fields["close"]
            if "args" in fields:
                data["packet"] = fields["args"]
            if request_id is not None:
                data["requestId"] = request_id
            return ns.main, self._cluster_encode({"type": _CLUSTER_TYPE[kind], "data": data, "uid": ns.uid,
                                                  "nsp": ns.name})
        body: dict[str, Any] = {"uid": ns.uid}
        if request_id is not None:
            body["requestId"] = request_id
        body["type"] = kind
        if kind not in (SERVER_SIDE_EMIT, ALL_ROOMS):
            body["opts"] = {"rooms": _room_list(to), "except": _room_list(exclude)}
        if "rooms" in fields:
            body["rooms"] = fields["rooms"]
        if "close" in fields:
            body["close"] = fields["close"]
        if "args" in fields:
            body["data"] = fields["args"]
        return ns.request, self._dumps(body)

    async def broadcast(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags) -> None:
        """Deliver here and queue for the fleet (``flags.local``: here only); waits while the
        publish queue is full, not for Redis (as Node's adapter does not)."""
        self.broadcast_local(namespace, args, to, exclude, flags)
        if flags.local:
            return
        message = self._broadcast_message(self._join(namespace), args, _room_list(to), _room_list(exclude), flags)
        await self.publish_room()
        self._send(*message)

    async def server_count(self) -> int:
        """How many servers of the fleet listen on ``/``, this one included (PUBSUB NUMSUB of
        its request channel; SHARDNUMSUB of its main channel when sharded)."""
        return await self._count(self._join("/"))

    async def _count(self, ns: _Namespace) -> int:
        if self.sharded:
            reply = await self.redis.pubsub_shardnumsub(ns.main)
        else:
            reply = await self.redis.pubsub_numsub(ns.request)
        return int(reply[0][1]) if reply else 0

    async def _ask(self, ns: _Namespace, kind: int, expected: int, timeout: float | None, to: Any = None,
                   exclude: Any = None, **fields: Any) -> _Request:
        """Publish a request and wait for ``expected`` replies (``asyncio.TimeoutError`` after
        ``timeout``, default ``requests_timeout``; the replies so far stay in ``results``)."""
        request_id = secrets.token_hex(8)
        pending = _Request(kind, expected, [])
        self._requests[request_id] = pending
        try:
            await self._publish(*self._operation_message(ns, kind, to, exclude, request_id, **fields))
            await asyncio.wait_for(asyncio.shield(pending.done), timeout or self.requests_timeout)
        finally:
            del self._requests[request_id]
        return pending

    async def fetch_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                            flags: BroadcastFlags) -> list[RemoteSocket]:
        """The selected sockets of every server of the fleet (``flags.local``: of this one);
        ``asyncio.TimeoutError`` when a server does not answer in time."""
        local = await super().fetch_sockets(namespace, to, exclude, flags)
        if flags.local:
            return local
        ns = self._join(namespace)
        servers = await self._count(ns)
        if servers <= 1:
            return local
        try:
            pending = await self._ask(ns, REMOTE_FETCH, servers - 1, flags.timeout, to, exclude)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError("timeout reached while waiting for fetch_sockets response") from None
        for remote in pending.results:
            if isinstance(remote, dict) and isinstance(remote.get("id"), str):
                local.append(RemoteSocket(self.server, remote["id"], namespace, set(remote.get("rooms") or ()),
                                          remote.get("data") or {}, remote.get("handshake") or {}))
        return local

    def _local_rooms(self, namespace: str) -> set[Any]:
        rooms: set[Any] = set(self.room_table.room_names(namespace))
        rooms.update((self.sockets.get(namespace) or {}).keys())
        rooms.discard(None)
        return rooms

    async def all_rooms(self, namespace: str = "/", timeout: float | None = None) -> set[Any]:
        """The names of the rooms with members on any server of the fleet, socket ids included
        (Node's ``io.of(nsp).adapter.allRooms()``, the ``ALL_ROOMS`` request of the classic
        adapter); ``asyncio.TimeoutError`` when a server does not answer within ``timeout``
        (default ``requests_timeout``).  The sharded adapter has no such request:
        ``NotImplementedError`` when ``sharded``."""
        if self.sharded:
            raise NotImplementedError("the sharded Redis adapter has no allRooms request")
        rooms = self._local_rooms(namespace)
        ns = self._join(namespace)
        servers = await self._count(ns)
        if servers <= 1:
            return rooms
        try:
            pending = await self._ask(ns, ALL_ROOMS, servers - 1, timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError("timeout reached while waiting for allRooms response") from None
        rooms.update(room for room in pending.results if isinstance(room, (str, int)))
        return rooms

    async def add_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """The selected sockets of every server join ``rooms`` (applied here, then published)."""
        self._apply_rooms(namespace, to, exclude, rooms, True)
        if not flags.local:
            await self._publish(*self._operation_message(self._join(namespace), REMOTE_JOIN, to, exclude,
                                                         rooms=list(rooms)))

    async def del_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """The selected sockets of every server leave ``rooms`` (applied here, then published)."""
        self._apply_rooms(namespace, to, exclude, rooms, False)
        if not flags.local:
            await self._publish(*self._operation_message(self._join(namespace), REMOTE_LEAVE, to, exclude,
                                                         rooms=list(rooms)))

    async def disconnect_sockets(self, namespace: str, to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags, close: bool) -> None:
        """The selected sockets of every server are disconnected (published, then here)."""
        if not flags.local:
            await self._publish(*self._operation_message(self._join(namespace), REMOTE_DISCONNECT, to, exclude,
                                                         close=close))
        await super().disconnect_sockets(namespace, to, exclude, flags, close)

    async def server_side_emit(self, namespace: str, args: list[Any]) -> None:
        """The event ``args`` goes to the other servers' server-side handlers."""
        await self._publish(*self._operation_message(self._join(namespace), SERVER_SIDE_EMIT, None, None,
                                                     args=args))

    async def server_side_emit_with_ack(self, namespace: str, args: list[Any], timeout: float | None) -> list[Any]:
        """``server_side_emit`` that returns each other server's answer; raises
        ``BroadcastTimeoutError`` (with the answers received) when one is missing at the timeout."""
        ns = self._join(namespace)
        servers = await self._count(ns)
        if servers <= 1:
            return []
        request_id = secrets.token_hex(8)
        pending = _Request(SERVER_SIDE_EMIT, servers - 1, [])
        self._requests[request_id] = pending
        try:
            await self._publish(*self._operation_message(ns, SERVER_SIDE_EMIT, None, None, request_id, args=args))
            await asyncio.wait_for(asyncio.shield(pending.done), timeout or self.requests_timeout)
        except asyncio.TimeoutError:
            raise BroadcastTimeoutError(list(pending.results)) from None
        finally:
            del self._requests[request_id]
        return list(pending.results)

    async def broadcast_with_ack(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags,
                                 client_count: Callable[[int], None], on_answer: Callable[[Any], None]) -> int:
        """Deliver with one shared acknowledgement id here and ask every other server (a
        broadcast with a requestId): each reports its client count and forwards its clients'
        answers."""
        ack_id = await super().broadcast_with_ack(namespace, args, to, exclude, flags, client_count, on_answer)
        if flags.local:
            return ack_id
        ns = self._join(namespace)
        request_id = secrets.token_hex(8)
        self._ack_requests[request_id] = (client_count, on_answer)
        self._ack_request_of[ack_id] = request_id
        timeout = flags.timeout if flags.timeout is not None else self.requests_timeout
        await self._publish(*self._ack_broadcast_message(ns, args, _room_list(to), _room_list(exclude), request_id,
                                                         {"timeout": int(timeout * 1000)}))
        return ack_id

    def forget_broadcast_ack(self, ack_id: int) -> None:
        """Stop waiting for the answers to broadcast ``ack_id``, here and from the fleet."""
        super().forget_broadcast_ack(ack_id)
        request_id = self._ack_request_of.pop(ack_id, None)
        if request_id is not None:
            self._ack_requests.pop(request_id, None)

    # -- helpers -----------------------------------------------------------------------------------

    def _forget_request(self, request_id: str) -> None:
        self._ack_requests.pop(request_id, None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(self._check_hook)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.discard(timer)
            callback()
        timer = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(timer)


def _forgetter(manager: AsyncManager, ack_id: int) -> Callable[[], None]:
    """A callback that stops waiting for the answers to broadcast ``ack_id``."""
    return lambda: AsyncManager.forget_broadcast_ack(manager, ack_id)
