"""fastio: a fast Socket.IO v5 / Engine.IO v4 server for Python.

A drop-in for python-socketio's asyncio server: ``import fastio as socketio``.
"""
from fastio import exceptions
from fastio._version import __version__
from fastio.asgi import ASGIApp
from fastio.client import AsyncClient
from fastio.manager import AsyncManager
from fastio.namespace import AsyncNamespace
from fastio.namespace_client import AsyncClientNamespace, ClientNamespace
from fastio.native import Server, run, serve, tune_gc, tune_malloc
from fastio.redis_manager import AsyncRedisManager
from fastio.server import AsyncServer
from fastio.simple import AsyncSimpleClient
from fastio.sync import Client, SimpleClient

__all__ = [
    "__version__", "AsyncServer", "ASGIApp", "AsyncNamespace", "AsyncManager", "AsyncRedisManager", "exceptions",
    "run", "serve", "Server", "tune_gc", "tune_malloc",
    "AsyncClient", "Client", "SimpleClient", "AsyncSimpleClient", "AsyncClientNamespace", "ClientNamespace",
]
