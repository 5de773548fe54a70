"""``AsyncSimpleClient``: one namespace, events pulled with ``receive()`` instead of handlers.

A thin layer over :class:`fastio.AsyncClient` with python-socketio's ``AsyncSimpleClient``
interface. Events are returned by ``receive()`` in the order they arrived; while the client
reconnects, ``emit``/``call``/``receive`` wait for it.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from fastio.client.async_client import AsyncClient
from fastio.exceptions import DisconnectedError, SocketIOError, TimeoutError

__all__ = ["AsyncSimpleClient", "SimpleClientBase"]


class SimpleClientBase:
    """What the asyncio and the blocking simple clients share: the constructor arguments kept
    for ``client_class``, the state of the one namespace and the four handlers that feed it."""

    client: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.client_args = args
        self.client_kwargs = kwargs
        #: The ``client_class`` instance (None before ``connect``).
        self.client = None
        self.namespace = "/"
        self.connected = False
        self.input_buffer: deque[list[Any]] = deque()

    def _listen(self, client: Any, on_connect: Any, on_disconnect: Any, on_final: Any,
                on_event: Any) -> None:
        """Register the handlers of the one namespace on ``client`` (``on_event`` is the
        catch-all; ``on_final`` runs when the client gives up for good)."""
        namespace = self.namespace
        client.on("connect", on_connect, namespace=namespace)
        client.on("disconnect", on_disconnect, namespace=namespace)
        client.on("__disconnect_final", on_final, namespace=namespace)
        client.on("*", on_event, namespace=namespace)

    @property
    def sid(self) -> str | None:
        """The sid in the namespace (it may change when reconnecting)."""
        return self.client.get_sid(self.namespace) if self.client else None

    @property
    def transport(self) -> str:
        """``'polling'`` or ``'websocket'`` (``''`` before connecting)."""
        return (self.client.transport() or "") if self.client else ""


class AsyncSimpleClient(SimpleClientBase):
    """A Socket.IO client for one namespace. Constructor arguments go to :class:`AsyncClient`."""

    client_class = AsyncClient
    client: AsyncClient | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connected_event = asyncio.Event()
        self._changed = asyncio.Event()

    async def connect(self, url: Any, headers: Any = {}, auth: Any = None, transports: Any = None,
                      namespace: str = "/", socketio_path: str = "socket.io",
                      wait_timeout: float = 5) -> None:
        """Connect to ``namespace`` of the server at ``url`` (see ``AsyncClient.connect``)."""
        if self.connected:
            raise RuntimeError("Already connected")
        self.namespace = namespace
        self.input_buffer.clear()
        self._changed.clear()
        client = self.client = self.client_class(*self.client_args, **self.client_kwargs)

        def on_connect() -> None:
            self.connected = True
            self._connected_event.set()
            self._changed.set()

        def on_disconnect(reason: str) -> None:
            self._connected_event.clear()

        def on_final() -> None:
            self.connected = False
            self._connected_event.set()
            self._changed.set()

        def on_event(event: str, *args: Any) -> None:
            self.input_buffer.append([event, *args])
            self._changed.set()

        self._listen(client, on_connect, on_disconnect, on_final, on_event)
        await client.connect(url, headers=headers, auth=auth, transports=transports,
                             namespaces=[namespace], socketio_path=socketio_path,
                             wait_timeout=wait_timeout)

    async def _ready(self) -> AsyncClient:
        await self._connected_event.wait()
        if not self.connected or self.client is None:
            raise DisconnectedError()
        return self.client

    async def emit(self, event: str, data: Any = None) -> None:
        """Send an event (waits while reconnecting; ``DisconnectedError`` once disconnected)."""
        while True:
            client = await self._ready()
            try:
                return await client.emit(event, data, namespace=self.namespace)
            except SocketIOError:  # lost meanwhile: wait for the reconnection
                await asyncio.sleep(0)

    async def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        """Send an event and return the server's acknowledgement; ``TimeoutError`` after
        ``timeout`` seconds."""
        while True:
            client = await self._ready()
            try:
                return await client.call(event, data, namespace=self.namespace, timeout=timeout)
            except TimeoutError:
                raise
            except SocketIOError:
                await asyncio.sleep(0)

    async def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event from the server as ``[name, *args]``, in arrival order.

        Raises ``TimeoutError`` when none comes within ``timeout`` seconds, and
        ``DisconnectedError`` when the client is disconnected and nothing is left to read.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.input_buffer:
            if not self.connected and self._connected_event.is_set():
                raise DisconnectedError()
            self._changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                if not self.input_buffer:
                    raise TimeoutError() from None
        return self.input_buffer.popleft()

    async def disconnect(self) -> None:
        """Disconnect from the server."""
        if self.client is not None and (self.connected or self.client.reconnecting):
            await self.client.disconnect()
        self.connected = False
        self._connected_event.set()
        self._changed.set()

    async def __aenter__(self) -> "AsyncSimpleClient":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.disconnect()
