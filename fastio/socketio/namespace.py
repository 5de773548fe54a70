"""Class-based namespaces: ``on_<event>`` methods, with python-socketio's helper methods."""
from __future__ import annotations

from typing import Any, Callable

from fastio.base.handlers import SERVER_OPTIONAL_ARGS, trigger_method

__all__ = ["AsyncNamespace"]


class AsyncNamespace:
    """A server namespace whose events are handled by ``on_<event>`` methods.

    Register it with ``sio.register_namespace(MyNamespace('/chat'))``.  Handler methods may be
    plain functions or coroutines; a return value is the acknowledgement.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.server: Any = None

    def is_asyncio_based(self) -> bool:
        """Always True."""
        return True

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>``; returns its result (a coroutine for async methods).

        ``on_connect(sid, environ)`` and ``on_disconnect(sid)`` (without ``auth`` or ``reason``)
        are called with the arguments they take.  Subclasses may override this (sync or async)
        to dispatch events themselves.
        """
        missing = self.server.not_handled if self.server is not None else None
        return trigger_method(self, event, args, SERVER_OPTIONAL_ARGS, missing)

    def rooms(self, sid: str, namespace: str | None = None) -> list[Any]:
        """Rooms the client is in."""
        return self.server.rooms(sid, namespace=namespace or self.namespace)

    async def emit(self, event: str, data: Any = None, to: Any = None, room: Any = None,
                   skip_sid: Any = None, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None, ignore_queue: bool = False) -> None:
        """Emit an event in this namespace (see ``AsyncServer.emit``)."""
        await self.server.emit(event, data=data, to=to, room=room, skip_sid=skip_sid,
                               namespace=namespace or self.namespace, callback=callback,
                               ignore_queue=ignore_queue)

    async def send(self, data: Any, to: Any = None, room: Any = None, skip_sid: Any = None,
                   namespace: str | None = None, callback: Callable[..., Any] | None = None,
                   ignore_queue: bool = False) -> None:
        """Send a ``message`` event in this namespace."""
        await self.server.send(data, to=to, room=room, skip_sid=skip_sid,
                               namespace=namespace or self.namespace, callback=callback,
                               ignore_queue=ignore_queue)

    async def call(self, event: str, data: Any = None, to: Any = None, sid: str | None = None,
                   namespace: str | None = None, timeout: float | None = None,
                   ignore_queue: bool = False) -> Any:
        """Emit to one client and wait for its acknowledgement."""
        return await self.server.call(event, data=data, to=to, sid=sid,
                                      namespace=namespace or self.namespace, timeout=timeout,
                                      ignore_queue=ignore_queue)

    async def enter_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Add a client to a room."""
        await self.server.enter_room(sid, room, namespace=namespace or self.namespace)

    async def leave_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Remove a client from a room."""
        await self.server.leave_room(sid, room, namespace=namespace or self.namespace)

    async def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        await self.server.close_room(room, namespace=namespace or self.namespace)

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The client's session dictionary."""
        return await self.server.get_session(sid, namespace=namespace or self.namespace)

    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Store the client's session dictionary."""
        await self.server.save_session(sid, session, namespace=namespace or self.namespace)

    def session(self, sid: str, namespace: str | None = None) -> Any:
        """Async context manager over the client's session."""
        return self.server.session(sid, namespace=namespace or self.namespace)

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """Disconnect a client from this namespace."""
        await self.server.disconnect(sid, namespace=namespace or self.namespace)
