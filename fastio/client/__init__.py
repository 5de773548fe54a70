"""Socket.IO clients with python-socketio's API: ``AsyncClient``, ``Client``, the simple clients.

Built on ``fastio.engineio``'s client; imports only the layers below it.
"""
from fastio.client.async_client import AsyncClient
from fastio.client.namespace import AsyncClientNamespace, ClientNamespace
from fastio.client.simple import AsyncSimpleClient
from fastio.client.sync import Client, SimpleClient

__all__ = ["AsyncClient", "Client", "SimpleClient", "AsyncSimpleClient", "AsyncClientNamespace",
           "ClientNamespace"]
