"""Fixtures for the interop tests: an in-process Engine.IO server and the
Node clients that talk to it.

The server is fastio's. Setting ``FASTIO_INTEROP_BACKEND=python-engineio``
runs the same tests against python-engineio's AsyncServer (on aiohttp)
instead, to tell a harness problem from a fastio one.

Server options come from the ``eio_server`` marker::

    @pytest.mark.eio_server(ping_interval=0.3, ping_timeout=0.3)
    async def test_x(eio_server): ...
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nodeproc import NodeProcess, NodeProcesses, check_node_modules, node_executable  # noqa: E402

BACKEND = os.environ.get("FASTIO_INTEROP_BACKEND", "fastio")
ENGINE_PATH = "/engine.io/"
EVENT_TIMEOUT = 10.0


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "eio_server(**options): AsyncServer options for the eio_server fixture",
    )


class EioServer:
    """A running Engine.IO server and what its handlers saw.

    ``events`` is an asyncio.Queue of ``("connect", sid)``,
    ``("message", sid, data)`` and ``("disconnect", sid, reason)``.
    By default messages are echoed back; set ``echo = False`` to turn that
    off, and ``refuse = True`` to make the connect handler return False.
    ``on_connect`` (sync or async, called with the sid) runs from inside the
    connect handler, e.g. to send a greeting; ``on_message`` (sync or async,
    called with sid and data), when set, runs instead of the echo.
    """

    def __init__(self, eio: Any, options: dict[str, Any]):
        self.eio = eio
        self.options = options
        self.events: asyncio.Queue = asyncio.Queue()
        self.echo = True
        self.refuse = False
        self.on_connect: Callable[[str], Any] | None = None
        self.on_message: Callable[[str, Any], Any] | None = None
        self.handler_errors: list[BaseException] = []
        self.server: Any = None
        self.port: int = 0
        self._backlog: list[tuple] = []
        self._stop: Callable[[], Awaitable[None]] | None = None
        self._install_handlers()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _install_handlers(self) -> None:
        eio = self.eio

        @eio.on("connect")
        async def connect(sid, environ):
            self.events.put_nowait(("connect", sid))
            if self.refuse:
                return False
            if self.on_connect is not None:
                try:
                    result = self.on_connect(sid)
                    if inspect.isawaitable(result):
                        await result
                except BaseException as exc:  # shown when an awaited event is missing
                    self.handler_errors.append(exc)
                    raise
            return None

        @eio.on("message")
        async def message(sid, data):
            self.events.put_nowait(("message", sid, data))
            try:
                if self.on_message is not None:
                    result = self.on_message(sid, data)
                    if inspect.isawaitable(result):
                        await result
                elif self.echo:
                    await eio.send(sid, data)
            except BaseException as exc:
                self.handler_errors.append(exc)
                raise

        @eio.on("disconnect")
        async def disconnect(sid, reason):
            self.events.put_nowait(("disconnect", sid, reason))

    # -- awaiting server-side events -----------------------------------------

    async def next_event(
        self, kind: str | None = None, sid: str | None = None, timeout: float = EVENT_TIMEOUT
    ) -> tuple:
        """Return the first not yet consumed event of ``kind`` (any when None)
        for ``sid`` (any when None). Events of other kinds or sids are kept
        for later calls."""

        def fits(ev: tuple) -> bool:
            return (kind is None or ev[0] == kind) and (sid is None or ev[1] == sid)

        for i, ev in enumerate(self._backlog):
            if fits(ev):
                return self._backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"server saw no {kind or 'event'} (sid={sid}) within {timeout} s; "
                    f"unconsumed events: {self._backlog}; "
                    f"handler errors: {self.handler_errors!r}"
                )
            try:
                ev = await asyncio.wait_for(self.events.get(), remaining)
            except asyncio.TimeoutError:
                continue
            if fits(ev):
                return ev
            self._backlog.append(ev)

    async def expect_connect(self, timeout: float = EVENT_TIMEOUT) -> str:
        return (await self.next_event("connect", timeout=timeout))[1]

    async def expect_message(self, sid: str | None = None, timeout: float = EVENT_TIMEOUT) -> Any:
        return (await self.next_event("message", sid, timeout=timeout))[2]

    async def expect_disconnect(self, sid: str | None = None, timeout: float = EVENT_TIMEOUT) -> str:
        return (await self.next_event("disconnect", sid, timeout=timeout))[2]

    def pending(self, kind: str | None = None) -> list[tuple]:
        """Events received but not consumed yet (does not wait)."""
        while True:
            try:
                self._backlog.append(self.events.get_nowait())
            except asyncio.QueueEmpty:
                break
        return [ev for ev in self._backlog if kind is None or ev[0] == kind]

    # -- start / stop ---------------------------------------------------------

    async def start(self) -> "EioServer":
        if BACKEND == "python-engineio":
            await self._start_python_engineio()
        else:
            await self._start_fastio()
        return self

    async def _start_fastio(self) -> None:
        import fastio

        self.server = await fastio.serve(self.eio, host="127.0.0.1", port=0)
        self.port = self.server.port

        async def stop():
            await self.server.close()

        self._stop = stop

    async def _start_python_engineio(self) -> None:
        from aiohttp import web

        app = web.Application()
        self.eio.attach(app)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.server = runner
        self.port = runner.addresses[0][1]

        async def stop():
            await self.eio.shutdown()
            await runner.cleanup()

        self._stop = stop

    async def stop(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            await asyncio.wait_for(stop(), 10)


def make_async_server(**options: Any) -> Any:
    """An AsyncServer of the selected backend, with python-engineio's option names."""
    if BACKEND == "python-engineio":
        import engineio

        return engineio.AsyncServer(async_mode="aiohttp", **options)
    if BACKEND != "fastio":
        raise pytest.UsageError(f"unknown FASTIO_INTEROP_BACKEND={BACKEND!r}")
    try:
        from fastio.engineio import AsyncServer
    except ImportError as exc:
        pytest.fail(
            f"cannot import fastio.engineio.AsyncServer ({exc}); build fastio first: "
            "`pip install -e .` in the repository root",
            pytrace=False,
        )
    return AsyncServer(**options)


@pytest.fixture
def node_ready():
    """Fail early (not skip) when Node or the npm packages are missing."""
    node_executable()
    check_node_modules()


@pytest.fixture
async def make_eio_server(node_ready):
    """Factory: ``srv = await make_eio_server(ping_interval=..., ...)``."""
    started: list[EioServer] = []

    async def factory(**options: Any) -> EioServer:
        srv = EioServer(make_async_server(**options), options)
        await srv.start()
        started.append(srv)
        return srv

    yield factory
    errors = []
    for srv in reversed(started):
        try:
            await srv.stop()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise AssertionError(f"server shutdown failed: {errors!r}")


@pytest.fixture
async def eio_server(request, make_eio_server) -> EioServer:
    """A started server; options from the ``eio_server`` marker, if any."""
    marker = request.node.get_closest_marker("eio_server")
    options = dict(marker.kwargs) if marker else {}
    return await make_eio_server(**options)


@pytest.fixture
async def node_client(make_eio_server):
    """Factory for Node scripts that are killed and reaped at teardown:
    ``proc = await node_client("eio_client.mjs", cfg)``. It depends on
    make_eio_server so that the clients always go before the servers."""
    procs = NodeProcesses()

    async def factory(script: str, config: dict[str, Any], **kwargs: Any) -> NodeProcess:
        return await procs.start(NodeProcess(script, config, **kwargs))

    yield factory
    await procs.aclose()
