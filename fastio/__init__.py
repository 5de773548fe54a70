"""fastio: a fast Socket.IO v5 / Engine.IO v4 server for Python.

A drop-in for python-socketio's servers, asyncio (``AsyncServer``) and sync (``Server``, with
``WSGIApp``): ``import fastio as socketio``.

The package is layered bottom up; each layer imports only the ones below it:
``_core`` (compiled) -> ``base`` -> ``engineio`` -> ``socketio`` -> ``client`` -> ``hosting`` ->
``sync`` -> ``cli``/``demo``. See docs/architecture.md.
"""
from fastio import exceptions
from fastio._version import __version__
from fastio.client import AsyncClient, AsyncClientNamespace, AsyncSimpleClient, Client, ClientNamespace, SimpleClient
from fastio.hosting.asgi import ASGIApp
from fastio.hosting.native import HTTPServer, run, serve
from fastio.hosting.tuning import tune_gc, tune_malloc
from fastio.socketio import (
    AsyncAioPikaManager, AsyncManager, AsyncNamespace, AsyncNodeRedisManager, AsyncNodeRedisStreamsManager,
    AsyncPubSubManager, AsyncRedisManager, AsyncServer, BroadcastOperator, BroadcastTimeoutError, NamespaceOperator,
    RemoteSocket,
)
from fastio.sync import KombuManager, Manager, Middleware, Namespace, RedisManager, Server, WSGIApp

__all__ = [
    "__version__", "AsyncServer", "ASGIApp", "AsyncNamespace", "AsyncManager", "AsyncPubSubManager", "AsyncRedisManager",
    "AsyncAioPikaManager", "AsyncNodeRedisManager", "AsyncNodeRedisStreamsManager", "exceptions",
    "BroadcastOperator", "BroadcastTimeoutError", "NamespaceOperator", "RemoteSocket",
    "run", "serve", "HTTPServer", "tune_gc", "tune_malloc",
    "Server", "Namespace", "Manager", "RedisManager", "KombuManager", "WSGIApp", "Middleware",
    "AsyncClient", "Client", "SimpleClient", "AsyncSimpleClient", "AsyncClientNamespace", "ClientNamespace",
]
