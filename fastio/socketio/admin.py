"""The Socket.IO Admin UI (``@socket.io/admin-ui``) for a fastio server: ``sio.instrument()``.

The UI is a web page that connects to the server's admin namespace (``/admin`` by default) as
an ordinary Socket.IO client.  This module answers it with the events and payloads of the
npm package's server side and of python-socketio's ``instrument()``:

- on connection: ``session`` (an id the UI stores to log in again without the password),
  ``config`` (the supported features), ``server_stats``, and in development mode
  ``all_sockets``;
- every ``server_stats_interval`` seconds while an admin client is connected: ``server_stats``
  (clients, polling clients, sockets per namespace, and counts aggregated per second:
  connections, disconnections, packets and bytes in and out);
- in development mode, as they happen: ``socket_connected``, ``socket_updated`` (a polling
  client upgraded to WebSocket; noticed at the next stats tick), ``socket_disconnected``,
  ``room_joined``, ``room_left``, ``event_received``, ``event_sent``;
- the commands the UI sends, unless ``read_only``: ``emit``, ``join``, ``leave``,
  ``_disconnect``.

The server and its manager call this object through their ``admin`` attribute, which is None
until ``instrument()`` is called: an uninstrumented server pays one None check at each hook.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import socket
import time
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl

from fastio import exceptions
from fastio._core.packet import EVENT
from fastio.socketio.manager import Socket, event_args

__all__ = ["InstrumentedAsyncServer", "EventBuffer"]

HOSTNAME = socket.gethostname()

# The feature names the UI knows (its ``Feature`` enum).
_WRITE_FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]

# How long, and how many, login sessions (``sessionId``) are remembered.
_SESSION_TTL = 24 * 3600.0
_MAX_SESSIONS = 1000


def _iso(t: float) -> str:
    """A timestamp as JavaScript's ``Date.toJSON()`` writes it (the UI parses these)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(t * 1000) % 1000)


def _room_name(room: Any) -> Any:
    """Rooms may be any hashable in python-socketio; the UI gets JSON, so others become text."""
    return room if isinstance(room, (str, int, float)) else str(room)


class EventBuffer:
    """Counts of engine events (connections, packets, bytes) per second, until taken."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer: dict[tuple[int, str, str | None], dict[str, Any]] = {}

    def push(self, type: str, sub_type: str | None = None, count: int = 1) -> None:  # noqa: A002
        """Add ``count`` to this second's counter of ``type`` (and ``sub_type``, e.g. a close
        reason)."""
        second = int(time.time()) * 1000
        key = (second, type, sub_type)
        entry = self.buffer.get(key)
        if entry is None:
            entry = self.buffer[key] = {"timestamp": second, "type": type, "count": 0}
            if sub_type is not None:
                entry["subType"] = sub_type
        entry["count"] += count

    def take(self) -> list[dict[str, Any]]:
        """The counters gathered since the last call, and start afresh."""
        values = list(self.buffer.values())
        self.buffer = {}
        return values


class _Auth:
    """Checks the ``auth`` object of an admin client against the ``auth`` option."""

    def __init__(self, auth: Any) -> None:
        if auth is None:
            raise ValueError("auth must be specified (False to disable authentication)")
        self.auth = auth
        self.bcrypt: Any = None
        if isinstance(auth, dict) and auth.get("type") == "basic":
            password = str(auth.get("password", ""))
            if password.startswith(("$2a$", "$2b$", "$2y$")):
                try:
                    import bcrypt  # type: ignore[import-not-found,unused-ignore]  # the npm form's hash
                except ImportError:
                    raise ValueError("a bcrypt password hash needs the bcrypt package "
                                     "(pip install bcrypt)") from None
                self.bcrypt = bcrypt
        self.sessions: dict[str, float] = {}

    def _basic(self, client_auth: dict[str, Any]) -> bool:
        if client_auth.get("username") != self.auth.get("username"):
            return False
        given = client_auth.get("password")
        if not isinstance(given, str):
            return False
        expected = str(self.auth.get("password", ""))
        if self.bcrypt is not None:
            return bool(self.bcrypt.checkpw(given.encode(), expected.encode()))
        return secrets.compare_digest(given.encode(), expected.encode())

    async def check(self, client_auth: Any) -> bool:
        """True when ``client_auth`` (what the client sent) is accepted."""
        auth = self.auth
        if not auth:
            return True
        if isinstance(auth, dict):
            if auth.get("type") == "basic":
                return isinstance(client_auth, dict) and self._basic(client_auth)
            return bool(client_auth == auth)
        if isinstance(auth, list):
            return client_auth in auth
        result = auth(client_auth)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def new_session(self) -> str:
        """A login session id for the UI to come back with."""
        now = time.monotonic()
        if len(self.sessions) >= _MAX_SESSIONS:
            for sid, expiry in list(self.sessions.items()):
                if expiry < now:
                    del self.sessions[sid]
            while len(self.sessions) >= _MAX_SESSIONS:
                del self.sessions[next(iter(self.sessions))]
        session_id = secrets.token_hex(8)
        self.sessions[session_id] = now + _SESSION_TTL
        return session_id

    def has_session(self, session_id: Any) -> bool:
        """True for a session id this server gave and that has not expired."""
        if not isinstance(session_id, str):
            return False
        expiry = self.sessions.get(session_id)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self.sessions[session_id]
            return False
        return True


class InstrumentedAsyncServer:
    """The Admin UI's server side for one fastio ``AsyncServer``; made by ``sio.instrument()``.

    :param sio: the server to instrument.
    :param auth: ``{"username": ..., "password": ...}`` (what the UI's login form sends), the
                 npm package's ``{"type": "basic", "username": ..., "password": ...}`` (the
                 password in clear or as a bcrypt hash, which needs ``bcrypt``), a list of
                 accepted dicts, a function (plain or ``async``) given the client's auth dict
                 and returning True to accept, or False for no authentication.  None (the
                 default) is refused, as in python-socketio.
    :param mode: ``"development"`` (every socket, room and event is reported) or
                 ``"production"`` (only the server statistics).
    :param read_only: refuse the UI's commands (emit, join, leave, disconnect).
    :param server_id: the name of this server in the UI; the manager's ``host_id`` (pub/sub
                      managers) or the host name by default.
    :param namespace: the admin namespace.
    :param server_stats_interval: seconds between two ``server_stats`` events.
    """

    def __init__(self, sio: Any, auth: Any = None, namespace: str = "/admin", read_only: bool = False,
                 server_id: str | None = None, mode: str = "development",
                 server_stats_interval: float = 2) -> None:
        if mode not in ("development", "production"):
            raise ValueError('mode must be "development" or "production"')
        self.sio = sio
        self._auth = _Auth(auth)
        self.auth = auth
        self.admin_namespace = namespace
        self.read_only = read_only
        self.mode = mode
        self.development = mode == "development"
        self.server_id = server_id or getattr(sio.manager, "host_id", None) or HOSTNAME
        self.server_stats_interval = server_stats_interval
        self.event_buffer = EventBuffer()
        self.started = time.time()
        self.stats_task: asyncio.Task[None] | None = None
        # (namespace, sid) -> connection time, for every socket reported as connected.
        self.connected_at: dict[tuple[str, str], float] = {}
        # Sockets reported on polling: checked for an upgrade at each stats tick.
        self.polling: set[tuple[str, str]] = set()
        # Admin sockets that logged in with credentials and get a session id once connected.
        self.new_sessions: dict[str, str] = {}
        self.features = ([] if read_only else list(_WRITE_FEATURES)) + ["AGGREGATED_EVENTS"]
        if self.development:
            self.features.append("ALL_EVENTS")
        self._original_sinks: tuple[Any, Any] | None = None
        self.instrument()

    # -- installing --------------------------------------------------------------------------------

    def instrument(self) -> None:
        """Register the admin namespace's handlers and hook into the server and its manager."""
        sio = self.sio
        sio.on("connect", self.admin_connect, namespace=self.admin_namespace)
        if not self.read_only:
            sio.on("emit", self.admin_emit, namespace=self.admin_namespace)
            sio.on("join", self.admin_enter_room, namespace=self.admin_namespace)
            sio.on("leave", self.admin_leave_room, namespace=self.admin_namespace)
            sio.on("_disconnect", self.admin_disconnect, namespace=self.admin_namespace)
        if self.development:
            # Sockets connected before now are reported like the others from here on.
            now = time.time()
            for socks in sio.manager.sockets.values():
                for sock in socks.values():
                    self.connected_at.setdefault((sock.namespace, sock.sid), now)
        sio.admin = self
        sio.manager.admin = self
        eio = sio.eio
        message_sink, close_sink = eio.message_sink, eio.close_sink
        self._original_sinks = (message_sink, close_sink)

        def counting_sink(conn: Any, data: bytes, binary: bool) -> Any:
            self.event_buffer.push("packetsIn")
            self.event_buffer.push("bytesIn", None, len(data))
            return message_sink(conn, data, binary)

        def closing_sink(conn: Any, reason: str) -> None:
            self.event_buffer.push("rawDisconnection", reason)
            if close_sink is not None:
                close_sink(conn, reason)

        eio.message_sink = counting_sink
        eio.close_sink = closing_sink

    def uninstrument(self) -> None:
        """Stop reporting (the admin namespace's handlers stay registered)."""
        if self.sio.admin is self:
            self.sio.admin = None
        if self.sio.manager.admin is self:
            self.sio.manager.admin = None
        if self._original_sinks is not None:
            self.sio.eio.message_sink, self.sio.eio.close_sink = self._original_sinks
            self._original_sinks = None
        if self.stats_task is not None:
            self.stats_task.cancel()
            self.stats_task = None

    async def shutdown(self) -> None:
        """Stop the periodic ``server_stats`` task."""
        task, self.stats_task = self.stats_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    # -- the admin namespace -----------------------------------------------------------------------

    async def admin_connect(self, sid: str, environ: dict[str, Any], client_auth: Any) -> None:
        """Authenticate an admin client (by credentials or by a session id given earlier)."""
        if isinstance(client_auth, dict) and self._auth.has_session(client_auth.get("sessionId")):
            return
        if not await self._auth.check(client_auth):
            raise exceptions.ConnectionRefusedError("invalid credentials")
        if self.auth:
            self.new_sessions[sid] = self._auth.new_session()

    def _admin_joined(self, sid: str) -> None:
        """An admin client is connected: send it what the UI shows first."""
        to = sid
        session_id = self.new_sessions.pop(sid, None)
        if session_id is not None:
            self._emit("session", session_id, to)
        self._emit("config", {"supportedFeatures": self.features}, to)
        self._emit("server_stats", self.server_stats(aggregated=False), to)
        if self.development:
            self._emit("all_sockets", self.all_sockets(), to)
        if self.stats_task is None or self.stats_task.done():
            self.stats_task = self.sio.start_background_task(self._stats_loop)

    async def admin_emit(self, _sid: str, namespace: str, room_filter: Any, event: str, *data: Any) -> None:
        """The UI's ``emit``: send ``event`` to a namespace, or to a room of it."""
        await self.sio.emit(event, data, to=room_filter or None, namespace=namespace)

    async def admin_enter_room(self, _sid: str, namespace: str, room: Any, room_filter: Any = None) -> None:
        """The UI's ``join``: the sockets of a namespace (or of a room or one socket, the
        filter) join ``room``."""
        for sid, _ in list(self.sio.manager.get_participants(namespace, room_filter or None)):
            await self.sio.enter_room(sid, room, namespace=namespace)

    async def admin_leave_room(self, _sid: str, namespace: str, room: Any, room_filter: Any = None) -> None:
        """The UI's ``leave``: the sockets of a namespace (or of the filter) leave ``room``."""
        for sid, _ in list(self.sio.manager.get_participants(namespace, room_filter or None)):
            await self.sio.leave_room(sid, room, namespace=namespace)

    async def admin_disconnect(self, _sid: str, namespace: str, close: Any = False, room_filter: Any = None) -> None:
        """The UI's ``_disconnect``: disconnect the sockets of a namespace (or of the filter)
        from it; with ``close``, close their whole connections."""
        manager = self.sio.manager
        for sid, eio_sid in list(manager.get_participants(namespace, room_filter or None)):
            if close:
                await self.sio.eio.disconnect(eio_sid)
            else:
                await self.sio.disconnect(sid, namespace=namespace)

    # -- hooks (called by the server and the manager) ----------------------------------------------

    def client_opened(self) -> None:
        """A new Engine.IO connection."""
        self.event_buffer.push("rawConnection")

    def socket_connected(self, sock: Socket) -> None:
        """A socket is connected to its namespace (the CONNECT packet is on its way)."""
        namespace, sid = sock.namespace, sock.sid
        if self.development:
            now = time.time()
            self.connected_at[(namespace, sid)] = now
            if sock.conn.transport == "polling":
                self.polling.add((namespace, sid))
            if self._watched():
                self._emit("socket_connected", (self.serialize_socket(sock), _iso(now)))
        if namespace == self.admin_namespace:
            self._admin_joined(sid)

    def socket_disconnected(self, sock: Socket, reason: str) -> None:
        """A socket leaves its namespace (still in its rooms)."""
        key = (sock.namespace, sock.sid)
        self.new_sessions.pop(sock.sid, None)
        if self.connected_at.pop(key, None) is None:
            return
        self.polling.discard(key)
        if not self._watched():
            return
        now = _iso(time.time())
        for room in self.sio.manager.get_rooms(sock.sid, sock.namespace):
            self._emit("room_left", (sock.namespace, _room_name(room), sock.sid, now))
        self._emit("socket_disconnected", (sock.namespace, sock.sid, reason, now))

    def room_joined(self, namespace: str, room: Any, sid: str) -> None:
        """``sid`` entered ``room``."""
        if (namespace, sid) in self.connected_at and self._watched():
            self._emit("room_joined", (namespace, _room_name(room), sid, _iso(time.time())))

    def room_left(self, namespace: str, room: Any, sid: str) -> None:
        """``sid`` left ``room``."""
        if (namespace, sid) in self.connected_at and self._watched():
            self._emit("room_left", (namespace, _room_name(room), sid, _iso(time.time())))

    def event_received(self, sock: Socket, data: list[Any]) -> None:
        """A client sent an event (``data``: the name, then the arguments)."""
        if self.development and sock.namespace != self.admin_namespace and self._watched():
            self._emit("event_received", (sock.namespace, sock.sid, data, _iso(time.time())))

    def event_sent(self, event: str, data: Any, namespace: str, to: Any, skip_sid: Any) -> None:
        """The server emits ``event``: while an admin client watches, one ``event_sent`` per
        recipient of this process (as the npm package reports them), and the packets and bytes
        are counted."""
        if namespace == self.admin_namespace or not self._watched():
            return
        manager = self.sio.manager
        skip = set(skip_sid) if isinstance(skip_sid, (list, tuple, set)) else {skip_sid}
        rooms = to if isinstance(to, (list, tuple, set)) else [to]
        recipients: dict[str, None] = {}
        for room in rooms:
            for sid, _ in manager.get_participants(namespace, room):
                if sid not in skip:
                    recipients[sid] = None
        if not recipients:
            return
        args = event_args(event, data)
        # The packet's size, from a second encode: only while instrumented, once per emit.
        enc = manager.encode(EVENT, namespace, args)
        size = len(enc.message) + sum(len(a) for a in enc.attachments)
        self.event_buffer.push("packetsOut", None, len(recipients))
        self.event_buffer.push("bytesOut", None, size * len(recipients))
        if self.development:
            now = _iso(time.time())
            for sid in recipients:
                self._emit("event_sent", (namespace, sid, args, now))

    # -- reports -----------------------------------------------------------------------------------

    def _watched(self) -> bool:
        """True while an admin client is connected (to this process)."""
        return bool(self.sio.manager.sockets.get(self.admin_namespace))

    def _emit(self, event: str, data: Any, to: Any = None) -> None:
        self.sio.manager.emit_now(event, data, self.admin_namespace, to)

    def namespaces(self) -> list[str]:
        """Every namespace the server knows: with handlers, accepted, or with sockets."""
        sio = self.sio
        names = set(sio.handlers) | set(sio.namespace_handlers) | set(sio.manager.get_namespaces())
        if isinstance(sio.namespaces, list):
            names.update(sio.namespaces)
        names.add(self.admin_namespace)
        return sorted(n for n in names if isinstance(n, str) and n != "*")

    def server_stats(self, aggregated: bool = True) -> dict[str, Any]:
        """The ``server_stats`` payload (``aggregated``: take the counters gathered so far)."""
        conns = list(self.sio.eio.sockets.values())
        sockets = self.sio.manager.sockets
        return {
            "serverId": self.server_id,
            "hostname": HOSTNAME,
            "pid": os.getpid(),
            "uptime": time.time() - self.started,
            "clientsCount": len(conns),
            "pollingClientsCount": sum(1 for c in conns if c.transport == "polling"),
            "aggregatedEvents": self.event_buffer.take() if aggregated else [],
            "namespaces": [{"name": n, "socketsCount": len(sockets.get(n, ()))} for n in self.namespaces()],
        }

    def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of this process, serialized for the UI."""
        return [self.serialize_socket(sock) for socks in list(self.sio.manager.sockets.values())
                for sock in list(socks.values()) if sock.connected]

    def serialize_socket(self, sock: Socket) -> dict[str, Any]:
        """One socket as the UI shows it (the npm package's shape)."""
        conn = sock.conn
        environ = conn.environ or {}
        headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items()
                   if isinstance(k, str) and k.startswith("HTTP_")}
        for name, key in (("content-type", "CONTENT_TYPE"), ("content-length", "CONTENT_LENGTH")):
            if environ.get(key):
                headers[name] = environ[key]
        query_string = environ.get("QUERY_STRING", "") or ""
        address = (headers.get("cf-connecting-ip") or headers.get("x-forwarded-for")
                   or environ.get("REMOTE_ADDR", ""))
        issued = self.connected_at.get((sock.namespace, sock.sid), 0.0)
        path = environ.get("PATH_INFO", "") or ""
        return {
            "id": sock.sid,
            "clientId": conn.sid,
            "transport": conn.transport,
            "nsp": sock.namespace,
            "data": {},
            "handshake": {
                "address": address,
                "headers": headers,
                "query": dict(parse_qsl(query_string)),
                "issued": int(issued * 1000),
                "secure": environ.get("wsgi.url_scheme") == "https",
                "time": _iso(issued) if issued else "",
                "url": path + ("?" + query_string if query_string else ""),
                "xdomain": "origin" in headers,
            },
            "rooms": [_room_name(r) for r in self.sio.manager.get_rooms(sock.sid, sock.namespace)],
        }

    def _check_upgrades(self) -> None:
        """Report the sockets whose connection went from polling to WebSocket."""
        manager = self.sio.manager
        for key in list(self.polling):
            sock = manager.get_socket(key[1], key[0])
            if sock is None:
                self.polling.discard(key)
            elif sock.conn.transport != "polling":
                self.polling.discard(key)
                self._emit("socket_updated", {"id": key[1], "nsp": key[0], "transport": sock.conn.transport})

    async def _stats_loop(self) -> None:
        """Every ``server_stats_interval`` seconds while admin clients are connected."""
        while self._watched():
            await asyncio.sleep(self.server_stats_interval)
            if self.sio.admin is not self:
                return
            if self.development:
                self._check_upgrades()
            self._emit("server_stats", self.server_stats())
