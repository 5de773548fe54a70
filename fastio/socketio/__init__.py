"""Socket.IO v5 server: namespaces, events, acknowledgements, rooms and the managers.

Built on ``fastio.engineio``; imports only the layers below it (``_core``, ``base``, ``engineio``).
"""
from fastio.socketio.aiopika_manager import AsyncAioPikaManager
from fastio.socketio.manager import AsyncManager
from fastio.socketio.node_redis_manager import AsyncNodeRedisManager
from fastio.socketio.namespace import AsyncNamespace
from fastio.socketio.operators import BroadcastOperator, BroadcastTimeoutError, NamespaceOperator
from fastio.socketio.pubsub_manager import AsyncPubSubManager
from fastio.socketio.redis_manager import AsyncRedisManager
from fastio.socketio.redis_streams_manager import AsyncNodeRedisStreamsManager
from fastio.socketio.remote_socket import RemoteSocket
from fastio.socketio.server import AsyncServer

__all__ = ["AsyncServer", "AsyncManager", "AsyncNamespace", "AsyncPubSubManager", "AsyncRedisManager",
           "AsyncNodeRedisManager", "AsyncNodeRedisStreamsManager", "AsyncAioPikaManager", "BroadcastOperator", "BroadcastTimeoutError", "NamespaceOperator", "RemoteSocket"]
