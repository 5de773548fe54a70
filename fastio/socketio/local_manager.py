"""A client manager for the worker processes of one host, joined by a UNIX socket.

``fastio.run(sio, workers=N)`` gives every worker one end of a stream socket whose other end is
held by the process that started the workers; that process relays each message a worker
publishes to every other worker.  No external service is involved.  On top of that channel this
manager is an ``AsyncPubSubManager``: emits to rooms, acknowledgements, room changes and
disconnects of clients of another worker behave as with the Redis manager.

Framing on the socket: each message is a 4-byte big-endian length, one kind byte, then the
message.  Kind ``m`` is a pub/sub message (the JSON of ``AsyncPubSubManager``); kind ``r`` (no
body) tells the relay that this worker is serving.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any, AsyncIterator, Callable

from fastio.socketio.pubsub_manager import AsyncPubSubManager

__all__ = ["AsyncLocalManager", "KIND_MESSAGE", "KIND_READY", "frame"]

KIND_MESSAGE = b"m"
KIND_READY = b"r"
_HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30


def frame(kind: bytes, body: bytes = b"") -> bytes:
    """One frame of the relay channel: length (kind byte included), kind, body."""
    return _HEADER.pack(len(body) + 1) + kind + body


class AsyncLocalManager(AsyncPubSubManager):
    """A pub/sub manager over a relay socket shared by the workers of one host.

    :param sock: a connected stream socket (``AF_UNIX``) whose peer relays every frame to the
                 other workers; ``fastio.run(workers=N)`` creates it and passes it here.
    :param channel: kept for python-socketio's signature; the relay carries one channel.
    :param write_only: publish only.
    :param logger: a ``logging.Logger`` for the manager's messages.
    :param json: a module with ``dumps``/``loads`` for the messages (default: orjson).
    :param queue_size, requests_timeout, heartbeat_interval, heartbeat_timeout: as for
        ``AsyncPubSubManager`` (the bounded publish queue, requests to the other fastio
        processes and how they know each other).
    """

    name = "local"
    _signals_subscription = True

    def __init__(self, sock: socket.socket, channel: str = "socketio", write_only: bool = False,
                 logger: logging.Logger | None = None, json: Any = None, *, queue_size: int = 1024,
                 requests_timeout: float = 5.0, heartbeat_interval: float = 5.0,
                 heartbeat_timeout: float = 10.0) -> None:
        super().__init__(channel=channel, write_only=write_only, logger=logger, json=json, queue_size=queue_size,
                         requests_timeout=requests_timeout, heartbeat_interval=heartbeat_interval,
                         heartbeat_timeout=heartbeat_timeout)
        self.sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer_stream: asyncio.StreamWriter | None = None
        self._opening: asyncio.Future[None] | None = None

    async def _open(self) -> None:
        if self._writer_stream is not None:
            return
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_future()
            try:
                self._reader, self._writer_stream = await asyncio.open_unix_connection(
                    sock=self.sock, limit=MAX_FRAME)
            except BaseException as exc:
                self._opening.set_exception(exc)
                raise
            self._opening.set_result(None)
        else:
            await asyncio.shield(self._opening)

    def emit_now(self, event: str, data: Any, namespace: str, room: Any = None,
                 skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                 ignore_queue: bool = False) -> int:
        """As ``AsyncPubSubManager``, except that an emit to one client of this worker stays
        here: the sids of one cluster name their worker, so no other worker has a client in
        that client's own room (unless a client of another worker was put in a room named
        after this sid, which this manager does not follow)."""
        if isinstance(room, str) and not self._emit_hook and self.is_connected(room, namespace):
            return self.emit_local(event, data, namespace, room, skip_sid, callback)
        return super().emit_now(event, data, namespace, room, skip_sid, callback, ignore_queue)

    async def send_ready(self) -> None:
        """Tell the relay that this worker serves (the relay reports the cluster up when every
        worker has)."""
        await self._open()
        assert self._writer_stream is not None
        self._writer_stream.write(frame(KIND_READY))
        await self._writer_stream.drain()

    async def _publish(self, data: dict[str, Any]) -> None:
        await self._publish_encoded(data, self._encode_message(data))

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        await self._open()
        assert self._writer_stream is not None
        self._writer_stream.write(frame(KIND_MESSAGE, payload))
        await self._writer_stream.drain()

    async def _listen(self) -> AsyncIterator[bytes]:
        await self._open()
        reader = self._reader
        assert reader is not None
        self._set_subscribed()
        while True:
            try:
                head = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                self._get_logger().info("the worker relay closed its channel")
                await asyncio.Event().wait()  # stay quiet until the server shuts down
            (size,) = _HEADER.unpack(head)
            body = await reader.readexactly(size)
            if body[:1] == KIND_MESSAGE:
                yield body[1:]

    async def _close_backend(self) -> None:
        if self._writer_stream is not None:
            self._writer_stream.close()
            self._writer_stream = None
