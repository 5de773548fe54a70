"""python-socketio's synchronous ``Server`` on fastio's asyncio server.

The sync ``Server`` is a facade over a fastio ``AsyncServer`` that runs on one event loop in a
daemon thread (uvloop when installed): the protocol, the rooms and the fan-out stay in the
compiled core on that loop.  Handlers are plain functions; each event's handler runs in a thread
pool (python-socketio's ``async_handlers=True``), so a handler that blocks holds up neither the
loop nor the other clients.  ``emit``, ``enter_room``, ``call``... may be called from any thread:
they run on the loop and the calling thread waits for them, so calls made by one thread take
effect in the order they were made.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any, Callable, Iterator

from fastio.base.handlers import SERVER_OPTIONAL_ARGS, HandlerRegistry
from fastio.socketio.manager import AsyncManager
from fastio.socketio.server import AsyncServer
from fastio.sync.loop import LoopThread

__all__ = ["Server", "ASYNC_MODES"]

#: python-socketio's ``async_mode`` values for the sync server, and what fastio does with each.
ASYNC_MODES = ("threading",)
_UNSUPPORTED_MODES = ("eventlet", "gevent", "gevent_uwsgi")


class _Dispatcher(AsyncServer):
    """The ``AsyncServer`` inside a sync ``Server``: every handler it looks up is the sync
    server's, called in the thread pool."""

    def __init__(self, owner: "Server", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner

    def find_handler(self, event: str, namespace: str,
                     args: tuple[Any, ...]) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """The sync server's handler for ``event``, wrapped to run in the thread pool; else a
        handler registered on this server itself (the Admin UI's coroutines, run on the loop)."""
        handler, fitted = self.owner.threaded_handler(event, namespace, args)
        if handler is None:
            return super().find_handler(event, namespace, args)
        return handler, fitted


class _SessionContext:
    """``with sio.session(sid) as session:`` - the session dictionary, saved on exit."""

    def __init__(self, server: "Server", sid: str, namespace: str | None) -> None:
        self.server = server
        self.sid = sid
        self.namespace = namespace
        self.session: dict[str, Any] | None = None

    def __enter__(self) -> dict[str, Any]:
        self.session = self.server.get_session(self.sid, namespace=self.namespace)
        return self.session

    def __exit__(self, *exc: Any) -> None:
        assert self.session is not None
        self.server.save_session(self.sid, self.session, namespace=self.namespace)


class Server(HandlerRegistry):
    """A Socket.IO server with python-socketio's synchronous ``Server`` interface.

    Arguments are python-socketio's: ``client_manager`` (``fastio.Manager``, ``RedisManager``,
    ``KombuManager``, or a fastio ``AsyncManager``), ``logger``, ``serializer``, ``json``,
    ``async_handlers`` (True: each event's handler runs in the pool as soon as a thread is free;
    False: one client's handlers run one after another, in arrival order), ``always_connect``,
    ``namespaces``, ``async_mode`` (``"threading"``; eventlet and gevent are refused with an
    explanation), and the Engine.IO options (``ping_interval``, ``cors_allowed_origins``,
    ``max_http_buffer_size``, ``engineio_logger``, ...).

    :param handler_threads: the most handlers that run at the same time (the thread pool's
                            size, 64 by default); further events wait for a free thread.
    """

    reason = AsyncServer.reason
    reserved_events = ["connect", "disconnect"]
    optional_args = SERVER_OPTIONAL_ARGS

    def __init__(self, client_manager: Any = None, logger: logging.Logger | bool = False,
                 serializer: str | type = "default", json: Any = None, async_handlers: bool = True,
                 always_connect: bool = False, namespaces: list[str] | str | None = None,
                 *, handler_threads: int = 64, **kwargs: Any) -> None:
        async_mode = kwargs.pop("async_mode", None) or "threading"
        if async_mode in _UNSUPPORTED_MODES:
            raise ValueError(
                "async_mode=%r is not supported by fastio: its Server runs Socket.IO on an asyncio "
                "loop in a thread and your handlers in a thread pool (async_mode='threading'). "
                "Serve it with fastio.run(sio, app=wsgi_app), or fastio.WSGIApp under a threaded "
                "WSGI server (Werkzeug, gunicorn's gthread worker)" % async_mode)
        if async_mode not in ASYNC_MODES:
            raise ValueError("Invalid async_mode specified")
        self.async_mode = async_mode
        self.init_handlers()
        self.sync_manager = client_manager if hasattr(client_manager, "async_manager") else None
        async_manager: AsyncManager | None = (
            client_manager.async_manager if self.sync_manager is not None else client_manager)
        self.runner = LoopThread("fastio-server")
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=handler_threads, thread_name_prefix="fastio-handler")
        self.async_handlers = async_handlers
        self.async_server = _Dispatcher(
            self, client_manager=async_manager, logger=logger, serializer=serializer, json=json,
            async_handlers=True, always_connect=always_connect, namespaces=namespaces, **kwargs)
        if self.sync_manager is not None:
            self.sync_manager.bind(self.runner)
        self.not_handled = self.async_server.not_handled
        # python-socketio's sync servers report their mode on the Engine.IO server too
        # (Flask-SocketIO reads ``sio.eio.async_mode``).
        self.async_server.eio.async_mode = async_mode
        #: Added to every connection's environ before its connect handler runs.
        self.extra_environ: dict[str, Any] = {}
        # sid, namespace -> (session, rooms) of a socket whose disconnect handler is running:
        # the socket is gone from the manager, but the handler may still read them.
        self._departed: dict[tuple[str, str], tuple[dict[str, Any], list[Any]]] = {}
        self._wsgi: Any = None
        self._servers: list[Any] = []
        # async_handlers=False: sid -> the future the client's last handler sets when it ends.
        self._tails: dict[Any, asyncio.Future[None]] = {}

    # -- what the hosts use --------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the Socket.IO server runs on."""
        return self.runner.loop

    @property
    def eio(self) -> Any:
        """The Engine.IO server."""
        return self.async_server.eio

    @property
    def manager(self) -> Any:
        """The client manager (rooms and participants)."""
        return self.async_server.manager

    @property
    def logger(self) -> logging.Logger:
        """The Socket.IO logger."""
        return self.async_server.logger

    @property
    def environ(self) -> Any:
        """``environ[eio_sid]``: the environ of each connection, as in python-socketio."""
        return self.async_server.environ

    @property
    def namespaces(self) -> Any:
        """Namespaces accepted without handlers."""
        return self.async_server.namespaces

    def is_asyncio_based(self) -> bool:
        """Always False: handlers are plain functions run in threads."""
        return False

    # -- registration ---------------------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register ``handler`` (a plain function) for ``event`` in ``namespace``; without
        ``handler`` this is a decorator."""
        # The inner server accepts CONNECTs to namespaces it has handlers for.
        self.async_server.handlers.setdefault(namespace or "/", {})
        return super().on(event, handler, namespace)

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register a class-based namespace (a ``fastio.Namespace``)."""
        if not hasattr(namespace_handler, "trigger_event") or getattr(
                namespace_handler, "is_asyncio_based", lambda: False)():
            raise ValueError("Not a namespace instance")
        namespace_handler.server = self
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler
        self.async_server.namespace_handlers[namespace_handler.namespace] = namespace_handler

    def threaded_handler(self, event: str, namespace: str,
                         args: tuple[Any, ...]) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
        """The inner server's handler lookup: the registered handler and its arguments, as a
        coroutine function that runs it in the thread pool (None when there is none)."""
        handler, fitted = self.find_handler(event, namespace, args)
        if handler is None:
            return None, fitted
        departed = None
        if event == "connect" and self.extra_environ and len(args) > 1 and isinstance(args[1], dict):
            for key, value in self.extra_environ.items():
                args[1].setdefault(key, value)
        if event == "disconnect":
            sid = args[0]
            sock = self.async_server.manager.get_socket(sid, namespace)
            if sock is not None:
                departed = (sid, namespace)
                self._departed[departed] = (sock.session, self.async_server.rooms(sid, namespace))
        return self._run_in_pool, (handler, fitted, departed, args[0] if args else None)

    async def _run_in_pool(self, handler: Callable[..., Any], args: tuple[Any, ...],
                           departed: tuple[str, str] | None, sid: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self.async_handlers:
            try:
                return await loop.run_in_executor(self.executor, _call, handler, args)
            finally:
                if departed is not None:
                    self._departed.pop(departed, None)
        # async_handlers=False: one client's handlers run one at a time, in arrival order.
        previous = self._tails.get(sid)
        mine: asyncio.Future[None] = loop.create_future()
        self._tails[sid] = mine
        try:
            if previous is not None:
                await previous
            return await loop.run_in_executor(self.executor, _call, handler, args)
        finally:
            mine.set_result(None)
            if self._tails.get(sid) is mine:
                del self._tails[sid]
            if departed is not None:
                self._departed.pop(departed, None)

    # -- emitting --------------------------------------------------------------------------------

    def emit(self, event: str, data: Any = None, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: str | None = None, callback: Callable[..., Any] | None = None,
             ignore_queue: bool = False) -> None:
        """Emit an event to one client (``to=sid``), a room, several rooms, or everyone.

        ``callback`` (a plain function) is called in the thread pool with the client's
        acknowledgement.  Returns once the event is queued for every recipient."""
        self.runner.call(self.async_server.emit, event, data, to, room, skip_sid, namespace,
                         self._pooled(callback), ignore_queue)

    def send(self, data: Any, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: str | None = None, callback: Callable[..., Any] | None = None,
             ignore_queue: bool = False) -> None:
        """Emit a ``message`` event."""
        self.emit("message", data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
                  callback=callback, ignore_queue=ignore_queue)

    def call(self, event: str, data: Any = None, to: Any = None, sid: str | None = None,
             namespace: str | None = None, timeout: float | None = 60, ignore_queue: bool = False) -> Any:
        """Emit to one client and block until it acknowledges; returns what it sent back.

        Raises ``fastio.exceptions.TimeoutError`` after ``timeout`` seconds."""
        return self.runner.call(self.async_server.call, event, data, to, sid, namespace, timeout, ignore_queue)

    def _pooled(self, callback: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if callback is None:
            return None
        executor = self.executor

        def in_pool(*args: Any) -> None:
            executor.submit(_call_logged, self.logger, callback, args)

        return in_pool

    # -- rooms and sessions --------------------------------------------------------------------

    def enter_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Add a client to a room."""
        self.runner.call(self.async_server.enter_room, sid, room, namespace)

    def leave_room(self, sid: str, room: Any, namespace: str | None = None) -> None:
        """Remove a client from a room."""
        self.runner.call(self.async_server.leave_room, sid, room, namespace)

    def close_room(self, room: Any, namespace: str | None = None) -> None:
        """Remove every client from a room."""
        self.runner.call(self.async_server.close_room, room, namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[Any]:
        """Rooms a client is in (also inside its disconnect handler)."""
        departed = self._departed.get((sid, namespace or "/"))
        if departed is not None:
            return list(departed[1])
        return self.runner.call(self.async_server.rooms, sid, namespace)  # type: ignore[no-any-return]

    def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The client's session dictionary (also inside its disconnect handler)."""
        departed = self._departed.get((sid, namespace or "/"))
        if departed is not None:
            return departed[0]
        sock = self.async_server.manager.get_socket(sid, namespace or "/")
        if sock is None:
            raise KeyError("Session is disconnected")
        return sock.session  # type: ignore[no-any-return]

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Store the client's session dictionary."""
        sock = self.async_server.manager.get_socket(sid, namespace or "/")
        if sock is None:
            if (sid, namespace or "/") in self._departed:
                return
            raise KeyError("Session is disconnected")
        sock.session = session

    def session(self, sid: str, namespace: str | None = None) -> _SessionContext:
        """Context manager over a client's session, saved on exit::

            with sio.session(sid) as session:
                session['user'] = user
        """
        return _SessionContext(self, sid, namespace)

    def transport(self, sid: str, namespace: str | None = None) -> str:
        """'websocket' or 'polling'."""
        return self.async_server.transport(sid, namespace)

    def is_recovered(self, sid: str, namespace: str | None = None) -> bool:
        """True when the socket ``sid`` took over a lost session (connection state recovery,
        ``connection_state_recovery=``; see ``AsyncServer.is_recovered``)."""
        return self.async_server.is_recovered(sid, namespace)

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The environ of the client's connection."""
        return self.async_server.get_environ(sid, namespace)

    def disconnect(self, sid: str, namespace: str | None = None, ignore_queue: bool = False) -> None:
        """Disconnect a client from a namespace (it receives a DISCONNECT packet)."""
        self.runner.call(self.async_server.disconnect, sid, namespace, ignore_queue)

    def shutdown(self) -> None:
        """Close every connection (each client is told) and stop background work."""
        self.runner.call(self.async_server.shutdown)

    def close(self) -> None:
        """Stop the native servers ``start_server`` started, shut down (every client gets a close
        packet), then stop the event loop thread and the thread pool."""
        if self.runner.closed:
            return
        if not self.runner.is_running():  # never served in this process
            self.runner.stop()
            self.executor.shutdown(wait=False, cancel_futures=True)
            return
        try:
            if self._servers:
                self.stop_server()  # closes the listening sockets, then shuts the server down
            else:
                self.shutdown()
            if self._wsgi is not None:
                self.runner.call(self._wsgi.close_connections)
        finally:
            self.runner.stop()
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- threads and time ------------------------------------------------------------------------

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target(*args, **kwargs)`` in a new daemon thread; returns the started thread
        (``join()`` waits for it)."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float = 0) -> None:
        """``time.sleep``."""
        time.sleep(seconds)

    def instrument(self, auth: Any = None, mode: str = "development", read_only: bool = False,
                   server_id: str | None = None, namespace: str = "/admin",
                   server_stats_interval: float = 2) -> Any:
        """Serve the Socket.IO Admin UI's protocol on ``namespace`` (python-socketio's
        ``instrument``; the options are ``AsyncServer.instrument``'s).  The admin namespace's
        handlers run on the event loop; returns the ``InstrumentedAsyncServer``."""
        return self.runner.call(functools.partial(
            self.async_server.instrument, auth=auth, mode=mode, read_only=read_only, server_id=server_id,
            namespace=namespace, server_stats_interval=server_stats_interval))

    # -- the native server ------------------------------------------------------------------------

    def start_server(self, host: str = "127.0.0.1", port: int = 5000, app: Any = None,
                     wsgi_threads: int = 32, static_files: dict[str, Any] | None = None) -> Any:
        """Start fastio's native server for this server on its event loop and return the running
        ``fastio.HTTPServer`` (``port`` 0 picks a free port; ``.port`` tells which).

        ``app`` is a WSGI application (Flask, Django, ...) for every other path, run in a pool of
        ``wsgi_threads`` threads; an ASGI application is served as ``fastio.run`` serves one."""
        from fastio.hosting.native import serve
        from fastio.hosting.wsgi import WsgiHost, is_wsgi_app

        other: Any = app
        if app is not None and is_wsgi_app(app):
            other = WsgiHost(app, wsgi_threads)
        if static_files:
            from fastio.sync.wsgi import StaticFiles

            other = StaticFiles(static_files, other)
        server = self.runner.call(functools.partial(serve, self.async_server, host, port, app=other))
        self._servers.append(server)
        return server

    def stop_server(self) -> None:
        """Stop the native servers ``start_server`` started (every client gets a close packet)."""
        servers, self._servers = self._servers, []
        for server in servers:
            self.runner.call(server.close)

    def run_native(self, host: str = "127.0.0.1", port: int = 5000, app: Any = None,
                   wsgi_threads: int = 32, static_files: dict[str, Any] | None = None) -> None:
        """Serve until SIGINT/SIGTERM, then shut down gracefully (``fastio.run(sio, app=...)``)."""
        import signal

        from fastio.hosting.tuning import tune_gc

        server = self.start_server(host, port, app, wsgi_threads, static_files)
        tune_gc()
        print("fastio serving on http://%s:%d" % (host, server.port), flush=True)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *a: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.logger.info("shutting down")
            self.stop_server()

    # -- WSGI -------------------------------------------------------------------------------------

    def handle_request(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        """Serve one WSGI request under the Socket.IO path (python-socketio's
        ``Server.handle_request``): long-polling, and WebSocket on servers that expose the
        connection's socket (Werkzeug, gunicorn's threaded workers)."""
        if self._wsgi is None:
            from fastio.hosting.wsgi import EngineWSGI

            self._wsgi = EngineWSGI(self.async_server, self.loop)
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]


def _call(handler: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return handler(*args)


def _call_logged(logger: logging.Logger, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        callback(*args)
    except Exception:
        logger.exception("error in acknowledgement callback")
