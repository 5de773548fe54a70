"""Class-based namespaces for the sync server: ``on_<event>`` methods that are plain functions."""
from __future__ import annotations

from typing import Any, Callable

from fastio.base.handlers import SERVER_OPTIONAL_ARGS, trigger_method

__all__ = ["Namespace"]


class Namespace:
    """A sync server namespace whose events are handled by ``on_<event>`` methods (python-socketio's
    ``socketio.Namespace``).

    Register it with ``sio.register_namespace(MyNamespace('/chat'))``.  Methods run in the server's
    thread pool; a return value is the acknowledgement.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.server: Any = None

    def is_asyncio_based(self) -> bool:
        """Always False."""
        return False

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call ``on_<event>`` with the arguments it takes; subclasses may override this to
        dispatch events themselves."""
        missing = self.server.not_handled if self.server is not None else None
        return trigger_method(self, event, args, SERVER_OPTIONAL_ARGS, missing)

    def emit(self, event: str, data: Any = None, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: str | None = None, callback: Callable[..., Any] | None = None,
             ignore_queue: bool = False) -> None:
        """Emit an event in this namespace (see ``Server.emit``)."""
        self.server.emit(event, data=data, to=to, room=room, skip_sid=skip_sid,
                         namespace=namespace or self.namespace, callback=callback, ignore_queue=ignore_queue)

    def send(self, data: Any, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: str | None = None, callback: Callable[..., Any] | None = None,
             ignore_queue: bool = False) -> None:
        """Send a ``message`` event in this namespace."""
        self.server.send(data, to=to, room=room, skip_sid=skip_sid, namespace=namespace or self.namespace,
                         callback=callback, ignore_queue=ignore_queue)

    def call(self, event: str, data: Any = None, to: Any = None, sid: str | None = None,
             namespace: str | None = None, timeout: float | None = None, ignore_queue: bool = False) -> Any:
        """Emit to one client and block until it acknowledges."""
        return self.server.call(event, data=data, to=to, sid=sid, namespace=namespace or self.namespace,
                                timeout=timeout, ignore_queue=ignore_queue)

    def enter_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Add a client to a room."""
        self.server.enter_room(sid, room, namespace=namespace or self.namespace)

    def leave_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Remove a client from a room."""
        self.server.leave_room(sid, room, namespace=namespace or self.namespace)

    def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        self.server.close_room(room, namespace=namespace or self.namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[Any]:
        """Rooms the client is in."""
        return self.server.rooms(sid, namespace=namespace or self.namespace)  # type: ignore[no-any-return]

    def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The client's session dictionary."""
        return self.server.get_session(sid, namespace=namespace or self.namespace)  # type: ignore[no-any-return]

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Store the client's session dictionary."""
        self.server.save_session(sid, session, namespace=namespace or self.namespace)

    def session(self, sid: str, namespace: str | None = None) -> Any:
        """Context manager over the client's session."""
        return self.server.session(sid, namespace=namespace or self.namespace)

    def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """Disconnect a client from this namespace."""
        self.server.disconnect(sid, namespace=namespace or self.namespace)
