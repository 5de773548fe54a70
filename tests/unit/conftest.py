"""Fixtures shared by the unit tests of the compiled core: for the session (Conn) and its
transports an event loop to flush on, one flush of it and a fake WebSocket transport taking
frames or whole messages; for the WebSocket parsers the partial-message budget at its default.

The unit tests run with ``--import-mode=importlib`` (also against built wheels), so test modules
cannot import each other or this file: they get these through fixtures.
"""
from __future__ import annotations

import asyncio
import gc
from typing import Callable, Iterator

import pytest

from fastio._core import wsframe
from fastio._core.conn import WSTransport
from fastio._core.wsframe import FrameReader


class FramedWS(WSTransport):
    """A WebSocket transport of the native kind (frames), recording what Conn writes
    (``written``) and the close codes it is closed with (``close_codes``)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.close_codes: list[int] = []

    def ws_write(self, data):
        self.written.append(data)

    def ws_close(self, code=1000, reason=""):
        self.close_codes.append(code)

    def texts(self) -> list[bytes]:
        """The payloads of the frames written so far."""
        return [bytes(p) for _, p in FrameReader(1 << 20, False).feed(b"".join(self.written))]


def _run_flush(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon(loop.stop)
    loop.run_forever()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop (not running), closed after the test."""
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture
def run_flush() -> Callable[[asyncio.AbstractEventLoop], None]:
    """``run_flush(loop)`` runs the callbacks scheduled on ``loop`` so far (a Flusher's pass)."""
    return _run_flush


class MessageWS(FramedWS):
    """A framework's WebSocket transport (whole messages), recording each batch Conn sends in
    ``batches``."""

    def __init__(self) -> None:
        super().__init__()
        self.ws_messages = True
        self.batches: list[list] = []

    def ws_send_messages(self, messages):
        self.batches.append(list(messages))


@pytest.fixture
def message_ws() -> type[MessageWS]:
    """The class of a fake framework WebSocket transport, taking whole messages."""
    return MessageWS


@pytest.fixture
def partial_budget_released() -> Iterator[None]:
    """The process-wide budget of partial WebSocket messages at its default for the test, and
    free: readers an earlier test left mid-message (some wait in reference cycles, e.g. through
    a caught exception's traceback) must not spend it.  The budget is restored afterwards."""
    if wsframe.partial_bytes():
        gc.collect()
    old = wsframe.partial_budget()
    wsframe.set_partial_budget(wsframe.DEFAULT_PARTIAL_BUDGET)
    yield
    wsframe.set_partial_budget(old)


@pytest.fixture
def framed_ws() -> type[FramedWS]:
    """The class of a fake frame-taking WebSocket transport: ``framed_ws()`` is one transport;
    a test module subclasses it for other kinds."""
    return FramedWS
