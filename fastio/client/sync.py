"""Blocking clients: ``Client`` and ``SimpleClient``, with python-socketio's interfaces.

``Client`` hosts an asyncio event loop in a daemon thread and delegates to
:class:`fastio.AsyncClient`; ``SimpleClient`` is built on a ``Client``, as python-socketio's is. Handlers of a ``Client`` are plain functions; they run in
a thread pool, so a handler may itself call ``emit``/``call`` on the client.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import weakref
from typing import Any, Callable, Coroutine

from fastio.base.util import new_event_loop
from fastio.client.async_client import AsyncClient
from fastio.client.namespace import ClientNamespace
from fastio.client.simple import SimpleClientBase
from fastio.exceptions import DisconnectedError, SocketIOError, TimeoutError

__all__ = ["Client", "SimpleClient"]


class _LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("this blocking call cannot be made from the client's event loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @staticmethod
    def stop(loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed meanwhile
                pass


class Client:
    """A blocking Socket.IO client; arguments as for :class:`fastio.AsyncClient`.

    Handlers registered with ``on``/``event`` and ``ClientNamespace`` methods are plain functions
    run in a thread pool (``handler_threads`` workers, 16 by default).
    """

    reserved_events = AsyncClient.reserved_events
    reason = AsyncClient.reason

    def __init__(self, *args: Any, handler_threads: int = 16, **kwargs: Any) -> None:
        self._runner = _LoopThread("fastio-client")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=handler_threads, thread_name_prefix="fastio-handler")
        self._client = AsyncClient(*args, **kwargs)
        self._client.set_handler_executor(self._executor)
        weakref.finalize(self, _shutdown_runner, self._runner.loop, self._executor)

    def is_asyncio_based(self) -> bool:
        """Always False: handlers are plain functions run in threads."""
        return False

    # -- delegated state -----------------------------------------------------------------

    @property
    def async_client(self) -> AsyncClient:
        """The :class:`AsyncClient` doing the work."""
        return self._client

    @property
    def connected(self) -> bool:
        """True while connected (every namespace joined)."""
        return self._client.connected

    @property
    def namespaces(self) -> dict[str, str | None]:
        """Connected namespaces and this client's sid in each."""
        return self._client.namespaces

    @property
    def sid(self) -> str | None:
        """The Engine.IO session id (None when disconnected)."""
        return self._client.sid

    def __getattr__(self, name: str) -> Any:
        """Other public attributes (``eio``, ``handlers``, ``namespace_handlers``, ``logger``,
        the reconnection settings) are the async client's."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)

    # -- registration --------------------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """Register a handler (see ``AsyncClient.on``); without ``handler``, a decorator."""
        return self._client.on(event, handler, namespace)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        """Decorator registering a handler named after the function (see ``AsyncClient.event``)."""
        return self._client.event(*args, **kwargs)

    def register_namespace(self, namespace_handler: ClientNamespace) -> None:
        """Register a :class:`fastio.ClientNamespace` instance."""
        if not isinstance(namespace_handler, ClientNamespace):
            raise ValueError("Not a namespace instance")
        namespace_handler.client = self
        self._client.namespace_handlers[namespace_handler.namespace] = namespace_handler

    def get_sid(self, namespace: str | None = None) -> str | None:
        """The sid of this client in ``namespace``."""
        return self._client.get_sid(namespace)

    def transport(self) -> str | None:
        """``'polling'`` or ``'websocket'``."""
        return self._client.transport()

    # -- blocking operations -------------------------------------------------------------

    def connect(self, url: Any, headers: Any = {}, auth: Any = None, transports: Any = None,
                namespaces: Any = None, socketio_path: str = "socket.io", wait: bool = True,
                wait_timeout: float = 1, retry: bool = False) -> None:
        """Connect (see ``AsyncClient.connect``); blocks until connected."""
        self._runner.run(self._client.connect(
            url, headers=headers, auth=auth, transports=transports, namespaces=namespaces,
            socketio_path=socketio_path, wait=wait, wait_timeout=wait_timeout, retry=retry))

    def wait(self) -> None:
        """Block until the connection ends for good."""
        self._runner.run(self._client.wait())

    def emit(self, event: str, data: Any = None, namespace: str | None = None,
             callback: Callable[..., Any] | None = None) -> None:
        """Emit an event; ``callback`` runs in a handler thread with the acknowledgement."""
        coro = self._client.emit(event, data=data, namespace=namespace, callback=callback)
        if self._runner.in_loop_thread():
            asyncio.ensure_future(coro)
            return
        self._runner.run(coro)

    def send(self, data: Any, namespace: str | None = None, callback: Callable[..., Any] | None = None) -> None:
        """Emit a ``message`` event."""
        self.emit("message", data=data, namespace=namespace, callback=callback)

    def call(self, event: str, data: Any = None, namespace: str | None = None,
             timeout: float | None = 60) -> Any:
        """Emit and wait for the acknowledgement; ``fastio.exceptions.TimeoutError`` after
        ``timeout`` seconds."""
        return self._runner.run(self._client.call(event, data=data, namespace=namespace, timeout=timeout))

    def disconnect(self) -> None:
        """Disconnect from the server; blocks until done."""
        self._runner.run(self._client.disconnect())

    def shutdown(self) -> None:
        """Disconnect and stop reconnecting; blocks until done."""
        self._runner.run(self._client.shutdown())

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target`` in a daemon thread; returns the started thread (``join()`` it)."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float = 0) -> None:
        """time.sleep."""
        time.sleep(seconds)


def _shutdown_runner(loop: asyncio.AbstractEventLoop, executor: concurrent.futures.Executor | None) -> None:
    _LoopThread.stop(loop)
    if executor is not None:
        executor.shutdown(wait=False)


class SimpleClient(SimpleClientBase):
    """A blocking Socket.IO client for one namespace, with ``receive()`` instead of handlers.

    Arguments go to ``client_class`` (:class:`fastio.Client`; a subclass may name a subclass of
    it, as with python-socketio's ``SimpleClient.client_class``), which is made at each
    ``connect``. Events are returned in arrival order; while the client reconnects,
    ``emit``/``call``/``receive`` wait for it.
    """

    client_class: type[Client] = Client
    client: Client | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Guards connected/_settled/input_buffer; notified on every change.
        self._cond = threading.Condition()
        self._settled = False  # False while (re)connecting, True when connected or gone for good

    def _set(self, connected: bool | None, settled: bool) -> None:
        with self._cond:
            if connected is not None:
                self.connected = connected
            self._settled = settled
            self._cond.notify_all()

    def connect(self, url: Any, headers: Any = {}, auth: Any = None, transports: Any = None,
                namespace: str = "/", socketio_path: str = "socket.io", wait_timeout: float = 5) -> None:
        """Connect to the server and one namespace; blocks until connected."""
        if self.connected:
            raise RuntimeError("Already connected")
        self.namespace = namespace
        with self._cond:
            self.input_buffer.clear()
            self._settled = False
        client = self.client = self.client_class(*self.client_args, **self.client_kwargs)

        # Coroutine handlers run on the client's loop, in arrival order (plain functions would
        # go to its handler threads, where events could overtake one another).
        async def on_connect() -> None:
            self._set(True, True)

        async def on_disconnect(reason: str) -> None:
            self._set(None, False)

        async def on_final() -> None:
            self._set(False, True)

        async def on_event(event: str, *args: Any) -> None:
            with self._cond:
                self.input_buffer.append([event, *args])
                self._cond.notify_all()

        self._listen(client, on_connect, on_disconnect, on_final, on_event)
        client.connect(url, headers=headers, auth=auth, transports=transports, namespaces=[namespace],
                       socketio_path=socketio_path, wait_timeout=wait_timeout)

    def _ready(self) -> Client:
        with self._cond:
            self._cond.wait_for(lambda: self._settled)
            if not self.connected or self.client is None:
                raise DisconnectedError()
            return self.client

    def emit(self, event: str, data: Any = None) -> None:
        """Emit an event; blocks until it is sent (waits while reconnecting;
        ``DisconnectedError`` once disconnected)."""
        while True:
            client = self._ready()
            try:
                return client.emit(event, data, namespace=self.namespace)
            except SocketIOError:  # lost meanwhile: wait for the reconnection
                self._wait_change()

    def call(self, event: str, data: Any = None, timeout: float = 60) -> Any:
        """Emit an event and wait for its acknowledgement; ``TimeoutError`` after ``timeout``
        seconds."""
        while True:
            client = self._ready()
            try:
                return client.call(event, data, namespace=self.namespace, timeout=timeout)
            except TimeoutError:
                raise
            except SocketIOError:
                self._wait_change()

    def _wait_change(self) -> None:
        # The failed send saw the connection lost; its disconnect handler may not have run yet.
        with self._cond:
            self._cond.wait_for(lambda: not (self._settled and self.connected), timeout=1)

    def receive(self, timeout: float | None = None) -> list[Any]:
        """The next event as ``[name, *args]``, in arrival order; ``TimeoutError`` when none comes
        within ``timeout`` seconds, ``DisconnectedError`` when disconnected with nothing to read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self.input_buffer:
                if self._settled and not self.connected:
                    raise DisconnectedError()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError()
                self._cond.wait(remaining)
            return self.input_buffer.popleft()

    def disconnect(self) -> None:
        """Disconnect from the server."""
        client = self.client
        if client is not None and (self.connected or client.reconnecting):
            client.disconnect()
        self._set(False, True)

    def __enter__(self) -> "SimpleClient":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.disconnect()
