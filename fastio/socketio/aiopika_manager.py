"""A client manager for several server processes joined by RabbitMQ (or another AMQP broker).

python-socketio's ``AsyncAioPikaManager``: the same name, arguments, exchange and messages.  The
channel name is a fanout exchange; each listening process binds its own exclusive-by-use queue
(non-durable, expiring 5 minutes after its consumer went away) to it, and every message is a JSON
body as python-socketio publishes it, so fastio and python-socketio processes share an exchange.
Needs ``pip install aio-pika``.

    mgr = fastio.AsyncAioPikaManager("amqp://guest:guest@127.0.0.1:5672//")
    sio = fastio.AsyncServer(client_manager=mgr)
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from fastio.socketio.pubsub_manager import AsyncPubSubManager

__all__ = ["AsyncAioPikaManager"]


def _aio_pika() -> Any:
    try:
        import aio_pika
    except ImportError:
        raise RuntimeError('aio_pika package is not installed (Run "pip install aio_pika" in your virtualenv).') \
            from None
    return aio_pika


class AsyncAioPikaManager(AsyncPubSubManager):
    """python-socketio's ``AsyncAioPikaManager`` on fastio's compiled fan-out.

    :param url: the AMQP URL, e.g. ``'amqp://guest:guest@localhost:5672//'``.
    :param channel: the name of the fanout exchange shared by the cooperating processes.
    :param write_only: publish only (an emitter outside the server processes).
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param json: a module with ``dumps``/``loads`` for the messages (default: orjson).
    :param queue_size, requests_timeout, heartbeat_interval, heartbeat_timeout: as for
        ``AsyncPubSubManager`` (the bounded publish queue, requests to the other fastio
        processes and how they know each other).
    """

    name = "asyncaiopika"
    _signals_subscription = True

    def __init__(self, url: str = "amqp://guest:guest@localhost:5672//", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json: Any = None, *,
                 queue_size: int = 1024, requests_timeout: float = 5.0, heartbeat_interval: float = 5.0,
                 heartbeat_timeout: float = 10.0) -> None:
        self._pika = _aio_pika()
        super().__init__(channel=channel, write_only=write_only, logger=logger, json=json, queue_size=queue_size,
                         requests_timeout=requests_timeout, heartbeat_interval=heartbeat_interval,
                         heartbeat_timeout=heartbeat_timeout)
        self.url = url
        self._lock = asyncio.Lock()
        self.publisher_connection: Any = None
        self.publisher_channel: Any = None
        self.publisher_exchange: Any = None
        self._listener_connection: Any = None

    async def _connection(self) -> Any:
        return await self._pika.connect_robust(self.url)

    async def _channel(self, connection: Any) -> Any:
        return await connection.channel()

    async def _exchange(self, channel: Any) -> Any:
        return await channel.declare_exchange(self.channel, self._pika.ExchangeType.FANOUT)

    async def _queue(self, channel: Any, exchange: Any) -> Any:
        queue = await channel.declare_queue(durable=False, arguments={"x-expires": 300000})
        await queue.bind(exchange)
        return queue

    async def _publish(self, data: dict[str, Any]) -> None:
        await self._publish_encoded(data, self._encode_message(data))

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        pika = self._pika
        for attempt in (1, 2):
            try:
                if self.publisher_exchange is None:
                    async with self._lock:
                        if self.publisher_exchange is None:
                            if self.publisher_connection is None:
                                self.publisher_connection = await self._connection()
                            self.publisher_channel = await self._channel(self.publisher_connection)
                            self.publisher_exchange = await self._exchange(self.publisher_channel)
                await self.publisher_exchange.publish(
                    pika.Message(body=payload, delivery_mode=pika.DeliveryMode.PERSISTENT), routing_key="*")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.publisher_exchange = None
                if attempt == 2:
                    self._get_logger().error("Cannot publish to rabbitmq... giving up: %s", exc)
                    raise
                self._get_logger().error("Cannot publish to rabbitmq... retrying: %s", exc)

    async def _listen(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        retry = 1.0
        while True:
            try:
                connection = self._listener_connection = await self._connection()
                async with connection:
                    channel = await self._channel(connection)
                    await channel.set_qos(prefetch_count=1)
                    exchange = await self._exchange(channel)
                    queue = await self._queue(channel, exchange)
                    async with queue.iterator() as messages:
                        self._set_subscribed()
                        async for message in messages:
                            async with message.process():
                                yield message.body
                            retry = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._get_logger().error("Cannot receive from rabbitmq... retrying in %.0f s: %s", retry, exc)
                await asyncio.sleep(retry)
                retry = min(retry * 2, 60.0)
            finally:
                self._listener_connection = None

    async def _close_backend(self) -> None:
        connection, self.publisher_connection = self.publisher_connection, None
        self.publisher_channel = self.publisher_exchange = None
        if connection is not None:
            await connection.close()
