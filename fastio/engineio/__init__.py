"""Engine.IO v4: the server (sessions, handshake, long-polling, upgrade, heartbeat) and the client.

``fastio.engineio.AsyncServer``, ``fastio.engineio.AsyncClient`` and ``fastio.engineio.ASGIApp``
have python-engineio's API. This layer imports only ``fastio._core`` and ``fastio.base``:
``ASGIApp`` lives in the hosting layer, which registers it with ``fastio.base.frameworks``
(importing ``fastio.engineio`` imports ``fastio`` first, and with it the hosting layer).
"""
from typing import Any

from fastio.base import frameworks
from fastio.engineio.client import AsyncClient
from fastio.engineio.server import AsyncServer

__all__ = ["AsyncServer", "AsyncClient", "ASGIApp"]


def __getattr__(name: str) -> Any:
    # ASGIApp(engineio_server, other_asgi_app=None, static_files=None, engineio_path="engine.io",
    # on_startup=None, on_shutdown=None): python-engineio's ASGI application.
    if name == "ASGIApp":
        return frameworks.asgi_app("engineio")
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
