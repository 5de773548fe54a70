"""The bounded publish queue of the cluster managers (docs/cluster.md, "The publish queue").

``AsyncPubSubManager`` (and its Redis/AMQP/workers backends), ``AsyncNodeRedisManager`` and
``AsyncNodeRedisStreamsManager`` publish everything through one ``PublishQueue``: a bounded
deque drained in order by one writer task, which hands up to ``batch_size`` queued messages at a
time to the manager's ``send_batch`` coroutine (one round trip).  Callers that can wait first
``await queue.room()`` (backpressure), then ``put`` with a future that the writer completes when
the backend took the message; callers that cannot wait ``put`` without a future and have their
message dropped (counted in ``dropped``, logged at the first drop and every 1000th) while the
queue is full.  A batch whose ``send_batch`` raises is tried ``attempts`` times in all, then
dropped: every attempt is logged and the futures of the batch get the error.

What differs between the managers is given to the queue: the coroutine that sends one batch,
the words used in the log messages, and what ``snapshot()`` shows of each queued message.
``QueuedManager`` is the managers' common base: it shows the queue as the manager's
``publish_full``, ``publish_room()``, ``queue_snapshot()``, ``queue_size`` and ``dropped``.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Awaitable, Callable, Optional, Sequence

from fastio.socketio.manager import AsyncManager

__all__ = ["PublishQueue", "QueuedManager", "SendBatch"]

#: Sends one batch of ``(key, payload)`` pairs, in order.  Returns None when every message was
#: taken, or one value per message: an exception for a message that failed, otherwise the
#: message's result (what its future gets).  Raising fails the whole batch (tried again).
SendBatch = Callable[[list[tuple[Any, Any]]], Awaitable[Optional[Sequence[Any]]]]


class PublishQueue:
    """A bounded publish queue with one writer task.

    :param size: the most messages waiting (``queue_size``); ``put`` without a future drops
                 past it.
    :param send_batch: the coroutine function that sends one batch (see ``SendBatch``).
    :param get_logger: returns the logger for the queue's messages (called when logging, so
                       the manager's logger may change after the queue is built).
    :param label: names the queue in the warning about drops (``"the <label> publish queue is
                  full: <n> message(s) dropped"``).
    :param failure: what is logged when a batch fails: with ``attempts`` 1, as is and with the
                    traceback; with more, as ``"<failure> (attempt <n>): <error>"`` per attempt.
    :param attempts: how many times a failing batch is sent before it is dropped.
    :param describe: what ``snapshot()`` shows of a queued message's key (default: the key).
    :param batch_size: the most messages handed to ``send_batch`` at once.
    """

    __slots__ = ("size", "dropped", "items", "label", "failure", "attempts", "batch_size", "_room_free",
                 "_writer", "_send_batch", "_get_logger", "_describe")

    def __init__(self, size: int, send_batch: SendBatch, get_logger: Callable[[], logging.Logger], *,
                 label: str, failure: str, attempts: int = 1, describe: Callable[[Any], str] | None = None,
                 batch_size: int = 256) -> None:
        if size < 1:
            raise ValueError("queue_size must be at least 1")
        if attempts < 1 or batch_size < 1:
            raise ValueError("attempts and batch_size must be at least 1")
        self.size = size
        #: messages not queued because the queue was full (callers that cannot wait)
        self.dropped = 0
        self.label = label
        self.failure = failure
        self.attempts = attempts
        self.batch_size = batch_size
        #: the queued messages, in publishing order: (key, payload, a future to complete or None);
        #: read it (``publish_full`` does, on every emit), do not change it
        self.items: collections.deque[tuple[Any, Any, asyncio.Future[Any] | None]] = collections.deque()
        self._room_free = asyncio.Condition()
        self._writer: asyncio.Task[None] | None = None
        self._send_batch = send_batch
        self._get_logger = get_logger
        self._describe = describe

    def __len__(self) -> int:
        return len(self.items)

    @property
    def full(self) -> bool:
        """True while the queue holds ``size`` messages (or more: overdrafts)."""
        return len(self.items) >= self.size

    async def room(self) -> None:
        """Wait until the queue has room for one more message."""
        if len(self.items) >= self.size:
            async with self._room_free:
                await self._room_free.wait_for(lambda: len(self.items) < self.size)

    def snapshot(self) -> list[Any]:
        """What ``describe`` shows of each queued message, in order."""
        describe = self._describe
        if describe is None:
            return [key for key, _, _ in self.items]
        return [describe(key) for key, _, _ in self.items]

    def put(self, key: Any, payload: Any, done: asyncio.Future[Any] | None = None, overdraft: int = 0) -> bool:
        """Queue a message and start the writer if it is not running.  Without ``done`` (a caller
        that cannot wait) the message is dropped and counted (False) when the queue holds
        ``size + overdraft`` messages; with ``done``, it is always queued (the caller waited for
        ``room()``) and ``done`` is completed when the backend took it (or failed)."""
        if done is None and len(self.items) >= self.size + overdraft:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self._get_logger().warning("the %s publish queue is full: %d message(s) dropped", self.label,
                                           self.dropped)
            return False
        self.items.append((key, payload, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return True

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until the writer has sent what is queued; errors and
        the timeout are swallowed (used when a manager closes)."""
        writer = self._writer
        if writer is not None and not writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            except (asyncio.TimeoutError, Exception):
                pass

    async def _write(self) -> None:
        items = self.items
        while items:
            batch = [items.popleft() for _ in range(min(len(items), self.batch_size))]
            async with self._room_free:
                self._room_free.notify_all()
            results: Sequence[Any] | None = None
            error: BaseException | None = None
            for attempt in range(1, self.attempts + 1):
                try:
                    results = await self._send_batch([(key, payload) for key, payload, _ in batch])
                    error = None
                    break
                except asyncio.CancelledError:
                    for _, _, done in batch:
                        if done is not None and not done.done():
                            done.cancel()
                    raise
                except Exception as exc:
                    error = exc
                    if self.attempts == 1:
                        self._get_logger().exception("%s", self.failure)
                    else:
                        self._get_logger().error("%s (attempt %d): %s", self.failure, attempt, exc)
            for i, (_, _, done) in enumerate(batch):
                if done is None or done.done():
                    continue
                if error is not None:
                    done.set_exception(error)
                    continue
                result = results[i] if results is not None and i < len(results) else None
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)


class QueuedManager(AsyncManager):
    """A cluster manager that publishes through a ``PublishQueue``: subclasses build it in their
    constructor as ``self._publish_queue``; this class shows it as the manager's public face."""

    _publish_queue: PublishQueue

    @property
    def publish_full(self) -> bool:  # type: ignore[override]
        """True while the publish queue holds ``queue_size`` messages (read on every
        ``sio.emit``)."""
        queue = self._publish_queue  # the queue's ``full``, inlined: this is read on every emit
        return len(queue.items) >= queue.size

    async def publish_room(self) -> None:
        """Wait until the publish queue has room for one more message."""
        await self._publish_queue.room()

    def queue_snapshot(self) -> list[str]:
        """What waits to be published, in order: each message's ``method`` (pub/sub managers) or
        channel (the Node fleet managers)."""
        return self._publish_queue.snapshot()

    @property
    def queue_size(self) -> int:
        """The most messages waiting to be published."""
        return self._publish_queue.size

    @queue_size.setter
    def queue_size(self, value: int) -> None:
        self._publish_queue.size = value

    @property
    def dropped(self) -> int:
        """Messages not published because the queue was full (callers that cannot wait)."""
        return self._publish_queue.dropped

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._publish_queue.dropped = value
