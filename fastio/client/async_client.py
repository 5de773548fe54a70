"""Socket.IO v5 client for asyncio, with python-socketio's ``AsyncClient`` interface.

``import fastio as socketio`` then ``socketio.AsyncClient()`` works as python-socketio's client
does: handlers registered with ``on``/``event`` (``connect``, ``connect_error(data)``,
``disconnect(reason)``, ``'*'`` catch-alls), class-based namespaces, ``emit``/``send``/``call``,
automatic reconnection that joins every namespace again.

Differences worth knowing:

- The reconnection delay follows the JavaScript client: ``reconnection_delay * 2**attempt``,
  capped at ``reconnection_delay_max``, then multiplied by a random factor in
  ``[1 - randomization_factor, 1 + randomization_factor]``.
- A server that closes the Engine.IO connection (for example when it shuts down) is
  reconnected to, as the JavaScript client does; only a Socket.IO DISCONNECT of the last
  namespace (``sio.disconnect(sid)`` on the server) or the client's own ``disconnect()`` end the
  connection for good. The disconnect handler gets ``'server disconnect'`` in both server cases
  and ``'transport error'`` when the connection broke.
- Connection state recovery (Node's ``connectionStateRecovery``): the ``pid`` and the
  offset the server appends to events are kept, sent back on reconnection, and the offset is
  not passed to handlers.  ``recovered`` (and ``is_recovered(namespace)``) tell whether the
  last connection got the previous session back (same sid, rooms, missed events replayed
  before the ``connect`` handler runs).  Caveat: while recovery is on, the last argument of an
  event without acknowledgement is taken as the offset when it is a string, so a *volatile*
  broadcast (which carries no offset) whose last argument is a string loses that argument,
  as the JavaScript client records it as its offset.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import random
import signal
import sys
import threading
import weakref
from typing import Any, Callable

from fastio import exceptions
from fastio._core.packet import (
    ACK, BINARY_ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT, Decoder,
    configure_json, encode,
)
from fastio.base.handlers import CLIENT_OPTIONAL_ARGS, HandlerRegistry
from fastio.base.util import keep, make_logger
from fastio.engineio.client import AsyncClient as EngineIOClient

__all__ = ["AsyncClient"]

class _AckWaiter:
    """The acknowledgement callback of ``call()``: resolves its future, always on the loop
    (never in the blocking client's handler threads)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[tuple[Any, ...]]) -> None:
        self.future = future

    def __call__(self, *args: Any) -> None:
        if not self.future.done():
            self.future.set_result(args)


# -- SIGINT: stop reconnecting and disconnect, then let the previous handler run -------------

_sigint_clients: "weakref.WeakSet[AsyncClient]" = weakref.WeakSet()
_previous_sigint: Any = None
_sigint_installed = False


def _on_sigint(signum: int, frame: Any) -> None:
    for client in list(_sigint_clients):
        client.interrupt()
    previous = _previous_sigint
    if callable(previous) and previous is not _on_sigint:
        try:
            previous(signum, frame)
            return
        except KeyboardInterrupt:
            raise
        except Exception:  # e.g. the handler of an event loop that is gone
            pass
    if previous == signal.SIG_IGN:
        return
    raise KeyboardInterrupt


def _install_sigint() -> None:
    global _previous_sigint, _sigint_installed
    if _sigint_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        _previous_sigint = signal.signal(signal.SIGINT, _on_sigint)
    except (ValueError, OSError):  # not allowed here
        return
    _sigint_installed = True


class AsyncClient(HandlerRegistry):
    """A Socket.IO client for asyncio.

    :param reconnection: reconnect automatically after the connection is lost (default True).
    :param reconnection_attempts: attempts before giving up; 0 (the default) for no limit.
    :param reconnection_delay: delay before the first attempt, doubled at each attempt.
    :param reconnection_delay_max: the largest delay.
    :param randomization_factor: each delay is multiplied by a random factor within
                                 ``1 ± randomization_factor`` (0.5 by default).
    :param logger: a ``logging.Logger``, or True/False for INFO/ERROR logging.
    :param serializer: ``'default'`` (JSON) or ``'msgpack'`` (``pip install msgpack``).
    :param json: a JSON module with ``dumps``/``loads`` to use instead of orjson (process-wide).
    :param handle_sigint: on SIGINT, stop reconnecting and disconnect every client, then let the
                          previous SIGINT handler run (only when created in the main thread).

    Engine.IO options: ``request_timeout`` (5 s), ``http_session`` (an aiohttp client object used
    for polling requests), ``ssl_verify``, ``websocket_extra_options`` (picows ``ws_connect``
    keywords), ``timestamp_requests``, ``engineio_logger``.
    """

    reserved_events = ["connect", "connect_error", "disconnect", "__disconnect_final"]
    optional_args = CLIENT_OPTIONAL_ARGS
    reason = EngineIOClient.reason

    def __init__(self, reconnection: bool = True, reconnection_attempts: int = 0,
                 reconnection_delay: float = 1, reconnection_delay_max: float = 5,
                 randomization_factor: float = 0.5, logger: logging.Logger | bool = False,
                 serializer: Any = "default", json: Any = None, handle_sigint: bool = True,
                 **kwargs: Any) -> None:
        if serializer not in ("default", "msgpack"):
            raise ValueError('serializer must be "default" or "msgpack"')
        self.serializer = serializer
        if json is not None:
            configure_json(json)
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.randomization_factor = randomization_factor
        self.handle_sigint = handle_sigint

        engineio_logger = kwargs.pop("engineio_logger", None)
        if engineio_logger is not None:
            kwargs["logger"] = engineio_logger
        self.eio = EngineIOClient(handle_sigint=handle_sigint, **kwargs)
        self.eio.message_sink = self._on_eio_message
        self.eio.close_sink = self._on_eio_close
        self.logger = make_logger("fastio.client", logger)

        self.connection_url: Any = None
        self.connection_headers: Any = None
        self.connection_auth: Any = None
        self.connection_transports: Any = None
        self.connection_namespaces: list[str] = []
        self.socketio_path: str | None = None
        self.sid: str | None = None

        self.connected = False  #: True once connect() succeeded, until disconnected
        self.namespaces: dict[str, str | None] = {}  #: connected namespace -> its sid
        self.failed_namespaces: list[str] = []
        self.init_handlers()
        self.callbacks: dict[str, dict[int, Callable[..., Any]]] = {}

        self._encode: Callable[..., Any] = encode
        self._decoder: Any
        if serializer == "msgpack":
            from fastio.socketio.msgpack import MsgpackDecoder, msgpack_encoder

            self._encode = msgpack_encoder()
            self._decoder = MsgpackDecoder(max_size=sys.maxsize)
        else:
            self._decoder = Decoder(max_attachments=1 << 20, max_size=sys.maxsize)
        self._ack_ids: dict[str, Any] = {}
        self._wait_timeout: float = 1
        self._connect_event: asyncio.Event | None = None
        self._reconnect_task: asyncio.Task[Any] | None = None
        self._reconnect_abort: asyncio.Event | None = None
        self._done = asyncio.Event()
        self._done.set()
        self._answered: set[str] = set()
        self._early: dict[str, list[tuple[int | None, Any]]] = {}
        self._intentional = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pids: dict[str, str] = {}
        self._offsets: dict[str, str] = {}
        self._recovered: set[str] = set()
        #: set by the blocking Client: where plain-function handlers run
        self._handler_executor: Any = None

        if handle_sigint:
            _install_sigint()
            _sigint_clients.add(self)

    # -- registration ----------------------------------------------------------------------

    def is_asyncio_based(self) -> bool:
        """Always True."""
        return True

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register an :class:`fastio.AsyncClientNamespace` instance."""
        from fastio.client.namespace import AsyncClientNamespace

        if not isinstance(namespace_handler, AsyncClientNamespace):
            raise ValueError("Not a namespace instance")
        namespace_handler.client = self
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler

    # -- information -----------------------------------------------------------------------

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The sid of this client in ``namespace`` (each namespace has its own)."""
        return self.namespaces.get(namespace or "/")

    def transport(self) -> str | None:
        """``'polling'`` or ``'websocket'``."""
        return self.eio.transport()

    def is_recovered(self, namespace: str | None = None) -> bool:
        """True when the connection to ``namespace`` got its previous session back (connection
        state recovery: same sid, rooms restored, missed events replayed), as the JavaScript
        client's ``socket.recovered``."""
        return (namespace or "/") in self._recovered

    @property
    def recovered(self) -> bool:
        """True when every namespace of the current connection was recovered."""
        return bool(self.namespaces) and all(n in self._recovered for n in self.namespaces)

    # -- connecting ------------------------------------------------------------------------

    async def connect(self, url: Any, headers: Any = {}, auth: Any = None, transports: Any = None,
                      namespaces: str | list[str] | None = None, socketio_path: str = "socket.io",
                      wait: bool = True, wait_timeout: float = 1, retry: bool = False) -> None:
        """Connect to a Socket.IO server and its namespaces.

        ``url``, ``headers`` and ``auth`` may be callables (or coroutine functions), called again
        on every connection attempt. ``namespaces`` defaults to those with handlers, else ``'/'``.
        With ``wait`` the call returns once every namespace answered (each answer within
        ``wait_timeout`` seconds) and raises ``ConnectionError`` if one of them refused. With
        ``retry`` a failed first attempt goes on with the reconnection logic.
        """
        if self.connected:
            raise exceptions.ConnectionError("Already connected")
        self._loop = asyncio.get_running_loop()
        self.connection_url = url
        self.connection_headers = headers
        self.connection_auth = auth
        self.connection_transports = transports
        self.socketio_path = socketio_path
        self._wait_timeout = wait_timeout
        if namespaces is None:
            names = list(dict.fromkeys([*self.handlers, *self.namespace_handlers]))
            names = [n for n in names if n != "*"] or ["/"]
        elif isinstance(namespaces, str):
            names = [namespaces]
        else:
            names = list(namespaces)
        self.connection_namespaces = names
        self.namespaces = {}
        self.failed_namespaces = []
        self._answered = set()
        self._early = {}
        self._intentional = False
        if self._connect_event is None:
            self._connect_event = asyncio.Event()
        self._connect_event.clear()
        self._done.clear()

        try:
            real_url = await self._get_real_value(url)
            real_headers = await self._get_real_value(headers)
            real_auth = await self._get_real_value(auth)
            await self.eio.connect(real_url, headers=real_headers or {}, transports=transports,
                                   engineio_path=socketio_path)
        except exceptions.ConnectionError as exc:
            data = exc.args[1] if len(exc.args) > 1 and exc.args[1] is not None else exc.args[0]
            for n in names:
                self._dispatch("connect_error", n, [data])
            if retry:
                self._reconnect_abort = asyncio.Event()
                await self._reconnect_loop(self._reconnect_abort)
                if self.connected:
                    return
            self._settle()
            raise exceptions.ConnectionError(exc.args[0]) from exc
        except BaseException:
            self._settle()
            raise

        self.sid = self.eio.sid
        self.logger.info("Engine.IO connection established")
        for n in names:
            data = real_auth
            pid = self._pids.get(n)
            if pid is not None and (data is None or isinstance(data, dict)):
                data = {"pid": pid, "offset": self._offsets.get(n), **(data or {})}
            await self._send(CONNECT, n, data)

        if wait:
            event = self._connect_event
            try:
                while len(self._answered) < len(names):
                    if self.eio.state != "connected":
                        break
                    await asyncio.wait_for(event.wait(), wait_timeout)
                    event.clear()
            except asyncio.TimeoutError:
                pass
            if set(self.namespaces) != set(names):
                task = self._reconnect_task
                if task is not None and task is not asyncio.current_task():
                    return  # connected, then lost: the reconnection that started goes on
                lost = self.eio.state != "connected"
                failed = list(self.failed_namespaces)
                missing = [n for n in names if n not in self.namespaces and n not in failed]
                await self._close_connection()
                self._settle()
                if failed:
                    raise exceptions.ConnectionError(
                        "One or more namespaces failed to connect: " + ", ".join(failed))
                if lost:
                    raise exceptions.ConnectionError("Connection lost while connecting")
                raise exceptions.ConnectionError(
                    "Timed out waiting for namespaces to connect: " + ", ".join(missing))
            self.connected = True
            # the upgrade to WebSocket runs alongside; settle it so that transport() is final
            await self.eio.wait_upgrade(self.eio.request_timeout)
        else:
            self.connected = True

    async def wait(self) -> None:
        """Wait until the connection ends for good (reconnections included)."""
        await self._done.wait()

    async def disconnect(self) -> None:
        """Leave every namespace and close the connection; stops a reconnection in progress."""
        self._abort_reconnect()
        await self._close_connection()
        self._pids.clear()
        self._offsets.clear()
        self._recovered.clear()
        if self._reconnect_task is None:
            self._done.set()

    async def _close_connection(self) -> None:
        self._intentional = True
        for n in list(self.namespaces):
            self._send_nowait(DISCONNECT, n)
        await self.eio.disconnect()
        self.connected = False

    async def shutdown(self) -> None:
        """Disconnect, or stop reconnecting; does nothing when idle."""
        if self.connected:
            await self.disconnect()
        elif self._reconnect_task is not None:
            self._abort_reconnect()
            task = self._reconnect_task
            if task is not asyncio.current_task():
                await task

    # -- sending ---------------------------------------------------------------------------

    async def emit(self, event: str, data: Any = None, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None) -> None:
        """Emit ``event``; a tuple ``data`` is sent as several arguments. ``callback`` is called
        with the server's acknowledgement arguments."""
        await self._emit(event, data, namespace, callback)

    async def _emit(self, event: str, data: Any, namespace: str | None,
                    callback: Callable[..., Any] | None) -> tuple[str, int | None]:
        namespace = namespace or "/"
        if namespace not in self.namespaces:
            raise exceptions.BadNamespaceError(f"{namespace} is not a connected namespace.")
        self.logger.info('Emitting event "%s" [%s]', event, namespace)
        if isinstance(data, tuple):
            args = [event, *data]
        elif data is not None:
            args = [event, data]
        else:
            args = [event]
        ack_id = None
        if callback is not None:
            counter = self._ack_ids.get(namespace)
            if counter is None:
                counter = self._ack_ids[namespace] = itertools.count(1)
            ack_id = next(counter)
            self.callbacks.setdefault(namespace, {})[ack_id] = callback
        try:
            await self._send(EVENT, namespace, args, ack_id)
        except BaseException:
            if ack_id is not None:
                self.callbacks.get(namespace, {}).pop(ack_id, None)
            raise
        return namespace, ack_id

    async def send(self, data: Any, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None) -> None:
        """Emit a ``'message'`` event."""
        await self.emit("message", data=data, namespace=namespace, callback=callback)

    async def call(self, event: str, data: Any = None, namespace: str | None = None,
                   timeout: float | None = 60) -> Any:
        """Emit ``event`` and return the server's acknowledgement: its only argument, a tuple of
        several, or None. Raises ``fastio.exceptions.TimeoutError`` after ``timeout`` seconds."""
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        namespace, ack_id = await self._emit(event, data, namespace, _AckWaiter(future))
        try:
            args = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self.callbacks.get(namespace, {}).pop(ack_id, None)  # type: ignore[arg-type]
            raise exceptions.TimeoutError() from None
        if len(args) > 1:
            return args
        return args[0] if args else None

    async def _send(self, ptype: int, namespace: str, data: Any = None, ack_id: int | None = None) -> None:
        encoded = self._encode(ptype, namespace, data, ack_id)
        if encoded.binary:
            await self.eio.send_binary_message(encoded.message)
        else:
            await self.eio.send_message(encoded.message, encoded.attachments)

    def _send_nowait(self, ptype: int, namespace: str, data: Any = None, ack_id: int | None = None) -> None:
        if self.eio.state != "connected":
            return
        encoded = self._encode(ptype, namespace, data, ack_id)
        attachments = encoded.attachments
        if encoded.binary:
            self.eio.send_items([(encoded.message, True)])
        elif attachments:
            self.eio.send_items([(encoded.message, False)] + [(a, True) for a in attachments])
        else:
            self.eio.send_items([(encoded.message, False)])

    # -- utilities -------------------------------------------------------------------------

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """Run ``target(*args, **kwargs)`` as an asyncio task."""
        return asyncio.ensure_future(target(*args, **kwargs))

    async def sleep(self, seconds: float = 0) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(seconds)

    @staticmethod
    async def _get_real_value(value: Any) -> Any:
        if not callable(value):
            return value
        result = value()
        if inspect.isawaitable(result):
            result = await result
        return result

    # -- incoming packets ------------------------------------------------------------------

    def _on_eio_message(self, data: bytes, binary: bool) -> None:
        try:
            pkt = self._decoder.feed_binary(data) if binary else self._decoder.feed_text(data)
        except ValueError as exc:
            self.logger.warning("Invalid packet from the server ignored: %s", exc)
            self._decoder.reset()
            return
        if pkt is None:
            return
        ptype = pkt.type
        if ptype == EVENT or ptype == BINARY_EVENT:
            self._handle_event(pkt.namespace, pkt.id, pkt.data)
        elif ptype == ACK or ptype == BINARY_ACK:
            self._handle_ack(pkt.namespace, pkt.id, pkt.data)
        elif ptype == CONNECT:
            self._handle_connect(pkt.namespace, pkt.data)
        elif ptype == DISCONNECT:
            self._handle_disconnect(pkt.namespace)
        elif ptype == CONNECT_ERROR:
            self._handle_error(pkt.namespace, pkt.data)

    def _handle_connect(self, namespace: str, data: Any) -> None:
        if namespace in self.namespaces or namespace not in self.connection_namespaces:
            return
        info = data if isinstance(data, dict) else {}
        pid = info.get("pid")
        if isinstance(pid, str) and self._pids.get(namespace) == pid:
            self._recovered.add(namespace)
        else:
            self._recovered.discard(namespace)
        if isinstance(pid, str):
            if self._pids.get(namespace) != pid:
                self._offsets.pop(namespace, None)
            self._pids[namespace] = pid
        else:
            self._pids.pop(namespace, None)
            self._offsets.pop(namespace, None)
        self.namespaces[namespace] = info.get("sid", self.sid)
        self.logger.info("Namespace %s is connected", namespace)
        for ack_id, early in self._early.pop(namespace, ()):
            self._handle_event(namespace, ack_id, early)
        event = self._connect_event
        answered = self._answered

        def connected(ok: bool, result: Any) -> None:
            answered.add(namespace)
            if answered is self._answered and self.eio.state == "connected" \
                    and len(self.namespaces) == len(self.connection_namespaces) \
                    and all(n in self.namespaces for n in self.connection_namespaces):
                self.connected = True  # every namespace is in: connected from now on
            if event is not None:
                event.set()

        self._dispatch("connect", namespace, [], connected)

    def _handle_disconnect(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            return
        self.logger.info("Namespace %s was disconnected by the server", namespace)
        del self.namespaces[namespace]
        self._pids.pop(namespace, None)
        self._offsets.pop(namespace, None)
        self._dispatch("disconnect", namespace, [self.reason.SERVER_DISCONNECT])
        self._dispatch("__disconnect_final", namespace, [])
        if not self.namespaces:
            self.connected = False
            self._intentional = True
            keep(asyncio.ensure_future(self.eio.disconnect()))

    def _handle_event(self, namespace: str, ack_id: int | None, data: Any) -> None:
        if not isinstance(data, list) or not data:
            return
        if namespace not in self.namespaces:
            if namespace in self.connection_namespaces and namespace not in self._answered:
                # sent before the namespace's CONNECT (Node replays missed events of a
                # recovered connection first): delivered once connected, as the JS client does
                self._early.setdefault(namespace, []).append((ack_id, data))
            return
        event = data[0]
        args = data[1:]
        if ack_id is None and namespace in self._pids and args and isinstance(args[-1], str):
            self._offsets[namespace] = args.pop()
        self.logger.info('Received event "%s" [%s]', event, namespace)
        if ack_id is None:
            self._dispatch(event, namespace, args)
        else:
            def send_ack(ok: bool, result: Any) -> None:
                if not ok or self.eio.state != "connected":
                    return
                if result is None:
                    reply = []
                elif isinstance(result, tuple):
                    reply = list(result)
                else:
                    reply = [result]
                try:
                    self._send_nowait(ACK, namespace, reply, ack_id)
                except Exception:
                    self.logger.exception("could not send the acknowledgement of %s", event)

            self._dispatch(event, namespace, args, send_ack)

    def _handle_ack(self, namespace: str, ack_id: int | None, data: Any) -> None:
        self.logger.info("Received ack [%s]", namespace)
        callback = self.callbacks.get(namespace, {}).pop(ack_id, None)  # type: ignore[arg-type]
        if callback is None:
            self.logger.warning("Unknown callback received, ignoring.")
            return
        self._invoke(callback, list(data) if isinstance(data, list) else [data], "ack")

    def _handle_error(self, namespace: str, data: Any) -> None:
        self.logger.info("Connection to namespace %s was rejected", namespace)
        if data is None:
            args: list[Any] = []
        elif isinstance(data, (list, tuple)):
            args = list(data)
        else:
            args = [data]
        self._pids.pop(namespace, None)
        self._offsets.pop(namespace, None)
        self._early.pop(namespace, None)
        self._dispatch("connect_error", namespace, args)
        if namespace not in self.failed_namespaces:
            self.failed_namespaces.append(namespace)
        self.namespaces.pop(namespace, None)
        self._answered.add(namespace)
        if self._connect_event is not None:
            self._connect_event.set()

    def _on_eio_close(self, reason: str) -> None:
        self.logger.info("Engine.IO connection dropped (%s)", reason)
        will_reconnect = (self.reconnection and self.connected and not self._intentional
                          and reason != self.reason.CLIENT_DISCONNECT)
        for n in list(self.namespaces):
            self._dispatch("disconnect", n, [reason])
            if not will_reconnect:
                self._dispatch("__disconnect_final", n, [])
        self.namespaces = {}
        self.connected = False
        self.callbacks = {}
        self._early = {}
        self._decoder.reset()
        self.sid = None
        if self._connect_event is not None:
            self._connect_event.set()
        if will_reconnect and self._reconnect_task is None:
            self._reconnect_abort = abort = asyncio.Event()
            self._reconnect_task = keep(asyncio.ensure_future(self._reconnect_loop(abort)))
        elif self._reconnect_task is None:
            self._done.set()  # for good: wait() returns

    def _settle(self) -> None:
        if self._reconnect_task is None and self.eio.state == "disconnected":
            self._done.set()

    # -- handlers --------------------------------------------------------------------------

    def _dispatch(self, event: str, namespace: str, args: list[Any],
                  then: Callable[[bool, Any], Any] | None = None) -> None:
        handler, fitted = self.find_handler(event, namespace, tuple(args))
        if handler is None:
            if then is not None:
                then(True, None)
            return
        self._invoke(handler, fitted, event, then)

    def _invoke(self, handler: Callable[..., Any], args: tuple[Any, ...] | list[Any], event: str,
                then: Callable[[bool, Any], Any] | None = None) -> None:
        """Call a handler: plain functions now (or in the blocking client's executor),
        coroutines as tasks; ``then(ok, result)`` gets the outcome."""
        executor = self._handler_executor
        if executor is not None and not inspect.iscoroutinefunction(handler) \
                and not isinstance(handler, _AckWaiter) \
                and not inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(executor, lambda: handler(*args))
            keep(asyncio.ensure_future(self._finish(future, event, then)))
            return
        try:
            result = handler(*args)
        except Exception:
            self.logger.exception("%s handler error", event)
            if then is not None:
                then(False, None)
            return
        if inspect.isawaitable(result):
            keep(asyncio.ensure_future(self._finish(result, event, then)))
        elif then is not None:
            then(True, result)

    async def _finish(self, awaitable: Any, event: str, then: Callable[[bool, Any], Any] | None) -> None:
        try:
            result = await awaitable
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            if then is not None:
                then(False, None)
            raise
        except Exception:
            self.logger.exception("%s handler error", event)
            if then is not None:
                then(False, None)
            return
        if then is not None:
            then(True, result)

    # -- reconnection ----------------------------------------------------------------------

    def _next_delay(self, attempt: int) -> float:
        base = min(self.reconnection_delay * 2 ** min(attempt, 64), self.reconnection_delay_max)
        factor = min(max(self.randomization_factor, 0.0), 1.0)
        return base * (1 + factor * (2 * random.random() - 1))

    async def _reconnect_loop(self, abort: asyncio.Event) -> None:
        if self._reconnect_task is None:
            self._reconnect_task = asyncio.current_task()
        attempt = 0
        try:
            while True:
                delay = self._next_delay(attempt)
                self.logger.info("Connection failed, new attempt in %.02f seconds", delay)
                try:
                    await asyncio.wait_for(abort.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                if abort.is_set():
                    self.logger.info("Reconnect task aborted")
                    for n in self.connection_namespaces:
                        self._dispatch("__disconnect_final", n, [])
                    break
                attempt += 1
                self.logger.info("Reconnection attempt %d", attempt)
                try:
                    await self.connect(self.connection_url, headers=self.connection_headers,
                                       auth=self.connection_auth,
                                       transports=self.connection_transports,
                                       namespaces=self.connection_namespaces,
                                       socketio_path=self.socketio_path or "socket.io",
                                       wait_timeout=self._wait_timeout, retry=False)
                except (exceptions.ConnectionError, ValueError, OSError) as exc:
                    self.logger.info("Reconnection attempt %d failed: %s", attempt, exc)
                else:
                    if self.connected:
                        self.logger.info("Reconnection successful")
                        break
                    self.logger.info("Reconnection attempt %d failed: connection lost", attempt)
                if abort.is_set():
                    self.logger.info("Reconnect task aborted")
                    for n in self.connection_namespaces:
                        self._dispatch("__disconnect_final", n, [])
                    break
                if self.reconnection_attempts and attempt >= self.reconnection_attempts:
                    self.logger.info("Maximum reconnection attempts reached, giving up")
                    for n in self.connection_namespaces:
                        self._dispatch("__disconnect_final", n, [])
                    break
        finally:
            self._reconnect_task = None
            if not self.connected:
                self._done.set()

    def _abort_reconnect(self) -> None:
        if self._reconnect_task is not None and self._reconnect_abort is not None:
            self._reconnect_abort.set()

    @property
    def reconnecting(self) -> bool:
        """True while the client is between connections and trying to get one back."""
        return self._reconnect_task is not None

    def set_handler_executor(self, executor: Any) -> None:
        """Run plain-function handlers in ``executor`` (a ``concurrent.futures`` executor)
        instead of on the loop; the blocking ``fastio.Client`` uses this. None: on the loop."""
        self._handler_executor = executor

    def interrupt(self) -> None:
        """Stop reconnecting and disconnect, from any thread (what SIGINT does)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def interrupt() -> None:
            self._abort_reconnect()
            if self.connected or self.eio.state == "connected":
                keep(asyncio.ensure_future(self.disconnect()))

        try:
            loop.call_soon_threadsafe(interrupt)
        except RuntimeError:  # loop closed meanwhile
            pass
