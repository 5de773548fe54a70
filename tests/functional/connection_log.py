"""Handlers that record a server's connections into an EventLog."""
from __future__ import annotations

from typing import Any


def log_connections(sio: Any, log: Any) -> None:
    """Register ``connect`` and ``disconnect`` handlers on ``sio`` that add a ``connect`` entry
    (``sid``) and a ``disconnect`` entry (``sid``, ``reason``) to the EventLog ``log``."""

    @sio.event
    async def connect(sid, environ, auth):
        log.add("connect", sid=sid)

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", sid=sid, reason=reason)
