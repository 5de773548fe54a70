"""A client manager for several fastio processes: emits travel between them over Redis pub/sub.

Each process keeps its own clients in the compiled room table.  An emit is delivered to the local
recipients at once and published on a Redis channel; every other process delivers it to its own
recipients of the same rooms.  ``redis`` (redis-py with asyncio) is needed only when this manager
is used: ``pip install redis``.

    mgr = fastio.AsyncRedisManager("redis://127.0.0.1:6379/0")
    sio = fastio.AsyncServer(client_manager=mgr)

Acknowledgement callbacks reach only clients of the emitting process, as the callback lives there.
"""
from __future__ import annotations

import asyncio
import logging
import pickle
import uuid
from typing import Any, Callable

from fastio.manager import AsyncManager

__all__ = ["AsyncRedisManager"]

logger = logging.getLogger("fastio.server")


class AsyncRedisManager(AsyncManager):
    """python-socketio's ``AsyncRedisManager`` name and arguments, for fastio processes.

    :param url: the Redis URL.
    :param channel: the pub/sub channel shared by the cooperating processes.
    :param write_only: publish only (an emitter outside the server processes).
    :param redis_options: extra keyword arguments for ``redis.asyncio.Redis.from_url``.
    """

    name = "aioredis"

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: Any = None,
                 redis_options: dict[str, Any] | None = None) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("AsyncRedisManager needs the redis package: pip install redis") from exc
        super().__init__()
        self.url = url
        self.channel = channel
        self.write_only = write_only
        self.host_id = uuid.uuid4().hex
        self._redis = aioredis.Redis.from_url(url, **(redis_options or {}))
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

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

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None) -> int:
        """Deliver locally, then publish for the other processes."""
        n = super().emit_now(event, data, namespace, room, skip_sid, callback)
        self._publish({"method": "emit", "event": event, "data": data, "namespace": namespace,
                       "room": room, "skip_sid": skip_sid})
        return n

    async def close_room(self, room: Any, namespace: str) -> None:
        """Empty ``room`` in every process."""
        await super().close_room(room, namespace)
        self._publish({"method": "close_room", "room": room, "namespace": namespace})

    def _publish(self, message: dict[str, Any]) -> None:
        message["host_id"] = self.host_id
        payload = pickle.dumps(message)
        task = asyncio.get_running_loop().create_task(self._redis.publish(self.channel, payload))
        task.add_done_callback(_log_failure)

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
                        self._handle(message["data"])
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:
                logger.exception("Redis pub/sub failed; reconnecting in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _handle(self, raw: bytes) -> None:
        try:
            # Only processes sharing the Redis channel publish here (as python-socketio trusts it).
            message = pickle.loads(raw)
        except Exception:
            logger.warning("ignoring an unreadable pub/sub message")
            return
        if not isinstance(message, dict) or message.get("host_id") == self.host_id:
            return
        method = message.get("method")
        if method == "emit":
            AsyncManager.emit_now(self, message["event"], message["data"], message["namespace"],
                                  message["room"], message["skip_sid"])
        elif method == "close_room":
            self.rooms.close_room(message["namespace"], message["room"])

    async def aclose(self) -> None:
        """Stop listening and close the Redis connection."""
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        await self._redis.aclose()


def _log_failure(task: "asyncio.Task[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("publishing to Redis failed", exc_info=task.exception())
