"""Exceptions, under python-socketio's names."""
from __future__ import annotations

from typing import Any

__all__ = [
    "SocketIOError", "ConnectionError", "ConnectionRefusedError", "TimeoutError",
    "BadNamespaceError", "DisconnectedError",
]


class SocketIOError(Exception):
    """Base of every fastio Socket.IO error."""


class ConnectionError(SocketIOError):  # noqa: A001 - python-socketio's name
    """A connection could not be made or was lost."""


class ConnectionRefusedError(ConnectionError):  # noqa: A001
    """Raised by a connect handler to refuse a client.

    The first argument becomes the error message sent to the client; a second one is sent as
    ``data`` (more than one extra argument: a list of them).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if not args:
            self.error_args: dict[str, Any] = {"message": "Connection rejected by server"}
        else:
            self.error_args = {"message": str(args[0])}
            if len(args) == 2:
                self.error_args["data"] = args[1]
            elif len(args) > 2:
                self.error_args["data"] = list(args[1:])


class TimeoutError(SocketIOError):  # noqa: A001
    """An acknowledgement did not arrive in time (``call``)."""


class BadNamespaceError(SocketIOError):
    """The namespace is not connected."""


class DisconnectedError(SocketIOError):
    """The client is not connected."""
