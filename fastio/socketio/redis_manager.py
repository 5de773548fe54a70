"""A client manager for several server processes: they share emits, rooms and acks over Redis
(or Valkey) pub/sub.

Built on ``AsyncPubSubManager`` (see fastio/socketio/pubsub_manager.py).  The messages are python-socketio's (JSON, the same
fields), so fastio and python-socketio processes can share a channel, and python-socketio's
``AsyncRedisManager(url, write_only=True)`` / ``RedisManager`` can emit to fastio's clients from
a worker process.  ``redis`` (redis-py with asyncio) is needed only when this manager is used:
``pip install redis`` (``pip install valkey`` for ``valkey://`` URLs).

    mgr = fastio.AsyncRedisManager("redis://127.0.0.1:6379/0")
    sio = fastio.AsyncServer(client_manager=mgr)
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator
from urllib.parse import urlparse

from fastio.base.util import close_after_loss
from fastio.socketio.pubsub_manager import AsyncPubSubManager

__all__ = ["AsyncRedisManager", "parse_redis_sentinel_url"]


def parse_redis_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str | None, dict[str, Any]]:
    """Split ``redis+sentinel://[user:password@]host1:port1,host2:port2/db/service_name``
    into (sentinels, service name, connection keyword arguments), as python-socketio does."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis+sentinel", "valkey+sentinel"):
        raise ValueError("Invalid Redis Sentinel URL")
    sentinels = []
    for host_port in parsed.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        sentinels.append((host, int(port)))
    kwargs: dict[str, Any] = {}
    if parsed.username:
        kwargs["username"] = parsed.username
    if parsed.password:
        kwargs["password"] = parsed.password
    service_name = None
    parts = parsed.path.split("/") if parsed.path else []
    if len(parts) >= 2 and parts[1]:
        kwargs["db"] = int(parts[1])
    if len(parts) >= 3 and parts[2]:
        service_name = parts[2]
    return sentinels, service_name, kwargs


def _client_module(url: str) -> Any:
    """redis.asyncio or valkey.asyncio, by the URL's scheme (python-socketio's rule)."""
    scheme = urlparse(url).scheme.split("+", 1)[0].lower()
    if scheme in ("valkey", "valkeys"):
        try:
            from valkey import asyncio as aiovalkey
        except ImportError:
            raise RuntimeError('Valkey package is not installed (Run "pip install valkey" in your virtualenv).') \
                from None
        return aiovalkey
    if scheme in ("redis", "rediss", "unix"):
        try:
            from redis import asyncio as aioredis
        except ImportError:
            if scheme == "unix":
                try:
                    from valkey import asyncio as aiovalkey
                    return aiovalkey
                except ImportError:
                    pass
            raise RuntimeError('Redis package is not installed (Run "pip install redis" in your virtualenv).') \
                from None
        return aioredis
    raise ValueError("Unsupported Redis URL scheme: %s" % scheme)


class AsyncRedisManager(AsyncPubSubManager):
    """python-socketio's ``AsyncRedisManager``: its name, arguments and pub/sub messages.

    :param url: the Redis URL: ``redis://``, ``rediss://`` (TLS), ``unix://``,
                ``redis+sentinel://user:pw@host1:26379,host2:26379/0/service`` (Sentinel), or
                ``valkey://``, ``valkeys://``, ``valkey+sentinel://`` (with the ``valkey`` package).
    :param channel: the pub/sub channel shared by the cooperating processes.
    :param write_only: publish only (an emitter outside the server processes).
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param json: a module with ``dumps``/``loads`` for the pub/sub messages (default: orjson).
    :param redis_options: extra keyword arguments for ``Redis.from_url()`` or ``Sentinel()``
                          (a dict given in ``json``'s place, as older python-socketio versions'
                          fifth argument, is taken as this).
    :param queue_size: the most messages waiting to be published (1024): emits and operators
                       wait while it is full; paths that cannot wait drop (``dropped``).
    :param requests_timeout: seconds to wait for the other fastio processes' replies (5 s).
    :param heartbeat_interval: seconds between heartbeats to the other fastio processes (5 s).
    :param heartbeat_timeout: seconds after which a silent fastio process is not waited for (10 s).

    The listener reconnects after a lost connection (backoff 0.1 s doubling up to 5 s) and
    subscribes again; what was published meanwhile does not reach this process.  Queued
    messages are sent in batches of up to 256 per round trip (a pipeline).
    """

    name = "aioredis"
    _signals_subscription = True
    # Queued messages go in one pipeline, unless a subclass publishes its own way.
    _pipelined = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_publish" in cls.__dict__ or "_publish_encoded" in cls.__dict__:
            cls._pipelined = False

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json: Any = None,
                 redis_options: dict[str, Any] | None = None, *, queue_size: int = 1024,
                 requests_timeout: float = 5.0, heartbeat_interval: float = 5.0,
                 heartbeat_timeout: float = 10.0) -> None:
        if isinstance(json, dict) and redis_options is None:
            # python-socketio before ``json=`` existed: (url, channel, write_only, logger, redis_options)
            json, redis_options = None, json
        self._module = _client_module(url)
        super().__init__(channel=channel, write_only=write_only, logger=logger, json=json, queue_size=queue_size,
                         requests_timeout=requests_timeout, heartbeat_interval=heartbeat_interval,
                         heartbeat_timeout=heartbeat_timeout)
        self.redis_url = url
        self.url = url
        self.redis_options = dict(redis_options or {})
        self.redis: Any = self._connect()
        self.connected = True

    def _connect(self) -> Any:
        parsed = urlparse(self.redis_url)
        if parsed.scheme in ("redis+sentinel", "valkey+sentinel"):
            sentinels, service_name, connection_kwargs = parse_redis_sentinel_url(self.redis_url)
            kwargs = dict(self.redis_options)
            kwargs.update(connection_kwargs)
            sentinel = self._module.sentinel.Sentinel(sentinels, **kwargs)
            return sentinel.master_for(service_name or self.channel)
        return self._module.Redis.from_url(self.redis_url, **self.redis_options)

    async def _publish(self, data: dict[str, Any]) -> None:
        await self._publish_encoded(data, self._encode_message(data))

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        for attempt in (1, 2):
            try:
                await self.redis.publish(self.channel, payload)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 2:
                    self._get_logger().error("Cannot publish to redis... giving up: %s", exc)
                    raise
                self._get_logger().error("Cannot publish to redis... retrying: %s", exc)

    async def _publish_batch(self, batch: list[tuple[dict[str, Any], bytes]]) -> list[BaseException | None]:
        """One PUBLISH, or a pipeline of them for several messages; tried twice (redis-py
        reconnects on the next command); a batch that fails twice is lost (logged)."""
        if not self._pipelined:
            return await self._publish_each(batch)  # a subclass's own publishing
        if len(batch) == 1:
            try:
                await self._publish_encoded(*batch[0])
                return [None]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return [exc]
        for attempt in (1, 2):
            try:
                pipe = self.redis.pipeline(transaction=False)
                for _, payload in batch:
                    pipe.publish(self.channel, payload)
                await pipe.execute()
                return [None] * len(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 2:
                    self._get_logger().error("Cannot publish to redis... giving up %d message(s): %s",
                                             len(batch), exc)
                    return [exc] * len(batch)
                self._get_logger().error("Cannot publish to redis... retrying: %s", exc)
        return [None] * len(batch)  # not reached

    async def _listen(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set_subscribed()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield message["data"]
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as exc:
                self._set_unsubscribed()
                self._get_logger().error("Cannot receive from redis... retrying in %.1f s: %s", backoff, exc)
                backoff = await close_after_loss(pubsub, backoff)

    async def _close_backend(self) -> None:
        await self.redis.aclose()
