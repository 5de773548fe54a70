"""fastio: a fast Socket.IO v5 / Engine.IO v4 server for Python.

A drop-in for python-socketio's asyncio server: ``import fastio as socketio``.

The package is layered bottom up; each layer imports only the ones below it:
``_core`` (compiled) -> ``base`` -> ``engineio`` -> ``socketio`` -> ``client`` -> ``hosting`` ->
``cli``/``demo``. See docs/architecture.md.
"""
from fastio import exceptions
from fastio._version import __version__
from fastio.client import AsyncClient, AsyncClientNamespace, AsyncSimpleClient, Client, ClientNamespace, SimpleClient
from fastio.hosting.asgi import ASGIApp
from fastio.hosting.native import Server, run, serve
from fastio.hosting.tuning import tune_gc, tune_malloc
from fastio.socketio import (
    AsyncAioPikaManager, AsyncManager, AsyncNamespace, AsyncPubSubManager, AsyncRedisManager, AsyncServer,
    BroadcastOperator, BroadcastTimeoutError, NamespaceOperator, RemoteSocket,
)

__all__ = [
    "__version__", "AsyncServer", "ASGIApp", "AsyncNamespace", "AsyncManager", "AsyncPubSubManager", "AsyncRedisManager",
    "AsyncAioPikaManager", "exceptions",
    "BroadcastOperator", "BroadcastTimeoutError", "NamespaceOperator", "RemoteSocket",
    "run", "serve", "Server", "tune_gc", "tune_malloc",
    "AsyncClient", "Client", "SimpleClient", "AsyncSimpleClient", "AsyncClientNamespace", "ClientNamespace",
]
