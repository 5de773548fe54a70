"""Engine.IO v4 server: sessions, handshake, long-polling, upgrade and the heartbeat sweep.

``AsyncServer`` here has python-engineio's ``AsyncServer`` API (``on``, ``send``, ``disconnect``,
sessions), so python-engineio users get a drop-in; fastio's Socket.IO server is built on it.
Transport work (HTTP parsing, frames, write coalescing) is in the compiled core; this module only
decides what each request means.
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import time
import zlib
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

import orjson

from fastio._core.conn import Conn, Flusher, heartbeat
from fastio._core.eio import CLOSE, MESSAGE, NOOP, OPEN, decode_payload, encode_packet
from fastio._core.wsframe import DEFAULT_PARTIAL_BUDGET, set_partial_budget
from fastio.base import frameworks
from fastio.base.handlers import fit_args, positional_capacity, registrar
from fastio.base.util import AsyncioHelpers, SessionContext, make_logger, start_eagerly, then
from fastio.engineio.eio3 import decode_payload_v3, encode_payload_v3
from fastio.engineio.environ import request_environ

__all__ = ["AsyncServer"]

default_logger = logging.getLogger("fastio.engineio")

# Node engine.io's error codes, sent as {"code": N, "message": "..."} with HTTP 400.
UNKNOWN_TRANSPORT = 0
UNKNOWN_SID = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5
_ERROR_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


# python-engineio's disconnect(sid[, reason]): a handler may leave the reason out.
_OPTIONAL_ARGS = {"disconnect": 1}

_NOOP_PACKET = encode_packet(NOOP)
_CLOSE_PACKET = encode_packet(CLOSE)


_QUERIES: dict[bytes, dict[str, str]] = {}

# Packets of one polling POST handled per loop iteration.
_POST_SLICE = 4096
#: Seconds ``shutdown()`` waits for long-polling clients between two polls to fetch their close
#: packet (a client polls again at once, so this is only reached by clients that are gone).
SHUTDOWN_DRAIN = 1.0


class _Done:
    """What ``handle_request`` returns: awaiting it finishes at once with None."""

    __slots__ = ()

    def __await__(self) -> Any:
        return None
        yield  # pragma: no cover - makes this a generator


_DONE = _Done()


def _request_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The request object of a ``handle_request`` call, or TypeError for python-engineio's
    framework call forms, which fastio serves through its integrations."""
    if len(args) == 1 and not kwargs:
        req = args[0]
    elif not args and len(kwargs) == 1 and ("req" in kwargs or "request" in kwargs):
        req = kwargs.get("req", kwargs.get("request"))
    elif len(args) == 3 and isinstance(args[0], dict) and "type" in args[0]:
        raise TypeError("handle_request() takes a request object, not an ASGI (scope, receive, "
                        "send): serve ASGI with fastio.ASGIApp(server)")
    else:
        raise TypeError("handle_request() takes one request object")
    if not hasattr(req, "respond") or not hasattr(req, "query_string"):
        raise TypeError("handle_request() takes a fastio request (native or bridged), not %s: "
                        "use fastio.ASGIApp(server) for ASGI and server.attach(app) for aiohttp"
                        % type(req).__name__)
    return req


def _parse_query(qs: bytes) -> dict[str, str]:
    """The first value of each query parameter (the engine reads only EIO, transport and sid).

    The result is shared between requests with the same query string: read it, never change it."""
    out = _QUERIES.get(qs)
    if out is not None:
        return out
    if b"%" in qs or b"+" in qs:
        out = {k: v[0] for k, v in parse_qs(qs.decode("latin-1")).items()}
    else:
        out = {}
        for part in qs.decode("latin-1").split("&"):
            k, _, v = part.partition("=")
            if k and v and k not in out:
                out[k] = v
    # Handshake queries repeat (no sid, no cache-busting t=); per-session ones do not.  Short
    # ones only: the cache must not become a store of whatever long strings clients send.
    if "sid" not in out and "t" not in out and len(qs) <= 256 and len(_QUERIES) < 1024:
        _QUERIES[qs] = out
    return out


class AsyncServer(AsyncioHelpers):
    """An Engine.IO v4 server with python-engineio's ``AsyncServer`` interface.

    Options keep python-engineio's names and defaults: ``ping_interval`` (seconds, or a tuple
    ``(interval, grace)``), ``ping_timeout``, ``max_http_buffer_size``, ``allow_upgrades``,
    ``http_compression``, ``compression_threshold``, ``cookie``, ``cors_allowed_origins``,
    ``cors_credentials``, ``logger``, ``json``, ``async_handlers``, ``monitor_clients``,
    ``transports``; plus ``engineio_path``, the URL path it serves (default ``engine.io``), and
    ``max_write_buffer``, the bytes queued for a client that does not read before it is
    disconnected (each queued packet counts its size plus a fixed overhead);
    ``partial_message_timeout``, the seconds a WebSocket frame, fragmented message or binary
    packet may stay incomplete before the session is closed (0 disables it); and
    ``max_partial_buffer``, the bytes of such incomplete messages held across all connections
    of the process, past which new partial data closes its connection (WebSocket close code
    1008).  docs/reliability.md lists every limit.

    ``allow_eio3`` (off by default, as Node's ``allowEIO3``) also accepts Engine.IO v3 clients
    (``EIO=3``: socket.io-client 2.x); docs/eio3.md says what changes for them.

    ``websocket_compression`` (default False, as Node's ``perMessageDeflate``) lets the native
    server's WebSockets negotiate permessage-deflate; messages of ``compression_threshold``
    bytes or more are then compressed (docs/compression.md).
    """

    class reason:
        """Disconnection reasons, as python-engineio names them."""

        SERVER_DISCONNECT = "server disconnect"
        CLIENT_DISCONNECT = "client disconnect"
        PING_TIMEOUT = "ping timeout"
        TRANSPORT_CLOSE = "transport close"
        TRANSPORT_ERROR = "transport error"

    valid_transports = ["polling", "websocket"]
    event_names = ["connect", "disconnect", "message"]
    compression_methods = ["gzip", "deflate"]
    """The HTTP compressions a long-poll response may use, in order of preference (as
    python-engineio); a method removed from the list is never used."""
    sequence_number = 0
    """How many session ids ``generate_id`` has made, modulo 2**24 (python-engineio keeps the
    same counter; fastio's ids are 120 random bits and do not embed it)."""
    sid_prefix = ""
    """Put before every session id this server makes: ``fastio.run(workers=N)`` names each
    worker there, so the process that accepts connections routes a session's requests to it."""

    def __init__(
        self,
        async_mode: str | None = None,
        ping_interval: float | tuple[float, float] = 25,
        ping_timeout: float = 20,
        max_http_buffer_size: int = 1_000_000,
        allow_upgrades: bool = True,
        http_compression: bool = True,
        compression_threshold: int = 1024,
        websocket_compression: bool = False,
        cookie: str | dict[str, Any] | None = None,
        cors_allowed_origins: str | list[str] | Callable[..., bool] | None = None,
        cors_credentials: bool = True,
        logger: logging.Logger | bool = False,
        json: Any = None,
        async_handlers: bool = True,
        monitor_clients: bool | None = None,
        transports: str | list[str] | None = None,
        engineio_path: str = "engine.io",
        max_write_buffer: int = 16 * 1024 * 1024,
        partial_message_timeout: float = 20.0,
        max_partial_buffer: int = DEFAULT_PARTIAL_BUDGET,
        allow_request: Callable[[dict[str, Any]], Any] | None = None,
        on_initial_headers: Callable[[dict[str, str], dict[str, Any]], None] | None = None,
        on_headers: Callable[[dict[str, str], dict[str, Any]], None] | None = None,
        allow_eio3: bool = False,
        **kwargs: Any,
    ) -> None:
        if async_mode not in (None, "asgi", "aiohttp", "fastio", "native"):
            raise ValueError("Invalid async_mode specified")
        self.async_mode = async_mode or "fastio"
        if isinstance(ping_interval, tuple):
            self.ping_interval = float(ping_interval[0])
            self.ping_interval_grace_period = float(ping_interval[1])
        else:
            self.ping_interval = float(ping_interval)
            self.ping_interval_grace_period = 0.0
        self.ping_timeout = float(ping_timeout)
        self.max_http_buffer_size = int(max_http_buffer_size)
        self.allow_upgrades = allow_upgrades
        self.http_compression = http_compression
        self.compression_threshold = compression_threshold
        self.websocket_compression = bool(websocket_compression)
        self.cookie = cookie
        self.cors_allowed_origins = cors_allowed_origins
        self.cors_credentials = cors_credentials
        self.async_handlers = async_handlers
        self.monitor_clients = True if monitor_clients is None else monitor_clients
        if transports is not None:
            if isinstance(transports, str):
                transports = [transports]
            transports = [t for t in transports if t in self.valid_transports]
            if not transports:
                raise ValueError("No valid transports provided")
        self.transports = transports or list(self.valid_transports)
        self.engineio_path = engineio_path.strip("/")
        self.max_write_buffer = max_write_buffer
        self.partial_message_timeout = float(partial_message_timeout)
        self.max_partial_buffer = int(max_partial_buffer)
        # One budget for the process (the frame readers and packet decoders share it).
        set_partial_budget(self.max_partial_buffer)
        # Node engine.io's allowRequest and its "initial_headers"/"headers" events.
        self.allow_request = allow_request
        self.on_initial_headers = on_initial_headers
        self.on_headers = on_headers
        self.allow_eio3 = bool(allow_eio3)
        # The v3 sessions whose client asked for base64 (b64=1): no binary payloads for them.
        self._eio3_text_only: set[str] = set()
        self.json = json
        self.logger = make_logger("fastio.engineio", logger)
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.sockets: dict[str, Conn] = {}
        self._draining: dict[str, tuple[Conn, float]] = {}
        # Set when the last draining session fetched its close packet (shutdown waits for it).
        self._drained: asyncio.Event | None = None
        self._flusher: Flusher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._hb_due = 0.0  # when the heartbeat task wakes next (time.monotonic())
        self._hb_wake: asyncio.Future[None] | None = None
        self._rand = b""
        self._rand_pos = 0
        self._upgrading: dict[Conn, float] = {}
        self._posting: set[Conn] = set()  # sessions whose large POST is being handled
        self._upgrade_task: asyncio.Task[None] | None = None
        self.message_sink: Callable[[Conn, bytes, bool], Any] = self._dispatch_message
        self.close_sink: Callable[[Conn, str], Any] | None = None
        # Where an Engine.IO v3 session's messages go, when the layer above reads them
        # differently (Socket.IO v4); otherwise to message_sink like any other.
        self.eio3_message_sink: Callable[[Conn, bytes, bool], Any] | None = None
        # Values the compiled connection reads.
        self.heartbeat_interval = self.ping_interval + self.ping_interval_grace_period

    # -- public API (python-engineio) -------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """Always True: fastio runs on asyncio."""
        return True

    def async_modes(self) -> list[str]:
        """The ``async_mode`` values this server accepts, the default first (python-engineio
        lists its framework integrations here): ``'fastio'`` (the native server, also
        ``'native'``), ``'asgi'`` and ``'aiohttp'``."""
        return ["fastio", "asgi", "aiohttp"]

    def attach(self, app: Any, engineio_path: str = "engine.io") -> None:
        """Serve Engine.IO from an aiohttp ``web.Application`` under ``/<engineio_path>/``."""
        frameworks.attach(self, app, engineio_path)

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register a handler for ``'connect'``, ``'message'`` or ``'disconnect'`` (decorator too)."""
        if event not in self.event_names:
            raise ValueError("Invalid event")

        return registrar(lambda h: self.handlers.__setitem__(event, h), handler)

    async def send(self, sid: str, data: str | bytes | bytearray | memoryview | dict[str, Any] | list[Any]) -> None:
        """Send a message to a client: str as text, bytes-like as binary, a dict or a list as
        JSON text (with the ``json`` module given to the server, else orjson), as
        python-engineio does.  An unknown ``sid`` is logged and ignored."""
        self.send_nowait(sid, data)

    def send_nowait(self, sid: str, data: str | bytes | bytearray | memoryview | dict[str, Any] | list[Any]) -> None:
        """Queue a message to a client without awaiting (the same rules as ``send``)."""
        conn = self.sockets.get(sid)
        if conn is None:
            self.logger.warning("Cannot send to sid %s", sid)
            return
        if isinstance(data, str):
            conn.send_eio(encode_packet(MESSAGE, data))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            conn.send_binary(data)
        else:
            conn.send_eio(encode_packet(MESSAGE, self._json_text(data)))

    async def send_packet(self, sid: str, pkt: Any) -> None:
        """Send a raw Engine.IO packet to a client (python-engineio's ``send_packet``).

        ``pkt`` is any object with python-engineio's ``Packet`` attributes ``packet_type`` (an
        int, 0 to 6) and ``data`` (None, str, bytes-like, or a dict or list sent as JSON);
        python-engineio's own ``engineio.packet.Packet`` works.  Only a message (type 4) may
        carry binary data.  An unknown ``sid`` is logged and ignored."""
        ptype = pkt.packet_type
        data = pkt.data
        if not isinstance(ptype, int) or not 0 <= ptype <= NOOP:
            raise ValueError("Invalid packet type %r" % (ptype,))
        conn = self.sockets.get(sid)
        if conn is None:
            self.logger.warning("Cannot send to sid %s", sid)
            return
        if isinstance(data, (bytes, bytearray, memoryview)):
            if ptype != MESSAGE:
                raise ValueError("Binary packets can only be of type MESSAGE")
            conn.send_binary(data)
        elif data is None or isinstance(data, str):
            conn.send_eio(encode_packet(ptype, data))
        else:
            conn.send_eio(encode_packet(ptype, self._json_text(data)))

    def _json_text(self, data: Any) -> bytes | str:
        if self.json is not None:
            return self.json.dumps(data, separators=(",", ":"))
        return orjson.dumps(data)

    async def get_session(self, sid: str) -> dict[str, Any]:
        """Return the user session dictionary of a client."""
        conn = self._get(sid)
        if conn.data is None:
            conn.data = {}
        return conn.data

    async def save_session(self, sid: str, session: dict[str, Any]) -> None:
        """Store the user session dictionary of a client."""
        self._get(sid).data = session

    def session(self, sid: str) -> SessionContext:
        """Async context manager giving the client's session dict, saved on exit."""
        return SessionContext(lambda: self.get_session(sid), lambda s: self.save_session(sid, s))

    async def disconnect(self, sid: str | None = None) -> None:
        """Close one client's session, or every session when ``sid`` is None."""
        if sid is None:
            for conn in list(self.sockets.values()):
                conn.close(self.reason.SERVER_DISCONNECT, True)
        else:
            one = self.sockets.get(sid)
            if one is not None:
                one.close(self.reason.SERVER_DISCONNECT, True)

    def transport(self, sid: str) -> str:
        """'websocket' or 'polling'."""
        return self._get(sid).transport

    def get_environ(self, sid: str) -> dict[str, Any] | None:
        """The environ dictionary of a connected client."""
        conn = self.sockets.get(sid)
        return conn.environ if conn is not None else None

    async def shutdown(self) -> None:
        """Close every session (telling each client) and stop the heartbeat.

        A long-polling client between two polls gets its close packet on its next poll, as from
        Node's engine.io: shutdown waits up to ``SHUTDOWN_DRAIN`` seconds (1) for those polls, so
        the host does not close their connections first (the client would see a poll error
        instead of the close)."""
        await self.disconnect()
        if self._flusher is not None:
            self._flusher.run()
        await self.wait_drained(SHUTDOWN_DRAIN)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
        if self._upgrade_task is not None:
            self._upgrade_task.cancel()
            self._upgrade_task = None
        self._upgrading.clear()

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until every closed long-polling session has fetched its close packet, at most
        ``timeout`` seconds; True if they all did."""
        if not self._draining:
            return True
        self._drained = asyncio.Event()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return not self._draining
        finally:
            self._drained = None

    def generate_id(self) -> str:
        """A new random, URL-safe session id (120 bits from the OS's CSPRNG)."""
        pos = self._rand_pos
        if pos + 15 > len(self._rand):
            # One getrandom() call serves 256 ids.
            self._rand = os.urandom(15 * 256)
            pos = 0
        self._rand_pos = pos + 15
        self.sequence_number = (self.sequence_number + 1) & 0xFFFFFF
        return self.sid_prefix + base64.urlsafe_b64encode(self._rand[pos:pos + 15]).decode()

    # -- request handling ---------------------------------------------------------------------------

    def handles_path(self, path: str) -> bool:
        """True when ``path`` is under this server's Engine.IO path."""
        p = self.engineio_path
        return path == "/" + p or path.startswith("/" + p + "/")

    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """Serve one HTTP request under the Engine.IO path.

        fastio's hosts (the native server, ``ASGIApp``, ``attach``) call it with their request
        object (``handle_request(req)`` or ``handle_request(request=req)``); it answers the
        request itself, now or later, and returns an already completed awaitable, so
        python-engineio's ``await eio.handle_request(...)`` works too.  python-engineio's
        framework call forms (an ASGI ``(scope, receive, send)``, an aiohttp ``web.Request``)
        are served by fastio's integrations instead: ``fastio.ASGIApp(server)`` and
        ``server.attach(app)``; passing them here raises ``TypeError`` saying so."""
        req = _request_arg(args, kwargs)
        self._serve(req)
        return _DONE

    def _serve(self, req: Any) -> None:
        if self._flusher is None or self._loop.is_closed():  # type: ignore[union-attr]
            self.ensure_started()
        method = req.method
        if method == "OPTIONS":
            self._respond(req, 200, self._cors_headers(req) + [("Content-Type", "text/plain")], b"")
            return
        if not self._origin_allowed(req):
            self._error(req, BAD_REQUEST, "Not an accepted origin.", status=400)
            return
        query = _parse_query(req.query_string)
        if query.get("EIO") != "4" and not (self.allow_eio3 and query.get("EIO") == "3"):
            self._error(req, UNSUPPORTED_PROTOCOL_VERSION)
            return
        transport = query.get("transport")
        if transport not in self.valid_transports or transport not in self.transports:
            self._error(req, UNKNOWN_TRANSPORT)
            return
        if transport == "websocket" and req.upgrade:
            reason = self._bad_websocket_handshake(req)
            if reason is not None:
                self._error(req, BAD_REQUEST, reason)
                return
        sid = query.get("sid")
        if sid is None:
            if transport == "websocket" and not req.upgrade:
                self._error(req, BAD_REQUEST)
            elif method != "GET":
                self._error(req, BAD_HANDSHAKE_METHOD)
            elif self.allow_request is not None:
                self._allow_then_handshake(req, transport)
            else:
                self._handshake(req, transport)
            return
        conn = self.sockets.get(sid)
        if conn is None:
            drained = self._draining.pop(sid, None)
            if not self._draining and self._drained is not None:
                self._drained.set()
            if drained is not None and method == "GET" and transport == "polling":
                self._poll_response(req, drained[0].take_poll() or _CLOSE_PACKET, None, drained[0])
                return
            self._error(req, UNKNOWN_SID)
            return
        if transport == "websocket":
            self._websocket_upgrade(req, conn)
        else:
            self._polling(req, conn, method)

    @staticmethod
    def _bad_websocket_handshake(req: Any) -> str | None:
        """Why an upgrade request is not a valid RFC 6455 opening handshake (None if it is)."""
        if req.method != "GET":
            return "WebSocket handshake must use GET"
        key = req.header(b"sec-websocket-key")
        if not key or len(key.strip()) != 24:
            return "Missing or invalid Sec-WebSocket-Key"
        version = req.header(b"sec-websocket-version")
        if version is None or version.strip() != b"13":
            return "Unsupported Sec-WebSocket-Version"
        return None

    def _allow_then_handshake(self, req: Any, transport: str) -> None:
        """Node's ``allowRequest``: ``allow_request(environ)`` (sync or async) returns True or
        None to go on, False (403 "Forbidden"), a message (403 with it) or ``(status, message)``."""
        def decided(verdict: Any) -> None:
            if verdict is None or verdict is True:
                self._handshake(req, transport)
            elif isinstance(verdict, tuple):
                self._error(req, FORBIDDEN, str(verdict[1]), status=int(verdict[0]))
            else:
                self._error(req, FORBIDDEN, verdict if isinstance(verdict, str) else None, status=403)

        def failed(exc: BaseException) -> None:
            self.logger.error("allow_request failed", exc_info=exc)
            self._error(req, FORBIDDEN, status=403)

        try:
            verdict = start_eagerly(self.allow_request(self.request_environ(req)))  # type: ignore[misc]
        except Exception as exc:
            failed(exc)
            return
        then(verdict, decided, failed)

    def _hooked_headers(self, req: Any, headers: list[Any], hook: Callable[..., None]) -> list[Any]:
        """``headers`` as ``hook`` (``on_initial_headers`` or ``on_headers``) leaves them: it gets
        them as a dict it may change, and the request's environ."""
        merged = dict(headers)
        hook(merged, self.request_environ(req))
        return list(merged.items())

    def _handshake(self, req: Any, transport: str) -> None:
        sid = self.generate_id()
        assert self._flusher is not None  # handle_request started the engine
        conn = Conn(sid, self, self._flusher, self.max_write_buffer)
        conn.on_message = self.message_sink
        conn.environ = self.request_environ(req)
        conn.next_ping = time.monotonic() + self.heartbeat_interval
        query = _parse_query(req.query_string)
        if query.get("EIO") == "3":
            # Engine.IO v3: the client pings; the sweep never pings it and closes it when no
            # ping came within the interval plus the timeout (Node's resetPingTimeout).
            conn.eio3 = True
            conn.pong_deadline = conn.next_ping + self.ping_timeout
            conn.on_message = self._eio3_message
            if query.get("b64"):
                self._eio3_text_only.add(sid)
        upgrades = ["websocket"] if (self.allow_upgrades and transport == "polling"
                                     and "websocket" in self.transports) else []
        conn.send_eio(encode_packet(OPEN, orjson.dumps({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": round(self.heartbeat_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000),
            "maxPayload": self.max_http_buffer_size,
        })))
        self.sockets[sid] = conn
        if (conn.pong_deadline or conn.next_ping) < self._hb_due:
            self._wake_heartbeat()
        result = self._trigger("connect", sid, conn.environ)

        def finish(ret: Any) -> None:
            if ret is not None and ret is not True:
                self.sockets.pop(sid, None)
                self.logger.warning("Application rejected connection")
                body = orjson.dumps(ret if ret is not False else "Unauthorized")
                self._respond(req, 401, self._cors_headers(req) + [("Content-Type", "application/json")], body)
                return
            if conn.closed:
                self._error(req, BAD_REQUEST)
                return
            self.logger.info("%s: new %s connection from %s (upgrades %s, ping %d/%d ms)", sid, transport,
                             conn.environ.get("REMOTE_ADDR"), upgrades, round(self.heartbeat_interval * 1000),
                             round(self.ping_timeout * 1000))
            if transport == "websocket":
                ws = req.accept_websocket(conn, False)
                if ws is None:
                    conn.close(self.reason.TRANSPORT_CLOSE, False)
                    return
                conn.upgrade(ws)
            else:
                headers = self._cors_headers(req) + self._cookie_headers(sid)
                if self.on_initial_headers is not None:
                    headers = self._hooked_headers(req, headers, self.on_initial_headers)
                self._poll_response(req, conn.take_poll() or _NOOP_PACKET, headers, conn)

        def failed(exc: BaseException) -> None:
            self.logger.error("connect handler failed", exc_info=exc)
            finish(False)

        then(result, finish, failed)

    def _websocket_upgrade(self, req: Any, conn: Conn) -> None:
        if not req.upgrade:
            self._error(req, BAD_REQUEST)
            return
        if conn.upgraded:
            # A second WebSocket for an upgraded session: accept it at the HTTP level, then close.
            ws = req.accept_websocket(None, True)
            if ws is not None:
                ws.ws_close(1000, "")
            return
        if not self.allow_upgrades:
            self._error(req, BAD_REQUEST)
            return
        self.logger.info("%s: upgrade to websocket requested (probing)", conn.sid)
        req.accept_websocket(conn, True)

    def _polling(self, req: Any, conn: Conn, method: str) -> None:
        if conn.upgraded:
            self._error(req, BAD_REQUEST)
            return
        if conn.pong_deadline and time.monotonic() >= conn.pong_deadline:
            # Past the deadline the session is gone, whether or not the sweep got to it yet.
            conn.close(self.reason.PING_TIMEOUT, False)
            self._error(req, UNKNOWN_SID)
            return
        if method == "GET":
            if conn.poll_waiter is not None:
                self.logger.info("%s: a second concurrent poll; closing the session", conn.sid)
                self._error(req, BAD_REQUEST)
                conn.close(self.reason.TRANSPORT_ERROR, True)
                return
            data = conn.take_poll()
            if data is not None:
                self._poll_response(req, data, None, conn)
            elif conn in self._upgrading:
                # The client has seen "3probe": end this poll at once, the upgrade is under way.
                self._poll_response(req, _NOOP_PACKET, None, conn)
            else:
                def aborted(r: Any, conn: Conn = conn) -> None:
                    if conn.poll_waiter is r:
                        conn.poll_waiter = None
                        conn.close(self.reason.TRANSPORT_CLOSE, False)

                req.on_abort = aborted
                conn.poll_waiter = req
        elif method == "POST":
            if len(req.body) > self.max_http_buffer_size:
                self._error(req, BAD_REQUEST, "Payload too large", status=413)
                conn.close(self.reason.TRANSPORT_ERROR, False)
                return
            try:
                packets = decode_payload(req.body, 0) if not conn.eio3 else decode_payload_v3(req.body)
            except ValueError as exc:
                self.logger.info("%s: bad polling payload: %s", conn.sid, exc)
                self._error(req, BAD_REQUEST, "Bad request: %s" % exc)
                # As Node's engine.io: the session ends at once, no close packet left to poll.
                conn.close(self.reason.TRANSPORT_ERROR, False)
                return
            if conn in self._posting:
                self._error(req, BAD_REQUEST, "Overlapping POST requests")
                conn.close(self.reason.TRANSPORT_ERROR, False)
                return
            if len(packets) <= _POST_SLICE:
                self._respond(req, 200, self._cors_headers(req) + [("Content-Type", "text/html")], b"ok")
                for ptype, data, binary in packets:
                    conn.on_packet(ptype, data, binary)
                    if conn.closed or conn.dropping:
                        break
                return
            # A large payload of tiny packets (a 1 MB body holds 300,000 pings) is handled a
            # slice per loop iteration, so other clients keep their turns; the response waits
            # until it is done, and a second POST meanwhile is refused, as Node's engine.io
            # refuses overlapping POSTs.
            self._posting.add(conn)
            self._post_slice(req, conn, packets, 0)
        else:
            self._error(req, BAD_REQUEST)

    def _post_slice(self, req: Any, conn: Conn, packets: list[tuple[int, bytes, bool]], start: int) -> None:
        end = min(start + _POST_SLICE, len(packets))
        for i in range(start, end):
            ptype, data, binary = packets[i]
            conn.on_packet(ptype, data, binary)
            if conn.closed or conn.dropping:
                end = len(packets)
                break
        if end < len(packets):
            asyncio.get_running_loop().call_soon(self._post_slice, req, conn, packets, end)
            return
        self._posting.discard(conn)
        self._respond(req, 200, self._cors_headers(req) + [("Content-Type", "text/html")], b"ok")

    # -- responses ------------------------------------------------------------------------------------

    def _error(self, req: Any, code: int, message: str | None = None, status: int = 400) -> None:
        message = message or _ERROR_MESSAGES[code]
        self.logger.info("%s %s?%s from %s: %d %s", req.method, req.path, req.query_string.decode("latin-1"),
                         req.client[0] if req.client else "?", status, message)
        body = orjson.dumps({"code": code, "message": message})
        self._respond(req, status, self._cors_headers(req) + [("Content-Type", "application/json")], body)

    def _poll_response(self, req: Any, body: bytes, headers: list[Any] | None = None,
                       conn: Conn | None = None) -> None:
        if headers is None:
            headers = self._cors_headers(req)
        content_type = "text/plain; charset=UTF-8"
        if conn is not None and conn.eio3:
            body, binary = encode_payload_v3(body, conn.sid not in self._eio3_text_only)
            if binary:
                content_type = "application/octet-stream"
        headers = headers + [("Content-Type", content_type)]
        if self.http_compression and len(body) >= self.compression_threshold:
            accept = (req.header(b"accept-encoding") or b"").decode("latin-1")
            encodings = [e.split(";")[0].strip() for e in accept.split(",")]
            for method in self.compression_methods:
                if method in encodings:
                    if method == "gzip":
                        body = gzip.compress(body)
                    elif method == "deflate":
                        body = zlib.compress(body)
                    else:
                        continue
                    headers.append(("Content-Encoding", method))
                    break
        self._respond(req, 200, headers, body)

    def _respond(self, req: Any, status: int, headers: list[Any], body: bytes) -> None:
        if self.on_headers is not None:
            headers = self._hooked_headers(req, headers, self.on_headers)
        req.respond(status, headers, body)

    def answer_poll(self, conn: Conn, req: Any, body: bytes) -> None:
        """Send ``body`` (an encoded payload) as the response to ``conn``'s long poll ``req``."""
        req.on_abort = None
        self._poll_response(req, body, None, conn)

    def _cookie_headers(self, sid: str) -> list[tuple[str, str]]:
        if not self.cookie:
            return []
        attrs = self.cookie if isinstance(self.cookie, dict) else {
            "name": self.cookie, "path": "/", "SameSite": "Lax"}
        cookie = attrs.get("name", "io") + "=" + sid
        for k, v in attrs.items():
            if k == "name":
                continue
            if callable(v):
                v = v()
            cookie += "; " + k if v is True else "; %s=%s" % (k, v)
        return [("Set-Cookie", cookie)]

    def _allowed_origins(self, req: Any) -> list[str] | None:
        """None means any origin; a list names the allowed ones."""
        allowed = self.cors_allowed_origins
        if allowed is None:
            host = req.header(b"host")
            origins = []
            if host is not None:
                origins.append("http://" + host.decode("latin-1"))
                proto = req.header(b"x-forwarded-proto")
                fhost = req.header(b"x-forwarded-host")
                if proto is not None or fhost is not None:
                    scheme = (proto or b"http").decode("latin-1").split(",")[0].strip()
                    h = (fhost or host).decode("latin-1").split(",")[0].strip()
                    origins.append(scheme + "://" + h)
            return origins
        if allowed == "*":
            return None
        if isinstance(allowed, str):
            return [allowed]
        if callable(allowed):
            origin = req.header(b"origin")
            origin_s = origin.decode("latin-1") if origin is not None else None
            if positional_capacity(allowed) in (0, 1):  # the older cors_allowed_origins(origin)
                ok = allowed(origin_s)
            else:
                ok = allowed(origin_s, self.request_environ(req))
            return [origin_s] if ok and origin_s else []
        if "*" in allowed:
            return None
        return list(allowed)

    def _origin_allowed(self, req: Any) -> bool:
        if self.cors_allowed_origins == []:
            return True  # CORS handling disabled altogether
        origin = req.header(b"origin")
        if origin is None:
            return True
        allowed = self._allowed_origins(req)
        return allowed is None or origin.decode("latin-1") in allowed

    def _cors_headers(self, req: Any) -> list[tuple[str, str]]:
        if self.cors_allowed_origins == []:
            return []
        headers: list[tuple[str, str]] = []
        origin = req.header(b"origin")
        if origin is not None:
            allowed = self._allowed_origins(req)
            o = origin.decode("latin-1")
            if allowed is None or o in allowed:
                headers.append(("Access-Control-Allow-Origin", o))
        if req.method == "OPTIONS":
            headers.append(("Access-Control-Allow-Methods", "OPTIONS, GET, POST"))
        acrh = req.header(b"access-control-request-headers")
        if acrh is not None:
            headers.append(("Access-Control-Allow-Headers", acrh.decode("latin-1")))
        if self.cors_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def request_environ(self, req: Any) -> dict[str, Any]:
        """The WSGI-style environ of ``req`` (the one its host built, if any)."""
        environ = getattr(req, "environ", None)
        return environ if environ is not None else request_environ(req)

    # -- called by the compiled core -------------------------------------------------------------

    def conn_closed(self, conn: Conn, reason: str) -> None:
        """The core closed ``conn``: forget it, tell the layer above, fire ``disconnect``."""
        sid = conn.sid
        self.sockets.pop(sid, None)
        if conn.eio3:
            self._eio3_text_only.discard(sid)
        if conn.close_queued and conn.pending:
            # The close packet waits for the client's next poll.
            self._draining[sid] = (conn, time.monotonic() + self.ping_timeout)
        self.logger.info("%s: closed (%s)", sid, reason)
        if self.close_sink is not None:
            try:
                self.close_sink(conn, reason)
            except Exception:
                self.logger.exception("error while closing %s", sid)
        self._trigger("disconnect", sid, reason)

    def overflow(self, conn: Conn) -> None:
        """``conn``'s write buffer passed ``max_write_buffer``: drop the client."""
        self.logger.warning("%s: write buffer over %d bytes; disconnecting a client that does not read",
                            conn.sid, self.max_write_buffer)
        asyncio.get_running_loop().call_soon(conn.close, self.reason.TRANSPORT_ERROR, False)

    def protocol_error(self, conn: Conn, message: str) -> None:
        """``conn`` broke the Engine.IO protocol: log it and close the session."""
        self.logger.info("%s: protocol error: %s", conn.sid, message)
        # A WebSocket gets the close packet; a polling session ends at once (Node's behaviour).
        conn.close(self.reason.TRANSPORT_ERROR, conn.upgraded)

    def message_error(self, conn: Conn, exc: BaseException) -> None:
        """The message sink raised ``exc`` for a message of ``conn``: log it."""
        self.logger.error("%s: error while handling a message", conn.sid, exc_info=exc)

    def _dispatch_message(self, conn: Conn, data: bytes, binary: bool) -> None:
        if not binary:
            try:
                text: Any = data.decode("utf-8")
            except UnicodeDecodeError:
                self.protocol_error(conn, "invalid UTF-8 in a text message")
                return
        else:
            text = data
        self._trigger("message", conn.sid, text)

    def _eio3_message(self, conn: Conn, data: bytes, binary: bool) -> Any:
        # An Engine.IO v3 WebSocket binary message starts with its packet type (4); the polling
        # decoder has already taken it off.
        if binary and conn.upgraded:
            if data[:1] != b"\x04":
                self.protocol_error(conn, "a binary packet that is not a message")
                return None
            data = data[1:]
        sink = self.eio3_message_sink or self.message_sink
        return sink(conn, data, binary)

    def probe_started(self, conn: Conn) -> None:
        """A WebSocket probe answered: until the upgrade completes, keep answering polls.

        The probe's "3probe" and the noop that ends the pending long poll travel on different
        connections, so the client may start a new poll before it sees "3probe" and then wait
        on it.  Like Node's engine.io, a noop goes to any waiting poll every 100 ms (one task
        per server, only while upgrades are in progress)."""
        self._upgrading[conn] = time.monotonic() + 10.0
        if self._upgrade_task is None or self._upgrade_task.done():
            self._upgrade_task = asyncio.get_running_loop().create_task(self._upgrade_watch())

    async def _upgrade_watch(self) -> None:
        while self._upgrading:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for conn, deadline in list(self._upgrading.items()):
                if conn.closed or conn.upgraded or now >= deadline:
                    del self._upgrading[conn]
                elif conn.poll_waiter is not None:
                    conn.end_poll()

    def conn_upgraded(self, conn: Conn, ws: Any) -> None:
        """``conn`` moved from long-polling to the WebSocket ``ws``."""
        self.logger.info("%s: upgraded to websocket", conn.sid)

    def _trigger(self, event: str, *args: Any) -> Any:
        handler = self.handlers.get(event)
        if handler is None:
            return None
        try:
            result = handler(*fit_args(handler, args, _OPTIONAL_ARGS.get(event, 0)))
        except Exception:
            self.logger.exception("%s handler error", event)
            return False if event == "connect" else None
        try:
            return start_eagerly(result)
        except Exception:
            self.logger.exception("%s handler error", event)
            return False if event == "connect" else None

    def _get(self, sid: str) -> Conn:
        conn = self.sockets.get(sid)
        if conn is None:
            raise KeyError("Session not found")
        return conn

    # -- heartbeat ----------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Bind to the running loop: the write flusher and the heartbeat task (idempotent)."""
        if self._flusher is None or self._loop is not asyncio.get_running_loop():
            self._loop = asyncio.get_running_loop()
            self._flusher = Flusher(self._loop)
            self._heartbeat_task = None
            self._hb_wake = None
            self._hb_due = 0.0
        if self._heartbeat_task is None and self.monitor_clients:
            self._heartbeat_task = self._loop.create_task(self._heartbeat())

    def _wake_heartbeat(self) -> None:
        wake = self._hb_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _heartbeat(self) -> None:
        """The one heartbeat task of the server: it sleeps until the earliest ping or pong
        deadline of all sessions (``_core/conn.pyx`` ``heartbeat``), so deadlines hold to the
        millisecond without a timer per session.  ``slack`` (1% of the shorter period, at most
        50 ms) lets pings due at nearly the same time share one pass."""
        interval = self.heartbeat_interval
        timeout = self.ping_timeout
        partial = self.partial_message_timeout
        slack = min(min(interval, timeout) / 100.0, 0.05)
        idle = max(interval, 0.001)
        if partial > 0:
            # Partial data starts without waking this task: looking at least once per
            # partial_message_timeout closes a stalled session within twice that.
            idle = min(idle, partial)
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            due = 0.0
            try:
                stalled: list[Conn] = []
                expired, due = heartbeat(list(self.sockets.values()), now, interval, timeout, slack,
                                         partial, stalled)
                for conn in expired:
                    conn.close(self.reason.PING_TIMEOUT, False)
                for conn in stalled:
                    self.logger.info("%s: a message stayed incomplete for over %g s; closing",
                                     conn.sid, partial)
                    conn.set_close_code(1008, "incomplete message timeout")
                    conn.close(self.reason.TRANSPORT_ERROR, False)
                if partial > 0 and self.sockets:
                    due = min(due or now + idle, now + partial)
                if self._draining:
                    for sid, (_, deadline) in list(self._draining.items()):
                        if now >= deadline:
                            del self._draining[sid]
                    due = min(due or now + idle, now + timeout)
            except Exception:  # the sweep must survive anything a handler does
                self.logger.exception("heartbeat sweep failed")
            now = time.monotonic()
            if not due:
                due = now + idle
            self._hb_due = due
            wake = self._hb_wake = loop.create_future()
            handle = loop.call_later(max(due - now, 0.0), self._wake_heartbeat)
            try:
                await wake
            finally:
                handle.cancel()
                self._hb_wake = None
                self._hb_due = 0.0
