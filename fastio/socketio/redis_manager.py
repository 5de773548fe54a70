"""A client manager for several server processes: they share emits, rooms and acks over Redis.

Each process keeps its own clients in the compiled room table.  An emit is delivered to the local
recipients at once and published on a Redis channel; every other process delivers it to its own
recipients of the same rooms.  Room changes, disconnects and acknowledgements for a client of
another process travel the same way.  The messages are python-socketio's (JSON, the same
fields), so fastio and python-socketio processes can share a channel, and python-socketio's
``AsyncRedisManager(url, write_only=True)`` / ``RedisManager`` can emit to fastio's clients from
a worker process.  ``redis`` (redis-py with asyncio) is needed only when this manager is used:
``pip install redis``.

    mgr = fastio.AsyncRedisManager("redis://127.0.0.1:6379/0")
    sio = fastio.AsyncServer(client_manager=mgr)
"""
from __future__ import annotations

import asyncio
import base64
import collections
import logging
import uuid
from typing import Any, Callable

from fastio.socketio.manager import AsyncManager

__all__ = ["AsyncRedisManager"]

logger = logging.getLogger("fastio.socketio")


class _OrjsonCodec:
    """JSON for the pub/sub messages with orjson, which encodes what fastio's packets encode
    (datetimes, dataclasses, non-string keys), so data that reaches local clients also crosses."""

    def __init__(self) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._option = orjson.OPT_NON_STR_KEYS
        self.loads = orjson.loads

    def dumps(self, obj: Any) -> bytes:
        return self._dumps(obj, option=self._option)


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


def _pack(args: list[Any]) -> tuple[list[Any], bool]:
    """python-socketio's form of arguments with binary values: [deconstructed, *base64]."""
    if not _has_binary(args):
        return args, False
    attachments: list[bytes] = []
    return [_deconstruct(args, attachments), *[base64.b64encode(a).decode("ascii") for a in attachments]], True


def _unpack(data: Any, binary: Any) -> Any:
    if binary and isinstance(data, list) and data:
        return _reconstruct(data[0], [base64.b64decode(a) for a in data[1:]])
    return data


class AsyncRedisManager(AsyncManager):
    """python-socketio's ``AsyncRedisManager``: its name, arguments and pub/sub messages.

    :param url: the Redis URL.
    :param channel: the pub/sub channel shared by the cooperating processes.
    :param write_only: publish only (an emitter outside the server processes).
    :param json: a module with ``dumps``/``loads`` for the pub/sub messages (default: orjson).
    :param redis_options: extra keyword arguments for ``redis.asyncio.Redis.from_url``.
    """

    name = "aioredis"

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: Any = None, json: Any = None,
                 redis_options: dict[str, Any] | None = None) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("AsyncRedisManager needs the redis package: pip install redis") from exc
        super().__init__()
        self.url = url
        self.channel = channel
        self.write_only = write_only
        self.json = json if json is not None else _OrjsonCodec()
        self.host_id = uuid.uuid4().hex
        self._redis = aioredis.Redis.from_url(url, **(redis_options or {}))
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Published in order by one writer task.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        # Acknowledgements expected from clients of other processes: sid -> {ack id: callback}.
        self._remote_acks: dict[str, dict[int, Callable[..., Any]]] = {}
        self._remote_ack_id = 0

    def initialize(self) -> None:
        """Start listening (called once before the first client connects)."""
        super().initialize()
        if not self.write_only and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def ready(self) -> None:
        """Wait until this process receives what others publish (useful at start-up and in tests)."""
        if self._listener is None:
            self.initialize()
        await self._subscribed.wait()

    # -- what the server calls --------------------------------------------------------------------

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                 ignore_queue: bool = False) -> int:
        """Deliver locally, then publish for the other processes (unless ``ignore_queue``)."""
        if ignore_queue or (callback is not None and isinstance(room, str) and self.is_connected(room, namespace)):
            # This process's clients only; or a client of this process, whose ack comes back here.
            return super().emit_now(event, data, namespace, room, skip_sid, callback)
        remote_callback = None
        if callback is not None:
            if room is None or _is_many(room):
                raise ValueError("Cannot use callback without a single room (sid) set.")
            remote_callback = [room, namespace, self._remote_ack_id + 1]
        args, binary = _pack(list(data) if isinstance(data, tuple) else [data])
        # Encoded before anything is delivered, so data that cannot cross fails as a whole.
        payload = self._encode_message({
            "method": "emit", "event": event, "data": args, "binary": binary, "namespace": namespace,
            "room": list(room) if _is_many(room) else room,
            "skip_sid": list(skip_sid) if _is_many(skip_sid) else skip_sid,
            "callback": remote_callback})
        n = super().emit_now(event, data, namespace, room, skip_sid, callback)
        if callback is not None:
            self._remote_ack_id += 1
            self._remote_acks.setdefault(room, {})[self._remote_ack_id] = callback
        self._send(payload)
        return n

    def discard_callback(self, sid: str, namespace: str, callback: Callable[..., Any]) -> None:
        """Forget ``callback`` (an acknowledgement that will not be waited for any more)."""
        super().discard_callback(sid, namespace, callback)
        acks = self._remote_acks.get(sid)
        if acks:
            for ack_id, cb in list(acks.items()):
                if cb is callback:
                    del acks[ack_id]
            if not acks:
                del self._remote_acks[sid]

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """Emit an event, here and in every other process (also usable without a server)."""
        self.emit_now(event, data, namespace or "/", to if to is not None else room, skip_sid, callback,
                      bool(kwargs.get("ignore_queue")))

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """True for a client of this process; for another process's client, ask it to disconnect."""
        if self.is_connected(sid, namespace):
            return True
        self._publish({"method": "disconnect", "sid": sid, "namespace": namespace or "/"})
        return False

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            self.enter_room_now(sid, namespace, room)
        else:
            self._publish({"method": "enter_room", "sid": sid, "room": room, "namespace": namespace or "/"})

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove ``sid`` from ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            await super().leave_room(sid, namespace, room)
        else:
            self._publish({"method": "leave_room", "sid": sid, "room": room, "namespace": namespace or "/"})

    async def close_room(self, room: Any, namespace: str) -> None:
        """Empty ``room`` in every process."""
        await super().close_room(room, namespace)
        self._publish({"method": "close_room", "room": room, "namespace": namespace or "/"})

    # -- publishing -------------------------------------------------------------------------------

    def _publish(self, message: dict[str, Any]) -> None:
        self._send(self._encode_message(message))

    def _encode_message(self, message: dict[str, Any]) -> bytes:
        message.setdefault("host_id", self.host_id)
        try:
            payload = self.json.dumps(message)
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise TypeError("data published to other processes must be JSON-serializable: %s" % exc) from None
        return payload.encode() if isinstance(payload, str) else payload

    def _send(self, payload: bytes) -> None:
        self._outbox.append(payload)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_outbox())

    async def _write_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            payload = outbox.popleft()
            try:
                await self._redis.publish(self.channel, payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("publishing to Redis failed")

    # -- receiving --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._handle(message["data"])
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:
                logger.exception("Redis pub/sub failed; reconnecting in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _handle(self, raw: bytes) -> None:
        try:
            message = self.json.loads(raw)
        except Exception:
            logger.warning("ignoring an unreadable pub/sub message")
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        try:
            if method == "callback":
                if message.get("host_id") == self.host_id:
                    self._handle_callback(message)
            elif message.get("host_id") == self.host_id:
                return
            elif method == "emit":
                self._handle_emit(message)
            elif method == "disconnect":
                if self.server is not None:
                    await self.server.disconnect(message.get("sid"), message.get("namespace") or "/",
                                                 ignore_queue=True)
            elif method == "enter_room":
                sid, ns = message.get("sid"), message.get("namespace") or "/"
                if isinstance(sid, str) and self.is_connected(sid, ns):
                    self.enter_room_now(sid, ns, message.get("room"))
            elif method == "leave_room":
                sid, ns = message.get("sid"), message.get("namespace") or "/"
                if isinstance(sid, str) and self.is_connected(sid, ns):
                    await AsyncManager.leave_room(self, sid, ns, message.get("room"))
            elif method == "close_room":
                await AsyncManager.close_room(self, message.get("room"), message.get("namespace") or "/")
        except Exception:
            logger.exception("handling a pub/sub %r message failed", method)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        data = _unpack(message.get("data"), message.get("binary"))
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        callback = None
        remote = message.get("callback")
        if isinstance(remote, list) and len(remote) == 3:
            origin = message.get("host_id")
            sid, namespace, ack_id = remote

            def callback(*args: Any) -> None:
                # Binary arguments use the emit's form and a "binary" flag (python-socketio
                # itself cannot send them in an acknowledgement between processes).
                packed, binary = _pack(list(args))
                message = {"method": "callback", "host_id": origin, "sid": sid,
                           "namespace": namespace, "id": ack_id, "args": packed}
                if binary:
                    message["binary"] = True
                self._publish(message)

        skip_sid = message.get("skip_sid")
        self.emit_now(message["event"], data, message.get("namespace") or "/", message.get("room"),
                      tuple(skip_sid) if isinstance(skip_sid, list) else skip_sid, callback, ignore_queue=True)

    def _handle_callback(self, message: dict[str, Any]) -> None:
        acks = self._remote_acks.get(message.get("sid"))  # type: ignore[arg-type]
        cb = acks.pop(message.get("id"), None) if acks else None  # type: ignore[arg-type]
        if acks is not None and not acks:
            self._remote_acks.pop(message.get("sid"), None)  # type: ignore[arg-type]
        if cb is not None:
            cb(*(_unpack(message.get("args") or [], message.get("binary"))))

    async def aclose(self) -> None:
        """Publish what is queued, stop listening and close the Redis connection."""
        if self._writer is not None and not self._writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
            except (asyncio.TimeoutError, Exception):
                pass
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        await self._redis.aclose()
