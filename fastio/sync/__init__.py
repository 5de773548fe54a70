"""python-socketio's synchronous server API on fastio: ``Server``, ``Namespace``, the managers,
``WSGIApp`` and ``Middleware``.  The Socket.IO work runs on an asyncio event loop in a thread;
handlers are plain functions run in a thread pool (see ``fastio/sync/server.py``)."""
from fastio.sync.manager import KombuManager, Manager, RedisManager
from fastio.sync.namespace import Namespace
from fastio.sync.server import Server
from fastio.sync.wsgi import Middleware, WSGIApp

__all__ = ["Server", "Namespace", "Manager", "RedisManager", "KombuManager", "WSGIApp", "Middleware"]
