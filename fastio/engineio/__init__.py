"""Engine.IO v4: the server (sessions, handshake, long-polling, upgrade, heartbeat) and the client.

``fastio.engineio.AsyncServer`` and ``fastio.engineio.AsyncClient`` have python-engineio's API.
This layer imports only ``fastio._core`` and ``fastio.base``.
"""
from fastio.engineio.client import AsyncClient
from fastio.engineio.server import AsyncServer

__all__ = ["AsyncServer", "AsyncClient"]
