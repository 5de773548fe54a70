"""WSGI on both sides of fastio's engine.

- ``WsgiHost``: a WSGI application (Flask, Django, ...) served on the native server's
  connections, each request run in a thread pool (``fastio.run(sio, app=flask_app)``).
- ``EngineWSGI``: the Engine.IO path served from a WSGI server's threads (Werkzeug, gunicorn's
  gthread worker) for an engine whose event loop runs in another thread.  A long-polling request
  is handed to the engine on its loop and the WSGI thread waits for the answer.  A WebSocket
  upgrade takes the connection's socket from the WSGI server (``werkzeug.socket``,
  ``gunicorn.socket``) and gives it to the loop, where fastio's own HTTP/WebSocket protocol serves
  it; the WSGI thread waits until the connection ends.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import http
import io
import logging
import socket
import sys
import threading
from typing import Any, Callable, Iterable
from urllib.parse import quote

from fastio._core.protocol import HttpProtocol
from fastio.engineio.environ import build_environ
from fastio.hosting.bridge import BridgeRequest
from fastio.hosting.router import BODY_HEADROOM, MIN_BODY_LIMIT, Router

__all__ = ["WsgiHost", "EngineWSGI", "is_wsgi_app", "status_text"]

logger = logging.getLogger("fastio.hosting")

_HOP_BY_HOP = frozenset([b"content-length", b"transfer-encoding"])


def status_text(status: int) -> str:
    """``"200 OK"`` for 200: a WSGI status line."""
    try:
        return "%d %s" % (status, http.HTTPStatus(status).phrase)
    except ValueError:
        return "%d Unknown" % status


def is_wsgi_app(app: Any) -> bool:
    """True unless ``app`` is an ASGI application (a coroutine function, or an object whose
    ``__call__`` is one)."""
    import inspect

    if inspect.iscoroutinefunction(app):
        return False
    return not inspect.iscoroutinefunction(getattr(app, "__call__", None))


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class WsgiHost:
    """Serves a WSGI application on the native server's connections; each request runs in a
    thread pool of ``threads`` workers.  A response with a Content-Length (or a list) is sent
    whole; one without (a generator) is streamed, chunk by chunk, as it yields."""

    def __init__(self, app: Any, threads: int = 32) -> None:
        self.app = app
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads,
                                                              thread_name_prefix="fastio-wsgi")

    def handle_request(self, req: Any) -> None:
        """Run the WSGI application for ``req`` in the pool and answer on the loop."""
        loop = asyncio.get_running_loop()
        environ = build_environ(req.method, req.path, req.query_string, req.url, req.http_version,
                                req.client, req.server, req.headers, software="fastio")
        environ.update({
            "wsgi.version": (1, 0), "wsgi.input": io.BytesIO(req.body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(req.body)) if req.body else environ.get("CONTENT_LENGTH", ""),
        })
        self.executor.submit(self._run, loop, req, environ)

    def _run(self, loop: asyncio.AbstractEventLoop, req: Any, environ: dict[str, Any]) -> None:
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        streaming = False
        try:
            result: Iterable[bytes] = self.app(environ, start_response)
            try:
                if isinstance(result, (list, tuple)) or _has_length(started):
                    chunks.extend(c for c in result if c)
                else:
                    # No length: a streamed response. The status and the first chunk go out
                    # as soon as it yields, each later chunk as it comes (chunked encoding); the
                    # thread waits for each write to be made, and stops when the client has gone.
                    for chunk in result:
                        if not chunk:
                            continue
                        if not streaming:
                            streaming = True
                            status, headers = self._head(started)
                            chunks.append(chunk)
                            if not _on_loop(loop, _start_stream, req, status, headers, b"".join(chunks)):
                                return
                        elif not _on_loop(loop, _write_chunk, req, chunk):
                            return
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if streaming:
                _on_loop(loop, _end_stream, req)
                return
            status, headers = self._head(started)
            body = b"".join(chunks)
        except Exception as exc:
            logger.error("WSGI application failed on %s %s", req.method, req.path, exc_info=exc)
            if streaming:
                loop.call_soon_threadsafe(_end_stream, req)
                return
            status, headers, body = 500, [("Content-Type", "text/plain")], b"Internal Server Error"
        loop.call_soon_threadsafe(_respond, req, status, headers, body)

    @staticmethod
    def _head(started: list[Any]) -> tuple[int, list[tuple[str, str]]]:
        if not started:
            raise RuntimeError("the WSGI application did not call start_response")
        status = int(str(started[0]).split(" ", 1)[0])
        headers = [(_text(k), _text(v)) for k, v in started[1] if _text(k).lower().encode() not in _HOP_BY_HOP]
        return status, headers

    def close(self) -> None:
        """Stop the thread pool (running requests finish)."""
        self.executor.shutdown(wait=False)


def _respond(req: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    if not req.responded and not req.closed:
        req.respond(status, headers, body)


def _has_length(started: list[Any]) -> bool:
    return bool(started) and any(_text(k).lower() == "content-length" for k, _ in started[1])


def _on_loop(loop: asyncio.AbstractEventLoop, step: Callable[..., bool], *args: Any) -> bool:
    """Run ``step(*args)`` on the loop and wait for its answer (False: the client is gone)."""
    done: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(step(*args))
        except BaseException as exc:  # noqa: B902 - handed to the waiting thread
            done.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # the loop is closed
        return False
    return done.result()


def _start_stream(req: Any, status: int, headers: list[tuple[str, str]], first: bytes) -> bool:
    if req.responded or req.closed:
        return False
    req.start_response(status, headers)
    req.write(first)
    return True


def _write_chunk(req: Any, chunk: bytes) -> bool:
    if req.closed:
        return False
    req.write(chunk)
    return True


def _end_stream(req: Any) -> bool:
    if not req.closed:
        req.end()
    return True


class _HandoffRouter(Router):
    """The router of connections taken over from a WSGI server: the request that upgrades gets
    the WSGI environ, and the WSGI thread learns when its connection ends."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.waiting: dict[Any, tuple[threading.Event, dict[str, Any]]] = {}

    def handle_request(self, req: Any) -> None:
        """Serve the upgrade request with the environ the WSGI server built."""
        entry = self.waiting.get(req.protocol)
        if entry is not None and req.environ is None:
            req.environ = entry[1]
        super().handle_request(req)

    def connection_closed(self, proto: HttpProtocol) -> None:
        """Wake the WSGI thread that handed over this connection."""
        super().connection_closed(proto)
        entry = self.waiting.pop(proto, None)
        if entry is not None:
            entry[0].set()


def _request_head(environ: dict[str, Any]) -> bytes:
    """The HTTP request head that ``environ`` was parsed from, rebuilt."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        target = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
    lines = ["%s %s HTTP/1.1" % (environ.get("REQUEST_METHOD", "GET"), target)]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append("%s: %s" % (key[5:].replace("_", "-").title(), value))
    if environ.get("CONTENT_TYPE"):
        lines.append("Content-Type: %s" % environ["CONTENT_TYPE"])
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class EngineWSGI:
    """A WSGI callable serving the Engine.IO path of ``server`` (a fastio Engine.IO or Socket.IO
    ``AsyncServer``) whose event loop ``loop`` runs in another thread."""

    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        eio = getattr(server, "eio", None)
        self.engine = eio if eio is not None else server
        self.loop = loop
        self.router = _HandoffRouter(server)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request."""
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
            if sock is not None:
                return self._websocket(environ, start_response, sock)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max(self.engine.max_http_buffer_size + BODY_HEADROOM, MIN_BODY_LIMIT):
            # Refused before the body is read, as the native server refuses it.
            start_response("413 Request Entity Too Large", [("Content-Type", "text/plain")])
            return [b"Payload Too Large"]
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            status, headers, payload = self._on_loop(self._serve(environ, body))
        except (RuntimeError, concurrent.futures.CancelledError):  # the server is shutting down
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"Service Unavailable"]
        start_response(status_text(status), [(_text(k), _text(v)) for k, v in headers])
        return [payload]

    def _on_loop(self, coro: Any) -> Any:
        """Run ``coro`` on the engine's loop and wait for its result (RuntimeError when the loop
        is closed; the coroutine is closed then, never left unawaited)."""
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:
            coro.close()
            raise
        return future.result()

    async def _serve(self, environ: dict[str, Any], body: bytes) -> tuple[int, list[Any], bytes]:
        headers = []
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers.append((key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers.append((key.replace("_", "-").lower().encode(), environ[key].encode("latin-1")))
        try:
            client: tuple[str, int] | None = (environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0))
        except ValueError:
            client = None
        req = BridgeRequest(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"),
                            environ.get("QUERY_STRING", "").encode("latin-1"), headers, body, client,
                            (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
                            False, environ, scheme=environ.get("wsgi.url_scheme", "http"))
        self.engine.handle_request(req)
        return await req.response

    def _websocket(self, environ: dict[str, Any], start_response: Callable[..., Any],
                   sock: socket.socket) -> Iterable[bytes]:
        done = threading.Event()
        own = sock.dup()
        head = _request_head(environ)
        try:
            self._on_loop(self._adopt(own, head, done, environ))
        except BaseException:
            own.close()
            raise
        done.wait()
        # The loop closed its copy of the socket; end the connection, so whatever the WSGI
        # server writes after this (its own response) goes nowhere.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        start_response("200 OK", [("Content-Length", "0")])
        return []

    async def _adopt(self, sock: socket.socket, head: bytes, done: threading.Event,
                     environ: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self.engine.ensure_started()
        proto = self.router.new_protocol()
        self.router.waiting[proto] = (done, environ)
        try:
            await loop.connect_accepted_socket(lambda: proto, sock)
        except BaseException:
            self.router.waiting.pop(proto, None)
            raise
        proto.data_received(head)

    def close_connections(self) -> None:
        """Close every WebSocket connection taken over (call on the loop)."""
        for proto in list(self.router.connections):
            proto.close_transport()
