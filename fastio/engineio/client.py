"""Engine.IO v4 client: HTTP long-polling, WebSocket (picows), and the upgrade between them.

The transport behaves like the JavaScript ``engine.io-client``:

- polling: one long-poll GET and at most one POST in flight, each on its own keep-alive HTTP/1.1
  connection (a small client on asyncio streams; an aiohttp client object is used instead when
  one is given as ``http_session``). POST bodies are split so none exceeds the server's ``maxPayload``.
- websocket: picows; text packets go as text frames, binary messages as binary frames.
- upgrade: with both transports allowed, polling connects first; a WebSocket is then opened with
  the sid and probed (``2probe`` / ``3probe``), polling is paused (the in-flight GET and
  POST finish), ``5`` is sent, and whatever was queued meanwhile goes out on the WebSocket. A
  failed probe leaves polling running.
- heartbeat: PINGs are answered with PONGs; no PING for ``pingInterval + pingTimeout`` closes
  the connection with ``'transport error'``.

Most users want :class:`fastio.AsyncClient` (Socket.IO); this class has python-engineio's
``AsyncClient`` interface for direct Engine.IO use.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
import time
import urllib.parse
from typing import Any, Callable

from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

from fastio import exceptions
from fastio._core import eio as _eio
from fastio._core.packet import configure_json, json_module
from fastio.base.util import AsyncioHelpers, make_logger

__all__ = ["AsyncClient"]

_OPEN = 0
_CLOSE = 1
_PING = 2
_PONG = 3
_MESSAGE = 4
_UPGRADE = 5
_NOOP = 6

_VALID_TRANSPORTS = ("polling", "websocket")

#: ``ws_connect`` keywords (picows) and ``loop.create_connection`` keywords it forwards.
_WS_OPTIONS = frozenset(inspect.signature(ws_connect).parameters) - {"ws_listener_factory", "url", "kwargs"}
_CONNECTION_OPTIONS = frozenset({
    "family", "proto", "flags", "local_addr", "server_hostname", "happy_eyeballs_delay",
    "interleave", "ssl_handshake_timeout", "ssl_shutdown_timeout",
})

_tasks: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Hold a reference to a fire-and-forget task until it ends."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


class _HTTPError(Exception):
    """A request failed below HTTP (connection, timeout, malformed response)."""


# --------------------------------------------------------------------------------------------
# URLs


class _Target:
    """Where the Engine.IO endpoint is, and the URLs of its transports."""

    def __init__(self, url: str, engineio_path: str) -> None:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL scheme in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in URL {url!r}")
        self.secure = scheme in ("https", "wss")
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.secure else 80
        self.hostport = host if self.port == default_port else f"{host}:{self.port}"
        path = engineio_path.strip("/")
        self.path = f"/{path}/" if path else "/"
        self.query = parts.query

    def resource(self, transport: str, sid: str | None, timestamp: bool) -> str:
        query = f"{self.query}&" if self.query else ""
        query += f"EIO=4&transport={transport}"
        if timestamp:
            query += f"&t={time.time()!r}"
        if sid is not None:
            query += "&sid=" + urllib.parse.quote(sid, safe="")
        return f"{self.path}?{query}"

    def url(self, transport: str, sid: str | None, timestamp: bool) -> str:
        if transport == "websocket":
            scheme = "wss" if self.secure else "ws"
        else:
            scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.hostport}{self.resource(transport, sid, timestamp)}"


# --------------------------------------------------------------------------------------------
# HTTP


class _HTTPConnection:
    """One keep-alive HTTP/1.1 connection; requests run one at a time.

    A request on a reused connection that the server closed while it was idle is retried once
    on a new connection, as long as no byte of a response had arrived.
    """

    def __init__(self, target: _Target, ssl_context: ssl_module.SSLContext | None) -> None:
        self.target = target
        self.ssl_context = ssl_context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._got_head = False

    async def _open(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.ssl_context is not None:
            kwargs["ssl"] = self.ssl_context
            kwargs["server_hostname"] = self.target.host
        self.reader, self.writer = await asyncio.open_connection(
            self.target.host, self.target.port, **kwargs)

    def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> tuple[int, dict[str, list[str]], bytes]:
        resource = url.split("://", 1)[1]
        resource = resource[resource.index("/"):]
        lines = [f"{method} {resource} HTTP/1.1", f"Host: {self.target.hostport}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        message = head + body if body else head
        for attempt in range(2):
            reused = self.writer is not None
            if reused and (self.reader.at_eof() or self.writer.is_closing()):  # type: ignore[union-attr]
                self.close()
                reused = False
            self._got_head = False
            try:
                return await asyncio.wait_for(self._exchange(message, method), timeout)
            except asyncio.TimeoutError:
                self.close()
                raise _HTTPError(f"{method} request timed out after {timeout} s") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                self.close()
                if reused and attempt == 0 and not self._got_head:
                    continue
                raise _HTTPError(f"{method} request to {self.target.hostport} failed: {exc!r}") from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, message: bytes, method: str) -> tuple[int, dict[str, list[str]], bytes]:
        if self.writer is None:
            await self._open()
        assert self.writer is not None and self.reader is not None
        self.writer.write(message)
        reader = self.reader
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self._got_head = True
            lines = head.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            status = int(rest.split(" ", 1)[0])
            headers: dict[str, list[str]] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.setdefault(name.strip().lower(), []).append(value.strip())
            if 100 <= status < 200:
                continue
            break
        tokens = {t.strip().lower() for v in headers.get("connection", ()) for t in v.split(",")}
        keep_alive = ("close" not in tokens) if version == "HTTP/1.1" else ("keep-alive" in tokens)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif any("chunked" in v.lower() for v in headers.get("transfer-encoding", ())):
            chunks = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"][0]))
        else:
            body = await reader.read()
            keep_alive = False
        if not keep_alive:
            self.close()
        return status, headers, body


class _AiohttpRequests:
    """Requests through a user-supplied aiohttp client object (or a factory of one)."""

    def __init__(self, source: Any, ssl_verify: bool) -> None:
        self._source = source
        self._http: Any = None if callable(source) else source
        self.ssl_verify = ssl_verify

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> tuple[int, dict[str, list[str]], bytes]:
        import aiohttp  # only needed by whoever passes an aiohttp client object

        if self._http is None or getattr(self._http, "closed", False):
            http = self._source() if callable(self._source) else self._source
            if inspect.isawaitable(http):
                http = await http
            self._http = http
        kwargs: dict[str, Any] = {"headers": headers, "data": body,
                                  "timeout": aiohttp.ClientTimeout(total=timeout)}
        if not self.ssl_verify:
            kwargs["ssl"] = False
        try:
            async with self._http.request(method, url, **kwargs) as response:
                data = await response.read()
                out: dict[str, list[str]] = {}
                for name, value in response.headers.items():
                    out.setdefault(name.lower(), []).append(value)
                return response.status, out, data
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _HTTPError(f"{method} request failed: {exc!r}") from None

    def close(self) -> None:
        """The aiohttp object belongs to the caller: it stays open."""


# --------------------------------------------------------------------------------------------
# WebSocket


class _WSListener(WSListener):  # type: ignore[misc]
    """picows callbacks of one WebSocket; hands complete messages to ``sink``.

    Messages that arrive before a sink is attached are kept and replayed by :meth:`attach`.
    """

    def __init__(self, client: "AsyncClient") -> None:
        super().__init__()
        self.client = client
        self.transport: Any = None
        self.sink: Callable[[bytes, bool], None] | None = None
        self.pending: list[tuple[bytes, bool]] = []
        self.closed = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_binary = False

    # picows callbacks

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        try:
            msg_type = frame.msg_type
            if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
                data = frame.get_payload_as_bytes()
                if frame.fin:
                    self._message(data, msg_type is WSMsgType.BINARY)
                else:
                    self._fragments = [data]
                    self._fragments_binary = msg_type is WSMsgType.BINARY
            elif msg_type is WSMsgType.CONTINUATION:
                if self._fragments is not None:
                    self._fragments.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        data = b"".join(self._fragments)
                        self._fragments = None
                        self._message(data, self._fragments_binary)
            elif msg_type is WSMsgType.CLOSE:
                if not transport.is_close_frame_sent:
                    transport.send_close(WSCloseCode.OK)
                transport.disconnect()
        except Exception:  # a bad frame must not take picows down
            self.client.logger.exception("error handling a WebSocket frame")

    def on_ws_disconnected(self, transport: Any) -> None:
        self.closed = True
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.client.ws_disconnected(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # used by the client

    def _message(self, data: bytes, binary: bool) -> None:
        if self.sink is not None:
            self.sink(data, binary)
        else:
            self.pending.append((data, binary))
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_message(self, timeout: float | None) -> tuple[bytes, bool]:
        """The next message received before a sink is attached."""
        if not self.pending:
            if self.closed:
                raise ConnectionResetError("WebSocket closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
            if not self.pending:
                raise ConnectionResetError("WebSocket closed")
        return self.pending.pop(0)

    def attach(self, sink: Callable[[bytes, bool], None]) -> None:
        self.sink = sink
        pending, self.pending = self.pending, []
        for data, binary in pending:
            if self.sink is not sink:
                break
            sink(data, binary)

    def send(self, data: bytes, binary: bool = False) -> None:
        if not self.closed:
            self.transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, data)

    async def drain(self) -> None:
        while self.paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            try:
                if not self.transport.is_close_frame_sent:
                    self.transport.send_close(WSCloseCode.OK)
                self.transport.disconnect()
            except Exception:  # already gone
                pass


# --------------------------------------------------------------------------------------------
# The client


class AsyncClient(AsyncioHelpers):
    """An Engine.IO v4 client for asyncio, with python-engineio's ``AsyncClient`` interface.

    :param logger: a ``logging.Logger``, or True/False for INFO/ERROR logging.
    :param json: a JSON module with ``dumps``/``loads`` to use instead of orjson (process-wide).
    :param request_timeout: seconds allowed for the handshake, each POST, the WebSocket handshake
                            and the upgrade probe (default 5).
    :param http_session: an aiohttp client object (or a callable returning one) to send the
                         polling requests through, e.g. for proxies or custom certificates.
                         Without it fastio's own HTTP/1.1 client is used.
    :param ssl_verify: False to accept any server certificate.
    :param handle_sigint: accepted for compatibility; interrupts are handled by the Socket.IO
                          client.
    :param websocket_extra_options: extra keywords for ``picows.ws_connect`` (for example
                                    ``max_frame_size``, ``proxy``, ``local_addr``); ``headers``
                                    is added to the handshake headers and ``ssl`` (an SSLContext)
                                    replaces the default TLS context.
    :param timestamp_requests: add a ``t=`` cache-busting parameter to every request.
    """

    event_names = ["connect", "disconnect", "message"]

    class reason:
        """Disconnection reasons."""
        #: Client-initiated disconnection.
        CLIENT_DISCONNECT = "client disconnect"
        #: Server-initiated disconnection.
        SERVER_DISCONNECT = "server disconnect"
        #: Transport error.
        TRANSPORT_ERROR = "transport error"

    def __init__(self, logger: logging.Logger | bool = False, json: Any = None,
                 request_timeout: float = 5, http_session: Any = None, ssl_verify: bool = True,
                 handle_sigint: bool = True, websocket_extra_options: dict[str, Any] | None = None,
                 timestamp_requests: bool = True) -> None:
        if json is not None:
            configure_json(json)
        self.logger = make_logger("fastio.engineio.client", logger)
        self.request_timeout = request_timeout
        self.http_session = http_session
        self.ssl_verify = ssl_verify
        self.handle_sigint = handle_sigint
        self.websocket_extra_options = dict(websocket_extra_options or {})
        self.timestamp_requests = timestamp_requests
        self.handlers: dict[str, Callable[..., Any]] = {}

        self.state = "disconnected"
        self.sid: str | None = None
        self.upgrades: list[str] | None = None
        self.ping_interval: float | None = None
        self.ping_timeout: float | None = None
        self.max_payload = 1_000_000
        self.transports: list[str] | None = None
        self.current_transport: str | None = None

        # hooks for the Socket.IO layer: raw message bytes, and the close reason
        self.message_sink: Callable[[bytes, bool], None] | None = None
        self.close_sink: Callable[[str], None] | None = None

        self._target: _Target | None = None
        self._headers: dict[str, str] = {}
        self._cookies: dict[str, str] = {}
        self._ssl_context: ssl_module.SSLContext | None = None
        self._http_get: Any = None
        self._http_post: Any = None
        self._ws: _WSListener | None = None
        self._probe: _WSListener | None = None
        self._out: list[tuple[bytes, bool]] = []
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._upgrade_settled: asyncio.Event | None = None
        self._reader_task: asyncio.Task[Any] | None = None
        self._writer_task: asyncio.Task[Any] | None = None
        self._upgrade_task: asyncio.Task[Any] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pausing = False
        self._get_busy = False
        self._post_busy = False
        self._final_flush = False

    # -- public API ------------------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        return True

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register a handler for ``'connect'``, ``'message'`` or ``'disconnect'``."""
        if event not in self.event_names:
            raise ValueError("Invalid event")

        def set_handler(h: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[event] = h
            return h

        if handler is None:
            return set_handler
        set_handler(handler)
        return None

    def transport(self) -> str | None:
        """``'polling'`` or ``'websocket'``."""
        return self.current_transport

    async def connect(self, url: str, headers: dict[str, str] | None = None,
                      transports: str | list[str] | None = None,
                      engineio_path: str = "engine.io") -> None:
        """Connect; raises ``fastio.exceptions.ConnectionError`` when the server cannot be reached
        or refuses (the second argument is the server's JSON error body, if any)."""
        if self.state != "disconnected":
            raise ValueError("Client is not in a disconnected state")
        if transports is not None:
            if isinstance(transports, str):
                transports = [transports]
            transports = [t for t in transports if t in _VALID_TRANSPORTS]
            if not transports:
                raise ValueError("No valid transports provided")
        self.transports = list(transports or _VALID_TRANSPORTS)
        self._target = _Target(url, engineio_path)
        self._headers = dict(headers or {})
        self._cookies = {}
        self._ssl_context = self._make_ssl_context() if self._target.secure else None
        self._out = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closed = asyncio.Event()
        self._upgrade_settled = asyncio.Event()
        self._pausing = self._get_busy = self._post_busy = self._final_flush = False
        self.sid = None
        self.current_transport = None
        self.state = "connecting"
        try:
            if self.transports[0] == "polling":
                await self._connect_polling()
            else:
                await self._connect_websocket()
        except BaseException:
            self._teardown()
            self.state = "disconnected"
            self.sid = None
            raise

    async def wait(self) -> None:
        """Wait until the connection ends."""
        if self._closed is not None and self.state != "disconnected":
            await self._closed.wait()

    async def send(self, data: Any) -> None:
        """Send a message: str as text, bytes as binary, anything else as JSON text."""
        if isinstance(data, str):
            await self.send_message(b"4" + data.encode("utf-8"), ())
        elif isinstance(data, (bytes, bytearray, memoryview)):
            if self.state == "connected":
                self.send_items([(bytes(data), True)])
                await self._drain()
        else:
            text = json_module().dumps(data)
            if isinstance(text, str):
                text = text.encode("utf-8")
            await self.send_message(b"4" + text, ())

    async def disconnect(self, abort: bool = False, reason: str | None = None) -> None:
        """Close the connection (the server gets a CLOSE packet)."""
        if self.state != "connected":
            return
        self.state = "disconnecting"
        await self._cancel_upgrade()
        if self.current_transport == "websocket" and self._ws is not None:
            # as the JavaScript client: queued frames, then the closing handshake
            self._ws.close()
        elif self._writer_task is not None and not self._writer_task.done():
            # what is queued goes in its own POST before the CLOSE packet, as the JavaScript
            # client does: a server handles a payload's Socket.IO packets after its CLOSE
            try:
                if not abort:
                    await asyncio.wait_for(self._flushed(), self.request_timeout)
                self._out.append((b"1", False))
                self._final_flush = True
                self._kick()
                if not abort:
                    await asyncio.wait_for(asyncio.shield(self._writer_task), self.request_timeout)
            except Exception:  # flushing is best effort; the connection ends anyway
                pass
        self._close(reason or self.reason.CLIENT_DISCONNECT)

    async def _flushed(self) -> None:
        """Wait until every queued item was POSTed (or the writer stopped)."""
        writer = self._writer_task
        while (self._out or self._post_busy) and writer is not None and not writer.done():
            self._kick()
            self._idle.clear()  # type: ignore[union-attr]
            await self._idle.wait()  # type: ignore[union-attr]

    # -- used by the Socket.IO client ------------------------------------------------------

    async def send_message(self, message: bytes, attachments: Any) -> None:
        """Send an Engine.IO MESSAGE (``message`` starts with ``b"4"``) and binary attachments
        as one unit: nothing else goes between them."""
        if self.state != "connected":
            return
        if attachments:
            self.send_items([(message, False)] + [(a, True) for a in attachments])
        else:
            self.send_items([(message, False)])
        await self._drain()

    async def send_binary_message(self, payload: bytes) -> None:
        """Send one binary Engine.IO MESSAGE (a packet of a binary serializer such as msgpack)."""
        if self.state != "connected":
            return
        self.send_items([(payload, True)])
        await self._drain()

    async def wait_upgrade(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until a pending upgrade succeeded or failed."""
        task = self._upgrade_task
        if task is not None and not task.done() and self._upgrade_settled is not None:
            try:
                await asyncio.wait_for(self._upgrade_settled.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    # -- connection set-up -----------------------------------------------------------------

    def _make_ssl_context(self) -> ssl_module.SSLContext:
        context = ssl_module.create_default_context()
        if not self.ssl_verify:
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context

    def _make_http(self) -> Any:
        if self.http_session is not None:
            return _AiohttpRequests(self.http_session, self.ssl_verify)
        assert self._target is not None
        return _HTTPConnection(self._target, self._ssl_context)

    def _request_headers(self, content_type: bool = False) -> list[tuple[str, str]]:
        headers = [("Accept", "*/*")]
        cookie = None
        for name, value in self._headers.items():
            if name.lower() == "cookie":
                cookie = str(value)
            elif name.lower() not in ("host", "content-length"):
                headers.append((name, str(value)))
        if self._cookies:
            jar = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
            cookie = f"{cookie}; {jar}" if cookie else jar
        if cookie:
            headers.append(("Cookie", cookie))
        if content_type:
            headers.append(("Content-Type", "text/plain;charset=UTF-8"))
        return headers

    def _store_cookies(self, headers: dict[str, list[str]]) -> None:
        for value in headers.get("set-cookie", ()):
            pair = value.split(";", 1)[0]
            name, sep, val = pair.partition("=")
            if sep and name.strip():
                self._cookies[name.strip()] = val.strip()

    def _apply_open(self, payload: bytes) -> None:
        try:
            info = json_module().loads(payload)
            self.sid = str(info["sid"])
            self.upgrades = list(info.get("upgrades") or [])
            self.ping_interval = int(info["pingInterval"]) / 1000.0
            self.ping_timeout = int(info["pingTimeout"]) / 1000.0
            self.max_payload = int(info.get("maxPayload") or 0) or 1_000_000
        except (ValueError, KeyError, TypeError) as exc:
            raise exceptions.ConnectionError(f"invalid OPEN packet from the server: {exc}") from None

    async def _connect_polling(self) -> None:
        assert self._target is not None
        self._http_get = self._make_http()
        self._http_post = self._make_http()
        url = self._target.url("polling", None, self.timestamp_requests)
        self.logger.info("Attempting polling connection to %s", url)
        try:
            status, headers, body = await self._http_get.request(
                "GET", url, self._request_headers(), None, self.request_timeout)
        except _HTTPError as exc:
            raise exceptions.ConnectionError(str(exc)) from None
        self._store_cookies(headers)
        if not 200 <= status < 300:
            raise exceptions.ConnectionError(
                f"Unexpected status code {status} in server response", self._json_or_none(body))
        try:
            packets = _eio.decode_payload(body, 0)
        except ValueError:
            raise exceptions.ConnectionError("Unexpected response from server") from None
        if not packets or packets[0][0] != _OPEN or packets[0][2]:
            raise exceptions.ConnectionError("OPEN packet not returned by server")
        self._apply_open(packets[0][1])
        self.logger.info("Polling connection accepted, sid %s", self.sid)
        self.current_transport = "polling"
        self.state = "connected"
        self._reset_ping_timer()
        await self._fire_connect()
        for ptype, data, binary in packets[1:]:
            self._receive(ptype, data, binary)
        if self.state != "connected":
            return
        self._reader_task = _keep(asyncio.ensure_future(self._poll_loop()))
        self._writer_task = _keep(asyncio.ensure_future(self._post_loop()))
        if "websocket" in (self.upgrades or ()) and "websocket" in self.transports:  # type: ignore[operator]
            self._upgrade_task = _keep(asyncio.ensure_future(self._upgrade()))
        else:
            self._upgrade_settled.set()  # type: ignore[union-attr]

    async def _connect_websocket(self) -> None:
        assert self._target is not None
        url = self._target.url("websocket", None, self.timestamp_requests)
        self.logger.info("Attempting WebSocket connection to %s", url)
        try:
            listener = await self._open_ws(url)
        except exceptions.ConnectionError:
            raise
        self._ws = listener
        try:
            data, binary = await listener.next_message(self.request_timeout)
        except (asyncio.TimeoutError, ConnectionResetError) as exc:
            raise exceptions.ConnectionError(f"no OPEN packet from the server: {exc!r}") from None
        if binary or not data.startswith(b"0"):
            raise exceptions.ConnectionError("no OPEN packet from the server")
        self._apply_open(data[1:])
        self.logger.info("WebSocket connection accepted, sid %s", self.sid)
        self.current_transport = "websocket"
        self.state = "connected"
        self._upgrade_settled.set()  # type: ignore[union-attr]
        self._reset_ping_timer()
        await self._fire_connect()
        if self.state == "connected":
            listener.attach(self._on_ws_message)

    async def _open_ws(self, url: str) -> _WSListener:
        """Open a WebSocket; ``ConnectionError`` (with the server's JSON body) on failure."""
        extra = dict(self.websocket_extra_options)
        headers = self._request_headers()
        user_headers = extra.pop("headers", None) or {}
        items = user_headers.items() if hasattr(user_headers, "items") else user_headers
        headers += [(str(k), str(v)) for k, v in items]
        options: dict[str, Any] = {
            "extra_headers": headers,
            "websocket_handshake_timeout": self.request_timeout,
            "max_frame_size": 100 * 1024 * 1024,
            "logger_name": "client",
        }
        if self._ssl_context is not None:
            options["ssl_context"] = self._ssl_context
        ssl_option = extra.pop("ssl", None)
        if isinstance(ssl_option, ssl_module.SSLContext):
            options["ssl_context"] = ssl_option
        for key, value in extra.items():
            if key in _WS_OPTIONS or key in _CONNECTION_OPTIONS:
                options[key] = value
            else:
                self.logger.warning("websocket_extra_options: %r is not a picows option, ignored", key)
        client = self
        try:
            _, listener = await ws_connect(lambda: _WSListener(client), url, **options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = getattr(exc, "response", None)
            if response is not None:
                body = getattr(exc, "raw_body", None) or getattr(response, "body", None) or b""
                raise exceptions.ConnectionError(
                    f"Unexpected status code {int(response.status)} in server response",
                    self._json_or_none(body)) from None
            raise exceptions.ConnectionError(f"WebSocket connection to {url} failed: {exc!r}") from None
        return listener  # type: ignore[no-any-return, return-value]

    @staticmethod
    def _json_or_none(body: bytes | None) -> Any:
        if not body:
            return None
        try:
            return json_module().loads(body)
        except Exception:
            return None

    async def _fire_connect(self) -> None:
        handler = self.handlers.get("connect")
        if handler is None:
            return
        try:
            result = handler()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self.logger.exception("connect handler error")
            raise exceptions.ConnectionError(f"Connect handler failed: {exc}") from exc

    # -- the upgrade -----------------------------------------------------------------------

    async def _upgrade(self) -> None:
        assert self._target is not None
        listener: _WSListener | None = None
        upgraded = False
        try:
            url = self._target.url("websocket", self.sid, self.timestamp_requests)
            self.logger.info("Attempting WebSocket upgrade to %s", url)
            try:
                listener = await self._open_ws(url)
            except exceptions.ConnectionError as exc:
                self.logger.warning("WebSocket upgrade failed: %s", exc.args[0])
                return
            if self.state != "connected":
                return
            self._probe = listener
            listener.send(b"2probe")
            data, binary = await listener.next_message(self.request_timeout)
            if binary or data != b"3probe":
                self.logger.warning("WebSocket upgrade failed: unexpected probe answer %r", data[:32])
                return
            self._pausing = True
            while self._get_busy or self._post_busy:
                self._idle.clear()  # type: ignore[union-attr]
                await asyncio.wait_for(self._idle.wait(), self.request_timeout)  # type: ignore[union-attr]
            if self.state != "connected" or listener.closed:
                return
            listener.send(b"5")
            self._ws = listener
            self._probe = None
            self.current_transport = "websocket"
            upgraded = True
            out, self._out = self._out, []
            for item, is_binary in out:
                listener.send(item, is_binary)
            self._stop_polling()
            self.logger.info("WebSocket upgrade was successful")
            listener.attach(self._on_ws_message)
        except (asyncio.TimeoutError, ConnectionResetError, OSError) as exc:
            self.logger.warning("WebSocket upgrade failed: %r", exc)
        finally:
            if not upgraded:
                self._probe = None
                if listener is not None:
                    listener.close()
                if self._pausing:
                    self._pausing = False
                    self._resume_polling()
            if self._upgrade_settled is not None:
                self._upgrade_settled.set()

    async def _cancel_upgrade(self) -> None:
        task = self._upgrade_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: B902 - cancelled on purpose
                pass

    def _resume_polling(self) -> None:
        if self.state != "connected" or self.current_transport != "polling":
            return
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = _keep(asyncio.ensure_future(self._poll_loop()))
        self._kick()

    def _stop_polling(self) -> None:
        current = asyncio.current_task()
        for task in (self._reader_task, self._writer_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._reader_task = self._writer_task = None
        for http in (self._http_get, self._http_post):
            if http is not None:
                http.close()
        self._http_get = self._http_post = None

    # -- polling loops ---------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._target is not None
        while self.state == "connected" and self.current_transport == "polling" and not self._pausing:
            url = self._target.url("polling", self.sid, self.timestamp_requests)
            timeout = (self.ping_interval or 25) + (self.ping_timeout or 20) + 5
            self._get_busy = True
            try:
                status, headers, body = await self._http_get.request(
                    "GET", url, self._request_headers(), None, timeout)
            except _HTTPError as exc:
                if self.state == "connected" and self.current_transport == "polling":
                    self.logger.warning("polling GET failed: %s", exc)
                    self._close(self.reason.TRANSPORT_ERROR)
                return
            finally:
                self._get_busy = False
                if self._idle is not None:
                    self._idle.set()
            if self.state != "connected":
                return
            if "set-cookie" in headers:
                self._store_cookies(headers)
            if status != 200:
                self.logger.warning("Unexpected status code %s in polling response, aborting", status)
                self._close(self.reason.TRANSPORT_ERROR)
                return
            try:
                packets = _eio.decode_payload(body, 0)
            except ValueError:
                self.logger.warning("Unexpected payload from server, aborting")
                self._close(self.reason.TRANSPORT_ERROR)
                return
            for ptype, data, binary in packets:
                self._receive(ptype, data, binary)
                if self.state != "connected":
                    return

    def _take_batch(self) -> list[tuple[bytes, bool]]:
        """Queued items that fit in one POST (at least one)."""
        out = self._out
        limit = self.max_payload
        size = 0
        count = 0
        for item, binary in out:
            n = (len(item) + 2) // 3 * 4 + 2 if binary else len(item) + 1
            if count and size + n > limit:
                break
            size += n
            count += 1
        batch = out[:count]
        del out[:count]
        return batch

    async def _post_loop(self) -> None:
        assert self._target is not None and self._wake is not None
        while True:
            if not self._out or self._pausing:
                if self._final_flush and not self._out:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.state not in ("connected", "disconnecting") or self.current_transport != "polling":
                return
            batch = self._take_batch()
            body = _eio.encode_payload([_eio.poll_binary(b) if binary else b for b, binary in batch])
            url = self._target.url("polling", self.sid, self.timestamp_requests)
            self._post_busy = True
            try:
                status, _, _ = await self._http_post.request(
                    "POST", url, self._request_headers(True), body, self.request_timeout)
            except _HTTPError as exc:
                if self.state == "connected":
                    self.logger.warning("polling POST failed: %s", exc)
                    self._close(self.reason.TRANSPORT_ERROR)
                return
            finally:
                self._post_busy = False
                if self._idle is not None:
                    self._idle.set()
            if not 200 <= status < 300:
                if self.state == "connected":
                    self.logger.warning("Unexpected status code %s in POST response, aborting", status)
                    self._close(self.reason.TRANSPORT_ERROR)
                return

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- sending ---------------------------------------------------------------------------

    def send_items(self, items: list[tuple[bytes, bool]]) -> None:
        """Queue Engine.IO messages, each ``(packet bytes, binary)``, on the current transport
        in order, without waiting (nothing else goes between them)."""
        ws = self._ws
        if self.current_transport == "websocket" and ws is not None:
            for data, binary in items:
                ws.send(data, binary)
        else:
            self._out.extend(items)
            self._kick()

    async def _drain(self) -> None:
        ws = self._ws
        if ws is not None and ws.paused and self.current_transport == "websocket":
            await ws.drain()

    # -- receiving -------------------------------------------------------------------------

    def _on_ws_message(self, data: bytes, binary: bool) -> None:
        if self.state != "connected":
            return
        if binary:
            self._deliver(data, True)
        elif data:
            self._receive(data[0] - 48, data[1:], False)

    def _receive(self, ptype: int, data: bytes, binary: bool) -> None:
        if binary:
            self._deliver(data, True)
        elif ptype == _MESSAGE:
            self._deliver(data, False)
        elif ptype == _PING:
            self.send_items([(b"3" + data, False)])
            self._reset_ping_timer()
        elif ptype == _CLOSE:
            self.logger.info("Server closed the connection")
            self._close(self.reason.SERVER_DISCONNECT)
        elif ptype in (_NOOP, _PONG, _UPGRADE, _OPEN):
            pass
        else:
            self.logger.warning("Received unexpected packet of type %s", ptype)

    def _deliver(self, data: bytes, binary: bool) -> None:
        sink = self.message_sink
        if sink is not None:
            sink(data, binary)
            return
        handler = self.handlers.get("message")
        if handler is not None:
            self._call_handler("message", handler, data if binary else data.decode("utf-8"))

    def _call_handler(self, event: str, handler: Callable[..., Any], *args: Any) -> None:
        try:
            result = handler(*args)
        except TypeError:
            if event == "disconnect" and args:
                try:
                    result = handler()
                except Exception:
                    self.logger.exception("%s handler error", event)
                    return
            else:
                self.logger.exception("%s handler error", event)
                return
        except Exception:
            self.logger.exception("%s handler error", event)
            return
        if inspect.isawaitable(result):
            async def finish() -> None:
                try:
                    await result
                except Exception:
                    self.logger.exception("%s handler error", event)
            _keep(asyncio.ensure_future(finish()))

    # -- heartbeat and closing -------------------------------------------------------------

    def _reset_ping_timer(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        delay = (self.ping_interval or 25) + (self.ping_timeout or 20)
        self._ping_timer = asyncio.get_running_loop().call_later(delay, self._ping_expired)

    def _ping_expired(self) -> None:
        self._ping_timer = None
        if self.state == "connected":
            self.logger.warning("No PING from the server for %.1f s, closing",
                                (self.ping_interval or 0) + (self.ping_timeout or 0))
            self._close(self.reason.TRANSPORT_ERROR)

    def ws_disconnected(self, listener: _WSListener) -> None:
        """The WebSocket ``listener`` carries lost its connection."""
        if listener is self._ws and self.state == "connected" and self.current_transport == "websocket":
            self.logger.info("WebSocket connection closed")
            self._close(self.reason.TRANSPORT_ERROR)

    def _teardown(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        current = asyncio.current_task()
        for task in (self._reader_task, self._writer_task, self._upgrade_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._reader_task = self._writer_task = self._upgrade_task = None
        for http in (self._http_get, self._http_post):
            if http is not None:
                http.close()
        self._http_get = self._http_post = None
        for listener in (self._ws, self._probe):
            if listener is not None:
                listener.close()
        self._ws = self._probe = None
        self._out = []
        if self._upgrade_settled is not None:
            self._upgrade_settled.set()

    def _close(self, reason: str) -> None:
        """End the connection (once): release everything, then report ``reason``."""
        if self.state == "disconnected":
            return
        self.state = "disconnected"
        self._teardown()
        self.sid = None
        if self._closed is not None:
            self._closed.set()
        self.logger.info("Engine.IO connection closed: %s", reason)
        if self.close_sink is not None:
            self.close_sink(reason)
        handler = self.handlers.get("disconnect")
        if handler is not None:
            self._call_handler("disconnect", handler, reason)
