"""Class-based client namespaces: ``on_<event>`` methods, with python-socketio's helpers.

``AsyncClientNamespace`` goes with :class:`fastio.AsyncClient`, ``ClientNamespace`` with the
blocking :class:`fastio.Client`.
"""
from __future__ import annotations

import inspect
from typing import Any

from fastio.base.handlers import CLIENT_OPTIONAL_ARGS, trigger_method

__all__ = ["AsyncClientNamespace", "ClientNamespace"]


class AsyncClientNamespace:
    """Handlers of one namespace of an :class:`fastio.AsyncClient` as ``on_<event>`` methods
    (plain functions or coroutines; a return value is the acknowledgement).

    Register with ``sio.register_namespace(MyNamespace('/chat'))``.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: Any = None

    def is_asyncio_based(self) -> bool:
        """Always True."""
        return True

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>``; override to dispatch events differently."""
        result = trigger_method(self, event, args, CLIENT_OPTIONAL_ARGS)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def emit(self, event: str, data: Any = None, namespace: str | None = None,
                   callback: Any = None) -> None:
        """``client.emit`` in this namespace by default."""
        return await self.client.emit(event, data=data, namespace=namespace or self.namespace,
                                      callback=callback)

    async def send(self, data: Any, namespace: str | None = None, callback: Any = None) -> None:
        """``client.send`` in this namespace by default."""
        return await self.client.send(data, namespace=namespace or self.namespace, callback=callback)

    async def call(self, event: str, data: Any = None, namespace: str | None = None,
                   timeout: float | None = None) -> Any:
        """``client.call`` in this namespace by default."""
        return await self.client.call(event, data=data, namespace=namespace or self.namespace,
                                      timeout=timeout)

    async def disconnect(self) -> None:
        """Disconnect the client."""
        return await self.client.disconnect()


class ClientNamespace:
    """Handlers of one namespace of the blocking :class:`fastio.Client` as ``on_<event>``
    methods (plain functions, run in the client's handler threads)."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: Any = None

    def is_asyncio_based(self) -> bool:
        """Always False."""
        return False

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>``; override to dispatch events differently."""
        return trigger_method(self, event, args, CLIENT_OPTIONAL_ARGS)

    def emit(self, event: str, data: Any = None, namespace: str | None = None, callback: Any = None) -> None:
        """``client.emit`` in this namespace by default."""
        return self.client.emit(event, data=data, namespace=namespace or self.namespace,
                                callback=callback)

    def send(self, data: Any, room: Any = None, namespace: str | None = None, callback: Any = None) -> None:
        """``client.send`` in this namespace by default. ``room`` is accepted and ignored, as in
        python-socketio's ``ClientNamespace.send(data, room=None, namespace=None, callback=None)``
        (a client cannot address rooms)."""
        return self.client.send(data, namespace=namespace or self.namespace, callback=callback)

    def call(self, event: str, data: Any = None, namespace: str | None = None,
             timeout: float | None = None) -> Any:
        """``client.call`` in this namespace by default."""
        return self.client.call(event, data=data, namespace=namespace or self.namespace,
                                timeout=timeout)

    def disconnect(self) -> None:
        """Disconnect the client."""
        return self.client.disconnect()
