"""Class-based client namespaces: ``on_<event>`` methods, with python-socketio's helpers.

``AsyncClientNamespace`` goes with :class:`fastio.AsyncClient`, ``ClientNamespace`` with the
blocking :class:`fastio.Client`.
"""
from __future__ import annotations

import inspect
from typing import Any

__all__ = ["AsyncClientNamespace", "ClientNamespace"]


def _handler_args(handler: Any, event: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the reason of a ``disconnect`` for handlers written without it."""
    if event == "disconnect" and args:
        try:
            inspect.signature(handler).bind(*args)
        except TypeError:
            return args[:-1]
        except ValueError:
            pass
    return args


class AsyncClientNamespace:
    """Handlers of one namespace of an :class:`fastio.AsyncClient` as ``on_<event>`` methods
    (plain functions or coroutines; a return value is the acknowledgement).

    Register with ``sio.register_namespace(MyNamespace('/chat'))``.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.client: Any = None

    def is_asyncio_based(self) -> bool:
        return True

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>``; override to dispatch events differently."""
        handler = getattr(self, "on_" + (event or ""), None)
        if handler is None:
            return None
        result = handler(*_handler_args(handler, event, args))
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
        return False

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>``; override to dispatch events differently."""
        handler = getattr(self, "on_" + (event or ""), None)
        if handler is None:
            return None
        return handler(*_handler_args(handler, event, args))

    def emit(self, event: str, data: Any = None, namespace: str | None = None, callback: Any = None) -> None:
        return self.client.emit(event, data=data, namespace=namespace or self.namespace,
                                callback=callback)

    def send(self, data: Any, namespace: str | None = None, callback: Any = None) -> None:
        return self.client.send(data, namespace=namespace or self.namespace, callback=callback)

    def call(self, event: str, data: Any = None, namespace: str | None = None,
             timeout: float | None = None) -> Any:
        return self.client.call(event, data=data, namespace=namespace or self.namespace,
                                timeout=timeout)

    def disconnect(self) -> None:
        return self.client.disconnect()
