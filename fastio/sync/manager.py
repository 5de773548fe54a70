"""python-socketio's client managers for the sync server: ``Manager``, ``RedisManager``,
``KombuManager``.

Each is a facade over the asyncio manager that does the work on the server's event loop (the
in-memory ``AsyncManager``, ``AsyncRedisManager``, or the kombu backend below); its methods may
be called from any thread.  A write-only manager (``RedisManager(url, write_only=True)``) used
outside a server, by a Celery worker or a script, runs its own event loop thread, so
``mgr.emit(...)`` works there too and returns once the message is published.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import uuid
from typing import Any, AsyncIterator, Callable

from fastio.socketio.manager import AsyncManager
from fastio.socketio.pubsub_manager import AsyncPubSubManager
from fastio.socketio.redis_manager import AsyncRedisManager
from fastio.sync.loop import LoopThread

__all__ = ["Manager", "RedisManager", "KombuManager"]


class Manager:
    """The in-memory client manager of a sync ``Server`` (python-socketio's ``socketio.Manager``).

    Reads (``get_participants``, ``get_rooms``, ``rooms``, ...) go to the asyncio manager
    (``async_manager``) directly; ``emit``, ``enter_room``, ``leave_room``, ``close_room`` and
    ``disconnect`` run on the event loop and wait for it.
    """

    def __init__(self) -> None:
        self.async_manager: AsyncManager = self.create_async_manager()
        self.runner: LoopThread | None = None

    def create_async_manager(self) -> AsyncManager:
        """The asyncio manager doing the work (subclasses return theirs)."""
        return AsyncManager()

    def bind(self, runner: LoopThread) -> None:
        """Run on ``runner``'s loop (the sync server calls this with its own)."""
        self.runner = runner

    def _runner(self) -> LoopThread:
        if self.runner is None:
            self.runner = LoopThread("fastio-manager")
        return self.runner

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._runner().call(functools.partial(method, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        if name == "async_manager":  # not set yet: during __init__
            raise AttributeError(name)
        return getattr(self.async_manager, name)

    def ready(self, timeout: float | None = None) -> None:
        """Block until this process receives what other processes publish (a pub/sub manager;
        at once for the in-memory one and for a write-only emitter)."""
        wait = getattr(self.async_manager, "ready", None)
        if wait is not None:
            self._runner().call(wait, timeout=timeout)

    def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
             skip_sid: Any = None, callback: Callable[..., Any] | None = None, to: Any = None,
             **kwargs: Any) -> None:
        """Emit an event (to every process, with a pub/sub manager); returns once it is sent
        (published, for a pub/sub manager)."""
        self._call(self.async_manager.emit, event, data, namespace=namespace, room=room,
                   skip_sid=skip_sid, callback=callback, to=to, **kwargs)

    def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add a client to a room."""
        self._call(self.async_manager.enter_room, sid, namespace, room, eio_sid=eio_sid)

    def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove a client from a room."""
        self._call(self.async_manager.leave_room, sid, namespace, room)

    def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        self._call(self.async_manager.close_room, room, namespace)

    def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Disconnect a client (in any process, with a pub/sub manager)."""
        self._call(self.async_manager.disconnect, sid, namespace, **kwargs)

    def close(self) -> None:
        """Release the backend (publishing what is queued first) and, for a manager used
        without a server, stop its event loop thread."""
        aclose = getattr(self.async_manager, "aclose", None)
        if aclose is not None and self.runner is not None and self.runner.is_running():
            self._call(aclose)
        if self.runner is not None and self.runner.name == "fastio-manager":
            self.runner.stop()


class RedisManager(Manager):
    """python-socketio's ``RedisManager``: processes share emits, rooms and disconnects through
    Redis (or Valkey) pub/sub, with python-socketio's message format.

    ``RedisManager(url, write_only=True)`` is an emitter for processes that are not servers
    (Celery workers, scripts): ``mgr.emit('event', data, room=...)``.
    """

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json: Any = None,
                 redis_options: dict[str, Any] | None = None) -> None:
        self._options = dict(url=url, channel=channel, write_only=write_only, logger=logger, json=json,
                             redis_options=redis_options)
        super().__init__()

    def create_async_manager(self) -> AsyncManager:
        """An ``AsyncRedisManager`` with this manager's arguments."""
        return AsyncRedisManager(**self._options)


class _AsyncKombuManager(AsyncPubSubManager):
    """The kombu backend on the event loop: kombu's blocking calls run in threads (publishing in
    the loop's default executor, consuming in a thread of its own)."""

    name = "kombu"

    def __init__(self, url: str, channel: str, write_only: bool, logger: logging.Logger | None, json: Any,
                 connection_options: dict[str, Any] | None, exchange_options: dict[str, Any] | None,
                 queue_options: dict[str, Any] | None, producer_options: dict[str, Any] | None) -> None:
        try:
            import kombu
        except ImportError:
            raise RuntimeError('Kombu package is not installed (Run "pip install kombu" in your virtualenv).') from None
        super().__init__(channel=channel, write_only=write_only, logger=logger, json=json)
        self.kombu = kombu
        self.url = url
        self.connection_options = connection_options or {}
        self.exchange_options = exchange_options or {}
        self.queue_options = queue_options or {}
        self.producer_options = producer_options or {}
        self.publisher_connection = self.connection()
        self.publish_lock = threading.Lock()
        self.stopping = threading.Event()

    def connection(self) -> Any:
        """A new kombu connection to ``url``."""
        return self.kombu.Connection(self.url, **self.connection_options)

    def exchange(self) -> Any:
        """The fanout exchange named after the channel (python-socketio's options)."""
        options = {"type": "fanout", "durable": False}
        options.update(self.exchange_options)
        return self.kombu.Exchange(self.channel, **options)

    def queue(self) -> Any:
        """This process's queue, bound to the exchange, expiring 5 minutes after its last use."""
        options: dict[str, Any] = {"durable": False, "queue_arguments": {"x-expires": 300000}}
        options.update(self.queue_options)
        return self.kombu.Queue("python-socketio." + str(uuid.uuid4()), self.exchange(), **options)

    def publish_blocking(self, text: str) -> None:
        """Publish one message (kombu's JSON serializer around python-socketio's JSON text)."""
        with self.publish_lock:
            connection = self.publisher_connection
            producer = connection.Producer(exchange=self.exchange(), **self.producer_options)
            connection.ensure(producer, producer.publish)(text)

    async def _publish(self, data: dict[str, Any]) -> None:
        await self._publish_encoded(data, self._encode_message(data))

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            try:
                await loop.run_in_executor(None, self.publish_blocking, payload.decode())
                return
            except Exception as exc:
                if attempt == 2:
                    self._get_logger().error("Cannot publish to rabbitmq... giving up: %s", exc)
                    raise
                self._get_logger().error("Cannot publish to rabbitmq... retrying: %s", exc)

    async def _listen(self) -> AsyncIterator[Any]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        subscribed = threading.Event()
        self.stopping.clear()
        consumer = threading.Thread(target=self.consume, args=(loop, inbox, subscribed),
                                    name="fastio-kombu", daemon=True)
        consumer.start()
        try:
            while True:
                yield await inbox.get()
        finally:
            self.stopping.set()

    def consume(self, loop: asyncio.AbstractEventLoop, inbox: "asyncio.Queue[Any]",
                subscribed: threading.Event) -> None:
        """The consumer thread: read this process's queue and hand each payload to the loop."""
        retry_sleep = 1.0
        while not self.stopping.is_set():
            try:
                with self.connection() as connection:
                    with connection.SimpleQueue(self.queue()) as simple:
                        loop.call_soon_threadsafe(self._set_subscribed)
                        while not self.stopping.is_set():
                            try:
                                message = simple.get(block=True, timeout=0.5)
                            except queue.Empty:
                                continue
                            message.ack()
                            loop.call_soon_threadsafe(inbox.put_nowait, message.payload)
                            retry_sleep = 1.0
            except Exception as exc:
                if self.stopping.is_set() or loop.is_closed():
                    return
                self._get_logger().error("Cannot receive from rabbitmq... retrying in %s secs: %s",
                                         retry_sleep, exc)
                self.stopping.wait(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 60)

    _signals_subscription = True

    async def _close_backend(self) -> None:
        self.stopping.set()
        self.publisher_connection.release()


class KombuManager(Manager):
    """python-socketio's ``KombuManager``: processes share emits, rooms and disconnects through
    a kombu transport (RabbitMQ, ...), with python-socketio's exchange, queue and message format.

    ``KombuManager(url, write_only=True)`` is an emitter for processes that are not servers.
    """

    def __init__(self, url: str = "amqp://guest:guest@localhost:5672//", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json: Any = None,
                 connection_options: dict[str, Any] | None = None, exchange_options: dict[str, Any] | None = None,
                 queue_options: dict[str, Any] | None = None, producer_options: dict[str, Any] | None = None) -> None:
        self._options = dict(url=url, channel=channel, write_only=write_only, logger=logger, json=json,
                             connection_options=connection_options, exchange_options=exchange_options,
                             queue_options=queue_options, producer_options=producer_options)
        super().__init__()

    def create_async_manager(self) -> AsyncManager:
        """The kombu backend with this manager's arguments."""
        return _AsyncKombuManager(**self._options)  # type: ignore[arg-type]
